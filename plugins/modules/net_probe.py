#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: net_probe
short_description: Ask resolvers and connect to endpoints, all at once, and say what answered
version_added: 0.1.0
description:
  - Sends each DNS question in O(dns) to its resolver (UDP, TCP when truncated) and opens a TCP
    connection to each endpoint in O(tcp), in parallel, from the host the task runs on.
  - A resolver is C(ok) when it answers NOERROR or NXDOMAIN (alive and serving the zone); an
    endpoint is C(ok) when it accepts the connection. Every result says why it is not.
  - Reads only; the task fails only with O(require_all) and a probe that is not C(ok).
author:
  - k8snet.fabric contributors (@k8snet)
options:
  dns:
    description: DNS questions.
    type: list
    elements: dict
    default: []
    suboptions:
      server:
        description: Resolver as C(address), C(address:port), C([v6-address]:port).
        type: str
        required: true
      name:
        description: The name asked for.
        type: str
        required: true
      type:
        description: Record type.
        type: str
        default: SOA
      tls_server_name:
        description:
          - Ask over DNS over TLS (port 853 unless the server names one), verifying the resolver's
            certificate for this name against the system's CAs.
        type: str
  tcp:
    description: TCP endpoints.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Address or name.
        type: str
        required: true
      port:
        description: Port.
        type: int
        required: true
  timeout:
    description: Seconds each probe may take.
    type: float
    default: 3.0
  require_all:
    description: Fail the task when any probe is not C(ok).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Probes only read, so they run in check mode too.
requirements:
  - dnspython (for O(dns))
"""

EXAMPLES = r"""
- name: Do the on-premises resolvers serve their zone, and does the app answer?
  k8snet.fabric.net_probe:
    dns:
      - {server: 10.0.0.53, name: onprem.hybrid.example.com}
    tcp:
      - {host: 10.20.0.10, port: 443}
    timeout: 2
  register: probe

- name: Healthy endpoints
  ansible.builtin.debug:
    msg: "{{ probe.tcp | selectattr('ok') | map(attribute='host') | list }}"
"""

RETURN = r"""
dns:
  description: One result per question, in order.
  returned: always
  type: list
  elements: dict
  contains:
    server: {description: The resolver as given., type: str}
    name: {description: The name asked for., type: str}
    ok: {description: Whether the resolver answered NOERROR or NXDOMAIN., type: bool}
    rcode: {description: The response code (absent without an answer)., type: str}
    answers: {description: The answer records as text., type: list}
    error: {description: Why it is not ok., type: str}
    ms: {description: Milliseconds taken., type: float}
tcp:
  description: One result per endpoint, in order (C(host), C(port), C(ok), C(error), C(ms)).
  returned: always
  type: list
  elements: dict
failed_probes:
  description: How many probes were not ok.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.k8snet.fabric.plugins.module_utils import net_probe
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError, reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            dns=dict(type="list", elements="dict", default=[], options=dict(
                server=dict(type="str", required=True), name=dict(type="str", required=True),
                type=dict(type="str", default="SOA"), tls_server_name=dict(type="str"))),
            tcp=dict(type="list", elements="dict", default=[], options=dict(
                host=dict(type="str", required=True), port=dict(type="int", required=True))),
            timeout=dict(type="float", default=3.0),
            require_all=dict(type="bool", default=False)),
        supports_check_mode=True,
    )
    p = module.params
    if p["dns"] and not net_probe.HAS_DNSPYTHON:
        module.fail_json(msg=missing_required_lib("dnspython"))
    dns_checks = []
    with reported(module):
        for i, check in enumerate(p["dns"]):
            address, port = net_probe.server_address(check["server"], f"dns[{i}].server", 853 if check["tls_server_name"] else 53)
            dns_checks.append({**check, "address": address, "port": port})
        for i, check in enumerate(p["tcp"]):
            if not 1 <= check["port"] <= 65535:
                raise ValidationError(f"tcp[{i}].port: {check['port']} is not 1-65535")
    result = net_probe.run(dns_checks, p["tcp"], p["timeout"])
    failed = [r for r in result["dns"] + result["tcp"] if not r["ok"]]
    result["failed_probes"] = len(failed)
    if p["require_all"] and failed:
        module.fail_json(msg=f"{len(failed)} probes failed: " + "; ".join(
            f"{r.get('server') or r['host']}{'' if 'server' in r else ':' + str(r['port'])}"
            f"{' (' + r['name'] + ')' if 'name' in r else ''}: {r['error']}" for r in failed), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
