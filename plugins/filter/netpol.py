# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""netpol_connectivity: the analyzer offline, as a filter (documented in netpol_connectivity.yml);
proof_summary: what a run's proofs found, in one line and as data (proof_summary.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import runner


def netpol_connectivity(objects, output_format="list"):
    if not isinstance(objects, list):
        raise AnsibleFilterError(f"netpol_connectivity: expected a list of objects, got {type(objects).__name__}")
    try:
        if output_format == "list":
            return runner.analyse(objects, [], [], detail="full")["connections"]
        return runner.analyse(objects, [output_format], [], detail="full")["reports"][output_format]
    except ValidationError as exc:
        raise AnsibleFilterError(f"netpol_connectivity: {exc}") from exc


def proof_summary(results, reports="", shown=3):
    """netpol_analyze results (one, or a loop's registered results) -> findings counted by kind,
    the first ``shown`` in words, the reports' place, and a sentence for the run's closing line."""
    if isinstance(results, dict):
        results = results.get("results", [results])
    if not isinstance(results, list):
        raise AnsibleFilterError(f"proof_summary: expected netpol_analyze results, got {type(results).__name__}")
    findings = [f for r in results if isinstance(r, dict) for f in r.get("findings") or []]
    kinds: dict = {}
    for finding in findings:
        kinds[finding.get("kind")] = kinds.get(finding.get("kind"), 0) + 1
    first = [f"{f.get('kind')}: {f.get('message')}" for f in findings[:shown]]
    text = (f"{len(findings)} finding(s) ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}): "
            + "; ".join(first) + ("; ..." if len(findings) > shown else "")) if findings else "no findings"
    if reports:
        text += f" - reports in {reports}"
    return {"findings": len(findings), "kinds": kinds, "first": first, "reports": reports, "text": text}


class FilterModule:
    def filters(self):
        return {"netpol_connectivity": netpol_connectivity, "proof_summary": proof_summary}
