# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the cluster is and who we are: kubeconfig, in-cluster config and explicit options.

Resolved the way kubectl (client-go's clientcmd) resolves them, without the ``kubernetes``
package (its import alone costs a module run ~0.1 s, and the engine needs none of its models).
What kubectl would refuse is refused here too, naming the field; nothing is silently dropped:

- the ``kubeconfig`` option, else ``K8S_AUTH_KUBECONFIG``, else ``KUBECONFIG`` (a list of files
  merged kubectl's way: the first file to define a name wins, the first current-context wins),
  else ``~/.kube/config`` unless ``host`` is given; else the in-cluster service account;
- relative file paths in a kubeconfig are relative to that file;
- credentials: client certificate (file or data), ``token``, ``tokenFile`` (re-read once a minute,
  and read over ``token`` when both are set, as client-go does), ``exec`` plugins
  (``client.authentication.k8s.io`` v1 and v1beta1: token and/or client certificate,
  ``provideClusterInfo``, ``expirationTimestamp``); an exec plugin is not run when the user entry
  already has a token or a client certificate (client-go uses those instead);
- impersonation: ``as``, ``as-uid``, ``as-groups``, ``as-user-extra`` (and the options
  ``impersonate_user``/``impersonate_groups``) sent as Impersonate-* headers on every request;
- explicit ``host``, ``api_key``, ``ca_cert``, ``client_cert``, ``client_key``,
  ``validate_certs`` override whatever the kubeconfig said, as kubectl's flags do.

Legacy ``auth-provider`` entries and basic auth are refused with a clear message: kubectl and
the API server dropped them (1.26 and 1.19).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ClusterUnreachable

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
# The cluster extension whose value an exec plugin with provideClusterInfo gets as spec.cluster.config.
EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec"
PROXY_SCHEMES = ("http", "socks5")
# client-go's CachedFileTokenSource re-reads a token file after a minute (projected service
# account tokens are rotated in place).
TOKEN_FILE_PERIOD = 60.0
# RFC 7230 token characters: what an Impersonate-Extra- header name carries unescaped; every other
# byte, and '%' itself, is %-encoded (client-go's headerKeyEscape; the API server unescapes).
_HEADER_TOKEN = frozenset(b"!#$&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def escape_extra_key(key: str) -> str:
    return "".join(chr(b) if b in _HEADER_TOKEN else f"%{b:02X}" for b in key.encode("utf-8"))


@dataclass
class Impersonation:
    """Whom the API server is asked to act as (it checks the caller may impersonate them)."""

    user: str
    uid: str | None = None
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, str]]:
        """One header line per group and per extra value, as client-go sends them (the API server
        reads every line; a comma-joined line would be one group)."""
        lines = [("Impersonate-User", self.user)]
        if self.uid:
            lines.append(("Impersonate-Uid", self.uid))
        lines += [("Impersonate-Group", group) for group in self.groups]
        for key in sorted(self.extra):
            lines += [("Impersonate-Extra-" + escape_extra_key(key), value) for value in self.extra[key]]
        return lines


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
    token_file: str | None = None       # re-read every TOKEN_FILE_PERIOD; wins over ``token``
    token_read_at: float | None = field(default=None, repr=False)
    verify: bool = True
    tls_server_name: str | None = None
    proxy_url: str | None = None
    impersonate: Impersonation | None = None
    exec_config: dict | None = field(default=None, repr=False)
    exec_cluster_config: object = field(default=None, repr=False)  # the cluster's exec extension
    exec_expires: float | None = None   # epoch seconds; the plugin runs again from then on
    source: str = ""                    # where this came from, for error messages

    def bearer(self) -> str | None:
        """The bearer token to send now: a token file is (re-)read once a minute; when it cannot
        be read the last token is kept, as client-go does."""
        if self.token_file and (self.token_read_at is None
                                or time.monotonic() - self.token_read_at >= TOKEN_FILE_PERIOD):
            try:
                self.token = _read_token(self.token_file, self.source, "tokenFile")
            except ClusterUnreachable:
                if not self.token:
                    raise
            self.token_read_at = time.monotonic()
        return self.token

    def exec_expired(self) -> bool:
        return bool(self.exec_config) and self.exec_expires is not None and time.time() >= self.exec_expires

    def exec_cluster(self) -> dict:
        """spec.cluster of the ExecCredential for a plugin with provideClusterInfo (client-go's
        ConfigToExecCluster: the CA as data even when the kubeconfig names a file)."""
        cluster: dict = {"server": self.server}
        if self.tls_server_name:
            cluster["tls-server-name"] = self.tls_server_name
        if not self.verify:
            cluster["insecure-skip-tls-verify"] = True
        ca = self.ca_data or (_read(self.ca_file, self.source, "certificate-authority") if self.ca_file else None)
        if ca:
            cluster["certificate-authority-data"] = base64.b64encode(ca.encode()).decode()
        if self.proxy_url:
            cluster["proxy-url"] = self.proxy_url
        if self.exec_cluster_config is not None:
            cluster["config"] = self.exec_cluster_config
        return cluster

    def run_exec(self) -> None:
        """Run the exec credential plugin and take the token and/or certificate it returns."""
        spec = self.exec_config or {}
        what = f"{self.source}: exec credential plugin {spec['command']!r}"
        command = [spec["command"], *(spec.get("args") or [])]
        env = dict(os.environ)
        for item in spec.get("env") or []:
            env[item["name"]] = item["value"]
        api_version = spec["apiVersion"]
        info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        if spec.get("provideClusterInfo"):
            info["spec"]["cluster"] = self.exec_cluster()
        env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        try:
            proc = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            hint = f" ({spec['installHint'].strip()})" if spec.get("installHint") else ""
            raise ClusterUnreachable(f"{what} could not run: {exc}{hint}") from exc
        if proc.returncode != 0:
            hint = f" ({spec['installHint'].strip()})" if spec.get("installHint") else ""
            raise ClusterUnreachable(
                f"{what} exited {proc.returncode}: {proc.stderr.decode('utf-8', 'replace').strip()[:500]}{hint}")
        try:
            answer = json.loads(proc.stdout)
            status = answer["status"]
            if not isinstance(status, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError) as exc:
            raise ClusterUnreachable(f"{what} did not print an ExecCredential with a status") from exc
        if answer.get("apiVersion") != api_version or answer.get("kind") != "ExecCredential":
            raise ClusterUnreachable(f"{what} is configured for {api_version} but printed "
                                     f"{answer.get('apiVersion')!r} {answer.get('kind')!r}, not an ExecCredential of it")
        token, cert, key = status.get("token"), status.get("clientCertificateData"), status.get("clientKeyData")
        if not (token or cert or key):
            raise ClusterUnreachable(f"{what} returned neither a token nor a client certificate")
        if bool(cert) != bool(key):
            raise ClusterUnreachable(f"{what} returned only one of clientCertificateData and clientKeyData")
        expires = status.get("expirationTimestamp")
        if expires:
            try:
                self.exec_expires = datetime.fromisoformat(str(expires)).timestamp()
            except ValueError as exc:
                raise ClusterUnreachable(f"{what} returned expirationTimestamp {expires!r}, "
                                         f"which is not an RFC 3339 time") from exc
        else:
            self.exec_expires = None
        self.token = token or None
        self.cert_data, self.key_data = (cert.encode(), key.encode()) if cert else (None, None)


# What kubernetes.core reads from the environment when the option is not given; AWX's
# Kubernetes/OpenShift credential injects K8S_AUTH_HOST, _API_KEY, _VERIFY_SSL, _SSL_CA_CERT.
ENV_OPTIONS = {"context": "K8S_AUTH_CONTEXT", "host": "K8S_AUTH_HOST", "api_key": "K8S_AUTH_API_KEY",
               "ca_cert": "K8S_AUTH_SSL_CA_CERT", "client_cert": "K8S_AUTH_CERT_FILE",
               "client_key": "K8S_AUTH_KEY_FILE", "validate_certs": "K8S_AUTH_VERIFY_SSL",
               "impersonate_user": "K8S_AUTH_IMPERSONATE_USER",
               "impersonate_groups": "K8S_AUTH_IMPERSONATE_GROUPS"}
# Variables that describe one cluster's connection. The impersonation variables are not among
# them: they narrow who a run acts as, and dropping them would widen it.
CLUSTER_VARIABLES = frozenset(ENV_OPTIONS[o] for o in ("context", "host", "api_key", "ca_cert", "client_cert",
                                                       "client_key", "validate_certs"))
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on", "y"), ("0", "false", "no", "off", "n")


def without_cluster_environment(environ) -> dict:
    """The environment minus the K8S_AUTH_* variables that name one cluster (host, token, CA,
    client certificate, context, verify): for a module's second cluster, which those variables
    describe no more than they describe any other (K8S_AUTH_KUBECONFIG stays: it lists files;
    the impersonation variables stay: they limit the run on every cluster)."""
    return {k: v for k, v in environ.items() if k not in CLUSTER_VARIABLES}


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
        elif option == "impersonate_groups":  # kubernetes.core: "Group1,Group2"
            value = [group.strip() for group in value.split(",") if group.strip()]
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
    # Options override field by field, as kubectl's flags override the kubeconfig.
    if params.get("host"):
        creds.server = params["host"]
    if params.get("api_key"):
        creds.token, creds.token_file, creds.exec_config = params["api_key"], None, None
    if params.get("ca_cert"):  # like --certificate-authority: replaces the CA and ends insecure-skip-tls-verify
        creds.ca_file, creds.ca_data, creds.verify = params["ca_cert"], None, True
    if params.get("client_cert"):
        creds.cert_file, creds.cert_data, creds.exec_config = params["client_cert"], None, None
    if params.get("client_key"):
        creds.key_file, creds.key_data = params["client_key"], None
    if params.get("validate_certs") is not None:
        creds.verify = params["validate_certs"]
    _impersonation_options(creds, params.get("impersonate_user"), params.get("impersonate_groups"))
    creds.server = creds.server.rstrip("/")
    return creds


def _impersonation_options(creds: Credentials, user: str | None, groups: list | None) -> None:
    """impersonate_user replaces the kubeconfig's ``as`` and impersonate_groups its ``as-groups``
    (like --as and --as-group); the kubeconfig's as-uid and as-user-extra stay, as with kubectl."""
    if not user and not groups:
        return
    base = creds.impersonate or Impersonation(user="")
    creds.impersonate = dataclasses.replace(base, user=user or base.user,
                                            groups=list(groups) if groups else list(base.groups))
    if not creds.impersonate.user:
        raise ClusterUnreachable("impersonate_groups: groups can only be impersonated together with a user "
                                 "(impersonate_user, or the kubeconfig user's 'as'); the API server refuses them alone")
    _check_header_values(creds.source or "options", "impersonate_user/impersonate_groups", creds.impersonate)


def merge(paths: list[str]) -> tuple[dict, str | None]:
    """The files merged kubectl's way (first definition of a name wins): clusters, users and
    contexts by name, each as (entry, folder of its file, the whole item); and the first
    current-context."""
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
    """Merge the files kubectl's way and resolve one context, refusing what kubectl refuses."""
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
    source = f"{where} context {name!r}"
    creds = _cluster_credentials(cluster, cluster_base, f"{source} cluster {ctx['cluster']!r}")
    creds.source = source
    _user_credentials(creds, user, user_base, f"{source} user {ctx.get('user')!r}")
    return creds


def _cluster_credentials(cluster: dict, base: str, where: str) -> Credentials:
    if not cluster.get("server"):
        raise ClusterUnreachable(f"{where}: server is missing")
    if cluster.get("certificate-authority") and cluster.get("certificate-authority-data"):
        raise ClusterUnreachable(f"{where}: certificate-authority and certificate-authority-data are both set "
                                 f"(kubectl refuses the pair); keep one")
    creds = Credentials(
        server=cluster["server"],
        ca_file=_path(cluster.get("certificate-authority"), base),
        ca_data=_pem(cluster.get("certificate-authority-data"), where, "certificate-authority-data"),
        verify=not cluster.get("insecure-skip-tls-verify", False),
        tls_server_name=cluster.get("tls-server-name"),
        proxy_url=cluster.get("proxy-url"),
    )
    if creds.ca_file and not os.access(creds.ca_file, os.R_OK):
        raise ClusterUnreachable(f"{where}: certificate-authority {creds.ca_file!r} cannot be read")
    if not creds.verify and (creds.ca_file or creds.ca_data):
        raise ClusterUnreachable(f"{where}: insecure-skip-tls-verify is set together with a certificate authority "
                                 f"(kubectl refuses the pair: 'specifying a root certificates file with the insecure "
                                 f"flag is not allowed'); remove one")
    if creds.proxy_url:
        proxy = urlsplit(str(creds.proxy_url))
        if proxy.scheme not in PROXY_SCHEMES or not proxy.hostname:
            raise ClusterUnreachable(f"{where}: proxy-url {creds.proxy_url!r} is not supported: give an http:// or "
                                     f"socks5:// proxy (TLS to an https:// proxy is not implemented)")
    for extension in cluster.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == EXEC_CLUSTER_EXTENSION:
            creds.exec_cluster_config = extension.get("extension")
    return creds


def _user_credentials(creds: Credentials, user: dict, base: str | None, where: str) -> None:
    """The user entry's credentials and impersonation into ``creds`` (clientcmd's validateAuthInfo
    refusals, then its precedence: token/tokenFile or a client certificate make exec unused)."""
    if user.get("auth-provider"):
        raise ClusterUnreachable(
            f"{where}: the legacy auth-provider {user['auth-provider'].get('name')!r} is not supported "
            f"(kubectl removed it in 1.26); use its exec credential plugin instead")
    if user.get("username") or user.get("password"):
        raise ClusterUnreachable(f"{where}: basic authentication (username/password) is not supported "
                                 f"by Kubernetes since 1.19")
    for file_key, data_key in (("client-certificate", "client-certificate-data"), ("client-key", "client-key-data")):
        if user.get(file_key) and user.get(data_key):
            raise ClusterUnreachable(f"{where}: {file_key} and {data_key} are both set (kubectl refuses the pair)")
    has_cert = bool(user.get("client-certificate") or user.get("client-certificate-data"))
    if has_cert and not (user.get("client-key") or user.get("client-key-data")):
        raise ClusterUnreachable(f"{where}: client-certificate is set without client-key or client-key-data")
    creds.cert_file = _path(user.get("client-certificate"), base)
    creds.key_file = _path(user.get("client-key"), base)
    for what, path in (("client-certificate", creds.cert_file), ("client-key", creds.key_file)):
        if path and not os.access(path, os.R_OK):
            raise ClusterUnreachable(f"{where}: {what} {path!r} cannot be read")
    cert_data = _pem(user.get("client-certificate-data"), where, "client-certificate-data")
    key_data = _pem(user.get("client-key-data"), where, "client-key-data")
    creds.cert_data = cert_data.encode() if cert_data else None
    creds.key_data = key_data.encode() if key_data else None
    if user.get("token"):
        creds.token = str(user["token"])
    if user.get("tokenFile"):
        creds.token_file = _path(user["tokenFile"], base)
        creds.bearer()  # read now: an unreadable or empty file fails before anything is sent
    if user.get("exec"):
        spec = _exec_spec(user["exec"], base, where)
        if not (creds.token or creds.token_file or has_cert):
            creds.exec_config = spec
    creds.impersonate = _impersonation(user, where)


def _exec_spec(spec, base: str | None, where: str) -> dict:
    if not isinstance(spec, dict):
        raise ClusterUnreachable(f"{where}: exec is not a mapping")
    spec = dict(spec)
    if not spec.get("command"):
        raise ClusterUnreachable(f"{where}: exec has no command")
    version = spec.get("apiVersion")
    if not version:
        raise ClusterUnreachable(f"{where}: exec apiVersion is missing (kubectl requires it: "
                                 f"{' or '.join(EXEC_API_VERSIONS)})")
    if version not in EXEC_API_VERSIONS:
        raise ClusterUnreachable(f"{where}: exec apiVersion {version!r} is not one of {', '.join(EXEC_API_VERSIONS)}")
    mode = spec.get("interactiveMode") or ("IfAvailable" if version.endswith("/v1beta1") else None)
    if mode is None:
        raise ClusterUnreachable(f"{where}: exec interactiveMode is missing (kubectl requires it with {version}: "
                                 f"Never or IfAvailable)")
    if mode not in EXEC_INTERACTIVE_MODES:
        raise ClusterUnreachable(f"{where}: exec interactiveMode {mode!r} is not one of {', '.join(EXEC_INTERACTIVE_MODES)}")
    if mode == "Always":
        raise ClusterUnreachable(f"{where}: exec interactiveMode 'Always' needs a terminal, and a module never has one "
                                 f"(kubectl refuses it too without one); use Never or IfAvailable")
    for index, item in enumerate(spec.get("env") or []):
        if not isinstance(item, dict) or not item.get("name"):
            raise ClusterUnreachable(f"{where}: exec env[{index}] has no name")
        item["value"] = str(item.get("value") if item.get("value") is not None else "")
    if not isinstance(spec.get("args") or [], list):
        raise ClusterUnreachable(f"{where}: exec args is not a list")
    spec["args"] = [str(arg) for arg in spec.get("args") or []]
    if os.sep in spec["command"] and not os.path.isabs(spec["command"]) and base is not None:
        spec["command"] = os.path.join(base, spec["command"])
    return spec


def _impersonation(user: dict, where: str) -> Impersonation | None:
    name, uid = user.get("as"), user.get("as-uid")
    groups, extra = user.get("as-groups") or [], user.get("as-user-extra") or {}
    if not (name or uid or groups or extra):
        return None
    if not name:
        raise ClusterUnreachable(f"{where}: as-uid, as-groups or as-user-extra is set without 'as' (kubectl refuses "
                                 f"to impersonate them without a user)")
    if not isinstance(name, str) or (uid is not None and not isinstance(uid, str)):
        raise ClusterUnreachable(f"{where}: 'as' and 'as-uid' must be strings")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ClusterUnreachable(f"{where}: as-groups must be a list of strings, not {groups!r}")
    if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v) for k, v in extra.items()):
        raise ClusterUnreachable(f"{where}: as-user-extra must map names to lists of strings, not {extra!r}")
    found = Impersonation(user=name, uid=uid or None, groups=list(groups), extra={k: list(v) for k, v in extra.items()})
    _check_header_values(where, "as", found)
    return found


def _check_header_values(where: str, what: str, impersonation: Impersonation) -> None:
    for _name, value in impersonation.headers():
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ClusterUnreachable(f"{where}: {what}: {value!r} holds a control character, which no HTTP header carries")


def in_cluster(environ) -> Credentials:
    host, port = environ["KUBERNETES_SERVICE_HOST"], environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    creds = Credentials(server=f"https://{host}:{port}", ca_file=f"{IN_CLUSTER_DIR}/ca.crt",
                        token_file=f"{IN_CLUSTER_DIR}/token", source="in-cluster service account")
    creds.bearer()
    return creds


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
            return handle.read()
    except OSError as exc:
        raise ClusterUnreachable(f"{source}: {what} {path!r} cannot be read: {exc}") from exc


def _read_token(path: str, source: str, what: str) -> str:
    token = _read(path, source, what).strip()
    if not token:
        raise ClusterUnreachable(f"{source}: {what} {path!r} is empty")
    return token
