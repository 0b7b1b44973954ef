"""The shared shape and value checks every scenario plan runs first."""

from __future__ import annotations

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks


@pytest.mark.parametrize("value, ok", [
    ("30s", True), ("5m", True), ("1h30m", True), ("15d", True), ("500ms", True), ("1y2w3d4h5m6s7ms", True),
    ("5 minutes", False), ("5", False), ("", False), ("30m1h", False), ("1.5h", False), (300, False), (None, False)])
def test_prometheus_durations_as_prometheus_parses_them(value, ok):
    out: list[str] = []
    checks.prometheus_duration(value, "x.for", out)
    assert (out == []) is ok, out


def test_a_mapping_refuses_keys_it_does_not_know_and_names_the_closest():
    schema = ("list", {"name!": "str", "retries": ("opt", {"attempts": "int"})})
    out: list[str] = []
    checks.shape([{"name": "a", "retry": {}}, {"name": "b", "retries": {"attempts": 2, "perTry": 1}}], schema, "svc", out)
    assert out == ["svc[0].retry is not a key of svc[0] (did you mean retries?)",
                   "svc[1].retries.perTry is not a key of svc[1].retries (known: attempts)"]


def test_an_open_mapping_lets_other_keys_in():
    out: list[str] = []
    checks.shape({"kind": "Deployment", "apiVersion": "apps/v1"}, {"*": "any", "kind!": "str"}, "w", out)
    assert out == []


def test_proof_summary_counts_findings_by_kind_and_says_the_first():
    from ansible_collections.k8snet.fabric.plugins.filter.netpol import proof_summary

    loop = {"results": [{"findings": [{"kind": "peer-matches-nothing", "message": "a"}]},
                        {"findings": [{"kind": "not-isolated", "message": "b"}, {"kind": "peer-matches-nothing", "message": "c"},
                                      {"kind": "peer-matches-nothing", "message": "d"}]}]}
    out = proof_summary(loop, "build/x/report", shown=2)
    assert out["findings"] == 4 and out["kinds"] == {"peer-matches-nothing": 3, "not-isolated": 1}
    assert out["text"] == ("4 finding(s) (1 not-isolated, 3 peer-matches-nothing): peer-matches-nothing: a; "
                           "not-isolated: b; ... - reports in build/x/report")
    assert proof_summary({"findings": []})["text"] == "no findings"


def test_host_port_names_the_field_for_each_way_it_is_wrong():
    out: list[str] = []
    assert checks.host_port("otel.obs.svc:4317", "f", "<host>:<port>", "e.g. a.b:1", out) == ("otel.obs.svc", 4317)
    assert out == []
    assert checks.host_port("otel.obs.svc", "f", "<host>:<port>", "e.g. a.b:1", out) is None
    assert checks.host_port("Bad_Host:80", "f", "<host>:<port>", "e.g. a.b:1", out) is None
    assert checks.host_port("a.b:70000", "f", "<host>:<port>", "e.g. a.b:1", out) is None
    assert out[0] == "f: 'otel.obs.svc' is not <host>:<port> (e.g. a.b:1)"
    assert out[1].startswith("f (Bad_Host): 'Bad_Host'") and out[2] == "f: 70000 is not a port (1-65535)"


@pytest.mark.parametrize("renew, days, zero_means_never, ok", [
    (30, 365, False, True), (0, 365, False, False), (0, 365, True, True), (365, 365, False, False),
    (-1, 365, True, False), (True, 365, False, False), ("30", 365, False, False)])
def test_a_renewal_window_is_inside_the_lifetime(renew, days, zero_means_never, ok):
    out: list[str] = []
    checks.renewal_window(renew, days, "x.renew_days", out, zero_means_never=zero_means_never)
    assert (out == []) is ok, out
    if not ok:
        lower = "0 (never) or more" if zero_means_never else "above 0"
        assert out == [f"x.renew_days: {renew!r} must be {lower} and fewer than days ({days}): "
                       "every run would renew what it just made"]


def test_require_raises_what_a_check_appends_and_nothing_when_it_passes():
    from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

    checks.require(checks.renewal_window, 30, 365, "renew_days")
    with pytest.raises(ValidationError) as caught:
        checks.require(checks.renewal_window, 30, 30, "renew_days", days_name="token_days")
    assert str(caught.value) == ("renew_days: 30 must be above 0 and fewer than token_days (30): "
                                 "every run would renew what it just made")
