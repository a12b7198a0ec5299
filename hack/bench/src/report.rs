// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What one benchmark run found, as JSON (everything) and as a Markdown table
//! (the figures and the targets they are compared with; never asserted).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use crate::bare::Limit;
use crate::cluster::Requests;
use crate::controller::Side;
use crate::track::{Progress, all_reached};

/// Distribution of per-object latencies, in seconds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Counts the failed calls among `results`, keeping the first few messages.
pub fn tally_errors(results: Vec<Result<(), String>>, messages: &mut Vec<String>) -> usize {
    let mut errors = 0;
    for e in results.into_iter().filter_map(Result::err) {
        errors += 1;
        if messages.len() < 5 {
            messages.push(e);
        }
    }
    errors
}

/// Nearest-rank percentiles, the largest value and the mean.
pub fn summarize(mut values: Vec<f64>) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[i.clamp(1, values.len()) - 1]
    };
    Some(Summary {
        count: values.len(),
        p50: rank(50.0),
        p95: rank(95.0),
        p99: rank(99.0),
        max: values[values.len() - 1],
        mean: values.iter().sum::<f64>() / values.len() as f64,
    })
}

/// Requests per machine (or per object set): by verb, and by "resource VERB".
#[derive(Clone, Debug, Default, Serialize)]
pub struct PerMachine {
    pub total: f64,
    pub by_verb: BTreeMap<String, f64>,
    pub by_resource: BTreeMap<String, f64>,
}

/// `requests / n`, only for `resources` when given.
pub fn per_machine(
    requests: &Requests,
    n: usize,
    resources: Option<&BTreeSet<String>>,
) -> PerMachine {
    let mut out = PerMachine::default();
    let n = n.max(1) as f64;
    for ((verb, resource), count) in requests {
        if resources.is_some_and(|r| !r.contains(resource)) {
            continue;
        }
        let v = *count as f64 / n;
        out.total += v;
        *out.by_verb.entry(verb.clone()).or_default() += v;
        *out.by_resource
            .entry(format!("{resource} {verb}"))
            .or_default() += v;
    }
    out
}

/// Requests of one phase, per machine.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseRequests {
    /// Counted from the controller's log: every request it sent.
    pub controller: PerMachine,
    /// `apiserver_request_total`, for the resources the controller touched, less
    /// the benchmark's own requests. Includes every other client of those
    /// resources (scheduler, kwok, kubelet stand-in, garbage collector).
    pub server: PerMachine,
    /// `apiserver_request_total` for every resource (leases, node and pod status,
    /// bindings, token reviews...), less the benchmark's own requests: all the work
    /// the API servers did during the phase, per machine.
    pub server_all: PerMachine,
    /// The benchmark's own requests (creates, deletes, watches).
    pub load_generator: PerMachine,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessStats {
    pub cpu_startup_s: f64,
    pub cpu_create_s: f64,
    pub cpu_delete_s: f64,
    pub cpu_total_s: f64,
    pub peak_rss_mib: f64,
    pub rss_after_create_mib: f64,
    pub rss_end_mib: f64,
    /// Open sockets when all machines were Running (HTTP/1.1: one connection per
    /// request in flight, kept in the pool).
    pub sockets_after_create: usize,
}

const OTHERS: &str = "other processes";

/// Where the machine's cores went during a phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseCpu {
    pub wall_s: f64,
    pub cores: usize,
    /// CPU seconds by process (cluster components, benchmark, controller).
    pub by_process: BTreeMap<String, f64>,
}

impl PhaseCpu {
    /// CPU seconds of the benchmark's processes (cluster, controller, benchmark).
    pub fn ours(&self) -> f64 {
        self.by_process
            .iter()
            .filter(|(k, _)| *k != OTHERS)
            .map(|(_, v)| v)
            .sum()
    }

    pub fn others(&self) -> f64 {
        self.by_process.get(OTHERS).copied().unwrap_or(0.0)
    }

    /// Share of all cores' time during the phase that was busy, ours and others'.
    pub fn busy(&self) -> f64 {
        (self.ours() + self.others()) / (self.wall_s * self.cores.max(1) as f64).max(f64::EPSILON)
    }

    pub fn describe(&self) -> String {
        let mut by: Vec<(&String, &f64)> = self.by_process.iter().collect();
        by.sort_by(|a, b| b.1.total_cmp(a.1));
        let parts: Vec<String> = by
            .iter()
            .filter(|(_, v)| **v >= 0.05)
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect();
        format!(
            "{:.1} CPU s of ours and {:.1} of other processes in {:.1} s on {} cores ({:.0}% busy): {}",
            self.ours(),
            self.others(),
            self.wall_s,
            self.cores,
            self.busy() * 100.0,
            parts.join(", ")
        )
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Errors {
    /// Sum of the counts below that are errors (conflicts and 404s are not).
    pub total: u64,
    /// Machines seen Failed or CrashLoopBackOff, with the phase.
    pub failed_machines: Vec<(String, String)>,
    /// Machines not Running when the deadline passed.
    pub not_running: u64,
    /// Calls of the load generator that failed.
    pub load_generator: u64,
    /// Controller requests answered 429 or 5xx.
    pub controller_http: u64,
    /// ERROR lines in the controller's log.
    pub controller_log_errors: u64,
    /// Not counted as errors: WARN lines, 409 conflicts, 404s.
    pub controller_log_warnings: u64,
    pub conflicts: u64,
    pub not_found: u64,
    /// Watch errors of the benchmark's own watches (retried).
    pub watch_errors: u64,
    /// The first few messages.
    pub messages: Vec<String>,
    /// The Go peer's error lines by source location (`file.go:line`).
    pub log_error_sources: BTreeMap<String, u64>,
    /// The Go peer's requests held back by client-go's token bucket, by
    /// "resource VERB", and the longest wait in seconds.
    pub throttled: BTreeMap<String, u64>,
    pub throttled_max_s: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Deletion {
    /// All delete calls answered.
    pub submitted_s: f64,
    pub all_gone_s: Option<f64>,
    /// Per kind: when the last one was gone (None: not within the deadline).
    pub gone_s: BTreeMap<String, Option<f64>>,
}

/// When the last of the N objects reached each step that every contender goes
/// through, in seconds from the first create call: the same milestones for ours,
/// the Go peers, the bare client and the floor.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Milestones {
    /// Every machine Pod seen by the benchmark's watch (created or applied).
    pub pods_applied_s: Option<f64>,
    pub pods_running_s: Option<f64>,
    /// Every Node registered and made Ready by kwok.
    pub nodes_ready_s: Option<f64>,
    /// Every Machine Running (ours, Go) or every set done: Pod Running, Node
    /// Ready, token deleted, and for the floor the Running status (bare, floor).
    pub done_s: Option<f64>,
}

impl Milestones {
    /// From the watches of `n` Pods (stage 0 seen, 1 Running) and Nodes (stage
    /// 1 Ready), timed from `t0`, and when the last one was done.
    pub fn observed(
        pods: &Progress,
        nodes: &Progress,
        n: usize,
        t0: tokio::time::Instant,
        done_s: Option<f64>,
    ) -> Self {
        Milestones {
            pods_applied_s: all_reached(pods, 0, n, t0),
            pods_running_s: all_reached(pods, 1, n, t0),
            nodes_ready_s: all_reached(nodes, 1, n, t0),
            done_s,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct MachinesRun {
    pub n: usize,
    /// The controller that ran them.
    pub side: Side,
    pub namespace: String,
    /// All create calls answered.
    pub submitted_s: f64,
    pub all_pending_s: Option<f64>,
    pub all_running_s: Option<f64>,
    /// Per machine, from its create call.
    pub to_pending: Option<Summary>,
    pub to_running: Option<Summary>,
    /// Machines Running per second, wall clock: N / all_running_s (the join
    /// delay included, as in the bare client's and the floor's rates).
    pub throughput_per_s: Option<f64>,
    pub milestones: Milestones,
    pub deletion: Deletion,
    pub controller: ProcessStats,
    pub errors: Errors,
    /// Objects still there after the deletion deadline, by kind (first names).
    pub leftovers: BTreeMap<String, Vec<String>>,
    pub leftover_count: usize,
    /// CPU of every process during each phase.
    pub cpu_create: PhaseCpu,
    pub cpu_delete: PhaseCpu,
    pub requests_create: PhaseRequests,
    pub requests_delete: PhaseRequests,
    /// `machine_controller_reconcile_total` by result[:category].
    pub reconciles: BTreeMap<String, u64>,
    /// Responses the controller got, by HTTP status.
    pub controller_statuses: BTreeMap<u16, u64>,
    pub controller_log: String,
    /// Ours restarted and its leader changed, every machine Running.
    pub handover: Option<crate::handover::Handover>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BareRun {
    pub n: usize,
    pub namespace: String,
    /// The bare client, or the contract floor.
    pub limit: Limit,
    /// Requests per set the client sent.
    pub requests_per_set_client: f64,
    pub submitted_s: f64,
    pub milestones: Milestones,
    /// Every set done.
    pub all_running_s: Option<f64>,
    pub to_running: Option<Summary>,
    /// Sets done (Pod Running, Node Ready, token deleted) per second, wall
    /// clock: N / all_running_s.
    pub throughput_per_s: Option<f64>,
    pub errors: u64,
    pub messages: Vec<String>,
    pub requests_server: PerMachine,
    /// Every request the API server handled (scheduler, kwok, garbage collector...).
    pub requests_server_all: PerMachine,
    pub cpu: PhaseCpu,
    pub cleanup_s: Option<f64>,
}

/// One round at one N: every contender once, in `order`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    /// 1, 2, ... within the N.
    pub round: usize,
    /// The order the contenders ran in (shuffled per round).
    pub order: Vec<String>,
    /// Ours.
    pub machines: MachinesRun,
    /// The same workload through gardener's Go controller, as shipped.
    pub peer: Option<MachinesRun>,
    /// The same through gardener's Go controller with its driver client given
    /// the rate flags (hack/tools/gardener/kube-api-rate.patch).
    pub peer_tuned: Option<MachinesRun>,
    pub bare: Option<BareRun>,
    /// The bare client's sets with the writes of MCM's contract.
    pub floor: Option<BareRun>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Header {
    pub date: String,
    pub started: String,
    /// The start as a file name's part (results are named after it).
    pub stamp: String,
    pub machine: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub rustc: String,
    pub kubernetes: String,
    pub kwok: String,
    pub crate_version: String,
    pub git: String,
    pub cluster: String,
    /// The kubelet stand-in's join delay, in seconds, when it could be read.
    pub join_delay_s: Option<f64>,
    pub controller_flags: String,
    /// The class shape our controller ran with.
    pub our_class: String,
    /// The Go peer's build and flags, or why it was not run.
    pub peer: String,
    /// The tuned Go peer's build, or why it was not run.
    pub peer_tuned: String,
    /// Rounds per N, and the seed their orders were shuffled with.
    pub rounds: usize,
    pub seed: u64,
    pub bare_client: String,
    pub load_generator: String,
    pub deadline: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub header: Header,
    pub runs: Vec<Run>,
    pub notes: Vec<String>,
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.2} s"))
}

impl Report {
    pub fn markdown(&self) -> String {
        let h = &self.header;
        let mut md = String::new();
        let _ = writeln!(md, "# `make bench` — {}\n", h.date);
        let _ = writeln!(md, "- started: {}", h.started);
        let _ = writeln!(md, "- machine: {}", h.machine);
        let _ = writeln!(
            md,
            "- versions: {}; Kubernetes {}; kwok {}; machine-controller-manager-provider-local {} ({})",
            h.rustc, h.kubernetes, h.kwok, h.crate_version, h.git
        );
        let _ = writeln!(md, "- cluster: {}", h.cluster);
        let _ = writeln!(md, "- controller: `{}`", h.controller_flags);
        let _ = writeln!(md, "- our class: {}", h.our_class);
        let _ = writeln!(md, "- Go peer: {}", h.peer);
        let _ = writeln!(md, "- tuned Go peer: {}", h.peer_tuned);
        let _ = writeln!(
            md,
            "- rounds: {} per N, each contender once per round, order shuffled with seed {} (BENCH_SEED repeats it)",
            h.rounds, h.seed
        );
        let _ = writeln!(md, "- bare client: {}", h.bare_client);
        let _ = writeln!(md, "- load generator: {}", h.load_generator);
        let _ = writeln!(md, "- deadline per phase: {}\n", h.deadline);

        let mut ns: Vec<usize> = self.runs.iter().map(|r| r.machines.n).collect();
        ns.dedup();
        for n in &ns {
            let rounds: Vec<&Run> = self.runs.iter().filter(|r| r.machines.n == *n).collect();
            md.push_str(&crate::medians::markdown(*n, &rounds));
        }
        md.push_str("\n## Rounds\n\n");
        for r in &self.runs {
            let _ = writeln!(
                md,
                "- N={}, round {}: {}",
                r.machines.n,
                r.round,
                r.order.join(", ")
            );
        }
        for r in &self.runs {
            let _ = writeln!(
                md,
                "\n## N={}, round {}\n\nOrder: {}.",
                r.machines.n,
                r.round,
                r.order.join(", ")
            );
            md.push_str(&requests_table(&r.machines));
            md.push_str(&details(r));
            for peer in [&r.peer, &r.peer_tuned].into_iter().flatten() {
                md.push_str(&peer_requests_table(&r.machines, peer));
                md.push_str(&peer_details(peer));
            }
        }
        if !self.notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}

/// Server-side requests per machine, all resources and clients, by resource and
/// verb: where ours and the Go peer differ.
fn peer_requests_table(ours: &MachinesRun, go: &MachinesRun) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### API requests per machine by resource, all clients, ours vs {}, N={}\n\n\
         `apiserver_request_total`, less the benchmark's own requests; rows under 0.05 in every \
         column left out.\n",
        go.side.process(),
        ours.n
    );
    md.push_str("| resource verb | create: ours | create: Go | delete: ours | delete: Go |\n");
    md.push_str("|---|---:|---:|---:|---:|\n");
    let tables = [
        &ours.requests_create.server_all,
        &go.requests_create.server_all,
        &ours.requests_delete.server_all,
        &go.requests_delete.server_all,
    ];
    let keys: BTreeSet<&String> = tables.iter().flat_map(|t| t.by_resource.keys()).collect();
    let v = |t: &PerMachine, k: &str| t.by_resource.get(k).copied().unwrap_or(0.0);
    for k in keys {
        if tables.iter().all(|t| v(t, k) < 0.05) {
            continue;
        }
        let cells: Vec<String> = tables.iter().map(|t| format!("{:.2}", v(t, k))).collect();
        let _ = writeln!(md, "| {k} | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = tables
        .iter()
        .map(|t| format!("**{:.2}**", t.total))
        .collect();
    let _ = writeln!(md, "| **total** | {} |", totals.join(" | "));
    md
}

/// When the last object of each kind was gone after the deletion.
fn last_gone(m: &MachinesRun) -> String {
    let gone: Vec<String> = m
        .deletion
        .gone_s
        .iter()
        .map(|(k, v)| format!("{k} {}", secs(*v)))
        .collect();
    gone.join(", ")
}

/// What the Go peer's run found beyond the comparison table.
fn peer_details(m: &MachinesRun) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\nDetails of {}, N={}:", m.side.process(), m.n);
    let _ = writeln!(md, "- deletion, last one gone: {}", last_gone(m));
    let e = &m.errors;
    let _ = writeln!(
        md,
        "- errors: {} failed machines, {} not Running, {} load-generator errors, {} E/F lines in \
         its log; not errors: {} W lines, {} watch errors of the benchmark",
        e.failed_machines.len(),
        e.not_running,
        e.load_generator,
        e.controller_log_errors,
        e.controller_log_warnings,
        e.watch_errors
    );
    for msg in &e.messages {
        let _ = writeln!(md, "  - `{}`", msg.replace('`', "'"));
    }
    if !e.log_error_sources.is_empty() {
        let mut sources: Vec<(&String, &u64)> = e.log_error_sources.iter().collect();
        sources.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = sources.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let _ = writeln!(md, "- E/F lines by source: {}", shown.join(", "));
    }
    if !e.throttled.is_empty() {
        let by: Vec<String> = e
            .throttled
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            md,
            "- requests held back by client-side throttling (client-go logs the waits it finds \
             long): {}; the longest wait {:.1} s",
            by.join(", "),
            e.throttled_max_s
        );
    }
    for (kind, names) in &m.leftovers {
        let _ = writeln!(md, "- leftover {kind}: {}", names.join(", "));
    }
    let _ = writeln!(md, "- CPU, create phase: {}", m.cpu_create.describe());
    let _ = writeln!(md, "- CPU, delete phase: {}", m.cpu_delete.describe());
    let c = &m.controller;
    let _ = writeln!(
        md,
        "- controller RSS: after create {:.1} MiB, at the end {:.1} MiB; {} open sockets after \
         create; CPU at start {:.1} s; log {}",
        c.rss_after_create_mib,
        c.rss_end_mib,
        c.sockets_after_create,
        c.cpu_startup_s,
        m.controller_log
    );
    md
}

/// Requests per machine by verb and by resource, client and server side.
fn requests_table(m: &MachinesRun) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### API requests per machine, ours, N={}\n\n\
         controller: counted from its log (every request it sent); server: \
         `apiserver_request_total` for the same resources, less the benchmark's own \
         requests, so it includes other clients (scheduler, kwok, stand-in, garbage collector).\n",
        m.n
    );
    md.push_str(
        "| verb | create: controller | create: server | delete: controller | delete: server |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|\n");
    let (c, d) = (&m.requests_create, &m.requests_delete);
    let verbs: BTreeSet<&String> = [&c.controller, &c.server, &d.controller, &d.server]
        .iter()
        .flat_map(|t| t.by_verb.keys())
        .collect();
    let v = |t: &PerMachine, k: &str| t.by_verb.get(k).map_or("".into(), |v| format!("{v:.2}"));
    for verb in verbs {
        let _ = writeln!(
            md,
            "| {verb} | {} | {} | {} | {} |",
            v(&c.controller, verb),
            v(&c.server, verb),
            v(&d.controller, verb),
            v(&d.server, verb)
        );
    }
    let _ = writeln!(
        md,
        "| **total** | **{:.2}** | **{:.2}** | **{:.2}** | **{:.2}** |",
        c.controller.total, c.server.total, d.controller.total, d.server.total
    );
    let _ = writeln!(
        md,
        "| all resources, all clients | | {:.2} | | {:.2} |",
        c.server_all.total, d.server_all.total
    );
    md.push_str("\n| controller request | create | delete |\n|---|---:|---:|\n");
    let keys: BTreeSet<&String> = c
        .controller
        .by_resource
        .keys()
        .chain(d.controller.by_resource.keys())
        .collect();
    let r = |t: &PerMachine, k: &str| {
        t.by_resource
            .get(k)
            .map_or("".into(), |v| format!("{v:.2}"))
    };
    for k in keys {
        let _ = writeln!(
            md,
            "| {k} | {} | {} |",
            r(&c.controller, k),
            r(&d.controller, k)
        );
    }
    md
}

fn details(r: &Run) -> String {
    let m = &r.machines;
    let mut md = String::new();
    let _ = writeln!(md, "\nDetails of ours, N={}:", m.n);
    let _ = writeln!(md, "- deletion, last one gone: {}", last_gone(m));
    let e = &m.errors;
    let _ = writeln!(
        md,
        "- errors: {} failed machines, {} not Running, {} load-generator errors, {} controller 429/5xx, \
         {} controller ERROR lines; not errors: {} WARN lines, {} conflicts (409), {} not found (404), \
         {} watch errors of the benchmark",
        e.failed_machines.len(),
        e.not_running,
        e.load_generator,
        e.controller_http,
        e.controller_log_errors,
        e.controller_log_warnings,
        e.conflicts,
        e.not_found,
        e.watch_errors
    );
    for msg in &e.messages {
        let _ = writeln!(md, "  - `{}`", msg.replace('`', "'"));
    }
    if m.leftover_count > 0 {
        for (kind, names) in &m.leftovers {
            let _ = writeln!(md, "- leftover {kind}: {}", names.join(", "));
        }
    }
    let rec: Vec<String> = m
        .reconciles
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(md, "- reconciles: {}", rec.join(", "));
    let _ = writeln!(md, "- CPU, create phase: {}", m.cpu_create.describe());
    let _ = writeln!(md, "- CPU, delete phase: {}", m.cpu_delete.describe());
    let c = &m.controller;
    let _ = writeln!(
        md,
        "- controller RSS: after create {:.1} MiB, at the end {:.1} MiB; {} open sockets after create; CPU at start {:.1} s",
        c.rss_after_create_mib, c.rss_end_mib, c.sockets_after_create, c.cpu_startup_s
    );
    if let Some(h) = &m.handover {
        md.push_str(&crate::handover::describe(h));
    }
    for b in [&r.bare, &r.floor].into_iter().flatten() {
        let what = b.limit.name();
        let _ = writeln!(
            md,
            "- {what}: creates answered {:.2} s, all Pods applied {}, all Running {}, per set p50/p95/p99 {}, \
             {} errors, server-side requests per set {:.2} ({:.2} for all resources and clients), namespace cleanup {}",
            b.submitted_s,
            secs(b.milestones.pods_applied_s),
            secs(b.all_running_s),
            b.to_running.as_ref().map_or("—".into(), |s| format!(
                "{:.2}/{:.2}/{:.2} s",
                s.p50, s.p95, s.p99
            )),
            b.errors,
            b.requests_server.total,
            b.requests_server_all.total,
            secs(b.cleanup_s)
        );
        let _ = writeln!(md, "- CPU, {what} until all Running: {}", b.cpu.describe());
        for msg in &b.messages {
            let _ = writeln!(md, "  - `{}`", msg.replace('`', "'"));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_use_nearest_rank_percentiles() {
        assert!(summarize(Vec::new()).is_none());
        let s = summarize((1..=100).rev().map(f64::from).collect()).unwrap();
        assert_eq!(
            (s.count, s.p50, s.p95, s.p99, s.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(s.mean, 50.5);
        // Few values: the rank rounds up, never below the first.
        let s = summarize(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.p50, s.p95, s.p99), (2.0, 3.0, 3.0));
        let one = summarize(vec![7.0]).unwrap();
        assert_eq!((one.p50, one.max), (7.0, 7.0));
    }

    #[test]
    fn requests_per_machine_divide_by_n_and_keep_only_the_resources_asked() {
        let requests = Requests::from([
            (("APPLY".into(), "pods".into()), 200),
            (("GET".into(), "pods".into()), 100),
            (("PATCH".into(), "nodes".into()), 50),
        ]);
        let all = per_machine(&requests, 100, None);
        assert_eq!(all.total, 3.5);
        assert_eq!(all.by_verb["APPLY"], 2.0);
        assert_eq!(all.by_resource["nodes PATCH"], 0.5);
        let pods = per_machine(&requests, 100, Some(&BTreeSet::from(["pods".to_string()])));
        assert_eq!(pods.total, 3.0);
        assert!(!pods.by_resource.contains_key("nodes PATCH"));
        // No machines: no division by zero.
        assert_eq!(per_machine(&requests, 0, None).total, 350.0);
    }

    #[test]
    fn errors_are_counted_with_the_first_five_messages() {
        let mut messages = Vec::new();
        let results = (0..8).map(|i| {
            if i % 2 == 0 {
                Err(format!("e{i}"))
            } else {
                Ok(())
            }
        });
        assert_eq!(tally_errors(results.collect(), &mut messages), 4);
        assert_eq!(messages, ["e0", "e2", "e4", "e6"]);
        let more = (0..3).map(|i| Err(format!("f{i}"))).collect();
        assert_eq!(tally_errors(more, &mut messages), 3);
        assert_eq!(messages.len(), 5);
    }
}
