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
  CONTROL_KUBECONFIG="$ROOT/.local/control.kubeconfig"
  TARGET_KUBECONFIG="$ROOT/.local/target.kubeconfig"
  CONTROL_NAMESPACE=default
  # One replica on a laptop: no lease to wait for.
  export LEADER_ELECT="${LEADER_ELECT:-false}"
  # The local cloud's cloud-wide profile (README, "Simulating a cloud"): edit it at
  # any time; the kubelet stand-in reads the same directory for zone outages.
  export CLOUD_PROFILE="${CLOUD_PROFILE:-$ROOT/.local/cloud-profiles/cloud.json}"
fi
# The kubeconfigs and the namespace go on the command line, as MCM's integration
# framework expects to find them (`machine-controller --control-kubeconfig=...`).
flags=()
[[ -n "${CONTROL_KUBECONFIG:-}" ]] && flags+=("--control-kubeconfig=$CONTROL_KUBECONFIG")
[[ -n "${TARGET_KUBECONFIG:-}" ]] && flags+=("--target-kubeconfig=$TARGET_KUBECONFIG")
[[ -n "${CONTROL_NAMESPACE:-}" ]] && flags+=("--namespace=$CONTROL_NAMESPACE")
cargo build --locked --release --bin machine-controller
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$target_dir" = /* ]] || target_dir="$ROOT/$target_dir"
# shellcheck disable=SC2086 # ARGS is a list of flags
exec "$target_dir/release/machine-controller" "${flags[@]}" ${ARGS:-}
