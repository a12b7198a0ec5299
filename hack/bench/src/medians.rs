// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The figures that lead the report: for one N, every contender's median over
//! the rounds with its spread (min–max), milestone against the same milestone,
//! wall clock against wall clock; then ours over each Go peer and over the
//! floor, as ratios of medians, with the targets.

use std::fmt::Write;

use crate::report::{BareRun, MachinesRun, Milestones, PerMachine, Run, Summary};
use crate::rounds::Contender;

/// Median and spread of one figure over the rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

/// The median (of an even count: the mean of the middle two) and the range.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
        count: v.len(),
    })
}

/// What one contender measured in one round.
#[derive(Clone, Copy)]
pub enum Measured<'a> {
    Machines(&'a MachinesRun),
    Sets(&'a BareRun),
}

impl<'a> Measured<'a> {
    /// The contender's result in `run`, if it ran.
    pub fn of(run: &'a Run, c: Contender) -> Option<Self> {
        match c {
            Contender::Ours => Some(Measured::Machines(&run.machines)),
            Contender::Go => run.peer.as_ref().map(Measured::Machines),
            Contender::GoTuned => run.peer_tuned.as_ref().map(Measured::Machines),
            Contender::Bare => run.bare.as_ref().map(Measured::Sets),
            Contender::Floor => run.floor.as_ref().map(Measured::Sets),
        }
    }

    fn machines(self) -> Option<&'a MachinesRun> {
        match self {
            Measured::Machines(m) => Some(m),
            Measured::Sets(_) => None,
        }
    }

    /// What every contender measures alike.
    fn milestones(self) -> &'a Milestones {
        match self {
            Measured::Machines(r) => &r.milestones,
            Measured::Sets(r) => &r.milestones,
        }
    }

    fn throughput_per_s(self) -> Option<f64> {
        match self {
            Measured::Machines(r) => r.throughput_per_s,
            Measured::Sets(r) => r.throughput_per_s,
        }
    }

    fn to_done(self) -> Option<&'a Summary> {
        match self {
            Measured::Machines(r) => r.to_running.as_ref(),
            Measured::Sets(r) => r.to_running.as_ref(),
        }
    }
}

/// Requests to Node Leases: kwok's heartbeats (creation, renewal every few
/// seconds) and their deletion with the Node. They grow with how long a Node
/// lives, not with what a controller does.
pub fn lease_requests(p: &PerMachine) -> f64 {
    p.by_resource
        .iter()
        .filter(|(k, _)| k.starts_with("leases "))
        .map(|(_, v)| v)
        .sum()
}

/// Every request but the Node Leases'.
pub fn without_leases(p: &PerMachine) -> f64 {
    p.total - lease_requests(p)
}

/// How a figure is shown.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    Seconds,
    PerSecond,
    Mib,
    Count,
    Requests,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Seconds => format!("{v:.2} s"),
            Unit::PerSecond => format!("{v:.1}/s"),
            Unit::Mib => format!("{v:.1} MiB"),
            Unit::Count => format!("{v:.0}"),
            Unit::Requests => format!("{v:.1}"),
        }
    }

    fn bare(self, v: f64) -> String {
        match self {
            Unit::Seconds => format!("{v:.2}"),
            _ => self
                .show(v)
                .trim_end_matches(" MiB")
                .trim_end_matches("/s")
                .to_string(),
        }
    }
}

/// "median (min–max)", or the value alone when all rounds agree or there was one.
pub fn cell(s: Option<Spread>, unit: Unit) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.count == 1 || s.min == s.max => unit.show(s.median),
        Some(s) => format!(
            "{} ({}–{})",
            unit.show(s.median),
            unit.bare(s.min),
            unit.bare(s.max)
        ),
    }
}

/// One row of the medians table.
pub struct Figure {
    pub name: &'static str,
    pub unit: Unit,
    pub value: fn(Measured) -> Option<f64>,
}

/// The figures, in the order the table shows them.
pub fn figures() -> Vec<Figure> {
    fn m(x: Measured<'_>) -> Option<&MachinesRun> {
        x.machines()
    }
    let f = |name, unit, value| Figure { name, unit, value };
    vec![
        f("all Pods applied", Unit::Seconds, |x| {
            x.milestones().pods_applied_s
        }),
        f("all Pods Running", Unit::Seconds, |x| {
            x.milestones().pods_running_s
        }),
        f("all Nodes Ready", Unit::Seconds, |x| {
            x.milestones().nodes_ready_s
        }),
        f("all Machines Pending (MCM's phase)", Unit::Seconds, |x| {
            m(x)?.all_pending_s
        }),
        f("all done (Machine Running; set done)", Unit::Seconds, |x| {
            x.milestones().done_s
        }),
        f("done per second, wall clock", Unit::PerSecond, |x| {
            x.throughput_per_s()
        }),
        f("create → done p50", Unit::Seconds, |x| {
            x.to_done().map(|s| s.p50)
        }),
        f("create → done p95", Unit::Seconds, |x| {
            x.to_done().map(|s| s.p95)
        }),
        f("delete: all gone", Unit::Seconds, |x| {
            m(x)?.deletion.all_gone_s
        }),
        f("controller CPU, create", Unit::Seconds, |x| {
            Some(m(x)?.controller.cpu_create_s)
        }),
        f("controller CPU, delete", Unit::Seconds, |x| {
            Some(m(x)?.controller.cpu_delete_s)
        }),
        f("controller CPU, total (incl. start)", Unit::Seconds, |x| {
            Some(m(x)?.controller.cpu_total_s)
        }),
        f("controller peak RSS", Unit::Mib, |x| {
            Some(m(x)?.controller.peak_rss_mib)
        }),
        f(
            "API requests per machine, create (all clients, no Node Leases)",
            Unit::Requests,
            |x| match x {
                Measured::Machines(r) => Some(without_leases(&r.requests_create.server_all)),
                Measured::Sets(r) => Some(without_leases(&r.requests_server_all)),
            },
        ),
        f(
            "API requests per machine, delete (all clients, no Node Leases)",
            Unit::Requests,
            |x| Some(without_leases(&m(x)?.requests_delete.server_all)),
        ),
        f(
            "Node Lease requests per machine (kwok's heartbeats), create",
            Unit::Requests,
            |x| match x {
                Measured::Machines(r) => Some(lease_requests(&r.requests_create.server_all)),
                Measured::Sets(r) => Some(lease_requests(&r.requests_server_all)),
            },
        ),
        f(
            "Node Lease requests per machine (kwok's heartbeats), delete",
            Unit::Requests,
            |x| Some(lease_requests(&m(x)?.requests_delete.server_all)),
        ),
        f("errors", Unit::Count, |x| match x {
            Measured::Machines(r) => Some(r.errors.total as f64),
            Measured::Sets(r) => Some(r.errors as f64),
        }),
        f("leftovers", Unit::Count, |x| {
            Some(m(x)?.leftover_count as f64)
        }),
    ]
}

/// The spread of `figure` for contender `c` over `runs`.
pub fn over_rounds(runs: &[&Run], c: Contender, figure: &Figure) -> Option<Spread> {
    let values: Vec<f64> = runs
        .iter()
        .filter_map(|r| Measured::of(r, c))
        .filter_map(figure.value)
        .collect();
    spread(&values)
}

/// A ratio of two medians, with ✅/❌ against `at_most` (or `at_least`).
pub fn ratio_cell(ours: Option<Spread>, theirs: Option<Spread>, target: Target) -> String {
    let (Some(o), Some(t)) = (ours, theirs) else {
        return "—".into();
    };
    if t.median <= 0.0 {
        return "—".into();
    }
    let r = o.median / t.median;
    let mark = match target {
        Target::None => "",
        Target::AtMost(x) if r <= x => " ✅",
        Target::AtLeast(x) if r >= x => " ✅",
        Target::AtMost(_) | Target::AtLeast(_) => " ❌",
    };
    format!("{r:.2}x{mark}")
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    None,
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn shown(self) -> String {
        match self {
            Target::None => String::new(),
            Target::AtMost(x) => format!("≤ {x}x"),
            Target::AtLeast(x) => format!("≥ {x}x"),
        }
    }
}

/// The target for ours over the shipped Go peer, by figure; against the
/// tuned peer every time, count and request figure must be below 1.
fn go_target(name: &str) -> Target {
    match name {
        "all Pods applied" => Target::AtMost(0.1),
        "delete: all gone" => Target::AtMost(0.3),
        "controller CPU, total (incl. start)" => Target::AtMost(0.5),
        "controller peak RSS" => Target::AtMost(0.25),
        n if n.starts_with("API requests per machine") => Target::AtMost(0.7),
        _ => Target::None,
    }
}

fn tuned_target(f: &Figure) -> Target {
    match f.unit {
        // Faster is a higher rate; the rate row is read the other way round.
        Unit::PerSecond => Target::AtLeast(1.0),
        Unit::Count => Target::None,
        _ if f.name.starts_with("Node Lease") => Target::None,
        _ => Target::AtMost(1.0),
    }
}

/// The medians table and the ratios for the rounds of one N.
pub fn markdown(n: usize, runs: &[&Run]) -> String {
    let mut md = String::new();
    let present: Vec<Contender> = [
        Contender::Ours,
        Contender::Go,
        Contender::GoTuned,
        Contender::Bare,
        Contender::Floor,
    ]
    .into_iter()
    .filter(|c| runs.iter().any(|r| Measured::of(r, *c).is_some()))
    .collect();
    let _ = writeln!(
        md,
        "\n## N={n}: medians of {} round(s), (min–max)\n\n\
         Wall clock from the first create call; the same milestone in every column. The kubelet \
         stand-in joins every contender's machine Pods the same way, the join delay after the \
         Pod runs. Rounds ran in shuffled order \
         (listed under \"Rounds\").\n",
        runs.len()
    );
    md.push('|');
    for c in &present {
        let _ = write!(md, " | {}", c.name());
    }
    md.push_str(" |\n|---|");
    md.push_str(&"---:|".repeat(present.len()));
    md.push('\n');
    let figures = figures();
    for f in &figures {
        let cells: Vec<String> = present
            .iter()
            .map(|c| cell(over_rounds(runs, *c, f), f.unit))
            .collect();
        if cells.iter().all(|c| c == "—") {
            continue;
        }
        let _ = writeln!(md, "| {} | {} |", f.name, cells.join(" | "));
    }

    let peers: Vec<Contender> = [Contender::Go, Contender::GoTuned]
        .into_iter()
        .filter(|c| present.contains(c))
        .collect();
    if !peers.is_empty() {
        let _ = writeln!(
            md,
            "\n### N={n}: ours / Go, ratio of medians\n\n\
             Targets: against the shipped peer, the issue's; against the tuned peer, ahead on \
             every row (a rate above 1, everything else below).\n"
        );
        md.push_str("| |");
        for p in &peers {
            let _ = write!(md, " ours / {} | target |", p.name());
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|---|".repeat(peers.len()));
        md.push('\n');
        for f in figures.iter().filter(|f| f.unit != Unit::Count) {
            let ours = over_rounds(runs, Contender::Ours, f);
            let mut row = format!("| {} |", f.name);
            let mut any = false;
            for p in &peers {
                let target = match p {
                    Contender::Go => go_target(f.name),
                    _ => tuned_target(f),
                };
                let r = ratio_cell(ours, over_rounds(runs, *p, f), target);
                any |= r != "—";
                let _ = write!(row, " {r} | {} |", target.shown());
            }
            if any {
                let _ = writeln!(md, "{row}");
            }
        }
    }

    let rate = figures
        .iter()
        .find(|f| f.unit == Unit::PerSecond)
        .expect("the rate figure");
    let rate_of = |c| over_rounds(runs, c, rate);
    let limits: Vec<(&str, String)> = [
        (
            "ours / contract floor (target ≥ 0.9x)",
            ratio_cell(
                rate_of(Contender::Ours),
                rate_of(Contender::Floor),
                Target::AtLeast(0.9),
            ),
        ),
        (
            "ours / bare client",
            ratio_cell(
                rate_of(Contender::Ours),
                rate_of(Contender::Bare),
                Target::None,
            ),
        ),
        (
            "contract floor / bare client (what the contract costs)",
            ratio_cell(
                rate_of(Contender::Floor),
                rate_of(Contender::Bare),
                Target::None,
            ),
        ),
    ]
    .into_iter()
    .filter(|(_, r)| r != "—")
    .collect();
    if !limits.is_empty() {
        let _ = writeln!(
            md,
            "\n### N={n}: rates against the limits, ratio of median rates (done per second, wall clock)\n"
        );
        md.push_str("| | ratio |\n|---|---:|\n");
        for (name, r) in limits {
            let _ = writeln!(md, "| {name} | {r} |");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ProcessStats;

    #[test]
    fn medians_take_the_middle_and_the_spread_is_the_range() {
        assert_eq!(spread(&[]), None);
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (2.0, 1.0, 3.0, 3));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(spread(&[f64::NAN, 5.0]).unwrap().median, 5.0);
        assert_eq!(
            cell(spread(&[3.0, 1.0, 2.0]), Unit::Seconds),
            "2.00 s (1.00–3.00)"
        );
        assert_eq!(cell(spread(&[7.0, 7.0]), Unit::Mib), "7.0 MiB");
        assert_eq!(
            cell(spread(&[2.0, 4.0, 3.0]), Unit::PerSecond),
            "3.0/s (2.0–4.0)"
        );
        assert_eq!(cell(None, Unit::Count), "—");
    }

    #[test]
    fn node_lease_requests_are_shown_apart() {
        let p = PerMachine {
            total: 50.0,
            by_verb: Default::default(),
            by_resource: [
                ("leases PUT".to_string(), 40.0),
                ("leases POST".to_string(), 1.0),
                ("pods APPLY".to_string(), 9.0),
            ]
            .into(),
        };
        assert_eq!(lease_requests(&p), 41.0);
        assert_eq!(without_leases(&p), 9.0);
    }

    fn machines(running: f64, rss: f64) -> MachinesRun {
        MachinesRun {
            n: 100,
            all_running_s: Some(running),
            throughput_per_s: Some(100.0 / running),
            milestones: Milestones {
                done_s: Some(running),
                pods_applied_s: Some(running / 2.0),
                ..Default::default()
            },
            controller: ProcessStats {
                peak_rss_mib: rss,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn sets(done: f64) -> BareRun {
        BareRun {
            n: 100,
            throughput_per_s: Some(100.0 / done),
            milestones: Milestones {
                done_s: Some(done),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn ratios_are_of_medians_and_marked_against_their_targets() {
        let runs: Vec<Run> = [
            (10.0, 20.0, 100.0),
            (12.0, 200.0, 90.0),
            (11.0, 40.0, 110.0),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (ours, go, go_rss))| Run {
            round: i + 1,
            machines: machines(ours, 20.0),
            peer: Some(machines(go, go_rss)),
            floor: Some(sets(10.0)),
            ..Default::default()
        })
        .collect();
        let refs: Vec<&Run> = runs.iter().collect();
        let figures = figures();
        let find = |name: &str| figures.iter().find(|f| f.name == name).unwrap();
        let done = find("all done (Machine Running; set done)");
        // Ours: median 11 of 10, 11, 12; Go: median 40 of 20, 40, 200.
        assert_eq!(
            over_rounds(&refs, Contender::Ours, done).unwrap().median,
            11.0
        );
        assert_eq!(
            over_rounds(&refs, Contender::Go, done).unwrap().median,
            40.0
        );
        let rss = find("controller peak RSS");
        assert_eq!(
            ratio_cell(
                over_rounds(&refs, Contender::Ours, rss),
                over_rounds(&refs, Contender::Go, rss),
                go_target(rss.name)
            ),
            "0.20x ✅"
        );
        // Ours against the floor: 100/11 over 100/10 per second is 0.91.
        let rate = find("done per second, wall clock");
        assert_eq!(
            ratio_cell(
                over_rounds(&refs, Contender::Ours, rate),
                over_rounds(&refs, Contender::Floor, rate),
                Target::AtLeast(0.9)
            ),
            "0.91x ✅"
        );
        // Figures a contender has not (the floor deletes nothing) stay empty.
        let gone = find("delete: all gone");
        assert_eq!(over_rounds(&refs, Contender::Floor, gone), None);
        let md = markdown(100, &refs);
        assert!(md.contains("| all done (Machine Running; set done) | 11.00 s (10.00–12.00) | 40.00 s (20.00–200.00) | 10.00 s |"), "{md}");
        assert!(
            md.contains("| ours / contract floor (target ≥ 0.9x) | 0.91x ✅ |"),
            "{md}"
        );
        assert!(!md.contains("Go tuned"), "{md}");
    }
}
