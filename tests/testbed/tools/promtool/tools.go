//go:build tools

// promtool: Prometheus's own checker for the rule groups the roles emit.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
