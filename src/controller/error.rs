// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

use std::time::Duration;

use crate::driver::MachineError;

/// Retry classes of MCM (`machineutils.RetryPeriod`).
pub mod retry {
    use std::time::Duration;
    pub const CONFLICT: Duration = Duration::from_millis(200);
    pub const SHORT: Duration = Duration::from_secs(5);
    pub const MEDIUM: Duration = Duration::from_secs(3 * 60);
    pub const LONG: Duration = Duration::from_secs(10 * 60);
}

/// Why a reconcile stopped early. `category()` is bounded and used for metric
/// labels and Event reasons.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Driver(#[from] MachineError),
    #[error("the caches have not synced yet")]
    NotReady,
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(_)) => "api_error",
            Error::Kube(_) => "api_unreachable",
            Error::Driver(e) => e.code.as_str(),
            Error::NotReady => "not_ready",
        }
    }

    /// When to try again.
    pub fn retry_after(&self) -> Duration {
        match self.category() {
            "conflict" => retry::CONFLICT,
            _ => retry::SHORT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_retry_fast() {
        let conflict = Error::Kube(kube::Error::Api(
            kube::core::Status::failure("x", "Conflict")
                .with_code(409)
                .boxed(),
        ));
        assert_eq!(conflict.category(), "conflict");
        assert_eq!(conflict.retry_after(), retry::CONFLICT);
        let driver = Error::Driver(MachineError::new(crate::driver::Code::Internal, "x"));
        assert_eq!(driver.category(), "Internal");
        assert_eq!(driver.retry_after(), retry::SHORT);
    }
}
