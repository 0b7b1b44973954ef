# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: run_dir
short_description: The directory the run was started from - where the roles' default output goes
version_added: 0.1.0
description:
  - Returns the directory C(ansible-playbook) was started from (its working directory) - a
    checkout's root with C(make edge), the project directory under ansible-runner and AWX
    (C(/runner/project) in an execution environment).
  - The roles default C(fabric_build_dir) to C(<run_dir>/build) and read edge artifacts from
    C(<run_dir>/artifacts), so a collection installed from Galaxy is never written into, even
    when its playbooks run by FQCN.
  - Fails, naming the path, when that directory lies inside an installed copy of this collection
    (a C(MANIFEST.json) of C(k8snet.fabric) above it); start the run from your project
    directory or set C(fabric_build_dir).
author:
  - k8snet.fabric contributors (@k8snet)
options: {}
"""

EXAMPLES = r"""
- name: Where render mode writes unless fabric_build_dir is set
  ansible.builtin.debug:
    msg: "{{ lookup('k8snet.fabric.run_dir') ~ '/build' }}"
"""

RETURN = r"""
_raw:
  description: One absolute path, the run's working directory.
  type: list
  elements: path
"""

import json
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def installed_collection_around(path: str) -> str | None:
    """The root of an installed k8snet.fabric (it has a MANIFEST.json) that contains path."""
    current = os.path.abspath(path)
    while True:
        manifest = os.path.join(current, "MANIFEST.json")
        if os.path.isfile(manifest):
            try:
                with open(manifest, encoding="utf-8") as handle:
                    info = json.load(handle).get("collection_info") or {}
            except (OSError, ValueError):
                info = {}
            if (info.get("namespace"), info.get("name")) == ("k8snet", "fabric"):
                return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        cwd = os.getcwd()
        inside = installed_collection_around(cwd)
        if inside:
            raise AnsibleLookupError(
                f"run_dir: the run started inside the installed collection k8snet.fabric ({inside}); nothing may be "
                "written there - start ansible-playbook from your project directory or set fabric_build_dir")
        return [cwd]
