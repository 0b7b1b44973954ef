"""kubectl and the collection against the same kubeconfigs, the API server's audit log as judge.

For every case both tools make one GET of a ConfigMap name of their own. The audit log must show
the same user (name, groups, extra), the same impersonated user and the same answer for both - or
neither request arrives and both refuse, the collection naming the field. kubectl here is the
testbed's own build of the pinned Kubernetes release (client-go of the same version).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from tests.helpers import run_playbook
from tests.netstubs import Proxy
from tests.testbed import build

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import kubeconfig
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ApiError, ClusterUnreachable

pytestmark = pytest.mark.testbed
CLUSTER, OTHER = "us-east", "eu-west"
NS = "kc-diff"
V1, V1BETA1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"


@dataclass
class World:
    server: str
    other_server: str
    ca_file: Path
    ca_b64: str
    admin: dict          # the testbed admin's kubeconfig user entry (certificate data)
    tokens: dict         # service account name -> bound token
    proxies: list = field(default_factory=list)

    def cluster(self, **changes) -> dict:
        entry = {"server": self.server, "certificate-authority-data": self.ca_b64, **changes}
        return {k: v for k, v in entry.items() if v is not None}


@dataclass
class Inputs:
    """What each tool is given: the same files, each its own way of taking options."""

    kubectl_env: dict
    collection_env: dict
    kubectl_args: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    proxy: Proxy | None = None


def config_file(path: Path, clusters: dict, users: dict, contexts: dict, current: str | None = "t") -> str:
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
           "users": [{"name": n, "user": u} for n, u in users.items()],
           "contexts": [{"name": n, "context": c} for n, c in contexts.items()]}
    if current:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def single(tmp: Path, world: World, user: dict, **cluster_changes) -> Inputs:
    path = config_file(tmp / "kubeconfig", {"c": world.cluster(**cluster_changes)}, {"u": user},
                       {"t": {"cluster": "c", "user": "u"}})
    return Inputs({"KUBECONFIG": path}, {"KUBECONFIG": path})


def script(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def credential_file(tmp: Path, name: str, api_version: str, status: dict) -> Path:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status}))
    return path


def admin_pems(world: World) -> tuple[str, str]:
    return (base64.b64decode(world.admin["client-certificate-data"]).decode(),
            base64.b64decode(world.admin["client-key-data"]).decode())


# -- the cases -------------------------------------------------------------------------------
def cert_files(tmp, w):
    cert, key = admin_pems(w)
    (tmp / "creds").mkdir()
    (tmp / "creds" / "admin.crt").write_text(cert)
    (tmp / "creds" / "admin.key").write_text(key)
    return single(tmp, w, {"client-certificate": "creds/admin.crt", "client-key": "creds/admin.key"})


def cert_data(tmp, w):
    return single(tmp, w, dict(w.admin))


def cert_file_and_data(tmp, w):
    (tmp / "admin.crt").write_text(admin_pems(w)[0])
    return single(tmp, w, {**w.admin, "client-certificate": "admin.crt"})


def token(tmp, w):
    return single(tmp, w, {"token": w.tokens["reader"]})


def token_file(tmp, w):
    (tmp / "tokens").mkdir()
    (tmp / "tokens" / "reader").write_text(w.tokens["reader"] + "\n")
    return single(tmp, w, {"tokenFile": "tokens/reader"})


def token_and_token_file(tmp, w):
    (tmp / "reader2.token").write_text(w.tokens["reader2"])
    return single(tmp, w, {"token": w.tokens["reader"], "tokenFile": "reader2.token"})


def rejected_token(tmp, w):
    return single(tmp, w, {"token": "not-a-token-5a1f"})


def exec_token_v1(tmp, w):
    answer = credential_file(tmp, "token", V1, {"token": w.tokens["reader"]})
    plugin = script(tmp, "plugin", '[ "$1" = --region ] && [ "$2" = eu ] && [ "$CLOUD" = test ] '
                                   f'|| {{ echo "bad call: $* $CLOUD" >&2; exit 9; }}\ncat "{answer}"\n')
    return single(tmp, w, {"exec": {"apiVersion": V1, "command": plugin, "args": ["--region", "eu"],
                                    "env": [{"name": "CLOUD", "value": "test"}], "interactiveMode": "Never",
                                    "installHint": "install the test plugin"}})


def exec_cert_v1beta1(tmp, w):
    cert, key = admin_pems(w)
    answer = credential_file(tmp, "cert", V1BETA1, {"clientCertificateData": cert, "clientKeyData": key})
    return single(tmp, w, {"exec": {"apiVersion": V1BETA1, "command": script(tmp, "plugin", f'cat "{answer}"\n')}})


def exec_cert_v1(tmp, w):
    cert, key = admin_pems(w)
    answer = credential_file(tmp, "cert", V1, {"clientCertificateData": cert, "clientKeyData": key})
    return single(tmp, w, {"exec": {"apiVersion": V1, "command": script(tmp, "plugin", f'cat "{answer}"\n'),
                                    "interactiveMode": "IfAvailable"}})


def exec_token_v1beta1_relative_command(tmp, w):
    answer = credential_file(tmp, "token", V1BETA1, {"token": w.tokens["reader2"]})
    (tmp / "bin").mkdir()
    script(tmp / "bin", "plugin", f'cat "{answer}"\n')
    return single(tmp, w, {"exec": {"apiVersion": V1BETA1, "command": "./bin/plugin"}})


def exec_provide_cluster_info(tmp, w):
    """The plugin answers only when it was told the cluster: server and CA as kubectl tells it."""
    answer = credential_file(tmp, "token", V1, {"token": w.tokens["reader"]})
    check = ("import json, os, sys; c = json.loads(os.environ['KUBERNETES_EXEC_INFO'])['spec']['cluster']; "
             "sys.exit(0 if (c['server'], c['certificate-authority-data'], c.get('config')) == "
             "(sys.argv[1], sys.argv[2], {'audience': 'fabric'}) else 7)")
    plugin = script(tmp, "plugin", f'"{sys.executable}" -c "{check}" "{w.server}" "{w.ca_b64}" || exit 7\n'
                                   f'cat "{answer}"\n')
    cluster = {**w.cluster(),
               "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"audience": "fabric"}}]}
    path = config_file(tmp / "kubeconfig", {"c": cluster}, {"u": {"exec": {
        "apiVersion": V1, "command": plugin, "interactiveMode": "Never", "provideClusterInfo": True}}},
        {"t": {"cluster": "c", "user": "u"}})
    return Inputs({"KUBECONFIG": path}, {"KUBECONFIG": path})


def exec_not_run_with_a_token(tmp, w):
    cert, key = admin_pems(w)
    answer = credential_file(tmp, "cert", V1, {"clientCertificateData": cert, "clientKeyData": key})
    return single(tmp, w, {"token": w.tokens["reader"],
                           "exec": {"apiVersion": V1, "command": script(tmp, "plugin", f'cat "{answer}"\n'),
                                    "interactiveMode": "Never"}})


def exec_failing(tmp, w):
    plugin = script(tmp, "plugin", 'echo "please log in" >&2; exit 3\n')
    return single(tmp, w, {"exec": {"apiVersion": V1, "command": plugin, "interactiveMode": "Never",
                                    "installHint": "install cloud-cli"}})


def exec_without_api_version(tmp, w):
    return single(tmp, w, {"exec": {"command": script(tmp, "plugin", "exit 0\n")}})


def exec_v1_without_interactive_mode(tmp, w):
    answer = credential_file(tmp, "token", V1, {"token": w.tokens["reader"]})
    return single(tmp, w, {"exec": {"apiVersion": V1, "command": script(tmp, "plugin", f'cat "{answer}"\n')}})


def exec_answers_another_version(tmp, w):
    answer = credential_file(tmp, "token", V1BETA1, {"token": w.tokens["reader"]})
    return single(tmp, w, {"exec": {"apiVersion": V1, "command": script(tmp, "plugin", f'cat "{answer}"\n'),
                                    "interactiveMode": "Never"}})


def as_service_account(tmp, w):
    return single(tmp, w, {**w.admin, "as": "system:serviceaccount:default:nobody"})


def as_user_and_groups(tmp, w):
    return single(tmp, w, {**w.admin, "as": "jane", "as-groups": ["dev", "ops"]})


def as_uid_and_extra(tmp, w):
    return single(tmp, w, {**w.admin, "as": "jane", "as-uid": "1234",
                           "as-user-extra": {"scopes.example.com/team": ["blue", "green"], "reason": ["audit"]}})


def as_groups_without_user(tmp, w):
    return single(tmp, w, {**w.admin, "as-groups": ["system:masters"]})


def impersonation_options(tmp, w):
    inputs = single(tmp, w, dict(w.admin))
    inputs.kubectl_args = ["--as", "system:serviceaccount:kc-diff:reader", "--as-group", "auditors"]
    inputs.collection_env.update({"K8S_AUTH_IMPERSONATE_USER": "system:serviceaccount:kc-diff:reader",
                                  "K8S_AUTH_IMPERSONATE_GROUPS": "auditors"})
    return inputs


def merged_first_file_wins(tmp, w):
    """Two files define cluster c, user u and context t; the first one's entries and
    current-context win; relative paths are relative to the file that holds them."""
    (tmp / "a").mkdir()
    (tmp / "a" / "ca.crt").write_text(w.ca_file.read_text())
    (tmp / "a" / "reader.token").write_text(w.tokens["reader"])
    first = config_file(tmp / "a" / "config", {"c": {"server": w.server, "certificate-authority": "ca.crt"}},
                        {"u": {"tokenFile": "reader.token"}}, {"t": {"cluster": "c", "user": "u"}}, current="t")
    second = config_file(tmp / "b" / "config", {"c": {"server": w.other_server, "certificate-authority-data": w.ca_b64}},
                         {"u": dict(w.admin)}, {"t": {"cluster": "c", "user": "u"}, "z": {"cluster": "c", "user": "u"}},
                         current="z")
    listing = os.pathsep.join([first, str(tmp / "missing"), second])
    return Inputs({"KUBECONFIG": listing}, {"KUBECONFIG": listing})


def merged_current_context_from_a_later_file(tmp, w):
    first = config_file(tmp / "a" / "config", {"c": w.cluster()}, {"u": {"token": w.tokens["reader2"]}},
                        {"t": {"cluster": "c", "user": "u"}}, current=None)
    second = config_file(tmp / "b" / "config", {"c": w.cluster()}, {"u": dict(w.admin)},
                         {"t": {"cluster": "c", "user": "u"}}, current="t")
    listing = os.pathsep.join([first, second])
    return Inputs({"KUBECONFIG": listing}, {"KUBECONFIG": listing})


def tls_server_name(tmp, w):
    return single(tmp, w, dict(w.admin), **{"tls-server-name": "kubernetes.default.svc"})


def tls_server_name_not_in_the_certificate(tmp, w):
    return single(tmp, w, dict(w.admin), **{"tls-server-name": "api.example.com"})


def insecure_without_ca(tmp, w):
    return single(tmp, w, dict(w.admin), **{"insecure-skip-tls-verify": True, "certificate-authority-data": None})


def insecure_with_ca(tmp, w):
    return single(tmp, w, dict(w.admin), **{"insecure-skip-tls-verify": True})


def http_proxy(tmp, w):
    proxy = Proxy("http")
    inputs = single(tmp, w, dict(w.admin), **{"proxy-url": proxy.url})
    inputs.proxy = proxy
    return inputs


def socks5_proxy(tmp, w):
    proxy = Proxy("socks5")
    inputs = single(tmp, w, {"token": w.tokens["reader"]}, **{"proxy-url": proxy.url})
    inputs.proxy = proxy
    return inputs


def socks5_proxy_with_password(tmp, w):
    proxy = Proxy("socks5", credentials=("fabric", "s3cret"))
    url = proxy.url.replace("socks5://", "socks5://fabric:s3cret@")
    inputs = single(tmp, w, dict(w.admin), **{"proxy-url": url})
    inputs.proxy = proxy
    return inputs


def awx_credential_environment(tmp, w):
    """What AWX's Kubernetes credential injects, against kubectl's flags with no kubeconfig."""
    empty = str(tmp / "no-kubeconfig")
    return Inputs({"KUBECONFIG": empty},
                  {"KUBECONFIG": "", "K8S_AUTH_HOST": w.server, "K8S_AUTH_API_KEY": w.tokens["reader"],
                   "K8S_AUTH_SSL_CA_CERT": str(w.ca_file), "K8S_AUTH_VERIFY_SSL": "true"},
                  kubectl_args=["--server", w.server, "--token", w.tokens["reader"],
                                "--certificate-authority", str(w.ca_file)])


@dataclass
class Case:
    build: Callable[[Path, World], Inputs]
    refused: str | None = None  # both refuse; the collection's message contains this

    @property
    def name(self) -> str:
        return self.build.__name__.replace("_", "-")


CASES = [
    Case(cert_files), Case(cert_data), Case(cert_file_and_data, refused="client-certificate and client-certificate-data"),
    Case(token), Case(token_file), Case(token_and_token_file), Case(rejected_token),
    Case(exec_token_v1), Case(exec_cert_v1beta1), Case(exec_cert_v1), Case(exec_token_v1beta1_relative_command),
    Case(exec_provide_cluster_info), Case(exec_not_run_with_a_token),
    Case(exec_failing, refused="exited 3: please log in (install cloud-cli)"),
    Case(exec_without_api_version, refused="exec apiVersion is missing"),
    Case(exec_v1_without_interactive_mode, refused="exec interactiveMode is missing"),
    Case(exec_answers_another_version, refused="is configured for client.authentication.k8s.io/v1 but printed"),
    Case(as_service_account), Case(as_user_and_groups), Case(as_uid_and_extra),
    Case(as_groups_without_user, refused="set without 'as'"), Case(impersonation_options),
    Case(merged_first_file_wins), Case(merged_current_context_from_a_later_file),
    Case(tls_server_name), Case(tls_server_name_not_in_the_certificate, refused="TLS failed"),
    Case(insecure_without_ca), Case(insecure_with_ca, refused="insecure-skip-tls-verify is set together with"),
    Case(http_proxy), Case(socks5_proxy), Case(socks5_proxy_with_password),
    Case(awx_credential_environment),
]


# -- the judge -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(testbed):
    admin = testbed.client(CLUSTER)
    admin.request("POST", "/api/v1/namespaces", allow=(409,),
                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    tokens = {}
    for name in ("reader", "reader2"):
        admin.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts", allow=(409,),
                      body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
        tokens[name] = admin.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{name}/token", body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600}})["status"]["token"]
    # reader may read ConfigMaps here (a 404 for the probe), reader2 may not (a 403).
    admin.request("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles", allow=(409,), body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
    admin.request("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", allow=(409,), body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NS}]})
    config = yaml.safe_load(testbed.kubeconfig.read_text())
    servers = testbed._state()["servers"]  # noqa: SLF001 - the harness's record of the clusters
    ca_file = testbed.run_dir / "pki" / "ca.crt"
    return World(server=servers[CLUSTER], other_server=servers[OTHER], ca_file=ca_file,
                 ca_b64=base64.b64encode(ca_file.read_bytes()).decode(),
                 admin=next(u for u in config["users"] if u["name"] == "admin")["user"], tokens=tokens)


def run_kubectl(inputs: Inputs, home: Path, path: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), **inputs.kubectl_env}
    return subprocess.run([str(build.BIN / "kubectl"), *inputs.kubectl_args, "get", "--raw", path],
                          env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


def run_collection(inputs: Inputs, home: Path, path: str) -> str:
    """'answered' or the refusal's message."""
    environ = {"HOME": str(home), **inputs.collection_env}
    try:
        client = Client(inputs.params, credentials=kubeconfig.resolve(inputs.params, environ))
        try:
            client.request("GET", path)
        finally:
            client.close()
    except ApiError:
        return "answered"
    except ClusterUnreachable as exc:
        return str(exc)
    return "answered"


def arrived(testbed, since: int, path: str, expect: bool) -> dict | None:
    """The audit event of the request for ``path``, waiting for it to be written when one is expected."""
    deadline = time.monotonic() + (10 if expect else 1)
    while True:
        found = [e for e in testbed.audit_events(CLUSTER, since) if e.get("requestURI") == path]
        if found or time.monotonic() > deadline:
            return found[-1] if found else None
        time.sleep(0.1)


def identity(event: dict) -> dict:
    return {"user": event.get("user"), "impersonatedUser": event.get("impersonatedUser"),
            "code": (event.get("responseStatus") or {}).get("code")}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_kubectl_and_the_collection_act_as_the_same_identity_or_both_refuse(testbed, world, tmp_path, case):
    inputs = case.build(tmp_path, world)
    home = tmp_path / "home"
    home.mkdir()
    mark = testbed.audit_mark(CLUSTER)
    paths = {tool: f"/api/v1/namespaces/{NS}/configmaps/{case.name}-{tool}" for tool in ("kubectl", "fabric")}
    try:
        by_kubectl = run_kubectl(inputs, home, paths["kubectl"])
        by_fabric = run_collection(inputs, home, paths["fabric"])
    finally:
        if inputs.proxy:
            inputs.proxy.close()
    expect = case.refused is None
    events = {tool: arrived(testbed, mark, path, expect) for tool, path in paths.items()}
    said = f"kubectl said: {by_kubectl.stderr.strip()[-800:]!r}; the collection said: {by_fabric!r}"
    if case.refused:
        assert events == {"kubectl": None, "fabric": None}, f"a request arrived although both should refuse; {said}"
        assert by_kubectl.returncode != 0, said
        assert case.refused in by_fabric, said
        return
    assert events["kubectl"] and events["fabric"], f"a request did not arrive: {events}; {said}"
    assert identity(events["fabric"]) == identity(events["kubectl"]), said
    if inputs.proxy:
        assert len(inputs.proxy.tunnels) == 2, f"both went through the proxy: {inputs.proxy.tunnels}"


def test_impersonating_kubeconfig_cannot_write_through_the_module(testbed, world, tmp_path, namespace_name):
    """The reported defect, through the real playbook: an admin credential that acts as a service
    account with no rights. kubectl is Forbidden; resource_set must be too, and write nothing."""
    admin = testbed.client(CLUSTER)
    admin.request("POST", "/api/v1/namespaces",
                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    inputs = as_service_account(tmp_path, world)
    config = inputs.collection_env["KUBECONFIG"]
    denied = subprocess.run([str(build.BIN / "kubectl"), "--kubeconfig", config, "create", "configmap", "probe",
                             "-n", namespace_name], capture_output=True, text=True, timeout=60, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    task = {"k8snet.fabric.resource_set": {
        "name": "impersonation-probe", "set_namespace": namespace_name, "kubeconfig": config,
        "objects": [{"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "probe", "namespace": namespace_name}, "data": {"a": "b"}}]}}
    mark = testbed.audit_mark(CLUSTER)
    result = run_playbook(tmp_path, [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    assert result.returncode != 0, result.stdout[-3000:]
    assert "forbidden" in result.stdout.lower() and "system:serviceaccount:default:nobody" in result.stdout
    seen = {(e.get("impersonatedUser") or {}).get("username") for e in testbed.audit_events(CLUSTER, mark)
            if namespace_name in e.get("requestURI", "")}
    assert seen == {"system:serviceaccount:default:nobody"}, f"every request acted as the account: {seen}"
    assert admin.request("GET", f"/api/v1/namespaces/{namespace_name}/configmaps/probe", allow=(404,)) is None
