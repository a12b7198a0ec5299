// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! With every machine Running, ours is restarted, then its leadership changes
//! hands (issue #25): what a new leader costs a fleet that did not change.
//!
//! - **Restart**: the controller stops (SIGTERM) and a new process starts with
//!   leader election, as in a Deployment's rollout.
//! - **Leader change**: a second replica starts and stands by; the leader is
//!   killed (SIGKILL: its lease is not released, so the standby waits for it to
//!   expire, MCM's 15 s).
//!
//! For each: the time until the new leader leads with every cache listed
//! (`/readyz` 200 while leading), and every request it sent from its start to
//! the end of a window after that (`BENCH_RESTART_WINDOW`, 120 s): nothing
//! changed, so any write to a Machine, Node, Pod, Secret, Service or token is
//! one too many, and a deletion is a loss. Its Lease renewals are writes of
//! their own and are shown apart. The objects of the run are counted before
//! and after both.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::Options;
use crate::cluster::{Env, Result};
use crate::controller::{Controller, Flags, Side};
use crate::machines::mib;
use crate::track::Tracker;

/// How long a new leader may take to lead with its caches listed before the
/// run fails: a replica that never leads is the run's result, not a wait.
const READY_BY: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Default, Serialize)]
pub struct Handover {
    pub restart: Takeover,
    pub leader_change: Takeover,
    /// The run's objects by kind, before the restart and after both windows.
    pub objects_before: BTreeMap<String, usize>,
    pub objects_after: BTreeMap<String, usize>,
    pub window_s: f64,
}

/// One new leader's start.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Takeover {
    /// From its process's start (restart) or the old leader's kill (leader
    /// change) to leading with every cache listed.
    pub ready_s: f64,
    /// Every request from its start to the end of the window, by
    /// "VERB resource".
    pub requests: BTreeMap<String, u64>,
    /// Of those, writes (neither GET, LIST nor WATCH) other than to its Lease.
    pub writes: u64,
    /// Of those, DELETE and DELETECOLLECTION.
    pub deletes: u64,
    pub lease_writes: u64,
    /// ERROR and WARN lines of its log up to the end of the window.
    pub log_errors: u64,
    pub log_warnings: u64,
    /// Its CPU seconds and RSS at the end of the window.
    pub cpu_s: f64,
    pub rss_mib: f64,
}

/// What a request of a new leader does to a fleet that did not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Read,
    /// A write to its own leader Lease.
    Lease,
    Write,
    Delete,
}

/// The effect of a request counted as "VERB resource".
fn effect(key: &str) -> Effect {
    let (verb, resource) = key.split_once(' ').unwrap_or((key, ""));
    match verb {
        "GET" | "LIST" | "WATCH" => Effect::Read,
        _ if resource == "leases" => Effect::Lease,
        "DELETE" | "DELETECOLLECTION" => Effect::Delete,
        _ => Effect::Write,
    }
}

impl Takeover {
    fn of(controller: &Controller, since: Instant, ready: Instant) -> Takeover {
        let stats = controller.stats();
        let requests: BTreeMap<String, u64> = stats
            .requests
            .iter()
            .map(|((verb, resource), n)| (format!("{verb} {resource}"), *n))
            .collect();
        let sum = |wanted: &[Effect]| -> u64 {
            requests
                .iter()
                .filter(|(key, _)| wanted.contains(&effect(key)))
                .map(|(_, n)| n)
                .sum()
        };
        Takeover {
            ready_s: ready.saturating_duration_since(since).as_secs_f64(),
            writes: sum(&[Effect::Write, Effect::Delete]),
            deletes: sum(&[Effect::Delete]),
            lease_writes: sum(&[Effect::Lease]),
            log_errors: stats.errors,
            log_warnings: stats.warnings,
            requests,
            cpu_s: controller.cpu_seconds(),
            rss_mib: mib(controller.memory_kb("VmRSS")),
        }
    }

    /// The writes other than to the Lease, by "VERB resource", for the report.
    fn writes_shown(&self) -> String {
        let shown: Vec<String> = self
            .requests
            .iter()
            .filter(|(key, _)| matches!(effect(key), Effect::Write | Effect::Delete))
            .map(|(key, n)| format!("{key} {n}"))
            .collect();
        if shown.is_empty() {
            "none".into()
        } else {
            shown.join(", ")
        }
    }
}

/// The report's lines for one run's handover.
pub fn describe(h: &Handover) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    for (what, t) in [
        ("restart (SIGTERM, a new process)", &h.restart),
        (
            "leader change (the leader SIGKILLed, a standby takes over)",
            &h.leader_change,
        ),
    ] {
        let _ = writeln!(
            md,
            "- {what}: leading with every cache listed after {:.2} s; from its start to {:.0} s \
             after that, {} writes ({} deletions) to anything but its Lease: {}; {} Lease writes; \
             {} ERROR and {} WARN lines; CPU {:.2} s, RSS {:.1} MiB",
            t.ready_s,
            h.window_s,
            t.writes,
            t.deletes,
            t.writes_shown(),
            t.lease_writes,
            t.log_errors,
            t.log_warnings,
            t.cpu_s,
            t.rss_mib
        );
    }
    let shown = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        md,
        "- objects of the run before the restart: {}; after both windows: {}",
        shown(&h.objects_before),
        shown(&h.objects_after)
    );
    md
}

/// Waits until `leader` leads with its caches listed, then watches it for
/// `window`: a window of observation, not a wait for something, since
/// whatever the new leader does in it is the figure.
async fn watched(
    leader: &mut Controller,
    since: Instant,
    window: Duration,
    what: &str,
) -> Result<Takeover> {
    let ready = leader.leading_and_ready(since + READY_BY).await?;
    eprintln!(
        "bench: {what}: leading with its caches listed after {:.2}s; watching {}s",
        ready.saturating_duration_since(since).as_secs_f64(),
        window.as_secs()
    );
    tokio::time::sleep_until(ready + window).await;
    Ok(Takeover::of(leader, since, ready))
}

fn counts(trackers: &[Tracker]) -> BTreeMap<String, usize> {
    trackers
        .iter()
        .map(|t| (t.kind.to_string(), t.count()))
        .collect()
}

/// Restarts `leader` and then changes leaders, each followed by the
/// options' `restart_window`;
/// returns the last leader, which runs the rest of the run.
pub async fn run(
    env: &Env,
    opts: &Options,
    flags: &Flags,
    ns: &str,
    n: usize,
    leader: Controller,
    trackers: &[Tracker],
) -> Result<(Controller, Handover)> {
    let window = opts.restart_window;
    let objects_before = counts(trackers);
    let flags = Flags {
        leader_elect: true,
        ..flags.clone()
    };
    let log = |what: &str| {
        opts.logs
            .join(format!("{}-{n}-{what}.log", Side::Ours.process()))
    };

    let replica =
        |what: &str| Controller::start(Side::Ours, &opts.controller, env, &flags, ns, log(what));

    eprintln!("bench: N={n}: restarting the controller");
    leader.stop().await;
    let started = Instant::now();
    let mut restarted = replica("restart").await?;
    let restart = watched(&mut restarted, started, window, "restarted").await?;

    eprintln!("bench: N={n}: a standby replica, then the leader killed");
    let mut standby = replica("standby").await?;
    standby.standing_by(Instant::now() + READY_BY).await?;
    let killed = Instant::now();
    restarted.kill().await;
    let leader_change = watched(&mut standby, killed, window, "the standby took over").await?;

    Ok((
        standby,
        Handover {
            restart,
            leader_change,
            objects_before,
            objects_after: counts(trackers),
            window_s: window.as_secs_f64(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_lease_renewals_are_not_writes_to_the_fleet() {
        assert_eq!(effect("LIST machines"), Effect::Read);
        assert_eq!(effect("WATCH nodes"), Effect::Read);
        assert_eq!(effect("GET leases"), Effect::Read);
        assert_eq!(effect("PUT leases"), Effect::Lease);
        assert_eq!(effect("PATCH machines/status"), Effect::Write);
        assert_eq!(effect("POST events"), Effect::Write);
        assert_eq!(effect("DELETE pods"), Effect::Delete);
        assert_eq!(effect("DELETECOLLECTION secrets"), Effect::Delete);
    }
}
