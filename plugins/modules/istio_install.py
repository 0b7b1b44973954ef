#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: istio_install
short_description: Install Istio with istioctl from an install file, pinned to a revision, and verify it
version_added: 0.1.0
description:
  - Runs C(istioctl install -f O(file) --revision O(revision) -y) against the cluster of O(kubeconfig)
    and O(context) when that file at that revision has not been installed there yet (a digest of
    both is kept as an annotation on the revision's istiod Deployment), so an unchanged re-run
    changes nothing.
  - Then checks what C(istioctl verify-install) used to - the revision's istiod Deployment is
    Available, Istio's CRDs are Established, the revision's sidecar injection webhook is
    configured - and fails naming what is not.
  - C(istioctl) is not a dependency of the collection; the task fails saying so when it is missing.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  file:
    description: The install file (IstioOperator format) the istio_mesh role renders.
    type: path
    required: true
  revision:
    description: The control plane revision (C(istio.io/rev)); installs are pinned to one so that
      upgrades are canaries.
    type: str
    required: true
  istioctl:
    description: Path of istioctl; by default the one on C(PATH).
    type: path
  namespace:
    description: Istio's namespace.
    type: str
    default: istio-system
  timeout:
    description: Seconds for the install and, separately, for the checks after it.
    type: float
    default: 300
extends_documentation_fragment:
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Reports whether an install would run; runs nothing.
notes:
  - istioctl reads a kubeconfig; O(host)/O(api_key) connections are refused.
"""

EXAMPLES = r"""
- name: Install the control plane the role's file describes, as revision 1-30
  k8snet.fabric.istio_install:
    file: build/mesh/istio-operator.yaml
    revision: 1-30
    kubeconfig: ~/.kube/config
    context: us-east
"""

RETURN = r"""
installed:
  description: Whether istioctl install ran in this task.
  returned: always
  type: bool
verified:
  description: What was checked after the install (istiod Deployment, number of Istio CRDs, webhook).
  returned: unless check mode skipped it
  type: dict
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import istio_install
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import kubeconfig
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import CONNECTION_ARGSPEC, Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError, reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(file=dict(type="path", required=True), revision=dict(type="str", required=True),
                           istioctl=dict(type="path"), namespace=dict(type="str", default="istio-system"),
                           timeout=dict(type="float", default=300.0), **CONNECTION_ARGSPEC),
        supports_check_mode=True,
    )
    p = module.params
    with reported(module):
        if p.get("host") or p.get("api_key"):
            raise ValidationError("host/api_key: istioctl reads a kubeconfig; give kubeconfig and context instead")
        istioctl = p["istioctl"] or shutil.which("istioctl")
        if not istioctl or not os.access(istioctl, os.X_OK):
            raise ValidationError(f"istioctl: {p['istioctl'] or 'istioctl'!r} is not an executable "
                                  f"(not installed or not on PATH)")
        if module.check_mode and not os.path.exists(p["file"]):
            module.exit_json(changed=True, installed=False)  # check mode wrote no install file: an install would run
        try:
            with open(p["file"], encoding="utf-8") as handle:
                wanted = istio_install.install_hash(handle.read(), p["revision"])
        except OSError as exc:  # name the option, as before the one error tail
            raise ValidationError(f"file: {p['file']}: {exc.strerror}") from exc
        with Client(p) as client:
            if istio_install.installed(client, p["namespace"], p["revision"], wanted):
                result = {"changed": False, "installed": False}
            elif module.check_mode:
                module.exit_json(changed=True, installed=False)
            else:
                istio_install.run_istioctl(istioctl, p["file"], p["revision"], kubeconfig.with_environment(p, os.environ),
                                           p["timeout"])
                result = {"changed": True, "installed": True}
            result["verified"] = istio_install.verify(client, p["namespace"], p["revision"], p["timeout"])
            if result["installed"]:
                istio_install.record(client, p["namespace"], p["revision"], wanted)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
