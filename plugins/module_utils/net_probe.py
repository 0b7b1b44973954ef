# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reachability probes run in parallel: DNS questions to given resolvers, TCP connects to given
endpoints. Each answers ok/not ok with the reason and the time it took; nothing raises."""

from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
    HAS_DNSPYTHON = True
except ImportError:  # reported by the module when DNS probes are asked for
    HAS_DNSPYTHON = False


def server_address(value, where: str, default_port: int = 53) -> tuple[str, int]:
    """'10.0.0.53', '10.0.0.53:5353', 'fd00::53' or '[fd00::53]:53' -> (address, port); the port
    defaults to 53 (853 for DNS over TLS)."""
    text = str(value).strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _unused, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValidationError(f"{where}: {value!r} is not an address[:port]")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _unused, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValidationError(f"{where}: {value!r} has no numeric port")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValidationError(f"{where}: {value!r} is not an IP address (resolvers are given by address, "
                              f"so that DNS does not depend on DNS)") from None
    if not 1 <= port <= 65535:
        raise ValidationError(f"{where}: port {port} of {value!r} is not 1-65535")
    return str(address), port


# A resolver that answers these is alive and serves the zone (NXDOMAIN: the name is not there).
ANSWERING = ("NOERROR", "NXDOMAIN")


def dns_probe(check: dict, timeout: float) -> dict:
    """Ask ``server`` (address, port) for ``name``/``type``; ok when it answers authoritatively
    or recursively with NOERROR or NXDOMAIN."""
    started = time.monotonic()
    out = {**check, "ok": False}
    try:
        query = dns.message.make_query(check["name"], check.get("type", "SOA"))
        if check.get("tls_server_name"):
            # DNS over TLS, verified against the system's CAs for that name (as CoreDNS does).
            answer = dns.query.tls(query, check["address"], port=check["port"], timeout=timeout,
                                   server_hostname=check["tls_server_name"])
        else:
            answer = dns.query.udp(query, check["address"], port=check["port"], timeout=timeout)
            if answer.flags & dns.flags.TC:
                answer = dns.query.tcp(query, check["address"], port=check["port"], timeout=timeout)
        out["rcode"] = dns.rcode.to_text(answer.rcode())
        out["answers"] = [str(rdata) for rrset in answer.answer for rdata in rrset]
        out["ok"] = out["rcode"] in ANSWERING
        if not out["ok"]:
            out["error"] = f"answered {out['rcode']}"
    except dns.exception.Timeout:
        out["error"] = f"no answer within {timeout}s"
    except (OSError, dns.exception.DNSException) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["ms"] = round((time.monotonic() - started) * 1000, 1)
    return out


def tcp_probe(check: dict, timeout: float) -> dict:
    """Open (and close) a TCP connection to host:port."""
    started = time.monotonic()
    out = {**check, "ok": False}
    try:
        with socket.create_connection((check["host"], check["port"]), timeout=timeout):
            out["ok"] = True
    except socket.timeout:
        out["error"] = f"no connection within {timeout}s"
    except OSError as exc:
        out["error"] = exc.strerror or str(exc)
    out["ms"] = round((time.monotonic() - started) * 1000, 1)
    return out


def run(dns_checks: list[dict], tcp_checks: list[dict], timeout: float, workers: int = 16) -> dict:
    """Every probe at once; results in the order given."""
    jobs = [(dns_probe, c) for c in dns_checks] + [(tcp_probe, c) for c in tcp_checks]
    if not jobs:
        return {"dns": [], "tcp": []}
    with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
        results = list(pool.map(lambda job: job[0](job[1], timeout), jobs))
    return {"dns": results[:len(dns_checks)], "tcp": results[len(dns_checks):]}
