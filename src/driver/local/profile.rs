// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The cloud profile a class may carry (`providerSpec.cloudProfile`): how the
//! local driver's calls are delayed and made to fail, so that the local cloud
//! fails like a real one (issue #23). This module only reads, checks and
//! decides, from plain values; [`cloud`](super::cloud) acts on it.
//!
//! Key names follow MCM's proposal for a simulation provider (#1121) where they
//! fit: `instanceQuota`, `create.minDelay`, `create.maxDelay`,
//! `percentageOfMachines`, `delete.rateLimitError.errorDuration`.
//!
//! Long because: its tests show each rule with plain values, beside the
//! rules they check.
//!
//! Every choice is a function of the seed, the call and the machine's name, so
//! a run repeats exactly; time windows run from the machine's own timestamps
//! (created, deletion asked), so a restart of the controller changes nothing.

use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::driver::Code;

/// The driver calls a profile can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Create,
    Initialize,
    GetMachineStatus,
    ListMachines,
    Delete,
}

impl Call {
    /// The call's key in the profile.
    pub fn key(self) -> &'static str {
        match self {
            Call::Create => "create",
            Call::Initialize => "initialize",
            Call::GetMachineStatus => "getMachineStatus",
            Call::ListMachines => "listMachines",
            Call::Delete => "delete",
        }
    }
}

/// `providerSpec.cloudProfile` as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    seed: u64,
    instance_quota: Option<u32>,
    create: Option<RawCall>,
    initialize: Option<RawCall>,
    get_machine_status: Option<RawCall>,
    list_machines: Option<RawCall>,
    delete: Option<RawCall>,
    boot: Option<RawBoot>,
}

/// `boot`: what becomes of a share of the VMs once made.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBoot {
    pod_fails: Option<RawShare>,
    never_joins: Option<RawShare>,
    goes_not_ready: Option<RawNotReady>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawShare {
    percentage_of_machines: f64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNotReady {
    percentage_of_machines: f64,
    after: String,
}

/// What becomes of a VM once it is made (`boot`): the kubelet stand-in of the
/// local cluster plays it, from the Pod's annotation
/// `local.machine.sapcloud.io/boot-fault` ([`BootFault::annotation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFault {
    /// The VM crashes: its Pod fails before the kubelet joins.
    PodFails,
    /// The VM runs, but its kubelet never joins.
    NeverJoins,
    /// The kubelet joins, and stops posting status this long after the VM
    /// started running.
    NotReadyAfter(Duration),
}

impl BootFault {
    /// The annotation's value.
    pub fn annotation(self) -> String {
        match self {
            BootFault::PodFails => "pod-fails".into(),
            BootFault::NeverJoins => "never-joins".into(),
            BootFault::NotReadyAfter(d) => format!("not-ready-after={}s", d.as_secs()),
        }
    }

    /// Its key in the profile (and the metric's label).
    pub fn key(self) -> &'static str {
        match self {
            BootFault::PodFails => "podFails",
            BootFault::NeverJoins => "neverJoins",
            BootFault::NotReadyAfter(_) => "goesNotReady",
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCall {
    min_delay: Option<String>,
    max_delay: Option<String>,
    error: Option<RawError>,
    rate_limit_error: Option<RawRateLimit>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawError {
    code: String,
    percentage_of_machines: f64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRateLimit {
    error_duration: String,
    code: Option<String>,
}

/// A profile that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("providerSpec.cloudProfile{field}: {why}")]
pub struct ProfileError {
    field: String,
    why: String,
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> ProfileError {
    ProfileError {
        field: field.into(),
        why: why.into(),
    }
}

/// What a profile does to one call.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CallProfile {
    /// Each call waits between these two (the same machine, the same wait).
    pub delay: (Duration, Duration),
    /// This share of machines (0 to 100) gets this error on every such call.
    pub error: Option<(Code, f64)>,
    /// The call answers this code (`ResourceExhausted` unless the profile
    /// names another) for this long after the machine's own start (creation,
    /// or deletion asked).
    pub rate_limit_for: Option<(Duration, Code)>,
}

/// A checked cloud profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloudProfile {
    pub seed: u64,
    /// VMs of the class that may exist at once.
    pub instance_quota: Option<u32>,
    calls: Vec<(Call, CallProfile)>,
    /// Each fault with its share of machines (0 to 100, 100 at most in all).
    boot: Vec<(BootFault, f64)>,
}

/// What a call meets.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub delay: Duration,
    /// The injected error and the rule that fired (for the log and the count).
    pub error: Option<(Code, String)>,
    /// The error is a rate limit's, whatever its code.
    pub throttled: bool,
}

impl CloudProfile {
    /// Reads and checks `providerSpec.cloudProfile`; none at all is the
    /// profile that never delays nor fails.
    pub fn parse(raw: Option<&serde_json::Value>) -> Result<Self, ProfileError> {
        let Some(raw) = raw.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let raw: Raw =
            serde_json::from_value(raw.clone()).map_err(|e| invalid("", e.to_string()))?;
        let mut calls = Vec::new();
        for (call, spec) in [
            (Call::Create, raw.create),
            (Call::Initialize, raw.initialize),
            (Call::GetMachineStatus, raw.get_machine_status),
            (Call::ListMachines, raw.list_machines),
            (Call::Delete, raw.delete),
        ] {
            if let Some(spec) = spec {
                calls.push((call, check_call(call, spec)?));
            }
        }
        Ok(Self {
            seed: raw.seed,
            instance_quota: raw.instance_quota,
            calls,
            boot: raw.boot.map(check_boot).transpose()?.unwrap_or_default(),
        })
    }

    /// What becomes of `machine`'s VM once made, and the rule that says so:
    /// one draw for all faults, so that their shares add up and a machine
    /// meets one at most.
    pub fn boot_fault(&self, machine: &str) -> Option<(BootFault, String)> {
        let x = self.draw("boot", machine, "fault") * 100.0;
        let mut below = 0.0;
        for (fault, share) in &self.boot {
            below += share;
            if x < below {
                let rule = format!("boot.{} for {share}% of machines", fault.key());
                return Some((*fault, rule));
            }
        }
        None
    }

    fn call(&self, call: Call) -> Option<&CallProfile> {
        self.calls.iter().find(|(c, _)| *c == call).map(|(_, p)| p)
    }

    /// What `call` for `machine` meets, `since` its start (creation for most
    /// calls, the deletion for Delete).
    pub fn fault(&self, call: Call, machine: &str, since: Duration) -> Fault {
        let Some(p) = self.call(call) else {
            return Fault {
                delay: Duration::ZERO,
                error: None,
                throttled: false,
            };
        };
        let (min, max) = p.delay;
        let spread = max.saturating_sub(min);
        let delay = min + spread.mul_f64(self.draw(call.key(), machine, "delay"));
        let throttled = p.rate_limit_for.is_some_and(|(window, _)| since < window);
        let error = if let Some((window, code)) = p.rate_limit_for.filter(|_| throttled) {
            Some((
                code,
                format!("{}.rateLimitError {code} for {window:?}", call.key()),
            ))
        } else {
            p.error.and_then(|(code, share)| {
                (self.draw(call.key(), machine, "error") * 100.0 < share).then(|| {
                    (
                        code,
                        format!("{}.error {code} for {share}% of machines", call.key()),
                    )
                })
            })
        };
        Fault {
            delay,
            error,
            throttled,
        }
    }

    /// A number in [0, 1) from the seed, the call (or `boot`), the machine
    /// and what it is for: SHA-256, so that it stays the same across builds
    /// and platforms.
    fn draw(&self, call: &str, machine: &str, what: &str) -> f64 {
        let mut hash = Sha256::new();
        hash.update(self.seed.to_be_bytes());
        for part in [call, machine, what] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 53 bits: every value exact in an f64.
        (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether one more VM of the class fits, with `existing` VMs of it.
    pub fn quota_allows(&self, existing: usize) -> bool {
        self.instance_quota
            .is_none_or(|q| u64::try_from(existing).unwrap_or(u64::MAX) < u64::from(q))
    }
}

fn duration(field: String, text: Option<&str>) -> Result<Option<Duration>, ProfileError> {
    text.map(|t| crate::duration::parse(t).map_err(|why| invalid(field, why)))
        .transpose()
}

fn share(field: &str, percentage: f64) -> Result<f64, ProfileError> {
    if !(0.0..=100.0).contains(&percentage) {
        return Err(invalid(
            format!(".boot.{field}.percentageOfMachines"),
            format!("must be 0 to 100, is {percentage}"),
        ));
    }
    Ok(percentage)
}

fn check_boot(raw: RawBoot) -> Result<Vec<(BootFault, f64)>, ProfileError> {
    let mut faults = Vec::new();
    if let Some(r) = raw.pod_fails {
        faults.push((
            BootFault::PodFails,
            share("podFails", r.percentage_of_machines)?,
        ));
    }
    if let Some(r) = raw.never_joins {
        faults.push((
            BootFault::NeverJoins,
            share("neverJoins", r.percentage_of_machines)?,
        ));
    }
    if let Some(r) = raw.goes_not_ready {
        let field = ".boot.goesNotReady.after".to_string();
        let after = duration(field.clone(), Some(&r.after))?.unwrap_or_default();
        if after.is_zero() {
            return Err(invalid(field, "must be longer than 0s"));
        }
        let pct = share("goesNotReady", r.percentage_of_machines)?;
        faults.push((BootFault::NotReadyAfter(after), pct));
    }
    let total: f64 = faults.iter().map(|(_, p)| p).sum();
    if total > 100.0 {
        return Err(invalid(
            ".boot",
            format!("the shares of machines add up to {total}%, more than 100%"),
        ));
    }
    Ok(faults)
}

/// A code an injected error may carry: any of MCM's but `OK`.
fn error_code(field: String, name: &str) -> Result<Code, ProfileError> {
    match Code::parse(name) {
        None => Err(invalid(field, format!("unknown code {name:?}"))),
        Some(Code::Ok) => Err(invalid(field, "OK is no error")),
        Some(code) => Ok(code),
    }
}

fn check_call(call: Call, raw: RawCall) -> Result<CallProfile, ProfileError> {
    let at = |key: &str| format!(".{}.{key}", call.key());
    let min = duration(at("minDelay"), raw.min_delay.as_deref())?.unwrap_or_default();
    let max = duration(at("maxDelay"), raw.max_delay.as_deref())?.unwrap_or(min);
    if max < min {
        return Err(invalid(
            at("maxDelay"),
            format!("must not be below minDelay ({min:?}), is {max:?}"),
        ));
    }
    let error = match raw.error {
        None => None,
        Some(e) => {
            let code = error_code(at("error.code"), &e.code)?;
            if !(0.0..=100.0).contains(&e.percentage_of_machines) {
                return Err(invalid(
                    at("error.percentageOfMachines"),
                    format!("must be 0 to 100, is {}", e.percentage_of_machines),
                ));
            }
            Some((code, e.percentage_of_machines))
        }
    };
    let rate_limit_for = match raw.rate_limit_error {
        None => None,
        Some(r) => {
            let field = at("rateLimitError.errorDuration");
            let d = duration(field.clone(), Some(&r.error_duration))?.unwrap_or_default();
            if d.is_zero() {
                return Err(invalid(field, "must be longer than 0s"));
            }
            let code = match r.code {
                None => Code::ResourceExhausted,
                Some(name) => error_code(at("rateLimitError.code"), &name)?,
            };
            Some((d, code))
        }
    };
    Ok(CallProfile {
        delay: (min, max),
        error,
        rate_limit_for,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(v: serde_json::Value) -> CloudProfile {
        CloudProfile::parse(Some(&v)).unwrap()
    }

    fn error_of(v: serde_json::Value) -> String {
        CloudProfile::parse(Some(&v)).unwrap_err().to_string()
    }

    #[test]
    fn no_profile_never_delays_nor_fails() {
        let none = CloudProfile::parse(None).unwrap();
        assert_eq!(none, CloudProfile::parse(Some(&json!(null))).unwrap());
        let f = none.fault(Call::Create, "m1", Duration::ZERO);
        assert_eq!(f.delay, Duration::ZERO);
        assert_eq!(f.error, None);
        assert!(none.quota_allows(1_000_000));
    }

    #[test]
    fn a_share_of_machines_fails_and_the_same_seed_fails_the_same_names() {
        let p = profile(json!({"seed": 7, "create": {
            "error": {"code": "Unavailable", "percentageOfMachines": 10}}}));
        let failed: Vec<String> = (0..1000)
            .map(|i| format!("pool-a-{i}"))
            .filter(|m| p.fault(Call::Create, m, Duration::ZERO).error.is_some())
            .collect();
        assert!(
            (80..=120).contains(&failed.len()),
            "{} of 1000 failed",
            failed.len()
        );
        let again: Vec<String> = (0..1000)
            .map(|i| format!("pool-a-{i}"))
            .filter(|m| p.fault(Call::Create, m, Duration::ZERO).error.is_some())
            .collect();
        assert_eq!(failed, again);
        // Another seed picks other machines.
        let other = profile(json!({"seed": 8, "create": {
            "error": {"code": "Unavailable", "percentageOfMachines": 10}}}));
        let picked_by_other = failed
            .iter()
            .filter(|m| other.fault(Call::Create, m, Duration::ZERO).error.is_some())
            .count();
        assert!(picked_by_other < failed.len() / 2, "{picked_by_other}");
        // Other calls are untouched.
        assert!(
            failed
                .iter()
                .all(|m| p.fault(Call::Delete, m, Duration::ZERO).error.is_none())
        );
        let (code, rule) = p
            .fault(Call::Create, &failed[0], Duration::ZERO)
            .error
            .unwrap();
        assert_eq!(code, Code::Unavailable);
        assert_eq!(rule, "create.error Unavailable for 10% of machines");
    }

    #[test]
    fn delays_fall_in_their_range_and_repeat() {
        let p = profile(json!({"create": {"minDelay": "2s", "maxDelay": "10s"}}));
        let delays: Vec<Duration> = (0..200)
            .map(|i| {
                p.fault(Call::Create, &format!("m{i}"), Duration::ZERO)
                    .delay
            })
            .collect();
        assert!(
            delays
                .iter()
                .all(|d| (Duration::from_secs(2)..=Duration::from_secs(10)).contains(d))
        );
        assert!(delays.iter().any(|d| *d < Duration::from_secs(4)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(8)));
        assert_eq!(p.fault(Call::Create, "m3", Duration::ZERO).delay, delays[3]);
        // minDelay alone: a fixed delay.
        let fixed = profile(json!({"delete": {"minDelay": "1s"}}));
        assert_eq!(
            fixed.fault(Call::Delete, "x", Duration::ZERO).delay,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_rate_limit_error_lasts_its_duration_from_the_machines_start() {
        let p = profile(json!({"delete": {"rateLimitError": {"errorDuration": "30s"}}}));
        let at = |s: u64| p.fault(Call::Delete, "m1", Duration::from_secs(s)).error;
        assert_eq!(at(0).map(|e| e.0), Some(Code::ResourceExhausted));
        assert_eq!(at(29).map(|e| e.0), Some(Code::ResourceExhausted));
        assert_eq!(at(30), None);
        assert_eq!(
            at(3).map(|e| e.1).as_deref(),
            Some("delete.rateLimitError ResourceExhausted for 30s")
        );
        // A cloud that says Unavailable when it throttles.
        let p = profile(
            json!({"delete": {"rateLimitError": {"errorDuration": "30s", "code": "Unavailable"}}}),
        );
        let f = p.fault(Call::Delete, "m1", Duration::from_secs(3));
        assert_eq!(f.error.map(|e| e.0), Some(Code::Unavailable));
    }

    #[test]
    fn the_quota_counts_existing_vms() {
        let p = profile(json!({"instanceQuota": 20}));
        assert!(p.quota_allows(19));
        assert!(!p.quota_allows(20));
        assert!(!profile(json!({"instanceQuota": 0})).quota_allows(0));
    }

    #[test]
    fn boot_faults_take_their_shares_one_per_machine_and_repeat() {
        let p = profile(json!({"seed": 3, "boot": {
            "podFails": {"percentageOfMachines": 10},
            "neverJoins": {"percentageOfMachines": 20},
            "goesNotReady": {"percentageOfMachines": 30, "after": "2m"}}}));
        let faults: Vec<Option<BootFault>> = (0..1000)
            .map(|i| p.boot_fault(&format!("m{i}")).map(|f| f.0))
            .collect();
        let count = |f: BootFault| faults.iter().filter(|x| **x == Some(f)).count();
        let late = BootFault::NotReadyAfter(Duration::from_secs(120));
        for (fault, lo, hi) in [
            (BootFault::PodFails, 70, 130),
            (BootFault::NeverJoins, 160, 240),
            (late, 250, 350),
        ] {
            let n = count(fault);
            assert!((lo..=hi).contains(&n), "{fault:?}: {n} of 1000");
        }
        assert_eq!(p.boot_fault("m7").map(|f| f.0), faults[7]);
        assert_eq!(late.annotation(), "not-ready-after=120s");
        let (_, rule) = (0..1000)
            .find_map(|i| {
                p.boot_fault(&format!("m{i}"))
                    .filter(|f| f.0 == BootFault::NeverJoins)
            })
            .unwrap();
        assert_eq!(rule, "boot.neverJoins for 20% of machines");
        assert_eq!(CloudProfile::default().boot_fault("m1"), None);
        // All of them: every machine meets one.
        let all = profile(json!({"boot": {"neverJoins": {"percentageOfMachines": 100}}}));
        assert!((0..100).all(|i| all.boot_fault(&format!("m{i}")).is_some()));
    }

    #[test]
    fn a_wrong_profile_is_refused_with_the_field_named() {
        assert_eq!(
            error_of(json!({"create": {"minDelay": "5s", "maxDelay": "1s"}})),
            "providerSpec.cloudProfile.create.maxDelay: must not be below minDelay (5s), is 1s"
        );
        assert!(
            error_of(json!({"delete": {"minDelay": "soon"}}))
                .starts_with("providerSpec.cloudProfile.delete.minDelay: invalid duration")
        );
        assert_eq!(
            error_of(json!({"create": {"error": {"code": "Nope", "percentageOfMachines": 1}}})),
            "providerSpec.cloudProfile.create.error.code: unknown code \"Nope\""
        );
        assert_eq!(
            error_of(
                json!({"create": {"error": {"code": "Internal", "percentageOfMachines": 101}}})
            ),
            "providerSpec.cloudProfile.create.error.percentageOfMachines: must be 0 to 100, is 101"
        );
        assert_eq!(
            error_of(json!({"delete": {"rateLimitError": {"errorDuration": "0s"}}})),
            "providerSpec.cloudProfile.delete.rateLimitError.errorDuration: must be longer than 0s"
        );
        assert_eq!(
            error_of(json!({"delete": {"rateLimitError": {"errorDuration": "1s", "code": "OK"}}})),
            "providerSpec.cloudProfile.delete.rateLimitError.code: OK is no error"
        );
        assert_eq!(
            error_of(json!({"boot": {"podFails": {"percentageOfMachines": 60},
                                     "neverJoins": {"percentageOfMachines": 50}}})),
            "providerSpec.cloudProfile.boot: the shares of machines add up to 110%, more than 100%"
        );
        assert_eq!(
            error_of(json!({"boot": {"goesNotReady": {"percentageOfMachines": 5, "after": "0s"}}})),
            "providerSpec.cloudProfile.boot.goesNotReady.after: must be longer than 0s"
        );
        // A typo is refused, not ignored.
        assert!(error_of(json!({"instanceQouta": 3})).contains("unknown field `instanceQouta`"));
    }
}
