"""The one error tail of the modules (errors.reported) and the one way filters report (plugin_utils.filters)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.filter.edge_k3s import edge_k3s_host_files, edge_k3s_plan
from ansible_collections.k8snet.fabric.plugins.filter.ipplan import ip_conflicts, ip_valid
from ansible_collections.k8snet.fabric.plugins.filter.istio_mesh import istio_authz_verdicts
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import SetError
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ApiError, ValidationError, reported


class Failed(Exception):
    """What AnsibleModule.fail_json does: stop the module (here with the fields it was given)."""


class RecordingModule:
    def fail_json(self, **fields):
        raise Failed(fields)


def failure(raised, **options) -> dict:
    with pytest.raises(Failed) as caught:
        with reported(RecordingModule(), **options):
            raise raised
    return caught.value.args[0]


def test_an_engine_error_fails_with_its_message_and_details():
    fields = failure(ApiError(403, "Forbidden", "secrets is forbidden"), prefix="eu-west: ")
    assert fields == {"msg": "eu-west: secrets is forbidden", "status": 403, "reason": "Forbidden"}


def test_a_set_run_fails_with_what_happened_to_every_object_and_the_extra_fields():
    results = [{"kind": "Service", "name": "web", "result": "failed"}]
    fields = failure(SetError("1 of 1 objects failed", results), invocation={"module_args": {}})
    assert fields == {"msg": "1 of 1 objects failed", "results": results, "invocation": {"module_args": {}}}


def test_a_file_the_host_refuses_is_named_with_the_reason():
    fields = failure(FileNotFoundError(2, "No such file or directory", "/etc/rancher/k3s/config.yaml"),
                     prefix="host_files: ")
    assert fields == {"msg": "host_files: /etc/rancher/k3s/config.yaml: No such file or directory"}


def test_a_bug_stays_a_traceback():
    with pytest.raises(KeyError):
        with reported(RecordingModule()):
            raise KeyError("name")


def test_nothing_raised_nothing_failed():
    with reported(RecordingModule()):
        value = 1
    assert value == 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ip_conflicts(["10.0.0.0/8"]), "ip_conflicts: expected a mapping of name to range, got list"),
    (lambda: ip_valid("10.0.0.0/33", "pod_cidr"), "ip_valid: pod_cidr"),
    (lambda: edge_k3s_host_files({"name": "plant-1", "hosts": [{"name": "a"}]}, "b", "k3s", "", ""),
     "edge_k3s_host_files: host 'b' is not part of site 'plant-1'"),
    (lambda: edge_k3s_host_files({"name": "plant-1", "hosts": []}, "a", "k3s-server", "", ""),
     "edge_k3s_host_files: unit 'k3s-server' is not k3s or k3s-agent"),
    (lambda: edge_k3s_plan("plant-1"), "edge_k3s_plan: expected the site mapping built by the edge_k3s role"),
    (lambda: istio_authz_verdicts([], [{"from": "shop/web", "to": "payments"}]),
     "istio_authz_verdicts: expect[0].to: 'payments' is not namespace/workload"),
    (lambda: istio_authz_verdicts([], [{"from": "web", "to": "shop/payments"}]),
     "istio_authz_verdicts: expect[0].from: 'web' must be namespace/serviceaccount"),
])
def test_a_filter_names_itself_and_the_bad_value(call, message):
    with pytest.raises(AnsibleFilterError) as caught:
        call()
    assert str(caught.value).startswith(message)
    assert str(caught.value).count(message.split(": ", 1)[1]) == 1  # said once, not again from the cause


def test_a_filter_keeps_its_name_for_ansible_doc_and_jinja():
    assert ip_valid.__name__ == "ip_valid" and "canonical form" in ip_valid.__doc__
    assert ip_valid("10.0.0.0/8") == "10.0.0.0/8"


def test_validation_error_is_an_engine_error():
    fields = failure(ValidationError("renew_days: 0 must be above 0"))
    assert fields == {"msg": "renew_days: 0 must be above 0"}
