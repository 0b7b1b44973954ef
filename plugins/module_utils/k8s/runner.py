# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every set-converging module does with its parameters: one function, so modules that
build objects (network_policies, ...) and resource_set share states, results and errors."""

from __future__ import annotations

import resource
import time

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import diff, manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import (
    Engine,
    shape_problem,
)
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import (
    CONNECTION_ARGSPEC,
    Client,
)
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import (
    ValidationError,
    reported,
)

STATES = ("merged", "replaced", "overridden", "deleted", "gathered", "rendered", "parsed")

# Options every set module takes besides its own object source.
SET_ARGSPEC = dict(
    name=dict(type="str"),
    set_namespace=dict(type="str", default="default"),
    namespace=dict(type="str"),
    state=dict(type="str", default="merged", choices=list(STATES)),
    workers=dict(type="int", default=8),
    force_conflicts=dict(type="bool", default=False),
    only_existing=dict(type="bool", default=False),
    report_unchanged=dict(type="bool", default=True),
    wait_timeout=dict(type="float", default=60.0),
    await_kinds=dict(type="float", default=0.0),
    pending_kinds=dict(type="list", elements="dict", default=[]),
    pending_namespaces=dict(type="list", elements="str", default=[]),
    dest=dict(type="path"),
    kubernetes_version=dict(type="str", default="1.37"),
    **CONNECTION_ARGSPEC,
)


def run(module, objects: list[dict]) -> dict:
    """Carry out ``module.params['state']`` on ``objects``; return the module result."""
    params = module.params
    state = params["state"]
    started = time.monotonic()
    if state == "parsed":
        return {"changed": False, "parsed": [diff.redact(o) for o in objects]}
    if state == "rendered":
        return _rendered(params, objects, module.check_mode, module._diff)
    if not params.get("name"):
        raise ValidationError(f"name: required with state={state} (it names the set)")
    client = Client(params, workers=params["workers"])
    engine = Engine(client, workers=params["workers"], force_conflicts=params["force_conflicts"],
                    check_mode=module.check_mode, want_diff=module._diff,
                    wait_timeout=params["wait_timeout"], only_existing=params["only_existing"],
                    await_kinds=params["await_kinds"], pending_kinds=params["pending_kinds"],
                    pending_namespaces=params["pending_namespaces"])
    try:
        if state == "gathered":
            result = engine.gather(params["name"], params["set_namespace"])
        elif state == "deleted":
            result = engine.delete(params["name"], params["set_namespace"], objects, params["namespace"])
        else:
            result = engine.converge(params["name"], params["set_namespace"], objects, state,
                                     default_namespace=params["namespace"])
    finally:
        client.close()
    for text, about in sorted(client.warnings.items()):
        module.warn(f"API server on {about}: {text}")
    if not params["report_unchanged"] and "results" in result:
        result["results"] = [r for r in result["results"] if r["result"] != "unchanged"]
    result["requests"] = dict(client.counts)
    result["timings"] = {**engine.timings, "total": round(time.monotonic() - started, 3)}
    result["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    return result


def _rendered(params: dict, objects: list[dict], check_mode: bool, want_diff: bool) -> dict:
    problems = [p for i, o in enumerate(objects) if (p := shape_problem(o, f"objects[{i}]"))]
    if problems:
        raise ValidationError("invalid objects:\n- " + "\n- ".join(problems))
    report = manifests.validate_offline(objects, params["kubernetes_version"])
    result = {"changed": False, "rendered": [diff.redact(o) for o in objects], "validation": report}
    if params.get("dest"):
        # Check mode writes nothing, not even the build folder; --diff shows the file's change.
        written = manifests.write(objects, params["dest"], check_mode)
        result["changed"] = written["changed"]
        if want_diff and written["changed"]:
            result["diff"] = {"before": written["before"] or "", "after": written["after"],
                              "before_header": params["dest"], "after_header": params["dest"]}
    return result


def main_for(module, objects_of) -> None:
    """The whole body of a set module's main(): errors become fail_json with every detail."""
    with reported(module, invocation=invocation(module.params)):
        result = run(module, objects_of(module.params))
    module.exit_json(invocation=invocation(module.params), **result)


def invocation(params: dict) -> dict:
    """The echo of the module's arguments, without the object list.

    Ansible echoes every argument back; for a set of 1,000 objects that doubles the result,
    costs the module and the controller ~0.2 s and fills AWX's job events. The objects are in
    ``results`` (identity) and ``diff`` (content, redacted) already."""
    args = dict(params)
    if isinstance(args.get("objects"), list):
        args["objects"] = f"{len(args['objects'])} declared (see results)"
    return {"module_args": args}
