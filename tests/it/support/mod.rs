// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Shared helpers for the integration tests against the local cluster
//! (`make cluster-up`).
//!
//! - [`cluster`]: the control and target kubeconfigs, clients with TLS verification,
//!   [`two_clusters`].
//! - [`namespace`]: [`TestNamespace`], a fresh namespace per test that is deleted
//!   (with whatever else the test registered) when it is dropped.
//! - [`wait`]: [`wait_for`], [`wait_for_deleted`], [`wait_for_list`]: watch-based
//!   waits with a timeout that panic with the last state seen; [`holds_until`]:
//!   something stays so for a while.
//! - [`machine`]: machine Pods and bootstrap tokens built like the `local` driver's.
//! - [`admin`]: the binary with chosen flags, its admin endpoints, signals.
//! - [`proxy`]: a TCP proxy to cut a client off an API server and restore it.
//! - [`mcm`]: MCM's MachineSet and MachineDeployment types.
//! - [`node`]: a machine's Node unhealthy and healthy again; preservation's marks on it.
//! - [`chaos`]: a record of every UID objects had, and the kill storm.
//! - [`running`]: the running-machine fixture ([`running::Running`], [`running::Sampled`]).
//! - [`workload`]: a Pod on a machine's Node, and a budget that holds its drain.

pub mod admin;
pub mod chaos;
pub mod cluster;
pub mod controller;
pub mod machine;
pub mod mcm;
pub mod namespace;
pub mod node;
pub mod proxy;
pub mod running;
pub mod wait;
pub mod workload;

pub use cluster::{Cluster, control, kubectl, target, two_clusters};
pub use namespace::{TestNamespace, unique_name};
pub use wait::{holds_until, wait_for, wait_for_deleted, wait_for_list, wait_for_none};

use std::time::Duration;

/// The usual timeout for something the local cluster does in about a second.
pub const TIMEOUT: Duration = Duration::from_secs(60);
