// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The Prometheus client's standard `process_*` metrics, read from `/proc` at
//! scrape time (Go's client exports them; Gardener's ServiceMonitor keeps
//! `process_open_fds` and `process_max_fds`). Where `/proc` is missing, the
//! metrics are absent rather than wrong.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/<pid>/stat` times: 100 on every Linux
/// Kubernetes runs on (USER_HZ).
const TICKS: f64 = 100.0;

#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

/// The soft "Max open files" limit from `/proc/self/limits`.
pub(crate) fn max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory in bytes, from `VmRSS` of `/proc/self/status` (in kB there).
pub(crate) fn resident_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

/// CPU seconds (user and system) from `/proc/self/stat`.
pub(crate) fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of stat(5), so field n is fields[n - 3].
    let utime: f64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: f64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: impl EncodeMetric) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    v.encode(m)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let open = i64::try_from(dir.count()).unwrap_or(i64::MAX);
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                ConstGauge::new(open),
            )?;
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| max_fds(&l))
        {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                ConstGauge::new(max),
            )?;
        }
        if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_seconds(&s))
        {
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
        }
        if let Some(bytes) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| resident_bytes(&s))
        {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                ConstGauge::new(bytes),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fd_limit_and_the_stat_line() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n";
        assert_eq!(max_fds(limits), Some(1_048_576));
        assert_eq!(max_fds("nothing"), None);
        let stat = "42 (machine (ctl)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1234 100000 2560 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
        assert_eq!(
            resident_bytes("Name:\tx\nVmRSS:\t    2560 kB\n"),
            Some(2_621_440)
        );
    }

    #[test]
    fn this_process_is_described() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for name in [
            "process_open_fds ",
            "process_max_fds ",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
        ] {
            assert!(out.contains(name), "{name} in {out}");
        }
    }
}
