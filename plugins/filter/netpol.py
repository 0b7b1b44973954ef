# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""netpol_connectivity: the analyzer offline, as a filter (documented in netpol_connectivity.yml);
proof_summary: what a run's proofs found, in one line and as data (proof_summary.yml)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import runner
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import expect_type, reporting


@reporting
def netpol_connectivity(objects, output_format="list"):
    expect_type(objects, list, "a list of objects")
    if output_format == "list":
        return runner.analyse(objects, [], [], detail="full")["connections"]
    return runner.analyse(objects, [output_format], [], detail="full")["reports"][output_format]


@reporting
def proof_summary(results, reports="", shown=3):
    """netpol_analyze results (one, or a loop's registered results) -> findings counted by kind,
    the first ``shown`` in words, the reports' place, and a sentence for the run's closing line."""
    if isinstance(results, dict):
        results = results.get("results", [results])
    findings = [f for r in expect_type(results, list, "netpol_analyze results") if isinstance(r, dict) for f in r.get("findings") or []]
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
