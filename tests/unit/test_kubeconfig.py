"""kubeconfig resolution: merging, relative paths, overrides and the refusals (pure, no cluster)."""

from __future__ import annotations

import base64

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import kubeconfig
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ClusterUnreachable

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def write(path, clusters=(), users=(), contexts=(), current=None):
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": n, "cluster": c} for n, c in clusters],
           "users": [{"name": n, "user": u} for n, u in users],
           "contexts": [{"name": n, "context": c} for n, c in contexts]}
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_first_file_wins_and_current_context_comes_from_the_first_that_sets_it(tmp_path):
    first = write(tmp_path / "a", clusters=[("c", {"server": "https://first:6443"})],
                  users=[("u", {"token": "t1"})], contexts=[("x", {"cluster": "c", "user": "u"})])
    second = write(tmp_path / "b", clusters=[("c", {"server": "https://second:6443"}),
                                             ("d", {"server": "https://d:6443/"})],
                   users=[("u", {"token": "t2"})],
                   contexts=[("x", {"cluster": "d", "user": "u"}), ("y", {"cluster": "d", "user": "u"})],
                   current="x")
    creds = kubeconfig.resolve({}, {"KUBECONFIG": f"{first}:{tmp_path / 'missing'}:{second}"})
    assert (creds.server, creds.token) == ("https://first:6443", "t1")
    other = kubeconfig.resolve({"context": "y"}, {"KUBECONFIG": f"{first}:{second}"})
    assert other.server == "https://d:6443"  # trailing slash dropped


def test_relative_paths_are_relative_to_the_kubeconfig_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "token").write_text("file-token\n")
    path = write(tmp_path / "sub" / "config",
                 clusters=[("c", {"server": "https://h:1", "certificate-authority": "ca.crt"})],
                 users=[("u", {"client-certificate": "u.crt", "client-key": "/abs/u.key",
                               "tokenFile": "token"})],
                 contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    creds = kubeconfig.resolve({"kubeconfig": path}, {})
    assert creds.ca_file == str(tmp_path / "sub" / "ca.crt")
    assert creds.cert_file == str(tmp_path / "sub" / "u.crt")
    assert creds.key_file == "/abs/u.key"
    assert creds.token == "file-token"


def test_inline_data_is_decoded_and_explicit_options_override(tmp_path):
    data = base64.b64encode(PEM.encode()).decode()
    path = write(tmp_path / "config",
                 clusters=[("c", {"server": "https://h:1", "certificate-authority-data": data,
                                  "insecure-skip-tls-verify": False, "tls-server-name": "api.internal"})],
                 users=[("u", {"client-certificate-data": data, "client-key-data": data, "token": "t"})],
                 contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    creds = kubeconfig.resolve({"kubeconfig": path}, {})
    assert creds.ca_data == PEM and creds.cert_data == PEM.encode() and creds.tls_server_name == "api.internal"
    creds = kubeconfig.resolve({"kubeconfig": path, "host": "https://other:2", "api_key": "k",
                                "ca_cert": "/ca", "validate_certs": False}, {})
    assert (creds.server, creds.token, creds.ca_file, creds.ca_data, creds.verify) == \
        ("https://other:2", "k", "/ca", None, False)


def test_host_alone_needs_no_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    creds = kubeconfig.resolve({"host": "https://h:6443", "api_key": "secret"}, {})
    assert (creds.server, creds.token) == ("https://h:6443", "secret")


def test_a_second_cluster_ignores_the_variables_that_name_the_first(tmp_path):
    """cluster_join's host connection: AWX's K8S_AUTH_HOST/API_KEY describe the member only."""
    path = write(tmp_path / "config", clusters=[("host", {"server": "https://host:6443"})],
                 users=[("u", {"token": "host-token"})], contexts=[("host", {"cluster": "host", "user": "u"})])
    environ = {"K8S_AUTH_HOST": "https://member:6443", "K8S_AUTH_API_KEY": "member-token",
               "K8S_AUTH_CONTEXT": "member", "K8S_AUTH_KUBECONFIG": path}
    as_member = kubeconfig.resolve({"context": "host"}, environ)
    assert (as_member.server, as_member.token) == ("https://member:6443", "member-token")
    as_host = kubeconfig.resolve({"context": "host"}, kubeconfig.without_cluster_environment(environ))
    assert (as_host.server, as_host.token) == ("https://host:6443", "host-token"), "the kubeconfig list still counts"


def test_in_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "token").write_text("sa-token")
    monkeypatch.setattr(kubeconfig, "IN_CLUSTER_DIR", str(tmp_path))
    creds = kubeconfig.resolve({}, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert (creds.server, creds.token, creds.ca_file) == ("https://[fd00::1]:443", "sa-token",
                                                          f"{tmp_path}/ca.crt")


@pytest.mark.parametrize("user, message", [
    ({"auth-provider": {"name": "oidc"}}, "legacy auth-provider 'oidc' is not supported"),
    ({"username": "a", "password": "b"}, "basic authentication"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}},
     "exec apiVersion 'client.authentication.k8s.io/v1alpha1'"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1"}}, "exec has no command"),
    ({"client-key-data": "not base64!"}, "client-key-data is not base64-encoded PEM"),
])
def test_refusals_name_the_context_and_the_field(tmp_path, user, message):
    path = write(tmp_path / "config", clusters=[("c", {"server": "https://h:1"})], users=[("u", user)],
                 contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    with pytest.raises(ClusterUnreachable, match="context 'x'") as exc:
        kubeconfig.resolve({"kubeconfig": path}, {})
    assert message in str(exc.value)


def test_unknown_context_lists_the_known_ones(tmp_path):
    path = write(tmp_path / "config", clusters=[("c", {"server": "https://h:1"})],
                 contexts=[("a", {"cluster": "c"}), ("b", {"cluster": "missing"})])
    with pytest.raises(ClusterUnreachable, match=r"context 'z' not found \(contexts: a, b\)"):
        kubeconfig.resolve({"kubeconfig": path, "context": "z"}, {})
    with pytest.raises(ClusterUnreachable, match="names cluster 'missing', which is not defined"):
        kubeconfig.resolve({"kubeconfig": path, "context": "b"}, {})
    with pytest.raises(ClusterUnreachable, match="no context given and no current-context"):
        kubeconfig.resolve({"kubeconfig": path}, {})
    with pytest.raises(ClusterUnreachable, match="does not exist"):
        kubeconfig.resolve({"kubeconfig": str(tmp_path / "nope")}, {})


def test_k8s_auth_environment_fills_only_missing_options():
    kc = kubeconfig
    env = {"K8S_AUTH_HOST": "https://env:6443", "K8S_AUTH_API_KEY": "t0ken", "K8S_AUTH_VERIFY_SSL": "no",
           "K8S_AUTH_CONTEXT": "ctx"}
    merged = kc.with_environment({"host": "https://option:6443", "api_key": None, "validate_certs": None}, env)
    assert merged["host"] == "https://option:6443", "an option wins over the environment"
    assert merged["api_key"] == "t0ken" and merged["validate_certs"] is False and merged["context"] == "ctx"
    creds = kc.resolve({}, {"K8S_AUTH_HOST": "https://env:6443/", "K8S_AUTH_API_KEY": "t0ken"})
    assert (creds.server, creds.token) == ("https://env:6443", "t0ken")
