# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of role variables that every scenario plan shares. Each appends its message, naming
the variable and the value, to ``out`` instead of raising, so a plan reports every problem."""

from __future__ import annotations

import difflib
import re

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def label(value, where: str, out: list[str]) -> None:
    """A DNS label (RFC 1123): names of namespaces, services, locations, clusters."""
    if not isinstance(value, str) or not DNS_LABEL.match(value) or len(value) > 63:
        out.append(f"{where}: {value!r} must be a DNS label (lowercase letters, digits, '-')")


def unique_label(value, where: str, seen: list, out: list[str], twice: str = "is used twice") -> None:
    """A DNS label that no earlier entry of the same list (``seen``, which it joins) has."""
    label(value, where, out)
    if value in seen:
        out.append(f"{where}: {value!r} {twice}")
    seen.append(value)


def domain(value, where: str, out: list[str]) -> None:
    """A domain name; the first bad label is reported."""
    if not isinstance(value, str) or not value or len(value) > 253:
        out.append(f"{where}: {value!r} is not a domain name")
        return
    found: list[str] = []
    for part in value.rstrip(".").split("."):
        label(part, f"{where} ({value})", found)
    out += found[:1]


def mappings(items, var: str, out: list[str]):
    """(``var[i]``, item) for each mapping of a list variable; any other item is a problem."""
    for i, item in enumerate(items or []):
        if isinstance(item, dict):
            yield f"{var}[{i}]", item
        else:
            out.append(f"{var}[{i}]: expected a mapping")


def namespaced_name(item: dict, where: str, out: list[str]) -> None:
    """An object's name and namespace (``where.name``, ``where.namespace``): DNS labels."""
    label(item.get("name"), f"{where}.name", out)
    label(item.get("namespace"), f"{where}.namespace", out)


def port(value, where: str, out: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        out.append(f"{where}: {value!r} is not a port (1-65535)")


def host_port(value, where: str, shape: str, example: str, out: list[str]) -> tuple[str, int] | None:
    """``host:port`` of a service a role points at (a collector, a prober): (host, port), or
    None with the problems in ``out``, each naming ``where``; ``shape`` and ``example`` say what
    was expected when the value is no host:port at all."""
    host, _colon, port_text = str(value).rpartition(":")
    if not host or not port_text.isdigit():
        out.append(f"{where}: {value!r} is not {shape} ({example})")
        return None
    found: list[str] = []
    domain(host, where, found)
    port(int(port_text), where, found)
    out += found
    return None if found else (host, int(port_text))


# Prometheus's duration (model.ParseDuration): units largest first, each at most once: 1h30m, 15d, 500ms.
PROMETHEUS_DURATION = re.compile(r"^(?=\d)((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")


def prometheus_duration(value, where: str, out: list[str]) -> None:
    """A duration Prometheus (and the Prometheus Operator's CRDs) accepts: for, interval, retention."""
    if not isinstance(value, str) or not PROMETHEUS_DURATION.match(value):
        out.append(f"{where}: {value!r} is not a Prometheus duration (30s, 5m, 1h30m, 15d)")


def small_number(value, where: str, out: list[str]) -> None:
    """Weights and priorities: 0-255."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        out.append(f"{where}: {value!r} must be a whole number 0-255")


def renewal_window(renew, days, where: str, out: list[str], days_name: str = "days",
                   zero_means_never: bool = False) -> None:
    """How long before its end a certificate or token is renewed: above 0 (or 0, never, where
    ``zero_means_never``) and fewer than the ``days`` it lives, or every run renews what it made."""
    lowest, lower = (0, "0 (never) or more") if zero_means_never else (1, "above 0")
    if isinstance(renew, bool) or not isinstance(renew, int) or not lowest <= renew < days:
        out.append(f"{where}: {renew!r} must be {lower} and fewer than {days_name} ({days!r}): "
                   "every run would renew what it just made")


def require(check, *args, **options) -> None:
    """For a module: run a check that appends its problems (``out`` after ``args``) and raise
    them as one ValidationError; collect() is the other way round."""
    out: list[str] = []
    check(*args, out, **options)
    if out:
        raise ValidationError("; ".join(out))


def collect(out: list[str], check, *args):
    """Run a check that raises ValidationError; keep its message instead, return None."""
    try:
        return check(*args)
    except ValidationError as exc:
        out.append(str(exc))
        return None


# -- shapes -------------------------------------------------------------------------------------
# A plan filter can be called with anything (a partial -e override, a typo'd inventory); before a
# plan reads a field it checks the shape, so a wrong type is a problem naming the variable, never
# a TypeError from deep inside. Schemas: "str", "int", "bool", "number", "any",
# ("list", item), ("map", value) for name -> value mappings, ("opt", schema) for None allowed,
# and {key: schema} for a mapping with those keys and no other (a key "*" lets others in: Kubernetes
# objects); a key written "name!" must be present.
TYPE_WORDS = {"str": "a string", "int": "a whole number", "bool": "true or false", "number": "a number"}


def shapes(spec: dict, schemas: dict, prefix: str, out: list[str], absent_ok: bool = False,
           names: dict | None = None) -> bool:
    """Every variable of a role's spec against its schema (``<prefix><key>`` names it, unless
    ``names`` says otherwise); True when all are right. ``absent_ok``: missing keys take the
    plan's defaults."""
    before = len(out)
    for key, schema in schemas.items():
        shape(spec.get(key), ("opt", schema) if absent_ok else schema, (names or {}).get(key, prefix + key), out)
    return len(out) == before


def shape(value, schema, where: str, out: list[str]) -> bool:
    """Append a message for every value of the wrong type; True when the shape is right."""
    before = len(out)
    _shape(value, schema, where, out)
    return len(out) == before


def _shape(value, schema, where: str, out: list[str]) -> None:
    if schema == "any":
        return
    if isinstance(schema, tuple) and schema[0] == "opt":
        if value is not None:
            _shape(value, schema[1], where, out)
        return
    if isinstance(schema, str):
        ok = {"str": isinstance(value, str),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "bool": isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool)}[schema]
        if not ok:
            out.append(f"{where}: {value!r} must be {TYPE_WORDS[schema]}")
        return
    if isinstance(schema, tuple) and schema[0] == "list":
        if not isinstance(value, list):
            out.append(f"{where}: {value!r} must be a list")
            return
        for index, item in enumerate(value):
            _shape(item, schema[1], f"{where}[{index}]", out)
        return
    if isinstance(schema, tuple) and schema[0] == "map":
        if not isinstance(value, dict):
            out.append(f"{where}: {value!r} must be a mapping")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.append(f"{where}: key {key!r} must be a string")
                continue
            _shape(item, schema[1], f"{where}.{key}", out)
        return
    if not isinstance(value, dict):
        out.append(f"{where}: {value!r} must be a mapping")
        return
    known = {key.rstrip("!") for key in schema} - {"*"}
    for key in value if "*" not in schema else ():
        if key not in known:  # a typo (retry for retries) would otherwise be silently ignored
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(known))}"
            out.append(f"{where}.{key} is not a key of {where} ({hint})")
    for key, inner in schema.items():
        name = key.rstrip("!")
        if name == "*":
            continue
        if name in value:
            _shape(value[name], inner, f"{where}.{name}", out)
        elif key.endswith("!"):
            out.append(f"{where}: {name} is missing")
