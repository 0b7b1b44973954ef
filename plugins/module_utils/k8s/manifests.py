# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline work on manifests: read multi-document YAML, write it, validate built-in kinds."""

from __future__ import annotations

import filecmp
import functools
import json
import os
import stat

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import diff
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# API groups Kubernetes itself serves; kubernetes-validate matches schemas by the group's first
# label, so a custom group such as networking.istio.io must never be looked up there.
BUILTIN_GROUPS = frozenset({
    "", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "apps",
    "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io", "node.k8s.io", "policy", "rbac.authorization.k8s.io", "resource.k8s.io",
    "scheduling.k8s.io", "storage.k8s.io",
})


@functools.lru_cache(maxsize=1)
def _yaml():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    # PyYAML reads a bare `=` as YAML 1.1's value tag and fails; Go's YAML (kubectl, the API
    # server) reads the string it is - the Prometheus Operator's CRDs list `=` among operators.
    loader = type("KubernetesLoader", (base,), {"yaml_implicit_resolvers": {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
        for first, resolvers in base.yaml_implicit_resolvers.items()}})
    return yaml, loader, getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def parse(text: str, origin: str = "content") -> list[dict]:
    """Every non-empty document; a ``kind: List`` is flattened into its items. JSON (one
    object, or an array of objects as ``kubectl apply -f`` takes it) is read as JSON: 20 times
    faster than through the YAML parser, which matters at thousands of objects."""
    docs = _json_documents(text) if text.lstrip()[:1] in ("{", "[") else None
    if docs is None:
        yaml, loader, _unused = _yaml()
        try:
            docs = list(yaml.load_all(text, Loader=loader))
        except yaml.YAMLError as exc:
            raise ValidationError(f"{origin}: not valid YAML: {exc}") from exc
    out = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValidationError(f"{origin}: document {index} is a {type(doc).__name__}, not an object")
        out.extend(_items(doc))
    return out


def _json_documents(text: str):
    """The documents of a JSON text (an array's items are documents), or None when it is not JSON
    (YAML flow style also starts with { or [: the YAML parser decides then)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, list) else [doc]


def _items(doc: dict) -> list[dict]:
    """A document's objects: ``kind: List`` (kubectl) and the API's typed lists (``PodList``,
    ``NetworkPolicyList``, ...), whose items carry no kind or apiVersion, are flattened."""
    kind = str(doc.get("kind") or "")
    if not (kind.endswith("List") and isinstance(doc.get("items"), list)):
        return [doc]
    if kind == "List":
        return list(doc["items"])
    item_kind = kind[: -len("List")]
    return [{"apiVersion": doc.get("apiVersion"), "kind": item_kind, **item} if isinstance(item, dict) else item
            for item in doc["items"]]


def is_kubernetes(doc) -> bool:
    return isinstance(doc, dict) and bool(doc.get("kind")) and bool(doc.get("apiVersion"))


def load(paths: list[str], warnings: list[str] | None = None) -> list[dict]:
    """Objects from files and directories (sorted walk, YAML/JSON files only). With a
    ``warnings`` list, a file found in a directory that is not Kubernetes YAML (a values file,
    a kustomization, broken YAML) is skipped with a warning there instead of failing the load;
    a file named explicitly must always be Kubernetes."""
    objects = []
    for path in paths:
        walked = os.path.isdir(path)
        if walked:
            files = sorted(os.path.join(root, f) for root, _unused, names in os.walk(path)
                           for f in names if f.endswith(MANIFEST_SUFFIXES))
        elif os.path.exists(path):
            files = [path]
        else:
            raise ValidationError(f"src: {path!r} does not exist")
        for name in files:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
            try:
                found = parse(text, origin=name)
            except ValidationError as exc:
                if not (walked and warnings is not None):
                    raise
                warnings.append(f"skipped {name}: {exc}")
                continue
            foreign = [doc for doc in found if not is_kubernetes(doc)]
            if foreign and walked and warnings is not None:
                warnings.append(f"skipped {len(foreign)} non-Kubernetes document(s) in {name} (no kind/apiVersion)")
                found = [doc for doc in found if is_kubernetes(doc)]
            objects.extend(found)
    return objects


def dump(objects: list[dict]) -> str:
    yaml, _unused, dumper = _yaml()
    return "".join("---\n" + yaml.dump(o, Dumper=dumper, sort_keys=False, default_flow_style=False)
                   for o in objects)


def for_file(obj: dict) -> dict:
    """What a rendered file shows: Secret values redacted (render output is for review)."""
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
        keys = list((obj.get("data") or {})) + list((obj.get("stringData") or {}))
        out = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
        if keys:
            out["stringData"] = {k: diff.REDACTED for k in keys}
        return out
    return obj


def write(objects: list[dict], dest: str, check_mode: bool = False) -> dict:
    """Write the objects as one multi-document YAML file (Secret values redacted). Returns
    ``changed`` and the file's text ``before`` (None when new) and ``after``; in check mode
    nothing is written, the answer says what a run would do."""
    return write_text(dest, dump([for_file(o) for o in objects]), check_mode)


def write_text(dest: str, text: str, check_mode: bool = False, mode: int | None = None) -> dict:
    """Write ``text`` to ``dest`` (atomically, folders made) when it or the file's ``mode``
    differs. Returns ``changed``, the file's text ``before`` (None when new) and ``after``;
    in check mode nothing is written."""
    try:
        with open(dest, encoding="utf-8") as handle:
            before = handle.read()
        same_mode = mode is None or stat.S_IMODE(os.stat(dest).st_mode) == mode
    except OSError:
        before, same_mode = None, False
    if before == text and same_mode:
        return {"changed": False, "before": before, "after": text}
    if not check_mode:
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        tmp = dest + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, dest)
    return {"changed": True, "before": before, "after": text}


def write_streamed(dest: str, produce) -> bool:
    """Write a file too large to hold as text: ``produce(handle)`` writes it into a temporary
    file beside ``dest``, which replaces ``dest`` only when the bytes differ. Returns changed."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = dest + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            produce(handle)
        if os.path.exists(dest) and filecmp.cmp(tmp, dest, shallow=False):
            return False
        os.replace(tmp, dest)
        return True
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def validate_offline(objects: list[dict], kubernetes_version: str) -> list[dict]:
    """Schema-check built-in kinds for one Kubernetes version; custom kinds are reported as
    not checked (no schema offline). Returns one entry per object."""
    report, problems = [], []
    for obj in objects:
        label = diff.describe(obj)
        if diff.identity(obj)[0] not in BUILTIN_GROUPS:
            report.append({"object": label, "schema": "not checked (custom resource)"})
            continue
        schema, problem = _schema_verdict(json.dumps(diff.to_wire(obj), sort_keys=True, default=str), kubernetes_version)
        if problem:
            problems.append(f"{label}: {problem}")
        else:
            report.append({"object": label, "schema": schema})
    if problems:
        raise ValidationError("rendered objects fail the Kubernetes schema:\n- " + "\n- ".join(problems))
    return report


@functools.lru_cache(maxsize=16384)
def _schema_verdict(text: str, kubernetes_version: str) -> tuple[str, str | None]:
    """(schema entry, problem) for one object's JSON text. Cached: the sites of a fleet share most
    of their objects word for word, and each schema check costs milliseconds."""
    try:
        import kubernetes_validate
        from kubernetes_validate import utils
        from kubernetes_validate.utils import SchemaNotFoundError, VersionNotSupportedError
    except ImportError as exc:
        raise ValidationError(f"rendered: the kubernetes-validate package is required ({exc})") from exc
    if not hasattr(utils.schema_contents, "cache_info"):
        # kubernetes-validate reads its schema files (the definitions are megabytes) again for
        # every object: 20 ms an object, most of a fleet render; and it lists its schema folders
        # twice per object (a quarter of what is left). Neither changes in a process: read once.
        utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)
        utils.all_versions = functools.lru_cache(maxsize=None)(utils.all_versions)
    try:
        kubernetes_validate.validate(json.loads(text), kubernetes_version, strict=True)
        return "valid", None
    except SchemaNotFoundError:
        return "not checked (kind unknown to this version)", None
    except VersionNotSupportedError as exc:
        raise ValidationError(f"kubernetes_version: {kubernetes_version!r} is not supported "
                              f"by kubernetes-validate ({exc})") from exc
    except kubernetes_validate.ValidationError as exc:
        return "", f"{'/'.join(str(p) for p in exc.path) or '(root)'}: {exc.message}"
