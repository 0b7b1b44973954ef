"""Shared fixtures. Cluster tests use the real testbed; it never falls back to a fake."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))

# The checkers the testbed builds (promtool, istioctl, kwok...) are on PATH for every playbook
# and molecule run, as they would be on a controller that has them: roles then use them.
_TOOLS = Path(os.environ.get("K8SNET_TESTBED_CACHE", REPO / ".cache" / "testbed")) / "tools"
os.environ["PATH"] = f"{_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def checker():
    """The path of one of the ecosystem checkers, built from its pin if needed."""
    from tests.testbed import build

    return lambda name: str(build.build_tool(name))


@pytest.fixture(scope="session")
def testbed():
    """Three real apiservers. Reuses a running testbed; stops it at the end only if it
    started it here. A testbed that cannot start is an error, never a skip."""
    from tests.testbed import Testbed

    bed = Testbed()
    started_here = not bed.is_up()
    bed.up()
    yield bed
    if started_here and not os.environ.get("K8SNET_TESTBED_KEEP"):
        bed.down()


@pytest.fixture(scope="module")
def dataplane(testbed, request):
    """Real packets on the testbed's clusters (tests/testbed/dataplane.py): node namespaces with
    kube-router's firewall, pods as namespaces after each ``sync()``. One per test module, so
    the enforcers do not follow the rest of the suite's objects. A module that sets
    ``DATAPLANE_SERVICES = True`` gets kube-proxy and the clusters' DNS too."""
    from tests.testbed.dataplane import DataPlane

    plane = DataPlane(testbed, services=getattr(request.module, "DATAPLANE_SERVICES", False))
    plane.up()
    yield plane
    failures = plane.enforcer_failures()
    plane.down(quiet=True)
    assert not failures, "kube-router failed to update rules:\n" + "\n".join(failures)


@pytest.fixture(scope="module")
def fresh_cluster(testbed):
    """A cluster with no CRD at all, as a user first meets one (Testbed.fresh_cluster), for one
    test module; gone with its processes afterwards."""
    with testbed.fresh_cluster() as name:
        yield name


@pytest.fixture(scope="session")
def controller_bundle(tmp_path_factory):
    """The air-gap bundle of upstream release manifests with its sha256sum.txt (bundle.py)."""
    from tests.testbed.bundle import write_addons

    return write_addons(tmp_path_factory.mktemp("addons"))


@pytest.fixture
def namespace_name():
    """A fresh namespace name per test, so tests never see each other's objects."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def installed_collection(tmp_path_factory):
    """The collection as users get it: built tarball, installed read-only outside the checkout."""
    from tests.helpers import install_collection, writable_again

    installed = install_collection(tmp_path_factory.mktemp("installed"))
    yield installed
    writable_again(installed)
