"""Real packets for the testbed: pods as network namespaces, kube-router's firewall per node.

Topology (IPv4; every namespace is made here and held by a process of ours):

    pod ns (eth0, pod IP/32) ── veth ── node ns ── veth ── fabric ns ── veth ── outside ns
                                         │ kube-router (firewall only)        (the internet, an
                                         │ API server relay on 127.0.0.1      on-prem range, a LAN)

- One **node namespace per Node** of the data-plane clusters. Its kube-router enforces the
  NetworkPolicies of the pods on that node in the namespace's own FORWARD chain; the machine's
  own chains are never touched. It reaches its API server through the agent's relay (the
  apiserver listens on the machine's loopback only).
- One **pod namespace per Running pod** with an IP (kwok assigns them from the node's podCIDR),
  with an answering socket on every containerPort (TCP and UDP; SCTP is not probed).
- One **fabric namespace** routes each node's pod range and each outside address: every
  cluster's pods reach every other's (a flat network, as Submariner or ClusterMesh give).
- **Outside namespaces** hold the addresses the roles' ipBlocks name.
- A **LAN** (``add_lan``) is a bridge every node of a cluster joins with a second link: the one
  segment where ARP runs, so MetalLB's speakers (``run_metallb``) can answer for the addresses
  their controller assigns, and LAN clients (``add_lan_client``) reach them.
- With ``services=True``, **kube-proxy** (iptables mode) runs in every node namespace beside
  kube-router, so ClusterIPs and NodePorts reach the pods; and each cluster gets its **DNS**
  as kubeadm installs it (Deployment ``kube-system/coredns``, Service ``kube-dns`` on the
  tenth Service address) with a real CoreDNS process in each of its pods' namespaces, serving
  ``cluster.local`` from the API server and, as K3s's Corefile does, importing the keys of the
  ``kube-system/coredns-custom`` ConfigMap (``restart_dns`` picks up a change, and can give the
  DNS an upstream). ``run_dns_server`` runs a CoreDNS in an outside namespace (a location's
  resolver); ``ask_dns`` asks any address from any endpoint.

Every hop is a point-to-point veth with a link-local next hop and a permanent neighbour entry:
the kernel's neighbour table is shared by all namespaces (1,024 entries), and ARP per pod and
destination overflows it at a few dozen pods.

Namespaces are held by ``sleep`` processes (``unshare --net``); ``down`` kills every process by
the pid recorded in ``dataplane.json`` and the kernel removes the namespaces and their veths.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import build
from .versions import (CLUSTER_DOMAIN, CLUSTERS, COREDNS_USER, ENVOY_GATEWAY_CONTROLLER, ENVOY_GATEWAY_USER,
                       KUBE_PROXY_USER, KUBE_ROUTER_USER)

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import (  # noqa: E402
    CLUSTER_DNS_LABELS, CLUSTER_DNS_NAMESPACE, selector_matches)

LINK_GATEWAY = "169.254.1.1"  # the next hop every pod and outside namespace uses
NODE_PEER = "169.254.1.2"  # the fabric's next hop toward a node namespace
SYSCTLS = ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
           # kube-router rejects with ICMP; a rate-limited rejection looks like a 1 s timeout.
           "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=1000000", "net.ipv4.icmp_msgs_burst=1000000")
PROBED_PROTOCOLS = ("TCP", "UDP")
ENFORCER_FAILURE = re.compile(r"Aborting sync")
# Each rule writer's log lines for "a sync started" and "a sync is in the kernel" (settle()).
SYNC_MARKS = {"kube-router": ("Starting sync of iptables", "sync iptables took"),
              "kube-proxy": ("Syncing iptables rules", "SyncProxyRules complete")}
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.15.0"  # what the testbed's CoreDNS build is
CUSTOM_DNS_CONFIGMAP = "coredns-custom"  # K3s's (and AKS's) ConfigMap of extra Corefile pieces


class DataPlaneError(RuntimeError):
    """The data plane could not be built or a helper failed; the message says which."""


@dataclass
class Endpoint:
    """A namespace made here: a pod, a node or an outside client."""

    name: str  # "cluster/namespace/pod", "node:cluster/node" or "outside:name"
    holder: int  # pid of the process holding the namespace
    address: str = ""
    ports: tuple = ()  # ((number, protocol), ...) answered in the namespace
    link: str = ""  # the veth's name on the node or fabric side
    uid: str = ""

    @property
    def netns(self) -> str:
        return f"/proc/{self.holder}/ns/net"


def _mac(index: int, side: int) -> str:
    """A locally administered unicast MAC, unique per link end."""
    return "02:6b:{:02x}:{:02x}:{:02x}:{:02x}".format(side, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF)


def _own_netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


class DataPlane:
    """The namespaces, enforcers and agent of the data plane for some testbed clusters."""

    def __init__(self, testbed, clusters: tuple[str, ...] = tuple(CLUSTERS), services: bool = False):
        self.testbed = testbed
        self.clusters = clusters
        self.services = services
        self.run_dir = testbed.run_dir / "dataplane"
        self.state_file = self.run_dir / "dataplane.json"
        self.pods: dict[str, Endpoint] = {}
        self.nodes: dict[str, Endpoint] = {}
        self.outside: dict[str, Endpoint] = {}
        self.fabric: Endpoint | None = None
        self.enforcers: dict[str, int] = {}  # node name -> kube-router pid
        self.proxies: dict[str, int] = {}  # node name -> kube-proxy pid (services)
        self.dns_servers: dict[str, int] = {}  # DNS pod name -> its CoreDNS pid (services)
        self.dns_upstreams: dict[str, int | None] = {}  # cluster -> the loopback port its DNS forwards to
        self.addons: list[tuple[str, str]] = []  # (cluster, API path) of the objects up() made
        self.lans: dict[str, Endpoint] = {}  # "lan:name" -> the namespace holding its bridge
        self.apart: dict[str, Endpoint] = {}  # "apart:cluster/name" -> a controller's own namespace
        self.lan_nodes: dict[str, tuple[str, ...]] = {}  # "lan:name" -> the nodes on it
        self.controllers: dict[str, int] = {}  # pod or node namespace name -> the controller running in it
        self.controller_logs: dict[str, str] = {}  # the same names -> its log in the run folder
        self.agent: subprocess.Popen | None = None
        self._children: dict[int, subprocess.Popen] = {}  # started here: reaped when stopped
        self._agent_lock = threading.Lock()
        self._links = 0
        self.timings: dict[str, float] = {}

    # -- processes -------------------------------------------------------------------------
    def _save(self) -> None:
        pids = {"agent": self.agent.pid if self.agent else None,
                **{f"enforcer:{n}": pid for n, pid in self.enforcers.items()},
                **{f"proxy:{n}": pid for n, pid in self.proxies.items()},
                **{f"dns:{n}": pid for n, pid in self.dns_servers.items()},
                **self.controllers,
                **{e.name: e.holder for e in self._endpoints()}}
        self.state_file.write_text(json.dumps({"pids": {k: v for k, v in pids.items() if v},
                                               "addons": self.addons}, indent=1))

    def _endpoints(self) -> list[Endpoint]:
        return ([self.fabric] if self.fabric else []) + list(self.nodes.values()) + list(self.pods.values()) \
            + list(self.outside.values()) + list(self.lans.values()) + list(self.apart.values())

    def _holders(self, names: list[str]) -> dict[str, int]:
        """One namespace-holding process per name, each in a new network namespace."""
        own = _own_netns()
        procs = {name: subprocess.Popen(["unshare", "--net", "sleep", "infinity"], stdin=subprocess.DEVNULL,
                                        start_new_session=True) for name in names}
        self._children.update({proc.pid: proc for proc in procs.values()})
        deadline = time.monotonic() + 10
        for name, proc in procs.items():
            while True:
                try:
                    if os.stat(f"/proc/{proc.pid}/ns/net").st_ino != own:
                        break
                except FileNotFoundError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DataPlaneError(f"unshare --net for {name} did not give a namespace (exit {proc.poll()})")
                time.sleep(0.002)
        return {name: proc.pid for name, proc in procs.items()}

    @staticmethod
    def _in_netns(holder: int, argv: list[str], stdin: str | None = None) -> str:
        proc = subprocess.run(["nsenter", f"--net=/proc/{holder}/ns/net", *argv], input=stdin,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DataPlaneError(f"in namespace of pid {holder}: {' '.join(argv)} failed: "
                                 f"{proc.stderr.strip()}\n{(stdin or '')[:2000]}")
        return proc.stdout

    def _ip_batch(self, holder: int, lines: list[str]) -> None:
        if lines:
            self._in_netns(holder, ["ip", "-batch", "-"], "\n".join(lines) + "\n")

    def _router_setup(self, holder: int, address: str | None = None) -> None:
        self._in_netns(holder, ["sysctl", "-q", "-w", *SYSCTLS])
        lines = ["link set lo up"] + ([f"addr add {address}/32 dev lo"] if address else [])
        self._ip_batch(holder, lines)

    def _ask(self, command: dict) -> dict:
        with self._agent_lock:
            self.agent.stdin.write(json.dumps(command) + "\n")
            self.agent.stdin.flush()
            line = self.agent.stdout.readline()
        if not line:
            raise DataPlaneError(f"the data plane agent exited ({self.agent.poll()}): "
                                 + (self.run_dir / "agent.log").read_text(errors="replace")[-2000:])
        reply = json.loads(line)
        if "error" in reply:
            raise DataPlaneError(f"agent {command['op']}: {reply['error']}")
        return reply

    def _new_link(self) -> tuple[str, str, str]:
        """A fresh veth index: (index, near-side MAC, far-side MAC)."""
        self._links += 1
        return str(self._links), _mac(self._links, 1), _mac(self._links, 2)

    # -- up --------------------------------------------------------------------------------
    def up(self) -> dict:
        """Fabric, node namespaces with their enforcers, the agent; then one sync of the pods."""
        if self.testbed.external:
            raise DataPlaneError("the data plane needs the testbed's own clusters (K8SNET_TEST_KUBECONFIG is set)")
        self.down(quiet=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        kube_router = build.build_tool("kube-router")
        kube_proxy = build.build_binaries()["kube-proxy"] if self.services else None
        with (self.run_dir / "agent.log").open("wb") as agent_log:
            self.agent = subprocess.Popen([sys.executable, "-m", "tests.testbed.netagent"], cwd=build.REPO,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=agent_log,
                                          text=True, start_new_session=True)
        self._children[self.agent.pid] = self.agent
        self._save()
        try:
            servers = self.testbed._state()["servers"]
            # One kubeconfig per cluster, written before any enforcer reads it.
            kubeconfigs = {cluster: self.testbed._component_kubeconfig(cluster, servers[cluster], KUBE_ROUTER_USER)
                           for cluster in self.clusters}
            proxy_kubeconfigs = {cluster: self.testbed._component_kubeconfig(cluster, servers[cluster], KUBE_PROXY_USER)
                                 for cluster in self.clusters} if self.services else {}
            nodes = [(cluster, node, index) for cluster in self.clusters
                     for index, node in enumerate(CLUSTERS[cluster].nodes)]
            holders = self._holders(["fabric"] + [f"node:{c}/{n.name}" for c, n, _unused in nodes])
            self.fabric = Endpoint("fabric", holders["fabric"])
            self._save()
            self._router_setup(self.fabric.holder)
            fabric_lines, fabric_macs = [], {}
            for cluster, node, index in nodes:
                name = f"node:{cluster}/{node.name}"
                address = CLUSTERS[cluster].node_address(index)
                link, mac_fabric, mac_node = self._new_link()
                endpoint = self.nodes[node.name] = Endpoint(name, holders[name], address, link=f"n{link}")
                fabric_lines += [
                    f"link add n{link} address {mac_fabric} type veth peer name up0 address {mac_node} "
                    f"netns {endpoint.holder}",
                    f"link set n{link} up",
                    f"neigh replace {NODE_PEER} lladdr {mac_node} dev n{link} nud permanent",
                    f"route replace {CLUSTERS[cluster].node_pod_cidr(index)} via {NODE_PEER} dev n{link} onlink",
                    f"route replace {address}/32 via {NODE_PEER} dev n{link} onlink",
                ]
                fabric_macs[node.name] = mac_fabric
            self._save()
            self._ip_batch(self.fabric.holder, fabric_lines)
            for cluster, node, index in nodes:
                endpoint = self.nodes[node.name]
                self._router_setup(endpoint.holder, endpoint.address)
                self._ip_batch(endpoint.holder, [
                    "link set up0 up",
                    f"neigh replace {LINK_GATEWAY} lladdr {fabric_macs[node.name]} dev up0 nud permanent",
                    # The node's own address as the source: what kube-proxy's masquerade gives.
                    f"route replace default via {LINK_GATEWAY} dev up0 onlink src {endpoint.address}"])
                self._relay_api(endpoint, servers[cluster])
                self.enforcers[node.name] = self._start_enforcer(
                    kube_router, cluster, node.name, endpoint, kubeconfigs[cluster])
                if self.services:
                    self.proxies[node.name] = self._start_proxy(
                        kube_proxy, cluster, node.name, endpoint, proxy_kubeconfigs[cluster])
                self._save()
            if self.services:
                self._install_dns()
            self._wait(self._writers_ready, "the first rule sync of every kube-router and kube-proxy", 60)
            plane_at = time.monotonic()
            self.sync()
            if self.services:
                self._wait(self._dns_ready, "CoreDNS serving in every cluster", 60)
        except BaseException:
            self.down(quiet=True)
            raise
        self.timings = {"plane": round(plane_at - started, 2), "total": round(time.monotonic() - started, 2)}
        return self.timings

    def _relay_api(self, endpoint: Endpoint, server: str) -> None:
        """The API server at its own address and port on the namespace's loopback, relayed by
        the agent (the apiservers listen on the machine's loopback only)."""
        host, port = server.rsplit("//", 1)[1].rsplit(":", 1)
        self._ask({"op": "relay", "key": endpoint.name, "netns": endpoint.netns,
                   "listen": [host, int(port)], "target": [host, int(port)]})

    def _start_in(self, endpoint: Endpoint, argv: list[str], log_name: str) -> int:
        """A process of ours inside a namespace made here, logging to the run folder."""
        with (self.run_dir / log_name).open("wb") as log:  # this plane's lines only
            proc = subprocess.Popen(["nsenter", f"--net={endpoint.netns}", "--", *argv], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._children[proc.pid] = proc
        return proc.pid

    def _start_enforcer(self, binary: Path, cluster: str, node: str, endpoint: Endpoint, kubeconfig: Path) -> int:
        return self._start_in(endpoint, [
            str(binary),
            # Only the firewall: the service proxy (advisory GHSA-phqm-jgc3-qf8g) and the BGP
            # router never run; health and metrics ports stay closed.
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
            "--health-port=0", "--metrics-port=0", "--enable-ipv6=false",
            f"--kubeconfig={kubeconfig}", f"--hostname-override={node}",
            f"--service-cluster-ip-range={CLUSTERS[cluster].service_cidr}",
            "--v=1"], f"kube-router-{node}.log")

    def _start_proxy(self, binary: Path, cluster: str, node: str, endpoint: Endpoint, kubeconfig: Path) -> int:
        """kube-proxy as kubeadm runs it, in iptables mode; the node namespace's conntrack
        limits are left as the kernel has them (they are the machine's, not the namespace's)."""
        return self._start_in(endpoint, [
            str(binary), f"--kubeconfig={kubeconfig}", f"--hostname-override={node}",
            "--proxy-mode=iptables", "--nodeport-addresses=primary", f"--cluster-cidr={CLUSTERS[cluster].pod_cidr}",
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            # Rules as soon as a Service changes: tests wait for them with settle().
            "--iptables-min-sync-period=0s",
            f"--healthz-bind-address={endpoint.address}:10256", "--metrics-bind-address=127.0.0.1:10249",
            "--v=2"], f"kube-proxy-{node}.log")

    def _writers(self) -> list[tuple[str, str, int]]:
        """(program, node, pid) of every process writing rules into a node namespace."""
        return [("kube-router", node, pid) for node, pid in self.enforcers.items()] + \
            [("kube-proxy", node, pid) for node, pid in self.proxies.items()]

    def _writers_ready(self) -> bool:
        for program, node, pid in self._writers():
            if not _alive(pid):
                raise DataPlaneError(f"{program} on {node} exited:\n{self.log(program, node)[-3000:]}")
        return all(self.log(program, node).count(SYNC_MARKS[program][1]) >= 1
                   for program, node, _pid in self._writers())

    def log(self, program: str, node: str) -> str:
        """What one of the plane's processes has logged so far (``kube-router``, ``kube-proxy``)."""
        path = self.run_dir / f"{program}-{node}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def enforcer_failures(self) -> list[str]:
        """Lines of kube-router's logs saying a rule update failed (the test fails on them)."""
        return [f"{node}: {line}" for node in self.enforcers for line in self.log("kube-router", node).splitlines()
                if ENFORCER_FAILURE.search(line)]

    def settle(self, quiet: float = 0.4, timeout: float = 20.0) -> None:
        """Wait until no enforcer or proxy has started a rule sync for ``quiet`` seconds and none
        is running: what the API server has told them is in the kernel."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            marks = tuple((log.count(SYNC_MARKS[program][0]), log.count(SYNC_MARKS[program][1]))
                          for program, node, _pid in self._writers() for log in [self.log(program, node)])
            if marks != last:
                last, since = marks, time.monotonic()
            elif all(started == done for started, done in marks) and time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)
        raise DataPlaneError(f"the enforcers did not settle within {timeout}s")

    # -- pods ------------------------------------------------------------------------------
    def sync(self) -> dict:
        """Make the namespaces match the Running pods with IPs on the data plane's nodes: new
        pods get a namespace, gone (or replaced) pods lose theirs. Returns counts."""
        wanted: dict[str, dict] = {}
        for cluster in self.clusters:
            for pod in self.testbed.client(cluster).request("GET", "/api/v1/pods")["items"]:
                status, spec, meta = pod.get("status") or {}, pod.get("spec") or {}, pod["metadata"]
                if status.get("phase") != "Running" or not status.get("podIP") or spec.get("hostNetwork") \
                        or spec.get("nodeName") not in self.nodes:
                    continue
                ports = tuple(sorted({(p["containerPort"], p.get("protocol") or "TCP")
                                      for c in spec.get("containers") or [] for p in c.get("ports") or []
                                      if (p.get("protocol") or "TCP") in PROBED_PROTOCOLS}))
                wanted[f"{cluster}/{meta['namespace']}/{meta['name']}"] = {
                    "uid": meta["uid"], "ip": status["podIP"], "node": spec["nodeName"], "ports": ports,
                    "cluster": cluster, "dns": self.services and _is_cluster_dns(meta)}
        gone = [name for name, pod in self.pods.items()
                if name not in wanted or wanted[name]["uid"] != pod.uid or wanted[name]["ip"] != pod.address]
        for name in gone:
            self._remove(self.pods.pop(name))
        new = [name for name in wanted if name not in self.pods]
        if new:
            self._add_pods({name: wanted[name] for name in new})
        self._save()
        return {"added": len(new), "removed": len(gone), "pods": len(self.pods)}

    def _add_pods(self, pods: dict[str, dict]) -> None:
        holders = self._holders(list(pods))
        node_lines: dict[str, list[str]] = {}
        node_macs: dict[str, str] = {}
        for name, pod in pods.items():
            link, mac_node, mac_pod = self._new_link()
            endpoint = self.pods[name] = Endpoint(name, holders[name], pod["ip"], pod["ports"], f"p{link}", pod["uid"])
            node_lines.setdefault(pod["node"], []).extend([
                f"link add p{link} address {mac_node} type veth peer name eth0 address {mac_pod} netns {endpoint.holder}",
                f"link set p{link} up",
                f"neigh replace {pod['ip']} lladdr {mac_pod} dev p{link} nud permanent",
                f"route replace {pod['ip']}/32 dev p{link}"])
            node_macs[name] = mac_node
        self._save()
        for node, lines in node_lines.items():
            self._ip_batch(self.nodes[node].holder, lines)
        for name, pod in pods.items():
            self._client_side(self.pods[name], node_macs[name], listen=not pod["dns"])
            if pod["dns"]:
                self._serve_dns(pod["cluster"], self.pods[name])

    def _client_side(self, endpoint: Endpoint, gateway_mac: str, listen: bool = True) -> None:
        """The pod (or outside) end: its address, the link-local gateway, answering ports
        (unless a real server answers on them)."""
        self._ip_batch(endpoint.holder, [
            "link set lo up", f"addr add {endpoint.address}/32 dev eth0", "link set eth0 up",
            f"neigh replace {LINK_GATEWAY} lladdr {gateway_mac} dev eth0 nud permanent",
            f"route replace {LINK_GATEWAY} dev eth0 scope link",
            f"route replace default via {LINK_GATEWAY} dev eth0"])
        if endpoint.ports and listen:
            self._ask({"op": "listen", "key": endpoint.name, "netns": endpoint.netns,
                       "ports": [list(p) for p in endpoint.ports]})

    def add_outside(self, name: str, address: str, ports: tuple = ()) -> Endpoint:
        """An outside client (or server, with ``ports``) at ``address``, reachable from every pod."""
        key = f"outside:{name}"
        if key in self.outside:
            return self.outside[key]
        holder = self._holders([key])[key]
        link, mac_fabric, mac_outside = self._new_link()
        endpoint = self.outside[key] = Endpoint(key, holder, str(ipaddress.ip_address(address)),
                                                tuple(ports), f"o{link}")
        self._save()
        self._ip_batch(self.fabric.holder, [
            f"link add o{link} address {mac_fabric} type veth peer name eth0 address {mac_outside} netns {holder}",
            f"link set o{link} up",
            f"neigh replace {address} lladdr {mac_outside} dev o{link} nud permanent",
            f"route replace {address}/32 dev o{link}"])
        self._client_side(endpoint, mac_fabric)
        return endpoint

    # -- a LAN and MetalLB -----------------------------------------------------------------
    def add_lan(self, name: str, cluster: str, cidr: str) -> Endpoint:
        """A LAN segment (a bridge) that every node of ``cluster`` joins on a link ``lan0``, with
        the address ``cidr``'s 100th, 101st, ... host (as the edge inventory numbers its hosts).
        A node gets a host route per LAN client rather than the LAN's prefix, so the fabric's
        outside namespaces inside the same range stay reachable the way they were."""
        key = f"lan:{name}"
        if key in self.lans:
            return self.lans[key]
        lan = self.lans[key] = Endpoint(key, self._holders([key])[key], cidr)
        self._save()
        lines, network = ["link set lo up", "link add br0 type bridge", "link set br0 up"], ipaddress.ip_network(cidr)
        node_lines = {}
        for index, node in enumerate(CLUSTERS[cluster].nodes):
            link, mac_lan, mac_node = self._new_link()
            lines += [f"link add l{link} address {mac_lan} type veth peer name lan0 address {mac_node} "
                      f"netns {self.nodes[node.name].holder}", f"link set l{link} master br0", f"link set l{link} up"]
            node_lines[node.name] = [f"addr add {network[100 + index]}/32 dev lan0", "link set lan0 up"]
        self._ip_batch(lan.holder, lines)
        for node, batch in node_lines.items():
            self._ip_batch(self.nodes[node].holder, batch)
        self.lan_nodes[key] = tuple(node_lines)
        return lan

    def add_lan_client(self, lan_name: str, name: str, address: str) -> Endpoint:
        """A host on the LAN (``outside:<name>``) at ``address`` with the LAN's prefix: it finds
        the LAN's addresses, LoadBalancer addresses included, by ARP."""
        lan = self.lans[f"lan:{lan_name}"]
        key = f"outside:{name}"
        holder = self._holders([key])[key]
        endpoint = self.outside[key] = Endpoint(key, holder, address)
        self._save()
        link, mac_lan, mac_client = self._new_link()
        prefix = ipaddress.ip_network(lan.address).prefixlen
        self._ip_batch(lan.holder, [
            f"link add l{link} address {mac_lan} type veth peer name eth0 address {mac_client} netns {holder}",
            f"link set l{link} master br0", f"link set l{link} up"])
        self._ip_batch(holder, ["link set lo up", f"addr add {address}/{prefix} dev eth0", "link set eth0 up"])
        for node in self.lan_nodes[lan.name]:
            self._ip_batch(self.nodes[node].holder, [f"route replace {address}/32 dev lan0"])
        return endpoint

    def run_metallb(self, cluster: str, namespace: str = "metallb-system") -> None:
        """MetalLB's controller in its pod's namespace and, on every node where a speaker pod
        runs, its speaker in the node's namespace (as its hostNetwork pod would), as the service
        accounts and RBAC of the MetalLB manifest the cluster has (tokens from the TokenRequest
        API). The controller's webhooks are off: nothing calls into a pod here."""
        client = self.testbed.client(cluster)
        server = self.testbed._state()["servers"][cluster]
        controller, speaker = (build.build_tool(tool) for tool in ("metallb-controller", "metallb-speaker"))
        pods = client.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
        speakers = {pod["spec"]["nodeName"]: pod["metadata"]["name"] for pod in pods
                    if pod["metadata"].get("labels", {}).get("component") == "speaker"
                    and (pod.get("status") or {}).get("phase") == "Running" and pod["spec"].get("nodeName") in self.nodes}
        if not speakers:
            raise DataPlaneError(f"{cluster}: no MetalLB speaker pod runs in {namespace} on the plane's nodes")
        pod = next((name for name in (f"{cluster}/{namespace}/{pod['metadata']['name']}" for pod in pods
                                      if pod["metadata"].get("labels", {}).get("component") == "controller")
                    if name in self.pods), None)
        if pod is None:
            raise DataPlaneError(f"{cluster}: MetalLB's controller pod is not on the plane (sync() after it runs)")
        # In its pod's namespace, as in the cluster (it serves metrics on every address it has):
        # the agent's sockets on its ports give way to the real process.
        self._ask({"op": "forget", "key": pod})
        self._relay_api(self.pods[pod], server)
        kubeconfig = self.testbed.account_kubeconfig(cluster, namespace, "controller")
        self._start_controller(pod, self.pods[pod], [
            "env", f"KUBECONFIG={kubeconfig}", str(controller), f"--namespace={namespace}",
            "--webhook-mode=disabled", "--disable-cert-rotation", "--log-level=info"], f"metallb-controller-{cluster}.log")
        kubeconfig = self.testbed.account_kubeconfig(cluster, namespace, "speaker")
        for node, speaker_pod in speakers.items():
            self._start_controller(f"node:{cluster}/{node}", self.nodes[node], [
                "env", f"KUBECONFIG={kubeconfig}", str(speaker), f"--namespace={namespace}", f"--node-name={node}",
                f"--pod-name={speaker_pod}", "--log-level=info"], f"metallb-speaker-{node}.log")
        self._save()

    def run_envoy_gateway(self, cluster: str, namespace: str = "envoy-gateway-system", installed: bool = False) -> None:
        """Envoy Gateway's control plane for ``cluster``, as its chart runs it (provider
        Kubernetes, every namespace watched, topology injector off), as ``system:envoy-gateway``
        with the chart's rules. It runs in a network namespace of its own (its ports are fixed)
        that reaches the apiserver through the agent's relay, and in a private mount namespace
        whose root is the machine's under a throw-away overlay: the binary reads its xDS
        certificate from /certs (where the chart mounts the certgen Secret) and writes caches under
        /var/lib, so nothing of it lands on the machine. No Envoy runs: only the control plane's
        statuses and the proxy Deployment and Service it makes (kwok runs the pods).

        ``installed``: Envoy Gateway's release manifest is on the cluster (a role installed it);
        the controller then runs as that manifest's service account, with its RBAC and the
        configuration of its ConfigMap, as the manifest's Deployment would run it."""
        client = self.testbed.client(cluster)
        server = self.testbed._state()["servers"][cluster]
        binary = build.build_tool("envoy-gateway")
        if not installed:
            self.testbed._apply(client, f"/api/v1/namespaces/{namespace}",
                                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            for doc in yaml.safe_load((Path(__file__).resolve().parent / "rbac" / "envoy-gateway-namespace.yaml").read_text())["items"]:
                self.testbed._apply(client, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/"
                                            f"{doc['kind'].lower()}s/{doc['metadata']['name']}",
                                    {**doc, "metadata": {**doc["metadata"], "namespace": namespace}})
        key = f"apart:{cluster}/envoy-gateway"
        home = self.run_dir / f"envoy-gateway-{cluster}"
        home.mkdir(parents=True, exist_ok=True)
        # The certificates certgen makes (the chart's Job writes them to a Secret instead).
        subprocess.run([str(binary), "certgen", "--local", f"--config-home={home / 'certgen'}"], check=True,
                       capture_output=True, env={**os.environ, "ENVOY_GATEWAY_NAMESPACE": namespace})
        certs = next((home / "certgen").rglob("envoy-gateway/tls.crt")).parent
        config = home / "envoy-gateway.yaml"
        if installed:
            config.write_text(client.request(
                "GET", f"/api/v1/namespaces/{namespace}/configmaps/envoy-gateway-config")["data"]["envoy-gateway.yaml"])
            kubeconfig = self.testbed.account_kubeconfig(cluster, namespace, "envoy-gateway")
        else:
            config.write_text(yaml.safe_dump({
                "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyGateway",
                "gateway": {"controllerName": ENVOY_GATEWAY_CONTROLLER},
                "logging": {"level": {"default": "info"}},
                "provider": {"type": "Kubernetes", "kubernetes": {"proxyTopologyInjector": {"disabled": True}}}}))
            kubeconfig = self.testbed._component_kubeconfig(cluster, server, ENVOY_GATEWAY_USER)
        endpoint = self.apart[key] = Endpoint(key, self._holders([key])[key])
        self._save()
        self._ip_batch(endpoint.holder, ["link set lo up"])
        self._relay_api(endpoint, server)
        root = home / "root"
        script = "\n".join([
            "set -e", f"cd {home}", "mkdir -p layer root",
            "mount -t tmpfs tmpfs layer", "mkdir -p layer/upper layer/work",
            "mount -t overlay overlay -o lowerdir=/,upperdir=layer/upper,workdir=layer/work root",
            "for d in proc dev sys; do mount --rbind /$d root/$d; done",
            f"mkdir -p root/certs root{home} && mount --bind {certs} root/certs && mount --rbind {home} root{home}",
            f"exec chroot {root} env KUBECONFIG={kubeconfig} ENVOY_GATEWAY_NAMESPACE={namespace} "
            f"{binary} server --config-path={config}"])
        self._start_controller(key, endpoint, ["unshare", "--mount", "--propagation", "private", "--",
                                               "sh", "-c", script], f"envoy-gateway-{cluster}.log")
        self._save()

    def stop_controller(self, key: str) -> None:
        """Stop a controller started here (and the namespace of its own, if it had one)."""
        if key in self.controllers:
            self._stop(self.controllers.pop(key))
        endpoint = self.apart.pop(key, None)
        if endpoint:
            self._ask({"op": "forget", "key": key})
            self._stop(endpoint.holder)
        self._save()

    def _start_controller(self, key: str, endpoint: Endpoint, argv: list[str], log_name: str) -> None:
        self.controllers[key] = self._start_in(endpoint, argv, log_name)
        self.controller_logs[key] = log_name

    def controller_exits(self) -> list[str]:
        """The controllers (MetalLB's) that have exited, each with its log's tail: a test
        waiting on what a controller does checks this so it fails with the reason."""
        return [f"{key} exited:\n{(self.run_dir / self.controller_logs[key]).read_text(errors='replace')[-3000:]}"
                for key, pid in self.controllers.items() if not _alive(pid) and key in self.controller_logs]

    def _remove(self, endpoint: Endpoint) -> None:
        if self.agent and self.agent.poll() is None:
            self._ask({"op": "forget", "key": endpoint.name})
        for servers in (self.dns_servers, self.controllers):
            if endpoint.name in servers:
                self._stop(servers.pop(endpoint.name))
        self._stop(endpoint.holder)

    def endpoint(self, name: str) -> Endpoint:
        """A pod (``cluster/ns/name``) or outside (``outside:name``) endpoint by name."""
        return self.outside[name] if name.startswith("outside:") else self.pods[name]

    # -- cluster DNS (services) ------------------------------------------------------------
    def _install_dns(self) -> None:
        """Each cluster's DNS as kubeadm installs it, unless the cluster has one: the Deployment
        whose pods get a CoreDNS process each, and the kube-dns Service. down() removes what
        this made."""
        for cluster in self.clusters:
            client = self.testbed.client(cluster)
            for path, obj in _dns_addon(cluster):
                if client.request("GET", path, allow=(404,)) is None:
                    client.request("PATCH", path, query={"fieldManager": "k8snet-testbed"}, body=obj,
                                   content_type="application/apply-patch+yaml")
                    self.addons.append((cluster, path))
        self._save()

    def _serve_dns(self, cluster: str, endpoint: Endpoint) -> None:
        """A CoreDNS process in a DNS pod's namespace, reading the API server through a relay
        on the pod's own loopback (the apiservers listen on the machine's only), with the
        Corefile K3s gives its CoreDNS: the cluster zone, the ``coredns-custom`` ConfigMap's
        ``*.override`` keys inside that block and its ``*.server`` keys as blocks of their own
        (K3s mounts the optional ConfigMap at /etc/coredns/custom; here its keys are copied to
        the pod's folder when CoreDNS starts, as the kubelet would project them)."""
        server = self.testbed._state()["servers"][cluster]
        self._relay_api(endpoint, server)
        kubeconfig = self.testbed._component_kubeconfig(cluster, server, COREDNS_USER)
        folder = self.run_dir / f"coredns-{endpoint.holder}"
        custom = folder / "custom"
        custom.mkdir(parents=True, exist_ok=True)
        for old in custom.iterdir():
            old.unlink()
        projected = self.testbed.client(cluster).request(
            "GET", f"/api/v1/namespaces/{CLUSTER_DNS_NAMESPACE}/configmaps/{CUSTOM_DNS_CONFIGMAP}", allow=(404,))
        for key, text in ((projected or {}).get("data") or {}).items():
            (custom / key).write_text(text)
        upstream = self.dns_upstreams.get(cluster)
        # The upstream listens on the machine's loopback: relayed (TCP) onto the pod's own.
        forward = f"    forward . 127.0.0.1:{upstream} {{\n        force_tcp\n    }}\n" if upstream else ""
        if upstream:
            self._ask({"op": "relay", "key": endpoint.name, "netns": endpoint.netns,
                       "listen": ["127.0.0.1", upstream], "target": ["127.0.0.1", upstream]})
        (folder / "Corefile").write_text(
            ".:53 {\n    errors\n    prometheus :9153\n"
            f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
            f"        kubeconfig {kubeconfig} {cluster}\n        pods insecure\n"
            "        fallthrough in-addr.arpa ip6.arpa\n        ttl 5\n    }\n"
            f"    import {custom}/*.override\n{forward}    loadbalance\n}}\n"
            f"import {custom}/*.server\n")
        self.dns_servers[endpoint.name] = self._start_in(
            endpoint, [str(build.build_tool("coredns")), "-conf", str(folder / "Corefile")],
            f"coredns-{endpoint.holder}.log")
        self._save()

    def restart_dns(self, cluster: str, upstream: int | None = None) -> list[str]:
        """Start the cluster's DNS pods' CoreDNS again with the ``coredns-custom`` ConfigMap as
        it is now (what a rollout restart does after a role changed it), forwarding what no zone
        of theirs answers to ``upstream``, a DNS server on the machine's loopback at that port.
        Returns the DNS pods' addresses once every one answers."""
        self.dns_upstreams[cluster] = upstream
        pods = [name for name in self.dns_servers if name.startswith(f"{cluster}/")]
        for name in pods:
            endpoint = self.pods[name]
            self._stop(self.dns_servers.pop(name))
            self._ask({"op": "forget", "key": name})  # the relays go with the process they served
            self._serve_dns(cluster, endpoint)
        self._wait(self._dns_ready, f"CoreDNS serving again in {cluster}", 30)
        for name in pods:
            self._wait_answering(name, self.pods[name].address)
        return [self.pods[name].address for name in pods]

    def run_dns_server(self, key: str, outside: str, corefile: str) -> None:
        """A CoreDNS process with ``corefile`` in an outside namespace (``outside:<name>``),
        such as a location's own resolver; stopped with stop_controller(key) or down()."""
        endpoint = self.outside[outside]
        path = self.run_dir / f"Corefile-{key.replace(':', '-').replace('/', '-')}"
        path.write_text(corefile)
        self._start_controller(key, endpoint, [str(build.build_tool("coredns")), "-conf", str(path)],
                               f"{path.name}.log")
        self._save()
        self._wait_answering(outside, endpoint.address)

    def _wait_answering(self, source: str, server: str) -> None:
        """Until the DNS server at ``server`` answers a question from ``source``'s namespace;
        a controller that exited meanwhile fails the wait with its log."""
        def answering() -> bool:
            exits = self.controller_exits()
            if exits:
                raise DataPlaneError("\n".join(exits))
            return self.ask_dns(source, server, "ready.check.", timeout=0.5)["rcode"] != "timeout"
        self._wait(answering, f"DNS answering at {server} from {source}", 30)

    def _dns_ready(self) -> bool:
        """Every cluster's DNS pods run a CoreDNS that has synced with its API server: it
        answers the API's own Service. (Its banner is not enough: the kubernetes plugin starts
        serving after 5 s even when the sync takes longer, and answers SERVFAIL until it is done.)"""
        served = {name.split("/", 1)[0] for name in self.dns_servers}
        for name, pid in self.dns_servers.items():
            log = (self.run_dir / f"coredns-{self.pods[name].holder}.log").read_text(errors="replace")
            if not _alive(pid):
                raise DataPlaneError(f"CoreDNS in {name} exited:\n{log[-3000:]}")
            if "CoreDNS-" not in log or not self.ask_dns(name, self.pods[name].address,
                                                         f"kubernetes.default.svc.{CLUSTER_DOMAIN}.", timeout=0.5)["addresses"]:
                return False
        if served != set(self.clusters):
            self.sync()  # the DNS pods were not Running yet at the last sync
            return False
        return True

    def resolve(self, source: str, name: str, rdtype: str = "A") -> dict:
        """Look ``name`` up from a pod as its resolver would (cluster DNS Service as the
        nameserver, the pod namespace's search list, ndots 5): {'name': the name answered,
        'rcode': 'NOERROR' | 'NXDOMAIN' | 'timeout' | ..., 'addresses': [...]}."""
        cluster, namespace, _pod = source.split("/", 2)
        search = [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        absolute = name.endswith(".") or name.count(".") >= 5
        names = [name] if absolute else [f"{name}.{domain}." for domain in search] + [name + "."]
        return self._ask({"op": "resolve", "netns": self.pods[source].netns,
                          "server": CLUSTERS[cluster].dns_address, "names": names, "type": rdtype})

    def ask_dns(self, source: str, server: str, name: str, rdtype: str = "A", timeout: float = 2.0) -> dict:
        """Ask ``server`` (an address, port 53) for the absolute ``name`` from any endpoint's
        namespace, pod or outside: the same answer shape as resolve()."""
        return self._ask({"op": "resolve", "netns": self.endpoint(source).netns, "server": server,
                          "names": [name if name.endswith(".") else name + "."], "type": rdtype,
                          "timeout": timeout})

    # -- probes ----------------------------------------------------------------------------
    def probe(self, sources: list[str] | None = None, destinations: list[str] | None = None,
              timeout: float = 1.0) -> dict[tuple[str, str, str], str]:
        """Connect from every source to every destination's ports: {(source, destination,
        'port/PROTO'): 'open' | reason}. Sources and destinations are endpoint names (pods
        ``cluster/ns/name``, ``outside:name``); by default every pod and outside namespace."""
        everyone = {**self.pods, **self.outside}
        sources = list(everyone) if sources is None else sources
        destinations = list(everyone) if destinations is None else destinations
        keys, probes = [], []
        for src in sources:
            for dst in destinations:
                if src == dst:
                    continue
                for port, protocol in everyone[dst].ports:
                    keys.append((src, dst, f"{port}/{protocol}"))
                    probes.append([everyone[src].netns, everyone[dst].address, port, protocol])
        if not probes:
            return {}
        results = self._ask({"op": "probe", "probes": probes, "timeout": timeout})["results"]
        return dict(zip(keys, results))

    def probe_addresses(self, sources: list[str], targets: list[tuple[str, int, str]], timeout: float = 1.0,
                        peers: bool = False) -> dict[tuple[str, str], str]:
        """Connect from each source endpoint to each (address, port, protocol) target, such as
        a ClusterIP or a node's NodePort: {(source, 'address:port/PROTO'): 'open' | reason}.
        With ``peers``, an open result is 'open from <address>': the client address the pod
        behind the Service saw (kept, or rewritten by the proxy's masquerade)."""
        everyone = {**self.pods, **self.outside}
        keys = [(src, f"{address}:{port}/{protocol}") for src in sources for address, port, protocol in targets]
        probes = [[everyone[src].netns, address, port, protocol]
                  for src in sources for address, port, protocol in targets]
        reply = self._ask({"op": "probe", "probes": probes, "timeout": timeout, "peers": peers})
        results = reply["results"]
        if peers:
            results = [f"open from {peer}" if result == "open" and peer else result
                       for result, peer in zip(results, reply["peers"])]
        return dict(zip(keys, results))

    # -- down ------------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> None:
        """Kill every process the data plane started, by the pids on record; the kernel then
        removes the namespaces and veths they held."""
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        pids = set((state.get("pids") or {}).values()) | set(self.enforcers.values()) | set(self.proxies.values()) \
            | set(self.dns_servers.values()) | set(self.controllers.values()) | {e.holder for e in self._endpoints()} \
            | ({self.agent.pid} if self.agent else set())
        for pid in pids:
            _kill(pid)
        for pid in pids:
            self._reap(pid)
        if self.agent:
            for stream in (self.agent.stdin, self.agent.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        self._remove_addons({tuple(item) for item in state.get("addons") or []} | set(self.addons))
        self.agent, self.fabric = None, None
        self.pods, self.nodes, self.outside, self.enforcers = {}, {}, {}, {}
        self.proxies, self.dns_servers, self.addons, self.lans, self.controllers = {}, {}, [], {}, {}
        self.apart, self.dns_upstreams = {}, {}
        self.controller_logs = {}
        self.lan_nodes = {}
        if self.state_file.exists():
            self.state_file.unlink()
        if not quiet and pids:
            print(f"dataplane: stopped {len(pids)} processes")

    def _remove_addons(self, addons: set) -> None:
        """Delete the cluster objects up() made (their pods go with them), while the API
        servers still run; a testbed already stopped has nothing left to delete."""
        for cluster, path in addons:
            try:
                self.testbed.client(cluster).request("DELETE", path, allow=(404,))
            except Exception:  # noqa: BLE001 - the apiserver is gone with everything in it
                pass

    def _stop(self, pid: int) -> None:
        _kill(pid)
        self._reap(pid)

    def _reap(self, pid: int) -> None:
        """Wait for a stopped process: a child of ours is reaped (no zombie is left behind);
        one started by another process (``down`` from the CLI) is waited out."""
        proc = self._children.pop(pid, None)
        if proc is not None:
            proc.wait(timeout=15)
        else:
            _wait_gone(pid)

    def _wait(self, condition, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise DataPlaneError(f"timed out after {timeout}s waiting for {what}")


def _is_cluster_dns(meta: dict) -> bool:
    return meta["namespace"] == CLUSTER_DNS_NAMESPACE and selector_matches({"matchLabels": CLUSTER_DNS_LABELS},
                                                                           meta.get("labels") or {})


def _dns_addon(cluster: str) -> list[tuple[str, dict]]:
    """(API path, object) of a cluster's DNS add-on as kubeadm names and labels it, with the
    optional ``coredns-custom`` volume K3s adds (its keys are what the CoreDNS processes import)."""
    labels = dict(CLUSTER_DNS_LABELS)
    ports = [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    meta = {"namespace": CLUSTER_DNS_NAMESPACE, "labels": labels}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", **meta}, "spec": {
        "replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "coredns", "image": COREDNS_IMAGE, "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports],
                            "volumeMounts": [{"name": "custom-config-volume", "mountPath": "/etc/coredns/custom",
                                              "readOnly": True}]}],
            "volumes": [{"name": "custom-config-volume",
                         "configMap": {"name": CUSTOM_DNS_CONFIGMAP, "optional": True}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", **meta}, "spec": {
        "clusterIP": CLUSTERS[cluster].dns_address, "selector": labels,
        "ports": [{"name": n, "port": p, "targetPort": p, "protocol": proto} for n, p, proto in ports]}}
    return [(f"/apis/apps/v1/namespaces/{CLUSTER_DNS_NAMESPACE}/deployments/coredns", deployment),
            (f"/api/v1/namespaces/{CLUSTER_DNS_NAMESPACE}/services/kube-dns", service)]


def _alive(pid: int) -> bool:
    from .harness import gone  # the testbed's own rule for a process that has exited
    return not gone(pid)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise DataPlaneError(f"pid {pid} did not exit after SIGKILL")
        time.sleep(0.01)
