# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""netpol_connectivity: the analyzer offline, as a filter (documented in netpol_connectivity.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import runner


def netpol_connectivity(objects, output_format="list"):
    if not isinstance(objects, list):
        raise AnsibleFilterError(f"netpol_connectivity: expected a list of objects, got {type(objects).__name__}")
    try:
        if output_format == "list":
            return runner.analyse(objects, [], [], detail="full")["connections"]
        return runner.analyse(objects, [output_format], [], detail="full")["reports"][output_format]
    except ValidationError as exc:
        raise AnsibleFilterError(f"netpol_connectivity: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"netpol_connectivity": netpol_connectivity}
