//go:build tools

// Package tools only pins upstream binaries; `make tools` builds them.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
