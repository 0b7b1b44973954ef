"""kubeconfig resolution: merging, relative paths, overrides and the refusals (pure, no cluster)."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import kubeconfig
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ClusterUnreachable

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
    for name in ("sub/ca.crt", "sub/u.crt", "u.key"):
        (tmp_path / name).write_text(PEM)
    path = write(tmp_path / "sub" / "config",
                 clusters=[("c", {"server": "https://h:1", "certificate-authority": "ca.crt"})],
                 users=[("u", {"client-certificate": "u.crt", "client-key": str(tmp_path / "u.key"),
                               "tokenFile": "token"})],
                 contexts=[("x", {"cluster": "c", "user": "u"})], current="x")
    creds = kubeconfig.resolve({"kubeconfig": path}, {})
    assert creds.ca_file == str(tmp_path / "sub" / "ca.crt")
    assert creds.cert_file == str(tmp_path / "sub" / "u.crt")
    assert creds.key_file == str(tmp_path / "u.key")
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


def one_user(tmp_path, user: dict, **cluster) -> str:
    return write(tmp_path / "config", clusters=[("c", {"server": "https://h:1", **cluster})], users=[("u", user)],
                 contexts=[("x", {"cluster": "c", "user": "u"})], current="x")


def test_impersonation_is_sent_as_client_go_sends_it(tmp_path):
    path = one_user(tmp_path, {"token": "t", "as": "jane", "as-uid": "42", "as-groups": ["dev", "ops"],
                               "as-user-extra": {"scopes.example.com/team%": ["a", "b"], "reason": ["audit"]}})
    creds = kubeconfig.resolve({"kubeconfig": path}, {})
    assert creds.impersonate.headers() == [
        ("Impersonate-User", "jane"), ("Impersonate-Uid", "42"),
        ("Impersonate-Group", "dev"), ("Impersonate-Group", "ops"),
        ("Impersonate-Extra-reason", "audit"),
        # '/' and '%' are not header token characters: %-encoded (the API server unescapes them)
        ("Impersonate-Extra-scopes.example.com%2Fteam%25", "a"), ("Impersonate-Extra-scopes.example.com%2Fteam%25", "b")]
    # The options replace user and groups, as --as and --as-group do; uid and extra stay.
    creds = kubeconfig.resolve({"kubeconfig": path}, {"K8S_AUTH_IMPERSONATE_USER": "bob",
                                                      "K8S_AUTH_IMPERSONATE_GROUPS": "qa, ,audit"})
    assert (creds.impersonate.user, creds.impersonate.groups, creds.impersonate.uid) == ("bob", ["qa", "audit"], "42")
    plain = one_user(tmp_path, {"token": "t"})
    assert kubeconfig.resolve({"kubeconfig": plain}, {}).impersonate is None
    with pytest.raises(ClusterUnreachable, match="impersonate_groups: groups can only be impersonated together"):
        kubeconfig.resolve({"kubeconfig": plain, "impersonate_groups": ["g"]}, {})


def test_token_file_wins_over_token_and_is_read_again_after_a_minute(tmp_path):
    (tmp_path / "token").write_text("from-file\n")
    creds = kubeconfig.resolve({"kubeconfig": one_user(tmp_path, {"token": "inline", "tokenFile": "token"})}, {})
    assert creds.bearer() == "from-file"
    (tmp_path / "token").write_text("rotated\n")
    assert creds.bearer() == "from-file", "cached for a minute"
    creds.token_read_at -= kubeconfig.TOKEN_FILE_PERIOD
    assert creds.bearer() == "rotated"
    (tmp_path / "token").unlink()
    creds.token_read_at -= kubeconfig.TOKEN_FILE_PERIOD
    assert creds.bearer() == "rotated", "an unreadable file keeps the last token"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ClusterUnreachable, match="tokenFile .* is empty"):
        kubeconfig.resolve({"kubeconfig": one_user(tmp_path, {"tokenFile": "empty"})}, {})


def test_exec_is_not_run_when_the_user_has_a_token_or_a_certificate(tmp_path):
    exec_spec = {"apiVersion": "client.authentication.k8s.io/v1", "command": "plugin", "interactiveMode": "Never"}
    data = base64.b64encode(PEM.encode()).decode()
    for user in ({"token": "t"}, {"client-certificate-data": data, "client-key-data": data}):
        creds = kubeconfig.resolve({"kubeconfig": one_user(tmp_path, {**user, "exec": exec_spec})}, {})
        assert creds.exec_config is None
    creds = kubeconfig.resolve({"kubeconfig": one_user(tmp_path, {"exec": exec_spec})}, {})
    assert creds.exec_config["command"] == "plugin"


@pytest.mark.parametrize("user, cluster, message", [
    ({"exec": {"command": "x"}}, {}, "exec apiVersion is missing"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}}, {},
     "exec interactiveMode is missing"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "x", "interactiveMode": "Always"}},
     {}, "interactiveMode 'Always' needs a terminal"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "x", "interactiveMode": "Sometimes"}},
     {}, "interactiveMode 'Sometimes' is not one of"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "x", "env": [{"value": "v"}]}},
     {}, r"exec env\[0\] has no name"),
    ({"as-groups": ["g"], "token": "t"}, {}, "set without 'as'"),
    ({"as": "a", "as-groups": "g", "token": "t"}, {}, "as-groups must be a list of strings"),
    ({"as": "a\nb", "token": "t"}, {}, "control character"),
    ({"client-certificate": "a.crt", "client-certificate-data": "eA==", "client-key": "a.key"}, {},
     "client-certificate and client-certificate-data are both set"),
    ({"client-certificate": "a.crt"}, {}, "client-certificate is set without client-key"),
    ({"client-certificate": "a.crt", "client-key": "a.key"}, {}, "client-certificate .*a.crt' cannot be read"),
    ({"token": "t"}, {"certificate-authority": "ca.crt", "certificate-authority-data": "eA=="},
     "certificate-authority and certificate-authority-data are both set"),
    ({"token": "t"}, {"certificate-authority": "missing.crt"}, "certificate-authority .* cannot be read"),
    ({"token": "t"}, {"certificate-authority-data": base64.b64encode(PEM.encode()).decode(),
                      "insecure-skip-tls-verify": True}, "insecure-skip-tls-verify is set together with"),
    ({"token": "t"}, {"proxy-url": "https://proxy:3128"}, "proxy-url 'https://proxy:3128' is not supported"),
    ({"token": "t"}, {"proxy-url": "ftp://proxy"}, "is not supported"),
])
def test_what_kubectl_refuses_is_refused_naming_the_field(tmp_path, user, cluster, message):
    with pytest.raises(ClusterUnreachable, match=message):
        kubeconfig.resolve({"kubeconfig": one_user(tmp_path, user, **cluster)}, {})


def test_options_override_like_kubectl_flags(tmp_path):
    path = one_user(tmp_path, {"token": "t"}, **{"insecure-skip-tls-verify": True})
    creds = kubeconfig.resolve({"kubeconfig": path, "ca_cert": "/etc/ca.crt"}, {})
    assert (creds.ca_file, creds.verify) == ("/etc/ca.crt", True), "--certificate-authority ends insecure"
    path = one_user(tmp_path, {"token": "t"}, **{"proxy-url": "socks5://user:pw@127.0.0.1:1080"})
    assert kubeconfig.resolve({"kubeconfig": path}, {}).proxy_url == "socks5://user:pw@127.0.0.1:1080"


def plugin(tmp_path, output: dict, name="plugin") -> str:
    (tmp_path / f"{name}.json").write_text(json.dumps(output))
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\nprintf "%s" "$KUBERNETES_EXEC_INFO" > "{tmp_path}/{name}.info"\n'
                      f'cat "{tmp_path}/{name}.json"\n')
    script.chmod(0o755)
    return str(script)


V1 = "client.authentication.k8s.io/v1"


def test_exec_gets_the_cluster_with_provide_cluster_info_and_honours_expiry(tmp_path):
    ca = base64.b64encode(PEM.encode()).decode()
    command = plugin(tmp_path, {"apiVersion": V1, "kind": "ExecCredential",
                                "status": {"token": "tok", "expirationTimestamp": "2001-01-01T00:00:00Z"}})
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
           "clusters": [{"name": "c", "cluster": {
               "server": "https://h:1", "certificate-authority-data": ca, "tls-server-name": "api.internal",
               "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"audience": "k8s"}}]}}],
           "users": [{"name": "u", "user": {"exec": {"apiVersion": V1, "command": command,
                                                     "interactiveMode": "Never", "provideClusterInfo": True}}}],
           "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}
    (tmp_path / "config").write_text(yaml.safe_dump(doc))
    creds = kubeconfig.resolve({"kubeconfig": str(tmp_path / "config")}, {})
    creds.run_exec()
    info = json.loads((tmp_path / "plugin.info").read_text())
    assert info == {"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": False, "cluster": {
        "server": "https://h:1", "tls-server-name": "api.internal", "certificate-authority-data": ca,
        "config": {"audience": "k8s"}}}}
    assert creds.token == "tok" and creds.exec_expired(), "a past expirationTimestamp means: run it again"


@pytest.mark.parametrize("output, message", [
    ({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": {"token": "t"}},
     "configured for client.authentication.k8s.io/v1 but printed"),
    ({"apiVersion": V1, "kind": "ExecCredential", "status": {}}, "neither a token nor a client certificate"),
    ({"apiVersion": V1, "kind": "ExecCredential", "status": {"clientCertificateData": "x"}}, "only one of"),
    ({"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "t", "expirationTimestamp": "soon"}},
     "not an RFC 3339 time"),
    ({"apiVersion": V1, "kind": "ExecCredential"}, "did not print an ExecCredential with a status"),
])
def test_exec_answers_kubectl_refuses_are_refused(tmp_path, output, message):
    path = one_user(tmp_path, {"exec": {"apiVersion": V1, "command": plugin(tmp_path, output),
                                        "interactiveMode": "IfAvailable"}})
    creds = kubeconfig.resolve({"kubeconfig": path}, {})
    with pytest.raises(ClusterUnreachable, match=message):
        creds.run_exec()
