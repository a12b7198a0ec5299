#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# Builds the local cluster's upstream binaries from the Go modules pinned under
# hack/tools/*, into a cache outside the repository keyed by the pinned version,
# and prints the directory that holds them. Already built binaries are skipped.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/mcm-provider-local/tools"
export GOFLAGS=-mod=mod
export CGO_ENABLED=0

log() { echo "tools: $*" >&2; }

command -v go >/dev/null || { log "error: go is not installed (needed once per pinned version)"; exit 1; }

# Two builds at once (make test in two checkouts, or cluster-up while make tools runs)
# would compete for the same output files; the second waits and then finds all cached.
mkdir -p "$cache"
exec 9>"$cache/.lock"
if ! flock -n 9; then
  log "another build holds $cache/.lock; waiting for it"
  flock 9
fi

# version MODULE_DIR MODULE -> the version pinned in that tools module
version() { (cd "$root/hack/tools/$1" && go list -m -f '{{.Version}}' "$2"); }

# build MODULE_DIR OUT_DIR PACKAGE [LDFLAGS]
build() {
  local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
  local name; name="$(basename "$pkg")"
  [[ "$name" == v3 ]] && name=etcd
  if [[ -x "$out/$name" ]]; then
    log "$name: cached in $out"
    return
  fi
  log "$name: building $pkg (a fresh build takes minutes on 2 cores)"
  local start=$SECONDS
  mkdir -p "$out"
  (cd "$root/hack/tools/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  log "$name: built in $((SECONDS - start))s"
}

k8s="$(version kubernetes k8s.io/kubernetes)"
etcd="$(version etcd go.etcd.io/etcd/server/v3)"
kwok="$(version kwok sigs.k8s.io/kwok)"
mcm="$(version mcm github.com/gardener/machine-controller-manager)"
gardener="$(version gardener github.com/gardener/gardener)"

# `kubectl version` and the API server report the pinned version, as a release build would.
minor="${k8s#v1.}"; minor="${minor%%.*}"
kver=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kver+=" -X '$pkg.gitVersion=$k8s' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor' -X '$pkg.gitTreeState=clean'"
done

for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kubernetes "$cache/kubernetes-$k8s" "k8s.io/kubernetes/cmd/$c" "$kver"
done
build etcd "$cache/etcd-$etcd" go.etcd.io/etcd/server/v3
build kwok "$cache/kwok-$kwok" sigs.k8s.io/kwok/cmd/kwok
build mcm "$cache/mcm-$mcm" github.com/gardener/machine-controller-manager/cmd/machine-controller-manager
# gardener's Go driver for provider local, the peer this project replaces (hack/tools/gardener/README.md).
build gardener "$cache/gardener-$gardener" github.com/gardener/gardener/cmd/machine-controller-manager-provider-local

# The same peer with its driver client given --kube-api-qps/--kube-api-burst (the
# bench's tuned Go peer): gardener's main.go with kube-api-rate.patch applied, built
# in a copy of the pinned module so that every other package is gardener's own.
build_tuned() {
  local out="$cache/gardener-$gardener-tuned" name=machine-controller-manager-provider-local
  local patch="$root/hack/tools/gardener/kube-api-rate.patch"
  local stamp; stamp="$(sha256sum "$patch" | cut -c1-12)"
  if [[ -x "$out/$name" && -f "$out/.patch-$stamp" ]]; then
    log "$name (tuned): cached in $out"
    return
  fi
  log "$name (tuned): building gardener's main.go with $(basename "$patch")"
  local start=$SECONDS work src
  src="$(cd "$root/hack/tools/gardener" && go list -m -f '{{.Dir}}' github.com/gardener/gardener)"
  work="$(mktemp -d)"
  cp "$root/hack/tools/gardener/go.mod" "$root/hack/tools/gardener/go.sum" "$work/"
  mkdir -p "$work/cmd/machine-controller-manager-provider-local"
  cp "$src/cmd/machine-controller-manager-provider-local/main.go" "$work/cmd/machine-controller-manager-provider-local/"
  chmod -R u+w "$work"
  (cd "$work" && patch -s -p1 <"$patch")
  rm -rf "$out"; mkdir -p "$out"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$out/$name.tmp" ./cmd/machine-controller-manager-provider-local)
  mv "$out/$name.tmp" "$out/$name"
  touch "$out/.patch-$stamp"
  rm -rf "$work"
  log "$name (tuned): built in $((SECONDS - start))s"
}
build_tuned

# One directory of symlinks for the scripts, always pointing at the pinned versions.
bin="$cache/current"
mkdir -p "$bin"
for f in "$cache/kubernetes-$k8s"/* "$cache/etcd-$etcd/etcd" "$cache/kwok-$kwok/kwok" \
         "$cache/mcm-$mcm/machine-controller-manager" \
         "$cache/gardener-$gardener/machine-controller-manager-provider-local"; do
  ln -sf "$f" "$bin/$(basename "$f")"
done
ln -sf "$cache/gardener-$gardener-tuned/machine-controller-manager-provider-local" \
  "$bin/machine-controller-manager-provider-local-tuned"
# The CRDs come from the pinned MCM module, not from a copy in this repository.
crds="$(cd "$root/hack/tools/mcm" && go list -m -f '{{.Dir}}' github.com/gardener/machine-controller-manager)/kubernetes/crds"
ln -sfn "$crds" "$bin/mcm-crds"
echo "$bin"
