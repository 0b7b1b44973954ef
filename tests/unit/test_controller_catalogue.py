"""The controllers catalogue and the air-gap bundle check (pure parts of the controllers module)."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils import controllers
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import catalogue
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "shop"}}
POLICY = {"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "BackendTrafficPolicy", "metadata": {"name": "rl"}}
MONITOR = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "m"}}


def crd(group: str, kind: str, versions=("v1",)) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{kind.lower()}s.{group}"},
            "spec": {"group": group, "names": {"kind": kind, "plural": f"{kind.lower()}s"}, "scope": "Namespaced",
                     "versions": [{"name": v, "served": True, "storage": i == 0} for i, v in enumerate(versions)]}}


def test_objects_name_the_controllers_that_serve_their_groups():
    objects = [GATEWAY, POLICY, MONITOR, dict(GATEWAY, metadata={"name": "other"}),
               {"apiVersion": "v1", "kind": "Service"}, crd("example.com", "Widget")]
    assert catalogue.needed(objects) == {
        "envoy-gateway": [("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"),
                          ("gateway.networking.k8s.io/v1", "Gateway")],
        "prometheus-operator": [("monitoring.coreos.com/v1", "ServiceMonitor")],
    }
    assert catalogue.needed([{"apiVersion": "apps/v1", "kind": "Deployment"}]) == {}


def test_a_service_asking_metallb_for_addresses_needs_metallbs_pools():
    lb = {"apiVersion": "v1", "kind": "Service",
          "metadata": {"name": "lb", "annotations": {"metallb.io/loadBalancerIPs": "203.0.113.10"}}}
    assert catalogue.needed([lb]) == {"metallb": [("metallb.io/v1beta1", "IPAddressPool")]}


def test_every_installable_controller_has_a_bundle_file_and_every_group_one_controller():
    assert set(catalogue.INSTALLABLE) == {"envoy-gateway", "external-dns", "prometheus-operator", "metallb"}
    groups = [g for c in catalogue.CATALOGUE for g in c.groups]
    assert len(groups) == len(set(groups))


def test_crd_kinds_reads_every_served_version():
    unserved = crd("example.com", "Widget", ("v1", "v1beta1"))
    unserved["spec"]["versions"][1]["served"] = False
    assert catalogue.crd_kinds([unserved, GATEWAY]) == {("example.com/v1", "Widget")}


def write_bundle(folder, files: dict[str, str]):
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "sha256sum.txt").write_text("".join(
        f"{hashlib.sha256(text.encode()).hexdigest()}  {name}\n" for name, text in files.items()))
    return folder


MANIFEST = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: envoy-gateway-system}\n---\n"
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            "metadata: {name: gateways.gateway.networking.k8s.io}\n"
            "spec: {group: gateway.networking.k8s.io, names: {kind: Gateway, plural: gateways}, scope: Namespaced,"
            " versions: [{name: v1, served: true, storage: true}]}\n")


def test_a_verified_bundle_is_read_into_objects(tmp_path):
    write_bundle(tmp_path, {"eg.yaml": MANIFEST})
    bundle = controllers.read_bundle(str(tmp_path), {"envoy-gateway": "eg.yaml"})
    assert [o["kind"] for o in bundle["envoy-gateway"]] == ["Namespace", "CustomResourceDefinition"]
    controllers.check_bundle(catalogue.needed([GATEWAY]), ["envoy-gateway"], bundle)


def test_a_tampered_missing_or_unlisted_file_fails_naming_each(tmp_path):
    write_bundle(tmp_path, {"eg.yaml": MANIFEST, "mlb.yaml": MANIFEST})
    (tmp_path / "eg.yaml").write_text(MANIFEST + "# changed\n")
    (tmp_path / "mlb.yaml").unlink()
    (tmp_path / "extra.yaml").write_text(MANIFEST)
    with pytest.raises(ValidationError) as err:
        controllers.read_bundle(str(tmp_path), {"envoy-gateway": "eg.yaml", "metallb": "mlb.yaml",
                                                "external-dns": "extra.yaml"})
    text = str(err.value)
    assert f"envoy-gateway: {tmp_path}/eg.yaml has sha256 " in text and "expected" in text
    assert f"metallb: {tmp_path}/mlb.yaml cannot be read" in text
    assert f"external-dns: {tmp_path}/extra.yaml has no line in sha256sum.txt" in text
    assert text.startswith("the controllers' bundle is not usable, nothing was changed")


def test_a_bundle_without_checksums_or_with_a_bad_line_is_refused(tmp_path):
    with pytest.raises(ValidationError, match=r"bundle_dir: .*sha256sum.txt cannot be read"):
        controllers.read_sums(str(tmp_path))
    (tmp_path / "sha256sum.txt").write_text("deadbeef eg.yaml\n")
    with pytest.raises(ValidationError, match=r"line 1 is not '<sha256>  <file>'"):
        controllers.read_sums(str(tmp_path))
    digest = "a" * 64
    (tmp_path / "sha256sum.txt").write_text(f"{digest.upper()} *eg.yaml\n\n")
    assert controllers.read_sums(str(tmp_path)) == {"eg.yaml": digest}, "binary-mode lines as sha256sum -b writes them"


def test_a_manifest_that_lacks_a_needed_crd_is_refused_before_connecting(tmp_path):
    write_bundle(tmp_path, {"eg.yaml": MANIFEST})
    bundle = controllers.read_bundle(str(tmp_path), {"envoy-gateway": "eg.yaml"})
    with pytest.raises(ValidationError, match=r"install: envoy-gateway's manifest defines no CRD serving "
                                              r"BackendTrafficPolicy \(gateway.envoyproxy.io/v1alpha1\)"):
        controllers.check_bundle(catalogue.needed([GATEWAY, POLICY]), ["envoy-gateway"], bundle)
