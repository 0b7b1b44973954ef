# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set membership the KEP-3659 (ApplySet) way, so ``kubectl apply --prune --applyset`` can
read our sets: a parent Secret labelled with the set's id, members labelled part-of that id,
and the parent annotated with the group-kinds and namespaces the members live in."""

from __future__ import annotations

import base64
import hashlib

ID_LABEL = "applyset.kubernetes.io/id"
PART_OF_LABEL = "applyset.kubernetes.io/part-of"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
GROUP_KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
TOOLING = "k8snet.fabric/v0.1.0"


def applyset_id(name: str, namespace: str, kind: str = "Secret", group: str = "") -> str:
    """The id kubectl computes for a parent: base64url(sha256(name.namespace.kind.group))."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def split_list(value: str | None) -> set[str]:
    return {item.strip() for item in (value or "").split(",") if item.strip()}


def parent_object(name: str, namespace: str, group_kinds: set[str], namespaces: set[str]) -> dict:
    """The parent Secret declaring what the set may contain (sorted, comma separated)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {ID_LABEL: applyset_id(name, namespace)},
            "annotations": {
                TOOLING_ANNOTATION: TOOLING,
                GROUP_KINDS_ANNOTATION: ",".join(sorted(group_kinds)),
                NAMESPACES_ANNOTATION: ",".join(sorted(namespaces - {namespace})),
            },
        },
    }


def parent_scope(parent: dict | None) -> tuple[set[str], set[str]]:
    """(group-kinds, additional namespaces) a live parent records."""
    annotations = ((parent or {}).get("metadata") or {}).get("annotations") or {}
    return (split_list(annotations.get(GROUP_KINDS_ANNOTATION)),
            split_list(annotations.get(NAMESPACES_ANNOTATION)))


def check_tooling(parent: dict | None) -> str | None:
    """An error text when the parent belongs to another tool (kubectl's own rule)."""
    annotations = ((parent or {}).get("metadata") or {}).get("annotations") or {}
    tooling = annotations.get(TOOLING_ANNOTATION)
    if parent and tooling and not tooling.startswith("k8snet.fabric/"):
        return (f"set parent Secret {parent['metadata'].get('namespace')}/"
                f"{parent['metadata']['name']} is managed by {tooling!r}, not k8snet.fabric")
    return None
