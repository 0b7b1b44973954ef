# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: tls_secrets
short_description: kubernetes.io/tls Secrets from a certificate and key file on the controller
version_added: 0.1.0
description:
  - Reads a PEM certificate and its key on the controller (what M(k8snet.fabric.tls_certificate)
    checked or generated) and returns the C(kubernetes.io/tls) Secret O(name) in each of
    O(namespaces), ready for M(k8snet.fabric.resource_set).
  - The Secrets carry key material - use it in a task with C(no_log), as the roles do.
  - The PEM text loses its trailing newline, as the C(file) lookup's does, so Secrets written
    before stay unchanged.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  cert_file:
    description: PEM certificate file.
    type: path
    required: true
  key_file:
    description: PEM private key file.
    type: path
    required: true
  name:
    description: Name of the Secret.
    type: str
    required: true
  namespaces:
    description: The namespaces the pair is served in, one Secret each.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: The shop's TLS Secret in every environment
  ansible.builtin.set_fact:
    shop_tls_secrets: "{{ query('k8snet.fabric.tls_secrets', cert_file='build/tls/shop.crt', key_file='build/tls/shop.key',
                                name='shop-tls', namespaces=['shop-prod', 'shop-staging']) }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: One C(kubernetes.io/tls) Secret (v1) per namespace, with C(stringData) C(tls.crt) and C(tls.key).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import DNS1123_SUBDOMAIN


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        pem = {}
        for option, key in (("cert_file", "tls.crt"), ("key_file", "tls.key")):
            path = self.get_option(option)
            try:
                with open(path, encoding="utf-8") as handle:
                    pem[key] = handle.read().rstrip()
            except (OSError, UnicodeDecodeError) as exc:
                raise AnsibleLookupError(f"tls_secrets: {option}: {path!r} cannot be read ({exc})") from None
        name = self.get_option("name")
        if not isinstance(name, str) or not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
            raise AnsibleLookupError(f"tls_secrets: name: {name!r} is not a Secret name")
        out = []
        for index, namespace in enumerate(self.get_option("namespaces")):
            bad: list[str] = []
            checks.label(namespace, f"namespaces[{index}]", bad)
            if bad:
                raise AnsibleLookupError(f"tls_secrets: namespaces[{index}]: {namespace!r} is not a namespace name")
            out.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                        "metadata": {"name": name, "namespace": namespace}, "stringData": dict(pem)})
        return out
