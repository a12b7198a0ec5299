// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

use std::time::Duration;

use crate::client::status;
use crate::driver::{Code, MachineError};

/// Retry classes of MCM (`machineutils.RetryPeriod`).
pub(crate) mod retry {
    use std::time::Duration;
    pub(crate) const CONFLICT: Duration = Duration::from_millis(200);
    pub(crate) const SHORT: Duration = Duration::from_secs(5);
    pub(crate) const MEDIUM: Duration = Duration::from_secs(3 * 60);
    pub(crate) const LONG: Duration = Duration::from_secs(10 * 60);
}

/// Why a reconcile stopped early. Its [`Category`] is a closed set, used for
/// the retry, the log level and the metric label.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Driver(#[from] MachineError),
    #[error("the caches have not synced yet")]
    NotReady,
}

/// The kinds of failure a reconcile tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    /// Another writer came first: our copy was stale, or a name we create was
    /// taken meanwhile. Retried at once (MCM's ConflictRetry).
    Conflict,
    /// Gone meanwhile.
    NotFound,
    /// Any other answer of the API server.
    ApiError,
    /// No answer: connection, timeout, decoding.
    ApiUnreachable,
    /// The driver's error, by its code.
    Driver(Code),
    NotReady,
}

impl Category {
    /// The metric label (`machine_controller_reconcile_total{category}`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Category::Conflict => "conflict",
            Category::NotFound => "not_found",
            Category::ApiError => "api_error",
            Category::ApiUnreachable => "api_unreachable",
            Category::Driver(code) => code.as_str(),
            Category::NotReady => "not_ready",
        }
    }
}

impl Error {
    pub(crate) fn category(&self) -> Category {
        match self {
            Error::Kube(kube::Error::Api(s))
                if status::conflict(s) || status::already_exists(s) =>
            {
                Category::Conflict
            }
            Error::Kube(kube::Error::Api(s)) if status::not_found(s) => Category::NotFound,
            Error::Kube(kube::Error::Api(_)) => Category::ApiError,
            Error::Kube(_) => Category::ApiUnreachable,
            Error::Driver(e) => Category::Driver(e.code),
            Error::NotReady => Category::NotReady,
        }
    }

    /// When to try again.
    pub(crate) fn retry_after(&self) -> Duration {
        match self.category() {
            Category::Conflict => retry::CONFLICT,
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
        assert_eq!(conflict.category(), Category::Conflict);
        assert_eq!(conflict.category().as_str(), "conflict");
        assert_eq!(conflict.retry_after(), retry::CONFLICT);
        let driver = Error::Driver(MachineError::new(Code::Internal, "x"));
        assert_eq!(driver.category().as_str(), "Internal");
        assert_eq!(driver.retry_after(), retry::SHORT);
        // A create's 409 (the name was taken meanwhile) is a race too.
        let exists = Error::Kube(kube::Error::Api(
            kube::core::Status::failure("x", "AlreadyExists")
                .with_code(409)
                .boxed(),
        ));
        assert_eq!(exists.category(), Category::Conflict);
        // A plain-text 404 (a proxy's) is not found, as client-go reads it.
        let proxy = Error::Kube(kube::Error::Api(
            kube::core::Status::failure("404 page not found", "Failed to parse error data")
                .with_code(404)
                .boxed(),
        ));
        assert_eq!(proxy.category(), Category::NotFound);
    }
}
