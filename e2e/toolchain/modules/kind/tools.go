//go:build tools

// Package tools pins the upstream main packages built by ../../build.sh.
package tools

import (
	_ "sigs.k8s.io/kind"
)
