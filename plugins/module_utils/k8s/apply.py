# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The converge engine: validate everything, then apply, prune or delete a named set.

Order of work for the writing states (merged, replaced, overridden):

1. local checks (shape, scope, duplicates, known kinds) -> ValidationError, nothing sent;
2. read the live set: one LIST per (kind, namespace), in parallel;
3. plan: an object whose declared fields and declared-hash match the live one is unchanged
   and costs nothing more;
4. validate: every create/update is sent as a server-side dry run; any failure fails the run
   listing every failing object, before a single write (check mode stops here). Two kinds of
   object cannot be dry-run yet: those of kinds this set's CRDs define, and bindings to roles
   this set creates (the apiserver checks a binding against its role). Each is validated as
   soon as the wave it depends on is written, before anything after that wave;
5. write in waves (WAVES): foundation (Namespaces and CRDs, then wait until Active/Established;
   then the set's parent), roles, bindings, the rest; then prune (overridden), members before
   namespaces and CRDs; then the parent's final scope.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import applyset, catalogue, diff
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import NOT_TRANSIENT_500
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.discovery import (
    Discovery,
    ResourceType,
    split_api_version,
)
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import (
    ApiError,
    DiscoveryError,
    FabricError,
    ValidationError,
)

FIELD_MANAGER = "k8snet.fabric"
APPLY_PATCH = "application/apply-patch+yaml"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
WRITING_STATES = ("merged", "replaced", "overridden")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
STAND_IN_NAMESPACE = "default"


class SetError(FabricError):
    """A run that failed; ``details["results"]`` says what happened to every object."""

    def __init__(self, message: str, results: list[dict], **details):
        super().__init__(message, results=results, **details)


ROLE_KINDS = ("ClusterRole", "Role")
BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")
# The waves a writing run goes through, in order: what a failure in its writes is said to happen
# "while", and what a failure of the dry runs it unlocks is said to happen "while" (see waves()).
WAVES = (("foundation", "while creating namespaces/CRDs", "validating kinds defined by this set's CRDs"),
         ("roles", "while creating roles", "validating bindings to the roles this set creates"),
         ("bindings", "while applying", None), ("rest", "while applying", None))


class Item:
    """One declared object on its way through the plan: what it is, what the cluster holds,
    what the plan does with it (``action``) and what came of it (``outcome``)."""

    __slots__ = ("obj", "rtype", "live", "action", "after", "outcome", "error")

    def __init__(self, obj: dict):
        self.obj = obj
        self.rtype: ResourceType | None = None  # None: a kind this set's CRDs define, not served yet
        self.live: dict | None = None
        self.action = "unchanged"  # create, update, unchanged, absent
        self.after: dict | None = None  # the server's answer: of the dry run, then of the write
        self.outcome: str | None = None  # None (not sent), "written" or "failed" (``error`` says why)
        self.error: str | None = None

    @property
    def key(self):
        return diff.identity(self.obj)

    @property
    def namespace(self) -> str:
        return self.obj["metadata"].get("namespace") or ""

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def pending(self) -> bool:
        return self.action in ("create", "update")

    def fail(self, message: str) -> None:
        self.outcome, self.error = "failed", message


def waves(items: list[Item]) -> tuple[dict[str, list[Item]], dict[str, list[Item]]]:
    """The items each wave writes, and those each wave's write unlocks for validation: the
    objects of kinds the foundation's CRDs define, the bindings to roles the roles wave creates."""
    new_roles = {(i.obj["kind"], i.namespace, i.name) for i in items if i.obj["kind"] in ROLE_KINDS and not i.live}

    def to_new_role(item: Item) -> bool:
        ref = item.obj.get("roleRef") or {}
        return item.pending and (ref.get("kind"), item.namespace if ref.get("kind") == "Role" else "",
                                 ref.get("name")) in new_roles

    writes: dict[str, list[Item]] = {wave[0]: [] for wave in WAVES}
    unlocks: dict[str, list[Item]] = {wave[0]: [] for wave in WAVES}
    for item in items:
        kind = item.obj["kind"]
        if diff.is_foundation(item.obj):
            writes["foundation"].append(item)
        elif kind in ROLE_KINDS:
            writes["roles"].append(item)
        elif kind in BINDING_KINDS:
            writes["bindings"].append(item)
            if to_new_role(item):
                unlocks["roles"].append(item)
        else:
            writes["rest"].append(item)
            if item.rtype is None:
                unlocks["foundation"].append(item)
    return writes, unlocks


def _result(obj: dict, result: str, message: str | None = None) -> dict:
    group, kind, namespace, name = diff.identity(obj)
    out = {"apiVersion": obj.get("apiVersion"), "kind": kind, "namespace": namespace or None,
           "name": name, "result": result}
    if message:
        out["message"] = message
    return out


class Engine:
    """Converges named sets of objects on one cluster through one Client."""

    def __init__(self, client, *, workers: int = 8, force_conflicts: bool = False,
                 check_mode: bool = False, want_diff: bool = False, wait_timeout: float = 60.0,
                 field_manager: str = FIELD_MANAGER, discovery: Discovery | None = None,
                 only_existing: bool = False, await_kinds: float = 0.0, pending_kinds=(),
                 pending_namespaces=()):
        self.client = client
        self.discovery = discovery or Discovery(client)
        self.workers = max(1, workers)
        self.force = force_conflicts
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.wait_timeout = wait_timeout
        self.field_manager = field_manager
        self.only_existing = only_existing  # patch what exists, never create (Node labels)
        # Seconds to wait for kinds another installer is defining (K3s applying a release
        # manifest with CRDs); 0: a kind that is not served is an error at once.
        self.await_kinds = await_kinds
        # (apiVersion, kind) pairs whose CRDs an earlier task installs (in check mode it only
        # would): their objects wait for them like those of this set's own CRDs.
        self.pending_kinds = {(k["apiVersion"], k["kind"]) for k in pending_kinds}
        # Namespaces an earlier task creates; only check mode, where it did not, looks at them.
        self.pending_namespaces = set(pending_namespaces) if check_mode else set()
        self.timings: dict[str, float] = {}
        self._secrets: set[str] = set()
        self._patch_type: dict[ResourceType, str] = {}
        # (type, namespace) -> items of an unfiltered LIST made this run; prune reuses them.
        self._listed: dict[tuple, list[dict]] = {}

    # ------------------------------------------------------------------------------------
    # helpers
    def _map(self, fn, items):
        items = list(items)
        if len(items) <= 1 or self.workers == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))

    def _timed(self, label: str, started: float) -> None:
        self.timings[label] = round(self.timings.get(label, 0) + time.monotonic() - started, 3)

    def explain(self, obj: dict, exc: Exception) -> str:
        """One line naming the object and what the server (or we) objected to."""
        label = diff.describe(obj)
        if isinstance(exc, ApiError):
            message = exc.message
            if exc.status == 409 and exc.reason == "Conflict" and exc.causes:
                fields = []
                for cause in exc.causes:
                    manager = re.search(r'conflict with "([^"]+)"', cause.get("message", ""))
                    fields.append(f"{cause.get('field', '?')} (owned by field manager "
                                  f"{manager.group(1) if manager else '?'})")
                text = (f"{label}: conflict on {', '.join(fields)}; set force_conflicts: true to "
                        f"take these fields over")
            elif exc.status == 403 and " cannot " in message:
                text = f"{label}: forbidden by RBAC: {message}"
            elif exc.status == 403:
                text = f"{label}: forbidden: {message}"
            elif exc.status == 404 and "namespaces" in message and "not found" in message:
                text = (f"{label}: namespace {obj['metadata'].get('namespace')!r} does not exist "
                        f"(declare it in this set or create it first)")
            elif exc.status in (400, 422) or (exc.status == 500 and message.startswith(NOT_TRANSIENT_500)):
                text = f"{label}: invalid: {message}"
            else:
                text = f"{label}: {exc.status} {exc.reason}: {message}"
        else:
            text = f"{label}: {exc}"
        return diff.scrub(text, self._secrets)

    # ------------------------------------------------------------------------------------
    # 1. local checks
    def prepare(self, objects: list[dict], default_namespace: str | None) -> list[Item]:
        """Shape, scope and duplicate checks, and kind resolution. Raises before any write."""
        started = time.monotonic()
        problems: list[str] = []
        items: list[Item] = []
        # Kinds this set's CRDs serve, and (check mode) kinds an earlier task's CRDs would serve.
        crd_kinds = catalogue.crd_kinds(objects) | self.pending_kinds
        for index, raw in enumerate(objects):
            where = f"objects[{index}]"
            shape = shape_problem(raw, where)
            if shape:
                problems.append(shape)
                continue
            meta = raw["metadata"]
            obj = diff.to_wire(raw)
            item = Item(obj)
            try:
                item.rtype = self.discovery.resolve(obj["apiVersion"], obj["kind"])
            except DiscoveryError as exc:
                if (obj["apiVersion"], obj["kind"]) in crd_kinds:
                    item.rtype = None  # a kind this set's CRDs define: resolved once the foundation wave wrote them
                elif self.await_kinds > 0:
                    try:
                        item.rtype = self.await_kind(obj["apiVersion"], obj["kind"], self.await_kinds)
                    except DiscoveryError as late:
                        problems.append(f"{where} {diff.describe(obj)}: {late} (still not served after "
                                        f"waiting {self.await_kinds:g}s for its CRD to be installed)")
                        continue
                else:
                    problems.append(f"{where} {diff.describe(obj)}: {exc}")
                    continue
            namespaced = item.rtype.namespaced if item.rtype else True
            if namespaced and not meta.get("namespace"):
                if default_namespace:
                    obj["metadata"]["namespace"] = default_namespace
                else:
                    problems.append(f"{where} {diff.describe(obj)}: metadata.namespace is required "
                                    f"for a namespaced kind (or set the namespace option)")
                    continue
            if not namespaced and meta.get("namespace"):
                problems.append(f"{where} {diff.describe(obj)}: {obj['kind']} is cluster-scoped; "
                                f"remove metadata.namespace ({meta['namespace']!r})")
                continue
            items.append(item)
        seen: dict = {}
        for item in items:
            if item.key in seen:
                problems.append(f"{diff.describe(item.obj)} is declared twice")
            seen[item.key] = item
        self._secrets = diff.secret_values(objects if isinstance(objects, list) else [])
        self._timed("prepare", started)
        if problems:
            raise ValidationError("invalid objects, nothing was changed:\n- " + "\n- ".join(
                diff.scrub(p, self._secrets) for p in problems), problems=problems)
        return items

    def stamp(self, items: list[Item], set_id: str, with_hash: bool) -> None:
        """Label every member with the set id and (for replaced/overridden) the declared hash."""
        for item in items:
            meta = item.obj["metadata"]
            meta["labels"] = {**(meta.get("labels") or {}), applyset.PART_OF_LABEL: set_id}
            if with_hash:
                meta["annotations"] = {**(meta.get("annotations") or {}),
                                       diff.HASH_ANNOTATION: diff.declared_hash(item.obj)}

    # ------------------------------------------------------------------------------------
    # 2. read
    def read_live(self, items: list[Item]) -> None:
        """One LIST per (kind, namespace) holding declared objects."""
        started = time.monotonic()
        groups: dict[tuple, list[Item]] = {}
        for item in items:
            if item.rtype is not None:
                groups.setdefault((item.rtype, item.namespace), []).append(item)

        def list_one(key):
            rtype, namespace = key
            listing = self.client.request("GET", rtype.path(namespace or None)).get("items", [])
            self._listed[key] = listing
            return key, {i["metadata"]["name"]: i for i in listing}

        for (rtype, namespace), live in self._map(list_one, groups):
            for item in groups[(rtype, namespace)]:
                found = live.get(item.name)
                if found is not None:
                    found.setdefault("apiVersion", rtype.api_version)
                    found.setdefault("kind", rtype.kind)
                item.live = found
        self._timed("read", started)

    # 3. plan
    def plan(self, items: list[Item], state: str) -> None:
        for item in items:
            if item.live is None:
                item.action = "absent" if self.only_existing else "create"
                continue
            if state == "merged":
                same = diff.contains(item.obj, item.live)
            else:
                live_hash = ((item.live.get("metadata") or {}).get("annotations") or {}).get(diff.HASH_ANNOTATION)
                same = live_hash == item.obj["metadata"]["annotations"][diff.HASH_ANNOTATION] and \
                    diff.contains(item.obj, item.live)
            item.action = "unchanged" if same else "update"
            if same:
                item.after = item.live

    # ------------------------------------------------------------------------------------
    # 4./5. requests for one object
    def _write(self, item: Item, state: str, dry_run: bool, stand_in: bool = False) -> dict:
        """Send one object; ``stand_in``: (a dry run) in the stand-in namespace, since its own
        does not exist yet."""
        # Strict: a field the schema lacks fails the dry run instead of being dropped with a warning.
        query = {"fieldManager": self.field_manager, "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        obj, namespace = item.obj, item.namespace
        about = diff.describe(obj)
        if stand_in:
            namespace = STAND_IN_NAMESPACE
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        path = item.rtype.path(namespace or None, item.name)
        if state != "merged":
            if self.force:
                query["force"] = "true"
            return self.client.request("PATCH", path, query=query, body=obj, content_type=APPLY_PATCH, about=about)
        if item.action == "create":
            return self.client.request("POST", item.rtype.path(namespace or None), query=query, body=obj, about=about)
        patch_type = self._patch_type.get(item.rtype, STRATEGIC_PATCH)
        try:
            return self.client.request("PATCH", path, query=query, body=obj, content_type=patch_type, about=about)
        except ApiError as exc:
            if exc.status != 415 or patch_type != STRATEGIC_PATCH:
                raise
            # Custom resources take no strategic merge patch: a JSON merge patch it is.
            self._patch_type[item.rtype] = MERGE_PATCH
            return self.client.request("PATCH", path, query=query, body=obj, content_type=MERGE_PATCH, about=about)

    def validate(self, items: list[Item], state: str, creating_namespaces: set[str]) -> list[Item]:
        """Dry-run every pending write; return the items that failed (their ``error`` says why)."""
        started = time.monotonic()
        pending = [i for i in items if i.pending]

        def dry_run(item: Item) -> None:
            # A namespace this run creates does not exist yet: validate in a stand-in one.
            stand_in = bool(item.namespace) and item.namespace in creating_namespaces
            try:
                after = self._write(item, state, dry_run=True, stand_in=stand_in)
                if stand_in:
                    after["metadata"]["namespace"] = item.namespace
                item.after = after
            except ApiError as exc:
                if stand_in and exc.status == 409:
                    item.after = item.obj  # a same-named object in the stand-in: not our error
                else:
                    item.fail(self.explain(item.obj, exc))
            except FabricError as exc:
                item.fail(self.explain(item.obj, exc))

        self._map(dry_run, pending)
        self._timed("validate", started)
        return [i for i in pending if i.outcome == "failed"]

    def _apply_items(self, items: list[Item], state: str) -> None:
        def apply_one(item: Item) -> None:
            try:
                item.after = self._write(item, state, dry_run=False)
                item.outcome = "written"
            except FabricError as exc:
                item.fail(self.explain(item.obj, exc))

        self._map(apply_one, [i for i in items if i.pending])

    def await_kind(self, api_version: str, kind: str, timeout: float | None = None) -> ResourceType:
        """The type of a kind a CRD defines (of this run, or of another installer). A CRD is
        Established a moment before discovery lists its kinds (kube-rs#951 documents the gap),
        so discovery is asked again until the kind is served or the timeout (wait_timeout by
        default) passes."""
        deadline = time.monotonic() + (self.wait_timeout if timeout is None else timeout)
        while True:
            try:
                return self.discovery.resolve(api_version, kind)
            except DiscoveryError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
            self.discovery.invalidate()

    def _absent(self, namespaces: set[str]) -> set[str]:
        """Those of ``namespaces`` the cluster does not hold."""
        def absent(name: str) -> bool:
            return self.client.request("GET", f"/api/v1/namespaces/{name}", allow=(404,)) is None

        return {name for name, gone in zip(sorted(namespaces), self._map(absent, sorted(namespaces))) if gone}

    def _settle_foundation(self, items: list[Item]) -> None:
        """Namespaces Active and CRDs Established before anything depends on them; discovery
        asked again once CRDs were written (their kinds are new)."""
        if any(i.obj["kind"] == "CustomResourceDefinition" for i in items):
            self.discovery.invalidate()
        deadline = time.monotonic() + self.wait_timeout
        for item in items:
            if item.outcome != "written" or item.obj["kind"] not in ("Namespace", "CustomResourceDefinition"):
                continue
            while True:
                live = self.client.request("GET", item.rtype.path(None, item.name))
                if item.obj["kind"] == "Namespace":
                    ready = (live.get("status") or {}).get("phase") == "Active"
                else:
                    ready = any(c.get("type") == "Established" and c.get("status") == "True"
                                for c in (live.get("status") or {}).get("conditions") or [])
                if ready:
                    break
                if time.monotonic() > deadline:
                    item.fail(f"{diff.describe(item.obj)}: not ready after {self.wait_timeout}s")
                    break
                time.sleep(0.2)

    # ------------------------------------------------------------------------------------
    # set parent and members
    def _parent(self, name: str, namespace: str) -> dict | None:
        try:
            return self.client.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", allow=(404,))
        except ApiError as exc:
            ref = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}
            raise SetError(f"the set's parent cannot be read: {self.explain(ref, exc)}", []) from exc

    def _type_of(self, group_kind: str) -> ResourceType | None:
        kind, _unused, group = group_kind.partition(".")
        for (api_version, k), rtype in self.discovery._index().items():  # noqa: SLF001
            if k == kind and rtype.group == group:
                return rtype
        return None

    def members(self, set_id: str, group_kinds: set[str], namespaces: set[str]) -> list[tuple]:
        """(type, object) of every live object labelled part of the set, across its recorded scope."""
        queries = []
        for group_kind in sorted(group_kinds):
            rtype = self._type_of(group_kind)
            if rtype is None:
                continue  # the kind is gone (CRD deleted): nothing of it left to find
            targets = sorted(namespaces) if rtype.namespaced else [None]
            queries += [(rtype, ns) for ns in targets]

        def list_members(query):
            rtype, namespace = query
            listed = self._listed.get((rtype, namespace or ""))
            if listed is not None:  # already read whole this run: filter, don't ask again
                found = [o for o in listed
                         if ((o.get("metadata") or {}).get("labels") or {}).get(applyset.PART_OF_LABEL) == set_id]
            else:
                found = self.client.request("GET", rtype.path(namespace), query={
                    "labelSelector": f"{applyset.PART_OF_LABEL}={set_id}"}).get("items", [])
            for obj in found:
                obj.setdefault("apiVersion", rtype.api_version)
                obj.setdefault("kind", rtype.kind)
            return [(rtype, obj) for obj in found]

        seen, out = set(), []
        for batch in self._map(list_members, queries):
            for rtype, obj in batch:
                key = diff.identity(obj)
                if key not in seen:
                    seen.add(key)
                    out.append((rtype, obj))
        return out

    def _delete(self, rtype: ResourceType, obj: dict, dry_run: bool) -> str | None:
        query = {"propagationPolicy": "Background"}
        if dry_run:
            query["dryRun"] = "All"
        meta = obj["metadata"]
        try:
            found = self.client.request("DELETE", rtype.path(meta.get("namespace"), meta["name"]),
                                        query=query, allow=(404,))
            return None if found is None else "deleted"
        except FabricError as exc:
            raise SetError(self.explain(obj, exc), []) from exc

    # ------------------------------------------------------------------------------------
    # the states
    def converge(self, name: str, set_namespace: str, objects: list[dict], state: str,
                 default_namespace: str | None = None) -> dict:
        if state not in WRITING_STATES:
            raise ValidationError(f"state {state!r} does not converge; use one of {WRITING_STATES}")
        check_set_name(name, set_namespace)
        items = self.prepare(objects, default_namespace)
        set_id = applyset.applyset_id(name, set_namespace)
        self.stamp(items, set_id, with_hash=state != "merged")
        parent = self._parent(name, set_namespace)
        refusal = applyset.check_tooling(parent)
        if refusal:
            raise ValidationError(refusal)
        self.read_live(items)
        self.plan(items, state)
        self._refuse_adoption(items, set_id)
        writes, unlocks = waves(items)
        creating_namespaces = ({i.name for i in items if i.obj["kind"] == "Namespace" and not i.live}
                               | self._absent(self.pending_namespaces & {i.namespace for i in items}))
        later = {id(i) for wave in unlocks.values() for i in wave}
        failed = self.validate([i for i in items if id(i) not in later], state, creating_namespaces)
        self._abort_if_gone(items, "during validation (nothing was changed)")
        if failed:
            raise SetError(f"{len(failed)} of {len(items)} objects failed server-side validation; "
                           f"nothing was changed:\n- " + "\n- ".join(i.error for i in failed),
                           [self._item_result(i) for i in items])
        old_kinds, old_namespaces = applyset.parent_scope(parent)
        new_kinds = {i.rtype.group_kind if i.rtype else _group_kind(i.obj) for i in items}
        new_namespaces = {i.namespace for i in items if i.namespace} | {set_namespace}
        stale = []
        if state == "overridden":
            declared = {i.key for i in items}
            scope_ns = old_namespaces | new_namespaces | {set_namespace}
            # An object already being deleted (finalizers running, a namespace emptying) needs no
            # second delete: sending one would report a change on every run until it is gone.
            stale = [(rtype, o) for rtype, o in self.members(set_id, old_kinds, scope_ns)
                     if diff.identity(o) not in declared and not o["metadata"].get("deletionTimestamp")]
        if self.check_mode:
            for item in unlocks["roles"]:
                item.after = item.obj  # dry-run only once its role exists, in a real run
            return self._report(items, [o for _unused, o in stale])

        started = time.monotonic()
        for wave, failing, unlocked_failing in WAVES:
            self._apply_items(writes[wave], state)
            if wave == "foundation":
                self._settle_foundation(writes[wave])
            self._abort_on_errors(items, failing)
            if unlocks[wave]:
                self._validate_unlocked(unlocks[wave], state, items, unlocked_failing)
            if wave == "foundation":
                # The parent records the union of old and new scope before members change, so an
                # interrupted run still finds everything to prune next time.
                self._ensure_parent(parent, name, set_namespace, old_kinds | new_kinds,
                                    old_namespaces | new_namespaces)
        self._timed("apply", started)

        pruned = []
        if stale:
            started = time.monotonic()
            pruned = self._prune(stale)
            self._timed("prune", started)
        if state == "overridden":
            self._ensure_parent(self._parent(name, set_namespace), name, set_namespace,
                                new_kinds, new_namespaces)
        return self._report(items, pruned)

    def _validate_unlocked(self, unlocked: list[Item], state: str, items: list[Item], failing: str) -> None:
        """Dry-run what a written wave made possible: objects of kinds its CRDs define (resolved,
        read and planned first: they may exist already) and bindings to the roles it created."""
        unresolved = [i for i in unlocked if i.rtype is None]
        for item in unresolved:
            item.rtype = self.await_kind(item.obj["apiVersion"], item.obj["kind"])
        if unresolved:
            self.read_live(unresolved)
            self.plan(unresolved, state)
        if self.validate(unlocked, state, set()):
            self._abort_on_errors(items, failing)

    def _prune(self, stale: list[tuple]) -> list[dict]:
        """Delete what the set no longer declares."""
        return [obj for (_unused, obj), _unused in self._delete_in_order(stale, dry_run=False)]

    def _delete_in_order(self, targets: list[tuple], dry_run: bool) -> list[tuple[tuple, str | None]]:
        """Delete (type, object) pairs in parallel, namespaces and CRDs after what lives in them;
        return each pair with its outcome ("deleted", or None when it was already gone)."""
        members = [t for t in targets if not diff.is_foundation(t[1])]
        foundation = [t for t in targets if diff.is_foundation(t[1])]
        done = []
        for batch in (members, foundation):
            done += zip(batch, self._map(lambda t: self._delete(*t, dry_run=dry_run), batch))
        return done

    def _ensure_parent(self, live_parent, name, namespace, kinds, namespaces) -> None:
        wanted = applyset.parent_object(name, namespace, kinds, namespaces)
        if live_parent and diff.contains(wanted["metadata"], live_parent.get("metadata")):
            return
        self.client.request("PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}",
                            query={"fieldManager": self.field_manager, "force": "true"},
                            body=wanted, content_type=APPLY_PATCH)

    def _refuse_adoption(self, items: list[Item], set_id: str) -> None:
        """An object another set claims is not taken silently (kubectl's ApplySet rule too)."""
        if self.force:
            return
        claimed = []
        for item in items:
            owner = (((item.live or {}).get("metadata") or {}).get("labels") or {}).get(applyset.PART_OF_LABEL)
            if owner and owner != set_id:
                claimed.append(f"{diff.describe(item.obj)} belongs to another set ({owner})")
        if claimed:
            raise SetError(f"{len(claimed)} objects are part of another set; nothing was changed "
                           f"(set force_conflicts: true to move them into this one):\n- " + "\n- ".join(claimed),
                           [self._item_result(i) for i in items])

    def _abort_if_gone(self, items: list[Item], when: str) -> None:
        """The cluster stopped answering: say so once, with what was written, instead of one
        line per object that could not be sent."""
        if not self.client.gone:
            return
        written = [i for i in items if i.outcome == "written"]
        raise SetError(f"{self.client.gone}\nThe cluster went away {when}: {len(written)} of {len(items)} objects "
                       f"were written before it did; the rest were not sent. Nothing is left half-claimed: run "
                       f"again once it answers and the set converges from where it stopped.",
                       [self._item_result(i) for i in items])

    def _abort_on_errors(self, items: list[Item], when: str) -> None:
        self._abort_if_gone(items, when)
        failed = [i for i in items if i.outcome == "failed"]
        if failed:
            raise SetError(f"{len(failed)} objects failed {when}:\n- " + "\n- ".join(i.error for i in failed),
                           [self._item_result(i) for i in items])

    def _item_result(self, item: Item) -> dict:
        if item.outcome == "failed":
            return _result(item.obj, "failed", item.error)
        if item.action == "unchanged":
            return _result(item.obj, "unchanged")
        if item.action == "absent":
            return _result(item.obj, "skipped", "does not exist; only_existing leaves it absent")
        # A write the run did not get to (it stopped at a failure) is not reported as made;
        # check mode reports what a run would do, from the dry run.
        if item.after is None or (not self.check_mode and item.outcome != "written"):
            return _result(item.obj, "skipped", "not applied: the run stopped before it")
        return _result(item.obj, "created" if item.action == "create" else "configured")

    def _report(self, items: list[Item], pruned: list[dict]) -> dict:
        results = [self._item_result(i) for i in items]
        results += [_result(o, "pruned") for o in pruned]
        summary = {k: 0 for k in ("created", "configured", "unchanged", "pruned", "deleted", "failed")}
        for res in results:
            if res["result"] in summary:
                summary[res["result"]] += 1
        out = {
            "changed": any(r["result"] in ("created", "configured", "pruned") for r in results),
            "results": results,
            "summary": summary,
        }
        if self.want_diff:
            diffs = [diff.object_diff(i.live, i.after) for i in items if i.action in ("create", "update")]
            diffs += [diff.object_diff(o, None) for o in pruned]
            out["diff"] = diffs
        return out

    def delete(self, name: str, set_namespace: str, objects: list[dict],
               default_namespace: str | None = None) -> dict:
        """Delete the declared objects, or the whole set (and its parent) when none are."""
        check_set_name(name, set_namespace)
        parent = self._parent(name, set_namespace)
        if objects:
            items = self.prepare(objects, default_namespace)
            targets = [(i.rtype, i.obj) for i in items]
        else:
            refusal = applyset.check_tooling(parent)
            if refusal:
                raise ValidationError(refusal)
            kinds, namespaces = applyset.parent_scope(parent)
            targets = self.members(applyset.applyset_id(name, set_namespace), kinds, namespaces | {set_namespace})
        # Dry runs first: a delete the server would refuse stops the run before any delete.
        self._map(lambda t: self._delete(*t, dry_run=True), targets)
        done = self._delete_in_order(targets, dry_run=self.check_mode)
        results = [_result(obj, "deleted" if outcome else "absent") for (_unused, obj), outcome in done]
        if not objects and parent is not None and not self.check_mode:
            self.forget(name, set_namespace)
        summary = {"deleted": sum(r["result"] == "deleted" for r in results)}
        out = {"changed": summary["deleted"] > 0 or (not objects and parent is not None),
               "results": results, "summary": summary}
        if self.want_diff:
            out["diff"] = [diff.object_diff(obj, None) for (_unused, obj), _unused in done]
        return out

    def forget(self, name: str, set_namespace: str) -> bool:
        """Drop the set's parent (its record of members) and nothing else; True if it existed."""
        check_set_name(name, set_namespace)
        if self.check_mode:
            return self._parent(name, set_namespace) is not None
        return self.client.request("DELETE", f"/api/v1/namespaces/{set_namespace}/secrets/{name}",
                                   allow=(404,)) is not None

    def gather(self, name: str, set_namespace: str) -> dict:
        check_set_name(name, set_namespace)
        parent = self._parent(name, set_namespace)
        kinds, namespaces = applyset.parent_scope(parent)
        found = self.members(applyset.applyset_id(name, set_namespace), kinds, namespaces | {set_namespace})
        objects = [diff.redact(diff.clean_live(obj)) for _unused, obj in found]
        objects.sort(key=diff.identity)
        return {"changed": False, "gathered": objects}


def shape_problem(raw, where: str) -> str | None:
    """What makes ``raw`` no Kubernetes object at all, or None."""
    if not isinstance(raw, dict):
        return f"{where}: expected a mapping, got {type(raw).__name__}"
    missing = [f for f in ("apiVersion", "kind") if not isinstance(raw.get(f), str) or not raw.get(f)]
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("name"):
        missing.append("metadata.name")
    if missing:
        return f"{where} ({raw.get('kind', '?')}): missing {', '.join(missing)}"
    return None


def _group_kind(obj: dict) -> str:
    group, _unused = split_api_version(obj["apiVersion"])
    return f"{obj['kind']}.{group}" if group else obj["kind"]


def check_set_name(name: str, namespace: str) -> None:
    for label, value in (("name", name), ("set_namespace", namespace)):
        if not value or not DNS1123_SUBDOMAIN.match(value) or len(value) > 253:
            raise ValidationError(f"{label}: {value!r} is not a valid Kubernetes name "
                                  f"(lowercase letters, digits, '-' and '.')")
