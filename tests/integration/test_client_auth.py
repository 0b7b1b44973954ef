"""Every way the client authenticates, proven against the real apiserver by asking it who we are
(SelfSubjectReview): tokens (kubeconfig, tokenFile, api_key), exec plugins (token, client
certificate, renewal on 401, failure), tls-server-name and insecure-skip-tls-verify."""

from __future__ import annotations

import base64
import json
import socket
import stat
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_playbook
from tests.netstubs import Proxy

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ApiError, ClusterUnreachable

pytestmark = pytest.mark.testbed
CLUSTER = "us-east"


def whoami(client: Client) -> str:
    review = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review["status"]["userInfo"]["username"]


@pytest.fixture(scope="module")
def testbed_config(testbed):
    return yaml.safe_load(testbed.kubeconfig.read_text())


@pytest.fixture(scope="module")
def sa_token(testbed):
    """A real service-account token from the TokenRequest API."""
    admin = testbed.client(CLUSTER)
    ns = "client-auth"
    admin.request("POST", "/api/v1/namespaces", allow=(409,),
                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", allow=(409,),
                  body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}})
    answer = admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/reader/token",
                           body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": 3600}})
    return answer["status"]["token"]


def kubeconfig(tmp_path, testbed_config, user: dict, **cluster_changes) -> str:
    cluster = dict(next(c for c in testbed_config["clusters"] if c["name"] == CLUSTER)["cluster"])
    cluster.update(cluster_changes)
    cluster = {k: v for k, v in cluster.items() if v is not None}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def admin_user(testbed_config) -> dict:
    return next(u for u in testbed_config["users"] if u["name"] == "admin")["user"]


def script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def exec_credential(status: dict, api_version: str = "client.authentication.k8s.io/v1") -> str:
    return json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status})


SA_USER = "system:serviceaccount:client-auth:reader"


def test_token_in_kubeconfig_token_file_and_api_key(tmp_path, testbed_config, sa_token):
    assert whoami(Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, {"token": sa_token})})) == SA_USER
    (tmp_path / "sa.token").write_text(sa_token + "\n")
    path = kubeconfig(tmp_path, testbed_config, {"tokenFile": "sa.token"})  # relative to the file
    assert whoami(Client({"kubeconfig": path})) == SA_USER
    path = kubeconfig(tmp_path, testbed_config, {})
    assert whoami(Client({"kubeconfig": path, "api_key": sa_token})) == SA_USER


def test_a_rejected_token_is_a_401_that_does_not_quote_it(tmp_path, testbed_config):
    client = Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, {"token": "not-a-valid-token-9f8e"})})
    with pytest.raises(ApiError) as exc:
        whoami(client)
    assert exc.value.status == 401 and "not-a-valid-token-9f8e" not in str(exc.value)


def test_exec_plugin_token_and_client_certificate(tmp_path, testbed_config, sa_token):
    (tmp_path / "token.json").write_text(exec_credential({"token": sa_token}))
    # The plugin is told how it is called (KUBERNETES_EXEC_INFO) and gets the declared env.
    plugin = script(tmp_path, "token-plugin", '[ -n "$KUBERNETES_EXEC_INFO" ] && [ "$REGION" = eu ] '
                                              '|| exit 9\ncat "$(dirname "$0")/token.json"\n')
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "interactiveMode": "Never", "command": plugin,
                     "env": [{"name": "REGION", "value": "eu"}]}}
    assert whoami(Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, user)})) == SA_USER

    admin = admin_user(testbed_config)
    (tmp_path / "cert.json").write_text(exec_credential({
        "clientCertificateData": base64.b64decode(admin["client-certificate-data"]).decode(),
        "clientKeyData": base64.b64decode(admin["client-key-data"]).decode()}, "client.authentication.k8s.io/v1beta1"))
    plugin = script(tmp_path, "cert-plugin", 'cat "$(dirname "$0")/cert.json"\n')
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": plugin}}
    assert whoami(Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, user)})) == "k8snet-admin"
    leftovers = list(Path(tempfile.gettempdir()).glob("k8snet-*/key.pem"))
    assert not leftovers, "the private key must not stay on disk"


def test_exec_credential_is_renewed_once_on_401(tmp_path, testbed_config, sa_token):
    (tmp_path / "stale.json").write_text(exec_credential({"token": "expired-token"}))
    (tmp_path / "fresh.json").write_text(exec_credential({"token": sa_token}))
    plugin = script(tmp_path, "renewing", 'd="$(dirname "$0")"; echo x >> "$d/calls"\n'
                                          'if [ "$(wc -l < "$d/calls")" -eq 1 ]; then cat "$d/stale.json"; '
                                          'else cat "$d/fresh.json"; fi\n')
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "interactiveMode": "Never", "command": plugin}}
    assert whoami(Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, user)})) == SA_USER
    assert (tmp_path / "calls").read_text().count("x") == 2


def test_an_expired_exec_credential_is_renewed_before_the_next_request(tmp_path, testbed_config, sa_token):
    """A run longer than the plugin's credential: expirationTimestamp is honoured (client-go
    re-runs the plugin once the time has passed), without waiting for a 401."""
    from datetime import datetime, timedelta, timezone

    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    admin = admin_user(testbed_config)
    (tmp_path / "first.json").write_text(exec_credential({"token": sa_token, "expirationTimestamp": soon}))
    (tmp_path / "second.json").write_text(exec_credential({
        "clientCertificateData": base64.b64decode(admin["client-certificate-data"]).decode(),
        "clientKeyData": base64.b64decode(admin["client-key-data"]).decode()}))
    plugin = script(tmp_path, "expiring", 'd="$(dirname "$0")"; echo x >> "$d/calls"\n'
                                          'if [ "$(wc -l < "$d/calls")" -eq 1 ]; then cat "$d/first.json"; '
                                          'else cat "$d/second.json"; fi\n')
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "interactiveMode": "Never", "command": plugin}}
    client = Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, user)})
    assert whoami(client) == SA_USER and whoami(client) == SA_USER
    assert (tmp_path / "calls").read_text().count("x") == 1, "cached while valid"
    time.sleep(max(0.0, client._creds.exec_expires - time.time()) + 0.2)  # noqa: SLF001 - the credential's expiry
    assert whoami(client) == "k8snet-admin", "the plugin ran again and its certificate is used"
    assert (tmp_path / "calls").read_text().count("x") == 2


def test_failing_exec_plugin_says_why(tmp_path, testbed_config):
    plugin = script(tmp_path, "failing", 'echo "please run: cloud login" >&2; exit 3\n')
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "interactiveMode": "Never", "command": plugin,
                     "installHint": "install cloud-cli"}}
    with pytest.raises(ClusterUnreachable, match=r"exited 3: please run: cloud login \(install cloud-cli\)"):
        Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, user)})


def test_tls_server_name_and_verification(tmp_path, testbed_config):
    admin = admin_user(testbed_config)
    # The serving certificate names kubernetes.default.svc: checking against it passes...
    path = kubeconfig(tmp_path, testbed_config, admin, **{"tls-server-name": "kubernetes.default.svc"})
    assert whoami(Client({"kubeconfig": path})) == "k8snet-admin"
    # ...against a name it does not carry fails, before any request is answered.
    path = kubeconfig(tmp_path, testbed_config, admin, **{"tls-server-name": "api.example.com"})
    with pytest.raises(ClusterUnreachable, match="TLS failed"):
        whoami(Client({"kubeconfig": path}))
    # No CA given: the system trust store does not know the testbed CA.
    path = kubeconfig(tmp_path, testbed_config, admin, **{"certificate-authority-data": None})
    with pytest.raises(ClusterUnreachable, match="TLS failed"):
        whoami(Client({"kubeconfig": path}))
    path = kubeconfig(tmp_path, testbed_config, admin, **{"certificate-authority-data": None,
                                                          "insecure-skip-tls-verify": True})
    assert whoami(Client({"kubeconfig": path})) == "k8snet-admin"
    assert whoami(Client({"kubeconfig": kubeconfig(tmp_path, testbed_config, admin,
                                                   **{"certificate-authority-data": None}),
                          "validate_certs": False})) == "k8snet-admin"


@pytest.fixture
def connect_proxy():
    """A real HTTP CONNECT proxy on loopback that records the tunnels it opens."""
    proxy = Proxy("http")
    yield proxy.url, proxy.tunnels
    proxy.close()


def test_proxy_url_tunnels_through_the_proxy(tmp_path, testbed_config, connect_proxy):
    proxy, tunnels = connect_proxy
    admin = admin_user(testbed_config)
    path = kubeconfig(tmp_path, testbed_config, admin, **{"proxy-url": proxy})
    client = Client({"kubeconfig": path})
    assert whoami(client) == "k8snet-admin"
    assert tunnels == [client.server.split("//", 1)[1]], "one tunnel, to the API server"
    path = kubeconfig(tmp_path, testbed_config, admin, **{"proxy-url": "ftp://127.0.0.1:1080"})
    with pytest.raises(ClusterUnreachable, match="proxy-url 'ftp://127.0.0.1:1080' is not supported"):
        Client({"kubeconfig": path})


def test_a_kept_alive_connection_that_died_is_replaced(testbed):
    client = testbed.client(CLUSTER)
    assert whoami(client) == "k8snet-admin"
    [idle] = list(client._idle.queue)  # noqa: SLF001 - the one kept-alive connection
    idle.sock.shutdown(socket.SHUT_RDWR)  # as when the server or a middlebox drops it
    assert whoami(client) == "k8snet-admin"
    assert client.counts["POST"] == 3, "the dead connection cost one retry, on a new connection"


def test_awx_credential_environment_alone_reaches_the_cluster(testbed, sa_token, tmp_path):
    """What AWX's Kubernetes credential injects - K8S_AUTH_HOST, K8S_AUTH_API_KEY,
    K8S_AUTH_SSL_CA_CERT, K8S_AUTH_VERIFY_SSL - is all the module gets: no kubeconfig anywhere
    (HOME is empty, KUBECONFIG unset), no connection option in the task."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": "",
           "K8S_AUTH_HOST": testbed._state()["servers"][CLUSTER],
           "K8S_AUTH_API_KEY": sa_token, "K8S_AUTH_SSL_CA_CERT": str(testbed.run_dir / "pki" / "ca.crt"),
           "K8S_AUTH_VERIFY_SSL": "true"}
    task = {"k8snet.fabric.netpol_analyze": {"from_cluster": True, "namespaces": ["client-auth"]}, "register": "out"}
    result = run_playbook(tmp_path, [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}], "-vvv", env=env)
    # The reader account may not list pods: a 403 naming it proves who the cluster saw.
    assert SA_USER in result.stdout, result.stdout[-3000:]
    assert sa_token not in result.stdout + result.stderr, "the token never reaches the output"
    env["K8S_AUTH_VERIFY_SSL"] = "maybe"
    bad = run_playbook(tmp_path, [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}], env=env)
    assert bad.returncode != 0 and "K8S_AUTH_VERIFY_SSL: 'maybe' is not a boolean" in bad.stdout
