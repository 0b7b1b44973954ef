# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""istioctl install from the role's install file, pinned to a revision, run only when the file
or the revision changed, and checked afterwards the way istioctl verify-install did."""

from __future__ import annotations

import hashlib
import subprocess
import time

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

HASH_ANNOTATION = "fabric.k8snet.io/install-file-sha256"
ISTIO_CRD_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io")


def install_hash(text: str, revision: str) -> str:
    return hashlib.sha256(f"{revision}\n{text}".encode()).hexdigest()


def istiod_path(namespace: str, revision: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/istiod-{revision}"


def installed(client, namespace: str, revision: str, wanted: str) -> bool:
    """Whether this file at this revision was installed by a previous run."""
    deploy = client.request("GET", istiod_path(namespace, revision), allow=(404,))
    return bool(deploy) and ((deploy["metadata"].get("annotations") or {}).get(HASH_ANNOTATION) == wanted)


def run_istioctl(istioctl: str, install_file: str, revision: str, connection: dict, timeout: float) -> str:
    """``connection``: the module's connection options with the K8S_AUTH_* variables filled in.
    istioctl reads the kubeconfig itself (client-go: its ``as`` entries included); the
    impersonation options become its --as flags, so it acts as no one the engine does not."""
    argv = [istioctl, "install", "-f", install_file, "--revision", revision, "-y"]
    if connection.get("kubeconfig"):
        argv += ["--kubeconfig", connection["kubeconfig"]]
    if connection.get("context"):
        argv += ["--context", connection["context"]]
    if connection.get("impersonate_user"):
        argv += ["--as", connection["impersonate_user"]]
    for group in connection.get("impersonate_groups") or []:
        argv += ["--as-group", group]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValidationError(f"istioctl install did not finish within {timeout:g}s") from exc
    if proc.returncode != 0:
        raise ValidationError(f"istioctl install failed ({proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout


def record(client, namespace: str, revision: str, wanted: str) -> None:
    client.request("PATCH", istiod_path(namespace, revision), content_type="application/merge-patch+json",
                   body={"metadata": {"annotations": {HASH_ANNOTATION: wanted}}})


def verify(client, namespace: str, revision: str, timeout: float) -> dict:
    """istiod available, Istio's CRDs Established, the revision's injection webhook configured;
    raises naming what is missing once the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        missing = []
        deploy = client.request("GET", istiod_path(namespace, revision), allow=(404,))
        if not deploy or not any(c.get("type") == "Available" and c.get("status") == "True"
                                 for c in (deploy.get("status") or {}).get("conditions") or []):
            missing.append(f"Deployment {namespace}/istiod-{revision} is not Available")
        crds = [c for c in client.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
                if c["spec"]["group"] in ISTIO_CRD_GROUPS]
        pending = [c["metadata"]["name"] for c in crds
                   if not any(x.get("type") == "Established" and x.get("status") == "True"
                              for x in (c.get("status") or {}).get("conditions") or [])]
        if not crds or pending:
            missing.append(f"Istio CRDs not Established: {', '.join(pending) or 'none installed'}")
        hook_name = f"istio-sidecar-injector-{revision}"
        hook = client.request("GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{hook_name}",
                              allow=(404,))
        if not hook or not hook.get("webhooks"):
            missing.append(f"MutatingWebhookConfiguration {hook_name} is missing")
        if not missing:
            return {"istiod": f"{namespace}/istiod-{revision}", "crds_established": len(crds), "webhook": hook_name}
        if time.monotonic() > deadline:
            raise ValidationError("the installation is not verified: " + "; ".join(missing))
        time.sleep(1.0)
