"""host_preflight's reading of a host, on procfs trees written here and on this machine's own."""

from __future__ import annotations

import os
import socket

from ansible_collections.k8snet.fabric.plugins.module_utils import host_preflight

ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def params(proc, **overrides):
    base = {"arch": "amd64", "kernel_features": ["overlay", "br_netfilter"], "default_route": True, "data_path": None,
            "min_free_gb": 0, "ports": [], "ports_unless_exists": None, "proc": str(proc)}
    return {**base, **overrides}


def fake_proc(root, *, overlay=True, bridge=True, default_v4=True, default_v6=False, listening=()):
    (root / "net").mkdir(parents=True)
    (root / "filesystems").write_text("nodev\tsysfs\nnodev\tproc\n" + ("nodev\toverlay\n" if overlay else "") + "\text4\n")
    if bridge:
        (root / "sys" / "net" / "bridge").mkdir(parents=True)
    routes = ["eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"]
    if default_v4:
        routes.append("eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0")
    (root / "net" / "route").write_text(ROUTE_HEADER + "\n".join(routes) + "\n")
    v6 = ["00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 "
          "ffffffff 00000001 00000000 00200200 lo"]  # the kernel's unreachable default on lo is no route
    if default_v6:
        v6.append("00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 "
                  "00000400 00000001 00000000 00000003 eth0")
    (root / "net" / "ipv6_route").write_text("\n".join(v6) + "\n")
    (root / "net" / "tcp").write_text(TCP_HEADER + "".join(
        f"   {i}: 00000000:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
        for i, port in enumerate(listening)) + "   9: 0100007F:1A0B 0100007F:2935 01 00000000:00000000 00:00000000 00000000 0 0 2 1\n")
    (root / "net" / "tcp6").write_text(TCP_HEADER)
    return root


def test_a_ready_host_has_no_problems_and_reports_what_it_read(tmp_path):
    proc = fake_proc(tmp_path / "proc", listening=[22])
    p = params(proc, ports=[6443, 10250], data_path=str(tmp_path / "var" / "lib" / "rancher"), min_free_gb=0.001)
    facts = host_preflight.probe(p)
    assert facts["kernel_features"] == {"overlay": True, "br_netfilter": True} and facts["default_route"]
    assert facts["ports_checked"] and facts["ports_in_use"] == []
    assert facts["data"]["free_bytes"] > 0 and os.path.ismount(facts["data"]["mount"])
    assert facts["hostname"] == socket.gethostname().split(".")[0]
    if facts["machine"] == "x86_64":
        assert host_preflight.problems(p, facts) == []


def test_every_problem_is_named_at_once(tmp_path):
    proc = fake_proc(tmp_path / "proc", overlay=False, bridge=False, default_v4=False, listening=[6443, 8080])
    p = params(proc, arch="arm64", ports=[6443, 10250], data_path=str(tmp_path), min_free_gb=10 ** 9)
    found = host_preflight.problems(p, host_preflight.probe(p))
    assert len(found) == 5, found
    assert any("cannot run the arch=arm64 artifacts (K3s needs Linux on aarch64 or arm64)" in f for f in found)
    assert "the kernel lacks overlay, br_netfilter; load it (modprobe) and list it in /etc/modules-load.d/" in found
    assert any(f.startswith("no default route") for f in found)
    assert any("GiB free on" in f and "min_free_gb asks for 1e+09" in f for f in found)
    assert "port(s) 6443 already in use; K3s needs them" in found, "only ports K3s needs, only listening sockets"


def test_an_ipv6_default_route_counts_and_an_installed_k3s_keeps_its_ports(tmp_path):
    proc = fake_proc(tmp_path / "proc", default_v4=False, default_v6=True, listening=[6443])
    unit = tmp_path / "k3s.service"
    unit.write_text("[Unit]\n")
    p = params(proc, ports=[6443], ports_unless_exists=str(unit))
    facts = host_preflight.probe(p)
    assert facts["default_route"] and not facts["ports_checked"] and facts["ports_in_use"] == []
    assert host_preflight.problems({**p, "arch": "amd64"}, facts) == [] or facts["machine"] != "x86_64"


def test_this_machines_listening_port_is_seen(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        facts = host_preflight.probe(params("/proc", ports=[port]))
    assert facts["ports_in_use"] == [port]
