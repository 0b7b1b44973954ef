#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_certificate
short_description: Check or generate the certificate and key of a TLS Secret
version_added: 0.1.0
description:
  - With O(state=checked), verifies that O(key_path) is the private key of the certificate in
    O(cert_path), and reports its expiry and SANs, warning below O(warn_days) or when a host in
    O(hosts) is not covered, and failing below O(min_days) (a certificate that would expire
    before anyone reads the warning).
  - With O(state=present), generates a key (0600) and a certificate for O(hosts) when the files
    do not exist - self-signed, or signed by O(ca_cert_path)/O(ca_key_path) - then checks them.
  - Key material is never returned or logged; only paths and facts.
author:
  - k8snet.fabric contributors
options:
  cert_path:
    description: PEM certificate file.
    type: path
    required: true
  key_path:
    description: PEM private key file (unencrypted).
    type: path
    required: true
  hosts:
    description: Names the certificate must cover (SANs when generating).
    type: list
    elements: str
    default: []
  state:
    description: C(checked) only reads; C(present) generates missing files first.
    type: str
    choices: [checked, present]
    default: checked
  days:
    description: Validity of a generated certificate.
    type: int
    default: 365
  ca_cert_path:
    description: CA certificate that signs a generated certificate (self-signed without it).
    type: path
  ca_key_path:
    description: The CA's private key.
    type: path
  warn_days:
    description: Warn when the certificate expires in fewer days.
    type: int
    default: 30
  min_days:
    description:
      - Fail when the certificate expires in fewer days (an expired one has a negative count).
        V(0) fails only on an expired certificate.
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    description: Nothing is generated in check mode.
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: A self-signed certificate for the shop, generated once
  k8snet.fabric.tls_certificate:
    cert_path: build/tls/shop.crt
    key_path: build/tls/shop.key
    hosts: [shop.example.com]
    state: present
"""

RETURN = r"""
not_after:
  description: Expiry (ISO 8601).
  returned: success
  type: str
days_left:
  description: Days until expiry.
  returned: success
  type: int
sans:
  description: Names the certificate covers.
  returned: success
  type: list
  elements: str
fingerprint_sha256:
  description: SHA-256 of the certificate (DER).
  returned: success
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import tls
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import FabricError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(cert_path=dict(type="path", required=True), key_path=dict(type="path", required=True, no_log=False),
                           hosts=dict(type="list", elements="str", default=[]),
                           state=dict(type="str", choices=["checked", "present"], default="checked"),
                           days=dict(type="int", default=365), ca_cert_path=dict(type="path"),
                           ca_key_path=dict(type="path", no_log=False), warn_days=dict(type="int", default=30),
                           min_days=dict(type="int", default=0)),
        required_together=[("ca_cert_path", "ca_key_path")],
        supports_check_mode=True,
    )
    p = module.params
    changed = False
    try:
        missing = not (os.path.exists(p["cert_path"]) and os.path.exists(p["key_path"]))
        if missing and p["state"] == "present":
            if not p["hosts"]:
                module.fail_json(msg="hosts: at least one name is needed to generate a certificate")
            changed = True
            if module.check_mode:
                module.exit_json(changed=True, msg="would generate a key and certificate")
            tls.generate(p["cert_path"], p["key_path"], p["hosts"], p["days"], p["ca_cert_path"], p["ca_key_path"])
        facts = tls.inspect(p["cert_path"], p["key_path"], p["hosts"], p["warn_days"])
    except FabricError as exc:
        module.fail_json(msg=str(exc))
    warnings = facts.pop("warnings")
    if facts["days_left"] < p["min_days"]:
        module.fail_json(msg=f"certificate {p['cert_path']} expires in {facts['days_left']} days ({facts['not_after']}), "
                             f"fewer than min_days {p['min_days']}: renew it before deploying", **facts)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=changed, **facts)


if __name__ == "__main__":
    main()
