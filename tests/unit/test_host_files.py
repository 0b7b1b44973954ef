"""k8snet.fabric.host_files' engine (module_utils/host_files.py), on a real folder."""

from __future__ import annotations

import hashlib
import tarfile

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils import host_files

BINARY = b"#!/bin/sh\necho k3s\n"
DIGEST = hashlib.sha256(BINARY).hexdigest()


def params(tmp_path, **extra):
    src = tmp_path / "controller" / "k3s"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(BINARY)
    base = {"root": str(tmp_path / "host"), "archive": None,
            "directories": [{"path": "/etc/rancher/k3s", "mode": "0755"}],
            "files": [{"dest": "/etc/rancher/k3s/config.yaml", "mode": "0600", "content": "node-name: a\n",
                       "secret_content": None, "src": None, "sha256": None},
                      {"dest": "/etc/k3s.env", "mode": "0600", "content": None, "secret_content": "K3S_TOKEN=s3cret\n",
                       "src": None, "sha256": None},
                      {"dest": "/usr/local/bin/k3s", "mode": "0755", "content": None, "secret_content": None,
                       "src": str(src), "sha256": DIGEST}],
            "absent": ["/etc/systemd/system/k3s-agent.service"]}
    base.update(extra)
    return base


def archive_of(tmp_path, members: dict) -> str:
    path = tmp_path / "remote-tmp" / "files.tar"
    path.parent.mkdir(exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            source = tmp_path / "member"
            source.write_bytes(data)
            tar.add(source, arcname=name)
    return str(path)


def test_first_pass_writes_small_files_and_asks_for_the_large_one(tmp_path):
    host = tmp_path / "host"
    (host / "etc/systemd/system").mkdir(parents=True)
    (host / "etc/systemd/system/k3s-agent.service").write_text("old role")
    result = host_files.converge(params(tmp_path), check_mode=False, want_diff=False)
    assert result["directories"] == ["/etc/rancher/k3s"]
    assert result["written"] == ["/etc/rancher/k3s/config.yaml", "/etc/k3s.env"]
    assert result["missing"] == ["/usr/local/bin/k3s"] and result["verified"] == []
    assert "upload_dir" not in result, "no staging given: the action makes the folder"
    assert result["removed"] == ["/etc/systemd/system/k3s-agent.service"]
    assert (host / "etc/rancher/k3s/config.yaml").read_text() == "node-name: a\n"
    assert (host / "etc/k3s.env").stat().st_mode & 0o777 == 0o600
    assert (host / "etc/rancher/k3s").stat().st_mode & 0o777 == 0o755
    assert not (host / "etc/systemd/system/k3s-agent.service").exists()
    assert not (host / "usr/local/bin/k3s").exists()


def test_the_archive_places_the_large_file_verified_then_an_unchanged_host_changes_nothing(tmp_path):
    first = host_files.converge(params(tmp_path, staging=str(tmp_path / "staging")), check_mode=False, want_diff=False)
    assert first["upload_dir"].startswith(str(tmp_path / "staging" / "k8snet-host-files-"))
    assert (tmp_path / "staging").stat().st_mode & 0o777 == 0o700
    archive = archive_of(tmp_path, {"usr/local/bin/k3s": BINARY})
    placed = host_files.converge(params(tmp_path, archive=archive), check_mode=False, want_diff=False)
    assert placed["written"] == ["/usr/local/bin/k3s"] and placed["verified"] == ["/usr/local/bin/k3s"]
    binary = tmp_path / "host/usr/local/bin/k3s"
    assert binary.read_bytes() == BINARY and binary.stat().st_mode & 0o777 == 0o755
    assert not (tmp_path / "remote-tmp").exists(), "the archive and its folder are removed"
    again = host_files.converge(params(tmp_path), check_mode=False, want_diff=False)
    assert again == {"directories": [], "written": [], "removed": [], "missing": [], "verified": ["/usr/local/bin/k3s"],
                     "diff": []}


def test_a_large_file_that_arrives_different_keeps_the_old_copy(tmp_path):
    """...and the archive is removed all the same (nothing of the refused transfer stays on the host)."""
    binary = tmp_path / "host/usr/local/bin/k3s"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"old k3s")
    archive = archive_of(tmp_path, {"usr/local/bin/k3s": b"corrupted in transit"})
    with pytest.raises(host_files.HostFilesError, match=r"/usr/local/bin/k3s arrived with sha256 [0-9a-f]{64}, expected " + DIGEST):
        host_files.converge(params(tmp_path, archive=archive), check_mode=False, want_diff=False)
    assert binary.read_bytes() == b"old k3s"
    assert [p.name for p in binary.parent.iterdir()] == ["k3s"], "no temporary file left behind"
    assert not (tmp_path / "remote-tmp").exists()


def test_drift_is_repaired_and_a_mode_alone_is_fixed_without_sending(tmp_path):
    host_files.converge(params(tmp_path), check_mode=False, want_diff=False)
    host_files.converge(params(tmp_path, archive=archive_of(tmp_path, {"usr/local/bin/k3s": BINARY})), False, False)
    binary, config = tmp_path / "host/usr/local/bin/k3s", tmp_path / "host/etc/rancher/k3s/config.yaml"
    binary.chmod(0o700)
    config.write_text("edited by hand\n")
    result = host_files.converge(params(tmp_path), check_mode=False, want_diff=False)
    assert result["written"] == ["/etc/rancher/k3s/config.yaml", "/usr/local/bin/k3s"] and result["missing"] == []
    assert binary.stat().st_mode & 0o777 == 0o755 and config.read_text() == "node-name: a\n"
    binary.write_bytes(b"tampered")
    assert host_files.converge(params(tmp_path), False, False)["missing"] == ["/usr/local/bin/k3s"]


def test_check_mode_reports_everything_and_writes_nothing(tmp_path):
    result = host_files.converge(params(tmp_path, staging=str(tmp_path / "staging")), check_mode=True, want_diff=True)
    assert "upload_dir" not in result and not (tmp_path / "staging").exists()
    assert result["directories"] == ["/etc/rancher/k3s"]
    assert result["written"] == ["/etc/rancher/k3s/config.yaml", "/etc/k3s.env", "/usr/local/bin/k3s"]
    assert not (tmp_path / "host").exists()


def test_diff_redacts_secret_files_and_shows_large_files_by_sha256(tmp_path):
    env = tmp_path / "host/etc/k3s.env"
    env.parent.mkdir(parents=True)
    env.write_text("K3S_TOKEN=old-secret\n")
    result = host_files.converge(params(tmp_path), check_mode=True, want_diff=True)
    diffs = {d["before_header"]: d for d in result["diff"]}
    assert diffs["/etc/k3s.env"]["before"] == "<redacted>\n" and diffs["/etc/k3s.env"]["after"] == "<redacted> (changed)\n"
    assert diffs["/etc/rancher/k3s/config.yaml"]["after"] == "node-name: a\n"
    assert diffs["/usr/local/bin/k3s"] == {"before_header": "/usr/local/bin/k3s", "after_header": "/usr/local/bin/k3s",
                                           "before": "", "after": f"sha256 {DIGEST} (k3s)\n"}
    assert "secret" not in repr(result)


@pytest.mark.parametrize("change, words", [
    ({"directories": [{"path": "etc/rancher", "mode": "0755"}]}, "directories[0]: 'etc/rancher' is not a clean absolute path"),
    ({"absent": ["/etc/../etc/passwd"]}, "absent[0]: '/etc/../etc/passwd' is not a clean absolute path"),
    ({"directories": [{"path": "/etc/x", "mode": "755x"}]}, "directories[0].mode (/etc/x): '755x' is not an octal mode"),
    ({"absent": ["/etc/k3s.env"]}, "absent: /etc/k3s.env is also in files"),
])
def test_bad_requests_name_the_field_and_value(tmp_path, change, words):
    assert any(words in p for p in host_files.problems(params(tmp_path, **change)))


def test_a_bad_sha256_and_a_path_twice_are_named(tmp_path):
    request = params(tmp_path)
    request["files"][2]["sha256"] = "ABC"
    request["files"].append(dict(request["files"][0]))
    found = host_files.problems(request)
    assert "files[2].sha256 (/usr/local/bin/k3s): 'ABC' is not a sha256 (64 lowercase hex digits)" in found
    assert "files: /etc/rancher/k3s/config.yaml is listed more than once" in found
