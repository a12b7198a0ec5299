#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
# shellcheck source-path=SCRIPTDIR
#
# Starts the local cluster from plain processes (no container engine needed): etcd,
# kube-apiserver, kube-controller-manager, and in the target cluster kube-scheduler,
# kwok (the kubelet of every Node) and the kubelet stand-in (which joins machines).
# Everything listens on 127.0.0.1 on ports picked at start, so several checkouts and
# CI jobs can run side by side. State lives in .local/; hack/cluster-down.sh removes it.
#
# CLUSTERS=1 (default): one cluster, "target", which is also the control cluster.
# CLUSTERS=2: two independent clusters, "control" (Machines) and "target" (Pods, Nodes).
# Without CLUSTERS a running cluster of either shape is accepted, and a dead one is
# restarted in its shape; with CLUSTERS a running cluster of the other shape is an error.
#
# Environment:
#   CLUSTERS            1 or 2
#   HOST_NODES          number of kwok host nodes for machine Pods (default 2)
#   NODE_LEASE_SECONDS  the Node Lease duration kwok gives every Node (default 40, a
#                       kubelet's); kwok renews every quarter of it, and a Node turns
#                       NotReady after 20s without a renewal at the default, after the
#                       whole lease with a longer one
#   STANDIN_JOIN_DELAY  --join-delay of the kubelet stand-in (e.g. 5s)
#   SKIP_STANDIN=1      do not build or start the kubelet stand-in
#   STANDIN_BIN         use this kubelet-stand-in binary instead of building one
#   TIMEOUT             seconds to wait for each component (default 120)
#   AUDIT_DIR           the API servers write an audit log (who sent which request, at
#                       Metadata level) to AUDIT_DIR/<cluster>-audit.log, which outlives
#                       cluster-down; hack/audit-summary.py reads it. It costs the API
#                       server CPU, so a benchmark run with it measures a slower cluster.
#   APISERVER_PROFILING=true  the API servers serve /debug/pprof (to admin), for a CPU
#                       profile of a benchmark phase:
#                       kubectl get --raw '/debug/pprof/profile?seconds=20' >cpu.pb.gz
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
source "$HACK/lib/common.sh"
source "$HACK/lib/pki.sh"
lock_state

requested="${CLUSTERS:-}"
HOST_NODES="${HOST_NODES:-2}"
NODE_LEASE_SECONDS="${NODE_LEASE_SECONDS:-40}"
TIMEOUT="${TIMEOUT:-120}"
[[ -z "$requested" || "$requested" == 1 || "$requested" == 2 ]] ||
  die "CLUSTERS must be 1 or 2, not '$requested'"
[[ "$HOST_NODES" =~ ^[1-9][0-9]*$ ]] || die "HOST_NODES must be a positive number"
[[ "$NODE_LEASE_SECONDS" =~ ^[1-9][0-9]*$ ]] || die "NODE_LEASE_SECONDS must be a positive number"
# kwok renews every quarter of the lease. At the default, a Node is NotReady after two
# renewals missed (20s: tests that stop a kubelet wait less); with a longer lease, after
# the whole lease: at N=10000 in `make bench` with half of it, kwok's renewals fell
# behind and Nodes whose kwok was busy turned Unknown.
node_grace=$((NODE_LEASE_SECONDS > 40 ? NODE_LEASE_SECONDS : 20))

# The addresses inside the cluster: Services (the API server's own Service takes the
# first address, which the serving certificate names) and Pods (kwok hands them out).
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.0.0.1/16

kubectl_as() { "$BIN/kubectl" --kubeconfig "$STATE/$1/admin.kubeconfig" "${@:2}"; }

# --- Already running? ---------------------------------------------------------------

# healthy -> true if the recorded clusters run: every recorded process alive and every
# API server ready. Cheap enough to run on every `make test`.
healthy() {
  [[ -f "$STATE/clusters" && -f "$PIDS" ]] || return 1
  local cluster pid start up
  while read -r _ _ pid start; do
    alive "$pid" "$start" || return 1
  done <"$PIDS"
  read -ra up <"$STATE/clusters"
  for cluster in "${up[@]}"; do
    [[ -f "$STATE/$cluster/env" ]] || return 1
    ready "$cluster" || return 1
  done
}

# ready CLUSTER -> the API server answers /readyz, over TLS verified with the CA.
ready() {
  local dir="$STATE/$1" port
  port="$(sed -n 's/^APISERVER_PORT=//p' "$dir/env")"
  curl -fsS --max-time 5 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" \
    --key "$dir/pki/admin.key" "https://127.0.0.1:$port/readyz" >/dev/null
}

summary() {
  local target_server control_server
  target_server="$(sed -n 's/^ *server: //p' "$STATE/target.kubeconfig")"
  control_server="$(sed -n 's/^ *server: //p' "$STATE/control.kubeconfig")"
  cat <<EOF

Local cluster is up ($(wc -w <"$STATE/clusters") cluster(s)):
  control: .local/control.kubeconfig  ($control_server)
  target:  .local/target.kubeconfig   ($target_server)
  logs:    .local/logs/
  kubectl: .local/bin/kubectl --kubeconfig .local/target.kubeconfig get nodes,pods -A
  stop:    make cluster-down
EOF
}

recorded=""
if [[ -d "$STATE" ]]; then
  [[ -f "$STATE/clusters" ]] && recorded="$(wc -w <"$STATE/clusters")"
  if healthy; then
    if [[ -n "$requested" && "$recorded" != "$requested" ]]; then
      die "a local cluster with CLUSTERS=$recorded is running; run 'make cluster-down' first to get CLUSTERS=$requested"
    fi
    log "already running and healthy"
    summary
    exit 0
  fi
  # Something from an earlier run died (or the machine rebooted): start over rather
  # than guess which half still works.
  log "found state of a cluster that is not healthy; cleaning it up"
  "$HACK/cluster-down.sh"
fi
CLUSTERS="${requested:-${recorded:-1}}"
case "$CLUSTERS" in
  1) names=(target) ;;
  2) names=(control target) ;;
  *) die "cannot restart a cluster recorded with $CLUSTERS clusters; set CLUSTERS" ;;
esac

# --- Binaries ------------------------------------------------------------------------

BIN="$("$HACK/tools.sh" | tail -n1)"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing; run 'make tools'"
done
compgen -G "$BIN/mcm-crds/*.yaml" >/dev/null || die "no MCM CRDs in $BIN/mcm-crds; run 'make tools'"

# The stand-in is built before anything starts, so a compile error costs no cluster.
standin=""
if [[ "${SKIP_STANDIN:-}" != 1 ]]; then
  if [[ -n "${STANDIN_BIN:-}" ]]; then
    standin="$STANDIN_BIN"
  else
    log "building the kubelet stand-in (cargo build -p kubelet-standin)"
    (cd "$ROOT" && cargo build --quiet -p kubelet-standin) ||
      die "could not build the kubelet stand-in; fix the build or run with SKIP_STANDIN=1"
    target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$target_dir" = /* ]] || target_dir="$ROOT/$target_dir"
    standin="$target_dir/debug/kubelet-standin"
  fi
  [[ -x "$standin" ]] || die "kubelet stand-in $standin not found; fix the build or run with SKIP_STANDIN=1"
fi

# --- State ---------------------------------------------------------------------------

mkdir -p "$STATE/bin" "$LOGS"
: >"$PIDS"
# Written first, so that cluster-down cleans up after a start that failed half-way.
echo "${names[*]}" >"$STATE/clusters"
ln -sfn "$BIN/kubectl" "$STATE/bin/kubectl"

# A failed start stops what it started, and keeps the logs for reading; the next
# cluster-up (or cluster-down) removes them.
on_exit() {
  local rc=$?
  if ((rc != 0)); then
    log "start failed; stopping what was started (logs stay in .local/logs until 'make cluster-down')"
    stop_recorded
  fi
}
trap on_exit EXIT

# All ports in one go: ports asked for cluster by cluster could come back twice, as
# each set is released before the next is picked.
mapfile -t all_ports < <(free_ports $((6 * ${#names[@]})))
for i in "${!names[@]}"; do
  c="${names[$i]}"
  ports=("${all_ports[@]:$((6 * i)):6}")
  dir="$STATE/$c"
  mkdir -p "$dir/etcd"
  chmod 700 "$dir/etcd"
  log "$c: creating certificates"
  pki_cluster "$dir/pki"
  cat >"$dir/env" <<EOF
ETCD_CLIENT_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
APISERVER_PORT=${ports[2]}
CONTROLLER_MANAGER_PORT=${ports[3]}
SCHEDULER_PORT=${ports[4]}
KWOK_PORT=${ports[5]}
EOF
  server="https://127.0.0.1:${ports[2]}"
  kubeconfig "$dir/admin.kubeconfig" "$server" "$dir/pki" admin "$c"
  kubeconfig "$dir/kube-controller-manager.kubeconfig" "$server" "$dir/pki" kube-controller-manager "$c"
  kubeconfig "$dir/kube-scheduler.kubeconfig" "$server" "$dir/pki" kube-scheduler "$c"
  kubeconfig "$dir/kwok.kubeconfig" "$server" "$dir/pki" kwok "$c"
done

# load CLUSTER -> that cluster's ports and paths as variables for the phases below.
load() {
  local k v
  while IFS='=' read -r k v; do printf -v "$k" '%s' "$v"; done <"$STATE/$1/env"
  dir="$STATE/$1"
  pki="$dir/pki"
  server="https://127.0.0.1:$APISERVER_PORT"
  curl_tls=(curl -fsS --max-time 5 --cacert "$pki/ca.crt")
}

# --- etcd ----------------------------------------------------------------------------

for c in "${names[@]}"; do
  load "$c"
  # Plain HTTP on loopback: the API server is etcd's only client and both sit on
  # 127.0.0.1. --unsafe-no-fsync because this data is thrown away with the cluster
  # and fsync dominates write latency on CI disks; durability buys nothing here.
  start "$c" etcd "$BIN/etcd" \
    --name "$c" \
    --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "$c=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync \
    --quota-backend-bytes 8589934592 \
    --log-level warn
done
for c in "${names[@]}"; do
  load "$c"
  wait_for "$TIMEOUT" "$c" etcd "etcd is healthy" \
    curl -fsS --max-time 5 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
done

# --- kube-apiserver ------------------------------------------------------------------

for c in "${names[@]}"; do
  load "$c"
  # NodeRestriction on top of the default admission plugins, as kubeadm does, so that
  # credentials of a node can only touch that node. Privileged Pods are allowed
  # because a machine Pod is a VM that runs containerd. No endpoint reconciler: the
  # kubernetes Service cannot point at a loopback address (Endpoints reject it) and
  # nothing runs inside the cluster that would use it. The in-flight limits are
  # raised so that benchmarks with 1000 machines are not throttled by the server.
  audit=()
  if [[ -n "${AUDIT_DIR:-}" ]]; then
    mkdir -p "$AUDIT_DIR"
    printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' \
      'omitStages: [RequestReceived]' 'rules:' '- level: Metadata' >"$STATE/$c/audit-policy.yaml"
    audit=(--audit-policy-file "$STATE/$c/audit-policy.yaml"
      --audit-log-path "$AUDIT_DIR/$c-audit.log" --audit-log-maxsize 4096 --audit-log-mode batch)
  fi
  start "$c" kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 \
    --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$pki/serving.crt" \
    --tls-private-key-file "$pki/serving.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode Node,RBAC \
    --enable-bootstrap-token-auth=true \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --service-account-issuer "$server" \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" \
    --proxy-client-key-file "$pki/front-proxy-client.key" \
    --endpoint-reconciler-type none \
    --max-requests-inflight 800 \
    --max-mutating-requests-inflight 400 \
    --profiling="${APISERVER_PROFILING:-false}" \
    "${audit[@]}"
done
for c in "${names[@]}"; do
  load "$c"
  wait_for "$TIMEOUT" "$c" kube-apiserver "kube-apiserver is ready at $server" ready "$c"
done

# --- kube-controller-manager, kube-scheduler -----------------------------------------

for c in "${names[@]}"; do
  load "$c"
  kc="$dir/kube-controller-manager.kubeconfig"
  # bootstrapsigner and tokencleaner are off by default but bootstrap tokens need them.
  # root-ca-file and the service account key give every namespace its kube-root-ca.crt
  # and default ServiceAccount. A short grace period lets a Node whose kubelet stopped
  # turn NotReady in about 20s instead of 50s (longer with NODE_LEASE_SECONDS).
  start "$c" kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$kc" \
    --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 \
    --secure-port "$CONTROLLER_MANAGER_PORT" \
    --tls-cert-file "$pki/serving.crt" \
    --tls-private-key-file "$pki/serving.key" \
    --client-ca-file "$pki/ca.crt" \
    --controllers '*,bootstrapsigner,tokencleaner' \
    --root-ca-file "$pki/ca.crt" \
    --service-account-private-key-file "$pki/sa.key" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$pki/ca.crt" \
    --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --node-monitor-period 2s \
    --node-monitor-grace-period "${node_grace}s" \
    --kube-api-qps 100 \
    --kube-api-burst 200 \
    --leader-elect=false \
    --profiling=false
done

# Only the target cluster runs Pods, so only it needs a scheduler.
load target
cat >"$dir/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $dir/kube-scheduler.kubeconfig
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
EOF
start target kube-scheduler "$BIN/kube-scheduler" \
  --config "$dir/kube-scheduler.yaml" \
  --authentication-kubeconfig "$dir/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$dir/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 \
  --secure-port "$SCHEDULER_PORT" \
  --tls-cert-file "$pki/serving.crt" \
  --tls-private-key-file "$pki/serving.key" \
  --client-ca-file "$pki/ca.crt" \
  --profiling=false

# --- kwok ----------------------------------------------------------------------------

# kwok keeps its default config in its work dir; pointing that into .local keeps a
# ~/.kwok/kwok.yaml of the user out of this cluster.
#
# kwok plays the kubelet of the Nodes labelled kwok.x-k8s.io/node=fake. A label, not
# kwok's usual annotation: the label is filtered by the API server, whose watch then
# reports a Node that loses the label as deleted, so kwok lets go of it (stops
# renewing its Lease, drops its pending status updates) and the Node turns NotReady
# like one whose kubelet died. An annotation is filtered inside kwok, which keeps
# renewing the Lease of a Node that lost it for as long as the Node exists.
mkdir -p "$dir/kwok"
kwok_config="$(printf '%s,' "$HACK"/kwok/*.yaml)"
start target kwok env KWOK_WORKDIR="$dir/kwok" "$BIN/kwok" \
  --kubeconfig "$dir/kwok.kubeconfig" \
  --config "${kwok_config%,}" \
  --node-lease-duration-seconds "$NODE_LEASE_SECONDS" \
  --manage-all-nodes=false \
  --manage-nodes-with-label-selector kwok.x-k8s.io/node=fake \
  --cidr "$POD_CIDR" \
  --node-ip 127.0.0.1 \
  --server-address "127.0.0.1:$KWOK_PORT" \
  --tls-cert-file "$pki/serving.crt" \
  --tls-private-key-file "$pki/serving.key"

for c in "${names[@]}"; do
  load "$c"
  wait_for "$TIMEOUT" "$c" kube-controller-manager "kube-controller-manager is healthy" \
    "${curl_tls[@]}" "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
done
load target
wait_for "$TIMEOUT" target kube-scheduler "kube-scheduler is healthy" \
  "${curl_tls[@]}" "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_for "$TIMEOUT" target kwok "kwok is healthy" \
  "${curl_tls[@]}" "https://127.0.0.1:$KWOK_PORT/healthz"

# --- Host nodes ----------------------------------------------------------------------

# The "hypervisors" that machine Pods are scheduled to. kwok manages them because of
# the label; the capacity is set at creation (a Node may carry status on create)
# and is large enough for benchmarks with 1000 machines. The role label lets machine
# Pods select host nodes and keeps them off the Nodes that machines register.
for ((i = 0; i < HOST_NODES; i++)); do
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: host-$i
  labels:
    kwok.x-k8s.io/node: fake
    kubernetes.io/hostname: host-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/host: ""
status:
  allocatable: {cpu: "1000", memory: 4Ti, ephemeral-storage: 10Ti, pods: "2000"}
  capacity: {cpu: "1000", memory: 4Ti, ephemeral-storage: 10Ti, pods: "2000"}
EOF
done | kubectl_as target create -f - >/dev/null
# Ready alone is not enough: until the node-lifecycle controller has seen the Node
# Ready it carries the not-ready taint, and Pods created now would wait for a retry.
hosts_ready() {
  [[ "$(kubectl_as target get nodes -l node-role.kubernetes.io/host -o json | jq -r --argjson n "$HOST_NODES" '
    [.items[] | select(
      (.status.conditions // [] | any(.type == "Ready" and .status == "True"))
      and ((.spec.taints // []) | length == 0))] | length == $n')" == true ]]
}
wait_for "$TIMEOUT" target kwok "$HOST_NODES host node(s) Ready" hosts_ready

# --- MCM CRDs, default ServiceAccounts -------------------------------------------------

for c in "${names[@]}"; do
  # Into the target cluster too: a single cluster is both, and with two the CRDs do no
  # harm there while letting tools that expect them (MCM's safety controller) start.
  kubectl_as "$c" apply --server-side --field-manager cluster-up -f "$BIN/mcm-crds/" >/dev/null
done
for c in "${names[@]}"; do
  wait_for "$TIMEOUT" "$c" kube-apiserver "MCM CRDs established" \
    kubectl_as "$c" wait --for condition=Established --timeout 5s -f "$BIN/mcm-crds/"
  # Pods need the default ServiceAccount and kube-root-ca.crt, both made by
  # kube-controller-manager; their presence shows it works, not only that it is alive.
  wait_for "$TIMEOUT" "$c" kube-controller-manager "default ServiceAccount and kube-root-ca.crt present" \
    kubectl_as "$c" -n default get serviceaccount/default configmap/kube-root-ca.crt
done

# --- Kubeconfigs for users -------------------------------------------------------------

cp "$STATE/target/admin.kubeconfig" "$STATE/target.kubeconfig"
if ((CLUSTERS == 2)); then
  cp "$STATE/control/admin.kubeconfig" "$STATE/control.kubeconfig"
else
  cp "$STATE/target/admin.kubeconfig" "$STATE/control.kubeconfig"
fi
chmod 600 "$STATE"/*.kubeconfig

# --- kubelet stand-in ------------------------------------------------------------------

if [[ -n "$standin" ]]; then
  # The local cloud's cloud-wide profiles (`--cloud-profile` of the controller): the
  # stand-in takes down the Nodes of a zone that one of them puts under `outages`.
  mkdir -p "$STATE/cloud-profiles"
  args=(--kubeconfig "$STATE/target.kubeconfig" --cloud-profiles "$STATE/cloud-profiles")
  [[ -n "${STANDIN_JOIN_DELAY:-}" ]] && args+=(--join-delay "$STANDIN_JOIN_DELAY")
  start target kubelet-standin "$standin" "${args[@]}"
  # It has no health endpoint; a stand-in that cannot reach the cluster or rejects
  # its flags exits within moments, so surviving a few seconds is the signal.
  sleep 3
  component_alive target kubelet-standin || { tail_log target kubelet-standin; die "target/kubelet-standin exited"; }
  log "target: kubelet-standin is running"
else
  log "target: kubelet stand-in skipped (SKIP_STANDIN=1); machines will not join"
fi

summary
