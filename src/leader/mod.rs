// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Who runs the controller, and until when: leader election on the Lease
//! `machine-controller` in `--namespace` of the control cluster, and shutdown on
//! request.
//!
//! MCM's flags mean what they mean in client-go: the lease is valid for
//! `--leader-elect-lease-duration` after each renewal; every replica tries to
//! take or renew it every `--leader-elect-retry-period`; a leader that has not
//! renewed for `--leader-elect-renew-deadline` gives up, before anyone else may
//! take the lease. The lock itself ([`lock`]) uses only the verbs Gardener grants.

pub mod lock;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::{Health, Role};
use crate::client::status;
use crate::contract::{FIELD_MANAGER, LEASE_NAME};
use lock::{Attempt, Observer};

/// MCM's three leader-election flags, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease_duration: Duration,
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
    Ok(Timing {
        lease_duration,
        renew_deadline,
        retry_period,
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
    client: kube::Client,
    namespace: &str,
    identity: &str,
    timing: Timing,
    health: Arc<Health>,
    shutdown: Shutdown,
    controller: impl FnOnce() -> Fut,
) -> Result<(), String> {
    let api = lock::api(client, namespace);
    let mut observer = Observer::default();
    health.set_role(Role::Standby);
    tracing::info!(
        identity,
        lease = LEASE_NAME,
        namespace,
        "waiting for the leader lease"
    );
    let mut holder_seen = String::new();
    loop {
        let attempt = tokio::select! {
            biased;
            () = shutdown.clone().wait() => {
                tracing::info!("shutting down while standing by");
                return Ok(());
            }
            a = lock::try_acquire_or_renew(&api, identity, &mut observer, timing.lease_duration) => a,
        };
        match attempt {
            Attempt::Held => break,
            Attempt::HeldBy(holder) => {
                health.set_lease_problem(None);
                if holder != holder_seen {
                    tracing::info!(%holder, "the leader lease is held by another replica");
                    holder_seen = holder;
                }
            }
            Attempt::Failed(e) if is_conflict(&e) => {
                tracing::debug!("another replica wrote the lease first");
            }
            Attempt::Failed(e) => {
                // Loud on purpose: a replica that can never lead (RBAC, a wrong
                // namespace) looks healthy otherwise, and reconciles nothing.
                let why = format!(
                    "cannot take the leader lease {namespace}/{LEASE_NAME} (needs get, create and update on it): {e}"
                );
                tracing::error!("{why}");
                health.set_lease_problem(Some(why));
            }
        }
        tokio::select! {
            biased;
            () = shutdown.clone().wait() => {
                tracing::info!("shutting down while standing by");
                return Ok(());
            }
            () = tokio::time::sleep(jittered(timing.retry_period)) => {}
        }
    }

    tracing::info!(
        identity,
        "acquired the leader lease, starting the controller"
    );
    health.set_lease_problem(None);
    health.set_role(Role::Leading);
    tokio::select! {
        reason = keep(&api, identity, &mut observer, timing) => {
            // Returning drops the controller and its reconciles: no more writes.
            return Err(format!("lost the leader lease: {reason}"));
        }
        () = controller() => {}
    }
    // Renewals stopped with `keep`; now the others need not wait for expiry.
    match lock::release(&api, identity).await {
        Ok(true) => tracing::info!("released the leader lease"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not release the leader lease"),
    }
    if shutdown.requested() {
        Ok(())
    } else {
        Err("the controller stopped unexpectedly".into())
    }
}

/// Another replica wrote the Lease first: it changed since our copy, or it was
/// created meanwhile.
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if status::conflict(s) || status::already_exists(s))
}

/// client-go waits the retry period plus up to 20 % more, so that replicas
/// started together do not keep colliding.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + rand::rng().random_range(0.0..0.2))
}

/// Renews the lease every retry period; resolves when it is lost, saying why.
async fn keep(
    api: &kube::Api<k8s_openapi::api::coordination::v1::Lease>,
    identity: &str,
    observer: &mut Observer,
    timing: Timing,
) -> Lost {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(timing.retry_period).await;
        // One attempt may take what is left of the deadline, no more.
        let left = timing.renew_deadline.saturating_sub(renewed.elapsed());
        let attempt = tokio::time::timeout(
            left,
            lock::try_acquire_or_renew(api, identity, observer, timing.lease_duration),
        )
        .await;
        match attempt {
            Ok(Attempt::Held) => renewed = Instant::now(),
            Ok(Attempt::HeldBy(holder)) => return format!("the lease is held by {holder}"),
            Ok(Attempt::Failed(e)) => {
                tracing::warn!(error = %e, "renewing the leader lease failed");
            }
            Err(_) => tracing::warn!("renewing the leader lease timed out"),
        }
        if let Some(reason) = overdue(renewed.elapsed(), timing.renew_deadline) {
            return reason;
        }
    }
}

/// Why the leader must give up, if its last renewal is older than the deadline.
fn overdue(since: Duration, deadline: Duration) -> Option<Lost> {
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

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn mcm_defaults_are_accepted() {
        let t = timing(S(15), S(10), S(2)).unwrap();
        assert_eq!(
            t,
            Timing {
                lease_duration: S(15),
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
        // Sub-second values are fine; the Lease rounds its duration up.
        assert!(
            timing(
                Duration::from_millis(1500),
                Duration::from_millis(1200),
                Duration::from_millis(1100),
            )
            .is_ok()
        );
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
    }

    #[test]
    fn identities_prefer_the_pod_name_and_are_unique() {
        assert_eq!(identity_with(Some("mc-0"), Some("host"), "abc"), "mc-0_abc");
        assert_eq!(identity_with(Some(" "), Some("host"), "abc"), "host_abc");
        assert_eq!(identity_with(None, None, "abc"), "machine-controller_abc");
        assert_ne!(identity(Some("mc-0"), None), identity(Some("mc-0"), None));
    }

    #[test]
    fn a_leader_gives_up_after_the_renew_deadline() {
        assert_eq!(overdue(S(10), S(10)), None);
        let why = overdue(S(11), S(10)).unwrap();
        assert_eq!(
            why,
            "not renewed for 11s, longer than the renew deadline of 10s"
        );
    }

    #[test]
    fn retries_are_spread_by_up_to_a_fifth() {
        for _ in 0..100 {
            let d = jittered(S(2));
            assert!(d >= S(2) && d <= Duration::from_millis(2400), "{d:?}");
        }
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
