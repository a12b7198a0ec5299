//go:build tools

// Package tools only pins upstream binaries; `make tools` builds them.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
