// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The safety nets of MCM's machine controller: [`orphans`] (VMs whose Machine
//! is gone), [`orphan_nodes`] (Nodes no Machine claims) and [`freeze`] (API
//! servers that do not answer).

pub(crate) mod freeze;
pub(crate) mod orphan_nodes;
pub(crate) mod orphans;
