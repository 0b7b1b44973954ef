# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""edge_fleet: render mode for every edge site of the inventory in one pass on the controller.

Rendering per host (a play per host, a task per file) costs ~8 s per site here (bench/fleet.py's
peer), nearly all of it Ansible's per-host task overhead. This action does the work for every site
in this one process, from the definitions apply mode uses: each host's variables as Ansible sees them (role
defaults, inventory, --limit), the site described by the role's own tasks/site.yml, its argument
spec and unknown-variable checks, the same filters, templates and writers. Nothing is written
until every host and site has passed every check.

ansible-core internals it reads, and why (no public API gives an action more than the current
host's task_vars; tests/integration/test_edge_fleet.py runs it on requirements.txt's ansible-core,
the newest that installs on this Python): ``self._task._variable_manager`` and its ``_inventory``
(every other host's variables and groups, as a per-host play would see them, --limit included),
``self._task._role._role_path`` (the role's own site.yml, templates and argument spec), and
``generate_ansible_template_vars`` (what the template lookup adds, so the text is the same).
"""

from __future__ import annotations

import functools
import json
import os
import re

import jinja2
import jinja2.meta

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

from ansible_collections.k8snet.fabric.plugins.module_utils import ecosystem_check
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s
from ansible_collections.k8snet.fabric.plugins.module_utils import unknown_variables as known
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import FabricError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import runner as netpol

try:  # what the template action adds (ansible_managed, template_path...): same text as the per-host path
    from ansible._internal._templating._template_vars import generate_ansible_template_vars
except ImportError:  # pragma: no cover - another ansible-core
    generate_ansible_template_vars = None

ROLE = "edge_k3s"
SERVERS, AGENTS, CLUSTERS = "edge_servers", "edge_agents", "edge_clusters"
KUBERNETES_VERSION = "1.37"  # resource_set's default, which the per-host path renders with


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("promtool", "require_checkers"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        role_path = self._task._role._role_path
        # The role's own description of a site, trusted as templates as Ansible trusts task files.
        self._site_tasks = self._loader.load_from_file(os.path.join(role_path, "tasks", "site.yml"), trusted_as_template=True)
        self._options = known.role_names(role_path)[0]
        self._role_path = role_path
        self._in = {group: set(self._group(group)) for group in (SERVERS, AGENTS, CLUSTERS)}
        self._shared: dict = {}  # templated values every host with the same inputs shares
        self._schema_checked = 0
        self._promtool = None  # distinct rule sets promtool checked; None when it is not installed
        self._site_entries = set(self._members(CLUSTERS))
        try:
            hosts = self._hosts()
            problems = [f"{name}: {p}" for name, info in hosts.items() for p in info["problems"]]
            sites = self._sites(hosts)
            if not problems:
                problems = self._site_problems(hosts, sites)
            if problems:
                raise AnsibleActionFail("edge fleet: nothing was written; fix these first:\n- " + "\n- ".join(problems))
            files = self._files(hosts, sites)
        except FabricError as exc:
            raise AnsibleActionFail(f"edge fleet: {exc}") from None  # the message holds the cause already
        # Check mode writes nothing, not even the build folder.
        written = {path: manifests.write_text(path, text, self._task.check_mode, mode) for path, (text, mode) in files.items()}
        changed = [path for path, outcome in written.items() if outcome["changed"]]
        if self._task.diff and changed:
            result["diff"] = [{"before_header": p, "after_header": p, "before": written[p]["before"] or "",
                               "after": written[p]["after"]} for p in changed]
        result.update(changed=bool(changed), sites=len(sites), hosts=len(hosts), files=len(files),
                      schema_checked=self._schema_checked, promtool=self._promtool, written=sorted(changed),
                      # Each site's proof, shaped as netpol_analyze's results (proof_summary reads them).
                      proofs=[{"site": site["spec"]["name"], "findings": site["findings"],
                               "report": os.path.join(site["dir"], "report")}
                              for site in sites.values() if "findings" in site])
        if self._promtool is None and sites:  # as the per-host path's ecosystem_check warns
            result["warnings"] = ["promtool is not installed (not on PATH; set fabric_promtool): the sites' alert "
                                  "rules were not checked by it"]
        return result

    # -- the hosts, as the per-host plays see them --------------------------------------------
    def _hosts(self) -> dict:
        """Every edge host and site entry within --limit: its variables, its site (site.yml),
        and what its argument spec and the unknown-variable check say."""
        inventory = self._task._variable_manager._inventory
        # ignore_restrictions: the play runs this once; --limit (the subset) still applies.
        return {host.name: self._host(host) for host in
                inventory.get_hosts(f"{SERVERS}:{AGENTS}:{CLUSTERS}", ignore_restrictions=True)}

    def _host(self, host) -> dict:
        manager = self._task._variable_manager
        # No play host lists: the per-host plays do not read them, and computing them per host is O(hosts²).
        variables = manager.get_vars(play=self._task.get_play(), host=host, task=self._task, _hosts=[], _hosts_all=[])
        values = _Values(self._templar.copy_with_new_env(available_variables=variables), variables, self._shared)
        # The role's first dependency checks: unknown names, then the argument spec (read through
        # the shared template cache: the spec's values are the ones the site is built from).
        problems = known.role_problems(self._role_path, ROLE, variables, values.quiet) or self._template_problems(variables, values)
        facts = {}
        if not problems:
            for task in self._site_tasks:  # set_fact tasks in order, each with its own vars
                scope = {**variables, **facts, **(task.get("vars") or {})}
                local = _Values(values.templar.copy_with_new_env(available_variables=scope), scope, self._shared)
                # Plain data, as a module receives its arguments (templated values carry tags).
                facts.update(json.loads(json.dumps(local.template(task["ansible.builtin.set_fact"]))))
        return {"vars": variables, "templar": values.templar, "problems": problems, **facts}

    def _connected(self, sites: dict) -> list[dict]:
        """The sites the limited ones are connected to, wherever they are: a job slice checks its
        sites' routes against sites another slice renders (their ranges must not overlap)."""
        have = {site["spec"]["name"] for site in sites.values()}
        wanted = {name for site in sites.values() for name in site["spec"].get("connected_sites") or []} - have
        out = []
        inventory = self._task._variable_manager._inventory
        for name in sorted(self._site_entries - set(sites)) if wanted else []:
            host = inventory.get_host(name)
            site = self._task._variable_manager.get_vars(host=host, include_hostvars=False).get("edge_k3s_site")
            if site in wanted:  # the inventory's own value: only those sites are described in full
                out.append(self._host(host).get("edge_k3s_site_spec") or {})
        return [spec for spec in out if spec]

    def _template_problems(self, variables: dict, values: "_Values") -> list[str]:
        """A role variable whose template fails, as Ansible says it (the argument spec, which
        reads such a value as absent, passed it)."""
        try:
            for name in self._options:
                if name in variables:
                    values.value(name)
        except AnsibleError as exc:
            return [str(exc)]
        return []

    # -- the sites ------------------------------------------------------------------------------
    def _sites(self, hosts: dict) -> dict:
        """Per site entry (edge_clusters host): its spec, objects, expectations and folder."""
        out = {}
        for name, info in hosts.items():
            if "edge_k3s_site_spec" not in info or name not in self._in[CLUSTERS]:
                continue
            spec = info["edge_k3s_site_spec"]
            out[name] = {"spec": spec, "dir": info["templar"].template(info["vars"]["edge_k3s_render_dir"])}
        return out

    def _site_problems(self, hosts: dict, sites: dict) -> list[str]:
        """validate.yml's checks for every host, and promtool once per distinct rule set."""
        every = [site["spec"] for site in sites.values()] + self._connected(sites)
        problems, checked = [], {}
        for name, info in hosts.items():
            spec = info["edge_k3s_site_spec"]
            problems += [f"{name}: {p}" for p in edge_k3s.site_problems(spec, every)]
            group = info["templar"].template(info["vars"]["edge_k3s_site_group"])
            if not set(self._members(group)) & self._site_entries:
                problems.append(f"site {spec['name']} ({name}) has no host in both {CLUSTERS} and {group}: without it "
                                "the site's cluster objects are never rendered or converged; add one (the collection's "
                                "inventories/examples/factories/hosts.yml shows two sites with theirs: "
                                "edge-factory-1, edge-factory-2)")
        if problems:
            return problems
        for name, site in sites.items():
            site.update(edge_k3s.plan(site["spec"]))  # its hosts' checks above passed: objects, secrets, proof
            rules = [o for o in site["objects"] if o.get("kind") == "PrometheusRule"]
            key = json.dumps(rules, sort_keys=True, default=str)
            if key not in checked:  # a fleet's sites mostly share their alert rules: check each text once
                checked[key] = ecosystem_check.run("promtool", rules, self._task.args.get("promtool") or None)
                if checked[key]["checked"]:
                    self._promtool = (self._promtool or 0) + 1
                elif self._task.args.get("require_checkers"):  # as ecosystem_check's required
                    return ["promtool is not installed (not on PATH; set fabric_promtool) and fabric_require_checkers "
                            "is on: nothing was checked by it"]
            problems += [f"{name}: promtool: {f['object']}: {f['message']}" for f in checked[key]["findings"]]
            if not edge_k3s.has_stack(site["spec"]):
                continue  # K3s only: no stack, no proof
            # The proof: the LAN reaches the processor's ingest port and nothing else.
            proof = netpol.analyse(site["objects"], ["txt"], site["expect"], range_names=site["range_names"])
            site["report"] = proof["reports"]["txt"]
            site["findings"] = proof["findings"]
            problems += [f"{name}: network policy expectation violated: {v}" for v in proof["violations"]]
        return problems

    def _group(self, name: str) -> list[str]:
        """The group's hosts within --limit (the hosts a per-host play would run on)."""
        inventory = self._task._variable_manager._inventory
        return [h.name for h in inventory.get_hosts(name, ignore_restrictions=True)] if name in inventory.groups else []

    def _members(self, name: str) -> list[str]:
        """The group's hosts in the whole inventory, as ``groups[name]`` says (--limit aside)."""
        group = self._task._variable_manager._inventory.groups.get(name)
        return [h.name for h in group.get_hosts()] if group else []

    # -- the files ------------------------------------------------------------------------------
    def _files(self, hosts: dict, sites: dict) -> dict:
        """path -> (text, mode) of every file host.yml and cluster.yml render."""
        out = {}
        for name, info in hosts.items():
            if name in sites or name not in self._in[SERVERS] | self._in[AGENTS]:
                continue
            spec, unit = info["edge_k3s_site_spec"], info["edge_k3s_unit"]
            base = os.path.join(info["templar"].template(info["vars"]["edge_k3s_render_dir"]), "hosts", name)
            unit_text = self._template(info, "k3s.service.j2", {"edge_k3s_unit": unit})
            env_text = self._template(info, "k3s.env.j2", {"edge_k3s_unit": unit, "edge_k3s_env_token": "<redacted>"})
            # The one definition of a host's files: what host.yml renders and apply installs.
            for entry in edge_k3s.host_files(spec, name, unit, unit_text, env_text)["files"]:
                out[os.path.join(base, entry["dest"].lstrip("/"))] = (
                    entry["content"] if "content" in entry else entry["secret_content"], int(entry["mode"], 8))
        for site in sites.values():
            # As a module receives them (JSON): no shared sub-objects, so no YAML anchors either.
            objects = json.loads(json.dumps(site["nodes"] + site["objects"] + site["secrets"]))
            checked = manifests.validate_offline(objects, KUBERNETES_VERSION)
            self._schema_checked += sum(1 for entry in checked if entry["schema"] == "valid")
            out[os.path.join(site["dir"], "manifests.yaml")] = (manifests.dump([manifests.for_file(o) for o in objects]), 0o644)
            if "report" in site:
                out[os.path.join(site["dir"], "report", "connlist.txt")] = (site["report"], 0o644)
        return out

    def _template(self, info: dict, name: str, extra: dict) -> str:
        """A role template rendered as the template lookup renders it (host.yml and install.yml use it)."""
        source = os.path.join(self._role_path, "templates", name)
        variables = {**info["vars"], **info, **extra}
        if generate_ansible_template_vars is not None:
            variables.update(generate_ansible_template_vars(path=name, fullpath=source,
                                                            include_ansible_managed="ansible_managed" not in info["vars"]))
        templar = self._templar.copy_with_new_env(searchpath=[os.path.dirname(source)], available_variables=variables)
        text = trust_as_template(self._loader.get_text_file_contents(source))
        return templar.template(text, escape_backslashes=False,
                                overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"}) or ""


MARKERS = ("{{", "{%", "{#")
JUST_A_VARIABLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


# The current host's whole variable set: templates reading these are not shared.
UNSHARED = frozenset(("vars", "ansible_facts"))
# The same for every host of a run (the inventory's groups, every host's variables).
RUN_WIDE = frozenset(("groups", "hostvars"))
PARSER = jinja2.Environment()  # only to find the names a template reads


@functools.lru_cache(maxsize=4096)
def _names(text: str):
    try:
        return frozenset(jinja2.meta.find_undeclared_variables(PARSER.parse(text)))
    except jinja2.TemplateError:
        return None


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _strings(key)
            yield from _strings(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from _strings(inner)


def _has_template(value) -> bool:
    return any(marker in text for text in _strings(value) for marker in MARKERS)


class _Values:
    """Templating as Ansible does it, without Jinja where it has nothing to do: a value with no
    template in it is itself, "{{ name }}" is that variable's value, and a template whose inputs
    (the raw values it reads, transitively) are the same as another host's has its result.
    Ansible compiles every template string anew (~1 ms each), ~60 of them per host."""

    def __init__(self, templar, variables: dict, shared: dict):
        self.templar, self._variables, self._cache, self._shared = templar, variables, {}, shared

    def value(self, name: str):
        if name not in self._cache:
            raw = self._variables[name]
            if not _has_template(raw):
                self._cache[name] = raw
            else:
                key = self._inputs(raw, 0)
                if key is None or key not in self._shared:
                    result = self.templar.template(raw)
                    if key is None:
                        self._cache[name] = result
                        return result
                    self._shared[key] = result
                self._cache[name] = self._shared[key]
        return self._cache[name]

    def _inputs(self, raw, depth: int):
        """The raw value with the raw values its templates read (transitively), as text; None
        when it reads the host's whole variable set. Lookups count as inputs of none (run_dir, env:
        the same for every host of a run)."""
        if depth > 8:
            return None
        reads = []
        for text in _strings(raw):
            if not _has_template(text):
                continue
            names = _names(text)
            if names is None or names & UNSHARED:
                return None
            for name in sorted(names):
                if name in RUN_WIDE:
                    reads.append((name, "run"))
                    continue
                inner = self._inputs(self._variables[name], depth + 1) if name in self._variables else "undefined"
                if inner is None:
                    return None
                reads.append((name, inner))
        return json.dumps([raw, reads], sort_keys=True, default=str)

    def template(self, expression):
        if isinstance(expression, dict):
            return {key: self.template(value) for key, value in expression.items()}
        if isinstance(expression, list):
            return [self.template(value) for value in expression]
        if isinstance(expression, str):
            simple = JUST_A_VARIABLE.match(expression)
            if simple and simple.group(1) in self._variables:
                return self.value(simple.group(1))
        return self.templar.template(expression) if _has_template(expression) else expression

    def quiet(self, name: str):
        """A variable's value, None when it does not template (the argument spec's reading)."""
        try:
            return self.value(name)
        except AnsibleError:
            return None
