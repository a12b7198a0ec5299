// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The admin server on `--address`:`--port`: `/healthz`, `/readyz`, `/metrics`.
//!
//! - `/healthz` is 200 while the process serves, as MCM's: Gardener's liveness
//!   probe reads it, and a controller cut off from an API server must stay up,
//!   frozen, not be restarted into the same outage (which would also drop its
//!   caches and its safety state).
//! - `/readyz` is 503 until every cache the controller reads (machines, classes,
//!   secrets, and with a target nodes and machine Pods) has its first full list,
//!   and while a watch has failed without a single success for
//!   [`WATCH_STALE_AFTER`]. A replica waiting for the lease is ready too:
//!   readiness gates only traffic to `/metrics`, and a standby that reported
//!   unready would make a two-replica Deployment look permanently degraded
//!   (and block rollouts behind `maxUnavailable`) although it is exactly as it
//!   should be. A replica that *cannot* take the lease (RBAC, say) is not ready,
//!   and says why.
//! - `/metrics`: see [`crate::metrics`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::runtime::watcher;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};

/// How long a watch may fail without a success before `/readyz` fails.
pub const WATCH_STALE_AFTER: Duration = Duration::from_secs(120);

/// What this replica is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Connecting, before leader election or the controller has begun.
    #[default]
    Starting,
    /// Waiting for the lease.
    Standby,
    /// Running the controller.
    Leading,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WatchState {
    synced: bool,
    failing_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct HealthState {
    role: Role,
    lease_problem: Option<String>,
    watches: BTreeMap<&'static str, WatchState>,
}

/// Health and readiness signals, fed by leader election and the watches.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<HealthState>,
}

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut HealthState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set_role(&self, role: Role) {
        self.with(|s| s.role = role);
    }

    /// Why the lease cannot be taken (not merely: someone else holds it).
    pub fn set_lease_problem(&self, problem: Option<String>) {
        self.with(|s| s.lease_problem = problem);
    }

    pub fn role(&self) -> Role {
        self.with(|s| s.role)
    }

    /// Declares a watch whose cache must sync before the replica is ready.
    pub fn register_watch(&self, name: &'static str) {
        self.with(|s| {
            s.watches.insert(name, WatchState::default());
        });
    }

    /// Records one item of watch `name`'s stream.
    pub fn watch_event<K>(
        &self,
        name: &'static str,
        item: &Result<watcher::Event<K>, watcher::Error>,
    ) {
        match item {
            Ok(event) => self.watch_ok(name, matches!(event, watcher::Event::InitDone)),
            Err(_) => self.watch_failed(name),
        }
    }

    /// Watch `name` delivered an item; `listed`: its first full list is in.
    pub fn watch_ok(&self, name: &'static str, listed: bool) {
        self.with(|s| {
            let w = s.watches.entry(name).or_default();
            w.failing_since = None;
            if listed {
                w.synced = true;
            }
        });
    }

    /// Watch `name` failed (it retries); failing for long turns `/readyz` bad.
    pub fn watch_failed(&self, name: &'static str) {
        let now = Instant::now();
        self.with(|s| {
            s.watches
                .entry(name)
                .or_default()
                .failing_since
                .get_or_insert(now);
        });
    }

    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        self.with(|s| {
            if let Some(why) = &s.lease_problem {
                return Err(why.clone());
            }
            readiness(s.role, &s.watches)?;
            stale(&s.watches, Instant::now(), WATCH_STALE_AFTER)
        })
    }
}

fn readiness(role: Role, watches: &BTreeMap<&'static str, WatchState>) -> Result<(), String> {
    match role {
        Role::Starting => Err("starting".into()),
        Role::Standby => Ok(()),
        Role::Leading => {
            let pending: Vec<&str> = watches
                .iter()
                .filter(|(_, w)| !w.synced)
                .map(|(name, _)| *name)
                .collect();
            if watches.is_empty() {
                Err("the caches are not set up yet".into())
            } else if pending.is_empty() {
                Ok(())
            } else {
                Err(format!("caches not synced: {}", pending.join(", ")))
            }
        }
    }
}

/// Watches that have failed for longer than `stale_after` without a success.
fn stale(
    watches: &BTreeMap<&'static str, WatchState>,
    now: Instant,
    stale_after: Duration,
) -> Result<(), String> {
    let stale: Vec<String> = watches
        .iter()
        .filter_map(|(name, w)| {
            let failing = now.saturating_duration_since(w.failing_since?);
            (failing > stale_after).then(|| format!("{name} (failing for {}s)", failing.as_secs()))
        })
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!("watches failing: {}", stale.join(", ")))
    }
}

/// What the admin server serves, shared with the controller that feeds it.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

/// Binds `address:port`; port 0 picks a free port (see [`TcpListener::local_addr`]).
pub async fn bind(address: &str, port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((address, port))
        .await
        .map_err(|e| format!("admin server on {address}:{port}: {e}"))
}

pub fn router(telemetry: Telemetry) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(telemetry)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    axum::serve(listener, router(telemetry))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("admin server: {e}"))
}

fn check(result: Result<(), String>, failure: StatusCode) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (failure, format!("{why}\n")).into_response(),
    }
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(t): State<Telemetry>) -> Response {
    check(t.health.readiness(), StatusCode::SERVICE_UNAVAILABLE)
}

async fn metrics_handler(State(t): State<Telemetry>) -> Response {
    match t.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Machine;

    fn watches(
        states: &[(&'static str, bool, Option<Instant>)],
    ) -> BTreeMap<&'static str, WatchState> {
        states
            .iter()
            .map(|&(n, synced, failing_since)| {
                (
                    n,
                    WatchState {
                        synced,
                        failing_since,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn ready_once_every_cache_synced_or_when_standing_by() {
        let none = BTreeMap::new();
        assert!(readiness(Role::Starting, &none).is_err());
        assert!(readiness(Role::Standby, &none).is_ok());
        assert!(readiness(Role::Leading, &none).is_err());
        let half = watches(&[("machines", true, None), ("nodes", false, None)]);
        assert_eq!(
            readiness(Role::Leading, &half),
            Err("caches not synced: nodes".to_string())
        );
        let all = watches(&[("machines", true, None), ("nodes", true, None)]);
        assert!(readiness(Role::Leading, &all).is_ok());
    }

    #[test]
    fn unready_only_after_a_watch_failed_for_long() {
        let now = Instant::now();
        let t = Duration::from_secs(120);
        let ok = watches(&[("machines", true, None)]);
        assert!(stale(&ok, now, t).is_ok());
        let short = watches(&[("machines", true, now.checked_sub(Duration::from_secs(60)))]);
        assert!(stale(&short, now, t).is_ok());
        let long = watches(&[
            ("machines", true, None),
            ("pods", true, now.checked_sub(Duration::from_secs(121))),
        ]);
        let err = stale(&long, now, t).unwrap_err();
        assert!(err.contains("pods (failing for 121s)"), "{err}");
    }

    #[test]
    fn watch_events_drive_sync_and_failure() {
        let h = Health::default();
        h.set_role(Role::Leading);
        h.register_watch("machines");
        assert!(h.readiness().is_err());
        let err: Result<watcher::Event<Machine>, _> = Err(watcher::Error::NoResourceVersion);
        h.watch_event("machines", &err);
        assert!(h.with(|s| s.watches["machines"].failing_since.is_some()));
        h.watch_event::<Machine>("machines", &Ok(watcher::Event::Init));
        h.watch_event::<Machine>("machines", &Ok(watcher::Event::InitDone));
        assert!(h.readiness().is_ok());
        assert!(h.with(|s| s.watches["machines"].failing_since.is_none()));
        h.set_lease_problem(Some("forbidden".into()));
        assert_eq!(h.readiness(), Err("forbidden".into()));
    }

    #[tokio::test]
    async fn serves_the_three_endpoints() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let telemetry = Telemetry::default();
        let listener = bind("127.0.0.1", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, telemetry.clone(), async {
            let _ = stopped.await;
        }));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let status = |response: &str| response.split_whitespace().nth(1).map(str::to_owned);
        assert_eq!(status(&get("/healthz").await).as_deref(), Some("200"));
        assert_eq!(status(&get("/readyz").await).as_deref(), Some("503"));
        telemetry.health.set_role(Role::Standby);
        assert_eq!(status(&get("/readyz").await).as_deref(), Some("200"));
        let metrics = get("/metrics").await;
        assert!(
            metrics.contains("mcm_machine_controller_frozen 0"),
            "{metrics}"
        );
        assert!(
            metrics.contains("application/openmetrics-text"),
            "{metrics}"
        );
        assert_eq!(status(&get("/nope").await).as_deref(), Some("404"));
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
