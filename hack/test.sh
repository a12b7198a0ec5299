#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# Runs every test (unit and integration). Integration tests need the local cluster:
# a cluster that is already up is used and left running; otherwise one is started
# (two clusters, control and target, the more demanding setup) and stopped again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

started=""
if [[ ! -f .local/clusters ]]; then
  started=yes
  trap 'hack/cluster-down.sh' EXIT
  CLUSTERS="${CLUSTERS:-2}" hack/cluster-up.sh
else
  # Restarts a cluster whose processes died; a healthy one is left as it is.
  hack/cluster-up.sh
fi

# Unit and integration tests; the benchmark (`make bench`) is not a test.
# TEST_TARGETS narrows the run (`make chaos` uses `--test it` and the filter `chaos::`).
read -r -a targets <<<"${TEST_TARGETS:---workspace --lib --bins --tests}"
cargo test --locked "${targets[@]}" "$@"
if [[ -n "$started" ]]; then
  echo "test: stopping the cluster this run started"
fi
