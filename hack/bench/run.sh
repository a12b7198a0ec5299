#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# `make bench`: the benchmark on the local cluster. A cluster that is already up is
# used and left running (its kubelet stand-in's join delay is shown in the header);
# otherwise one cluster (control = target: less CPU than two on a small machine) is
# started with a release build of the stand-in, and stopped again at the end. Its
# join delay is 10s when gardener's Go peer runs too (its driver takes a Node that
# registers before its 5 s Pod poll returned for a stale one), else 0; both
# controllers run on the same cluster, so with the same delay. BENCH_JOIN_DELAY
# overrides it. `cargo bench -p mcm-bench --bench machines` runs the release build
# of the controller, then the peer, as child processes (hack/bench/src/lib.rs
# lists the BENCH_* settings).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# Release builds of the controller and of the kubelet stand-in (which plays every
# machine's kubelet, so its CPU is part of what is measured).
cargo build --locked --release -p machine-controller-manager-provider-local -p kubelet-standin --bins
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$target_dir" = /* ]] || target_dir="$ROOT/$target_dir"

# The Go peer where hack/tools.sh links it (the benchmark looks in the same place).
peer="${BENCH_PEER_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/mcm-provider-local/tools/current/machine-controller-manager-provider-local}"
join_delay=0s
if [[ "${BENCH_PEER:-1}" != 0 && -f "$peer" ]]; then
  join_delay=10s
fi
join_delay="${BENCH_JOIN_DELAY:-$join_delay}"
BENCH_N="${BENCH_N:-100,1000}"

# Host nodes for the largest N: each takes 2000 machine Pods (hack/cluster-up.sh).
largest=0
for n in ${BENCH_N//,/ }; do
  ((n > largest)) && largest=$n
done
host_nodes=$(((${largest:-0} + 1999) / 2000))
((host_nodes >= 2)) || host_nodes=2
# kwok renews every Node's Lease every quarter of its duration. Up to 3000 machines
# the lease is a kubelet's 40 s (10 s renewals: 300 a second at N=3000); beyond, it
# is N/25 seconds, so that renewals stay at 100 a second (at N=10000: 400 s, a Node
# NotReady 400 s after its last renewal). Renewals are not the controller's work and
# the report leaves them out, but at 1000 a second they would take most of the API
# server's 2 cores.
node_lease=40
((largest <= 3000)) || node_lease=$((largest / 25))

if [[ ! -f .local/clusters ]]; then
  trap 'echo "bench: stopping the cluster this run started" >&2; hack/cluster-down.sh' EXIT
  CLUSTERS=1 HOST_NODES="$host_nodes" NODE_LEASE_SECONDS="$node_lease" STANDIN_JOIN_DELAY="$join_delay" STANDIN_BIN="$target_dir/release/kubelet-standin" hack/cluster-up.sh
else
  # Restarts a cluster whose processes died; a healthy one is left as it is.
  hack/cluster-up.sh
fi

# The commit in the header, marked when the controller's sources differ from it.
if [[ -z "${BENCH_GIT:-}" ]] && git rev-parse --git-dir >/dev/null 2>&1; then
  BENCH_GIT="$(git rev-parse --short HEAD)"
  git diff --quiet HEAD -- src Cargo.toml Cargo.lock || BENCH_GIT+=" with uncommitted changes in src/"
fi
BENCH_GIT="${BENCH_GIT:-}" cargo bench --locked -p mcm-bench --bench machines
