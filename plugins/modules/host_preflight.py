#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_preflight
short_description: Check in one read-only pass that a host can take a K3s install
version_added: "0.1.0"
description:
  - Reads what a K3s install needs from the host - operating system and architecture, the
    kernel features (C(overlay) in C(/proc/filesystems), C(br_netfilter) by its
    C(/proc/sys/net/bridge) sysctls), a default route (IPv4 or IPv6, from C(/proc/net)), free
    space where K3s keeps its data, and whether the ports K3s listens on are taken - in one
    module run, where fact gathering, a stat, a slurp and a port check per port cost a round trip each.
  - Fails naming every problem at once; changes nothing on the host.
options:
  arch:
    description: The K3s release architecture the host must run.
    type: str
    required: true
    choices: [amd64, arm, arm64]
  kernel_features:
    description: Kernel features that must be loaded.
    type: list
    elements: str
    choices: [overlay, br_netfilter]
    default: [overlay, br_netfilter]
  default_route:
    description: Require a default route (K3s needs one, even air-gapped).
    type: bool
    default: true
  data_path:
    description:
      - Where K3s will keep its data; the free space of the file system holding it (or its
        nearest existing parent) is checked against O(min_free_gb).
    type: str
  min_free_gb:
    description: Free GiB required at O(data_path).
    type: float
    default: 0
  ports:
    description: TCP ports K3s will listen on; a port some process listens on already is a problem.
    type: list
    elements: int
    default: []
  ports_unless_exists:
    description:
      - Skip the port check when this path exists - K3s already installed holds its own ports
        (for example its systemd unit).
    type: str
  proc:
    description: Where procfs is mounted (tests point this elsewhere).
    type: str
    default: /proc
author:
  - k8snet.fabric contributors (@k8snet)
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode as in a normal run.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to show.
"""
EXAMPLES = r"""
- name: Preflight a K3s server
  k8snet.fabric.host_preflight:
    arch: amd64
    data_path: /var/lib/rancher/
    min_free_gb: 5
    ports: [6443, 10250]
    ports_unless_exists: /etc/systemd/system/k3s.service
  register: preflight
"""
RETURN = r"""
hostname:
  description: The host's short hostname (K3s's default node name).
  returned: always
  type: str
  sample: factory1-server-1
system:
  description: The operating system (C(platform.system())).
  returned: always
  type: str
  sample: Linux
machine:
  description: The machine architecture (C(uname -m)).
  returned: always
  type: str
  sample: x86_64
kernel_features:
  description: Each kernel feature and whether it is loaded.
  returned: always
  type: dict
  sample: {overlay: true, br_netfilter: true}
default_route:
  description: Whether the host has a default route.
  returned: always
  type: bool
data:
  description: The mount point holding O(data_path) and its free bytes.
  returned: when O(data_path) is set
  type: dict
  sample: {mount: /, free_bytes: 52613349376}
ports_checked:
  description: Whether the ports were checked (not when O(ports_unless_exists) exists).
  returned: always
  type: bool
ports_in_use:
  description: The O(ports) some process already listens on.
  returned: always
  type: list
  elements: int
problems:
  description: Every problem found, in words (the task fails when there is one).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import host_preflight
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported


def main():
    module = AnsibleModule(argument_spec=host_preflight.ARGUMENT_SPEC, supports_check_mode=True)
    with reported(module, prefix="host_preflight: cannot read the host: "):
        facts = host_preflight.probe(module.params)
    found = host_preflight.problems(module.params, facts)
    if found:
        module.fail_json(msg="host_preflight: " + "; ".join(found), problems=found, **facts)
    module.exit_json(changed=False, problems=[], **facts)


if __name__ == "__main__":
    main()
