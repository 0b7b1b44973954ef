# The front door. `make edge` runs the main job on the embedded default inventory;
# `make test` sets everything up and runs every test against the real testbed.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.stamp

.PHONY: setup sysdeps edge test unit dataplane-property testbed testbed-up testbed-down build-collection bench bench-large bench-fleet bench-hosts bench-clusters bench-dense bench-dataplane clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@command -v python3.11 >/dev/null || command -v python3 >/dev/null || { echo "python3 (3.11) is required"; exit 1; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

# The main job: render every edge site of inventories/local under build/edge/.
edge: setup
	$(VENV)/bin/ansible-playbook playbooks/edge.yml

# Debian packages the tests use (needs root, as CI has): sshd for the edge test hosts; iptables,
# ipset, iproute2 and util-linux (nsenter, unshare) for the data plane's namespaces and kube-router;
# strongSwan (charon with kernel-libipsec, swanctl) and wireguard-tools (wg, wg-quick) for the
# gateways that run the roles' tunnel files. Without recommended packages: they brought a kernel
# image (for wireguard's module, which the tests replace with wireguard-go) and a systemd upgrade.
SYSDEPS := /usr/sbin/sshd:openssh-server /usr/sbin/iptables:iptables /usr/sbin/ipset:ipset \
           /usr/sbin/ip:iproute2 /usr/bin/nsenter:util-linux /usr/sbin/sysctl:procps \
           /usr/sbin/swanctl:strongswan-swanctl /usr/lib/ipsec/charon:strongswan-charon \
           /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so:libcharon-extra-plugins \
           /usr/bin/wg-quick:wireguard-tools
sysdeps:
	@missing=""; for dep in $(SYSDEPS); do test -e "$${dep%%:*}" || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

# Build etcd, kube-apiserver and kubectl from the pinned Go module (cached until the pin
# changes) and fetch the upstream CRDs.
testbed: setup sysdeps
	@command -v go >/dev/null || { echo "Go >= 1.26 is required to build the testbed"; exit 1; }
	$(PY) -m tests.testbed build

testbed-up: testbed
	$(PY) -m tests.testbed up

testbed-down:
	$(PY) -m tests.testbed down

# Every test: unit, testbed integration and molecule scenarios, in one pytest run.
test: testbed
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

# The analyzer against the kernel on many more generated clusters than the suite runs
# (random seeds; a disagreement prints its seed: add it to REGRESSIONS in the test).
dataplane-property: testbed
	K8SNET_PROPERTY_EXAMPLES=$${EXAMPLES:-300} K8SNET_PROPERTY_RANDOM=1 $(PY) -m pytest -p no:cacheprovider \
		tests/integration/test_netpol_dataplane.py -k kernel_agrees $(PYTEST_ARGS)

build-collection: setup
	$(VENV)/bin/ansible-galaxy collection build --force --output-path build/

clean: testbed-down
	rm -rf build .cache/testbed/run

# Benchmarks against named peers (see bench/*.py); prints ratios measured in the same run.
bench: testbed
	$(PY) -m bench.converge --sizes 100,1000 --repeat 3
	$(PY) -m bench.netpol

# 10,000 objects, the three tools once each (about ten minutes here).
bench-large: testbed
	$(PY) -m bench.converge --sizes 10000 --repeat 1

# Dense random clusters (issue 14's shape at 4,000 workloads): the analyzer's full list and grouped
# report against np-guard on the same YAML (np-guard takes minutes at 4,000).
bench-dense: testbed
	$(PY) -m bench.netpol --sizes "" --dense 1000:250:20,4000:1000:80

# Render fleets of 1 to 1,000 generated edge sites, the one-pass render against the per-host plays.
bench-fleet: setup
	$(PY) -m bench.fleet --sizes 1,10,100,1000

# Install K3s's files on 20 SSH test hosts (apply mode, host part): round trips and time per host,
# against the collection before host_files (an earlier git revision), measured in the same run.
bench-hosts: testbed
	$(PY) -m bench.edge_hosts --hosts 20

# The data plane at 100 pods: up, the probe matrix and policy-to-kernel time, against kwok's pod
# start, netpol_analyze on the same pairs and the apiserver's write (bench/dataplane.py).
bench-dataplane: testbed
	$(PY) -m bench.dataplane --pods 100 --repeat 3

# One scenario (hybrid.yml) converged on the testbed's three clusters, forks 1 against forks 3.
bench-clusters: testbed
	$(PY) -m bench.clusters --repeat 3
