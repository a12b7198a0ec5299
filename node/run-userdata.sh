#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# Runs the user data the machine Pod mounts (Secret machine-<m>-userdata mounted at
# /etc/machine with mode 0777, so its key userdata is this executable file), once
# per boot, as cloud-init would on a cloud VM. Gardener's machine image does the
# same with the same file, so either image boots in the Pods either controller makes.
set -euo pipefail
userdata=/etc/machine/userdata
if [[ ! -f "$userdata" ]]; then
  echo "run-userdata: no user data file at $userdata" >&2
  exit 1
fi
exec "$userdata"
