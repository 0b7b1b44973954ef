//go:build tools

// Envoy Gateway's control plane: it accepts or rejects the Gateways, HTTPRoutes and
// BackendTrafficPolicies ecommerce_net writes and reports it in their status. One pin for the
// binary and its CRDs (versions.py). No Envoy data plane runs on the testbed.
package tools

import (
	_ "github.com/envoyproxy/gateway/cmd/envoy-gateway"
)
