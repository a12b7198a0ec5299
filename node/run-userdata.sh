#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# Runs the user data the machine Pod mounts (Secret machine-<m>-userdata, key
# userdata), once per boot, as cloud-init would on a cloud VM.
set -euo pipefail
userdata=/etc/machine/userdata/userdata
if [[ ! -s "$userdata" ]]; then
  echo "run-userdata: no user data at $userdata" >&2
  exit 1
fi
# The Secret volume is read-only and not executable: run a copy.
install -m 0700 "$userdata" /run/userdata
exec /run/userdata
