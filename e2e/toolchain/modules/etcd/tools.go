//go:build tools

// Package tools pins the upstream main packages built by ../../build.sh.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "go.etcd.io/etcd/etcdctl/v3"
)
