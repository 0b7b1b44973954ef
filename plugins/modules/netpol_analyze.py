#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netpol_analyze
short_description: Prove what Kubernetes NetworkPolicies allow, offline or on a live cluster
version_added: 0.1.0
description:
  - Computes, for every pair of workloads and for external IP ranges, exactly which protocols
    and ports the NetworkPolicies allow, following the Kubernetes semantics (peers,
    selectors, policyTypes defaulting, per-direction isolation, additive policies, ipBlock
    with except, named ports resolved per destination pod, endPort ranges, TCP default).
  - Inputs are manifests (O(objects), O(src)), a live cluster (O(from_cluster)), or both
    (what-if - the live state with O(proposed) objects replacing or joining it).
  - Workloads are Pods and the controllers that template them (Deployment, StatefulSet,
    DaemonSet, ReplicaSet, Job, CronJob); live pods stand for their controller.
  - Out of scope - host-network pods (reported as a finding, not analysed), node-to-pod
    traffic, and pod IPs inside ipBlocks (ipBlock peers are treated as external addresses).
  - Fails when an O(expect) entry is violated, listing every violation.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  objects:
    description: Namespaces, workloads and NetworkPolicies as mappings.
    type: list
    elements: dict
  src:
    description:
      - "Manifest files or directories to read objects from. Kubernetes lists are read as their
        items - C(kind: List) and the API's typed lists (C(PodList), C(NetworkPolicyList), ...,
        whose items carry no kind) - so C(kubectl get -o yaml) output and raw API dumps work."
      - Files in a directory that are not Kubernetes YAML (values files, kustomizations) are
        skipped with a warning; a file named here directly must be Kubernetes.
    type: list
    elements: path
  from_cluster:
    description: Read Namespaces, NetworkPolicies and Pods from the cluster the connection options name.
    type: bool
    default: false
  namespaces:
    description: With O(from_cluster), only these namespaces.
    type: list
    elements: str
  proposed:
    description: Objects that replace (same kind, namespace, name) or join the live ones (what-if).
    type: list
    elements: dict
  host_network:
    description:
      - C(exclude) leaves hostNetwork pods out (policies do not apply to them) and reports each as
        a C(host-network) finding; C(include) analyses them as ordinary pods, as np-guard's
        netpol-analyzer does.
    type: str
    choices: [exclude, include]
    default: exclude
  ipblock_pods:
    description:
      - Whether an C(ipBlock) admits the pods whose addresses it holds. The API leaves this to
        the implementation.
      - C(address) (the default) models iptables/nftables enforcers (kube-router, Calico,
        kube-network-policies), which match the packet's address; measured against kube-router's
        firewall on real packets in this collection's tests.
      - C(identity) models identity-based enforcers (Cilium), where ipBlocks mean addresses
        outside the cluster.
      - Pods have addresses only when read live (O(from_cluster)); for manifests both agree. An
        C(ipblock-holds-pods) finding names every ipBlock whose meaning depends on this.
    type: str
    choices: [address, identity]
    default: address
  range_names:
    description:
      - What address ranges are to the reader (C(internet), an on-prem location, another cluster's
        pods). A reported range inside one is labelled C(first-last (name)) - the most specific
        name wins - and adjacent ranges of different names are never merged.
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: The range's name in reports., type: str, required: true}
      cidr: {description: The range., type: str, required: true}
      except: {description: Parts of the range the name does not cover., type: list, elements: str, default: []}
  title:
    description: The HTML report's title (scenario and cluster, for instance).
    type: str
    default: ""
  pod_cidrs:
    description:
      - The clusters' pod ranges. An ipBlock that shares addresses with one gets an
        C(ipblock-holds-pods) finding even before any pod runs (rendered manifests).
    type: list
    elements: str
    default: []
  stand_ins:
    description:
      - Workloads (usually Pods) that join the analysis only where no workload of the other inputs
        in their namespace carries all their labels - what an application's plan says will run,
        for the parts not deployed yet. The ones used are returned in RV(stand_ins_used).
    type: list
    elements: dict
    default: []
  output_format:
    description: Report formats; C(txt) is np-guard's line format (src => dst, then the connections).
    type: list
    elements: str
    choices: [txt, json, csv, md, dot, mermaid, html]
    default: [txt]
  dest:
    description:
      - Folder to write C(connlist.<format>) files into; without it the reports are returned.
      - The line formats (C(txt), C(csv), C(md)) of a full list are written as a stream, never held
        in memory whole; a file whose bytes would not change is not rewritten.
    type: path
  detail:
    description:
      - C(full) lists every allowed connection between workloads and address ranges.
      - C(grouped) folds the list to one row per source, destination and connections, where a side
        is a namespace's workloads (C(ns/*)) or an address range, with the number of workload pairs
        the row stands for (RV(groups)). Reports then show those rows.
      - C(auto) is C(full) up to 10,000 connections and C(grouped) above - a dense cluster of
        thousands of workloads allows millions of pairs.
      - Expectations and findings are answered from the classes either way; above 10,000
        connections cross-environment findings name namespace pairs, not workload pairs.
    type: str
    choices: [auto, full, grouped]
    default: auto
  expect:
    description:
      - "Flows that must be allowed or denied. Each has C(src) and C(dst) (C(ns/name),
        C(ns/name[Kind]), an IP address, or a selector C({namespace: ns, pods: {labels}}) - or
        C(namespaces: {labels}) - that stands for every workload it matches and fails when it
        matches none), optional C(protocol) (TCP) and C(port), C(allowed) (default true), and
        C(why), the sentence a violation message starts with. Without a port, any connection counts."
    type: list
    elements: dict
  fail_on_findings:
    description: Finding kinds that fail the task (for example C(no-dns-egress)).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Reads only; files in O(dest) are not written in check mode.
requirements:
  - PyYAML
"""

EXAMPLES = r"""
- name: Prove the e-commerce segmentation from the rendered manifests
  k8snet.fabric.netpol_analyze:
    src: build/ecommerce/
    output_format: [txt, html]
    dest: build/ecommerce/report
    expect:
      - {src: 0.0.0.0, dst: ecommerce-prod/frontend, port: 80}
      - {src: ecommerce-prod/frontend, dst: ecommerce-prod/database, port: 5432, allowed: false}
      - src: {namespace: monitoring, pods: {app.kubernetes.io/name: prometheus}}
        dst: {namespace: ecommerce-prod, pods: {app: api}}
        port: 9090
        why: Prometheus scrapes the api's metrics

- name: What would this policy change on the live cluster?
  k8snet.fabric.netpol_analyze:
    from_cluster: true
    context: us-east
    proposed: "{{ lookup('file', 'new-policy.yaml') | from_yaml_all | list }}"
"""

RETURN = r"""
connections:
  description: Every allowed connection, sorted.
  returned: when the full list is reported (O(detail)); with O(dest), only up to 10,000 connections - the files carry longer lists
  type: list
  elements: dict
  sample: [{src: "ecommerce/api[Deployment]", dst: "ecommerce/database[Deployment]", conn: "TCP 5432"}]
groups:
  description:
    - The connections folded to namespaces - per source, destination (C(ns/*) or an address range)
      and connections, the number of workload pairs (C(pairs)), sorted.
  returned: always
  type: list
  elements: dict
  sample: [{src: "ecommerce/*", dst: "ecommerce/*", conn: "TCP 5432", pairs: 1}]
findings:
  description: Problems found (kind, message and where), for example C(no-dns-egress), C(not-isolated),
    C(policy-selects-nothing), C(peer-matches-nothing), C(rule-shadowed), C(named-port-unresolved),
    C(cross-environment), C(host-network), C(service-port-blocked) (a Service in the input sends to a
    pod port that no policy admits, as the chapter's LoadBalancer 443 -> 8443 beside a policy on 443),
    C(ipblock-holds-pods) and C(ipblock-holds-some-pods) (what an ipBlock over pod addresses allows
    depends on the enforcer; the analysis names the model it used).
  returned: always
  type: list
  elements: dict
violations:
  description: Violated expectations, in words.
  returned: always
  type: list
  elements: str
reports:
  description: Report text per format.
  returned: when dest is not set
  type: dict
paths:
  description: Report file per format.
  returned: when dest is set
  type: dict
stand_ins_used:
  description: The O(stand_ins) that joined the analysis (C(ns/name)); the others were live.
  returned: always
  type: list
  elements: str
summary:
  description:
    - Counts of workloads, label classes, source and destination classes (workloads that behave
      alike as a source or as a destination), policies, connections, groups, findings and violations,
      and the C(detail) reported (C(full) or C(grouped)).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import CONNECTION_ARGSPEC, Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import runner


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(type="list", elements="dict"),
            src=dict(type="list", elements="path"),
            from_cluster=dict(type="bool", default=False),
            namespaces=dict(type="list", elements="str"),
            proposed=dict(type="list", elements="dict"),
            stand_ins=dict(type="list", elements="dict", default=[]),
            host_network=dict(type="str", choices=["exclude", "include"], default="exclude"),
            ipblock_pods=dict(type="str", choices=["address", "identity"], default="address"),
            pod_cidrs=dict(type="list", elements="str", default=[]),
            range_names=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True), cidr=dict(type="str", required=True),
                **{"except": dict(type="list", elements="str", default=[])})),
            title=dict(type="str", default=""),
            output_format=dict(type="list", elements="str", default=["txt"],
                               choices=["txt", "json", "csv", "md", "dot", "mermaid", "html"]),
            dest=dict(type="path"),
            detail=dict(type="str", choices=list(runner.DETAILS), default="auto"),
            expect=dict(type="list", elements="dict"),
            fail_on_findings=dict(type="list", elements="str", default=[]),
            **CONNECTION_ARGSPEC,
        ),
        supports_check_mode=True,
    )
    params = module.params
    with reported(module):
        skipped: list[str] = []
        objects = list(params["objects"] or []) + manifests.load(params["src"] or [], warnings=skipped)
        for warning in skipped:
            module.warn(warning)
        if params["from_cluster"]:
            with Client(params) as client:
                objects = runner.live_objects(client, params["namespaces"]) + objects
        objects = runner.overlay(objects, params["proposed"] or [])
        objects, stand_ins_used = runner.with_stand_ins(objects, params["stand_ins"])
        result = runner.analyse(objects, params["output_format"], params["expect"] or [],
                                None if module.check_mode else params["dest"],
                                include_host_network=params["host_network"] == "include", detail=params["detail"],
                                ipblock_pods=params["ipblock_pods"], pod_cidrs=params["pod_cidrs"],
                                range_names=params["range_names"], title=params["title"])
        result["stand_ins_used"] = stand_ins_used
    failing = [f for f in result["findings"] if f["kind"] in params["fail_on_findings"]]
    if result["violations"] or failing:
        module.fail_json(msg="network policy expectations violated:\n- " + "\n- ".join(
            result["violations"] + [f"{f['kind']}: {f['message']}" for f in failing]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
