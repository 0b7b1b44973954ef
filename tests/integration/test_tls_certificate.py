"""tls_certificate through ansible-playbook: a pair the module owns is renewed instead of
refused (same CA, reason and old fingerprint reported), check mode writes nothing, a second run
changes nothing, and options that would renew on every run or replace the user's files are
refused naming them."""

from __future__ import annotations

import json
import os

from tests.helpers import run_playbook


def certificate(tmp_path, *args, **options):
    """Run the module once on localhost; its result (the run's output on failure)."""
    out = tmp_path / "result.json"
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "certificate", "k8snet.fabric.tls_certificate": {
            "cert_path": str(tmp_path / "tls" / "shop.crt"), "key_path": str(tmp_path / "tls" / "shop.key"),
            "hosts": ["shop.example.com"], "state": "present", **options},
         "register": "made", "ignore_errors": True},
        {"name": "keep the result", "ansible.builtin.copy": {"content": "{{ made | to_json }}", "dest": str(out)},
         "check_mode": False}]}]
    result = run_playbook(tmp_path, plays, *args)
    assert result.returncode == 0 and out.exists(), result.stdout[-3000:]
    return json.loads(out.read_text())


def test_a_pair_near_its_end_is_renewed_once_and_check_mode_only_says_so(tmp_path):
    first = certificate(tmp_path, days=10)
    assert first["source"] == "generated" and first["changed"] and first["days_left"] in (9, 10), first
    key_mode = os.stat(tmp_path / "tls" / "shop.key").st_mode & 0o777
    assert key_mode == 0o600

    cert_before = (tmp_path / "tls" / "shop.crt").read_bytes()
    would = certificate(tmp_path, "--check", days=365, renew_days=30)
    assert would["changed"] and would["source"] == "renewed" and would["renewed"]["reason"] == \
        f"expires in {first['days_left']} days, fewer than renew_days 30", would
    assert (tmp_path / "tls" / "shop.crt").read_bytes() == cert_before, "check mode wrote the pair"

    renewed = certificate(tmp_path, days=365, renew_days=30)
    assert renewed["changed"] and renewed["source"] == "renewed" and renewed["days_left"] in (364, 365), renewed
    assert renewed["renewed"]["previous_fingerprint_sha256"] == first["fingerprint_sha256"]
    assert renewed["fingerprint_sha256"] != first["fingerprint_sha256"]
    assert "was renewed: expires in" in " ".join(renewed.get("warnings", [])), renewed
    assert os.stat(tmp_path / "tls" / "shop.key").st_mode & 0o777 == 0o600

    again = certificate(tmp_path, days=365, renew_days=30)
    assert not again["changed"] and again["source"] == "files", again
    assert again["fingerprint_sha256"] == renewed["fingerprint_sha256"]


def test_a_host_the_pair_does_not_cover_gets_a_new_pair(tmp_path):
    certificate(tmp_path)
    wider = certificate(tmp_path, hosts=["shop.example.com", "staging.shop.example.com"])
    assert wider["source"] == "renewed" and wider["renewed"]["reason"] == "does not cover staging.shop.example.com"
    assert wider["sans"] == ["shop.example.com", "staging.shop.example.com"] and wider["uncovered_hosts"] == []


def test_options_that_would_renew_every_run_or_the_users_files_are_refused(tmp_path):
    every_run = certificate(tmp_path, days=20, renew_days=30)
    assert every_run["failed"] and every_run["msg"] == \
        "renew_days: 30 must be 0 (never) or more and fewer than days (20): every run would renew what it just made"
    assert not (tmp_path / "tls").exists()
    users = certificate(tmp_path, state="checked", renew_days=30)
    assert users["failed"] and users["msg"].startswith("renew_days: only a pair the module owns (state=present)")
