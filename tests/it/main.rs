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
mod local_cluster;
mod machine_lifecycle;
mod mcm_e2e;
mod node_deletion;
mod operations;
mod rbac;
mod takeover;
