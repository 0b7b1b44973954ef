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
  - With O(reuse_secret), missing files are first taken from that C(kubernetes.io/tls) Secret on
    the cluster the connection options name, so a job in a fresh folder (AWX, CI) keeps the
    certificate the cluster already serves instead of rotating it on every run.
  - With O(state=present) the pair is the module's own, so it is renewed instead of refused - a
    new key and certificate for O(hosts), signed by the same O(ca_cert_path) (or self-signed
    again), written over the files and reported as C(source=renewed) with the reason and the old
    fingerprint - when it expires in fewer than O(renew_days) days or does not cover every host
    in O(hosts). A play that writes the pair into its Secret then serves the new one; the next run
    finds nothing to do.
  - Key material is never returned or logged; only paths and facts.
author:
  - k8snet.fabric contributors (@k8snet)
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
  renew_days:
    description:
      - With O(state=present), renew the pair when it expires in fewer days. V(0) renews only a
        pair that does not cover O(hosts). Refused with O(state=checked), whose files are the
        user's.
    type: int
    default: 0
  min_days:
    description:
      - Fail when the certificate expires in fewer days (an expired one has a negative count).
        V(0) fails only on an expired certificate.
    type: int
    default: 0
  reuse_secret:
    description:
      - A Secret (C(namespace), C(name)) whose C(tls.crt)/C(tls.key) are written to O(cert_path)
        and O(key_path) when those files do not exist and the Secret does. Only with
        O(state=present); a Secret that is absent or not a TLS pair falls back to generating.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Secret.
        type: str
        required: true
      name:
        description: Name of the Secret.
        type: str
        required: true
extends_documentation_fragment:
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Nothing is generated or written in check mode.
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

- name: The same pair, renewed a month before it expires
  k8snet.fabric.tls_certificate:
    cert_path: build/tls/shop.crt
    key_path: build/tls/shop.key
    hosts: [shop.example.com]
    state: present
    renew_days: 30
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
source:
  description:
    - Where the pair came from - C(files) (already there), C(secret) (read back from
      O(reuse_secret)), C(generated) (there was none) or C(renewed) (replaced, see RV(renewed)).
  returned: success
  type: str
sans:
  description: Names the certificate covers.
  returned: success
  type: list
  elements: str
fingerprint_sha256:
  description: SHA-256 of the certificate (DER).
  returned: success
  type: str
uncovered_hosts:
  description: Names in O(hosts) the certificate does not cover.
  returned: success
  type: list
  elements: str
renewed:
  description: Why the pair was replaced, and the replaced certificate's fingerprint and expiry.
  returned: when RV(source) is C(renewed)
  type: dict
  sample:
    reason: expires in 12 days, fewer than renew_days 30
    previous_fingerprint_sha256: 3f0c9e...
    previous_not_after: "2027-01-01T00:00:00+00:00"
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import tls_certificate
from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import CONNECTION_ARGSPEC, Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError, reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(cert_path=dict(type="path", required=True), key_path=dict(type="path", required=True, no_log=False),
                           hosts=dict(type="list", elements="str", default=[]),
                           state=dict(type="str", choices=["checked", "present"], default="checked"),
                           days=dict(type="int", default=365), ca_cert_path=dict(type="path"),
                           ca_key_path=dict(type="path", no_log=False), warn_days=dict(type="int", default=30),
                           min_days=dict(type="int", default=0), renew_days=dict(type="int", default=0),
                           reuse_secret=dict(type="dict", no_log=False,
                                             options=dict(namespace=dict(type="str", required=True),
                                                          name=dict(type="str", required=True))),
                           **CONNECTION_ARGSPEC),
        required_together=[("ca_cert_path", "ca_key_path")],
        supports_check_mode=True,
    )
    p = module.params
    paths = (p["cert_path"], p["key_path"])
    renewed = {}
    with reported(module):
        checks.require(checks.renewal_window, p["renew_days"], p["days"], "renew_days", zero_means_never=True)
        if p["renew_days"] and p["state"] != "present":
            raise ValidationError("renew_days: only a pair the module owns (state=present) is renewed; "
                                  "with state=checked the files are the user's")
        if os.path.exists(p["cert_path"]) and os.path.exists(p["key_path"]):
            pair, source, where = tls_certificate.read_pair(*paths), "files", paths
        elif p["state"] == "present":
            if not p["hosts"]:
                raise ValidationError("hosts: at least one name is needed to generate a certificate")
            pair, source, where = None, "generated", paths
            if p["reuse_secret"]:
                with Client(p) as client:
                    pair = tls_certificate.pair_from_secret(client, p["reuse_secret"]["namespace"], p["reuse_secret"]["name"])
                secret = "secret {namespace}/{name}".format(**p["reuse_secret"])
                source, where = ("secret", (f"{secret} tls.crt", f"{secret} tls.key")) if pair else (source, where)
            pair = pair or tls_certificate.generate(p["hosts"], p["days"], p["ca_cert_path"], p["ca_key_path"])
        else:
            pair, source, where = tls_certificate.read_pair(*paths), "files", paths  # names the missing file
        facts = tls_certificate.inspect(*pair, p["hosts"], p["warn_days"], where)
        reason = tls_certificate.renewal_due(facts, p["renew_days"]) if p["state"] == "present" and source != "generated" else ""
        if reason:
            renewed = {"reason": reason, "previous_fingerprint_sha256": facts["fingerprint_sha256"],
                       "previous_not_after": facts["not_after"]}
            pair, source = tls_certificate.generate(p["hosts"], p["days"], p["ca_cert_path"], p["ca_key_path"]), "renewed"
            facts = tls_certificate.inspect(*pair, p["hosts"], p["warn_days"], paths)
        if source != "files" and not module.check_mode:
            tls_certificate.write_pair(*paths, *pair)
    warnings = facts.pop("warnings")
    result = {"changed": source != "files", "source": source, **facts, **({"renewed": renewed} if renewed else {})}
    if facts["days_left"] < p["min_days"]:
        module.fail_json(msg=f"certificate {p['cert_path']} expires in {facts['days_left']} days ({facts['not_after']}), "
                             f"fewer than min_days {p['min_days']}: renew it before deploying", **result)
    for warning in warnings:
        module.warn(warning)
    if renewed:
        module.warn(f"certificate {p['cert_path']} {'would be' if module.check_mode else 'was'} renewed: {reason}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
