# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: unknown_variables
short_description: Variables and keys given to a role of this collection that the role does not have
version_added: 0.2.0
description:
  - Compares the variables of the run named C(<role>_*) with the role's argument spec
    (C(meta/argument_specs.yml), every entry point) and the names the role sets itself
    (C(register) targets, C(set_fact) keys, C(vars/)), and
    the keys inside its dict variables (and lists of dicts) with their declared options.
  - Returns one message per unknown name, with the closest known name
    (C(ecommerce_net_tirs is not a variable of ecommerce_net (did you mean ecommerce_net_tiers?))).
  - Ansible itself ignores an unknown top-level variable and refuses an unknown nested key by
    listing every supported one; the roles run this first (role C(k8snet.fabric.known_variables)).
author:
  - k8snet.fabric contributors (@k8snet)
options:
  _terms:
    description: Names of roles of this collection.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse unknown variables of ecommerce_net
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems }}"
  vars:
    problems: "{{ query('k8snet.fabric.unknown_variables', 'ecommerce_net') }}"
"""

RETURN = r"""
_raw:
  description: One message per unknown variable or key, naming the closest known name.
  type: list
  elements: str
"""

import os

import yaml

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.k8snet.fabric.plugins.module_utils import unknown_variables as known

ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        given = variables or {}
        out = []
        for role in terms:
            try:
                out += known.role_problems(os.path.join(ROLES, role), role, given, lambda name: self._value(given[name]))
            except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
                raise AnsibleLookupError(f"{role}: not a role of k8snet.fabric with an argument spec ({exc})") from exc
        return out

    def _value(self, value):
        """Declared dicts may come templated from the inventory; unreadable values are left to
        the argument spec."""
        try:
            return self._templar.template(value)
        except AnsibleError:
            return None
