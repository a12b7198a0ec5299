#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# Installs what this project needs and a fresh machine may lack: Debian packages for
# the local cluster scripts, the Rust components for `make verify`, and the local
# cluster's binaries (built from the Go modules pinned in hack/tools, cached).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
for tool in openssl curl jq make patch; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi

command -v go >/dev/null || { echo "install-deps: Go is required (go.dev toolchain on PATH)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "install-deps: Rust is required (rustup)" >&2; exit 1; }
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
fi

hack/tools.sh >/dev/null
