//go:build tools

// Package tools records the helm command as a dependency so that
// `go mod tidy` keeps go.sum complete for `go build` of it. Never compiled
// into anything: the build tag excludes it.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
