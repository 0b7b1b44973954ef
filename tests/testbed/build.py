"""Build the testbed's binaries from the pinned Go module and fetch the upstream CRDs.

Binaries land in the ignored cache folder and are rebuilt only when the pin (go.mod, go.sum,
tools.go or the Go toolchain) changes. CRDs are read from the upstream projects' Go modules in
the module cache and stored as one JSON list per source, so later starts parse no YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .versions import CRD_SOURCES, KWOK_STAGES, CrdSource

REPO = Path(__file__).resolve().parents[2]
GO_MODULE = Path(__file__).resolve().parent / "go"
CACHE = Path(os.environ.get("K8SNET_TESTBED_CACHE", REPO / ".cache" / "testbed"))
BIN = CACHE / "bin"
CRD_CACHE = CACHE / "crds"

# Binary name -> Go package built into it.
BINARIES = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",  # the data plane's Service proxy, per node
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
}
UPSTREAM_DIR = Path(os.environ.get("K8SNET_UPSTREAM_DIR", REPO.parent / "shared" / "upstream"))

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BuildError(RuntimeError):
    """The testbed could not be built; the message carries the tool's own output."""


# What the Go command prints when the module proxy could not be reached this time (a cold CI
# run once lost a submission to one DNS time-out); the command is worth running again.
TRANSIENT = re.compile(r"i/o timeout|TLS handshake timeout|connection reset|connection refused|no such host|"
                       r"temporary failure|server misbehaving|unexpected EOF|50[234] (Bad Gateway|Service|Gateway)")
RETRY_PAUSES = (5, 20, 60)  # seconds before the 2nd, 3rd and 4th try


def _run(cmd: list[str], cwd: Path, env: dict | None = None, log=print) -> str:
    """Run a command; a Go command that failed on the network is tried again after a pause."""
    for pause in (*RETRY_PAUSES, None):
        proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout
        if pause is None or cmd[0] != "go" or not TRANSIENT.search(proc.stderr):
            break
        log(f"testbed: {' '.join(cmd[:3])} met a network error; trying again in {pause}s: "
            f"{TRANSIENT.search(proc.stderr).group(0)}")
        time.sleep(pause)
    raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def kubernetes_version() -> str:
    """The k8s.io/kubernetes release go.mod pins (the one place it is pinned)."""
    for line in (GO_MODULE / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "k8s.io/kubernetes":
            return parts[1]
    raise BuildError("go.mod does not require k8s.io/kubernetes")


def pin_stamp() -> str:
    """A digest of everything that decides what the binaries are."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "tools.go"):
        digest.update((GO_MODULE / name).read_bytes())
    digest.update(_run(["go", "version"], GO_MODULE).encode())
    return digest.hexdigest()


def build_binaries(log=print) -> dict[str, Path]:
    """Build the control plane's binaries; each is rebuilt only when the pin changes, so a
    binary added to BINARIES does not rebuild the others."""
    stamp = pin_stamp()
    paths = {name: BIN / name for name in BINARIES}
    stale = [name for name, path in paths.items()
             if not (path.exists() and _stamp_of(path).exists() and _stamp_of(path).read_text() == stamp)]
    if not stale:
        return paths
    BIN.mkdir(parents=True, exist_ok=True)
    version = kubernetes_version()
    major, minor = version.lstrip("v").split(".")[:2]
    # What `go build` leaves out and `make` would stamp: the version discovery reports.
    ldflags = ["-s", "-w"] + [
        f"-X {pkg}.{var}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for var, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor),
                           ("gitTreeState", "clean"))]
    for name in stale:
        started = time.monotonic()
        log(f"testbed: building {name} from {BINARIES[name]} ...")
        _run(["go", "build", "-trimpath", f"-ldflags={' '.join(ldflags)}", "-o", str(paths[name]),
              BINARIES[name]], GO_MODULE, env={"CGO_ENABLED": "0"})
        _stamp_of(paths[name]).write_text(stamp)
        log(f"testbed: built {name} in {time.monotonic() - started:.0f}s")
    return paths


def _stamp_of(binary: Path) -> Path:
    return binary.with_name(binary.name + ".stamp")


# Tools built from their own pinned Go modules: name -> (module folder, package, extra env).
GO_TOOLS = {
    # np-guard's analyzer, the independent peer of netpol_analyze (the checksum DB lacks it).
    "netpolicy": (REPO / "tests" / "peers" / "npguard", "github.com/np-guard/netpol-analyzer/cmd/netpolicy",
                  {"GONOSUMDB": "github.com/np-guard"}),
    # CoreDNS with the plugins cluster Corefiles use, to run the Corefiles hybrid_dns writes.
    "coredns": (Path(__file__).resolve().parent / "coredns", ".", {}),
    # kwok: Nodes and Pods without kubelets (v0.8.0; its go.mod has no replace lines).
    "kwok": (Path(__file__).resolve().parent / "tools" / "kwok", "sigs.k8s.io/kwok/cmd/kwok", {}),
    # The ecosystems' own checkers, run over what the roles write.
    "promtool": (Path(__file__).resolve().parent / "tools" / "promtool",
                 "github.com/prometheus/prometheus/cmd/promtool", {}),
    "istioctl": (Path(__file__).resolve().parent / "tools" / "istioctl",
                 "istio.io/istio/istioctl/cmd/istioctl", {}),
    # istiod's discovery server from the same pin: lists the services and endpoints of the
    # clusters a multi-cluster mesh's remote secrets reach (test_mesh_multicluster.py).
    "pilot-discovery": (Path(__file__).resolve().parent / "tools" / "istioctl",
                        "istio.io/istio/pilot/cmd/pilot-discovery", {}),
    # Alertmanager's amtool: routes test alerts through the route trees the edge role writes.
    "amtool": (Path(__file__).resolve().parent / "tools" / "amtool",
               "github.com/prometheus/alertmanager/cmd/amtool", {}),
    # kube-router v2.1.0: its NetworkPolicy firewall is the data plane's enforcer (dataplane.py).
    "kube-router": (Path(__file__).resolve().parent / "tools" / "kube-router",
                    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router", {}),
    # MetalLB's controller and L2 speaker (dataplane.run_metallb), at the version of its CRDs.
    "metallb-controller": (Path(__file__).resolve().parent / "tools" / "metallb", "go.universe.tf/metallb/controller", {}),
    "metallb-speaker": (Path(__file__).resolve().parent / "tools" / "metallb", "go.universe.tf/metallb/speaker", {}),
    # external-dns (its coredns provider into an etcd the testbed's CoreDNS serves: externaldns.py),
    # at the version of its DNSEndpoint CRD.
    "external-dns": (Path(__file__).resolve().parent / "tools" / "external-dns", "sigs.k8s.io/external-dns", {}),
    # Envoy Gateway's control plane (dataplane.run_envoy_gateway), at the version of its CRDs.
    "envoy-gateway": (Path(__file__).resolve().parent / "tools" / "envoy-gateway",
                      "github.com/envoyproxy/gateway/cmd/envoy-gateway", {}),
    # wireguard-go: the user-space WireGuard wg-quick falls back to (no WireGuard module in this
    # kernel); the tunnel tests run the roles' wg-quick files with it (tests/gateways.py).
    "wireguard-go": (Path(__file__).resolve().parent / "tools" / "wireguard-go", "golang.zx2c4.com/wireguard", {}),
    # helm: renders Envoy Gateway's and external-dns's charts into the controllers' bundle
    # (tests/testbed/bundle.py), as their release process and a user do.
    "helm": (Path(__file__).resolve().parent / "tools" / "helm", "helm.sh/helm/v3/cmd/helm", {}),
}


def build_tool(name: str, log=print) -> Path:
    """One of GO_TOOLS into the cache (rebuilt only when its pin or source changes)."""
    module, package, env = GO_TOOLS[name]
    binary = CACHE / "tools" / name
    stamp = binary.with_suffix(".stamp")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(module.iterdir())
                                     if p.suffix in (".mod", ".sum", ".go"))).hexdigest()
    if binary.exists() and stamp.exists() and stamp.read_text() == digest:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    log(f"testbed: building {name} from {module.relative_to(REPO)} ...")
    _run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), package], module,
         env={"CGO_ENABLED": "0", **env})
    stamp.write_text(digest)
    return binary


def module_dir(module: str, version: str) -> Path:
    """Where a pinned upstream Go module sits in the module cache (downloaded if needed)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"],
               CACHE, env={"GOFLAGS": "-mod=mod"})
    info = json.loads(out)
    if info.get("Error"):
        raise BuildError(f"{module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def _source_dir(source: CrdSource) -> Path:
    if source.local_dir:
        folder = UPSTREAM_DIR / source.local_dir
        if not folder.is_dir():
            raise BuildError(f"{source.project}: {folder} is missing (shared/upstream/ is expected "
                             "beside the checkout; K8SNET_UPSTREAM_DIR points elsewhere)")
        return folder
    return module_dir(source.module, source.version)


def crds_of(source: CrdSource) -> list[dict]:
    """The CRD objects of one source, exactly as upstream ships them."""
    # The file list is part of the key: adding a CRD to a source must not read a stale cache.
    files = hashlib.sha256("\n".join(source.files).encode()).hexdigest()[:12]
    cached = CRD_CACHE / f"{source.project}-{source.version}-{files}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    CRD_CACHE.mkdir(parents=True, exist_ok=True)
    folder = _source_dir(source)
    crds = []
    for rel in source.files:
        text = (folder / rel).read_text()
        if source.helm_guarded:
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("{{"))
        for doc in yaml.load_all(text, Loader=_YAML_LOADER):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            if source.groups and doc["spec"]["group"] not in source.groups:
                continue
            crds.append(doc)
    if not crds:
        raise BuildError(f"{source.module}@{source.version}: no CRD found in {source.files}")
    cached.write_text(json.dumps(crds))
    return crds


def all_crds(log=print) -> list[dict]:
    """Every upstream CRD the testbed installs."""
    return [crd for source in CRD_SOURCES for crd in crds_of(source)]


def kwok_stages() -> list[Path]:
    """kwok's upstream stage files, from the kwok module the tool pin names."""
    folder = module_dir("sigs.k8s.io/kwok", _required_version(GO_TOOLS["kwok"][0], "sigs.k8s.io/kwok"))
    return [folder / rel for rel in KWOK_STAGES]


def _required_version(module_folder: Path, module: str) -> str:
    for line in (module_folder / "go.mod").read_text().splitlines():
        parts = line.replace("require", "").split()
        if len(parts) >= 2 and parts[0] == module:
            return parts[1]
    raise BuildError(f"{module_folder}/go.mod does not require {module}")


def build_all(log=print) -> dict[str, Path]:
    """Everything the testbed runs: control plane, kwok and the checkers, and the CRDs."""
    paths = build_binaries(log)
    for tool in GO_TOOLS:
        paths[tool] = build_tool(tool, log)
    all_crds(log)
    kwok_stages()
    return paths


if __name__ == "__main__":  # pragma: no cover - convenience
    build_all()
    print(len(all_crds()), "CRDs", file=sys.stderr)
