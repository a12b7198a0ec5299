// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//go:build tools

// Package tools only pins upstream binaries; `make tools` builds them.
package tools

import (
	_ "github.com/gardener/gardener/cmd/machine-controller-manager-provider-local"
)
