# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0

# 1: one local cluster that is both control and target; 2: separate control and target.
CLUSTERS ?= 1

.PHONY: tools cluster-up cluster-down build test chaos mcm-suite start verify bench

# Builds etcd, Kubernetes, kwok, MCM and gardener's Go provider-local (the peer) from
# the modules pinned in hack/tools into ~/.cache (once per version).
tools:
	hack/tools.sh

# Starts the local cluster (or leaves a healthy one running); see hack/cluster-up.sh.
# CLUSTERS goes to the script only when given, so that a plain `make cluster-up`
# accepts a running cluster of either shape instead of insisting on one.
cluster-up:
	$(if $(filter command line environment%,$(origin CLUSTERS)),CLUSTERS=$(CLUSTERS)) hack/cluster-up.sh

# Stops exactly what cluster-up started and removes .local/.
cluster-down:
	hack/cluster-down.sh

# The controller and the kubelet stand-in.
build:
	cargo build --locked --release

# Every test: units, and integration tests against the local cluster (started with
# CLUSTERS=2 and stopped again unless one is already running).
test:
	hack/test.sh

# The chaos tests (tests/it/chaos.rs, part of `make test` with 10 and 30 machines) at
# a larger scale: CHAOS_MACHINES machines (default 200), one test at a time.
CHAOS_MACHINES ?= 200
# Kills or restarts per test (empty: each test's own, 30 restarts and 8 kills).
CHAOS_KILLS ?=
chaos:
	CHAOS_MACHINES=$(CHAOS_MACHINES) CHAOS_KILLS=$(CHAOS_KILLS) TEST_TARGETS="--test it" hack/test.sh chaos:: -- --test-threads=1 --nocapture

# MCM v0.62.1's own provider integration suite (pkg/test/integration/common), run as a
# provider repository runs it, against our controller and MCM on the local cluster
# (started with CLUSTERS=2 and stopped again unless one is already running). Not part
# of test: see hack/mcm-suite.sh.
mcm-suite:
	hack/mcm-suite.sh

# Runs the controller in the foreground. With none of CONTROL_KUBECONFIG,
# TARGET_KUBECONFIG, CONTROL_NAMESPACE given, it uses the local cluster (started if needed).
start:
	hack/start.sh

# What CI and reviewers check: formatting, clippy, REUSE, hadolint, a server-side dry
# run of the manifests against the local cluster, and every test.
verify:
	hack/verify.sh

# The benchmark (not part of test): N machines created and deleted at once on the
# local cluster, against a bare client's limit; prints a table and writes
# hack/bench/results/<date>.{md,json}. N=50 (or BENCH_N=100,300) picks the sizes
# (default 100,1000); BENCH_QPS and BENCH_BURST the token bucket (default 200/300).
bench:
	$(if $(N),BENCH_N=$(N)) hack/bench/run.sh
