# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions over objects: normalise, compare declared against live, hash, redact, diff.

No I/O here, so all of it is unit-tested without a cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation

HASH_ANNOTATION = "fabric.k8snet.io/declared-hash"
REDACTED = "<redacted>"
REDACTED_CHANGED = "<redacted: changed>"
# Keys whose values are credentials wherever they appear (kubeconfigs in ConfigMaps, CR specs...).
TOKEN_KEY = re.compile(
    r"(?i)^(.*[-_.])?(token|bearer[-_]?token|password|passwd|secret[-_]?key|api[-_]?key|"
    r"private[-_]?key|client[-_]key[-_]data|credentials?)$")
# Server-owned metadata never part of a comparison, a diff or a gathered result.
SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
                   "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[0-9]*)$")
_SUFFIX = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
           "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
           "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


# -- identity and ordering ------------------------------------------------------------------
def identity(obj: dict) -> tuple[str, str, str, str]:
    """(apiVersion group, kind, namespace, name): how a set tells its objects apart."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    meta = obj.get("metadata") or {}
    return group, obj.get("kind", ""), meta.get("namespace") or "", meta.get("name", "")


def describe(obj: dict) -> str:
    """``Kind namespace/name`` for messages."""
    _unused, kind, namespace, name = identity(obj)
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


# Kinds that must exist before anything else can be validated or applied.
FOUNDATION_KINDS = frozenset({("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")})


def is_foundation(obj: dict) -> bool:
    group, kind, _unused, _unused = identity(obj)
    return (group, kind) in FOUNDATION_KINDS


# -- normalisation ---------------------------------------------------------------------------
def copy_data(value):
    """A deep copy of JSON-shaped data (dicts, lists, immutable scalars); 5x copy.deepcopy's speed."""
    if isinstance(value, dict):
        return {k: copy_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_data(v) for v in value]
    return value


def to_wire(obj: dict) -> dict:
    """The form the engine sends and compares: Secret ``stringData`` folded into ``data``
    (the server never returns stringData, so comparing it would report changes forever)."""
    out = copy_data(obj)
    if out.get("kind") == "Secret" and out.get("apiVersion") == "v1" and out.get("stringData"):
        data = dict(out.get("data") or {})
        for key, value in out.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        out["data"] = data
    return out


def declared_hash(obj: dict) -> str:
    """A stable digest of what was declared (without the digest annotation itself)."""
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict) and HASH_ANNOTATION in annotations:
        annotations = {k: v for k, v in annotations.items() if k != HASH_ANNOTATION}
        obj = {**obj, "metadata": {**meta, "annotations": annotations}}
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def quantity(value) -> Decimal | None:
    """A Kubernetes resource quantity (10Gi, 500m, 1e3, 2k) as a number, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    number, suffix = match.groups()
    try:
        if suffix and suffix[0] in "eE" and suffix[1:].lstrip("+-").isdigit():
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (KeyError, InvalidOperation):
        return None


def _scalar_equal(want, have) -> bool:
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return want == have and isinstance(want, bool) and isinstance(have, bool)
    # Templating turns numbers into strings; the server stores ints ("80" -> 80).
    if isinstance(want, str) and isinstance(have, (int, float)):
        return want.strip() == str(have)
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return want == have
    # Resource quantities are canonicalised by the server ("1000m" -> "1", "0.5" -> "500m").
    if isinstance(want, (str, int, float)) and isinstance(have, str):
        a, b = quantity(want), quantity(have)
        return a is not None and b is not None and a == b
    return False


def _empty(value) -> bool:
    return value is None or value == {} or value == []


def contains(want, have) -> bool:
    """True when every field of ``want`` is present in ``have`` with an equal value.

    Maps: a subset. Lists: same length, item by item (the server does not reorder declared
    lists). Empty maps/lists/None declared where the server stores nothing are equal: that is
    how ``egress: [{}]`` and ``labels: {}`` stay unchanged on a second run.
    """
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return _empty(want) and _empty(have)
        return all(contains(v, have.get(k)) if k in have else _empty(v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list):
            return _empty(want) and _empty(have)
        return len(want) == len(have) and all(contains(w, h) for w, h in zip(want, have))
    if want is None:
        return True
    return _scalar_equal(want, have)


def clean_live(obj: dict, keep_status: bool = False) -> dict:
    """A live object without server bookkeeping, for results and diffs."""
    out = copy_data(obj)
    meta = out.get("metadata") or {}
    for key in SERVER_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations")
    if annotations is not None:
        annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
        if not annotations:
            meta.pop("annotations")
    if not keep_status:
        out.pop("status", None)
    return out


# -- redaction --------------------------------------------------------------------------------
def _is_secret(obj: dict) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion", "")) == "v1"


def _redact_tree(value, other=None):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            counterpart = other.get(key) if isinstance(other, dict) else None
            if isinstance(key, str) and TOKEN_KEY.match(key) and not isinstance(item, (dict, list)):
                out[key] = _mask(item, counterpart, other is not None)
            else:
                out[key] = _redact_tree(item, counterpart)
        return out
    if isinstance(value, list):
        others = other if isinstance(other, list) else []
        return [_redact_tree(v, others[i] if i < len(others) else None) for i, v in enumerate(value)]
    return value


def _mask(value, counterpart, compared: bool) -> str:
    if compared and counterpart is not None and counterpart != value:
        return REDACTED_CHANGED
    return REDACTED


def redact(obj, other: dict | None = None):
    """A copy safe to log: Secret data/stringData values and token-like fields masked.

    With ``other`` (the object it is compared with), a masked value that differs says so, so a
    diff still shows *that* a secret changed, never *what* it is.
    """
    if not isinstance(obj, dict):
        return obj
    out = _redact_tree(obj, other)
    if _is_secret(obj):
        for field in ("data", "stringData"):
            if isinstance(obj.get(field), dict):
                theirs = (other or {}).get(field) if isinstance(other, dict) else None
                theirs = theirs if isinstance(theirs, dict) else {}
                out[field] = {k: _mask(v, theirs.get(k), other is not None)
                              for k, v in obj[field].items()}
    return out


def secret_values(objects: list[dict]) -> set[str]:
    """Every Secret value declared (plain and base64), to scrub from server error messages."""
    found: set[str] = set()
    for obj in objects:
        if not _is_secret(obj):
            continue
        for value in (obj.get("stringData") or {}).values():
            found.add(str(value))
            found.add(base64.b64encode(str(value).encode()).decode())
        for value in (obj.get("data") or {}).values():
            found.add(str(value))
            try:
                found.add(base64.b64decode(str(value)).decode())
            except (ValueError, UnicodeDecodeError):
                pass
    return {v for v in found if len(v) >= 4}


def scrub(text: str, secrets: set[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


# -- diff -------------------------------------------------------------------------------------
def to_yaml(obj) -> str:
    import yaml  # imported late: module_utils must load without it for argument errors

    if obj is None:
        return ""
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)


def object_diff(before: dict | None, after: dict | None) -> dict:
    """One Ansible diff entry (before/after YAML with headers), redacted."""
    ref = after or before or {}
    label = describe(ref)
    before_clean = clean_live(before) if before else None
    after_clean = clean_live(after) if after else None
    for side in (before_clean, after_clean):
        if side:
            side.get("metadata", {}).get("annotations", {}).pop(HASH_ANNOTATION, None)
            if side.get("metadata", {}).get("annotations") == {}:
                side["metadata"].pop("annotations")
    return {
        "before_header": f"{label} (live)" if before else f"{label} (absent)",
        "after_header": f"{label} (declared)" if after else f"{label} (deleted)",
        "before": to_yaml(redact(before_clean, after_clean)) if before_clean else "",
        "after": to_yaml(redact(after_clean, before_clean)) if after_clean else "",
    }
