//go:build tools

// MetalLB: its controller assigns LoadBalancer addresses from the IPAddressPools the roles
// write, and its speaker (one per node namespace, L2 mode) answers ARP for them on a LAN.
// One pin for the binaries and the CRDs and manifests the testbed installs (versions.py: one version for all three).
package tools

import (
	_ "go.universe.tf/metallb/controller"
	_ "go.universe.tf/metallb/speaker"
)
