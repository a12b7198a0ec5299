#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
# shellcheck source-path=SCRIPTDIR
#
# Stops the local cluster started by hack/cluster-up.sh and removes its state. Only
# the processes recorded in .local/pids are signalled, never anything found by name,
# so other clusters, checkouts or CI jobs on the same machine are left alone.
set -euo pipefail

HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HACK/lib/common.sh"
lock_state

if [[ ! -e "$STATE" ]]; then
  log "no local cluster state; nothing to stop"
  exit 0
fi
stop_recorded
rm -rf "$STATE"
log "removed ${STATE#"$ROOT"/}"
