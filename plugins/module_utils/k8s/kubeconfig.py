# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the cluster is and who we are: kubeconfig, in-cluster config and explicit options.

Resolved the way kubectl and kubernetes.core resolve them, without the ``kubernetes`` package
(its import alone costs a module run ~0.1 s, and the engine needs none of its models):

- the ``kubeconfig`` option, else ``K8S_AUTH_KUBECONFIG``, else ``KUBECONFIG`` (a list of files
  merged kubectl's way: the first file to define a name wins), else ``~/.kube/config`` unless
  ``host`` is given; else the in-cluster service account;
- relative file paths in a kubeconfig are relative to that file;
- credentials: client certificate (file or data), ``token``, ``tokenFile``, ``exec`` plugins
  (``client.authentication.k8s.io`` v1 and v1beta1: token or client certificate);
- explicit ``host``, ``api_key``, ``ca_cert``, ``client_cert``, ``client_key``,
  ``validate_certs`` override whatever the kubeconfig said.

Legacy ``auth-provider`` entries and basic auth are refused with a clear message: kubectl and
the API server dropped them (1.26 and 1.19).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass, field


from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ClusterUnreachable

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


@dataclass
class Credentials:
    """Everything the client needs to reach one API server as one user."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None          # PEM text
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None      # PEM
    key_data: bytes | None = None       # PEM
    token: str | None = None
    verify: bool = True
    tls_server_name: str | None = None
    proxy_url: str | None = None
    exec_config: dict | None = field(default=None, repr=False)
    source: str = ""                    # where this came from, for error messages

    def run_exec(self) -> None:
        """Run the exec credential plugin and take the token or certificate it returns."""
        spec = self.exec_config or {}
        command = [spec["command"], *(spec.get("args") or [])]
        env = dict(os.environ)
        for item in spec.get("env") or []:
            env[item["name"]] = item["value"]
        api_version = spec.get("apiVersion") or EXEC_API_VERSIONS[0]
        env["KUBERNETES_EXEC_INFO"] = json.dumps({
            "apiVersion": api_version, "kind": "ExecCredential",
            "spec": {"interactive": False}})
        try:
            proc = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnreachable(f"{self.source}: exec credential plugin {spec['command']!r} "
                                     f"could not run: {exc}") from exc
        if proc.returncode != 0:
            hint = f" ({spec['installHint'].strip()})" if spec.get("installHint") else ""
            raise ClusterUnreachable(
                f"{self.source}: exec credential plugin {spec['command']!r} exited {proc.returncode}: "
                f"{proc.stderr.decode('utf-8', 'replace').strip()[:500]}{hint}")
        try:
            status = json.loads(proc.stdout)["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ClusterUnreachable(f"{self.source}: exec credential plugin {spec['command']!r} did "
                                     f"not print an ExecCredential with a status") from exc
        if status.get("token"):
            self.token = status["token"]
        elif status.get("clientCertificateData") and status.get("clientKeyData"):
            self.cert_data = status["clientCertificateData"].encode()
            self.key_data = status["clientKeyData"].encode()
        else:
            raise ClusterUnreachable(f"{self.source}: exec credential plugin {spec['command']!r} "
                                     f"returned neither a token nor a client certificate")


# What kubernetes.core reads from the environment when the option is not given; AWX's
# Kubernetes/OpenShift credential injects K8S_AUTH_HOST, _API_KEY, _VERIFY_SSL, _SSL_CA_CERT.
ENV_OPTIONS = {"context": "K8S_AUTH_CONTEXT", "host": "K8S_AUTH_HOST", "api_key": "K8S_AUTH_API_KEY",
               "ca_cert": "K8S_AUTH_SSL_CA_CERT", "client_cert": "K8S_AUTH_CERT_FILE",
               "client_key": "K8S_AUTH_KEY_FILE", "validate_certs": "K8S_AUTH_VERIFY_SSL"}
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on", "y"), ("0", "false", "no", "off", "n")


def without_cluster_environment(environ) -> dict:
    """The environment minus the K8S_AUTH_* variables that name one cluster (host, token, CA,
    client certificate, context, verify): for a module's second cluster, which those variables
    describe no more than they describe any other (K8S_AUTH_KUBECONFIG stays: it lists files)."""
    return {k: v for k, v in environ.items() if k not in ENV_OPTIONS.values()}


def with_environment(params: dict, environ) -> dict:
    """The options, each missing one taken from its K8S_AUTH_* variable (options win)."""
    merged = dict(params)
    for option, variable in ENV_OPTIONS.items():
        value = environ.get(variable)
        if merged.get(option) is not None or value in (None, ""):
            continue
        if option == "validate_certs":
            if value.lower() not in TRUE_WORDS + FALSE_WORDS:
                raise ClusterUnreachable(f"{variable}: {value!r} is not a boolean (true/false)")
            value = value.lower() in TRUE_WORDS
        merged[option] = value
    return merged


def resolve(params: dict, environ: dict | None = None) -> Credentials:
    """Credentials from module parameters (kubernetes.core names) and the environment."""
    environ = os.environ if environ is None else environ
    params = with_environment(params, environ)
    kubeconfig = params.get("kubeconfig") or environ.get("K8S_AUTH_KUBECONFIG") or environ.get("KUBECONFIG")
    default_path = os.path.expanduser("~/.kube/config")
    if kubeconfig or (not params.get("host") and os.path.exists(default_path)):
        paths = [os.path.expanduser(p) for p in (kubeconfig or default_path).split(os.pathsep) if p]
        creds = from_kubeconfig(paths, params.get("context"))
    elif params.get("host"):
        creds = Credentials(server=params["host"], source="host option")
    elif environ.get("KUBERNETES_SERVICE_HOST"):
        creds = in_cluster(environ)
    else:
        raise ClusterUnreachable("no cluster given: set kubeconfig (or K8S_AUTH_KUBECONFIG) or host")
    if params.get("host"):
        creds.server = params["host"]
    if params.get("api_key"):
        creds.token, creds.exec_config = params["api_key"], None
    if params.get("ca_cert"):
        creds.ca_file, creds.ca_data = params["ca_cert"], None
    if params.get("client_cert"):
        creds.cert_file, creds.cert_data = params["client_cert"], None
    if params.get("client_key"):
        creds.key_file, creds.key_data = params["client_key"], None
    if params.get("validate_certs") is not None:
        creds.verify = params["validate_certs"]
    creds.server = creds.server.rstrip("/")
    return creds


def merge(paths: list[str]) -> tuple[dict, str | None]:
    """The files merged kubectl's way (first definition of a name wins): clusters, users and
    contexts by name, each as (entry, folder of its file); and the first current-context."""
    import yaml  # ansible-core's own dependency; imported here so importing the engine never needs it

    merged: dict[str, dict] = {"clusters": {}, "users": {}, "contexts": {}}
    current = None
    for path in paths:
        if not os.path.exists(path):
            if len(paths) == 1:
                raise ClusterUnreachable(f"kubeconfig: file {path!r} does not exist")
            continue  # kubectl skips missing entries of a KUBECONFIG list
        try:
            with open(path, encoding="utf-8") as handle:
                doc = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterUnreachable(f"kubeconfig {path!r}: cannot be read: {exc}") from exc
        if not isinstance(doc, dict):
            raise ClusterUnreachable(f"kubeconfig {path!r}: not a kubeconfig mapping")
        base = os.path.dirname(os.path.abspath(path))
        current = current or doc.get("current-context")
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in merged[section]:
                    merged[section][entry.get("name")] = (dict(entry.get(inner) or {}), base)
    return merged, current


def from_kubeconfig(paths: list[str], context: str | None) -> Credentials:
    """Merge the files kubectl's way and resolve one context."""
    merged, current = merge(paths)
    name = context or current
    where = f"kubeconfig {os.pathsep.join(paths)}"
    if not name:
        raise ClusterUnreachable(f"{where}: no context given and no current-context set")
    if name not in merged["contexts"]:
        known = ", ".join(sorted(str(n) for n in merged["contexts"])) or "none"
        raise ClusterUnreachable(f"{where}: context {name!r} not found (contexts: {known})")
    ctx, _unused = merged["contexts"][name]
    if ctx.get("cluster") not in merged["clusters"]:
        raise ClusterUnreachable(f"{where}: context {name!r} names cluster {ctx.get('cluster')!r}, "
                                 f"which is not defined")
    cluster, cluster_base = merged["clusters"][ctx["cluster"]]
    user, user_base = merged["users"].get(ctx.get("user"), ({}, None))
    if ctx.get("user") and ctx["user"] not in merged["users"]:
        raise ClusterUnreachable(f"{where}: context {name!r} names user {ctx['user']!r}, which is not defined")
    if not cluster.get("server"):
        raise ClusterUnreachable(f"{where}: cluster {ctx['cluster']!r} has no server")
    source = f"{where} context {name!r}"
    creds = Credentials(
        server=cluster["server"],
        ca_file=_path(cluster.get("certificate-authority"), cluster_base),
        ca_data=_pem(cluster.get("certificate-authority-data"), source, "certificate-authority-data"),
        verify=not cluster.get("insecure-skip-tls-verify", False),
        tls_server_name=cluster.get("tls-server-name"),
        proxy_url=cluster.get("proxy-url"),
        source=source,
    )
    if user.get("auth-provider"):
        raise ClusterUnreachable(
            f"{source}: the legacy auth-provider {user['auth-provider'].get('name')!r} is not supported "
            f"(kubectl removed it in 1.26); use its exec credential plugin instead")
    if user.get("username") or user.get("password"):
        raise ClusterUnreachable(f"{source}: basic authentication (username/password) is not supported "
                                 f"by Kubernetes since 1.19")
    creds.cert_file = _path(user.get("client-certificate"), user_base)
    creds.key_file = _path(user.get("client-key"), user_base)
    cert_data = _pem(user.get("client-certificate-data"), source, "client-certificate-data")
    key_data = _pem(user.get("client-key-data"), source, "client-key-data")
    creds.cert_data = cert_data.encode() if cert_data else None
    creds.key_data = key_data.encode() if key_data else None
    if user.get("token"):
        creds.token = user["token"]
    elif user.get("tokenFile"):
        creds.token = _read(_path(user["tokenFile"], user_base), source, "tokenFile")
    if user.get("exec"):
        spec = dict(user["exec"])
        if spec.get("apiVersion") and spec["apiVersion"] not in EXEC_API_VERSIONS:
            raise ClusterUnreachable(f"{source}: exec apiVersion {spec['apiVersion']!r} is not one of "
                                     f"{', '.join(EXEC_API_VERSIONS)}")
        if not spec.get("command"):
            raise ClusterUnreachable(f"{source}: exec has no command")
        if os.sep in spec["command"] and not os.path.isabs(spec["command"]):
            spec["command"] = os.path.join(user_base, spec["command"])
        creds.exec_config = spec
    return creds


def in_cluster(environ) -> Credentials:
    host, port = environ["KUBERNETES_SERVICE_HOST"], environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    source = "in-cluster service account"
    return Credentials(server=f"https://{host}:{port}", ca_file=f"{IN_CLUSTER_DIR}/ca.crt",
                       token=_read(f"{IN_CLUSTER_DIR}/token", source, "token"), source=source)


def _path(value: str | None, base: str | None) -> str | None:
    if not value:
        return None
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) or base is None else os.path.join(base, value)


def _pem(value: str | None, source: str, what: str) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClusterUnreachable(f"{source}: {what} is not base64-encoded PEM") from exc


def _read(path: str, source: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ClusterUnreachable(f"{source}: {what} {path!r} cannot be read: {exc}") from exc
