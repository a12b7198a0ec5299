// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A machine controller for Gardener's machine-controller-manager with the
//! `local` driver: Machines in the control cluster become Pods in the target.

#![warn(unreachable_pub)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod client;
pub mod contract;
pub(crate) mod controller;
pub(crate) mod driver;
pub(crate) mod duration;
pub mod embed;
pub mod leader;
pub(crate) mod metrics;
pub mod payload;
