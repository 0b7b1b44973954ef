"""The engine's write waves: which wave writes each object, and which objects a wave unlocks
for their dry run (the rest are all dry-run before the first write)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import WAVES, Item, waves

RBAC = "rbac.authorization.k8s.io/v1"


def item(api_version, kind, name, namespace=None, live=None, served=True, **fields):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    out = Item({"apiVersion": api_version, "kind": kind, "metadata": meta, **fields})
    out.rtype = object() if served else None
    out.live = live
    out.action = "update" if live else "create"
    return out


def names(wave):
    return [i.obj["kind"] + "/" + i.name for i in wave]


def test_each_object_is_written_in_its_wave_and_the_waves_run_in_order():
    objects = [
        item("v1", "ConfigMap", "settings", "shop"),
        item(RBAC, "RoleBinding", "to-new", "shop", roleRef={"kind": "Role", "name": "reader"}),
        item(RBAC, "Role", "reader", "shop"),
        item(RBAC, "ClusterRoleBinding", "to-old", roleRef={"kind": "ClusterRole", "name": "view"}),
        item("example.com/v1", "Gadget", "g", "shop", served=False),
        item("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.example.com"),
        item("v1", "Namespace", "shop"),
        item(RBAC, "ClusterRole", "existing", live={"kind": "ClusterRole"}),
        item(RBAC, "ClusterRoleBinding", "to-existing", roleRef={"kind": "ClusterRole", "name": "existing"}),
    ]
    writes, unlocks = waves(objects)
    assert [wave[0] for wave in WAVES] == ["foundation", "roles", "bindings", "rest"]
    assert names(writes["foundation"]) == ["CustomResourceDefinition/gadgets.example.com", "Namespace/shop"]
    assert names(writes["roles"]) == ["Role/reader", "ClusterRole/existing"]
    assert names(writes["bindings"]) == ["RoleBinding/to-new", "ClusterRoleBinding/to-old", "ClusterRoleBinding/to-existing"]
    assert names(writes["rest"]) == ["ConfigMap/settings", "Gadget/g"]
    # Dry-run only once a wave is written: the custom kind after the CRDs, the binding to a role
    # this set creates after the roles. A binding to a live or foreign role is dry-run up front.
    assert names(unlocks["foundation"]) == ["Gadget/g"]
    assert names(unlocks["roles"]) == ["RoleBinding/to-new"]
    assert unlocks["bindings"] == unlocks["rest"] == []


def test_a_role_of_the_same_name_in_another_namespace_does_not_hold_a_binding_back():
    objects = [item(RBAC, "Role", "reader", "one"),
               item(RBAC, "RoleBinding", "b", "two", roleRef={"kind": "Role", "name": "reader"}),
               item(RBAC, "ClusterRoleBinding", "c", roleRef={"kind": "ClusterRole", "name": "reader"})]
    _writes, unlocks = waves(objects)
    assert unlocks["roles"] == []


def test_an_unchanged_binding_waits_for_nothing():
    binding = item(RBAC, "RoleBinding", "b", "one", roleRef={"kind": "Role", "name": "reader"})
    binding.action = "unchanged"
    _writes, unlocks = waves([item(RBAC, "Role", "reader", "one"), binding])
    assert unlocks["roles"] == []


def test_an_outcome_is_one_of_not_sent_written_failed():
    one = item("v1", "ConfigMap", "c", "shop")
    assert one.outcome is None and one.pending
    one.fail("invalid")
    assert (one.outcome, one.error) == ("failed", "invalid")
