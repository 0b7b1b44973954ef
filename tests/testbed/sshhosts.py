"""Edge test hosts: real OpenSSH servers on loopback addresses, one root directory each.

K3s cannot run here, but everything the edge_k3s host part does over SSH can: each host is an
sshd (Debian's openssh-server) on its own 127.0.0.x address, and the role writes below the
host's root prefix (``edge_k3s_root``) so two hosts on one machine never collide.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

from .build import CACHE
from .bundle import write_addons
from .ports import free_port

SSHD = "/usr/sbin/sshd"
RUN = Path(os.environ.get("K8SNET_SSHHOSTS_RUN", CACHE / "sshhosts"))


class SshHostsError(RuntimeError):
    pass


class SshHosts:
    """Named SSH test hosts; ``up()`` returns their connection facts."""

    def __init__(self, names: list[str], run_dir: Path = RUN):
        self.names = list(names)
        self.run_dir = Path(run_dir)
        self.state_file = self.run_dir / "state.json"

    def up(self) -> dict:
        if not Path(SSHD).exists():
            raise SshHostsError(f"{SSHD} is missing: install Debian's openssh-server (make setup does)")
        self.down()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        client_key = self.run_dir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True)
        hosts, pids = {}, {}
        for index, name in enumerate(self.names):
            home = self.run_dir / name
            (home / "root").mkdir(parents=True)
            address = f"127.0.0.{index + 2}"
            port = free_port(address)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")], check=True)
            shutil.copy(f"{client_key}.pub", home / "authorized_keys")
            (home / "sshd_config").write_text("\n".join([
                f"Port {port}", f"ListenAddress {address}", f"HostKey {home / 'host_key'}",
                f"PidFile {home / 'sshd.pid'}", f"AuthorizedKeysFile {home / 'authorized_keys'}",
                "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                "Subsystem sftp internal-sftp", ""]))
            log = (home / "sshd.log").open("wb")
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            pids[name] = proc.pid
            hosts[name] = {"address": address, "port": port, "root": str(home / "root"), "key": str(client_key),
                           "known_hosts": str(self.known_hosts)}
        # The hosts' keys, for the inventory: the tests check host keys as users must (the
        # shipped ansible.cfg never turns checking off).
        self.known_hosts.write_text("".join(
            known_hosts_line(h["address"], h["port"], self.run_dir / name / "host_key.pub") for name, h in hosts.items()))
        self.state_file.write_text(json.dumps({"pids": pids, "hosts": hosts}))
        deadline = time.monotonic() + 15
        for name, host in hosts.items():
            while True:
                try:
                    with socket.create_connection((host["address"], host["port"]), timeout=0.5) as sock:
                        if sock.recv(4).startswith(b"SSH"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SshHostsError(f"sshd for {name} did not answer:\n"
                                        + (self.run_dir / name / "sshd.log").read_text()[-2000:])
                time.sleep(0.1)
        return hosts

    @property
    def known_hosts(self) -> Path:
        return self.run_dir / "known_hosts"

    def inventory_vars(self, hosts: dict, python: str) -> dict:
        """Ansible host variables that reach each test host over real SSH, its key checked
        against the known_hosts file ``up()`` wrote (what a user does with ssh-keyscan)."""
        return {name: {"ansible_host": h["address"], "ansible_port": h["port"], "ansible_user": "root",
                       "ansible_connection": "ssh",
                       "ansible_ssh_private_key_file": h["key"],
                       "ansible_ssh_common_args": f"-o UserKnownHostsFile={h['known_hosts']} -o StrictHostKeyChecking=yes",
                       "ansible_python_interpreter": python, "edge_k3s_root": h["root"]}
                for name, h in hosts.items()}

    def write_inventory(self, path: Path, hosts: dict, python: str) -> Path:
        path.write_text(yaml.safe_dump({"all": {"hosts": self.inventory_vars(hosts, python)}}))
        return path

    def write_artifacts(self, folder: Path, version: str = "v1.37.2+k3s1") -> Path:
        """Stand-in release files (K3s cannot run here) with the sha256sum file K3s publishes."""
        import hashlib

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "k3s").write_text(f"#!/bin/sh\necho 'k3s {version} (test artifact)'\n")
        (folder / "k3s-airgap-images-amd64.tar.zst").write_bytes(hashlib.sha256(version.encode()).digest() * 64)
        (folder / "sha256sum-amd64.txt").write_text("".join(
            f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n"
            for n in ("k3s", "k3s-airgap-images-amd64.tar.zst")))
        return folder

    def write_addons(self, folder: Path) -> Path:
        """The air-gap bundle (bundle.py): real upstream manifests, stand-in image archives."""
        return write_addons(folder)

    def down(self) -> None:
        if not self.state_file.exists():
            return
        for pid in json.loads(self.state_file.read_text()).get("pids", {}).values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.state_file.unlink()


def known_hosts_line(address: str, port: int, public_key: Path) -> str:
    """A known_hosts line for a host on a non-standard port, as ssh-keyscan -p writes it."""
    kind, key = public_key.read_text().split()[:2]
    return f"[{address}]:{port} {kind} {key}\n"
