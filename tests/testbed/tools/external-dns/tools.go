//go:build tools

// external-dns: publishes the DNSEndpoints the kubefed and hybrid_dns roles write. Its coredns
// provider writes SkyDNS records into an etcd that the testbed's CoreDNS (etcd plugin) serves.
// One pin for the binary and the DNSEndpoint CRD (versions.py; v0.23.0 needs Go 1.27).
package tools

import (
	_ "sigs.k8s.io/external-dns"
)
