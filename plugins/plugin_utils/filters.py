# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way a filter reports bad input: the engine's error, named after the filter."""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import FabricError, ValidationError


def reporting(filter_function):
    """An engine error (``FabricError``) raised by the filter becomes ``AnsibleFilterError``
    prefixed with the filter's name; anything else stays a traceback, because it is a bug."""
    @functools.wraps(filter_function)
    def run(*args, **kwargs):
        try:
            return filter_function(*args, **kwargs)
        except FabricError as exc:
            # from None: ansible-core 2.19 appends a chained cause to the message, which already holds it.
            raise AnsibleFilterError(f"{filter_function.__name__}: {exc}") from None
    return run


def expect_type(value, kind: type, what: str):
    """``value`` when it is a ``kind``, else a ValidationError naming ``what`` was expected."""
    if not isinstance(value, kind):
        raise ValidationError(f"expected {what}, got {type(value).__name__}")
    return value


def role_plan(name: str, scenario_plan, takes_probed: bool = False):
    """The ``<role>_plan`` filter of a scenario: its ``plan()`` of the role's spec mapping and,
    for a role that probes first, net_probe's result. Bad values come back as ``problems``
    (data the role shows); a spec that is no mapping fails the filter."""
    def plan(spec, probed=None):
        spec = expect_type(spec, dict, "the role's spec mapping")
        if not takes_probed:
            return scenario_plan(spec)
        if probed is not None:
            expect_type(probed, dict, "probed to be the result of k8snet.fabric.net_probe")
        return scenario_plan(spec, probed)
    plan.__name__ = name
    return reporting(plan)
