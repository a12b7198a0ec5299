// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The Lease as a lock, with the verbs Gardener's Role grants and nothing more:
//! `get`, `create` and `update` (a PUT carrying the resourceVersion that was
//! read, so two replicas can never both win the same round). `kube-lease-manager`
//! patches the Lease and lists it to watch it; Gardener's Role for MCM
//! (`pkg/component/nodemanagement/machinecontrollermanager`) allows neither, so
//! under Gardener it could never lead.
//!
//! The rules are client-go's `tryAcquireOrRenew`: a lease held by someone else is
//! valid until it has gone unchanged, *as observed by this replica's monotonic
//! clock*, for the duration the holder wrote into it (`spec.leaseDurationSeconds`),
//! not ours: a holder with a longer duration renews less often. The holder's
//! `renewTime` is never compared with our wall clock, so skewed clocks cannot hand
//! the lease to two replicas.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::contract::LEASE_NAME;

/// The part of a Lease that says who holds it; a change in any field is a sign
/// of life from the holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub holder: String,
    pub duration_seconds: Option<i32>,
    pub acquire_time: Option<String>,
    pub renew_time: Option<String>,
    pub transitions: i32,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.as_ref();
        Record {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default(),
            duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
            acquire_time: spec
                .and_then(|s| s.acquire_time.as_ref())
                .map(|t| t.0.to_string()),
            renew_time: spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string()),
            transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
        }
    }

    /// How long the holder's lease is valid after we saw it change: the holder's
    /// own `leaseDurationSeconds`, as client-go judges it. The API server refuses
    /// a value that is not positive; where it is absent anyway, client-go reads 0
    /// (expired at once) and we read `ours`, which never takes a lease sooner.
    fn duration(&self, ours: Duration) -> Duration {
        match self.duration_seconds {
            Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs().into()),
            _ => ours,
        }
    }
}

/// What to do with the Lease as it was just read (none at all: create it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ours: renew it (same acquire time and transitions).
    Renew,
    /// Free, released or expired: take it over (one more transition).
    Take,
    /// Someone else holds it and it has not expired.
    Wait { holder: String },
}

/// What this replica has seen of the Lease, and since when (monotonic).
#[derive(Debug, Default)]
pub struct Observer {
    seen: Option<(Record, Instant)>,
}

impl Observer {
    /// Notes `record` as seen at `now`; the clock restarts only when it changed.
    fn observe(&mut self, record: &Record, now: Instant) -> Instant {
        match &self.seen {
            Some((old, since)) if old == record => *since,
            _ => {
                self.seen = Some((record.clone(), now));
                now
            }
        }
    }
}

/// client-go's decision, as a pure function of what was read and observed.
/// `duration` is ours, used only where the lease names none.
pub fn decide(
    lease: &Lease,
    identity: &str,
    observer: &mut Observer,
    now: Instant,
    duration: Duration,
) -> Step {
    let record = Record::of(lease);
    let since = observer.observe(&record, now);
    if record.holder == identity {
        Step::Renew
    } else if record.holder.is_empty()
        || now.saturating_duration_since(since) >= record.duration(duration)
    {
        Step::Take
    } else {
        Step::Wait {
            holder: record.holder,
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug)]
pub enum Attempt {
    /// We hold the lease now.
    Held,
    /// Someone else does.
    HeldBy(String),
    /// Another replica wrote first (409) or the request failed; try again.
    Failed(kube::Error),
}

/// Reads the Lease and, if [`decide`] says so, writes it: one attempt of
/// client-go's loop.
pub async fn try_acquire_or_renew(
    api: &Api<Lease>,
    identity: &str,
    observer: &mut Observer,
    duration: Duration,
) -> Attempt {
    let current = match api.get_opt(LEASE_NAME).await {
        Ok(l) => l,
        Err(e) => return Attempt::Failed(e),
    };
    let now = jiff::Timestamp::now();
    let written = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(held(identity, duration, now, now, 0)),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            let step = decide(&lease, identity, observer, Instant::now(), duration);
            let old = lease.spec.take().unwrap_or_default();
            let transitions = old.lease_transitions.unwrap_or(0);
            lease.spec = Some(match step {
                Step::Wait { holder } => return Attempt::HeldBy(holder),
                Step::Renew => held(
                    identity,
                    duration,
                    old.acquire_time.map_or(now, |t| t.0),
                    now,
                    transitions,
                ),
                Step::Take => held(identity, duration, now, now, transitions.saturating_add(1)),
            });
            // `replace` sends the resourceVersion read above: the fence.
            api.replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
        }
    };
    match written {
        Ok(lease) => {
            observer.observe(&Record::of(&lease), Instant::now());
            Attempt::Held
        }
        Err(e) => Attempt::Failed(e),
    }
}

/// Gives the lease up if we hold it, so that the next leader need not wait for
/// it to expire (client-go's ReleaseOnCancel: holder empty, duration 1 s).
pub async fn release(api: &Api<Lease>, identity: &str) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        return Ok(false);
    };
    let old = lease.spec.take().unwrap_or_default();
    if old.holder_identity.as_deref() != Some(identity) {
        return Ok(false);
    }
    let now = jiff::Timestamp::now();
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: old.lease_transitions,
        ..Default::default()
    });
    api.replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
        .map(|_| true)
}

fn held(
    identity: &str,
    duration: Duration,
    acquired: jiff::Timestamp,
    renewed: jiff::Timestamp,
    transitions: i32,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(identity.into()),
        lease_duration_seconds: Some(i32::try_from(super::ceil_secs(duration)).unwrap_or(i32::MAX)),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(renewed)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

/// The lease API on the control cluster.
pub fn api(client: Client, namespace: &str) -> Api<Lease> {
    Api::namespaced(client, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: Option<&str>) -> Lease {
        held_for(holder, renewed, None)
    }

    fn held_for(holder: Option<&str>, renewed: Option<&str>, seconds: Option<i32>) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                renew_time: renewed.map(|t| MicroTime(t.parse().unwrap())),
                lease_duration_seconds: seconds,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn wait() -> Step {
        Step::Wait {
            holder: "you".into(),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn our_own_lease_is_renewed() {
        let mut o = Observer::default();
        let t = Instant::now();
        let ours = lease(Some("me"), Some("2026-01-01T00:00:00Z"));
        assert_eq!(decide(&ours, "me", &mut o, t, D), Step::Renew);
    }

    #[test]
    fn a_released_or_never_held_lease_is_taken_at_once() {
        let mut o = Observer::default();
        let t = Instant::now();
        assert_eq!(
            decide(&lease(Some(""), None), "me", &mut o, t, D),
            Step::Take
        );
        assert_eq!(decide(&lease(None, None), "me", &mut o, t, D), Step::Take);
    }

    #[test]
    fn another_holder_is_waited_for_until_unchanged_for_the_duration() {
        let mut o = Observer::default();
        let t0 = Instant::now();
        let theirs = lease(Some("you"), Some("2020-01-01T00:00:00Z"));
        // However old its renewTime looks by our clock, we first watch it.
        let wait = Step::Wait {
            holder: "you".into(),
        };
        assert_eq!(decide(&theirs, "me", &mut o, t0, D), wait);
        assert_eq!(
            decide(&theirs, "me", &mut o, t0 + D - Duration::from_millis(1), D),
            wait
        );
        // A renewal restarts the clock.
        let renewed = lease(Some("you"), Some("2020-01-01T00:00:02Z"));
        assert_eq!(decide(&renewed, "me", &mut o, t0 + D, D), wait);
        assert_eq!(decide(&renewed, "me", &mut o, t0 + D + D, D), Step::Take);
    }

    #[test]
    fn a_holder_with_a_longer_duration_is_waited_for_its_own_duration() {
        // A Go replica with --leader-elect-lease-duration=60s renews less often
        // than our 15 s would allow: judging by ours would take a live lease.
        let mut o = Observer::default();
        let t0 = Instant::now();
        let theirs = held_for(Some("you"), Some("2020-01-01T00:00:00Z"), Some(60));
        assert_eq!(decide(&theirs, "me", &mut o, t0, D), wait());
        assert_eq!(decide(&theirs, "me", &mut o, t0 + D, D), wait());
        let sixty = Duration::from_secs(60);
        assert_eq!(decide(&theirs, "me", &mut o, t0 + sixty - MS, D), wait());
        assert_eq!(decide(&theirs, "me", &mut o, t0 + sixty, D), Step::Take);
    }

    #[test]
    fn a_holder_with_a_shorter_duration_expires_after_its_own_duration() {
        let mut o = Observer::default();
        let t0 = Instant::now();
        let theirs = held_for(Some("you"), Some("2020-01-01T00:00:00Z"), Some(5));
        let five = Duration::from_secs(5);
        assert_eq!(decide(&theirs, "me", &mut o, t0, D), wait());
        assert_eq!(decide(&theirs, "me", &mut o, t0 + five - MS, D), wait());
        assert_eq!(decide(&theirs, "me", &mut o, t0 + five, D), Step::Take);
    }

    #[test]
    fn a_lease_without_a_valid_duration_is_judged_with_ours() {
        for seconds in [None, Some(0), Some(-3)] {
            let mut o = Observer::default();
            let t0 = Instant::now();
            let theirs = held_for(Some("you"), Some("2020-01-01T00:00:00Z"), seconds);
            assert_eq!(decide(&theirs, "me", &mut o, t0, D), wait(), "{seconds:?}");
            assert_eq!(
                decide(&theirs, "me", &mut o, t0 + D - MS, D),
                wait(),
                "{seconds:?}"
            );
            assert_eq!(
                decide(&theirs, "me", &mut o, t0 + D, D),
                Step::Take,
                "{seconds:?}"
            );
        }
    }

    #[test]
    fn a_changed_duration_is_a_sign_of_life() {
        // client-go compares the whole record, the duration included.
        let mut o = Observer::default();
        let t0 = Instant::now();
        let renewed = "2020-01-01T00:00:00Z";
        let short = held_for(Some("you"), Some(renewed), Some(5));
        assert_eq!(decide(&short, "me", &mut o, t0, D), wait());
        let long = held_for(Some("you"), Some(renewed), Some(30));
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(decide(&long, "me", &mut o, t1, D), wait());
        // Counted from t1, not t0, and with the new duration.
        let thirty = Duration::from_secs(30);
        assert_eq!(decide(&long, "me", &mut o, t1 + thirty - MS, D), wait());
        assert_eq!(decide(&long, "me", &mut o, t1 + thirty, D), Step::Take);
    }
}
