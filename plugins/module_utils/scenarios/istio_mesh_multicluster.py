# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Istio mesh over several clusters: multi-primary on different networks, Istio's own
mechanism for cross-cluster service discovery and mTLS (the chapter's ServiceExports have no
implementation behind them on a fresh cluster; this is the real one).

Each cluster's istiod reads the other clusters' Services and endpoints with a *remote secret*:
a kubeconfig for a read-only ServiceAccount of the other cluster (what ``istioctl
create-remote-secret`` makes, but with a renewed bound token: cluster_join.join), kept in this
cluster's root namespace with the label ``istio/multiCluster: "true"``. Traffic to another network goes through that
network's east-west gateway on port 15443 (mTLS passthrough, SNI-routed). One mesh ID, one trust
domain and one root of trust (a shared root CA's ``cacerts`` per cluster) make the clusters'
workload certificates verify each other.
"""

from __future__ import annotations

import base64

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks

REMOTE_SECRET_LABEL = "istio/multiCluster"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"
NETWORK_LABEL = "topology.istio.io/network"
EAST_WEST_GATEWAY = "istio-eastwestgateway"
CROSS_NETWORK_GATEWAY = "cross-network-gateway"
CROSS_NETWORK_PORT = 15443

REMOTE_SHAPE = {"name!": "str", "network!": "str", "context!": "str", "kubeconfig": ("opt", "str"),
                "server": ("opt", "str")}
REMOVED_SHAPE = {"name!": "str", "context!": "str", "kubeconfig": ("opt", "str")}
ROOT_CA_SHAPE = {"cert_file": ("opt", "str"), "key_file": ("opt", "str"), "days": ("opt", "int"),
                 "renew_days": ("opt", "int"), "external": ("opt", "bool")}
SHAPE = ("opt", {"enabled": "bool", "mesh_id": ("opt", "str"), "cluster_name": ("opt", "str"),
                 "network": ("opt", "str"), "remotes": ("opt", ("list", REMOTE_SHAPE)),
                 "removed": ("opt", ("list", REMOVED_SHAPE)), "root_ca": ("opt", ROOT_CA_SHAPE)})

CACERTS_SECRET = "cacerts"  # the Secret istiod mounts at /etc/cacerts: its plugged signing CA
CACERTS_SET = "istio-mesh-cacerts"
ROOT_CA_DEFAULTS = {"cert_file": "", "key_file": "", "days": 730, "renew_days": 60, "external": False}

# What istiod needs of a remote cluster to discover its services, read only (Istio's
# istio-reader-clusterrole, without its Secrets and the write verbs of its config-cluster use).
READER_RULES = [
    {"apiGroups": [""], "resources": ["services", "endpoints", "pods", "nodes", "namespaces"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"],
     "resources": ["*"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["gateway.networking.k8s.io", "gateway.networking.x-k8s.io"], "resources": ["*"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["multicluster.x-k8s.io"], "resources": ["serviceexports", "serviceimports"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]


def enabled(spec: dict) -> bool:
    return bool((spec.get("multicluster") or {}).get("enabled"))


def problems(settings: dict, where: str = "istio_mesh_multicluster") -> list[str]:
    """What one mesh over several clusters needs of the role's multicluster settings."""
    out: list[str] = []
    for key in ("mesh_id", "cluster_name", "network"):
        if not settings.get(key):
            out.append(f"{where}.{key}: a multi-cluster mesh needs it (the same mesh_id in every cluster, "
                       "a cluster_name and a network of its own)")
        else:
            checks.label(settings[key], f"{where}.{key}", out)
    seen = {settings.get("cluster_name")}
    for i, remote in enumerate(settings.get("remotes") or []):
        checks.label(remote.get("name"), f"{where}.remotes[{i}].name", out)
        checks.label(remote.get("network"), f"{where}.remotes[{i}].network", out)
        if remote.get("name") in seen:
            out.append(f"{where}.remotes[{i}].name: {remote.get('name')!r} is this cluster or another remote")
        seen.add(remote.get("name"))
        if remote.get("server") is not None and not str(remote["server"]).startswith("https://"):
            out.append(f"{where}.remotes[{i}].server: {remote['server']!r} is not an https:// URL of the cluster's API "
                       "(as this cluster's istiod reaches it)")
    out += _root_ca_problems(_root_ca_settings(settings), f"{where}.root_ca")
    for i, gone in enumerate(settings.get("removed") or []):
        checks.label(gone.get("name"), f"{where}.removed[{i}].name", out)
        if gone.get("name") in seen:
            out.append(f"{where}.removed[{i}].name: {gone.get('name')!r} is also this cluster or one of remotes")
    return out


def _root_ca_settings(settings: dict) -> dict:
    """root_ca with its defaults under what the user gave (a partial mapping keeps the rest)."""
    return {**ROOT_CA_DEFAULTS, **(settings.get("root_ca") or {})}


def _root_ca_problems(root_ca: dict, where: str) -> list[str]:
    if root_ca["external"]:
        return []
    out = [f"{where}.{key}: a multi-cluster mesh needs one root of trust: the shared root CA's {what} "
           "(each cluster gets an intermediate CA under it), or external: true when your own PKI writes "
           "every cluster's cacerts Secret" for key, what in (("cert_file", "certificate"), ("key_file", "key"))
           if not root_ca[key]]
    checks.renewal_window(root_ca["renew_days"], root_ca["days"], f"{where}.renew_days", out)
    return out


def root_ca(settings: dict) -> dict | None:
    """The root CA settings the apply run issues this cluster's intermediate from; None when
    the user's PKI writes the cacerts Secret (external)."""
    merged = _root_ca_settings(settings)
    return None if merged["external"] else {k: merged[k] for k in ("cert_file", "key_file", "days", "renew_days")}


def install_values(settings: dict) -> dict:
    """values.global of the install file: the mesh, this cluster and its network."""
    return {"meshID": settings["mesh_id"], "multiCluster": {"clusterName": settings["cluster_name"]},
            "network": settings["network"]}


# The sidecars answer DNS themselves from istiod's name table, which holds every cluster's
# services: a service that runs only in another cluster resolves here without a Service stub.
PROXY_METADATA = {"ISTIO_META_DNS_CAPTURE": "true"}


def east_west_gateway(settings: dict) -> dict:
    """The install file's east-west gateway: the network's entry for the other networks' traffic
    (15443, mTLS passthrough), as Istio's gen-eastwest-gateway.sh writes it."""
    network = settings["network"]
    labels = {"istio": "eastwestgateway", "app": EAST_WEST_GATEWAY, NETWORK_LABEL: network}
    return {"name": EAST_WEST_GATEWAY, "label": labels,
            "enabled": True,
            "k8s": {"env": [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": network}],
                    "service": {"ports": [{"name": "status-port", "port": 15021, "targetPort": 15021},
                                          {"name": "tls", "port": CROSS_NETWORK_PORT, "targetPort": CROSS_NETWORK_PORT}]}}}


def root_namespace_label(root_namespace: str, network: str) -> dict:
    """The root namespace labelled with the cluster's network, as Istio's multi-network setup asks."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": root_namespace, "labels": {NETWORK_LABEL: network}}}


def cross_network_gateway(root_namespace: str) -> dict:
    """Exposes every service of the cluster (``*.local``) on the east-west gateway to the other
    networks, passing the workloads' own mTLS through (AUTO_PASSTHROUGH)."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": CROSS_NETWORK_GATEWAY, "namespace": root_namespace},
            "spec": {"selector": {"istio": "eastwestgateway"},
                     "servers": [{"port": {"number": CROSS_NETWORK_PORT, "name": "tls", "protocol": "TLS"},
                                  "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}]}}


def grant(member: str, host: str, namespace: str):
    """(A cluster_join.Grant:) primary ``host``'s read-only access to cluster ``member`` of the mesh: an account of its
    own there (so one primary's access is revoked alone), READER_RULES, and the remote secret in
    ``host``'s root namespace ``namespace`` holding a bound token of it (cluster_join.join). The
    root namespace is istioctl's on both sides: the join never creates or owns it."""
    from ansible_collections.k8snet.fabric.plugins.module_utils import cluster_join

    def stored_token(client) -> str | None:
        current = client.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{remote_secret_name(member)}",
                                 allow=(404,))
        kubeconfig = ((current or {}).get("data") or {}).get(member)
        if not kubeconfig:
            return None
        import yaml

        try:
            users = yaml.safe_load(base64.b64decode(kubeconfig)).get("users") or []
            return users[0]["user"]["token"]
        except (ValueError, AttributeError, IndexError, KeyError, TypeError, yaml.YAMLError):
            return None  # not ours to read: a new token replaces it

    account = f"istio-reader-{host}"
    return cluster_join.Grant(namespace=namespace, account=account, role=f"k8snet-istio-reader:{host}",
                              rules=READER_RULES, member_set=f"istio-reader-{host}", host_set=f"istio-remote-{member}",
                              namespace_set=None,
                              host_objects=lambda endpoint, ca_pem, token: [
                                  remote_secret(member, endpoint, ca_pem, token, namespace)],
                              stored_token=stored_token)


def remote_secret_name(member: str) -> str:
    return f"istio-remote-secret-{member}"


def remote_secret(member: str, server: str, ca_pem: str | None, token: str, namespace: str) -> dict:
    """The remote secret for cluster ``member``, as ``istioctl create-remote-secret`` writes it: a
    kubeconfig that reaches ``server`` with ``token``, labelled where istiod looks for it."""
    import yaml

    cluster = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": member,
                  "clusters": [{"name": member, "cluster": cluster}],
                  "contexts": [{"name": member, "context": {"cluster": member, "user": member}}],
                  "users": [{"name": member, "user": {"token": token}}]}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": remote_secret_name(member), "namespace": namespace,
                         "labels": {REMOTE_SECRET_LABEL: "true"}, "annotations": {CLUSTER_ANNOTATION: member}},
            "data": {member: base64.b64encode(yaml.safe_dump(kubeconfig, sort_keys=False).encode()).decode()}}


def cacerts_secret(namespace: str, ca_cert_pem: bytes, ca_key_pem: bytes, root_pem: bytes) -> dict:
    """The plugged CA as istiod reads it (Istio's "Plug in CA certificates"): the intermediate's
    certificate and key, the root, and the chain from the intermediate up to the root."""
    files = {"ca-cert.pem": ca_cert_pem, "ca-key.pem": ca_key_pem, "root-cert.pem": root_pem,
             "cert-chain.pem": ca_cert_pem + root_pem}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": CACERTS_SECRET, "namespace": namespace},
            "data": {name: base64.b64encode(pem).decode() for name, pem in files.items()}}


def converge_cacerts(client, namespace: str, cluster_name: str, root_cert_path: str, root_key_path: str, *,
                     days: int, renew_days: int, check_mode: bool, diff: bool) -> dict:
    """This cluster's intermediate CA under the shared root, in ``cacerts``: kept while it is
    signed by the root, matches its key and has ``renew_days`` left; issued (or renewed) otherwise.
    A cacerts under another root is refused, not replaced: changing a mesh's root is a migration
    (both roots trusted while workloads move), never a side effect of one run. The keys stay in
    this process: only fingerprints and dates are returned."""
    from ansible_collections.k8snet.fabric.plugins.module_utils import cluster_join, tls_certificate
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine
    from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

    checks.require(checks.renewal_window, renew_days, days, "renew_days")
    root_cert, root_key = tls_certificate.load_ca(root_cert_path, root_key_path, "root_ca")
    root_pem = tls_certificate.pem(root_cert)
    live = client.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{CACERTS_SECRET}", allow=(404,))
    files = {k: base64.b64decode(v) for k, v in ((live or {}).get("data") or {}).items()}
    reason = ""
    if live:
        if not tls_certificate.same_certificate(files.get("root-cert.pem", b""), root_cert):
            raise ValidationError(
                f"secret {namespace}/{CACERTS_SECRET}: its root-cert.pem is not the root in {root_cert_path!r} "
                f"(fingerprint {tls_certificate.fingerprint(root_cert)}); nothing was changed. Moving a mesh to another root is a "
                "migration (Istio's plugged-CA root rotation); delete the Secret to start this cluster over")
        reason = tls_certificate.intermediate_renewal_due(files.get("ca-cert.pem", b""), files.get("ca-key.pem", b""),
                                                          root_cert, renew_days)
    if live and not reason:
        ca_cert_pem, ca_key_pem, state = files["ca-cert.pem"], files["ca-key.pem"], "kept"
    else:
        ca_cert_pem, ca_key_pem = tls_certificate.issue_intermediate(
            root_cert, root_key, {"O": "Istio", "CN": "Intermediate CA", "L": cluster_name}, days)
        state = "renewed" if live else "issued"
    secret = cacerts_secret(namespace, ca_cert_pem, ca_key_pem, root_pem)
    namespace_missing = client.request("GET", f"/api/v1/namespaces/{namespace}", allow=(404,)) is None
    if namespace_missing:
        # The Secret is dry-run in the namespace-to-be first: a refusal (a missing permission)
        # must not leave a namespace behind.
        result = Engine(client, check_mode=True, want_diff=diff, pending_namespaces=[namespace]).converge(
            CACERTS_SET, namespace, [secret], "replaced")
        if not check_mode:
            # As Istio's own steps do (kubectl create namespace): istioctl install adopts it.
            client.request("POST", "/api/v1/namespaces", body=cluster_join.namespace_object(namespace))
    if not (namespace_missing and check_mode):
        result = Engine(client, check_mode=check_mode, want_diff=diff).converge(CACERTS_SET, namespace, [secret], "replaced")
    return {"changed": result["changed"] or namespace_missing, "ca": state, "reason": reason,
            "secret": f"{namespace}/{CACERTS_SECRET}", "root_fingerprint_sha256": tls_certificate.fingerprint(root_cert),
            **tls_certificate.intermediate_facts(ca_cert_pem), "diff": result.get("diff", [])}
