# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0

# 1: one local cluster that is both control and target; 2: separate control and target.
CLUSTERS ?= 1

.PHONY: tools cluster-up cluster-down

# Builds etcd, Kubernetes, kwok and MCM from the modules pinned in hack/tools into
# ~/.cache (once per version).
tools:
	hack/tools.sh

# Starts the local cluster (or leaves a healthy one running); see hack/cluster-up.sh.
cluster-up:
	CLUSTERS=$(CLUSTERS) hack/cluster-up.sh

# Stops exactly what cluster-up started and removes .local/.
cluster-down:
	hack/cluster-down.sh
