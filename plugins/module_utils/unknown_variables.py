# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Variables a role does not have. Ansible ignores an inventory variable whose name has a typo
(``ecommerce_net_tirs``) and refuses an unknown nested key listing every supported one; this
names the closest known name instead, for both."""

from __future__ import annotations

import difflib
import functools
import glob
import os


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(sorted(known))})"


def unknown(given: dict, options: dict, internal: set, role: str) -> list[str]:
    """Messages for the role's variables (``<role>_*``) in ``given`` that its argument spec
    ``options`` does not declare, and for unknown keys inside the declared dict variables.
    ``internal`` are the names the role sets itself (facts, registered results)."""
    out: list[str] = []
    prefix = f"{role}_"
    for name in sorted(given):
        if name in options:
            _nested(given[name], options[name], name, out)
        elif name.startswith(prefix) and name not in internal:
            out.append(f"{name} is not a variable of {role}{_hint(name, options)}")
    return out


def _nested(value, spec: dict, where: str, out: list[str]) -> None:
    sub = spec.get("options")
    if not sub:
        return
    if spec.get("type") == "list" and isinstance(value, list):
        for i, element in enumerate(value):
            _keys(element, sub, f"{where}[{i}]", out)
    elif isinstance(value, dict):
        _keys(value, sub, where, out)


def _keys(value, options: dict, where: str, out: list[str]) -> None:
    if not isinstance(value, dict):
        return  # a wrong type is the argument spec's to report
    for key in value:
        if key in options:
            _nested(value[key], options[key], f"{where}.{key}", out)
        else:
            out.append(f"{where}.{key} is not a key of {where}{_hint(str(key), options)}")


def internal_names(documents) -> set[str]:
    """Names a role's task files set: ``register:`` targets, ``set_fact`` keys, and the keys of
    task and block ``vars`` (role-owned names, never the user's to set)."""
    names: set[str] = set()

    def walk(node):
        if isinstance(node, list):
            for element in node:
                walk(element)
        elif isinstance(node, dict):
            if isinstance(node.get("register"), str):
                names.add(node["register"])
            for action in ("ansible.builtin.set_fact", "set_fact"):
                if isinstance(node.get(action), dict):
                    names.update(k for k in node[action] if k != "cacheable")
            if isinstance(node.get("vars"), dict):
                names.update(node["vars"])
            for child in node.values():
                walk(child)

    walk(documents)
    return names


def _load(path: str):
    import yaml  # ansible-core's own dependency; this runs on the controller only

    with open(path, encoding="utf-8") as handle:
        return list(yaml.safe_load_all(handle))


@functools.lru_cache(maxsize=None)
def role_names(folder: str, entry_point: str | None = "main") -> tuple[dict, frozenset]:
    """A role's argument-spec options (of one entry point, or of all when None: a variable of
    any entry point is the role's) and the names it sets itself (tasks, vars/), read once.
    Raises OSError, KeyError, TypeError or yaml's error for a folder that is not such a role."""
    specs = _load(os.path.join(folder, "meta", "argument_specs.yml"))[0]["argument_specs"]
    options = dict(specs[entry_point]["options"]) if entry_point else {}
    for name in ([] if entry_point else sorted(specs, key=lambda point: point != "main")):
        for option, spec in specs[name]["options"].items():
            options.setdefault(option, spec)
    internal = internal_names([_load(p) for p in sorted(glob.glob(os.path.join(folder, "tasks", "*.yml")))])
    for path in glob.glob(os.path.join(folder, "vars", "*.yml")):
        internal.update(*(doc or {} for doc in _load(path)))
    return options, frozenset(internal)


@functools.lru_cache(maxsize=None)
def foreign_names(folder: str) -> dict[str, tuple[str, str]]:
    """Other projects' names for the role's variables (``meta/foreign_variables.yml``:
    project -> {their name: our variable}), as {their name: (project, our variable)}."""
    path = os.path.join(folder, "meta", "foreign_variables.yml")
    if not os.path.exists(path):
        return {}
    return {theirs: (project, ours) for project, names in (_load(path)[0] or {}).items()
            for theirs, ours in names.items()}


def role_problems(folder: str, role: str, given: dict, read) -> list[str]:
    """unknown() over a host's variables ``given``: ``read(name)`` is a variable's templated
    value (they may come templated from the inventory; None when unreadable), asked for by name
    so a caller can reuse what it templated. Another project's name for one of the role's
    variables is refused naming the role's."""
    options, internal = role_names(folder, None)
    values = {name: read(name) if (options.get(name) or {}).get("options") else None
              for name in given if name.startswith(f"{role}_") or name in options}
    foreign = [f"{name} is {project}'s variable and does nothing here: set {ours}"
               for name, (project, ours) in sorted(foreign_names(folder).items()) if name in given]
    return foreign + unknown(values, options, set(internal), role) or spec_problems(options, given, read)


def spec_problems(options: dict, given: dict, read) -> list[str]:
    """The argument spec's own verdict over the variables, one line per problem: Ansible's
    validation of a role prints the whole spec with each failure (1,790 lines for one mistyped
    choice on a four-host site), so the roles' first dependency says it first, briefly."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    params = {}
    for name in options:
        if name in given:
            value = read(name)
            if value is not None:
                params[name] = value
    return list(dict.fromkeys(ArgumentSpecValidator(options).validate(params).error_messages))
