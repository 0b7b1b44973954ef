"""The k8snet.fabric testbed: real etcd and kube-apiservers on loopback for the tests."""

from .harness import Testbed, TestbedError, context_name  # noqa: F401
from .versions import CLUSTERS  # noqa: F401
