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
//! clock*, for its duration. The holder's `renewTime` is never compared with our
//! wall clock, so skewed clocks cannot hand the lease to two replicas.

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
            renew_time: spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string()),
            transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
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
    } else if record.holder.is_empty() || now.saturating_duration_since(since) >= duration {
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
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                renew_time: renewed.map(|t| MicroTime(t.parse().unwrap())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

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
}
