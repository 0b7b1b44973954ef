# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controllers a role's objects need: install them from the user's air-gap bundle (verified
against its sha256sum.txt before anything is written), or check that the cluster serves their
APIs, so that nothing is applied where no controller would act on it."""

from __future__ import annotations

import hashlib
import os
import time

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import catalogue, manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import DiscoveryError, FabricError, ValidationError

HELM_HOOK = "helm.sh/hook"  # rendered charts keep it: Envoy Gateway's certgen Job and topology webhook
SUMS_FILE = "sha256sum.txt"  # as sha256sum(1) writes it, and as edge_k3s' add-ons folder has it


def read_sums(folder: str) -> dict[str, str]:
    """File name -> sha256 from the bundle's checksum file (``<hex>  <name>``; ``*<name>`` too)."""
    path = os.path.join(folder, SUMS_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ValidationError(f"bundle_dir: {path} cannot be read ({exc.strerror})") from exc
    sums = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ValidationError(f"bundle_dir: {path} line {number} is not '<sha256>  <file>': {line[:80]!r}")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def read_bundle(folder: str, files: dict[str, str]) -> dict[str, list[dict]]:
    """Controller name -> the objects of its file in ``folder``, each file checked against the
    bundle's sha256sum.txt first. Raises naming every missing or mismatching file."""
    sums = read_sums(folder)
    problems, out = [], {}
    for name, file in files.items():
        path = os.path.join(folder, file)
        if file not in sums:
            problems.append(f"{name}: {path} has no line in {SUMS_FILE}")
            continue
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            problems.append(f"{name}: {path} cannot be read ({exc.strerror})")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != sums[file]:
            problems.append(f"{name}: {path} has sha256 {digest}, expected {sums[file]} ({SUMS_FILE})")
            continue
        out[name] = [o for o in manifests.parse(data.decode("utf-8"), path) if manifests.is_kubernetes(o)]
        if not out[name]:
            problems.append(f"{name}: {path} holds no Kubernetes object")
    if problems:
        raise ValidationError("the controllers' bundle is not usable, nothing was changed:\n- " + "\n- ".join(problems))
    return out


def split_hooks(objects: list[dict]) -> tuple[list[dict], list[dict]]:
    """A manifest's objects, and apart from them its Helm hooks."""
    plain, hooks = [], []
    for obj in objects:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        (hooks if HELM_HOOK in annotations else plain).append(obj)
    return plain, hooks


def _run_hooks(client, set_name: str, set_namespace: str, hooks: list[dict], check_mode: bool,
               wait_timeout: float) -> list[dict]:
    """Helm runs its hooks on install and upgrade only, replacing the previous ones (a Job that
    deletes itself when done, a webhook): so here, when the rest of the manifest changed. A
    hook Job applied on every run would be created again on every run (changed forever)."""
    if check_mode:
        return [{"kind": h.get("kind"), "name": h["metadata"].get("name"), "result": "would run"} for h in hooks]
    engine = Engine(client, wait_timeout=wait_timeout)
    engine.delete(set_name, set_namespace, hooks, default_namespace="default")  # a Job's template is immutable
    return engine.converge(set_name, set_namespace, hooks, "merged", default_namespace="default")["results"]


def describe(kinds) -> str:
    return ", ".join(f"{kind} ({api_version})" for api_version, kind in kinds)


def _unserved(discovery, kinds) -> list[tuple[str, str]]:
    missing = []
    for api_version, kind in kinds:
        try:
            discovery.resolve(api_version, kind)
        except DiscoveryError:
            missing.append((api_version, kind))
    return missing


def check_bundle(needs: dict, install: list[str], bundle: dict[str, list[dict]]) -> None:
    """Offline: each manifest to install defines the CRDs of every kind the objects need of it."""
    problems = []
    for name in install:
        lacking = [k for k in needs.get(name, []) if k not in catalogue.crd_kinds(bundle[name])]
        if lacking:
            problems.append(f"install: {name}'s manifest defines no CRD serving {describe(lacking)}")
    if problems:
        raise ValidationError("\n".join(problems))


def deployments_available(client, objects: list[dict], timeout: float, interval: float = 2.0) -> list[str]:
    """Wait until every Deployment among ``objects`` reports Available; return those that do not."""
    wanted = [(o["metadata"].get("namespace") or "default", o["metadata"]["name"])
              for o in objects if o.get("kind") == "Deployment" and o.get("apiVersion") == "apps/v1"]
    deadline = time.monotonic() + timeout
    while True:
        waiting = []
        for namespace, name in wanted:
            live = client.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", allow=(404,))
            conditions = {c.get("type"): c for c in ((live or {}).get("status") or {}).get("conditions") or []}
            available = conditions.get("Available", {})
            if available.get("status") != "True":
                why = available.get("message") or ("not found" if live is None else "no Available condition yet")
                waiting.append(f"{namespace}/{name}: {why}")
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def converge(client, needs: dict, install: list[str], bundle: dict[str, list[dict]], *, set_namespace: str,
             check_mode: bool, want_diff: bool, wait_timeout: float) -> dict:
    """Install each of ``install`` as its own ApplySet (``controller-<name>``, shared by every role
    that installs it), then check that every kind ``needs`` (catalogue.needed) names is served."""
    installed, changed, diffs = {}, False, []
    for name in install:
        objects, hooks = split_hooks(bundle[name])
        engine = Engine(client, check_mode=check_mode, want_diff=want_diff, wait_timeout=wait_timeout)
        result = engine.converge(f"controller-{name}", set_namespace, objects, "overridden",
                                 default_namespace="default")
        changed = changed or result["changed"]
        diffs.extend(result.get("diff") or [])
        installed[name] = {"summary": result["summary"], "results": result["results"]}
        if hooks and result["changed"]:
            installed[name]["hooks"] = _run_hooks(client, f"controller-{name}-hooks", set_namespace, hooks,
                                                  check_mode, wait_timeout)
        if not check_mode:
            waiting = deployments_available(client, bundle[name], wait_timeout)
            if waiting:
                raise FabricError(f"{catalogue.BY_NAME[name].title} was installed, but not every Deployment "
                                  f"is Available after {wait_timeout:g}s:\n- " + "\n- ".join(waiting))
    discovery = Engine(client).discovery
    discovery.invalidate()
    missing, pending = {}, []
    for name, kinds in needs.items():
        unserved = _unserved(discovery, kinds)
        if unserved and check_mode and name in install:
            pending.extend(unserved)  # the install above would serve them (plan checked the CRDs)
        elif unserved:
            missing[name] = unserved
    report = [{"name": name, "title": catalogue.BY_NAME[name].title, "kinds": [describe([k]) for k in kinds],
               "installed": name in install, "served": name not in missing}
              for name, kinds in needs.items()]
    if missing:
        raise ValidationError(
            "the objects need controllers this cluster does not serve; nothing of the role was applied:\n- "
            + "\n- ".join(f"{catalogue.BY_NAME[n].title}: {describe(k)}"
                          + (f" (the role can install it from the air-gap bundle: name {n} in its controllers list)"
                             if catalogue.BY_NAME[n].manifest else "")
                          for n, k in missing.items()), needed=report)
    return {"changed": changed, "needed": report, "installed": installed,
            "pending_kinds": [{"apiVersion": a, "kind": k} for a, k in pending], **({"diff": diffs} if diffs else {})}
