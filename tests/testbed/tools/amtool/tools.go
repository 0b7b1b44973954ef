//go:build tools

// amtool: Alertmanager's own tool; `amtool config routes test` routes a labelled alert through
// the route tree the edge role writes, with Alertmanager's routing code.
package tools

import _ "github.com/prometheus/alertmanager/cmd/amtool"
