//go:build tools

// kube-router: only its NetworkPolicy firewall controller runs in the testbed (one per node
// namespace), the real enforcer the roles' policies and the analyzer are held to.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
