"""external-dns with a real DNS backend, beside one testbed cluster (issue 24).

external-dns (the pinned v0.22.0, built like the other tools) watches the cluster's DNSEndpoints
(and, when asked, its LoadBalancer Services) as ``system:external-dns`` with the rules of its
upstream chart (rbac/external-dns.yaml). Its ``coredns`` provider writes SkyDNS records into an
etcd of the zone's own, and a CoreDNS (the testbed's build, ``etcd`` plugin) serves that etcd as
the zone on loopback (``port``): the pairing external-dns documents for CoreDNS. A query there
sees what external-dns published. Every process is a testbed component (by pid, on record), so
``python -m tests.testbed down`` stops what a failed test left.
"""

from __future__ import annotations

import re
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode

from . import build
from .harness import gone, etcd_command, etcd_healthy
from .ports import free_port
from .versions import EXTERNAL_DNS_USER


class PublishedZone:
    """One zone external-dns publishes from one cluster: start(), ask(), stop()."""

    def __init__(self, testbed, cluster: str, zone: str, namespace: str = "", sources: tuple[str, ...] = ("crd",),
                 account: tuple[str, str] | None = None):
        """``account`` (namespace, name): external-dns runs as that service account of a
        manifest installed on the cluster, with its RBAC, instead of ``system:external-dns``."""
        self.testbed, self.cluster, self.zone = testbed, cluster, zone.rstrip(".")
        self.namespace, self.sources, self.account = namespace, sources, account
        self.key = re.sub(r"[^a-z0-9]+", "-", f"{cluster}-{self.zone}".lower())
        self.components = [f"dns-etcd-{self.key}", f"dns-coredns-{self.key}", f"external-dns-{self.key}"]
        self.port = 0

    def start(self) -> PublishedZone:
        try:
            etcd_url = self._start_etcd()
            self._start_coredns(etcd_url)
            self._start_external_dns(etcd_url)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_etcd(self) -> str:
        data = self.testbed.run_dir / "dns" / self.key
        data.parent.mkdir(parents=True, exist_ok=True)
        argv, client_url = etcd_command(build.build_binaries()["etcd"], self.key, data)
        self.testbed.run_component(self.components[0], argv)
        self._until(lambda: etcd_healthy(client_url), self.components[0], "etcd /health")
        return client_url

    def _start_coredns(self, etcd_url: str) -> None:
        self.port = free_port(udp=True)
        corefile = self.testbed.run_dir / "dns" / f"Corefile-{self.key}"
        # external-dns's coredns provider writes under /skydns/ (its --coredns-prefix default).
        corefile.write_text(f"{self.zone}:{self.port} {{\n    bind 127.0.0.1\n    errors\n"
                            f"    etcd {self.zone} {{\n        endpoint {etcd_url}\n        path /skydns\n    }}\n}}\n")
        self.testbed.run_component(self.components[1], [str(build.build_tool("coredns")), "-conf", str(corefile)])
        self._until(lambda: self._answers(f"ready-check.{self.zone}."), self.components[1], "CoreDNS answers")

    def _start_external_dns(self, etcd_url: str) -> None:
        server = self.testbed._state()["servers"][self.cluster]
        kubeconfig = (self.testbed.account_kubeconfig(self.cluster, *self.account) if self.account
                      else self.testbed._component_kubeconfig(self.cluster, server, EXTERNAL_DNS_USER))
        self.testbed.run_component(self.components[2], [
            str(build.build_tool("external-dns")), f"--kubeconfig={kubeconfig}",
            *(f"--source={source}" for source in self.sources),
            # One namespace (a test's own): objects other tests left behind stay out of the zone.
            *([f"--namespace={self.namespace}"] if self.namespace else []),
            "--crd-source-apiversion=externaldns.k8s.io/v1alpha1", "--crd-source-kind=DNSEndpoint",
            "--provider=coredns", f"--domain-filter={self.zone}",
            # sync: a target the record loses is deleted (failover needs it); the TXT registry:
            # external-dns changes only the records it owns, as in production.
            "--policy=sync", "--registry=txt", f"--txt-owner-id=k8snet-testbed-{self.cluster}",
            "--interval=2s", "--events", "--min-event-sync-interval=1s",
            f"--metrics-address=127.0.0.1:{free_port()}", "--log-level=debug"],
            env={"ETCD_URLS": etcd_url})

    def _answers(self, name: str) -> bool:
        try:
            self.ask(name, timeout=0.3)
            return True
        except (dns.exception.Timeout, OSError):
            return False

    def _until(self, condition, component: str, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or self.exited():
                raise AssertionError(f"{what} within {timeout:.0f}s failed:\n{self.testbed.component_log(component)}")
            time.sleep(0.1)

    def exited(self) -> list[str]:
        """The zone's processes that are no longer running, with their logs."""
        pids = self.testbed._state()["pids"]
        return [self.testbed.component_log(name) for name in self.components if name in pids and gone(pids[name])]

    def ask(self, name: str, rtype: str = "A", timeout: float = 2.0) -> tuple[str, list[str]]:
        """(rcode, sorted answers) for ``name`` from the zone's server."""
        query = dns.message.make_query(name if name.endswith(".") else name + ".", rtype)
        answer = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=timeout)
        return dns.rcode.to_text(answer.rcode()), sorted(str(r) for rrset in answer.answer for r in rrset)

    def published(self, name: str, want: list[str], timeout: float = 60.0) -> list[str]:
        """Wait until ``name`` answers with exactly ``want`` (sorted A records); fails naming
        what the zone answered and external-dns's log."""
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            exits = self.exited()
            if exits:
                raise AssertionError("\n".join(exits))
            seen = self.ask(name)
            if seen == ("NOERROR", sorted(want)):
                return seen[1]
            time.sleep(0.25)
        raise AssertionError(f"{name} answered {seen}, not {sorted(want)}, after {timeout:.0f}s:\n"
                             f"{self.testbed.component_log(self.components[2])}")

    def stop(self) -> None:
        for name in reversed(self.components):
            self.testbed.stop_component(name)
