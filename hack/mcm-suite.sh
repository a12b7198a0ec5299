#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# `make mcm-suite`: MCM's own provider integration suite (pkg/test/integration/common
# of the MCM version pinned in hack/mcm-suite/go.mod), run against this provider as a
# provider repository runs it, on the local cluster (a running one is used and left
# running; otherwise two clusters are started and stopped again).
#
# MCM's framework fixes some paths relative to its test package
# (hack/mcm-suite/controller): it runs `make start` in the repository root (our
# controller) and in dev/mcm (MCM from its source, with `go run`), applies
# dev/mcm/kubernetes/crds, reads .ci/controllers-test/machine-class-patch.json and
# writes the controllers' logs to .ci/controllers-test/logs/. This script provides
# them: dev/mcm is a copy of MCM's module source (from the Go module cache, kept in
# ~/.cache/mcm-provider-local) made a git repository, as the framework checks.
#
# The framework stops "its" controllers by command-line prefix, machine-wide (every
# `machine-controller --control-kubeconfig…`, `make --directory=../../..`, …). So the
# suite runs in a PID namespace of its own (unshare), where it sees only its own
# processes, and everything in it ends when the suite ends.
#
# Environment: GINKGO_ARGS (default -ginkgo.v), e.g. "-ginkgo.focus=deployment".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="$ROOT/hack/mcm-suite"
cd "$ROOT"
log() { echo "mcm-suite: $*" >&2; }
die() { echo "mcm-suite: error: $*" >&2; exit 1; }
command -v go >/dev/null || die "go is not installed"
command -v unshare >/dev/null || die "unshare (util-linux) is not installed"
unshare --user --map-root-user --pid --fork --mount-proc true ||
  die "cannot make a PID namespace (unshare --user --pid); the suite would kill other checkouts' controllers"
begin=$SECONDS

started=""
if [[ ! -f .local/clusters ]]; then
  started=yes
  trap 'hack/cluster-down.sh' EXIT
  CLUSTERS="${CLUSTERS:-2}" hack/cluster-up.sh
else
  hack/cluster-up.sh
fi

# MCM's source tree at dev/mcm, unless one is there already (MCM's docs say to clone it there).
version="$(cd "$SUITE" && go list -m -f '{{.Version}}' github.com/gardener/machine-controller-manager)"
if [[ -e dev/mcm ]] && [[ ! -L dev/mcm ]]; then
  log "using the MCM source tree already at dev/mcm"
else
  src="${XDG_CACHE_HOME:-$HOME/.cache}/mcm-provider-local/mcm-source-$version"
  if [[ ! -d "$src/.git" ]]; then
    module="$(cd "$SUITE" && go mod download -json "github.com/gardener/machine-controller-manager@$version" |
      sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    [[ -d "$module" ]] || die "go mod download gave no source directory for MCM $version"
    rm -rf "$src.tmp"
    cp -r "$module" "$src.tmp"
    chmod -R u+w "$src.tmp"
    git -C "$src.tmp" init -q
    mv "$src.tmp" "$src"
  fi
  mkdir -p dev
  ln -sfn "$src" dev/mcm
fi

# Only a label: our providerSpec has no tags field to patch, as cloud providers' have.
mkdir -p .ci/controllers-test/logs
echo '{"metadata":{"labels":{"mcm-integration-test":"true"}}}' >.ci/controllers-test/machine-class-patch.json

# Built before the clock of the first spec starts: our controller (what `make start`
# runs) and MCM's packages (what its `make start` compiles with `go run`).
log "building the controller and MCM"
cargo build --locked --release --bin machine-controller
(cd dev/mcm && go build -o /dev/null ./cmd/machine-controller-manager)

export CONTROL_KUBECONFIG="$ROOT/.local/control.kubeconfig"
export TARGET_KUBECONFIG="$ROOT/.local/target.kubeconfig"
export CONTROL_CLUSTER_NAMESPACE=default
export MACHINECLASS_V1="$SUITE/test-mc-v1.yaml"
export MACHINECLASS_V2="$SUITE/test-mc-v2.yaml"
# Not a Gardener seed, no images: the framework runs both controllers locally and
# applies (and at the end deletes) MCM's CRDs itself.
unset IS_CONTROL_CLUSTER_SEED MACHINE_CONTROLLER_MANAGER_DEPLOYMENT_NAME MCM_IMAGE MC_IMAGE \
  TAGS_ARE_STRINGS TARGET_CLUSTER_NAME GNA_SECRET_NAME PRESERVE_CRD_AT_END IS_VIRTUAL_PROVIDER

log "running the suite (controllers' logs: .ci/controllers-test/logs/)"
read -r -a ginkgo_args <<<"${GINKGO_ARGS:--ginkgo.v}"
rc=0
(cd "$SUITE/controller" &&
  unshare --user --map-root-user --pid --fork --mount-proc -- \
    go test -v -count=1 -timeout 60m . -args "${ginkgo_args[@]}") || rc=$?

if [[ -z "$started" ]]; then
  # The framework deleted MCM's CRDs at its end; the cluster stays up, so they come back.
  bin="$(hack/tools.sh 2>/dev/null | tail -n1)"
  "$bin/kubectl" --kubeconfig "$CONTROL_KUBECONFIG" apply --server-side \
    --field-manager cluster-up -f "$bin/mcm-crds/" >/dev/null
fi
log "finished in $((SECONDS - begin))s (exit $rc)"
exit "$rc"
