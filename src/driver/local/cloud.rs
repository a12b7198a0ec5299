// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local cloud's side of a driver call, from the class's cloud profile:
//! the call waits, fails on purpose, or meets the instance quota.
//! [`profile`](super::profile) decides from plain values; this module acts on
//! what it decides and says so in the log.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use super::profile::{Call, CloudProfile};
use crate::api::provider_spec::LocalProviderSpec;
use crate::driver::{Code, DriverResult, MachineError};

#[derive(Default)]
pub(crate) struct Cloud {
    /// One lock per class with a quota: counting its VMs and making the next
    /// one are one step, as behind a cloud's API, so that workers creating at
    /// once cannot both take the last place.
    quota_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Broken profiles already logged (by class and message), each logged once.
    reported: Mutex<HashSet<String>>,
}

impl Cloud {
    /// The class's profile as `call` sees it. A broken profile refuses Create
    /// and Initialize (`InvalidArgument`, which the controller puts on the
    /// Machine and in an Event); every other call goes on without a profile,
    /// so that a typo never keeps a machine from being checked or deleted, and
    /// the problem is logged once.
    pub(crate) fn profile(
        &self,
        class: &str,
        spec: &LocalProviderSpec,
        call: Call,
    ) -> DriverResult<CloudProfile> {
        match CloudProfile::parse(spec.cloud_profile.as_ref()) {
            Ok(profile) => Ok(profile),
            Err(e) if matches!(call, Call::Create | Call::Initialize) => {
                Err(MachineError::new(Code::InvalidArgument, e.to_string()))
            }
            Err(e) => {
                let first = self
                    .reported
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(format!("{class}\n{e}"));
                if first {
                    tracing::warn!(
                        class,
                        "{e}; the class's calls other than Create and Initialize run without a cloud profile until it is fixed"
                    );
                }
                Ok(CloudProfile::default())
            }
        }
    }

    /// Waits and fails as the profile says for `call` of `subject` (a
    /// machine, or the class for List), `since` its start.
    pub(crate) async fn meet(
        profile: &CloudProfile,
        call: Call,
        subject: &str,
        since: Duration,
    ) -> DriverResult<()> {
        let fault = profile.fault(call, subject, since);
        if !fault.delay.is_zero() {
            tracing::debug!(call = call.key(), subject, delay = ?fault.delay, "cloud profile delays the call");
            tokio::time::sleep(fault.delay).await;
        }
        match fault.error {
            None => Ok(()),
            Some((code, rule)) => {
                // A throttled call says so whatever its code.
                let what = match fault.throttled {
                    true => "request limit exceeded".to_string(),
                    false => answer(code),
                };
                Err(injected(call, subject, code, what, rule))
            }
        }
    }

    /// Holds the class's quota lock; keep it until the new VM exists.
    pub(crate) async fn quota_lock(&self, key: String) -> OwnedMutexGuard<()> {
        let lock = self
            .quota_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Refuses one more VM of `class` when `existing` of its VMs already fill
    /// the quota.
    pub(crate) fn admit(
        profile: &CloudProfile,
        class: &str,
        machine: &str,
        existing: usize,
    ) -> DriverResult<()> {
        match profile.instance_quota {
            Some(quota) if !profile.quota_allows(existing) => Err(injected(
                Call::Create,
                machine,
                Code::ResourceExhausted,
                format!(
                    "quota exceeded: {existing} of {quota} instances of class {class:?} are in use"
                ),
                format!("instanceQuota {quota}"),
            )),
            _ => Ok(()),
        }
    }
}

/// What a cloud says with `code`.
fn answer(code: Code) -> String {
    match code {
        Code::ResourceExhausted => "request limit exceeded".into(),
        Code::Unavailable => "service unavailable, try again later".into(),
        Code::DeadlineExceeded => "the request timed out".into(),
        Code::Internal => "internal error".into(),
        _ => format!("request failed with {code}"),
    }
}

/// The cloud-wide profile's refusal, as an injected error.
pub(crate) fn refused(call: Call, subject: &str, r: super::cloud_wide::Refusal) -> MachineError {
    injected(call, subject, r.code, r.message, r.rule)
}

/// An error the profile's `rule` makes on purpose, logged as such.
fn injected(call: Call, subject: &str, code: Code, what: String, rule: String) -> MachineError {
    tracing::warn!(call = call.key(), subject, %code, rule, "injected fault: {what}");
    MachineError::injected(
        code,
        format!("{what} (injected by the local cloud profile: {rule})"),
        rule,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(profile: serde_json::Value) -> LocalProviderSpec {
        LocalProviderSpec {
            image: "i".into(),
            cloud_profile: Some(profile),
            ..Default::default()
        }
    }

    #[test]
    fn a_broken_profile_refuses_creation_and_spares_every_other_call() {
        let cloud = Cloud::default();
        let broken = spec(json!({"create": {"minDelay": "later"}}));
        for call in [Call::Create, Call::Initialize] {
            let err = cloud.profile("c", &broken, call).unwrap_err();
            assert_eq!(err.code, Code::InvalidArgument);
            assert!(
                err.message
                    .starts_with("providerSpec.cloudProfile.create.minDelay"),
                "{err}"
            );
        }
        for call in [Call::GetMachineStatus, Call::ListMachines, Call::Delete] {
            assert_eq!(
                cloud.profile("c", &broken, call).unwrap(),
                CloudProfile::default()
            );
        }
    }

    #[tokio::test]
    async fn an_injected_error_says_which_rule_fired() {
        let profile = CloudProfile::parse(Some(&json!({
            "delete": {"rateLimitError": {"errorDuration": "30s"}}
        })))
        .unwrap();
        let err = Cloud::meet(&profile, Call::Delete, "m1", Duration::from_secs(3))
            .await
            .unwrap_err();
        assert_eq!(err.code, Code::ResourceExhausted);
        assert_eq!(
            err.message,
            "request limit exceeded (injected by the local cloud profile: delete.rateLimitError ResourceExhausted for 30s)"
        );
        assert!(err.injected.is_some());
        // Past the window, and for other calls, nothing happens.
        assert!(
            Cloud::meet(&profile, Call::Delete, "m1", Duration::from_secs(31))
                .await
                .is_ok()
        );
        assert!(
            Cloud::meet(&profile, Call::Create, "m1", Duration::ZERO)
                .await
                .is_ok()
        );
    }

    #[test]
    fn the_quota_refuses_the_vm_beyond_it_with_resource_exhausted() {
        let profile = CloudProfile::parse(Some(&json!({"instanceQuota": 2}))).unwrap();
        assert!(Cloud::admit(&profile, "c", "m3", 1).is_ok());
        let err = Cloud::admit(&profile, "c", "m3", 2).unwrap_err();
        assert_eq!(err.code, Code::ResourceExhausted);
        assert_eq!(
            err.message,
            "quota exceeded: 2 of 2 instances of class \"c\" are in use (injected by the local cloud profile: instanceQuota 2)"
        );
        assert!(Cloud::admit(&CloudProfile::default(), "c", "m3", 1_000).is_ok());
    }
}
