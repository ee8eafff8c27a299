//go:build tools

// Package tools records the promtool command as a dependency so that
// `go mod tidy` keeps go.sum complete for `go build` of it. Never compiled
// into anything: the build tag excludes it.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
