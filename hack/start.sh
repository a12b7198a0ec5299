#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# `make start`: the controller in the foreground. Without CONTROL_KUBECONFIG,
# TARGET_KUBECONFIG and CONTROL_NAMESPACE it runs on the local cluster, bringing it
# up first if needed. Extra flags: `make start ARGS="--v=4"`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ -z "${CONTROL_KUBECONFIG:-}${TARGET_KUBECONFIG:-}${CONTROL_NAMESPACE:-}" ]]; then
  hack/install-deps.sh
  hack/cluster-up.sh
  export CONTROL_KUBECONFIG="$ROOT/.local/control.kubeconfig"
  export TARGET_KUBECONFIG="$ROOT/.local/target.kubeconfig"
  export CONTROL_NAMESPACE=default
  # One replica on a laptop: no lease to wait for.
  export LEADER_ELECT="${LEADER_ELECT:-false}"
fi
# shellcheck disable=SC2086 # ARGS is a list of flags
exec cargo run --locked --release --bin machine-controller -- ${ARGS:-}
