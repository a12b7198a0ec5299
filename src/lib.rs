// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A machine controller for Gardener's machine-controller-manager with the
//! `local` driver: Machines in the control cluster become Pods in the target.

pub mod admin;
pub mod api;
pub mod cli;
pub mod client;
pub mod contract;
pub mod controller;
pub mod driver;
pub mod duration;
pub mod leader;
pub mod metrics;
