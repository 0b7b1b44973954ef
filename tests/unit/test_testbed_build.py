"""The testbed build tries a Go command again when the module proxy could not be reached."""

from __future__ import annotations

import pytest

from tests.testbed import build


@pytest.fixture
def flaky_go(tmp_path, monkeypatch):
    """A `go` on PATH that fails on the network ``failures`` times, then prints "built"."""
    counter = tmp_path / "calls"

    def make(failures: int, message: str = "dial tcp: lookup proxy.golang.org: i/o timeout"):
        script = tmp_path / "go"
        script.write_text(f"""#!/bin/sh
n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
if [ $n -le {failures} ]; then echo "go: downloading x: {message}" >&2; exit 1; fi
echo built
""")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
        monkeypatch.setattr(build, "RETRY_PAUSES", (0, 0, 0))
        return lambda: int(counter.read_text())
    return make


def test_a_network_error_is_tried_again(flaky_go, tmp_path):
    calls = flaky_go(2)
    seen = []
    assert build._run(["go", "build", "./..."], tmp_path, log=seen.append) == "built\n"
    assert calls() == 3 and len(seen) == 2 and "i/o timeout" in seen[0]


def test_retries_are_bounded(flaky_go, tmp_path):
    calls = flaky_go(10, "TLS handshake timeout")
    with pytest.raises(build.BuildError, match="TLS handshake timeout"):
        build._run(["go", "mod", "download"], tmp_path, log=lambda _m: None)
    assert calls() == 1 + len(build.RETRY_PAUSES)


def test_a_real_failure_is_not_retried(flaky_go, tmp_path):
    calls = flaky_go(10, "undefined: foo")
    with pytest.raises(build.BuildError, match="undefined: foo"):
        build._run(["go", "build"], tmp_path, log=lambda _m: None)
    assert calls() == 1


@pytest.mark.parametrize("project, tools", [("metallb", ("metallb-controller", "metallb-speaker")),
                                            ("external-dns", ("external-dns",)),
                                            ("envoy-gateway", ("envoy-gateway",))])
def test_controller_binaries_and_their_crds_are_one_pin(project, tools):
    """The controllers the data plane runs are built at the version whose CRDs (and manifests)
    the testbed installs (tools/<project>/go.mod against versions.CRD_SOURCES)."""
    from tests.testbed.versions import CRD_SOURCES

    source = next(source for source in CRD_SOURCES if source.project == project)
    for tool in tools:
        assert build._required_version(build.GO_TOOLS[tool][0], source.module) == source.version
