"""The air-gap bundle a user keeps for the roles: upstream release manifests (and the edge's
image archives, stand-ins here) in one folder with the sha256sum.txt the roles verify.

Where a project publishes its release manifest inside its module (MetalLB's metallb-native.yaml,
the Prometheus Operator's bundle.yaml), that file is copied as it is. Envoy Gateway makes its
install.yaml at release time with `helm template` of its chart (the chart's values.yaml is
values.tmpl.yaml with the image filled in); external-dns publishes only a chart, which a user
renders with their DNS provider's settings. Both are rendered here the same way, by the helm the
testbed builds, from the pinned modules.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from . import build
from .versions import CRD_SOURCES

MODULE_FILES = {  # file in the bundle -> (project in versions.CRD_SOURCES, file in its module)
    "metallb-native.yaml": ("metallb", "config/manifests/metallb-native.yaml"),
    "prometheus-operator-bundle.yaml": ("prometheus-operator", "bundle.yaml"),
}
ENVOY_GATEWAY_NAMESPACE = "envoy-gateway-system"  # the release's
EXTERNAL_DNS_NAMESPACE = "external-dns"


def _module(project: str) -> Path:
    source = next(s for s in CRD_SOURCES if s.project == project)
    return build.module_dir(source.module, source.version)


def _version(project: str) -> str:
    return next(s for s in CRD_SOURCES if s.project == project).version


def _helm_template(chart: Path, release: str, namespace: str, *values: str, log=print) -> str:
    helm = build.build_tool("helm", log)
    with tempfile.TemporaryDirectory() as home:  # helm keeps no state on the machine
        env = {**os.environ, "HELM_CACHE_HOME": home, "HELM_CONFIG_HOME": home, "HELM_DATA_HOME": home}
        return subprocess.run([str(helm), "template", release, str(chart), "--namespace", namespace,
                               "--include-crds", *values], check=True, capture_output=True, text=True,
                              env=env).stdout


def envoy_gateway_install(log=print) -> str:
    """Envoy Gateway's install.yaml as its release makes it (chart, Namespace, CRDs)."""
    with tempfile.TemporaryDirectory() as work:
        chart = Path(work) / "gateway-helm"
        shutil.copytree(_module("envoy-gateway") / "charts" / "gateway-helm", chart)
        for path in [chart, *chart.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
        values = (chart / "values.tmpl.yaml").read_text()
        # what the release's helm-generate target substitutes (tools/make/helm.mk)
        filled = {"${GatewayImage}": f"docker.io/envoyproxy/gateway:{_version('envoy-gateway')}",
                  "${GatewayImagePullPolicy}": "IfNotPresent"}
        for placeholder, value in filled.items():
            values = values.replace(placeholder, value)
        if "${" in values:
            raise RuntimeError(f"unfilled placeholder in {chart}/values.tmpl.yaml: {values[values.index('${'):][:40]}")
        (chart / "values.yaml").write_text(values)
        return _helm_template(chart, "eg", ENVOY_GATEWAY_NAMESPACE, "--set", "createNamespace=true", log=log)


def external_dns_manifest(etcd_url: str = "http://127.0.0.1:2379", log=print) -> str:
    """external-dns's chart rendered for its coredns provider and the crd source, with its
    Namespace: what a user of that provider puts in the bundle."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": EXTERNAL_DNS_NAMESPACE}}
    chart = _module("external-dns") / "charts" / "external-dns"
    rendered = _helm_template(chart, "external-dns", EXTERNAL_DNS_NAMESPACE,
                              "--set", "provider.name=coredns", "--set", "sources={crd,service}",
                              "--set", "policy=sync", "--set", f"image.tag={_version('external-dns')}",
                              "--set", "env[0].name=ETCD_URLS",
                              "--set", f"env[0].value={etcd_url}", log=log)
    return yaml.safe_dump(namespace) + "---\n" + rendered


def write_addons(folder: Path, arch: str = "amd64", log=print) -> Path:
    """Every file the roles take from the bundle, and its sha256sum.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (project, rel) in MODULE_FILES.items():
        shutil.copyfile(_module(project) / rel, folder / name)
    (folder / "envoy-gateway-install.yaml").write_text(envoy_gateway_install(log))
    (folder / "external-dns.yaml").write_text(external_dns_manifest(log=log))
    for name in (f"metallb-images-{arch}.tar", f"monitoring-images-{arch}.tar"):
        (folder / name).write_bytes(hashlib.sha256(name.encode()).digest() * 64)
    write_sums(folder)
    return folder


def write_sums(folder: Path) -> None:
    (folder / "sha256sum.txt").write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(folder.iterdir()) if p.name != "sha256sum.txt"))
