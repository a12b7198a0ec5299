#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# Shared by cluster-up.sh and cluster-down.sh; sourced, never run. It knows where the
# local cluster keeps its state and how to start and stop the processes it records.
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
STATE="$ROOT/.local"
LOGS="$STATE/logs"
# One line per process started: "<cluster> <component> <pid> <start time>". The start
# time (from /proc/<pid>/stat) guards against killing an unrelated process that got
# a recycled PID after ours died.
PIDS="$STATE/pids"

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# lock_state -> waits until no other cluster-up or cluster-down of this checkout runs
# (two `make test` at once must not both start a cluster into .local). The lock is on
# this file, which unlike .local/ always exists; fd 8 is closed for the components
# started, or they would hold the lock for as long as they run. Nested calls
# (cluster-up running cluster-down) inherit the lock.
lock_state() {
  [[ -z "${LOCAL_CLUSTER_LOCKED:-}" ]] || return 0
  exec 8<"${BASH_SOURCE[0]}"
  if ! flock -n 8; then
    log "another cluster-up or cluster-down runs in this checkout; waiting for it"
    flock 8
  fi
  export LOCAL_CLUSTER_LOCKED=1
}

# proc_stat PID N -> field N of /proc/PID/stat (empty if the process is gone). The
# command name (field 2) may hold spaces, so the fields are counted after its ')'.
proc_stat() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  awk -v n="$(($2 - 2))" '{print $n}' <<<"$stat"
}

# proc_start PID -> the process's start time in clock ticks since boot (field 22).
proc_start() { proc_stat "$1" 22; }

# alive PID START -> true if PID still runs and is the process we recorded.
alive() {
  [[ -n "$1" && -n "$2" ]] || return 1
  [[ "$(proc_start "$1")" == "$2" ]] || return 1
  # A zombie (state Z, field 3) has not been reaped yet but does nothing any more.
  [[ "$(proc_stat "$1" 3)" != Z ]]
}

# free_ports N -> N distinct free TCP ports on 127.0.0.1, one per line. All sockets are
# held open together so the kernel cannot hand out the same port twice.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}

# start CLUSTER COMPONENT BINARY ARGS... -> starts a component in the background with
# its log in $LOGS and records its PID. setsid puts it in its own session so that a
# Ctrl-C in the shell that ran `make cluster-up` (or a CI step ending) does not take
# the cluster down with it; stdin from /dev/null keeps make from waiting on it.
start() {
  local cluster=$1 component=$2; shift 2
  local logfile="$LOGS/$cluster-$component.log"
  : >"$logfile"
  setsid "$@" </dev/null >>"$logfile" 2>&1 8<&- &
  local pid=$!
  # Without job control the child is no process group leader, so setsid runs the
  # binary in place: $! is the component itself. Give it a moment to have a /proc entry.
  local start=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    start="$(proc_start "$pid")"
    [[ -n "$start" ]] && break
    sleep 0.1
  done
  [[ -n "$start" ]] || { tail_log "$cluster" "$component"; die "$cluster/$component exited at once"; }
  echo "$cluster $component $pid $start" >>"$PIDS"
  log "$cluster/$component: started (pid $pid, log ${logfile#"$ROOT"/})"
}

# component_pid CLUSTER COMPONENT -> "PID START" of the recorded process, if any.
component_pid() {
  [[ -f "$PIDS" ]] || return 0
  awk -v c="$1" -v n="$2" '$1 == c && $2 == n {print $3, $4}' "$PIDS" | tail -n1
}

# component_alive CLUSTER COMPONENT
component_alive() {
  local pid start
  read -r pid start <<<"$(component_pid "$1" "$2")" || true
  alive "${pid:-}" "${start:-}"
}

tail_log() {
  local logfile="$LOGS/$1-$2.log"
  [[ -f "$logfile" ]] || return 0
  echo "----- last lines of ${logfile#"$ROOT"/} -----" >&2
  tail -n 40 "$logfile" >&2
  echo "-----" >&2
}

# wait_for DEADLINE_SECONDS CLUSTER COMPONENT DESCRIPTION COMMAND... -> retries COMMAND
# until it succeeds. Fails early with the component's log when its process died, and
# with the log when the deadline passes.
wait_for() {
  local timeout=$1 cluster=$2 component=$3 what=$4; shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$component" ]] && ! component_alive "$cluster" "$component"; then
      tail_log "$cluster" "$component"
      die "$cluster/$component died while waiting for $what"
    fi
    if ((SECONDS >= deadline)); then
      [[ -n "$component" ]] && tail_log "$cluster" "$component"
      die "$cluster: $what not within ${timeout}s"
    fi
    sleep 0.5
  done
  log "$cluster: $what"
}

# stop_recorded -> stops exactly the processes in $PIDS, one after the other in reverse
# start order: clients before their API server, the API server before its etcd. An
# API server whose etcd is already gone hangs in its shutdown instead of taking a
# second. Each gets TERM, then KILL if it is still there after a deadline. A PID that
# now belongs to another process (its start time differs) is left alone.
stop_recorded() {
  [[ -f "$PIDS" ]] || return 0
  local -a lines=()
  mapfile -t lines <"$PIDS"
  local i cluster component pid start deadline
  local -a stopped=()
  for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
    read -r cluster component pid start <<<"${lines[$i]}"
    alive "${pid:-}" "${start:-}" || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${STOP_TIMEOUT:-20}))
    while alive "$pid" "$start" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid" "$start"; then
      log "$cluster/$component: did not stop on TERM, killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      # KILL is asynchronous; the caller removes data directories next, which must
      # not happen under a process that still writes to them.
      deadline=$((SECONDS + 5))
      while alive "$pid" "$start" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    log "$cluster/$component: stopped (pid $pid)"
    stopped+=("$pid $start")
  done
  # Best effort: give the parent (init, as cluster-up has exited) a moment to reap
  # them, so that `pgrep` right after cluster-down shows no <defunct> entries.
  deadline=$((SECONDS + 3))
  for i in "${stopped[@]}"; do
    read -r pid start <<<"$i"
    while [[ "$(proc_start "$pid")" == "$start" ]] && ((SECONDS < deadline)); do sleep 0.1; done
  done
}
