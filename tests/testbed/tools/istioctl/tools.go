//go:build tools

// istioctl: `analyze` over what istio_mesh renders and `manifest generate` over its install file.
package tools

import _ "istio.io/istio/istioctl/cmd/istioctl"
