"""istio_mesh's plan and the AuthorizationPolicy evaluator, as pure data."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils import istio_authz
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import istio_mesh
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

SPEC = {
    "mtls": "STRICT", "namespaces": [{"name": "shop", "create": True}],
    "services": [{
        "name": "microservice", "namespace": "shop", "port": 8080,
        "versions": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
        "traffic_policy": {"load_balancer": "LEAST_REQUEST", "max_connections": 100, "max_pending_requests": 1024,
                           "outlier": {"consecutive_5xx": 5, "interval": "30s", "base_ejection_time": "30s"}},
        "routes": [{"match": {"headers": {"user-type": {"exact": "premium"}}}, "split": {"v2": 90, "v1": 10},
                    "fault": {"abort": {"percent": 1, "status": 503}}},
                   {"split": {"v1": 100}}],
        "timeout": "10s", "retries": {"attempts": 3, "per_try_timeout": "2s", "retry_on": "5xx"},
        "allow": [{"from": "shop/service-a", "methods": ["GET"], "paths": ["/api/v1/*"]}]}],
    "gateway": {"enabled": True, "name": "microservice-gateway", "hosts": ["microservice.example.com"],
                "routes_to": "microservice", "tls_secret": "microservice-tls"},
    "telemetry": {"access_logging": True, "tracing_sampling": 1.0},
}


def spec(**changes):
    out = copy.deepcopy(SPEC)
    out.update(changes)
    return out


def kinds(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_the_chapters_mesh_corrected():
    plan = istio_mesh.plan(spec())
    assert plan["problems"] == []
    objects = plan["objects"]
    assert {o["apiVersion"] for o in objects} == {
        "networking.istio.io/v1", "security.istio.io/v1", "telemetry.istio.io/v1", "monitoring.coreos.com/v1", "v1"}
    [dashboard] = kinds(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"] == {"grafana_dashboard": "1"}
    [rules] = kinds(objects, "PrometheusRule")
    exprs = [r["expr"] for r in rules["spec"]["groups"][0]["rules"]]
    assert exprs[0].startswith("histogram_quantile(0.95, sum by (le, destination_service) "
                               "(rate(istio_request_duration_milliseconds_bucket{")
    [dr] = kinds(objects, "DestinationRule")
    assert dr["spec"]["host"] == "microservice.shop.svc.cluster.local"
    assert dr["spec"]["subsets"] == [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]
    assert dr["spec"]["trafficPolicy"] == {
        "loadBalancer": {"simple": "LEAST_REQUEST"},
        "connectionPool": {"tcp": {"maxConnections": 100}, "http": {"http1MaxPendingRequests": 1024}},
        "outlierDetection": {"consecutive5xxErrors": 5, "interval": "30s", "baseEjectionTime": "30s"}}
    [vs] = kinds(objects, "VirtualService")
    assert vs["spec"]["hosts"] == ["microservice.shop.svc.cluster.local", "microservice.example.com"]
    assert vs["spec"]["gateways"] == ["mesh", "istio-system/microservice-gateway"]
    premium = vs["spec"]["http"][0]
    assert premium["match"] == [{"headers": {"user-type": {"exact": "premium"}}}]
    assert [(r["destination"]["subset"], r["weight"]) for r in premium["route"]] == [("v2", 90), ("v1", 10)]
    assert premium["fault"] == {"abort": {"percentage": {"value": 1.0}, "httpStatus": 503}}
    # Istio applies no timeout or retries to a route with fault injection: none are written there,
    # and the other routes keep theirs.
    assert "timeout" not in premium and "retries" not in premium
    assert "match" not in vs["spec"]["http"][1] and "fault" not in vs["spec"]["http"][1]
    assert vs["spec"]["http"][1]["timeout"] == "10s" and vs["spec"]["http"][1]["retries"]["attempts"] == 3
    [gateway] = kinds(objects, "Gateway")
    assert gateway["spec"]["servers"][0]["tls"] == {"mode": "SIMPLE", "credentialName": "microservice-tls"}
    assert gateway["spec"]["servers"][1]["tls"] == {"httpsRedirect": True}
    assert kinds(objects, "PeerAuthentication")[0]["spec"] == {"mtls": {"mode": "STRICT"}}
    assert plan["owned_namespaces"][0]["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert plan["labelled_namespaces"] == []


def test_install_file_has_no_removed_mtls_value():
    operator = istio_mesh.istio_operator(spec(install={"pilot_resources": {"requests": {"cpu": "500m"}}}))
    assert operator["spec"]["values"] == {"global": {"proxy": {"resources": {}}}}
    assert operator["spec"]["components"]["pilot"]["k8s"]["resources"] == {"requests": {"cpu": "500m"}}
    assert istio_mesh.istio_operator(spec(revision="1-32"))["spec"]["revision"] == "1-32"


def test_callers_and_the_gateway_are_the_only_ones_allowed_in():
    objects = istio_mesh.objects(spec())
    [callers] = [p for p in kinds(objects, "AuthorizationPolicy") if p["metadata"]["name"] == "microservice-callers"]
    assert callers["spec"]["rules"] == [
        {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/service-a"]}}],
         "to": [{"operation": {"methods": ["GET"], "paths": ["/api/v1/*"]}}]},
        {"from": [{"source": {"principals": ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}]}]
    verdicts = istio_authz.verdicts(objects, istio_mesh.expectations(spec()))
    # The chapter's rule: GET /api/v1/... from service-a in; another method, /admin, an undeclared
    # caller and a caller of another namespace out.
    assert [(v["from"], v["method"], v["path"], v["verdict"]) for v in verdicts] == [
        ("shop/service-a", "GET", "/api/v1/probe", True), ("shop/service-a", "HEAD", "/api/v1/probe", False),
        ("shop/service-a", "GET", "/admin", False), ("shop/undeclared-caller", "GET", "/api/v1/probe", False),
        ("k8snet-elsewhere/service-a", "GET", "/api/v1/probe", False)]
    assert all(v["holds"] for v in verdicts)


@pytest.mark.parametrize("change, message", [
    (lambda s: s["services"][0]["routes"][0].update(split={"v3": 90, "v1": 10}),
     "istio_mesh_services[0].routes[0].split: version 'v3' is not one of the service's versions (v1, v2)"),
    (lambda s: s["services"][0]["routes"][0].update(split={"v2": 90, "v1": 20}),
     "istio_mesh_services[0].routes[0].split: weights add up to 110, not 100"),
    (lambda s: s["services"][0]["traffic_policy"].update(load_balancer="LEAST_CONN"),
     "LEAST_CONN is deprecated in Istio; use LEAST_REQUEST"),
    (lambda s: s["services"][0]["routes"].reverse(),
     "istio_mesh_services[0].routes[0]: a route without match catches everything"),
    (lambda s: s["services"][0]["versions"].update(v2={"version": "v1"}),
     "istio_mesh_services[0].versions.v2: same labels as version 'v1'"),
    (lambda s: s["services"][0].update(timeout="10 seconds"), "istio_mesh_services[0].timeout: '10 seconds' is not a duration"),
    (lambda s: s["services"][0]["routes"][0]["fault"]["abort"].update(status=700),
     "istio_mesh_services[0].routes[0].fault.abort.status: 700 is not an HTTP status"),
    (lambda s: s["services"][0].update(fault={"delay": {"percent": 5, "fixed": "1s"}}),
     "istio_mesh_services[0].fault: fault injection belongs to the route it tests (routes[i].fault)"),
    (lambda s: s["services"][0]["routes"][0].update(timeout="3s"),
     "istio_mesh_services[0].routes[0]: timeout and fault on one route - Istio does not apply timeouts"),
    (lambda s: s["services"][0]["allow"][0].update(paths=["/api/*/orders"]),
     "istio_mesh_services[0].allow[0].paths: '/api/*/orders' must be an exact path (/x), a prefix (/x/*)"),
    (lambda s: s["services"][0]["allow"][0].update(path=["/x"]),
     "istio_mesh_services[0].allow[0].path is not a key of istio_mesh_services[0].allow[0] (did you mean paths?)"),
    # A typo in a service's key was silently ignored: retries would not be configured.
    (lambda s: s["services"][0].update(retry={"attempts": 3}),
     "istio_mesh_services[0].retry is not a key of istio_mesh_services[0] (did you mean retries?)"),
    (lambda s: s["services"][0]["allow"][0].update(ports=[70000]), "istio_mesh_services[0].allow[0].ports: 70000 is not a port"),
    (lambda s: s["services"][0]["allow"][0].update({"from": "service-a"}),
     "istio_mesh_services[0].allow[0].from: 'service-a' must be namespace/serviceaccount"),
    (lambda s: s["services"][0]["allow"][0].update(methods=["FETCH"]), "'FETCH' is not an HTTP method"),
    (lambda s: s["services"][0].update(namespace="other"), "'other' is not in istio_mesh_namespaces"),
    (lambda s: s["gateway"].update(routes_to="frontend"), "istio_mesh_gateway.routes_to: 'frontend' is not one of"),
    (lambda s: s.update(mtls="DISABLE"), "istio_mesh_mtls: 'DISABLE' is not one of STRICT, PERMISSIVE"),
    (lambda s: s["telemetry"].update(tracing_sampling=150), "istio_mesh_telemetry.tracing_sampling: 150"),
    (lambda s: s["telemetry"].update(tracing_collector="otel:4317"),
     "istio_mesh_telemetry.tracing_collector: 'otel' is not a fully qualified service name"),
    (lambda s: s["telemetry"].update(tracing_collector="otel.observability.svc.cluster.local"),
     "istio_mesh_telemetry.tracing_collector: 'otel.observability.svc.cluster.local' is not <service FQDN>:<port>"),
    (lambda s: s["telemetry"].update(tracing_collector="otel.observability.svc:70000"),
     "istio_mesh_telemetry.tracing_collector: 70000 is not a port"),
    (lambda s: s["telemetry"].update(tracing_collector="Obs/otel.example.com:4317"),
     "istio_mesh_telemetry.tracing_collector (Obs/otel.example.com:4317) namespace: 'Obs' must be a DNS label"),
])
def test_bad_values_are_named(change, message):
    bad = spec()
    change(bad)
    found = istio_mesh.plan(bad)["problems"]
    assert any(message in p for p in found), found


def policy(name, namespace, action="ALLOW", selector=None, rules=None):
    spec_ = {"action": action}
    if selector:
        spec_["selector"] = {"matchLabels": selector}
    if rules is not None:
        spec_["rules"] = rules
    return {"kind": "AuthorizationPolicy", "metadata": {"name": name, "namespace": namespace}, "spec": spec_}


def request(frm="cluster.local/ns/shop/sa/web", method="GET", path="/", to_namespace="shop", app="api"):
    return {"principal": frm, "namespace": frm.split("/ns/")[1].split("/")[0], "method": method, "path": path,
            "to_namespace": to_namespace, "to_labels": {"app": app}}


def test_istio_evaluation_order():
    allow_web = policy("allow-web", "shop", selector={"app": "api"},
                       rules=[{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/web"]}}]}])
    deny_delete = policy("no-delete", "istio-system", action="DENY", rules=[{"to": [{"operation": {"methods": ["DELETE"]}}]}])
    # No policy for the workload: allowed.
    assert istio_authz.authorize([], request()) == (True, "no ALLOW policy applies to the workload")
    # An ALLOW policy applies: only what it matches gets in.
    assert istio_authz.authorize([allow_web], request())[0] is True
    assert istio_authz.authorize([allow_web], request(frm="cluster.local/ns/shop/sa/other"))[0] is False
    # A policy selecting other workloads does not apply.
    assert istio_authz.authorize([allow_web], request(app="db"))[0] is True
    # DENY wins over ALLOW, and root-namespace policies apply everywhere.
    assert istio_authz.authorize([allow_web, deny_delete], request(method="DELETE")) == (False, "denied by istio-system/no-delete")
    # allow-nothing: an ALLOW policy without rules refuses everything.
    assert istio_authz.authorize([policy("allow-nothing", "shop")], request())[0] is False
    # A rule with neither from nor to matches every request.
    assert istio_authz.authorize([policy("all", "shop", rules=[{}])], request())[0] is True


@pytest.mark.parametrize("operation, method, path, allowed", [
    ({"paths": ["/api/*"]}, "GET", "/api/v1", True),
    ({"paths": ["/api/*"]}, "GET", "/admin", False),
    ({"paths": ["*.js"]}, "GET", "/app.js", True),
    ({"paths": ["*"]}, "GET", "/anything", True),
    ({"notMethods": ["DELETE"]}, "PUT", "/", True),
    ({"notMethods": ["DELETE"]}, "DELETE", "/", False),
    ({"methods": ["GET"], "notPaths": ["/private*"]}, "GET", "/private/x", False),
])
def test_string_matching(operation, method, path, allowed):
    rules = [{"to": [{"operation": operation}]}]
    assert istio_authz.authorize([policy("p", "shop", rules=rules)], request(method=method, path=path))[0] is allowed


def test_fields_it_cannot_evaluate_are_refused():
    rules = [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]
    with pytest.raises(ValidationError, match=r"source fields \['ipBlocks'\] are not evaluated"):
        istio_authz.authorize([policy("p", "shop", rules=rules)], request())
    with pytest.raises(ValidationError, match=r"rule fields \['when'\] are not evaluated"):
        istio_authz.authorize([policy("p", "shop", rules=[{"when": []}])], request())


def test_authorization_fields_as_istio_writes_them_and_evaluates_them():
    rule = {"namespaces": ["shop"], "not_methods": ["DELETE"], "paths": ["*.json"], "not_paths": ["/private.json"],
            "ports": [8080]}
    assert istio_mesh.authorization_rule(rule, "cluster.local") == {
        "from": [{"source": {"namespaces": ["shop"]}}],
        "to": [{"operation": {"notMethods": ["DELETE"], "paths": ["*.json"], "notPaths": ["/private.json"],
                              "ports": ["8080"]}}]}
    policy = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
              "metadata": {"name": "p", "namespace": "shop"},
              "spec": {"selector": {"matchLabels": {"app": "api"}}, "action": "ALLOW",
                       "rules": [istio_mesh.authorization_rule(rule, "cluster.local")]}}

    def allowed(namespace="shop", method="GET", path="/a.json", port=8080):
        return istio_authz.authorize([policy], {"principal": f"cluster.local/ns/{namespace}/sa/x", "namespace": namespace,
                                                "method": method, "path": path, "port": port, "to_namespace": "shop",
                                                "to_labels": {"app": "api"}})[0]
    assert allowed()
    assert not allowed(namespace="other") and not allowed(method="DELETE") and not allowed(path="/a.xml")
    assert not allowed(path="/private.json") and not allowed(port=9090)
    # Truth table of Istio's string match (its documentation: exact, prefix*, *suffix, *).
    for patterns, value, expected in ((["/a"], "/a", True), (["/a"], "/a/b", False), (["/a/*"], "/a/b", True),
                                      (["/a/*"], "/a", False), (["*.json"], "/x.json", True), (["*"], "/", True)):
        assert istio_authz.matches(patterns, value) is expected, (patterns, value)


def test_gateway_api_as_the_mesh_ingress():
    gateway = {**SPEC["gateway"], "api": "gateway-api", "namespace": "istio-ingress"}
    objects = istio_mesh.objects(spec(gateway=gateway))
    assert not [o for o in objects if o["apiVersion"] == "networking.istio.io/v1" and o["kind"] == "Gateway"]
    [gw] = [o for o in objects if o["apiVersion"] == "gateway.networking.k8s.io/v1" and o["kind"] == "Gateway"]
    assert gw["spec"]["gatewayClassName"] == "istio"
    https = gw["spec"]["listeners"][0]
    assert https["tls"] == {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "microservice-tls"}]}
    routes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "HTTPRoute"}
    assert routes["microservice-gateway-https-redirect"]["spec"]["rules"][0]["filters"][0]["requestRedirect"] == {
        "scheme": "https", "statusCode": 301}
    assert routes["microservice"]["spec"]["rules"][0]["backendRefs"] == [{"name": "microservice", "port": 8080}]
    [vs] = kinds(objects, "VirtualService")
    assert "gateways" not in vs["spec"], "the VirtualService governs mesh traffic only"
    [callers] = [p for p in kinds(objects, "AuthorizationPolicy") if p["metadata"]["name"] == "microservice-callers"]
    assert callers["spec"]["rules"][-1] == {"from": [{"source": {"principals": [
        "cluster.local/ns/istio-ingress/sa/microservice-gateway-istio"]}}]}
    assert istio_mesh.plan(spec(gateway={**gateway, "api": "nginx"}))["problems"] == [
        "istio_mesh_gateway.api: 'nginx' is not one of istio, gateway-api"]


def test_an_istioctl_install_is_pinned_to_a_revision():
    assert istio_mesh.plan(spec(istioctl_install=True))["problems"] == [
        "istio_mesh_istioctl_install: installs are pinned to a revision; set istio_mesh_revision (e.g. 1-30)"]
    assert istio_mesh.plan(spec(istioctl_install=True, revision="1-30"))["problems"] == []


def test_traces_go_to_the_collector_named_once_in_the_install_and_the_telemetry():
    """The collector becomes the install file's OpenTelemetry extension provider, and the mesh's
    Telemetry sends its sampled share to that provider by name; without one, the sampling
    applies to the mesh's default providers and the install file has none."""
    traced = spec()
    traced["telemetry"]["tracing_collector"] = "observability/otel-collector.observability.svc.cluster.local:4317"
    assert istio_mesh.plan(traced)["problems"] == []
    telemetry = next(o for o in istio_mesh.objects(traced) if o["kind"] == "Telemetry")
    assert telemetry["spec"]["tracing"] == [{"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 1.0}]
    mesh_config = istio_mesh.istio_operator(traced)["spec"]["meshConfig"]
    assert mesh_config["enableTracing"] is True and mesh_config["extensionProviders"] == [{
        "name": "otel-tracing",
        "opentelemetry": {"service": "observability/otel-collector.observability.svc.cluster.local", "port": 4317}}]

    untraced = spec()
    assert next(o for o in istio_mesh.objects(untraced) if o["kind"] == "Telemetry")["spec"]["tracing"] == [
        {"randomSamplingPercentage": 1.0}]
    assert "extensionProviders" not in istio_mesh.istio_operator(untraced)["spec"]["meshConfig"]


def test_cert_manager_issues_the_gateways_certificate_into_the_secret_it_reads():
    """Mode cert-manager: a Certificate for the gateway's hosts into its tls_secret, signed by
    the issuer named Kind/name, renewed renew_days before the end; bad issuers are named."""
    managed = spec()
    managed["gateway_tls"] = {"mode": "cert-manager", "issuer": "ClusterIssuer/letsencrypt", "days": 90, "renew_days": 30}
    plan = istio_mesh.plan(managed)
    assert plan["problems"] == []
    cert = next(o for o in plan["objects"] if o["kind"] == "Certificate")
    assert cert["metadata"] == {"name": managed["gateway"]["tls_secret"], "namespace": "istio-system"}
    assert cert["spec"]["secretName"] == managed["gateway"]["tls_secret"]
    assert cert["spec"]["dnsNames"] == managed["gateway"]["hosts"]
    assert cert["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt"}
    assert (cert["spec"]["duration"], cert["spec"]["renewBefore"]) == ("2160h", "720h")
    assert not any(o["kind"] == "Certificate" for o in istio_mesh.plan(spec())["objects"])
    cases = [("letsencrypt", 90, 30, "istio_mesh_gateway_tls.issuer: 'letsencrypt' is not Issuer/<name> or ClusterIssuer/<name>"),
             ("Issuer/Lets_Encrypt", 90, 30, "istio_mesh_gateway_tls.issuer: 'Issuer/Lets_Encrypt'"),
             ("Issuer/ca", 30, 30, "istio_mesh_gateway_tls.renew_days: 30 must be above 0 and fewer than days (30): every run would renew what it just made")]
    for issuer, days, renew, message in cases:
        bad = spec()
        bad["gateway_tls"] = {"mode": "cert-manager", "issuer": issuer, "days": days, "renew_days": renew}
        assert any(message in p for p in istio_mesh.plan(bad)["problems"]), istio_mesh.plan(bad)["problems"]
