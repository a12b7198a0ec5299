// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! CPU time of processes from `/proc`: the controller, the benchmark itself and
//! every component of the local cluster (from `.local/pids`), to show where the
//! machine's cores went during a phase.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

/// Clock ticks per second, for `/proc/<pid>/stat`.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Fields of `/proc/<pid>/stat` from the state (field 3) on.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// User plus system CPU seconds of a process (`None` if it is gone).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let f = stat_fields(pid)?;
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / clock_ticks())
}

/// CPU seconds of every recorded cluster component that still is the process
/// cluster-up started (same start time), keyed "component".
pub fn components(root: &Path) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let pids = std::fs::read_to_string(root.join(".local/pids")).unwrap_or_default();
    for line in pids.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [cluster, component, pid, start] = f[..] else {
            continue;
        };
        let alive = stat_fields(pid).is_some_and(|s| s.get(19).map(String::as_str) == Some(start));
        if let (true, Some(cpu)) = (alive, cpu_seconds(pid)) {
            let key = if cluster == "target" {
                component.to_string()
            } else {
                format!("{cluster}/{component}")
            };
            *out.entry(key).or_default() += cpu;
        }
    }
    if let Some(cpu) = cpu_seconds("self") {
        out.insert("benchmark".into(), cpu);
    }
    if let Some(cpu) = machine_busy_seconds() {
        out.insert(MACHINE.into(), cpu);
    }
    out
}

/// The key of the whole machine's busy CPU seconds in [`components`].
pub const MACHINE: &str = "(machine)";

/// Busy CPU seconds of all cores since boot (`/proc/stat`: everything but idle
/// and iowait).
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user)
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum();
    Some(busy / clock_ticks())
}

/// `after - before` per process, with the machine's busy time not accounted for
/// by them as "other processes".
pub fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.get(k).copied().unwrap_or(0.0)).max(0.0),
            )
        })
        .collect();
    if let Some(machine) = out.remove(MACHINE) {
        let ours: f64 = out.values().sum();
        out.insert("other processes".into(), (machine - ours).max(0.0));
    }
    out
}
