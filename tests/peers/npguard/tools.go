//go:build tools

package peers

import _ "github.com/np-guard/netpol-analyzer/cmd/netpolicy"
