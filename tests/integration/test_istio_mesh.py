"""istio_mesh on the testbed's us-east apiserver, whose Istio CRDs (istio.io/api) validate every
object the role writes."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509

from tests.helpers import recap, run_testbed_playbook

pytestmark = pytest.mark.testbed
CLUSTER = "us-east"


@pytest.fixture(scope="module", autouse=True)
def istio_root(testbed):
    """What istioctl install leaves behind that the role builds on: the root namespace."""
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", allow=(409,),
                                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})


def mesh_vars(namespace, create=True, **extra):
    out = {"istio_mesh_namespaces": [{"name": namespace, "create": create}],
           "istio_mesh_services": [{
               "name": "api", "namespace": namespace, "port": 8080,
               "versions": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
               "routes": [{"match": {"headers": {"user-type": {"exact": "premium"}}}, "split": {"v2": 90, "v1": 10}},
                          {"split": {"v1": 100}}],
               "allow": [{"from": f"{namespace}/web", "methods": ["GET", "POST"]}]}],
           "istio_mesh_gateway": {"enabled": True, "name": f"gw-{namespace}", "namespace": "istio-system",
                                  "hosts": ["api.example.com"], "tls_secret": "api-tls", "routes_to": "api"}}
    out.update(extra)
    return out


def run_role(tmp_path, extra_vars, *args):
    return run_testbed_playbook(tmp_path, "mesh.yml", extra_vars, *args)


def get(testbed, path):
    return testbed.client(CLUSTER).request("GET", path, allow=(404,))


def test_converge_idempotence_check_mode_and_prune(testbed, tmp_path, namespace_name):
    first = run_role(tmp_path, mesh_vars(namespace_name))
    assert first.returncode == 0, first.stdout[-4000:]
    # The closing line names the output folder and what istioctl analyze found (on PATH here).
    closing = " ".join(first.stdout.split())
    assert "output under" in closing and "istioctl analyze: 0 finding(s)" in closing, closing[-2000:]
    vs = get(testbed, f"/apis/networking.istio.io/v1/namespaces/{namespace_name}/virtualservices/api")
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [90, 10]
    assert vs["spec"]["gateways"] == ["mesh", f"istio-system/gw-{namespace_name}"]
    callers = get(testbed, f"/apis/security.istio.io/v1/namespaces/{namespace_name}/authorizationpolicies/api-callers")
    assert callers["spec"]["rules"][0]["to"] == [{"operation": {"methods": ["GET", "POST"]}}]
    assert get(testbed, f"/api/v1/namespaces/{namespace_name}")["metadata"]["labels"]["istio-injection"] == "enabled"
    # The gateway's certificate is generated for its hosts and served from the Secret it names.
    secret = get(testbed, "/api/v1/namespaces/istio-system/secrets/api-tls")
    assert secret["type"] == "kubernetes.io/tls"
    served = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["api.example.com"]
    assert "BEGIN" not in first.stdout, "key material in the output"

    mark = testbed.audit_mark(CLUSTER)
    again = run_role(tmp_path, mesh_vars(namespace_name))
    assert recap(again.stdout)["changed"] == 0 and testbed.writes(CLUSTER, since=mark) == []

    no_gateway = mesh_vars(namespace_name, istio_mesh_gateway={"enabled": False})
    checked = run_role(tmp_path, no_gateway, "--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert recap(checked.stdout)["changed"] > 0 and testbed.writes(CLUSTER, since=mark) == []

    pruned = run_role(tmp_path, no_gateway)
    assert pruned.returncode == 0, pruned.stdout[-4000:]
    assert get(testbed, f"/apis/networking.istio.io/v1/namespaces/istio-system/gateways/gw-{namespace_name}") is None
    assert get(testbed, "/api/v1/namespaces/istio-system/secrets/api-tls") is None, "the gateway's Secret went with it"
    vs = get(testbed, f"/apis/networking.istio.io/v1/namespaces/{namespace_name}/virtualservices/api")
    assert "gateways" not in vs["spec"] and vs["spec"]["hosts"] == [f"api.{namespace_name}.svc.cluster.local"]


def test_an_application_namespace_is_labelled_never_owned(testbed, tmp_path, namespace_name):
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name, "labels": {"team": "payments"}}})
    result = run_role(tmp_path, mesh_vars(namespace_name, create=False))
    assert result.returncode == 0, result.stdout[-4000:]
    labels = get(testbed, f"/api/v1/namespaces/{namespace_name}")["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled" and labels["team"] == "payments"
    # Taking the namespace out of the mesh prunes the Istio objects, never the namespace.
    result = run_role(tmp_path, {"istio_mesh_namespaces": [], "istio_mesh_services": [],
                                 "istio_mesh_gateway": {"enabled": False}})
    assert result.returncode == 0, result.stdout[-4000:]
    assert get(testbed, f"/apis/networking.istio.io/v1/namespaces/{namespace_name}/virtualservices/api") is None
    assert not get(testbed, f"/api/v1/namespaces/{namespace_name}")["metadata"].get("deletionTimestamp")


def test_bad_routes_fail_before_any_write(testbed, tmp_path, namespace_name):
    bad = mesh_vars(namespace_name)
    bad["istio_mesh_services"][0]["routes"][0]["split"] = {"v2": 90, "v3": 20}
    mark = testbed.audit_mark(CLUSTER)
    result = run_role(tmp_path, bad)
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "istio_mesh_services[0].routes[0].split: version 'v3' is not one of the service's versions (v1, v2)" in output
    assert "weights add up to 110, not 100" in output
    assert testbed.writes(CLUSTER, since=mark) == []


def test_a_plan_whose_authorization_proof_fails_writes_nothing(testbed, tmp_path, namespace_name):
    """The proof runs over the plan before any write: an expectation the policies deny fails the
    run with nothing live (it used to run after Converge, over what was already applied)."""
    bad = mesh_vars(namespace_name, istio_mesh_expect=[
        {"from": f"{namespace_name}/intruder", "to": f"{namespace_name}/api", "method": "GET", "allowed": True}])
    mark = testbed.audit_mark(CLUSTER)
    result = run_role(tmp_path, bad)
    assert result.returncode != 0
    assert (f"{namespace_name}/intruder -> {namespace_name}/api GET /: expected allowed, denied"
            in " ".join(result.stdout.split())), result.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
    assert get(testbed, f"/api/v1/namespaces/{namespace_name}") is None


def test_gateway_api_ingress_converges_and_is_idempotent(testbed, tmp_path, namespace_name):
    """The Gateway API path (Istio's recommended ingress) against the testbed's upstream
    gateway.networking.k8s.io CRDs (v1.6.3 standard channel)."""
    gateway = {"enabled": True, "api": "gateway-api", "name": f"gw-{namespace_name}", "namespace": "istio-system",
               "hosts": ["api.example.com"], "tls_secret": "api-tls", "routes_to": "api"}
    first = run_role(tmp_path, mesh_vars(namespace_name, istio_mesh_gateway=gateway))
    assert first.returncode == 0, first.stdout[-4000:]
    gw = get(testbed, f"/apis/gateway.networking.k8s.io/v1/namespaces/istio-system/gateways/gw-{namespace_name}")
    assert gw["spec"]["gatewayClassName"] == "istio"
    assert gw["spec"]["listeners"][0]["tls"]["certificateRefs"] == [{"group": "", "kind": "Secret", "name": "api-tls"}]
    route = get(testbed, f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace_name}/httproutes/api")
    assert route["spec"]["parentRefs"][0]["name"] == f"gw-{namespace_name}"
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "api"
    assert get(testbed, f"/apis/networking.istio.io/v1/namespaces/istio-system/gateways/gw-{namespace_name}") is None
    mark = testbed.audit_mark(CLUSTER)
    again = run_role(tmp_path, mesh_vars(namespace_name, istio_mesh_gateway=gateway))
    assert recap(again.stdout)["changed"] == 0 and testbed.writes(CLUSTER, since=mark) == []


def test_cert_manager_takes_over_the_gateways_certificate(testbed, tmp_path, namespace_name):
    """Mode cert-manager: the role writes a Certificate (accepted by cert-manager's CRD) for the
    gateway's hosts into the Secret the gateway reads, and prunes the pair it generated before -
    the Secret is cert-manager's now. No cert-manager controller runs here: issuing is not tested."""
    generated = run_role(tmp_path, mesh_vars(namespace_name))
    assert generated.returncode == 0, generated.stdout[-4000:]
    assert get(testbed, "/api/v1/namespaces/istio-system/secrets/api-tls")
    tls = {"mode": "cert-manager", "issuer": "ClusterIssuer/letsencrypt", "cert_file": str(tmp_path / "gw.crt"),
           "key_file": str(tmp_path / "gw.key"), "ca_cert_file": "", "ca_key_file": "", "days": 90, "warn_days": 30,
           "min_days": 7, "renew_days": 30}
    managed = mesh_vars(namespace_name, istio_mesh_gateway_tls=tls)
    result = run_role(tmp_path, managed)
    assert result.returncode == 0, result.stdout[-4000:]
    cert = get(testbed, "/apis/cert-manager.io/v1/namespaces/istio-system/certificates/api-tls")
    assert cert["spec"]["dnsNames"] == ["api.example.com"] and cert["spec"]["secretName"] == "api-tls"
    assert cert["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt"}
    assert get(testbed, "/api/v1/namespaces/istio-system/secrets/api-tls") is None
    mark = testbed.audit_mark(CLUSTER)
    again = run_role(tmp_path, managed)
    assert recap(again.stdout)["changed"] == 0 and testbed.writes(CLUSTER, since=mark) == []
    run_role(tmp_path, {"istio_mesh_namespaces": [], "istio_mesh_services": [], "istio_mesh_gateway": {"enabled": False}})
