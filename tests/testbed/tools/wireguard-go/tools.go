//go:build tools

// wireguard-go: WireGuard in user space, which wg-quick falls back to on a kernel without the
// WireGuard module (this machine's); the tunnel tests run the role's wg-quick files with it.
package tools

import _ "golang.zx2c4.com/wireguard"
