# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 4 as data: K3s host configs and the edge site's Kubernetes objects.

Pure functions from a site description (built by the edge_k3s role from inventory variables)
to plain dicts; the role writes the host files and hands the objects to resource_set.
"""

from __future__ import annotations

import difflib
import re

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks, ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import diff
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import CLUSTER_DNS_LABELS, CLUSTER_DNS_NAMESPACE

# What `k3s server --disable` accepts.
DISABLE_CHOICES = ("coredns", "servicelb", "traefik", "local-storage", "metrics-server", "runtimes")
# Keys only `k3s server` understands; an agent given them refuses to start.
SERVER_ONLY_KEYS = ("cluster-init", "cluster-cidr", "service-cidr", "cluster-dns", "cluster-domain",
                    "disable", "tls-san", "write-kubeconfig-mode", "flannel-backend", "secrets-encryption",
                    # and what users add through edge_k3s_agent_config by mistake (`k3s server --help` only)
                    "https-listen-port", "advertise-address", "advertise-port", "bind-address", "cluster-reset",
                    "datastore-endpoint", "disable-network-policy", "disable-helm-controller", "disable-scheduler",
                    "disable-cloud-controller", "disable-kube-proxy", "embedded-registry", "egress-selector-mode",
                    "kube-apiserver-arg", "kube-controller-manager-arg", "kube-scheduler-arg",
                    "kube-cloud-controller-manager-arg", "etcd-expose-metrics", "etcd-snapshot-retention",
                    "etcd-snapshot-schedule-cron", "etcd-disable-snapshots")
LABEL = re.compile(r"^(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?"
                   r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?=([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
TAINT = re.compile(r"^[^=:\s]+(=[^:\s]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$")
SITE_LABEL = "edge-location"
API_PORT = 6443
PROCESSING_NS = "edge-processing"
MONITORING_NS = "edge-monitoring"
METALLB_NS = "metallb-system"


FLANNEL_BACKENDS = ("vxlan", "host-gw", "wireguard-native", "none")
STORAGE_MODES = ("local-path", "static")


# -- validation ----------------------------------------------------------------------------
def _is_http_url(value) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^/\s]+", value) is not None


def _is_list_of_str(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def shape_problems(site: dict, where: str) -> list[str]:
    """Values of the wrong shape, refused before they could be spread one entry per character
    (a string where a list belongs) or doubled (a URL where a host belongs)."""
    problems = []
    for var, key in (("edge_k3s_tls_san", "tls_san"), ("edge_k3s_disable", "disable"),
                     ("edge_k3s_metallb_pool", "metallb_pool"), ("edge_k3s_connected_sites", "connected_sites"),
                     ("edge_k3s_sensor_cidrs", "sensor_cidrs"),
                     ("edge_k3s_sync_egress_cidrs", ("sync", "egress_cidrs"))):
        value = site.get(key) if isinstance(key, str) else (site.get(key[0]) or {}).get(key[1])
        if value is not None and not _is_list_of_str(value):
            problems.append(f"{where}: {var} must be a list of strings, got {value!r} "
                            f"(write [{value!r}] for one entry)" if isinstance(value, str)
                            else f"{where}: {var} must be a list of strings, got {value!r}")
    port = site.get("api_port", API_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"{where}: edge_k3s_api_port {port!r} must be a port number (1-65535)")
        port = "<edge_k3s_api_port>"
    endpoint = site.get("api_endpoint") or ""
    if not isinstance(endpoint, str) or "://" in endpoint or "/" in endpoint or (
            endpoint.count(":") == 1) or endpoint.startswith("["):
        problems.append(f"{where}: edge_k3s_api_endpoint {endpoint!r} must be a host name or address "
                        f"without scheme or port (the role writes https://<endpoint>:{port})")
    mirrors = site.get("registry_mirrors")
    if mirrors is not None and not isinstance(mirrors, dict):
        problems.append(f"{where}: edge_k3s_registry_mirrors must map a registry to a list of endpoint URLs, "
                        f"got {mirrors!r}")
    for registry, endpoints in (mirrors or {}).items() if isinstance(mirrors, dict) else ():
        if not _is_list_of_str(endpoints):
            problems.append(f"{where}: edge_k3s_registry_mirrors[{registry!r}] must be a list of endpoint URLs, "
                            f"got {endpoints!r} (write [{endpoints!r}] for one mirror)")
            continue
        for url in endpoints:
            if not _is_http_url(url):
                problems.append(f"{where}: edge_k3s_registry_mirrors[{registry!r}] endpoint {url!r} "
                                "must be an http(s) URL")
    if site.get("flannel_backend", "vxlan") not in FLANNEL_BACKENDS:
        problems.append(f"{where}: edge_k3s_flannel_backend {site.get('flannel_backend')!r} is not one of "
                        f"{', '.join(FLANNEL_BACKENDS)}")
    for host in site.get("hosts") or []:
        for var, key in (("edge_k3s_node_labels", "labels"), ("edge_k3s_node_taints", "taints")):
            if host.get(key) is not None and not _is_list_of_str(host[key]):
                problems.append(f"host {host.get('name')}: {var} must be a list of strings, got {host[key]!r}")
        problems += extra_config_problems(site, host)
    return problems


# config.yaml keys the role writes from its own variables: set through those, never twice.
OWNED_KEYS = {
    "token": "edge_k3s_token", "token-file": "edge_k3s_token", "agent-token": "edge_k3s_token",
    "server": "edge_k3s_api_endpoint", "cluster-init": "the site's first server (edge_servers)",
    "node-name": "edge_k3s_node_name", "node-label": "edge_k3s_node_labels", "node-taint": "edge_k3s_node_taints",
    "node-ip": "edge_k3s_node_ip", "cluster-cidr": "edge_k3s_cluster_cidr", "service-cidr": "edge_k3s_service_cidr",
    "cluster-dns": "edge_k3s_cluster_dns", "disable": "edge_k3s_disable", "tls-san": "edge_k3s_tls_san",
    "secrets-encryption": "edge_k3s_secrets_encryption", "flannel-backend": "edge_k3s_flannel_backend",
    "https-listen-port": "edge_k3s_api_port", "write-kubeconfig-mode": "the role (0600: the kubeconfig is admin's)",
    "private-registry": "edge_k3s_registry_mirrors",
}


def extra_config_problems(site: dict, host: dict) -> list[str]:
    """edge_k3s_server_config / edge_k3s_agent_config of one host: a mapping of K3s flags
    (k3s-ansible's server_config_yaml / extra_server_args), none the role writes itself, and on an
    agent no server-only flag (K3s' agent refuses to start with one)."""
    var = "edge_k3s_server_config" if host.get("role") == "server" else "edge_k3s_agent_config"
    extra = host.get("extra_config")
    if extra is None or extra == {}:
        return []
    where = f"host {host.get('name')}"
    if not isinstance(extra, dict):
        return [f"{where}: {var} must map K3s config.yaml keys to values (as `k3s {'server' if var.endswith('server_config') else 'agent'} "
                f"--help` names them, without --), got {extra!r}"]
    problems = []
    for key in extra:
        if not isinstance(key, str) or not re.match(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$", key):
            problems.append(f"{where}: {var} key {key!r} is not a K3s flag name (lowercase, '-', no leading --)")
        elif key in OWNED_KEYS:
            problems.append(f"{where}: {var} key {key!r} is written by the role; set {OWNED_KEYS[key]} instead")
        elif var == "edge_k3s_agent_config" and key in SERVER_ONLY_KEYS:
            problems.append(f"{where}: {var} key {key!r} is a server-only flag; `k3s agent` refuses to start with it")
    return problems


def remote_write_problems(remote: dict | None, where: str) -> list[str]:
    """edge_k3s_remote_write (and its password): a URL to send to, whole numbers for the queue,
    Prometheus durations for its timing; a user name needs its password."""
    out: list[str] = []
    if not remote or not remote.get("url"):
        return out
    if not _is_http_url(remote["url"]):
        out.append(f"{where}: edge_k3s_remote_write.url {remote['url']!r} must be an http(s) URL")
    for key, high, example in (("capacity", 10_000_000, 10000), ("max_shards", 1000, 10),
                               ("max_samples_per_send", 1_000_000, 2000), ("behind_seconds", 86400 * 7, 600)):
        _whole(remote.get(key, example), f"edge_k3s_remote_write.{key}", 1, high, where, out, example)
    for key in ("batch_send_deadline", "min_backoff", "max_backoff"):
        if remote.get(key) is not None:
            checks.prometheus_duration(remote[key], f"{where}: edge_k3s_remote_write.{key}", out)
    if remote.get("username") and not remote.get("password"):
        out.append(f"{where}: edge_k3s_remote_write.username is set but edge_k3s_remote_write_password is empty "
                   "(keep it in Ansible Vault)")
    return out


K3S_VERSION = re.compile(r"^v\d+\.\d+\.\d+\+k3s\d+$")
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?|[a-z]{3}(-[a-z]{3})?)(/\d+)?(,(\*|\d+(-\d+)?|[a-z]{3})(/\d+)?)*$", re.I)
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
WHOLE_NUMBER_HINT = "with -e, pass JSON so it stays a number: -e '{{\"{var}\": {example}}}'"


def _whole(value, var: str, low: int, high: int, where: str, out: list[str], example: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = f" ({WHOLE_NUMBER_HINT.format(var=var, example=example)})" if isinstance(value, str) else ""
        out.append(f"{where}: {var} {value!r} must be a whole number{hint}")
    elif not low <= value <= high:
        out.append(f"{where}: {var} {value!r} must be {low}-{high}")


def _cron(value) -> bool:
    if not isinstance(value, str):
        return False
    if value.strip() in CRON_MACROS:
        return True
    fields = value.split()
    return len(fields) == 5 and all(CRON_FIELD.match(f) for f in fields)


def workload_problems(site: dict, where: str) -> list[str]:
    """Values the cluster (or K3s, or Prometheus) would refuse, named by their variable: a pod
    that never starts is found here, before any host or cluster changes."""
    out: list[str] = []
    if site.get("version") is not None and not K3S_VERSION.match(str(site["version"])):
        out.append(f"{where}: edge_k3s_version {site['version']!r} must be a K3s release like v1.37.2+k3s1 "
                   "(air-gapped artifacts are per release)")
    processor = site.get("processor") or {}
    _whole(processor.get("replicas", 1), "edge_k3s_processor_replicas", 0, 1000, where, out, 2)
    _whole(processor.get("port", 8080), "edge_k3s_processor_port", 1, 65535, where, out, 8080)
    sync = site.get("sync") or {}
    resources = {"edge_k3s_processor_requests": processor.get("requests"), "edge_k3s_processor_limits": processor.get("limits"),
                 "edge_k3s_sync_requests": sync.get("requests"), "edge_k3s_sync_limits": sync.get("limits")}
    monitoring = site.get("monitoring") or {}
    resources.update({"edge_k3s_alertmanager_requests": monitoring.get("alertmanager_requests"),
                      "edge_k3s_alertmanager_limits": monitoring.get("alertmanager_limits"),
                      "edge_k3s_kube_state_metrics_requests": (monitoring.get("kube_state_metrics") or {}).get("requests"),
                      "edge_k3s_kube_state_metrics_limits": (monitoring.get("kube_state_metrics") or {}).get("limits")})
    for var, value in resources.items():
        for key, amount in (value or {}).items() if isinstance(value, dict) else ():
            parsed = diff.quantity(amount)
            if parsed is None or parsed < 0:
                out.append(f"{where}: {var}.{key} {amount!r} is not a Kubernetes quantity (500m, 1, 512Mi)")
    prometheus = site.get("prometheus") or {}
    for var, value in (("edge_k3s_processor_storage", processor.get("storage")),
                       ("edge_k3s_prometheus_storage", prometheus.get("storage")),
                       ("edge_k3s_prometheus_memory", prometheus.get("memory")),
                       ("edge_k3s_prometheus_memory_limit", prometheus.get("memory_limit"))):
        if value is not None and storage_bytes(value) is None:
            out.append(f"{where}: {var} {value!r} is not a positive Kubernetes quantity (10Gi, 400Mi)")
    retention = prometheus.get("retention")
    if retention is not None:
        checks.prometheus_duration(retention, f"{where}: edge_k3s_prometheus_retention", out)
    out += remote_write_problems(prometheus.get("remote_write"), where)
    if sync.get("endpoint") is not None and not _is_http_url(sync["endpoint"]):
        out.append(f"{where}: edge_k3s_sync_endpoint {sync['endpoint']!r} must be an http(s) URL")
    if sync.get("schedule") is not None and not _cron(sync["schedule"]):
        out.append(f"{where}: edge_k3s_sync_schedule {sync['schedule']!r} is not a cron schedule "
                   "(five fields, e.g. '*/15 * * * *')")
    return out


def site_problems(site: dict, sites: list[dict] | None = None, site_names: list | None = None) -> list[str]:
    """Everything wrong with one site's plan, each naming the variable (and host) at fault.
    ``sites``: other sites' plans (connected ones are checked against them); ``site_names``: every
    site of the inventory (default: those of ``sites``), which edge_k3s_connected_sites must name."""
    name = site.get("name")
    where = f"site {name}"
    # The other checks read these values as lists and hosts: a wrong shape is reported alone.
    problems = shape_problems(site, where)
    if problems:
        return problems
    if not name or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", str(name)):
        problems.append(f"{where}: edge_k3s_site {name!r} must be a DNS label (lowercase, digits, '-')")
    ranges = {"edge_k3s_cluster_cidr": site.get("cluster_cidr"), "edge_k3s_service_cidr": site.get("service_cidr"),
              "edge_k3s_lan_cidr": site.get("lan_cidr")}
    for index, pool in enumerate(site.get("metallb_pool") or []):
        ranges[f"edge_k3s_metallb_pool[{index}]"] = pool
    try:
        problems += [f"{where}: {c}" for c in ipplan.conflicts(
            ranges, [("edge_k3s_lan_cidr", k) for k in ranges if k.startswith("edge_k3s_metallb_pool")])]
        for key in [k for k in ranges if k.startswith("edge_k3s_metallb_pool")]:
            if site.get("lan_cidr"):
                outside = ipplan.contains("edge_k3s_lan_cidr", site["lan_cidr"], key, ranges[key])
                if outside:
                    problems.append(f"{where}: {outside} (layer-2 pools must be on the site LAN; the role's default "
                                    "pool is for its default LAN, so a site on another LAN sets edge_k3s_metallb_pool "
                                    "too, or [] for no MetalLB objects - the collection's inventories/examples/ "
                                    "has sites on their own LANs)")
        if site.get("cluster_dns") and site.get("service_cidr"):
            outside = ipplan.address_in("edge_k3s_cluster_dns", site["cluster_dns"],
                                        "edge_k3s_service_cidr", site["service_cidr"])
            if outside:
                problems.append(f"{where}: {outside}")
    except ValidationError as exc:
        problems.append(f"{where}: {exc}")
    for item in site.get("disable") or []:
        if item not in DISABLE_CHOICES:
            problems.append(f"{where}: edge_k3s_disable item {item!r} is not one of {', '.join(DISABLE_CHOICES)}")
    problems += storage_problems(site, where)
    problems += workload_problems(site, where)
    for index, receiver in enumerate((site.get("monitoring") or {}).get("receivers") or []):
        url = receiver.get("webhook_url") if isinstance(receiver, dict) else None
        if not _is_http_url(url):
            problems.append(f"{where}: edge_k3s_alert_receivers[{index}].webhook_url must be an http(s) URL")
    for index, cidr in enumerate(site.get("sensor_cidrs") or []):
        try:
            ipplan.parse(f"edge_k3s_sensor_cidrs[{index}]", cidr)
        except ValidationError as exc:
            problems.append(f"{where}: {exc}")
    hosts = site.get("hosts") or []
    if not hosts and site.get("group"):
        problems.append(f"{where}: the site's hosts are the edge_servers and edge_agents members of the group "
                        f"{site['group']} (edge_k3s_site_group: edge_ and the site name with '-' as '_'), and no "
                        f"host is in it; name the site's group {site['group']}, or set edge_k3s_site_group to the "
                        f"group that holds its hosts")
    elif not any(h.get("role") == "server" for h in hosts):
        problems.append(f"{where}: no host of the site is in edge_servers")
    seen = {}
    for host in hosts:
        problems += _lan_problems(site, host)
        node = node_name(host)
        if not NODE_NAME.match(str(node)) or len(str(node)) > 253:
            problems.append(f"host {host['name']}: node name {node!r} (edge_k3s_node_name, else the inventory name) "
                            f"must be a DNS subdomain (lowercase letters, digits, '-', '.'); set edge_k3s_node_name")
        if node in seen:
            problems.append(f"{where}: hosts {seen[node]} and {host['name']} share the node name {node!r}")
        seen[node] = host["name"]
        for label in host.get("labels") or []:
            if not LABEL.match(str(label)):
                problems.append(f"host {host['name']}: edge_k3s_node_labels item {label!r} must be key=value "
                                f"(a Kubernetes label)")
        for taint in host.get("taints") or []:
            if not TAINT.match(str(taint)):
                problems.append(f"host {host['name']}: edge_k3s_node_taints item {taint!r} must be "
                                f"key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
    known = set(site_names) if site_names is not None else (
        {other.get("name") for other in sites} if sites is not None else None)
    for index, other in enumerate(site.get("connected_sites") or []):
        if known is not None and other not in known | {name}:
            problems.append(f"{where}: edge_k3s_connected_sites[{index}] {other!r} is not a site of the inventory"
                            f"{_hint(other, known - {name}) if known - {name} else ' (it has no other site)'}")
    # Sites meant to be connected must not reuse each other's ranges.
    for other in sites or []:
        if other.get("name") == name or other.get("name") not in (site.get("connected_sites") or []):
            continue
        mine = {f"{name} {k}": site.get(k) for k in ("cluster_cidr", "service_cidr", "lan_cidr")}
        pairs = {**mine, **{f"{other['name']} {k}": other.get(k) for k in ("cluster_cidr", "service_cidr", "lan_cidr")}}
        try:
            for overlap in ipplan.overlaps(pairs):
                if (overlap.first in mine) != (overlap.second in mine):  # one range of each site
                    problems.append(f"{where}: connected to {other['name']}, but {overlap}")
        except ValidationError:
            pass  # reported for the site that owns the bad value
    return problems


def _lan_problems(site: dict, host: dict) -> list[str]:
    """A node's LAN address (edge_k3s_node_ip, else ansible_host when it is an address) must lie
    on the site LAN: MetalLB answers for the pool there and the sensors reach the nodes there."""
    import ipaddress

    which = "edge_k3s_node_ip" if host.get("node_ip") else "ansible_host"
    value = host.get("node_ip") or host.get("address")
    try:
        address, lan = ipaddress.ip_address(str(value)), ipaddress.ip_network(str(site.get("lan_cidr")), strict=False)
    except ValueError:
        return []  # a host name, or a LAN the range checks report
    if address.version != lan.version or address in lan:
        return []
    hint = "" if host.get("node_ip") else " (when Ansible reaches the host by another address, set edge_k3s_node_ip to its LAN address)"
    return [f"host {host.get('name')}: {which} {address} is not inside edge_k3s_lan_cidr ({lan}){hint}"]


def _hint(name, known) -> str:
    close = difflib.get_close_matches(str(name), sorted(str(k) for k in known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else f" (sites: {', '.join(sorted(map(str, known)))})"


# -- host files ----------------------------------------------------------------------------
def first_server(site: dict) -> dict:
    return next(h for h in site["hosts"] if h.get("role") == "server")


def server_url(site: dict) -> str:
    return f"https://{site.get('api_endpoint') or first_server(site).get('address')}:{site.get('api_port') or API_PORT}"


NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def node_name(host: dict) -> str:
    """The host's Kubernetes node name: edge_k3s_node_name, else its inventory name."""
    return host.get("node_name") or host["name"]


def k3s_config(site: dict, host_name: str) -> dict:
    """/etc/rancher/k3s/config.yaml for one host: server keys only on servers."""
    host = next((h for h in site["hosts"] if h["name"] == host_name), None)
    if host is None:
        raise ValidationError(f"host {host_name!r} is not part of site {site.get('name')!r}")
    labels = [f"{SITE_LABEL}={site['name']}"] + list(host.get("labels") or [])
    # One rule for the node name, written always: K3s registers exactly the name the site's Node
    # objects and node_readiness use (left out, K3s would take the host's hostname instead).
    config = {"node-label": labels, "node-name": node_name(host)}
    if host.get("taints"):
        config["node-taint"] = list(host["taints"])
    if host.get("node_ip"):
        config["node-ip"] = host["node_ip"]
    servers = [h for h in site["hosts"] if h.get("role") == "server"]
    if host.get("role") == "server":
        config.update({
            "write-kubeconfig-mode": "0600",
            "cluster-cidr": site["cluster_cidr"],
            "service-cidr": site["service_cidr"],
            "cluster-dns": site["cluster_dns"],
            "disable": list(site.get("disable") or []),
            # Secrets encrypted at rest in the datastore (the chapter's best practice).
            "secrets-encryption": bool(site.get("secrets_encryption", True)),
            "flannel-backend": site.get("flannel_backend") or "vxlan",
            "tls-san": sorted({*(site.get("tls_san") or []), *(h.get("address") for h in servers if h.get("address")),
                               *([site["api_endpoint"]] if site.get("api_endpoint") else [])}),
        })
        if (site.get("api_port") or API_PORT) != API_PORT:
            config["https-listen-port"] = site["api_port"]
        if len(servers) > 1:  # embedded etcd: the first server starts the cluster, the rest join it
            if host["name"] == servers[0]["name"]:
                config["cluster-init"] = True
            else:
                config["server"] = server_url(site)
    else:
        config["server"] = server_url(site)
    problems = extra_config_problems(site, host)
    if problems:
        raise ValidationError("; ".join(problems))
    # The user's extra flags after the role's (none overlap: checked above), sorted for stable files.
    config.update(sorted((host.get("extra_config") or {}).items()))
    stray = [key for key in SERVER_ONLY_KEYS if key in config] if host.get("role") != "server" else []
    if stray:
        raise ValidationError(f"{host.get('name')}: server-only keys {', '.join(stray)} in an agent's config")
    return config


def registries(site: dict) -> dict | None:
    """registries.yaml for a local mirror (air-gapped pulls), or None."""
    mirrors = site.get("registry_mirrors") or {}
    if not mirrors:
        return None
    return {"mirrors": {registry: {"endpoint": list(endpoints)} for registry, endpoints in sorted(mirrors.items())}}


# -- one host's files: what apply installs (host_files), render writes and the fleet renders ---
UNIT_DIR = "/etc/systemd/system"
REGISTRIES_PATH = "/etc/rancher/k3s/registries.yaml"
CONFIG_PATH = "/etc/rancher/k3s/config.yaml"
BINARY_PATH = "/usr/local/bin/k3s"
SYSCTL_PATH = "/etc/sysctl.d/90-k3s.conf"
MODULES_LOAD_PATH = "/etc/modules-load.d/k3s.conf"
MODULES_LOAD = "overlay\nbr_netfilter\n"  # what K3s needs loaded at boot
SYSCTLS = ("net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"
           "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n")
IMAGES_DIR = "/var/lib/rancher/k3s/agent/images"
SERVER_MANIFESTS_DIR = "/var/lib/rancher/k3s/server/manifests"


def unit_path(unit: str) -> str:
    """Where a K3s unit lives; its token file is this path + '.env'."""
    return f"{UNIT_DIR}/{unit}.service"


def _yaml(data, sort_keys: bool) -> str:
    """YAML text as Ansible's to_nice_yaml(indent=2) writes it, from plain data (the JSON round
    trip drops Ansible's tagged string types, which PyYAML's safe dumper cannot represent)."""
    import json

    import yaml

    return yaml.safe_dump(json.loads(json.dumps(data)), indent=2, allow_unicode=True, default_flow_style=False,
                          sort_keys=sort_keys)


def host_files(site: dict, host_name: str, unit: str, unit_text: str, env_text: str, artifacts: dict | None = None) -> dict:
    """Every file of one edge host, defined once: the folders, the files (dest, mode, and
    ``content``, ``secret_content`` - the token file - or ``src`` and ``sha256`` for release
    files), and the paths that must be gone (a stale registries.yaml, the other K3s unit).
    ``unit_text`` and ``env_text`` are the role's templates rendered by the caller (apply with the
    token, render with it redacted). ``artifacts`` (apply only) names the release and add-on files:
    dir, binary, images, sha256, addons_dir, addon_images, addon_manifests, addon_sha256,
    install_script."""
    server = unit == "k3s"
    other = "k3s-agent" if server else "k3s"
    directories = [{"path": path, "mode": "0755"} for path in (
        "/usr/local/bin", "/etc/rancher/k3s", UNIT_DIR, "/etc/sysctl.d", "/etc/modules-load.d", IMAGES_DIR)]
    if server:
        directories.append({"path": SERVER_MANIFESTS_DIR, "mode": "0700"})
    files = _artifact_files(artifacts, server) if artifacts is not None else []
    files += [{"dest": MODULES_LOAD_PATH, "mode": "0644", "content": MODULES_LOAD},
              {"dest": SYSCTL_PATH, "mode": "0644", "content": SYSCTLS},
              {"dest": CONFIG_PATH, "mode": "0600", "content": _yaml(k3s_config(site, host_name), False)},
              {"dest": unit_path(unit), "mode": "0644", "content": unit_text},
              {"dest": unit_path(unit) + ".env", "mode": "0600", "secret_content": env_text}]
    mirrors = registries(site)
    if mirrors is not None:  # it names the site's registry: 0600 like the rest of K3s' config
        files.append({"dest": REGISTRIES_PATH, "mode": "0600", "content": _yaml(mirrors, True)})
    absent = ([REGISTRIES_PATH] if mirrors is None else []) + [unit_path(other), unit_path(other) + ".env"]
    # What K3s reads only when it starts, and what `sysctl --system` applies now.
    restart = [BINARY_PATH, CONFIG_PATH, REGISTRIES_PATH, unit_path(unit), unit_path(unit) + ".env"]
    if artifacts is not None:
        restart.append(_release_images_path(artifacts))
    return {"directories": directories, "files": files, "absent": absent, "restart_paths": restart,
            "sysctl_paths": [SYSCTL_PATH, MODULES_LOAD_PATH]}


def _release_images_path(artifacts: dict) -> str:
    return f"{IMAGES_DIR}/{artifacts['images']}"


def _artifact_files(artifacts: dict, server: bool) -> list[dict]:
    """The release's binary and images, the add-ons' images (and manifests on servers), each
    checked on the host against its published sha256."""
    out = [{"dest": BINARY_PATH, "mode": "0755", "src": f"{artifacts['dir']}/{artifacts['binary']}",
            "sha256": artifacts["sha256"][artifacts["binary"]]},
           {"dest": _release_images_path(artifacts), "mode": "0644", "src": f"{artifacts['dir']}/{artifacts['images']}",
            "sha256": artifacts["sha256"][artifacts["images"]]}]
    out += [{"dest": f"{IMAGES_DIR}/{name}", "mode": "0644", "src": f"{artifacts['addons_dir']}/{name}",
             "sha256": artifacts["addon_sha256"][name]} for name in artifacts.get("addon_images") or []]
    out += [{"dest": f"{SERVER_MANIFESTS_DIR}/{name}", "mode": "0600", "src": f"{artifacts['addons_dir']}/{name}",
             "sha256": artifacts["addon_sha256"][name]} for name in (artifacts.get("addon_manifests") or []) if server]
    if artifacts.get("install_script"):  # kept for operators, not run: the role writes the units itself
        out.append({"dest": "/usr/local/bin/k3s-install.sh", "mode": "0755", "src": f"{artifacts['dir']}/install.sh",
                    "sha256": artifacts["sha256"]["install.sh"]})
    return out


def site_kubeconfig(text: str, site: dict) -> str:
    """K3s' /etc/rancher/k3s/k3s.yaml made fit for the controller: server pointed at the API
    endpoint, and cluster, user and context named after the site instead of 'default'."""
    import yaml

    config = yaml.safe_load(str(text)) or {}
    name = str(site["name"])  # a plain str: YAML cannot represent Ansible's tagged strings
    for cluster in config.get("clusters") or []:
        cluster["name"] = name
        cluster.setdefault("cluster", {})["server"] = server_url(site)
    for user in config.get("users") or []:
        user["name"] = name
    for context in config.get("contexts") or []:
        context["name"] = name
        context["context"] = {**(context.get("context") or {}), "cluster": name, "user": name}
    config["current-context"] = name
    return yaml.safe_dump(config, sort_keys=False)


# -- cluster objects ----------------------------------------------------------------------
def _meta(name: str, namespace: str | None = None, **labels) -> dict:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return meta


def _dns_egress() -> dict:
    return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": CLUSTER_DNS_NAMESPACE}},
                    "podSelector": {"matchLabels": dict(CLUSTER_DNS_LABELS)}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def _ipblock(entry) -> dict:
    if isinstance(entry, str):
        return {"ipBlock": {"cidr": entry}}
    block = {"cidr": entry["cidr"]}
    if entry.get("except"):
        block["except"] = list(entry["except"])
    return {"ipBlock": block}


def node_objects(site: dict) -> list[dict]:
    """Label patches for the site's nodes (applied to existing Node objects only)."""
    out = []
    for host in site["hosts"]:
        labels = dict(label.split("=", 1) for label in host.get("labels") or [])
        labels[SITE_LABEL] = site["name"]
        out.append({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": node_name(host), "labels": labels}})
    return out


STATIC_CLASS = "edge-static-local"
# The claims a static volume is reserved for (PersistentVolume claimRef): the processor's claim,
# and the one the Prometheus Operator makes for the site's Prometheus (its naming scheme).
STATIC_CLAIMS = {"processor": (PROCESSING_NS, "local-pvc"),
                 "prometheus": (MONITORING_NS, "prometheus-edge-prometheus-db-prometheus-edge-prometheus-0")}
LOCAL_PATH_CLASS = "local-path"  # K3s' bundled local-path provisioner (its local-storage component)


def storage_bytes(value):
    """A storage size as Kubernetes reads quantities (10Gi, 500M, 1e9), or None when it is not
    a positive one."""
    size = diff.quantity(value)
    return size if size is not None and size > 0 else None


def storage_class(site: dict) -> str:
    return STATIC_CLASS if site.get("storage", {}).get("mode") == "static" else LOCAL_PATH_CLASS


def storage_problems(site: dict, where: str) -> list[str]:
    """The claims must be able to bind: local-path needs K3s' local-storage component; static
    needs, for each claim, a volume reserved for it, on a node of the site, at least as large."""
    storage = site.get("storage") or {}
    mode = storage.get("mode", "local-path")
    if mode not in STORAGE_MODES:
        return [f"{where}: edge_k3s_storage {mode!r} is not one of {', '.join(STORAGE_MODES)}"]
    if mode == "local-path":
        if "local-storage" in (site.get("disable") or []):
            return [f"{where}: edge_k3s_storage is local-path, but edge_k3s_disable switches off K3s' "
                    "local-storage (its local-path provisioner): claims would stay Pending; "
                    "keep it or use edge_k3s_storage: static"]
        return []
    problems = []
    nodes = {node_name(h) for h in site.get("hosts") or []}
    volumes = storage.get("volumes") or []
    if not volumes:
        problems.append(f"{where}: edge_k3s_storage is static, but edge_k3s_static_volumes is empty: "
                        "claims would stay Pending")
    sizes = []
    for index, volume in enumerate(volumes):
        at = f"{where}: edge_k3s_static_volumes[{index}]"
        if not isinstance(volume, dict):
            problems.append(f"{at} must be a mapping with node, path and capacity, got {volume!r}")
            continue
        if volume.get("node") not in nodes:
            problems.append(f"{at}.node {volume.get('node')!r} is not a node of the site ({', '.join(sorted(nodes))})")
        if not str(volume.get("path", "")).startswith("/"):
            problems.append(f"{at}.path {volume.get('path')!r} must be an absolute path on the node")
        if volume.get("claim") not in STATIC_CLAIMS:
            problems.append(f"{at}.claim {volume.get('claim')!r} is not one of {', '.join(STATIC_CLAIMS)}")
        size = storage_bytes(volume.get("capacity"))
        if size is None:
            problems.append(f"{at}.capacity {volume.get('capacity')!r} is not a storage quantity (e.g. 50Gi)")
        else:
            sizes.append((size, volume.get("claim")))
    for claim, (var, request) in {"processor": ("edge_k3s_processor_storage", site["processor"]["storage"]),
                                  "prometheus": ("edge_k3s_prometheus_storage", site["prometheus"]["storage"])}.items():
        wanted = storage_bytes(request)
        if wanted is None:
            problems.append(f"{where}: {var} {request!r} is not a storage quantity (e.g. 10Gi)")
            continue
        sized = [size for size, for_claim in sizes if for_claim == claim]
        if not sized:
            problems.append(f"{where}: no edge_k3s_static_volumes entry has claim: {claim}: its claim would stay Pending")
        elif max(sized) < wanted:
            problems.append(f"{where}: the edge_k3s_static_volumes entry for claim {claim} is smaller than {var} "
                            f"({request}): the claim would stay Pending")
    return problems


def storage_objects(site: dict) -> list[dict]:
    """Static mode: a no-provisioner class and one local PersistentVolume per listed disk, pinned
    to its node (the scheduler then places the claim's pods there). local-path: nothing - K3s'
    provisioner makes volumes on demand."""
    storage = site.get("storage") or {}
    if storage.get("mode") != "static":
        return []
    out = [{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": _meta(STATIC_CLASS),
            "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Retain"}]
    for volume in storage.get("volumes") or []:
        name = f"{site['name']}-{volume['node']}-{volume['path'].strip('/').replace('/', '-')}".lower()
        out.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": _meta(name[:253], **{SITE_LABEL: site["name"]}),
                    "spec": {"capacity": {"storage": str(volume["capacity"])}, "accessModes": ["ReadWriteOnce"],
                             # Reserved for its claim: the scheduler would otherwise give any claim
                             # the first volume that fits and leave the other claim without one.
                             "claimRef": {"namespace": STATIC_CLAIMS[volume["claim"]][0],
                                          "name": STATIC_CLAIMS[volume["claim"]][1]},
                             "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STATIC_CLASS,
                             "volumeMode": "Filesystem", "local": {"path": volume["path"]},
                             "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                                 {"key": "kubernetes.io/hostname", "operator": "In", "values": [volume["node"]]}]}]}}}})
    return out


def has_stack(site: dict) -> bool:
    """False for K3s only (edge_k3s_stack: false): the site's stack is neither built, proven nor pruned."""
    return bool(site.get("stack", True))


def site_objects(site: dict) -> list[dict]:
    """Every object of one edge site, in the current APIs (see docs for what changed)."""
    if not has_stack(site):
        return []
    proc, sync, prom = site["processor"], site["sync"], site["prometheus"]
    app = {"app": "data-processor"}
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(PROCESSING_NS, **{SITE_LABEL: site["name"]})},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(MONITORING_NS, **{SITE_LABEL: site["name"]})},
    ]
    if site.get("metallb_pool"):
        # metallb-system belongs to the MetalLB installation, never to this set: pruning the
        # pool must not delete MetalLB.
        objects += [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": _meta(f"{site['name']}-pool", METALLB_NS),
             "spec": {"addresses": list(site["metallb_pool"]), "autoAssign": True}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": _meta(f"{site['name']}-l2", METALLB_NS),
             "spec": {"ipAddressPools": [f"{site['name']}-pool"]}},
        ]
    objects += [
        *storage_objects(site),
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta("local-pvc", PROCESSING_NS),
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class(site),
                  "resources": {"requests": {"storage": proc["storage"]}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("edge-processor", PROCESSING_NS, **app),
         "spec": {"replicas": proc["replicas"], "selector": {"matchLabels": app},
                  "template": {"metadata": {"labels": app}, "spec": {
                      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                          "nodeSelectorTerms": [{"matchExpressions": [
                              {"key": SITE_LABEL, "operator": "In", "values": [site["name"]]}]}]}}},
                      "containers": [{
                          "name": "processor", "image": proc["image"],
                          "ports": [{"name": "ingest", "containerPort": proc["port"], "protocol": "TCP"}],
                          "resources": {"requests": dict(proc["requests"]), "limits": dict(proc["limits"])},
                          "readinessProbe": {"httpGet": {"path": "/health", "port": "ingest"},
                                             "initialDelaySeconds": 5, "periodSeconds": 10},
                          "volumeMounts": [{"name": "local-storage", "mountPath": "/data"}]}],
                      "volumes": [{"name": "local-storage", "persistentVolumeClaim": {"claimName": "local-pvc"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta("edge-processor", PROCESSING_NS, **app),
         "spec": {"type": "ClusterIP", "selector": app,
                  "ports": [{"name": "ingest", "port": proc["port"], "targetPort": "ingest", "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("sync-config", PROCESSING_NS),
         "data": {"cloud-endpoint": sync["endpoint"]}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta("data-sync", PROCESSING_NS),
         "spec": {"schedule": sync["schedule"], "concurrencyPolicy": "Forbid",
                  "jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "data-sync"}}, "spec": {
                      "restartPolicy": "OnFailure",
                      "containers": [{"name": "sync", "image": sync["image"],
                                      "resources": {"requests": dict(sync["requests"]), "limits": dict(sync["limits"])},
                                      "env": [
                          {"name": "CLOUD_ENDPOINT", "valueFrom": {"configMapKeyRef": {"name": "sync-config", "key": "cloud-endpoint"}}},
                          {"name": "SYNC_TOKEN", "valueFrom": {"secretKeyRef": {"name": "sync-secrets", "key": "token"}}}],
                          "volumeMounts": [{"name": "local-storage", "mountPath": "/data", "readOnly": True}]}],
                      "volumes": [{"name": "local-storage", "persistentVolumeClaim": {"claimName": "local-pvc"}}]}}}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("sync-check", PROCESSING_NS),
         "data": {"check.sh": "#!/bin/sh\n# Exit 1 when files in /data are older than the sync interval allows.\n"
                              f"if [ -n \"$(find /data -mmin +{sync['max_delay_minutes']} -type f)\" ]; then\n"
                              "  echo \"Data sync delayed\"\n  exit 1\nfi\n"}},
        # Default deny both ways, then exactly the chapter's flows plus DNS.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("default-deny", PROCESSING_NS),
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("edge-network-policy", PROCESSING_NS),
         "spec": {"podSelector": {"matchLabels": app}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"type": "sensor"}}}],
                               "ports": [{"protocol": "TCP", "port": proc["port"]}]}],
                  "egress": [{"to": [_ipblock(e) for e in site["egress"]]}, _dns_egress()]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("sensors-to-processor", PROCESSING_NS),
         "spec": {"podSelector": {"matchLabels": {"type": "sensor"}}, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"podSelector": {"matchLabels": app}}],
                              "ports": [{"protocol": "TCP", "port": proc["port"]}]}, _dns_egress()]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("data-sync-egress", PROCESSING_NS),
         "spec": {"podSelector": {"matchLabels": {"app": "data-sync"}}, "policyTypes": ["Egress"],
                  "egress": [{"to": [_ipblock(c) for c in sync["egress_cidrs"]], "ports": [{"protocol": "TCP", "port": 443}]},
                             _dns_egress()]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": _meta("edge-prometheus", MONITORING_NS),
         "spec": {"retention": prom["retention"],
                  "resources": {"requests": {"memory": prom["memory"]}, "limits": {"memory": prom["memory_limit"]}},
                  "serviceAccountName": "edge-prometheus",
                  "nodeSelector": {SITE_LABEL: site["name"]},
                  # The site's own monitors and rules, in any namespace of the site.
                  "serviceMonitorSelector": {"matchLabels": {SITE_LABEL: site["name"]}},
                  "serviceMonitorNamespaceSelector": {},
                  "podMonitorSelector": {"matchLabels": {SITE_LABEL: site["name"]}},
                  "podMonitorNamespaceSelector": {},
                  "ruleSelector": {"matchLabels": {"role": "edge-alerts"}},
                  "alerting": {"alertmanagers": [{"namespace": MONITORING_NS, "name": "alertmanager-operated",
                                                  "port": "web"}]},
                  "storage": {"volumeClaimTemplate": {"spec": {
                      "storageClassName": storage_class(site), "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": prom["storage"]}}}}},
                  **remote_write_spec(site)}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "metadata": _meta("edge-alerts", MONITORING_NS, role="edge-alerts"),
         "spec": {"groups": [{"name": "edge.rules", "rules": [
             # The chapter's up{job="edge-node", edge-location=...} does not parse (a label name
             # cannot hold '-'), and the site's own Prometheus needs no site filter: a node whose
             # Ready condition is not true, as kube-state-metrics reports it.
             {"alert": "EdgeNodeDown", "expr": 'kube_node_status_condition{condition="Ready", status="true"} == 0',
              "for": "5m", "labels": {"severity": "critical", "edge_location": site["name"]},
              "annotations": {"summary": "Edge node {{ $labels.node }} of " + site["name"] + " is not Ready"}},
             {"alert": "EdgeNodePressure",
              "expr": 'kube_node_status_condition{condition=~"MemoryPressure|DiskPressure|PIDPressure", status="true"} == 1',
              "for": "5m", "labels": {"severity": "warning", "edge_location": site["name"]},
              "annotations": {"summary": "Edge node {{ $labels.node }} of " + site["name"]
                                         + " reports {{ $labels.condition }}"}},
             {"alert": "EdgeSyncDelayed",
              "expr": f'time() - kube_cronjob_status_last_successful_time{{namespace="{PROCESSING_NS}", cronjob="data-sync"}}'
                      f' > {sync["max_delay_minutes"] * 60}',
              "for": "5m", "labels": {"severity": "warning", "edge_location": site["name"]},
              "annotations": {"summary": f"data-sync of {site['name']} has not succeeded for "
                                         f"{sync['max_delay_minutes']} minutes"}},
             *remote_write_alerts(site)]}]}},
    ]
    objects += sensor_objects(site) + monitoring_objects(site) + remote_write_objects(site)
    return objects


def sensor_objects(site: dict) -> list[dict]:
    """The sensors on the factory LAN reach the processor's ingest port through a LoadBalancer
    address (MetalLB's pool, or K3s' servicelb), and only that port. externalTrafficPolicy Local
    keeps the sensor's own address as the source, so the LAN ipBlock is what admits it."""
    cidrs = site.get("sensor_cidrs") or []
    if not cidrs:
        return []
    port = site["processor"]["port"]
    app = {"app": "data-processor"}
    meta = _meta("edge-processor-ingest", PROCESSING_NS, **app)
    if site.get("metallb_pool"):
        meta["annotations"] = {"metallb.io/address-pool": f"{site['name']}-pool"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": app,
                  "ports": [{"name": "ingest", "port": port, "targetPort": "ingest", "protocol": "TCP"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("sensors-from-lan", PROCESSING_NS),
         "spec": {"podSelector": {"matchLabels": app}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [_ipblock(c) for c in cidrs],
                               "ports": [{"protocol": "TCP", "port": port}]}]}},
    ]


KSM_LABELS = {"app.kubernetes.io/name": "kube-state-metrics"}
# What kube-state-metrics lists and watches for the alerts (nodes, cron jobs) and the usual set.
KSM_RULES = [
    {"apiGroups": [""], "resources": ["configmaps", "secrets", "nodes", "pods", "services", "resourcequotas",
                                      "replicationcontrollers", "limitranges", "persistentvolumeclaims",
                                      "persistentvolumes", "namespaces", "endpoints"], "verbs": ["list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets", "daemonsets", "deployments", "replicasets"],
     "verbs": ["list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses", "volumeattachments"], "verbs": ["list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies", "ingresses"], "verbs": ["list", "watch"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list", "watch"]},
]
PROMETHEUS_RULES = [
    {"apiGroups": [""], "resources": ["nodes", "nodes/metrics", "services", "endpoints", "pods"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
]


def _reader(name: str, rules: list[dict]) -> list[dict]:
    """A ServiceAccount in the monitoring namespace bound to a ClusterRole of exactly ``rules``."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, MONITORING_NS)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(name), "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": MONITORING_NS}]},
    ]


def monitoring_objects(site: dict) -> list[dict]:
    """What the Prometheus Operator needs to run the site's monitoring: Prometheus' identity
    and RBAC, an Alertmanager (its configuration is a Secret, see secret_objects), and
    kube-state-metrics, which the alerts read."""
    mon = site["monitoring"]
    ksm = mon["kube_state_metrics"]
    site_label = {SITE_LABEL: site["name"]}
    return [
        *_reader("edge-prometheus", PROMETHEUS_RULES),
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager", "metadata": _meta("edge-alertmanager", MONITORING_NS),
         "spec": {"replicas": 1, "nodeSelector": site_label,
                  "resources": {"requests": dict(mon["alertmanager_requests"]), "limits": dict(mon["alertmanager_limits"])},
                  "configSecret": "edge-alertmanager-config"}},
        *_reader("kube-state-metrics", KSM_RULES),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("kube-state-metrics", MONITORING_NS, **KSM_LABELS),
         "spec": {"replicas": 1, "selector": {"matchLabels": KSM_LABELS},
                  "template": {"metadata": {"labels": KSM_LABELS}, "spec": {
                      "serviceAccountName": "kube-state-metrics", "nodeSelector": site_label,
                      "securityContext": {"runAsNonRoot": True, "runAsUser": 65534},
                      "containers": [{
                          "name": "kube-state-metrics", "image": ksm["image"],
                          # The node label the alerts group by, exported as label_edge_location.
                          "args": [f"--metric-labels-allowlist=nodes=[{SITE_LABEL}]"],
                          "ports": [{"name": "http-metrics", "containerPort": 8080},
                                    {"name": "telemetry", "containerPort": 8081}],
                          "resources": {"requests": dict(ksm["requests"]), "limits": dict(ksm["limits"])},
                          "readinessProbe": {"httpGet": {"path": "/readyz", "port": "telemetry"}},
                          "livenessProbe": {"httpGet": {"path": "/livez", "port": "http-metrics"}},
                          "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                              "capabilities": {"drop": ["ALL"]}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta("kube-state-metrics", MONITORING_NS, **KSM_LABELS),
         "spec": {"type": "ClusterIP", "selector": KSM_LABELS,
                  "ports": [{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics"}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
         "metadata": _meta("kube-state-metrics", MONITORING_NS, **site_label),
         "spec": {"selector": {"matchLabels": KSM_LABELS},
                  "endpoints": [{"port": "http-metrics", "honorLabels": True, "interval": "30s"}]}},
    ]


REMOTE_WRITE_SECRET = "edge-remote-write"


def _remote(site: dict) -> dict:
    """The site's remote_write settings, or {} when its metrics stay on the site."""
    remote = (site.get("prometheus") or {}).get("remote_write") or {}
    return remote if remote.get("url") else {}


def remote_write_spec(site: dict) -> dict:
    """Prometheus spec fields that send the site's metrics to a central Prometheus: the site as
    the ``edge_location`` external label on every series, a queue sized for an intermittent link
    (retried with backoff; samples wait in the WAL, about two hours of them), basic auth from
    the ``edge-remote-write`` Secret when a user name is given."""
    remote = _remote(site)
    if not remote:
        return {}
    entry = {"name": "central", "url": remote["url"],
             "queueConfig": {"capacity": remote.get("capacity", 10000), "maxShards": remote.get("max_shards", 10),
                             "maxSamplesPerSend": remote.get("max_samples_per_send", 2000),
                             "batchSendDeadline": remote.get("batch_send_deadline", "30s"),
                             "minBackoff": remote.get("min_backoff", "1s"), "maxBackoff": remote.get("max_backoff", "5m"),
                             "retryOnRateLimit": True}}
    if remote.get("username"):
        entry["basicAuth"] = {key: {"name": REMOTE_WRITE_SECRET, "key": key} for key in ("username", "password")}
    return {"externalLabels": {"edge_location": site["name"]}, "remoteWrite": [entry]}


def remote_write_alerts(site: dict) -> list[dict]:
    """Alerts when the site's queue to the central Prometheus falls behind or drops samples
    (the site's Prometheus scrapes itself for these, see remote_write_objects)."""
    remote = _remote(site)
    if not remote:
        return []
    behind = remote.get("behind_seconds", 600)
    labels = {"severity": "warning", "edge_location": site["name"]}
    return [
        # Prometheus's own mixin: newest sample read minus newest sample sent, per queue.
        {"alert": "EdgeRemoteWriteBehind",
         "expr": "(max_over_time(prometheus_remote_storage_highest_timestamp_in_seconds[5m])"
                 " - ignoring(remote_name, url) group_right"
                 f" max_over_time(prometheus_remote_storage_queue_highest_sent_timestamp_seconds[5m])) > {behind}",
         "for": "15m", "labels": labels,
         "annotations": {"summary": f"metrics of {site['name']} reach the central Prometheus "
                                    "{{ $value | humanizeDuration }} late"}},
        {"alert": "EdgeRemoteWriteFailing",
         "expr": "rate(prometheus_remote_storage_samples_failed_total[5m]) > 0",
         "for": "15m", "labels": labels,
         "annotations": {"summary": f"the central Prometheus refuses samples of {site['name']}"}},
    ]


def remote_write_objects(site: dict) -> list[dict]:
    """The site's Prometheus scraping itself (the operator's ``prometheus-operated`` Service),
    so the queue alerts have their metrics."""
    if not _remote(site):
        return []
    return [{"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
             "metadata": _meta("edge-prometheus-self", MONITORING_NS, **{SITE_LABEL: site["name"]}),
             "spec": {"selector": {"matchLabels": {"operated-prometheus": "true"}},
                      "namespaceSelector": {"matchNames": [MONITORING_NS]},
                      "endpoints": [{"port": "web", "interval": "30s"}]}}]


OUTSIDE_ADDRESS = "198.51.100.10"  # TEST-NET-2: an address on no site's LAN


def range_names(site: dict) -> list[dict]:
    """The site's ranges by what they are, for its report: the LAN and the sensors' ranges."""
    out = [{"name": f"{site['name']} LAN", "cidr": site["lan_cidr"]}]
    return out + [{"name": "sensors", "cidr": cidr} for cidr in site.get("sensor_cidrs") or [] if cidr != site["lan_cidr"]]


def expectations(site: dict) -> list[dict]:
    """What the site's proof asserts: a sensor on the LAN reaches the processor's ingest port
    and nothing else; an address off the LAN reaches nothing."""
    import netaddr

    out = []
    port = site["processor"]["port"]
    processor, sync = f"{PROCESSING_NS}/edge-processor", f"{PROCESSING_NS}/data-sync"
    for cidr in site.get("sensor_cidrs") or []:
        network = netaddr.IPNetwork(cidr)
        sensor = str(network[-2] if network.size > 2 else network[0])
        out += [{"src": sensor, "dst": processor, "port": port, "protocol": "TCP", "allowed": True},
                {"src": sensor, "dst": processor, "port": port + 1 if port < 65535 else port - 1,
                 "protocol": "TCP", "allowed": False},
                {"src": sensor, "dst": sync, "allowed": False}]
    out += [{"src": OUTSIDE_ADDRESS, "dst": processor, "allowed": False},
            {"src": OUTSIDE_ADDRESS, "dst": sync, "allowed": False}]
    return out


def alertmanager_config(site: dict) -> dict:
    """alertmanager.yaml: every alert of the site to the receivers given as inventory data
    (webhooks; their URLs may carry tokens, so the whole file is a Secret)."""
    receivers = site["monitoring"].get("receivers") or []
    config = {"route": {"receiver": receivers[0]["name"] if receivers else "null",
                        "group_by": ["alertname", "edge_location"], "group_wait": "30s",
                        "group_interval": "5m", "repeat_interval": "4h"},
              "receivers": [{"name": r["name"], "webhook_configs": [{"url": r["webhook_url"], "send_resolved": True}]}
                            for r in receivers] or [{"name": "null"}]}
    if len(receivers) > 1:
        # Alertmanager sends to a route's own receiver only when none of its children matches, and
        # a child without matchers matches everything: so every receiver is a child (continue:
        # true walks on to the next), and the root's receiver is only the required fallback.
        config["route"]["routes"] = [{"receiver": r["name"], "continue": True} for r in receivers]
    return config


def secret_objects(site: dict) -> list[dict]:
    """The site's Secrets, converged by their own no_log task."""
    if not has_stack(site):
        return []
    import yaml

    remote = _remote(site)
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": _meta("sync-secrets", PROCESSING_NS),
             "type": "Opaque", "stringData": {"token": site["sync"]["token"]}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": _meta("edge-alertmanager-config", MONITORING_NS),
             "type": "Opaque", "stringData": {"alertmanager.yaml": yaml.safe_dump(alertmanager_config(site), sort_keys=False)}},
            *([{"apiVersion": "v1", "kind": "Secret", "metadata": _meta(REMOTE_WRITE_SECRET, MONITORING_NS),
                "type": "Opaque", "stringData": {"username": remote["username"], "password": remote["password"]}}]
              if remote.get("username") else [])]


def plan(site: dict, sites: list[dict] | None = None, site_names: list | None = None) -> dict:
    """The site's whole plan from the mapping the role builds, or only ``problems`` (see
    site_problems for ``sites`` and ``site_names``): the site set's ``objects``, the Node label
    patches (``nodes``), the ``secrets``, and the proof's ``expect`` and ``range_names``."""
    found = site_problems(site, sites, site_names)
    if found:
        return {"problems": found}
    return {"problems": [], "objects": site_objects(site), "nodes": node_objects(site), "secrets": secret_objects(site),
            "expect": expectations(site), "range_names": range_names(site)}
