// CoreDNS built with the plugins Kubernetes distributions' Corefiles use (kubeadm, k3s, AKS:
// errors, health, ready, kubernetes, prometheus, forward, cache, loop, reload, loadbalance,
// hosts); etcd, the zone external-dns's coredns provider writes; bind, file, rewrite, template,
// log and whoami for test stubs; tls for a DNS over TLS resolver stub. Building CoreDNS as a
// library with an explicit directive list is CoreDNS's documented way to choose plugins; the
// list keeps upstream plugin.cfg order, which decides how a request passes through them.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/etcd"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/tls"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func init() {
	dnsserver.Directives = []string{"tls", "reload", "bind", "ready", "health", "prometheus", "errors", "log",
		"loadbalance", "cache", "rewrite", "template", "hosts", "kubernetes", "file", "etcd", "loop", "forward", "whoami"}
}

func main() { coremain.Run() }
