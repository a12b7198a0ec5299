// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The controller in a process: what the binary starts it with, and what the
//! integration tests start it with in theirs. The controller's own modules are
//! private to the crate; this and [`crate::payload`] are its public face.

pub use crate::controller::settings::Settings;
pub use crate::controller::watches::{Clients, run, run_with};
pub use crate::driver::local::LocalDriver;
pub use crate::driver::local::profile::CloudProfile;
