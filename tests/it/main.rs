// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The integration tests, one binary: each module is one feature, run against
//! the local cluster (`make cluster-up`; `make test` starts it when it is down)
//! and, where MCM takes part, the real MCM v0.62.1 binary. `support` holds the
//! clusters, namespaces, waits, the running-machine fixture and the binaries.

mod support;

mod chaos;
mod cloud_boot;
mod cloud_profile;
mod cloud_zones;
mod crash_recovery;
mod drain;
mod gardener_worker;
mod health;
mod inplace;
mod input;
mod lifecycle;
mod local_cluster;
mod mcm_e2e;
mod node_deletion;
mod node_upkeep;
mod operations;
mod preservation;
mod rbac;
mod takeover;
