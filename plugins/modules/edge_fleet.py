#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the edge_fleet action (plugins/action/edge_fleet.py does the work)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edge_fleet
short_description: Render every edge site of the inventory in one pass (render mode)
version_added: "0.1.0"
description:
  - Render mode of the edge playbook, on the controller, in one process, for every edge host and
    site entry within C(--limit) - each host's variables as Ansible sees them (role defaults,
    inventory), the site described by the role's own C(tasks/site.yml),
    the argument spec and unknown-variable checks, the site plan checks, C(promtool) over the alert
    rules (each distinct rule set once) and the network policy proof - and then writes every host
    file (the text and modes apply mode installs, the token redacted), each site's manifests and
    the proof's report.
  - Nothing is written unless every host and site passes every check; check mode writes nothing;
    a file is rewritten only when its text or mode differs, so a re-run reports no change.
  - Runs from the C(k8snet.fabric.edge_k3s) role (C(tasks_from=fleet)), on localhost.
options:
  promtool:
    description: Path of C(promtool); unset - the one on PATH (no promtool - the rules are not checked).
    type: str
author:
  - k8snet.fabric contributors (@k8snet)
notes:
  - An action plugin - it runs on the controller only and never connects to the edge hosts.
"""

EXAMPLES = r"""
- name: Render every edge site within --limit
  k8snet.fabric.edge_fleet:
  register: fleet
"""

RETURN = r"""
sites:
  description: Site entries rendered.
  returned: always
  type: int
hosts:
  description: Edge hosts and site entries checked.
  returned: always
  type: int
files:
  description: Files the render consists of.
  returned: always
  type: int
schema_checked:
  description: Manifests checked against the Kubernetes schema offline (built-in kinds).
  returned: always
  type: int
promtool:
  description: Distinct alert rule sets promtool checked (sites sharing their rules share one check); null when promtool is not installed (the task warns).
  returned: always
  type: int
written:
  description: Files whose text or mode changed (in check mode, would change).
  returned: always
  type: list
  elements: str
proofs:
  description:
    - Each site's reachability proof - C(site), C(findings) (as netpol_analyze returns them) and
      C(report) (its folder); sites with C(edge_k3s_stack=false) have none. The filter
      k8snet.fabric.proof_summary reads this list.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"promtool": {"type": "str"}})
    module.fail_json(msg="k8snet.fabric.edge_fleet runs as an action plugin on the controller")


if __name__ == "__main__":
    main()
