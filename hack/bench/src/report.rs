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
    /// Machines Running per second, leaving out the join delay: N /
    /// (all_running_s - join delay). Not wall clock, unlike the bare client's
    /// and the floor's, whose Nodes register at once (issue #24 makes every
    /// rate wall clock).
    pub throughput_per_s: Option<f64>,
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
    pub all_scheduled_s: Option<f64>,
    pub all_running_s: Option<f64>,
    pub to_running: Option<Summary>,
    /// Sets done (Pod Running, Node Ready, token deleted) per second.
    pub throughput_per_s: Option<f64>,
    pub errors: u64,
    pub messages: Vec<String>,
    pub requests_server: PerMachine,
    /// Every request the API server handled (scheduler, kwok, garbage collector...).
    pub requests_server_all: PerMachine,
    pub cpu: PhaseCpu,
    pub cleanup_s: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    /// Ours.
    pub machines: MachinesRun,
    /// The same workload through gardener's Go controller.
    pub peer: Option<MachinesRun>,
    pub bare: Option<BareRun>,
    /// The bare client's sets with the writes of MCM's contract.
    pub floor: Option<BareRun>,
}

impl Run {
    /// Our throughput as a fraction of the bare client's.
    pub fn fraction(&self) -> Option<f64> {
        Some(self.machines.throughput_per_s? / self.bare.as_ref()?.throughput_per_s?)
    }

    /// Our throughput as a fraction of the contract floor's.
    pub fn floor_fraction(&self) -> Option<f64> {
        Some(self.machines.throughput_per_s? / self.floor.as_ref()?.throughput_per_s?)
    }

    /// The contract floor's throughput as a fraction of the bare client's.
    pub fn contract_fraction(&self) -> Option<f64> {
        Some(self.floor.as_ref()?.throughput_per_s? / self.bare.as_ref()?.throughput_per_s?)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Header {
    pub date: String,
    pub started: String,
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

/// Per second, one decimal.
fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"))
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{:.0}%", v * 100.0))
}

fn mark(met: bool) -> &'static str {
    if met { " ✅" } else { " ❌" }
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
        let _ = writeln!(md, "- bare client: {}", h.bare_client);
        let _ = writeln!(md, "- load generator: {}", h.load_generator);
        let _ = writeln!(md, "- deadline per phase: {}\n", h.deadline);

        let mut table = String::from("| |");
        let mut rule = String::from("|---|");
        for r in &self.runs {
            let _ = write!(table, " N={} |", r.machines.n);
            rule.push_str("---:|");
        }
        table.push_str(" target |\n");
        rule.push_str("---|\n");
        table.push_str(&rule);
        let mut row = |name: &str, target: &str, cell: &dyn Fn(&Run) -> String| {
            let _ = write!(table, "| {name} |");
            for r in &self.runs {
                let _ = write!(table, " {} |", cell(r));
            }
            let _ = writeln!(table, " {target} |");
        };
        row("create calls answered", "", &|r| {
            secs(Some(r.machines.submitted_s))
        });
        row("all Pending", "", &|r| secs(r.machines.all_pending_s));
        row("all Running", "", &|r| secs(r.machines.all_running_s));
        row("apply → Pending p50", "", &|r| {
            secs(r.machines.to_pending.as_ref().map(|s| s.p50))
        });
        // The stand-in's join delay is no work of the controller's.
        let join_delay = h.join_delay_s.unwrap_or(0.0);
        row(
            "apply → Running p50",
            "≤ 2 s at N=100, less the join delay",
            &|r| {
                let p50 = r.machines.to_running.as_ref().map(|s| s.p50);
                let m = match (r.machines.n, p50) {
                    (100, Some(v)) => mark(v - join_delay <= 2.0),
                    _ => "",
                };
                format!("{}{m}", secs(p50))
            },
        );
        row("apply → Running p95", "", &|r| {
            secs(r.machines.to_running.as_ref().map(|s| s.p95))
        });
        row("apply → Running p99", "", &|r| {
            secs(r.machines.to_running.as_ref().map(|s| s.p99))
        });
        row("machines Running per second", "", &|r| {
            rate(r.machines.throughput_per_s)
        });
        row("bare client: all sets Running", "", &|r| {
            secs(r.bare.as_ref().and_then(|b| b.all_running_s))
        });
        row("bare client: sets Running per second", "", &|r| {
            rate(r.bare.as_ref().and_then(|b| b.throughput_per_s))
        });
        row("our rate / bare-client rate", "≥ 80% at N=1000", &|r| {
            r.fraction().map_or("—".into(), |f| {
                let m = if r.machines.n == 1000 {
                    mark(f >= 0.8)
                } else {
                    ""
                };
                format!("{:.0}%{m}", f * 100.0)
            })
        });
        row("contract floor: all sets Running", "", &|r| {
            secs(r.floor.as_ref().and_then(|b| b.all_running_s))
        });
        row("contract floor: sets Running per second", "", &|r| {
            rate(r.floor.as_ref().and_then(|b| b.throughput_per_s))
        });
        row("contract-floor rate / bare-client rate", "", &|r| {
            percent(r.contract_fraction())
        });
        row("our rate / contract-floor rate", "", &|r| {
            percent(r.floor_fraction())
        });
        row("delete: all gone", "", &|r| {
            secs(r.machines.deletion.all_gone_s)
        });
        row("controller CPU create / delete", "", &|r| {
            let c = &r.machines.controller;
            format!("{:.1} s / {:.1} s", c.cpu_create_s, c.cpu_delete_s)
        });
        row("CPU create phase: ours + other processes", "", &|r| {
            let c = &r.machines.cpu_create;
            format!(
                "{:.0} s + {:.0} s = {:.0}% of {} cores",
                c.ours(),
                c.others(),
                c.busy() * 100.0,
                c.cores
            )
        });
        row("controller CPU total (incl. start)", "", &|r| {
            format!("{:.1} s", r.machines.controller.cpu_total_s)
        });
        row("controller peak RSS", "≤ 40 MiB at N=1000", &|r| {
            let v = r.machines.controller.peak_rss_mib;
            let m = if r.machines.n == 1000 {
                mark(v <= 40.0)
            } else {
                ""
            };
            format!("{v:.1} MiB{m}")
        });
        row("API requests per machine (controller)", "", &|r| {
            format!(
                "{:.1} + {:.1}",
                r.machines.requests_create.controller.total,
                r.machines.requests_delete.controller.total
            )
        });
        row("errors", "0", &|r| {
            format!(
                "{}{}",
                r.machines.errors.total,
                mark(r.machines.errors.total == 0)
            )
        });
        row("leftovers", "0", &|r| {
            format!(
                "{}{}",
                r.machines.leftover_count,
                mark(r.machines.leftover_count == 0)
            )
        });
        md.push_str(&table);
        md.push_str(
            "\nAPI requests per machine: create phase + delete phase. Machines Running per second: \
             N / (all Running − join delay). ✅/❌: the target met or missed (measured, never \
             asserted).\n",
        );
        for r in &self.runs {
            if let Some(peer) = &r.peer {
                md.push_str(&comparison(&r.machines, peer, h.join_delay_s));
            }
        }

        for r in &self.runs {
            md.push_str(&requests_table(&r.machines));
            md.push_str(&details(r));
            if let Some(peer) = &r.peer {
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

/// `ours / go` as "0.12x", with ✅/❌ against `target` (the largest ratio that
/// meets it) when there is one.
fn ratio(ours: Option<f64>, go: Option<f64>, target: Option<f64>) -> String {
    match (ours, go) {
        (Some(o), Some(g)) if g > 0.0 => {
            let r = o / g;
            let m = target.map_or("", |t| mark(r <= t));
            format!("{r:.2}x{m}")
        }
        _ => "—".into(),
    }
}

/// Ours and the Go peer side by side for one N, with ratios and the issue's
/// targets.
fn comparison(ours: &MachinesRun, go: &MachinesRun, join_delay_s: Option<f64>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Ours vs gardener's Go controller, N={}\n\n\
         The same workload on the same cluster, ours first, then the Go peer, each in a fresh \
         namespace; ratio = ours / Go.\n",
        ours.n
    );
    md.push_str("| | ours | Go | ours/Go | target |\n|---|---:|---:|---:|---|\n");
    let mut row = |name: &str, o: String, g: String, r: String, target: &str| {
        let _ = writeln!(md, "| {name} | {o} | {g} | {r} | {target} |");
    };
    let timed = |name: &str, o: Option<f64>, g: Option<f64>, target: Option<f64>| {
        let shown = target.map_or(String::new(), |t| format!("≤ {t}x Go"));
        (
            name.to_string(),
            secs(o),
            secs(g),
            ratio(o, g, target),
            shown,
        )
    };
    let p = |m: &MachinesRun, f: fn(&Summary) -> f64| m.to_running.as_ref().map(f);
    let less_delay = |v: Option<f64>| Some(v? - join_delay_s?);
    let rows = [
        timed(
            "all Pending",
            ours.all_pending_s,
            go.all_pending_s,
            Some(0.1),
        ),
        timed("all Running", ours.all_running_s, go.all_running_s, None),
        timed(
            "all Running − join delay",
            less_delay(ours.all_running_s),
            less_delay(go.all_running_s),
            Some(0.2),
        ),
        timed(
            "apply → Running p50",
            p(ours, |s| s.p50),
            p(go, |s| s.p50),
            None,
        ),
        timed(
            "apply → Running p95",
            p(ours, |s| s.p95),
            p(go, |s| s.p95),
            None,
        ),
        timed(
            "delete: all gone",
            ours.deletion.all_gone_s,
            go.deletion.all_gone_s,
            Some(0.3),
        ),
    ];
    for (name, o, g, r, t) in rows {
        row(&name, o, g, r, &t);
    }
    let cpu = |name: &str, f: fn(&ProcessStats) -> f64, target: Option<f64>| {
        let (o, g) = (f(&ours.controller), f(&go.controller));
        (
            name.to_string(),
            format!("{o:.1} s"),
            format!("{g:.1} s"),
            ratio(Some(o), Some(g), target),
            target.map_or(String::new(), |t| format!("≤ {t}x Go")),
        )
    };
    for (name, o, g, r, t) in [
        cpu("controller CPU, create", |c| c.cpu_create_s, None),
        cpu("controller CPU, delete", |c| c.cpu_delete_s, None),
        cpu(
            "controller CPU, total (incl. start)",
            |c| c.cpu_total_s,
            Some(0.5),
        ),
    ] {
        row(&name, o, g, r, &t);
    }
    let (o, g) = (ours.controller.peak_rss_mib, go.controller.peak_rss_mib);
    row(
        "controller peak RSS",
        format!("{o:.1} MiB"),
        format!("{g:.1} MiB"),
        ratio(Some(o), Some(g), Some(0.25)),
        "≤ 0.25x Go",
    );
    for (phase, f) in [
        (
            "create",
            (|m: &MachinesRun| m.requests_create.server_all.total) as fn(&MachinesRun) -> f64,
        ),
        ("delete", |m: &MachinesRun| {
            m.requests_delete.server_all.total
        }),
    ] {
        let (o, g) = (f(ours), f(go));
        row(
            &format!("API requests per machine (all clients), {phase}"),
            format!("{o:.1}"),
            format!("{g:.1}"),
            ratio(Some(o), Some(g), Some(0.7)),
            "≤ 0.7x Go",
        );
    }
    let counted = |name: &str, o: u64, g: u64| {
        (
            name.to_string(),
            format!("{o}{}", mark(o == 0)),
            g.to_string(),
            "".to_string(),
            "0 for ours".to_string(),
        )
    };
    for (name, o, g, r, t) in [
        counted("errors", ours.errors.total, go.errors.total),
        counted(
            "leftovers",
            ours.leftover_count as u64,
            go.leftover_count as u64,
        ),
    ] {
        row(&name, o, g, r, &t);
    }
    md.push_str(
        "\nAPI requests per machine (all clients): `apiserver_request_total` for every resource \
         and client, less the benchmark's own requests, per phase (the Go peer logs no requests, \
         so nothing is counted client-side for it). Join delay: the kubelet stand-in's, the same \
         for both. Errors of the Go peer: machines Failed or not Running, failed calls of the load \
         generator, and `E`/`F` lines of its klog output.\n",
    );
    md
}

/// Server-side requests per machine, all resources and clients, by resource and
/// verb: where ours and the Go peer differ.
fn peer_requests_table(ours: &MachinesRun, go: &MachinesRun) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## API requests per machine by resource, all clients, ours vs Go, N={}\n\n\
         `apiserver_request_total`, less the benchmark's own requests; rows under 0.05 in every \
         column left out.\n",
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
    let _ = writeln!(md, "\nDetails of the Go peer, N={}:", m.n);
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
        "\n## API requests per machine, N={}\n\n\
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
    let _ = writeln!(md, "\nDetails, N={}:", m.n);
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
    for b in [&r.bare, &r.floor].into_iter().flatten() {
        let what = b.limit.name();
        let _ = writeln!(
            md,
            "- {what}: creates answered {:.2} s, all scheduled {}, all Running {}, per set p50/p95/p99 {}, \
             {} errors, server-side requests per set {:.2} ({:.2} for all resources and clients), namespace cleanup {}",
            b.submitted_s,
            secs(b.all_scheduled_s),
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
    fn ratios_say_whether_they_meet_their_target() {
        assert_eq!(ratio(Some(1.0), Some(10.0), Some(0.1)), "0.10x ✅");
        assert_eq!(ratio(Some(2.0), Some(10.0), Some(0.1)), "0.20x ❌");
        assert_eq!(ratio(Some(2.0), Some(10.0), None), "0.20x");
        assert_eq!(ratio(Some(2.0), Some(0.0), None), "—");
        assert_eq!(ratio(None, Some(1.0), None), "—");
    }

    #[test]
    fn fractions_compare_throughputs_and_need_both_sides() {
        let bare = |rate| BareRun {
            throughput_per_s: Some(rate),
            ..Default::default()
        };
        let run = Run {
            machines: MachinesRun {
                throughput_per_s: Some(40.0),
                ..Default::default()
            },
            bare: Some(bare(50.0)),
            floor: Some(bare(32.0)),
            ..Default::default()
        };
        assert_eq!(run.fraction(), Some(0.8));
        assert_eq!(run.floor_fraction(), Some(1.25));
        assert_eq!(run.contract_fraction(), Some(0.64));
        let alone = Run { bare: None, ..run };
        assert_eq!(alone.fraction(), None);
        assert_eq!(alone.contract_fraction(), None);
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
