# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health-gated global DNS records, shared by the roles that spread an application over sites
(locations of a hybrid cloud, clusters of a federation): which sites serve, and the external-dns
DNSEndpoint (externaldns.k8s.io/v1alpha1) that publishes them."""

from __future__ import annotations

import re

RECORD_POLICIES = ("failover", "weighted")
SERVING_ANNOTATION = "fabric.k8snet.io/serving-sites"
# Route 53's geolocation continent codes (aws/geolocation-continent-code); two letters otherwise
# name a country.
CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")


def tiers(sites: list[dict]) -> list[list[dict]]:
    """Sites grouped by priority, best (lowest) first."""
    return [[s for s in sites if s.get("priority", 1) == p] for p in sorted({s.get("priority", 1) for s in sites})]


def route53_problems(sites: list[dict], routing: str, where: dict, plural: str, kind: str) -> list[str]:
    """What Route 53 routing needs of the sites (clusters, locations), each named by ``where``
    (site name -> its variable path); ``plural`` names the list, ``kind`` one of its entries."""
    out: list[str] = []
    if routing == "failover":
        levels = tiers(sites)
        if len(sites) != 2 or len(levels) != 2:
            out.append(f"{plural}: Route 53 failover is one PRIMARY and one SECONDARY record: two {kind}s "
                       f"of different priority are needed (have {len(sites)} in {len(levels)} priority tiers)")
        elif not levels[0][0].get("health_check_id"):
            out.append(f"{where[levels[0][0]['name']]}.health_check_id: Route 53 fails over from the PRIMARY only "
                       "when a health check is attached to it")
    for site in sites:
        if routing == "latency" and not AWS_REGION.match(str(site.get("region", ""))):
            out.append(f"{where[site['name']]}.region: {site.get('region')!r} is not an AWS region (us-east-1); "
                       "latency routing needs one")
        geo = str(site.get("geo", ""))
        if routing == "geolocation" and not (geo == "*" or geo in CONTINENTS or re.match(r"^[A-Z]{2}$", geo)):
            out.append(f"{where[site['name']]}.geo: {site.get('geo')!r} is not a continent code ({', '.join(CONTINENTS)}), "
                       "a two-letter country code or '*'")
    if routing == "geolocation" and len({site.get("geo") for site in sites}) < len(sites):
        out.append(f"{plural}: two {kind}s have the same geo; Route 53 answers a location with one record")
    if routing == "geolocation" and not any(str(site.get("geo")) == "*" for site in sites):
        out.append(f"{plural}: Route 53 geolocation answers only the locations listed "
                   f"({', '.join(str(site.get('geo')) for site in sites)}); clients anywhere else get no answer - "
                   f"give one {kind} geo: '*' (the default record)")
    return out


def serving(sites: list[dict], healthy: dict | None) -> list[dict]:
    """Sites ({name, endpoints, priority, weight}) whose endpoints serve: the healthy ones (all,
    when no health was checked) of the best priority tier; lower numbers first, as in SRV."""
    candidates = []
    for site in sites:
        endpoints = [e for e in site.get("endpoints") or [] if healthy is None or healthy.get(str(e), False)]
        if endpoints:
            candidates.append({**site, "endpoints": endpoints})
    if not candidates:
        return []
    best = min(site.get("priority", 1) for site in candidates)
    return [site for site in candidates if site.get("priority", 1) == best]


def dns_endpoint(name: str, namespace: str, dns_name: str, sites: list[dict], policy: str = "failover",
                 ttl: int = 60) -> dict:
    """failover: one A record with every serving endpoint; weighted: one record per site with a
    set identifier and Route 53's aws/weight (providers without weights ignore it)."""
    if policy == "weighted":
        endpoints = [{"dnsName": dns_name, "recordType": "A", "recordTTL": ttl, "setIdentifier": site["name"],
                      "targets": [str(e) for e in site["endpoints"]],
                      "providerSpecific": [{"name": "aws/weight", "value": str(site.get("weight", 1))}]}
                     for site in sites]
    else:
        endpoints = [{"dnsName": dns_name, "recordType": "A", "recordTTL": ttl,
                      "targets": sorted({str(e) for site in sites for e in site["endpoints"]})}]
    return {"apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {SERVING_ANNOTATION: ",".join(site["name"] for site in sites)}},
            "spec": {"endpoints": endpoints}}


def route53_endpoint(name: str, namespace: str, dns_name: str, sites: list[dict], routing: str, ttl: int = 60) -> dict:
    """Every site's record, each with a set identifier and the Route 53 routing external-dns passes on
    (its AWS provider's property names): failover PRIMARY/SECONDARY with the primary's health check,
    weighted (aws/weight), latency (aws/region) or geolocation (aws/geolocation-*). Route 53 checks
    health and answers; nothing waits for a playbook run."""
    best = min(site.get("priority", 1) for site in sites)
    endpoints = []
    for site in sites:
        props: list[dict] = []
        if routing == "failover":
            props.append({"name": "aws/failover", "value": "PRIMARY" if site.get("priority", 1) == best else "SECONDARY"})
        elif routing == "weighted":
            props.append({"name": "aws/weight", "value": str(site.get("weight", 1))})
        elif routing == "latency":
            props.append({"name": "aws/region", "value": site["region"]})
        elif routing == "geolocation":
            geo = site["geo"]
            key = "continent" if geo in CONTINENTS else "country"
            props.append({"name": f"aws/geolocation-{key}-code", "value": geo})
        if site.get("health_check_id"):
            props.append({"name": "aws/health-check-id", "value": site["health_check_id"]})
        endpoints.append({"dnsName": dns_name, "recordType": "A", "recordTTL": ttl, "setIdentifier": site["name"],
                          "targets": [str(e) for e in site["endpoints"]], "providerSpecific": props})
    return {"apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"endpoints": endpoints}}
