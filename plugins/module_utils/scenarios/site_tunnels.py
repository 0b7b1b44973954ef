# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted site-to-site links between the sites of a scenario (hybrid_dns's locations,
kubefed's clusters), defined once: the checks, the files each gateway host gets, and what a
cloud's VPN gateway must be told.

- IPsec (IKEv2, AES-GCM-256, ECP-384, PSK, dead-peer detection, rekeying): strongSwan's
  ``swanctl.conf`` on the hosts the user runs; an end that is AWS Site-to-Site VPN or Azure VPN
  Gateway (IKEv2/IPsec only) gets its parameters written out instead (``cloud_side``).
- WireGuard between two hosts the user runs: a wg-quick file, one interface per gateway with a
  peer per link.

What travels through a link is exactly the two sites' address ranges (the IP plan's, already
checked not to overlap), from one link entry, so both ends always agree. Secrets (PSKs, private
keys) are never part of a message: problems name the field, not the value.
"""

from __future__ import annotations

import base64
import binascii
import re

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks, ipplan

TYPES = ("ipsec", "wireguard")
CLOUDS = ("aws", "azure")
WIREGUARD_PORT = 51820
# /etc/wireguard holds private keys (wg-quick's own packaging makes it 0700); swanctl's conf.d
# keeps Debian's 0755, the secret file itself being 0600.
DIRECTORY_MODES = {"ipsec": "0755", "wireguard": "0700"}
REDACTED = "<redacted>"
# AWS takes 8-64 characters of letters, digits, '.' and '_', not starting with 0; Azure takes
# these too. 20 is this collection's floor for a key that guards inter-site traffic.
PSK = re.compile(r"^[A-Za-z0-9._]{20,64}$")
# One suite both clouds accept and strongSwan speaks (AWS: AES256-GCM-16, SHA2-384, DH group 20;
# Azure: GCMAES256, SHA384, ECP384, PFS ECP384).
IKE_PROPOSAL = "aes256gcm16-prfsha384-ecp384"
ESP_PROPOSAL = "aes256gcm16-ecp384"
# Rekey well inside both clouds' fixed lifetimes (IKE 28,800 s, child 3,600 s).
IKE_REKEY = "4h"
CHILD_REKEY = "50m"
DPD_DELAY = "30s"

SHAPES = {
    "gateways": ("list", {"name!": "str", "address!": "str", "host": ("opt", "str"), "cloud": ("opt", "str"),
                          "wireguard_private_key": ("opt", "str"), "wireguard_port": ("opt", "int")}),
    "links": ("list", {"between!": ("list", "str"), "type!": "str", "psk": ("opt", "str")}),
    "activate": ("opt", "bool"),
}


def wireguard_public_key(private_key: str) -> str:
    """The public key of a WireGuard private key (base64 of 32 bytes), as ``wg pubkey`` prints it."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = X25519PrivateKey.from_private_bytes(base64.b64decode(private_key, validate=True))
    return base64.b64encode(raw.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _wireguard_key_ok(value) -> bool:
    try:
        return isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _gateway_problems(gateway: dict, where: str, sites: dict, out: list[str]):
    """Problems of one gateway entry; returns its outside address (None when it did not parse)."""
    checks.label(gateway.get("name"), f"{where}.name", out)
    if gateway.get("name") not in sites:
        out.append(f"{where}.name: {gateway.get('name')!r} is not one of the sites ({', '.join(sites)})")
    address = checks.collect(out, ipplan.parse, f"{where}.address", gateway.get("address"))
    if address is not None and address.size != 1:
        out.append(f"{where}.address: {gateway['address']!r} must be one address (the gateway's outside address)")
    if gateway.get("host") is None and gateway.get("cloud") is None:
        out.append(f"{where}: give host (an inventory host that runs the tunnels) or cloud ({', '.join(CLOUDS)})")
    if gateway.get("host") is not None and gateway.get("cloud") is not None:
        out.append(f"{where}: host and cloud exclude each other (a cloud's VPN gateway runs no files of ours)")
    if gateway.get("cloud") is not None and gateway["cloud"] not in CLOUDS:
        out.append(f"{where}.cloud: {gateway['cloud']!r} is not one of {', '.join(CLOUDS)}")
    if gateway.get("wireguard_private_key") is not None and not _wireguard_key_ok(gateway["wireguard_private_key"]):
        out.append(f"{where}.wireguard_private_key: not a WireGuard key (base64 of 32 bytes, as `wg genkey` "
                   "prints; value not shown)")
    if gateway.get("wireguard_port") is not None:
        checks.port(gateway["wireguard_port"], f"{where}.wireguard_port", out)
    return address


def _link_problems(link: dict, where: str, gateways: dict, addresses: dict, sites: dict, out: list[str]) -> None:
    ends = link.get("between") or []
    if len(ends) != 2 or ends[0] == ends[1]:
        out.append(f"{where}.between: {ends!r} must name two different sites")
        return
    if link.get("type") not in TYPES:
        out.append(f"{where}.type: {link.get('type')!r} is not one of {', '.join(TYPES)}")
        return
    for j, end in enumerate(ends):
        if end not in gateways:
            out.append(f"{where}.between[{j}]: {end!r} has no entry in gateways")
    if any(end not in gateways for end in ends):
        return
    pair = [gateways[end] for end in ends]
    if link["type"] == "ipsec":
        if link.get("psk") is None or not PSK.match(link["psk"]):
            out.append(f"{where}.psk: an IPsec link needs a pre-shared key of 20-64 letters, digits, '.' or '_', "
                       "not starting with 0 (what AWS and Azure accept; value not shown)")
        elif link["psk"].startswith("0"):
            out.append(f"{where}.psk: must not start with 0 (AWS refuses it; value not shown)")
        if all(gateway.get("cloud") for gateway in pair):
            out.append(f"{where}: both ends are cloud VPN gateways; connect clouds with their own peering, "
                       "or put a host of yours at one end")
    else:
        if link.get("psk") is not None:
            out.append(f"{where}.psk: WireGuard links use the gateways' keys, not a pre-shared key")
        for end, gateway in zip(ends, pair):
            if gateway.get("cloud"):
                out.append(f"{where}: {end} is a {gateway['cloud']} VPN gateway, which speaks IPsec only; use type ipsec")
            elif gateway.get("wireguard_private_key") is None:
                out.append(f"{where}: the gateway of {end} needs wireguard_private_key for a WireGuard link")
    # The outside addresses carry the tunnel; inside the ranges it carries, packets would loop.
    for end, gateway in zip(ends, pair):
        address = addresses.get(end)
        for other in ends:
            if address is not None and sites.get(other) is not None and address.issubset(sites[other]):
                out.append(f"{where}: the gateway address of {end}, {gateway['address']}, lies inside {other}'s "
                           "ranges, which travel through the tunnel")


def problems(tunnels: dict | None, sites: dict, where: str) -> list[str]:
    """Every bad value of a scenario's tunnels variable (named ``where``); ``sites`` maps each
    site's name to its address ranges (an IPSet, or None when they did not parse)."""
    out: list[str] = []
    tunnels = tunnels or {}
    if not checks.shape(tunnels, {key: ("opt", schema) for key, schema in SHAPES.items()}, where, out):
        return out
    gateways: dict = {}
    addresses: dict = {}
    hosts: dict = {}
    for i, gateway in enumerate(tunnels.get("gateways") or []):
        addresses[gateway.get("name")] = _gateway_problems(gateway, f"{where}.gateways[{i}]", sites, out)
        if gateway.get("name") in gateways:
            out.append(f"{where}.gateways[{i}].name: {gateway['name']!r} has two gateways")
        if gateway.get("host") is not None and gateway["host"] in hosts:
            out.append(f"{where}.gateways[{i}].host: {gateway['host']!r} is already the gateway of {hosts[gateway['host']]}")
        hosts.setdefault(gateway.get("host"), gateway.get("name"))
        gateways[gateway.get("name")] = gateway
    seen: set = set()
    for i, link in enumerate(tunnels.get("links") or []):
        _link_problems(link, f"{where}.links[{i}]", gateways, addresses, sites, out)
        pair = frozenset(link.get("between") or [])
        if pair in seen:
            out.append(f"{where}.links[{i}].between: {sorted(pair)} are linked twice")
        seen.add(pair)
    return out


# -- what each end gets ----------------------------------------------------------------------
def _name(scenario: str, *parts: str) -> str:
    return "-".join((scenario, *parts))


def _swanctl(scenario: str, host_links: list, redact: bool) -> str:
    """One swanctl.conf for every IPsec link of one host (its connections and their secrets)."""
    lines = ["# k8snet.fabric " + scenario + ": IPsec links (IKEv2, PSK). Written by the role; edits are replaced.",
             "connections {"]
    secrets = ["secrets {"]
    for link in host_links:
        name = _name(scenario, link["local"]["name"], link["remote"]["name"])
        lines += [f"  {name} {{", "    version = 2",
                  f"    local_addrs = {link['local']['address']}", f"    remote_addrs = {link['remote']['address']}",
                  f"    proposals = {IKE_PROPOSAL}", f"    rekey_time = {IKE_REKEY}", f"    dpd_delay = {DPD_DELAY}",
                  "    local {", "      auth = psk", f"      id = {link['local']['address']}", "    }",
                  "    remote {", "      auth = psk", f"      id = {link['remote']['address']}", "    }",
                  "    children {", f"      {name} {{",
                  f"        local_ts = {', '.join(link['local']['ranges'])}",
                  f"        remote_ts = {', '.join(link['remote']['ranges'])}",
                  f"        esp_proposals = {ESP_PROPOSAL}", f"        rekey_time = {CHILD_REKEY}",
                  # The initiating end brings the link up at once and again after it failed; the
                  # other end waits for it, so the two never race into duplicate SAs.
                  "        dpd_action = " + ("restart" if link["initiator"] else "clear"),
                  "        start_action = " + ("start" if link["initiator"] else "none"),
                  "        close_action = " + ("start" if link["initiator"] else "none"),
                  "      }", "    }", "  }"]
        secrets += [f"  ike-{name} {{", f"    id-local = {link['local']['address']}",
                    f"    id-remote = {link['remote']['address']}",
                    f"    secret = \"{REDACTED if redact else link['psk']}\"", "  }"]
    return "\n".join(lines + ["}"] + secrets + ["}"]) + "\n"


def _wireguard(scenario: str, gateway: dict, host_links: list, redact: bool) -> str:
    lines = [f"# k8snet.fabric {scenario}: WireGuard links. Written by the role; edits are replaced.",
             "[Interface]", f"PrivateKey = {REDACTED if redact else gateway['wireguard_private_key']}",
             f"ListenPort = {gateway.get('wireguard_port') or WIREGUARD_PORT}"]
    for link in host_links:
        remote = link["remote"]
        lines += ["", f"# {remote['name']}", "[Peer]", f"PublicKey = {wireguard_public_key(remote['wireguard_private_key'])}",
                  f"Endpoint = {_endpoint(remote['address'], remote.get('wireguard_port') or WIREGUARD_PORT)}",
                  f"AllowedIPs = {', '.join(remote['ranges'])}",
                  # Keeps NAT and stateful firewalls on the path open while the link is idle.
                  "PersistentKeepalive = 25"]
    return "\n".join(lines) + "\n"


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def interface(scenario: str) -> str:
    """The WireGuard interface of a scenario on every gateway (wg-quick names it after its file)."""
    return f"wg-{scenario}"


def paths(scenario: str) -> dict:
    return {"ipsec": f"/etc/swanctl/conf.d/k8snet-{scenario}.conf",
            "wireguard": f"/etc/wireguard/{interface(scenario)}.conf"}


def _ends(tunnels: dict, ranges: dict) -> list[tuple[dict, dict, dict]]:
    """Each link as (link, first end, second end), every end a gateway with its site's ranges."""
    gateways = {g["name"]: {**g, "ranges": ranges[g["name"]]} for g in tunnels.get("gateways") or []}
    return [(link, gateways[link["between"][0]], gateways[link["between"][1]]) for link in tunnels.get("links") or []]


def gateway_files(scenario: str, tunnels: dict, ranges: dict, redact: bool) -> list[dict]:
    """Per gateway host: ``host``, the ``files`` it gets (host_files entries; secret ones as
    secret_content unless ``redact``) and the ``absent`` paths of the link type it has none of."""
    per_host: dict = {}
    gateways = {g["name"]: g for g in tunnels.get("gateways") or []}
    for gateway in gateways.values():
        if gateway.get("host"):
            per_host.setdefault(gateway["host"], {"gateway": gateway, "ipsec": [], "wireguard": []})
    for link, first, second in _ends(tunnels, ranges):
        for local, remote, initiator in ((first, second, True), (second, first, False)):
            if local.get("host"):
                # Towards a cloud our end always initiates (AWS waits by default: StartupAction add).
                per_host[local["host"]][link["type"]].append(
                    {"local": local, "remote": remote, "psk": link.get("psk"),
                     "initiator": initiator or bool(remote.get("cloud"))})
    out = []
    where = paths(scenario)
    for host, found in sorted(per_host.items()):
        key = "content" if redact else "secret_content"
        files, absent = [], []
        if found["ipsec"]:
            files.append({"dest": where["ipsec"], "mode": "0600", key: _swanctl(scenario, found["ipsec"], redact)})
        else:
            absent.append(where["ipsec"])
        if found["wireguard"]:
            files.append({"dest": where["wireguard"], "mode": "0600",
                          key: _wireguard(scenario, found["gateway"], found["wireguard"], redact)})
        else:
            absent.append(where["wireguard"])
        out.append({"host": host, "site": found["gateway"]["name"], "files": files, "absent": absent,
                    "types": [kind for kind in TYPES if found[kind]],
                    "directories": [{"path": where[kind].rsplit("/", 1)[0], "mode": DIRECTORY_MODES[kind]}
                                    for kind in TYPES if found[kind]]})
    return out


def cloud_side(scenario: str, tunnels: dict, ranges: dict) -> list[dict]:
    """What each cloud VPN gateway must be configured with for its link (no secrets: the PSK is
    the link's, from the vault), in the cloud's own API names."""
    out = []
    for link, first, second in _ends(tunnels, ranges):
        for cloud_end, ours in ((first, second), (second, first)):
            cloud = cloud_end.get("cloud")
            if not cloud or ours.get("cloud"):
                continue
            entry = {"link": _name(scenario, ours["name"], cloud_end["name"]), "cloud": cloud,
                     "cloud_site": cloud_end["name"], "cloud_gateway_address": cloud_end["address"],
                     "cloud_ranges": cloud_end["ranges"], "our_gateway_address": ours["address"],
                     "our_ranges": ours["ranges"], "pre_shared_key": "the link's psk (from the vault)"}
            if cloud == "aws":
                # ec2 CreateCustomerGateway + CreateVpnConnection (amazon.aws.ec2_vpc_vpn tunnel_options).
                entry["aws"] = {
                    "customer_gateway": {"IpAddress": ours["address"], "Type": "ipsec.1"},
                    "vpn_connection": {"StaticRoutesOnly": True, "Routes": ours["ranges"], "TunnelOptions": {
                        "IKEVersions": ["ikev2"], "Phase1EncryptionAlgorithms": ["AES256-GCM-16"],
                        "Phase1IntegrityAlgorithms": ["SHA2-384"], "Phase1DHGroupNumbers": [20],
                        "Phase2EncryptionAlgorithms": ["AES256-GCM-16"], "Phase2IntegrityAlgorithms": ["SHA2-384"],
                        "Phase2DHGroupNumbers": [20], "Phase1LifetimeSeconds": 28800,
                        "Phase2LifetimeSeconds": 3600, "DPDTimeoutSeconds": 30, "DPDTimeoutAction": "restart",
                        "StartupAction": "add"}}}
            else:
                # Local Network Gateway + a connection with a custom IPsec/IKE policy.
                entry["azure"] = {
                    "local_network_gateway": {"gatewayIpAddress": ours["address"], "addressPrefixes": ours["ranges"]},
                    "connection": {"connectionType": "IPsec", "connectionProtocol": "IKEv2", "dpdTimeoutSeconds": 45,
                                   "usePolicyBasedTrafficSelectors": False, "ipsecPolicies": [{
                                       "ikeEncryption": "GCMAES256", "ikeIntegrity": "SHA384", "dhGroup": "ECP384",
                                       "ipsecEncryption": "GCMAES256", "ipsecIntegrity": "GCMAES256",
                                       "pfsGroup": "ECP384", "saLifeTimeSeconds": 3600,
                                       "saDataSizeKilobytes": 102400000}]}}
            out.append(entry)
    return out


def plan(scenario: str, tunnels: dict | None, ranges: dict, where: str) -> dict:
    """``problems``, or the gateways' files (with secrets, and redacted for render mode) and the
    cloud side. ``ranges``: each site's address ranges (CIDR strings, already checked by the
    scenario's IP plan)."""
    sites = {name: checks.collect([], ipplan.union, name, values) for name, values in ranges.items()}
    found = problems(tunnels, sites, where)
    if found:
        return {"problems": found}
    tunnels = tunnels or {}
    return {"problems": [], "interface": interface(scenario), "paths": paths(scenario),
            "gateways": gateway_files(scenario, tunnels, ranges, redact=False),
            "rendered": gateway_files(scenario, tunnels, ranges, redact=True),
            "cloud_side": cloud_side(scenario, tunnels, ranges),
            "links": [{"name": _name(scenario, *link["between"]), "type": link["type"], "between": link["between"]}
                      for link in tunnels.get("links") or []]}
