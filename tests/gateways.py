"""Site gateways in network namespaces, running the tunnels from the files a role wrote.

One namespace plays the internet between the sites (a bridge, nothing routed for the sites'
private ranges, as on the real internet); one namespace per gateway has its outside address on
that bridge and one address of its site's range (a host of the site) on its loopback. The
gateways run the real daemons from the role's files, in user space because this kernel has
neither WireGuard nor ESP (XFRM states are refused):

- IPsec: strongSwan's charon with the kernel-libipsec plugin (ESP in charon, a TUN device),
  loading the role's swanctl file with ``swanctl --load-all --file``;
- WireGuard: ``wg-quick up`` on the role's file, which falls back to wireguard-go (built by the
  testbed) when the kernel has no WireGuard, exactly as on a host without the module.

Each daemon gets a private /run (bind-mounted inside the namespace's own mount namespace), so
that gateways with the same interface name and charon's fixed pid file never meet. Every
process is tracked and stopped by its pid; every namespace made here is deleted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed.harness import gone

CHARON = "/usr/lib/ipsec/charon"
# charon with ESP in user space; everything else as Debian's defaults load it.
STRONGSWAN_CONF = """charon {
  load_modular = no
  load = random nonce openssl aes sha1 sha2 hmac gcm pem pkcs1 x509 revocation kdf kernel-libipsec kernel-netlink socket-default vici updown
  filelog {
    log {
      path = %s
      default = 1
    }
  }
}
"""
# wg-quick's user-space fallback, kept in the foreground so its pid is known (and written down).
WIREGUARD_GO_WRAPPER = """#!/bin/sh
WG_PROCESS_FOREGROUND=1 "$K8SNET_WIREGUARD_GO" "$@" >"$K8SNET_WG_PIDFILE.log" 2>&1 &
echo $! >"$K8SNET_WG_PIDFILE"
i=0
while [ ! -S "/run/wireguard/$1.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
"""
# Records every frame crossing the internet namespace's bridge ports for a while (an unbound
# packet socket sees every interface); prints what it saw as JSON lines.
SNIFFER = r"""
import json, socket, struct, sys, time
seconds, marker = float(sys.argv[1]), sys.argv[2].encode()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
s.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        frame = s.recv(65535)
    except socket.timeout:
        continue
    if frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    proto, src, dst = ip[9], socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    if proto == 2:  # IGMP: the bridge's own multicast membership reports
        continue
    head = (ip[0] & 15) * 4
    sport = dport = 0
    if proto in (6, 17):
        sport, dport = struct.unpack("!HH", ip[head:head + 4])
    print(json.dumps({"src": src, "dst": dst, "proto": proto, "sport": sport, "dport": dport,
                      "marker": marker in frame}), flush=True)
"""
# One TCP exchange from a site's host to another's: the server echoes what it got.
SERVE = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8); s.settimeout(float(sys.argv[3]))
print("ready", flush=True)
try:
    while True:
        c, _ = s.accept(); c.settimeout(2); c.sendall(c.recv(1024)); c.close()
except socket.timeout:
    pass
"""
CONNECT = r"""
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.settimeout(float(sys.argv[4]))
try:
    s.connect((sys.argv[2], int(sys.argv[3]))); s.sendall(sys.argv[5].encode())
    print(s.recv(1024).decode())
except OSError as exc:
    print("failed:", exc)
"""


class Gateways:
    """``sites``: name -> (outside address, an address of the site's range). Use as a context
    manager; ``up_ipsec``/``up_wireguard`` start the daemons on a gateway's files."""

    def __init__(self, workdir: Path, sites: dict[str, tuple[str, str]], wireguard_go: Path):
        self.workdir = Path(workdir)
        self.sites = sites
        self.wireguard_go = Path(wireguard_go)
        tag = f"{os.getpid() % 100000}"
        self.wan = f"k8tw{tag}"
        self.ns = {name: f"k8tg{tag}-{i}" for i, name in enumerate(sites)}
        self.pids: dict[str, list[int]] = {name: [] for name in sites}
        self.made: list[str] = []

    # -- the namespaces -----------------------------------------------------------------------
    def __enter__(self) -> Gateways:
        try:
            self._ip("netns", "add", self.wan)
            self.made.append(self.wan)
            self._ip("-n", self.wan, "link", "add", "wan", "type", "bridge")
            self._ip("-n", self.wan, "link", "set", "wan", "up")
            for i, (name, (outside, inside)) in enumerate(self.sites.items()):
                ns = self.ns[name]
                self._ip("netns", "add", ns)
                self.made.append(ns)
                self._ip("-n", ns, "link", "add", "out", "type", "veth", "peer", "name", f"p{i}", "netns", self.wan)
                self._ip("-n", self.wan, "link", "set", f"p{i}", "master", "wan", "up")
                self._ip("-n", ns, "addr", "add", f"{outside}/24", "dev", "out")
                self._ip("-n", ns, "link", "set", "out", "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
                self._ip("-n", ns, "addr", "add", f"{inside}/32", "dev", "lo")
                (self.workdir / name).mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for name in self.sites:
            for pid in reversed(self.pids[name]):
                _stop(pid)
            self.pids[name] = []
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        self.made = []

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def _inside(self, name: str) -> list[str]:
        """The command prefix that runs in a gateway's namespace with that gateway's own /run
        (exec all the way down, so a daemon's pid is the prefix's)."""
        run_dir = self.workdir / name / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        return ["ip", "netns", "exec", self.ns[name], "sh", "-c", f'mount --bind {run_dir} /run && exec "$@"', "sh"]

    def _in(self, name: str, *cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*self._inside(name), *cmd], capture_output=True, text=True, check=False,
                              env={**os.environ, **(env or {})}, timeout=30)

    # -- IPsec -----------------------------------------------------------------------------------
    def up_ipsec(self, name: str, swanctl_file: Path) -> None:
        conf = self.workdir / name / "strongswan.conf"
        conf.write_text(STRONGSWAN_CONF % (self.workdir / name / "charon.log"))
        proc = subprocess.Popen([*self._inside(name), CHARON], env={**os.environ, "STRONGSWAN_CONF": str(conf)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.pids[name].append(proc.pid)  # charon's own pid
        vici = self.workdir / name / "run" / "charon.vici"
        deadline = time.monotonic() + 15
        while not vici.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"charon of {name} did not start: {self.log(name)}")
            time.sleep(0.1)
        loaded = self.swanctl(name, "--load-all", "--file", str(swanctl_file))
        if loaded.returncode != 0:
            raise AssertionError(f"swanctl --load-all on {name}: {loaded.stdout}{loaded.stderr}")

    def swanctl(self, name: str, *args: str) -> subprocess.CompletedProcess:
        uri = f"unix://{self.workdir / name / 'run' / 'charon.vici'}"
        return subprocess.run(["swanctl", *args, "--uri", uri], capture_output=True, text=True, check=False, timeout=30)

    def down_ipsec(self, name: str) -> None:
        charon = self.pids[name].pop(0)
        _stop(charon)

    def log(self, name: str) -> str:
        path = self.workdir / name / "charon.log"
        return path.read_text()[-3000:] if path.exists() else "(no log)"

    # -- WireGuard -------------------------------------------------------------------------------
    def wg_quick(self, name: str, action: str, conf: Path) -> subprocess.CompletedProcess:
        wrapper = self.workdir / "wireguard-go-foreground"
        if not wrapper.exists():
            wrapper.write_text(WIREGUARD_GO_WRAPPER)
            wrapper.chmod(0o755)
        pidfile = self.workdir / name / "wireguard-go.pid"
        result = self._in(name, "wg-quick", action, str(conf), env={
            "WG_QUICK_USERSPACE_IMPLEMENTATION": str(wrapper), "K8SNET_WIREGUARD_GO": str(self.wireguard_go),
            "K8SNET_WG_PIDFILE": str(pidfile)})
        if action == "up" and pidfile.exists():
            self.pids[name].append(int(pidfile.read_text()))
            pidfile.unlink()
        return result

    def wg(self, name: str, *args: str) -> str:
        return self._in(name, "wg", *args).stdout

    # -- traffic -----------------------------------------------------------------------------
    def exchange(self, src: str, dst: str, port: int, payload: str, timeout: float = 4.0) -> str:
        """A TCP exchange from a host of site src to a host of site dst: the echoed payload, or
        ``failed: <why>``."""
        server = subprocess.Popen(["ip", "netns", "exec", self.ns[dst], sys.executable, "-c", SERVE,
                                   self.sites[dst][1], str(port), str(timeout + 2)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            out = subprocess.run(["ip", "netns", "exec", self.ns[src], sys.executable, "-c", CONNECT,
                                  self.sites[src][1], self.sites[dst][1], str(port), str(timeout), payload],
                                 capture_output=True, text=True, check=False, timeout=timeout + 10)
            return out.stdout.strip()
        finally:
            _stop(server.pid)
            server.wait()

    def sniff(self, seconds: float, marker: str) -> subprocess.Popen:
        """Start recording the internet's bridge; ``frames(proc)`` gives what crossed it."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.wan, sys.executable, "-c", SNIFFER, str(seconds), marker], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    @staticmethod
    def frames(proc: subprocess.Popen) -> list[dict]:
        out = proc.communicate(timeout=60)[0]
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _stop(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after grace seconds; reaps it when it is a child of ours."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if gone(pid):  # the testbed's rule: reaped when ours, zombie or no process when not
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
