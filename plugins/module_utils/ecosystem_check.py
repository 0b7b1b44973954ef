# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ecosystems' own checkers over the objects a role is about to write.

``promtool check rules`` reads each PrometheusRule's groups exactly as the Prometheus Operator
hands them to Prometheus; ``istioctl analyze`` reads the Istio (and Gateway API, Kubernetes)
objects offline. Neither is a dependency of the collection: a checker that is not installed is
reported as not run, never as passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile


from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

CHECKERS = ("promtool", "istioctl")
TIMEOUT = 120


def find(checker: str, binary: str | None) -> str | None:
    """The checker's executable: the given path (which must exist), else the one on PATH."""
    if binary:
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise ValidationError(f"binary: {binary!r} is not an executable file")
        return binary
    return shutil.which(checker)


def object_name(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def _run(argv: list[str], cwd: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValidationError(f"{os.path.basename(argv[0])} did not finish within {TIMEOUT}s") from exc


def promtool(binary: str, objects: list[dict]) -> tuple[int, list[dict]]:
    """Check every PrometheusRule; (how many were checked, findings naming rule and error)."""
    import yaml  # ansible-core's own dependency, needed only when a checker runs

    rules = [o for o in objects if o.get("kind") == "PrometheusRule"
             and str(o.get("apiVersion", "")).startswith("monitoring.coreos.com/")]
    findings = []
    with tempfile.TemporaryDirectory(prefix="k8snet-promtool-") as tmp:
        for index, rule in enumerate(rules):
            path = os.path.join(tmp, f"rule-{index}.yaml")
            with open(path, "w", encoding="utf-8") as handle:
                yaml.safe_dump({"groups": (rule.get("spec") or {}).get("groups") or []}, handle)
            proc = _run([binary, "check", "rules", path], tmp)
            if proc.returncode != 0:
                text = (proc.stderr + proc.stdout).replace(path, object_name(rule))
                lines = [line.strip() for line in text.splitlines()
                         if line.strip() and not line.startswith("Checking ") and "FAILED" not in line]
                findings.append({"object": object_name(rule), "level": "error",
                                 "message": "; ".join(lines) or f"promtool exited {proc.returncode}"})
    return len(rules), findings


ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "gateway.networking.k8s.io")


def istioctl(binary: str, objects: list[dict]) -> tuple[int, list[dict]]:
    """``istioctl analyze -A --use-kube=false`` over the objects (all namespaces: without -A it
    looks at `default` only); findings carry Istio's code (IST0101, ...) and level."""
    import yaml  # ansible-core's own dependency, needed only when a checker runs

    with tempfile.TemporaryDirectory(prefix="k8snet-istioctl-") as tmp:
        path = os.path.join(tmp, "objects.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump_all(objects, handle)
        proc = _run([binary, "analyze", "-A", "--use-kube=false", "-o", "json",
                     "--failure-threshold", "Error", path], tmp)
        try:
            messages = json.loads(proc.stdout or "[]")
        except ValueError:
            raise ValidationError(f"istioctl analyze failed ({proc.returncode}): "
                                  f"{(proc.stderr or proc.stdout).strip()[-2000:]}") from None
    checked = sum(1 for o in objects if str(o.get("apiVersion", "")).split("/", maxsplit=1)[0] in ISTIO_GROUPS)
    findings = [{"object": (m.get("origin") or "").strip(), "level": (m.get("level") or "").lower(),
                 "code": m.get("code"), "message": m.get("message", "")} for m in messages or []]
    return checked, findings


def run(checker: str, objects: list[dict], binary: str | None = None) -> dict:
    """Run one checker; the result says whether it ran at all."""
    if checker not in CHECKERS:
        raise ValidationError(f"checker: {checker!r} is not one of {', '.join(CHECKERS)}")
    path = find(checker, binary)
    if not path:
        return {"checked": False, "binary": None, "checked_objects": 0, "findings": []}
    count, findings = (promtool if checker == "promtool" else istioctl)(path, objects)
    return {"checked": True, "binary": path, "checked_objects": count, "findings": findings}


def describe(findings: list[dict]) -> str:
    return "\n".join(f"- {f['object'] or '(no object)'}: {f['level']}"
                     f"{' ' + f['code'] if f.get('code') else ''}: {f['message']}" for f in findings)
