//go:build tools

// Package tools pins the upstream main packages built by ../../build.sh.
package tools

import (
	_ "github.com/grafana/pyroscope/cmd/pyroscope"
)
