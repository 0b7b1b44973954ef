"""Encrypted links between sites (module_utils/scenarios/site_tunnels.py): the checks, each gateway's files and
the cloud side, from one link entry. The daemons running these files: test_tunnels_on_packets.py."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import site_tunnels

# RFC 7748's test vector: Alice's private key and its public key.
ALICE_PRIVATE = base64.b64encode(bytes.fromhex(
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")).decode()
ALICE_PUBLIC = base64.b64encode(bytes.fromhex(
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")).decode()
BOB_PRIVATE = base64.b64encode(bytes.fromhex(
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")).decode()
PSK = "A.long_enough.pre.shared.key"
RANGES = {"on-prem": ["10.0.0.0/8"], "aws": ["172.16.0.0/16"], "azure": ["192.168.0.0/16", "192.169.0.0/24"]}


def spec(**changes):
    out = {"gateways": [{"name": "on-prem", "address": "198.51.100.10", "host": "gw-1", "wireguard_private_key": ALICE_PRIVATE},
                        {"name": "aws", "address": "203.0.113.1", "cloud": "aws"},
                        {"name": "azure", "address": "198.51.100.20", "host": "gw-2", "wireguard_private_key": BOB_PRIVATE}],
           "links": [{"between": ["on-prem", "aws"], "type": "ipsec", "psk": PSK},
                     {"between": ["azure", "on-prem"], "type": "wireguard"}]}
    out.update(changes)
    return out


def plan(value):
    return site_tunnels.plan("hybrid", value, RANGES, "hybrid_dns_tunnels")


def files(result, host, redacted=False):
    gateway = next(g for g in result["rendered" if redacted else "gateways"] if g["host"] == host)
    return {f["dest"]: f.get("content", f.get("secret_content")) for f in gateway["files"]}, gateway


def test_the_public_key_is_the_x25519_one():
    assert site_tunnels.wireguard_public_key(ALICE_PRIVATE) == ALICE_PUBLIC


def test_each_end_carries_exactly_both_sites_ranges_from_one_link():
    result = plan(spec())
    assert result["problems"] == []
    onprem, gateway = files(result, "gw-1")
    azure = files(result, "gw-2")[0]
    swanctl = onprem["/etc/swanctl/conf.d/k8snet-hybrid.conf"]
    assert "local_ts = 10.0.0.0/8\n" in swanctl and "remote_ts = 172.16.0.0/16\n" in swanctl
    assert "proposals = aes256gcm16-prfsha384-ecp384" in swanctl and "esp_proposals = aes256gcm16-ecp384" in swanctl
    # Towards a cloud our end initiates (AWS waits with StartupAction add).
    assert "start_action = start" in swanctl and f'secret = "{PSK}"' in swanctl
    wireguard = onprem["/etc/wireguard/wg-hybrid.conf"]
    assert f"PrivateKey = {ALICE_PRIVATE}" in wireguard and "AllowedIPs = 192.168.0.0/16, 192.169.0.0/24" in wireguard
    assert "Endpoint = 198.51.100.20:51820" in wireguard
    assert f"PublicKey = {ALICE_PUBLIC}" in azure["/etc/wireguard/wg-hybrid.conf"]
    assert "AllowedIPs = 10.0.0.0/8" in azure["/etc/wireguard/wg-hybrid.conf"]
    # Secrets travel as secret_content (never logged); the host without IPsec loses a stale file.
    assert all("secret_content" in f for f in gateway["files"])
    assert files(result, "gw-2")[1]["absent"] == ["/etc/swanctl/conf.d/k8snet-hybrid.conf"]


def test_render_mode_redacts_every_secret_and_only_secrets():
    result = plan(spec())
    rendered = files(result, "gw-1", redacted=True)[0]
    text = "".join(rendered.values())
    assert PSK not in text and ALICE_PRIVATE not in text and text.count("<redacted>") == 2
    assert "remote_ts = 172.16.0.0/16" in text


def test_between_two_hosts_one_end_initiates_and_the_other_waits():
    value = spec(gateways=[g if g["name"] != "aws" else {"name": "aws", "address": "203.0.113.1", "host": "gw-3"}
                           for g in spec()["gateways"]])
    result = plan(value)
    first = files(result, "gw-1")[0]["/etc/swanctl/conf.d/k8snet-hybrid.conf"]
    second = files(result, "gw-3")[0]["/etc/swanctl/conf.d/k8snet-hybrid.conf"]
    assert "start_action = start" in first and "start_action = none" in second
    assert "local_ts = 172.16.0.0/16\n" in second and "remote_ts = 10.0.0.0/8\n" in second


def test_the_cloud_side_mirrors_our_end_without_the_secret():
    [aws] = plan(spec())["cloud_side"]
    assert aws["cloud_gateway_address"] == "203.0.113.1" and aws["our_ranges"] == ["10.0.0.0/8"]
    options = aws["aws"]["vpn_connection"]["TunnelOptions"]
    assert options["Phase1EncryptionAlgorithms"] == ["AES256-GCM-16"] and options["Phase1DHGroupNumbers"] == [20]
    assert PSK not in str(aws)


@pytest.mark.parametrize("change, words", [
    ({"links": [{"between": ["on-prem", "aws"], "type": "ipsec", "psk": "short"}]}, "links[0].psk"),
    ({"links": [{"between": ["on-prem", "aws"], "type": "ipsec", "psk": "0" + PSK}]}, "must not start with 0"),
    ({"links": [{"between": ["on-prem", "aws"], "type": "wireguard"}]}, "speaks IPsec only"),
    ({"links": [{"between": ["on-prem", "on-prem"], "type": "ipsec", "psk": PSK}]}, "two different sites"),
    ({"links": [{"between": ["on-prem", "gcp"], "type": "ipsec", "psk": PSK}]}, "'gcp' has no entry in gateways"),
    ({"links": [{"between": ["on-prem", "aws"], "type": "gre"}]}, "'gre' is not one of ipsec, wireguard"),
    ({"links": [{"between": ["on-prem", "aws"], "type": "ipsec", "psk": PSK},
                {"between": ["aws", "on-prem"], "type": "ipsec", "psk": PSK}]}, "linked twice"),
    ({"links": [{"between": ["on-prem", "aws"], "type": "ipsec", "psk": PSK, "pks": 1}]}, "did you mean psk?"),
    ({"gateways": [{"name": "on-prem", "address": "10.1.2.3", "host": "gw-1"},
                   {"name": "aws", "address": "203.0.113.1", "cloud": "aws"}]}, "lies inside on-prem's ranges"),
    ({"gateways": [{"name": "on-prem", "address": "198.51.100.0/24", "host": "gw-1"}], "links": []}, "must be one address"),
    ({"gateways": [{"name": "on-prem", "address": "198.51.100.1"}], "links": []}, "give host"),
    ({"gateways": [{"name": "on-prem", "address": "198.51.100.1", "host": "h", "cloud": "aws"}], "links": []},
     "exclude each other"),
    ({"gateways": [{"name": "mars", "address": "198.51.100.1", "host": "h"}], "links": []}, "'mars' is not one of the sites"),
    ({"gateways": [{"name": "on-prem", "address": "198.51.100.1", "host": "h"},
                   {"name": "azure", "address": "198.51.100.2", "host": "h"}], "links": []}, "already the gateway of on-prem"),
    ({"gateways": [{"name": "on-prem", "address": "198.51.100.1", "host": "h", "wireguard_private_key": "abc"}],
      "links": []}, "not a WireGuard key"),
])
def test_bad_values_name_the_field_and_never_the_secret(change, words):
    problems = plan(spec(**change))["problems"]
    assert any(words in p for p in problems), problems
    assert all(p.startswith("hybrid_dns_tunnels") for p in problems)
    assert not any(secret in p for p in problems for secret in ("short", PSK, "abc'"))


def test_nothing_asked_is_nothing_written():
    result = plan({"gateways": [], "links": []})
    assert result["gateways"] == [] and result["cloud_side"] == [] and plan(None)["problems"] == []
