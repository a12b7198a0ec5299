// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Who runs the controller, and until when: leader election on the Lease
//! `machine-controller` in `--namespace` of the control cluster (through
//! `kube-lease-manager`), and shutdown on request.
//!
//! MCM's flags mean what they mean in client-go: the lease is valid for
//! `--leader-elect-lease-duration` after each renewal; the leader renews every
//! `--leader-elect-retry-period`; a leader that has not renewed for
//! `--leader-elect-renew-deadline` gives up, before anyone else may take the lease.
//! `kube-lease-manager` renews `grace` seconds before expiry and tells us when it
//! sees another holder, but it keeps believing it leads while renewals fail; a
//! watch on the Lease feeds our own renew-deadline check, so that a leader cut off
//! from the API server stops well before the lease expires for the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher::ListSemantic;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError, LeaseParams};
use rand::Rng;
use tokio::sync::watch;

use crate::admin::{Health, Role};
use crate::contract::{FIELD_MANAGER, LEASE_NAME};

/// Lease parameters in the units `kube-lease-manager` takes, checked so that its
/// constructor (which panics on bad values) never sees one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `leaseDurationSeconds`.
    pub duration_secs: u64,
    /// Renew this many seconds before expiry, i.e. every `retry_period`.
    pub grace_secs: u64,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// Whole seconds, rounded up: the Lease counts seconds, and rounding down could
/// make a valid sub-second setting zero.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Maps MCM's flags to lease parameters, or says which flag is wrong.
pub fn timing(
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
) -> Result<Timing, String> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if retry_period.is_zero() {
        return Err("--leader-elect-retry-period must be greater than zero".into());
    }
    if renew_deadline >= lease_duration {
        return Err(format!(
            "--leader-elect-renew-deadline ({}) must be shorter than --leader-elect-lease-duration ({})",
            show(renew_deadline),
            show(lease_duration)
        ));
    }
    if retry_period >= renew_deadline {
        return Err(format!(
            "--leader-elect-retry-period ({}) must be shorter than --leader-elect-renew-deadline ({})",
            show(retry_period),
            show(renew_deadline)
        ));
    }
    let duration_secs = ceil_secs(lease_duration);
    let retry_secs = ceil_secs(retry_period);
    if retry_secs >= duration_secs {
        return Err(format!(
            "--leader-elect-retry-period ({}) must be at least a second shorter than --leader-elect-lease-duration ({})",
            show(retry_period),
            show(lease_duration)
        ));
    }
    Ok(Timing {
        duration_secs,
        grace_secs: duration_secs - retry_secs,
        renew_deadline,
        retry_period: Duration::from_secs(retry_secs),
    })
}

/// This replica's holder identity: the Pod (or host) name, and a random suffix as
/// client-go adds, so that a restarted container never mistakes its
/// predecessor's lease for its own.
pub fn identity(pod_name: Option<&str>, hostname: Option<&str>) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect();
    identity_with(pod_name, hostname, &suffix)
}

fn identity_with(pod_name: Option<&str>, hostname: Option<&str>, suffix: &str) -> String {
    let base = [pod_name, hostname]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(FIELD_MANAGER);
    format!("{base}_{suffix}")
}

/// The host name, if the system tells it.
pub fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Field managers are limited to 128 characters.
fn field_manager(identity: &str) -> String {
    format!("{FIELD_MANAGER}-{identity}")
        .chars()
        .take(128)
        .collect()
}

/// A shutdown request, shared by everyone who must stop.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A handle to request shutdown with, and the request to wait on.
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown is requested (or nobody can request it any more).
    pub async fn wait(self) {
        let mut rx = self.0;
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Why a leader stopped leading.
type Lost = String;

/// Waits for the lease, runs `controller` while holding it, and releases it once
/// the controller has stopped after `shutdown`. Returns an error when the lease
/// is lost: the controller is dropped at once (no further writes), and the caller
/// exits non-zero, as client-go's leader election does.
pub async fn lead<Fut: Future<Output = ()>>(
    client: Client,
    namespace: &str,
    identity: &str,
    timing: Timing,
    health: Arc<Health>,
    shutdown: Shutdown,
    controller: impl FnOnce() -> Fut,
) -> Result<(), String> {
    let params = LeaseParams::new(identity, timing.duration_secs, timing.grace_secs)
        .with_field_manager(field_manager(identity));
    let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(namespace)
        .with_parameters(params)
        .build()
        .await
        .map_err(|e| format!("leader election on Lease {namespace}/{LEASE_NAME}: {e}"))?;

    health.set_role(Role::Standby);
    tracing::info!(
        identity,
        lease = LEASE_NAME,
        namespace,
        "waiting for the leader lease"
    );
    let mut attempt = renewal(&manager, Duration::ZERO);
    loop {
        tokio::select! {
            biased;
            () = shutdown.clone().wait() => {
                tracing::info!("shutting down while standing by");
                return Ok(());
            }
            result = &mut attempt => {
                let pause = match result {
                    Ok(true) => break,
                    Ok(false) => Duration::ZERO,
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: cannot read or take the lease");
                        timing.retry_period
                    }
                };
                attempt = renewal(&manager, pause);
            }
        }
    }
    drop(attempt);

    tracing::info!(
        identity,
        "acquired the leader lease, starting the controller"
    );
    health.set_role(Role::Leading);
    let acquired = jiff::Timestamp::now();
    tokio::select! {
        reason = keep(&manager, client, namespace, identity, timing, acquired) => {
            // Returning drops the controller and its reconciles: no more writes.
            return Err(format!("lost the leader lease: {reason}"));
        }
        () = controller() => {}
    }
    // Renewals stopped with `keep`; now the others need not wait for expiry.
    match manager.release().await {
        Ok(()) => tracing::info!("released the leader lease"),
        Err(e) => tracing::warn!(error = %e, "could not release the leader lease"),
    }
    if shutdown.requested() {
        Ok(())
    } else {
        Err("the controller stopped unexpectedly".into())
    }
}

type Attempt<'a> = Pin<Box<dyn Future<Output = Result<bool, LeaseManagerError>> + 'a>>;

/// `LeaseManager::changed` after `pause`: resolves when this replica's hold on the
/// lease changes; in between it takes or renews the lease as due.
fn renewal(manager: &LeaseManager, pause: Duration) -> Attempt<'_> {
    Box::pin(async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        manager.changed().await
    })
}

/// Keeps the lease renewed; resolves when it is lost, saying why.
async fn keep(
    manager: &LeaseManager,
    client: Client,
    namespace: &str,
    identity: &str,
    timing: Timing,
    acquired: jiff::Timestamp,
) -> Lost {
    // A consistent list, so that the first state seen is not one from before we
    // took the lease.
    let config = watcher::Config::default()
        .fields(&format!("metadata.name={LEASE_NAME}"))
        .list_semantic(ListSemantic::MostRecent);
    let mut leases = watcher(Api::<Lease>::namespaced(client, namespace), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut renewed = acquired;
    let mut attempt = renewal(manager, Duration::ZERO);
    let mut check = tokio::time::interval(timing.retry_period);
    loop {
        tokio::select! {
            result = &mut attempt => {
                let pause = match result {
                    Ok(false) => return "another replica holds it".into(),
                    Ok(true) => Duration::ZERO,
                    Err(e) => {
                        tracing::warn!(error = %e, "renewing the leader lease failed");
                        timing.retry_period
                    }
                };
                attempt = renewal(manager, pause);
            }
            seen = leases.next() => match seen {
                Some(Ok(lease)) => match observed(&lease, identity) {
                    Observed::Renewed(at) => renewed = renewed.max(at),
                    Observed::Held(Some(by)) => return format!("the lease is held by {by}"),
                    Observed::Held(None) => return "the lease was released by someone else".into(),
                },
                Some(Err(e)) => tracing::debug!(error = %e, "watching the leader lease"),
                None => return "the lease watch ended".into(),
            },
            _ = check.tick() => {
                if let Some(reason) = overdue(renewed, jiff::Timestamp::now(), timing.renew_deadline) {
                    return reason;
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Observed {
    /// We hold it, renewed at this time (our own clock wrote it).
    Renewed(jiff::Timestamp),
    /// Someone else, or nobody, holds it.
    Held(Option<String>),
}

fn observed(lease: &Lease, identity: &str) -> Observed {
    let spec = lease.spec.clone().unwrap_or_default();
    match spec.holder_identity {
        Some(holder) if holder == identity => match spec.renew_time {
            Some(t) => Observed::Renewed(t.0),
            // Ours but never renewed: nothing to learn; the deadline decides.
            None => Observed::Renewed(jiff::Timestamp::UNIX_EPOCH),
        },
        other => Observed::Held(other),
    }
}

/// Why the leader must give up, if its last renewal is older than the deadline.
fn overdue(renewed: jiff::Timestamp, now: jiff::Timestamp, deadline: Duration) -> Option<Lost> {
    let since = Duration::try_from(now.duration_since(renewed)).unwrap_or_default();
    (since > deadline).then(|| {
        format!(
            "not renewed for {}, longer than the renew deadline of {}",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            )),
            humantime::format_duration(deadline)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn mcm_defaults_renew_every_retry_period() {
        let t = timing(S(15), S(10), S(2)).unwrap();
        assert_eq!(
            t,
            Timing {
                duration_secs: 15,
                grace_secs: 13,
                renew_deadline: S(10),
                retry_period: S(2),
            }
        );
    }

    #[test]
    fn bad_flags_are_errors_naming_them_never_panics() {
        let err = timing(S(10), S(10), S(2)).unwrap_err();
        assert!(err.contains("--leader-elect-renew-deadline (10s) must be shorter than --leader-elect-lease-duration (10s)"), "{err}");
        let err = timing(S(15), S(10), S(10)).unwrap_err();
        assert!(err.contains("--leader-elect-retry-period (10s)"), "{err}");
        assert!(timing(S(15), S(10), Duration::ZERO).is_err());
        // Sub-second values round up, and must still leave a grace period.
        let err = timing(
            Duration::from_millis(1500),
            Duration::from_millis(1200),
            Duration::from_millis(1100),
        )
        .unwrap_err();
        assert!(err.contains("at least a second shorter"), "{err}");
        let t = timing(
            Duration::from_millis(2500),
            Duration::from_secs(2),
            Duration::from_millis(500),
        )
        .unwrap();
        assert_eq!((t.duration_secs, t.grace_secs), (3, 2));
        // Whatever passes is safe for LeaseParams::new.
        let p = LeaseParams::new("x", t.duration_secs, t.grace_secs);
        drop(p);
    }

    #[test]
    fn identities_prefer_the_pod_name_and_are_unique() {
        assert_eq!(identity_with(Some("mc-0"), Some("host"), "abc"), "mc-0_abc");
        assert_eq!(identity_with(Some(" "), Some("host"), "abc"), "host_abc");
        assert_eq!(identity_with(None, None, "abc"), "machine-controller_abc");
        assert_ne!(identity(Some("mc-0"), None), identity(Some("mc-0"), None));
        assert!(field_manager(&"x".repeat(300)).len() <= 128);
    }

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

    #[test]
    fn the_lease_tells_renewals_from_other_holders() {
        let at: jiff::Timestamp = "2026-01-01T00:00:01Z".parse().unwrap();
        assert_eq!(
            observed(&lease(Some("me"), Some("2026-01-01T00:00:01Z")), "me"),
            Observed::Renewed(at)
        );
        assert_eq!(
            observed(&lease(Some("you"), None), "me"),
            Observed::Held(Some("you".into()))
        );
        assert_eq!(observed(&lease(None, None), "me"), Observed::Held(None));
        assert_eq!(observed(&Lease::default(), "me"), Observed::Held(None));
    }

    #[test]
    fn a_leader_gives_up_after_the_renew_deadline() {
        let renewed: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(overdue(renewed, at("2026-01-01T00:00:10Z"), S(10)), None);
        let why = overdue(renewed, at("2026-01-01T00:00:11Z"), S(10)).unwrap();
        assert_eq!(
            why,
            "not renewed for 11s, longer than the renew deadline of 10s"
        );
        // A clock that went backwards is not a reason.
        assert_eq!(overdue(renewed, at("2025-12-31T00:00:00Z"), S(10)), None);
    }

    #[tokio::test]
    async fn shutdown_wakes_every_waiter() {
        let (tx, shutdown) = Shutdown::new();
        assert!(!shutdown.requested());
        let waiter = tokio::spawn(shutdown.clone().wait());
        tx.send(true).unwrap();
        waiter.await.unwrap();
        assert!(shutdown.requested());
    }
}
