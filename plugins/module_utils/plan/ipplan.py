# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IP plans: named address ranges, parsed strictly, checked for overlap and containment.

A range is a CIDR (``10.42.0.0/16``), a single address, or a span ``first-last`` (MetalLB pool
style). Every error names the range and its value; conflicts explain themselves in words.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

try:
    import netaddr
    HAS_NETADDR = True
except ImportError:  # pragma: no cover - reported when used
    HAS_NETADDR = False


def parse(name: str, value) -> "netaddr.IPSet":
    """One named range as an IPSet; strict: host bits set in a CIDR are an error."""
    if not HAS_NETADDR:
        raise ValidationError("the netaddr Python package is required for IP plans")
    text = str(value).strip() if value is not None else ""
    if not text:
        raise ValidationError(f"{name}: empty address range")
    try:
        if "-" in text and "/" not in text:
            first, last = (p.strip() for p in text.split("-", 1))
            span = netaddr.IPRange(netaddr.IPAddress(first, flags=netaddr.INET_PTON),
                                   netaddr.IPAddress(last, flags=netaddr.INET_PTON))
            return netaddr.IPSet(span)
        if "/" in text:
            address, prefix = text.split("/", 1)
            if not prefix.isdigit():
                raise ValueError(f"prefix length {prefix!r} is not a number")
            ip = netaddr.IPAddress(address, flags=netaddr.INET_PTON)
            if int(prefix) > (32 if ip.version == 4 else 128):
                raise ValueError(f"prefix length /{prefix} is longer than IPv{ip.version} allows")
            network = netaddr.IPNetwork(text)
            if network.ip != network.network:
                raise ValueError(f"host bits are set (did you mean {network.cidr}?)")
            return netaddr.IPSet([network])
        return netaddr.IPSet([netaddr.IPAddress(text, flags=netaddr.INET_PTON)])
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise ValidationError(f"{name}: {value!r} is not a valid CIDR, address or range ({exc})") from exc


def union(name: str, values) -> "netaddr.IPSet":
    """The union of a list of ranges (or one), each parsed strictly, named ``<name>[i]``."""
    values = values if isinstance(values, list) else [values]
    if not values:
        raise ValidationError(f"{name}: no address range given")
    result = parse(f"{name}[0]", values[0])
    for index, value in enumerate(values[1:], 1):
        result = result | parse(f"{name}[{index}]", value)
    return result


def describe(ipset) -> str:
    cidrs = ipset.iter_cidrs()
    if len(cidrs) <= 2:
        return ", ".join(str(c) for c in cidrs)
    ranges = list(ipset.iter_ipranges())
    return ", ".join(f"{r[0]}-{r[-1]}" for r in ranges)


@dataclass(frozen=True)
class Overlap:
    """Two named ranges that share addresses, and how (``str()`` says it in words)."""

    first: str
    first_value: str
    second: str
    second_value: str
    how: str

    def __str__(self) -> str:
        return f"{self.first} ({self.first_value}) overlaps {self.second} ({self.second_value}): {self.how}"


def overlaps(ranges: dict, allowed: list | None = None) -> list[Overlap]:
    """Every pair of named ranges that overlap; ``allowed`` lists name pairs that may (a pool
    inside its LAN, say). Raises ValidationError for a range that does not parse."""
    parsed = {name: parse(name, value) for name, value in ranges.items() if value not in (None, "")}
    ok = {frozenset(pair) for pair in (allowed or [])}
    out = []
    names = sorted(parsed)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if frozenset((a, b)) in ok:
                continue
            shared = parsed[a] & parsed[b]
            if shared:
                if parsed[a] == parsed[b]:
                    how = "are the same range"
                elif parsed[a].issubset(parsed[b]):
                    how = f"{a} lies inside {b}"
                elif parsed[b].issubset(parsed[a]):
                    how = f"{b} lies inside {a}"
                else:
                    how = f"they share {describe(shared)}"
                out.append(Overlap(a, str(ranges[a]), b, str(ranges[b]), how))
    return out


def conflicts(ranges: dict, allowed: list | None = None) -> list[str]:
    """overlaps() in words, one line per pair."""
    return [str(overlap) for overlap in overlaps(ranges, allowed)]


def version(ipset) -> int:
    """The IP family (4 or 6) of a set of one family (its first range's)."""
    return ipset.iter_cidrs()[0].version


def of_family(ipset, family: int):
    """The part of a set in one IP family (4 or 6)."""
    return netaddr.IPSet(c for c in ipset.iter_cidrs() if c.version == family)


def contains(outer_name: str, outer, inner_name: str, inner) -> str | None:
    """None when ``inner`` lies wholly inside ``outer``; otherwise the reason in words."""
    big, small = parse(outer_name, outer), parse(inner_name, inner)
    if small.issubset(big):
        return None
    outside = small - big
    return f"{inner_name} ({inner}) is not inside {outer_name} ({outer}): {describe(outside)} lies outside"


def address_in(name: str, address, range_name: str, value) -> str | None:
    """None when the single address lies in the range, else the reason."""
    return contains(range_name, value, name, address)
