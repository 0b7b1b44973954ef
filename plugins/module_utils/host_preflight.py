# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_preflight's work: read what a K3s install needs from the host (one module run, read
only) and name every problem. Reads /proc and the file system only; no commands are run."""

from __future__ import annotations

import os
import platform
import socket

# `uname -m` per K3s release architecture.
MACHINES = {"amd64": ("x86_64",), "arm64": ("aarch64", "arm64"), "arm": ("armv7l", "armv8l")}
# How each kernel feature K3s needs shows on a running kernel.
KERNEL_FEATURES = ("overlay", "br_netfilter")
ARGUMENT_SPEC = dict(
    arch=dict(type="str", required=True, choices=sorted(MACHINES)),
    kernel_features=dict(type="list", elements="str", default=list(KERNEL_FEATURES), choices=list(KERNEL_FEATURES)),
    default_route=dict(type="bool", default=True),
    data_path=dict(type="str"),
    min_free_gb=dict(type="float", default=0),
    ports=dict(type="list", elements="int", default=[]),
    ports_unless_exists=dict(type="str"),
    proc=dict(type="str", default="/proc"),
)
LISTEN = "0A"  # TCP state in /proc/net/tcp{,6}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _has_default_route(proc: str) -> bool:
    for line in _read(f"{proc}/net/route").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            return True
    for line in _read(f"{proc}/net/ipv6_route").splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] == "0" * 32 and fields[1] == "00" and fields[-1] != "lo":
            return True
    return False


def _listening_ports(proc: str) -> set[int]:
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in _read(f"{proc}/net/{table}").splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _mount_of(path: str) -> tuple[str, str]:
    """The deepest existing folder of ``path``'s ancestry, and the mount point holding it."""
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing.rstrip("/")) or "/"
    mount = os.path.realpath(existing)
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    return existing, mount


def probe(params: dict) -> dict:
    """What the host has, for the checks ``params`` ask for."""
    proc = params["proc"]
    facts = {"system": platform.system(), "machine": platform.machine(), "hostname": socket.gethostname().split(".")[0]}
    filesystems = {line.split()[-1] for line in _read(f"{proc}/filesystems").splitlines() if line.strip()}
    facts["kernel_features"] = {"overlay": "overlay" in filesystems,
                                "br_netfilter": os.path.isdir(f"{proc}/sys/net/bridge")}
    facts["default_route"] = _has_default_route(proc)
    if params.get("data_path"):
        existing, mount = _mount_of(params["data_path"])
        stats = os.statvfs(existing)
        facts["data"] = {"mount": mount, "free_bytes": stats.f_bavail * stats.f_frsize}
    unless = params.get("ports_unless_exists")
    facts["ports_checked"] = bool(params["ports"]) and not (unless and os.path.exists(unless))
    facts["ports_in_use"] = sorted(set(params["ports"]) & _listening_ports(proc)) if facts["ports_checked"] else []
    return facts


def problems(params: dict, facts: dict) -> list[str]:
    """Every reason the host cannot take the install, in words."""
    out = []
    machines = MACHINES[params["arch"]]
    if facts["system"] != "Linux" or facts["machine"] not in machines:
        out.append(f"{facts['system']}/{facts['machine']} cannot run the arch={params['arch']} artifacts "
                   f"(K3s needs Linux on {' or '.join(machines)})")
    missing = [f for f in params["kernel_features"] if not facts["kernel_features"][f]]
    if missing:
        out.append(f"the kernel lacks {', '.join(missing)}; load it (modprobe) and list it in /etc/modules-load.d/")
    if params["default_route"] and not facts["default_route"]:
        out.append("no default route; K3s air-gapped still needs one (a blackhole route will do)")
    data = facts.get("data")
    if data and data["free_bytes"] < params["min_free_gb"] * 1024 ** 3:
        out.append(f"{data['free_bytes'] / 1024 ** 3:.1f} GiB free on {data['mount']}, "
                   f"min_free_gb asks for {params['min_free_gb']:g}")
    if facts["ports_in_use"]:
        out.append(f"port(s) {', '.join(map(str, facts['ports_in_use']))} already in use; K3s needs them")
    return out
