// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What an API server's refusal means, read as client-go reads it
//! (`k8s.io/apimachinery/pkg/api/errors`): by the Status's reason, and by its
//! HTTP code only when the reason is not one Kubernetes defines.
//!
//! Why not kube's own `Status::is_not_found()` and friends: in kube-core 5.0.0
//! their code fallback asks whether the *expected* reason is known (it always
//! is) instead of the answer's, so it never applies. A plain-text 404 (a proxy,
//! an API path of a CRD not installed yet) reaches us as code 404 with the
//! reason "Failed to parse error data", which client-go calls NotFound and
//! kube's predicate does not. These few lines keep the Go semantics until
//! kube-core's fallback is fixed upstream.
//!
//! AlreadyExists has no code fallback, as in client-go: a create and an update
//! both answer 409, and only the reason tells "exists" from "changed meanwhile".

use kube::core::Status;

/// The reasons Kubernetes defines: client-go's `knownReasons`
/// (`metav1.StatusReason*`; StoreReadError's value is "StorageReadError").
const KNOWN: [&str; 19] = [
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "Gone",
    "Invalid",
    "ServerTimeout",
    "StorageReadError",
    "Timeout",
    "TooManyRequests",
    "BadRequest",
    "MethodNotAllowed",
    "NotAcceptable",
    "RequestEntityTooLarge",
    "UnsupportedMediaType",
    "InternalError",
    "Expired",
    "ServiceUnavailable",
];

fn reason_or_code(s: &Status, reason: &str, code: u16) -> bool {
    s.reason == reason || (!KNOWN.contains(&s.reason.as_str()) && s.code == code)
}

/// The object (or the API path) does not exist.
pub fn not_found(s: &Status) -> bool {
    reason_or_code(s, "NotFound", 404)
}

/// A write based on an older copy, or a failed precondition (UID, resourceVersion).
pub fn conflict(s: &Status) -> bool {
    reason_or_code(s, "Conflict", 409)
}

/// A create of a name that is taken.
pub fn already_exists(s: &Status) -> bool {
    s.reason == "AlreadyExists"
}

/// The object was refused as invalid (422) or the request as malformed (400).
pub fn invalid(s: &Status) -> bool {
    reason_or_code(s, "Invalid", 422) || reason_or_code(s, "BadRequest", 400)
}

/// Not now: throttled, or an eviction a PodDisruptionBudget refuses. client-go
/// takes the code alone here too.
pub fn too_many_requests(s: &Status) -> bool {
    s.reason == "TooManyRequests" || s.code == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(reason: &str, code: u16) -> Status {
        Status::failure("refused", reason).with_code(code)
    }

    #[test]
    fn the_reason_decides_when_kubernetes_defines_it() {
        assert!(not_found(&answer("NotFound", 404)));
        assert!(conflict(&answer("Conflict", 409)));
        // A create's 409 says the name is taken, not that a copy was stale.
        assert!(already_exists(&answer("AlreadyExists", 409)));
        assert!(!conflict(&answer("AlreadyExists", 409)));
        assert!(!already_exists(&answer("Conflict", 409)));
        // A known reason with another code is that reason, not the code's.
        assert!(!not_found(&answer("Forbidden", 404)));
        assert!(invalid(&answer("Invalid", 422)));
        assert!(invalid(&answer("BadRequest", 400)));
        assert!(too_many_requests(&answer("TooManyRequests", 429)));
    }

    #[test]
    fn the_code_decides_when_the_reason_is_unknown_or_missing() {
        // What kube-client makes of a plain-text error body.
        let proxy_404 = answer("Failed to parse error data", 404);
        assert!(not_found(&proxy_404));
        assert!(not_found(&answer("", 404)));
        assert!(conflict(&answer("", 409)));
        assert!(!already_exists(&answer("", 409)));
        assert!(invalid(&answer("", 422)));
        assert!(too_many_requests(&answer("", 429)));
        assert!(!not_found(&answer("", 403)));
        // A reason Kubernetes defines is never overridden by the code.
        assert!(!not_found(&answer("ServiceUnavailable", 404)));
        assert!(!conflict(&answer("StorageReadError", 409)));
        // kube-core 5.0.0's own predicate misses it (the reason this module exists).
        assert!(!proxy_404.is_not_found());
    }
}
