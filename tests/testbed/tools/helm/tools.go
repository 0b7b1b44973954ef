//go:build tools

// helm: renders the upstream charts of the controllers that publish no release manifest in
// their module (Envoy Gateway's install.yaml is `helm template` of its chart at release time;
// external-dns ships only a chart), as a user renders them into an air-gap bundle.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
