//go:build tools

// kwok keeps the testbed's registered Nodes Ready and moves scheduled Pods to Running with
// IPs from their node's podCIDR: nodes and pods without kubelets or a container runtime.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
