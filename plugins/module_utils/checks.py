# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of role variables that every scenario plan shares. Each appends its message, naming
the variable and the value, to ``out`` instead of raising, so a plan reports every problem."""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def label(value, where: str, out: list[str]) -> None:
    """A DNS label (RFC 1123): names of namespaces, services, locations, clusters."""
    if not isinstance(value, str) or not DNS_LABEL.match(value) or len(value) > 63:
        out.append(f"{where}: {value!r} must be a DNS label (lowercase letters, digits, '-')")


def domain(value, where: str, out: list[str]) -> None:
    """A domain name; the first bad label is reported."""
    if not isinstance(value, str) or not value or len(value) > 253:
        out.append(f"{where}: {value!r} is not a domain name")
        return
    found: list[str] = []
    for part in value.rstrip(".").split("."):
        label(part, f"{where} ({value})", found)
    out += found[:1]


def port(value, where: str, out: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        out.append(f"{where}: {value!r} is not a port (1-65535)")


def small_number(value, where: str, out: list[str]) -> None:
    """Weights and priorities: 0-255."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        out.append(f"{where}: {value!r} must be a whole number 0-255")


def collect(out: list[str], check, *args):
    """Run a check that raises ValidationError; keep its message instead, return None."""
    try:
        return check(*args)
    except ValidationError as exc:
        out.append(str(exc))
        return None
