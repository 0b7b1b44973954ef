//go:build tools

// istioctl: `analyze` over what istio_mesh renders and `manifest generate` over its install file;
// pilot-discovery (istiod's discovery server, from the same module): the multi-cluster mesh's
// service registry over two testbed clusters.
package tools

import (
	_ "istio.io/istio/istioctl/cmd/istioctl"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
