// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What the controller writes, for the tools that must write exactly the same:
//! the bench's bare client and contract floor (`hack/bench`), and the tests
//! that build a machine's objects by hand or look for what it left behind.

/// The machine Pod, its Service and its user-data Secret, as the local driver
/// builds them.
pub mod build {
    pub use crate::driver::local::build::{pod, service, user_data_secret};
}

/// The bootstrap token of a machine: its Secret's name, its id, how it is
/// made, and how it goes into the user data.
pub mod bootstrap {
    pub use crate::controller::bootstrap::{ensure_token, secret_name, substitute, token_id};
}

pub use crate::client::patch_params as params;
pub use crate::controller::events::{EventType, Events, Note};
pub use crate::controller::machine::creation::plan::labels_patch;
pub use crate::controller::node::patch_for as node_patch;
pub use crate::controller::status::{StatusChange, now};
pub use crate::controller::writes::status_patch;
