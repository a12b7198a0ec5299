// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The controller under test as a child process: ours or gardener's Go peer,
//! started with the benchmark's flags, its CPU time and peak RSS read from
//! `/proc`. Ours has its requests counted from its own log (the client's `HTTP`
//! span, one `requesting` event per request that left the token bucket); the Go
//! peer logs no request, so only its klog severities are counted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::cluster::{Env, Requests, Result, classify};

/// Which controller runs the machines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum Side {
    #[default]
    Ours,
    /// gardener's machine-controller-manager-provider-local (MCM v0.62.1), as
    /// shipped.
    Go,
    /// The same with its driver client given `--kube-api-qps`/`--kube-api-burst`
    /// (hack/tools/gardener/kube-api-rate.patch).
    GoTuned,
}

impl Side {
    /// Its name in CPU lines and log files.
    pub fn process(self) -> &'static str {
        match self {
            Side::Ours => "machine-controller",
            Side::Go => "go-peer",
            Side::GoTuned => "go-peer-tuned",
        }
    }
}

/// What the benchmark sets on the controller.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Flags {
    pub qps: f32,
    pub burst: u32,
    pub concurrent_syncs: u16,
    /// With leader election (the restart and leader change of ours): the
    /// controller may stand by, and leads once it holds the lease.
    pub leader_elect: bool,
    /// `--machine-creation-timeout` of ours, when not MCM's 20 minutes.
    pub creation_timeout: Option<Duration>,
}

impl Flags {
    pub fn args(&self, env: &Env, namespace: &str) -> Vec<String> {
        let mut args = vec![
            format!("--control-kubeconfig={}", env.control.kubeconfig.display()),
            format!("--target-kubeconfig={}", env.target.kubeconfig.display()),
            format!("--namespace={namespace}"),
            format!("--leader-elect={}", self.leader_elect),
            "--port=0".into(),
            "--address=127.0.0.1".into(),
            format!("--kube-api-qps={}", self.qps),
            format!("--kube-api-burst={}", self.burst),
            format!("--concurrent-syncs={}", self.concurrent_syncs),
            "--log-format=json".into(),
        ];
        args.extend(
            self.creation_timeout
                .map(|t| format!("--machine-creation-timeout={}s", t.as_secs())),
        );
        args
    }

    /// The Go peer's command line: the same bucket and workers, MCM's creation
    /// timeout (ours has the same default), klog at gardener's `--v=3`. Its
    /// admin server has no port 0, so the caller picks a free one.
    pub fn peer_args(&self, env: &Env, namespace: &str, port: u16) -> Vec<String> {
        vec![
            format!("--control-kubeconfig={}", env.control.kubeconfig.display()),
            format!("--target-kubeconfig={}", env.target.kubeconfig.display()),
            format!("--namespace={namespace}"),
            "--leader-elect=false".into(),
            format!("--port={port}"),
            "--address=127.0.0.1".into(),
            format!("--kube-api-qps={}", self.qps),
            format!("--kube-api-burst={}", self.burst),
            format!("--concurrent-syncs={}", self.concurrent_syncs),
            "--machine-creation-timeout=20m".into(),
            "--v=3".into(),
        ]
    }

    /// The peer's flags as the header shows them.
    pub fn peer_shown(&self) -> String {
        format!(
            "--kube-api-qps={} --kube-api-burst={} --concurrent-syncs={} --leader-elect=false \
             --machine-creation-timeout=20m --v=3",
            self.qps, self.burst, self.concurrent_syncs
        )
    }

    /// The flags as the header shows them (paths and namespace left out).
    pub fn shown(&self) -> String {
        format!(
            "--kube-api-qps={} --kube-api-burst={} --concurrent-syncs={} --leader-elect=false",
            self.qps, self.burst, self.concurrent_syncs
        )
    }
}

/// Our defaults plus the client's per-request span and event, which the JSON log
/// carries with method and URL.
fn rust_log() -> String {
    format!(
        "info,kube=warn,hyper=warn,h2=warn,tower=warn,rustls=warn,{}=debug",
        mcm_local::client::REQUEST_LOG_TARGET
    )
}

/// What the controller's log told so far.
#[derive(Clone, Debug, Default)]
pub struct LogStats {
    /// Requests sent, by verb and resource.
    pub requests: Requests,
    /// Responses by HTTP status (from the span when the body was read to the end).
    pub statuses: BTreeMap<u16, u64>,
    /// WARN and ERROR lines other than the client's per-request ones.
    pub warnings: u64,
    pub errors: u64,
    /// The first few of those lines.
    pub problems: Vec<String>,
    /// The Go peer's error lines by the source location klog names
    /// (`file.go:line`): most are MCM's ordinary retries (conflicts, "machine
    /// creation in process"), which this tells apart.
    pub error_sources: BTreeMap<String, u64>,
    /// The Go peer's requests that client-go held back in its token bucket
    /// (logged at `--v=3` when the wait is long), by verb and resource, and the
    /// longest wait.
    pub throttled: Requests,
    pub throttled_max_s: f64,
    /// Ours said it acquired the leader lease.
    pub leading: bool,
}

impl LogStats {
    /// The counts of two processes' logs together (a controller and the one
    /// that took over from it).
    pub fn plus(mut self, other: &LogStats) -> LogStats {
        for (key, n) in &other.requests {
            *self.requests.entry(key.clone()).or_default() += n;
        }
        for (code, n) in &other.statuses {
            *self.statuses.entry(*code).or_default() += n;
        }
        self.warnings += other.warnings;
        self.errors += other.errors;
        let room = 5usize.saturating_sub(self.problems.len());
        self.problems
            .extend(other.problems.iter().take(room).cloned());
        for (source, n) in &other.error_sources {
            *self.error_sources.entry(source.clone()).or_default() += n;
        }
        for (key, n) in &other.throttled {
            *self.throttled.entry(key.clone()).or_default() += n;
        }
        self.throttled_max_s = self.throttled_max_s.max(other.throttled_max_s);
        self.leading |= other.leading;
        self
    }

    fn line(&mut self, line: &str, address: &mut Option<oneshot::Sender<String>>) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        let target = v["target"].as_str().unwrap_or_default();
        let level = v["level"].as_str().unwrap_or_default();
        if target == mcm_local::client::REQUEST_LOG_TARGET {
            let span = &v["span"];
            match message {
                "requesting" => {
                    let method = span["http.method"].as_str().unwrap_or_default();
                    let url = span["http.url"].as_str().unwrap_or_default();
                    *self
                        .requests
                        .entry(classify(method, url, None))
                        .or_default() += 1;
                }
                "stream closed" => {
                    if let Some(code) = span["http.status_code"].as_u64() {
                        *self.statuses.entry(code as u16).or_default() += 1;
                    }
                }
                _ => {}
            }
            if level != "ERROR" {
                return;
            }
        }
        if message.starts_with("acquired the leader lease") {
            self.leading = true;
        }
        if message.starts_with("admin server listening")
            && let (Some(addr), Some(tx)) = (v["fields"]["address"].as_str(), address.take())
        {
            let _ = tx.send(addr.to_string());
        }
        let problem = match level {
            "WARN" => {
                self.warnings += 1;
                true
            }
            "ERROR" => {
                self.errors += 1;
                true
            }
            _ => false,
        };
        if problem && self.problems.len() < 5 {
            let fields = v["fields"].to_string();
            self.problems.push(format!(
                "{level} {}",
                fields.chars().take(300).collect::<String>()
            ));
        }
    }

    /// One line of the Go peer's klog output (`Lmmdd hh:mm:ss.uuuuuu pid
    /// file:line] message`, L one of I, W, E, F): counts warnings and errors, and
    /// tells when the controller started its workers (its caches synced).
    fn klog_line(&mut self, line: &str, ready: &mut Option<oneshot::Sender<String>>) {
        let mut chars = line.chars();
        let severity = chars.next();
        let dated = chars.take(4).filter(char::is_ascii_digit).count() == 4;
        if !dated {
            return;
        }
        if line.contains(PEER_STARTED)
            && let Some(tx) = ready.take()
        {
            let _ = tx.send(String::new());
        }
        if line.contains(r#"reason="client-side throttling"#) {
            // `... delay="174.1ms" reason="..." verb="GET" URL="https://..."`
            let field = |name: &str| {
                line.split_once(&format!(r#"{name}=""#))
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(v, _)| v)
            };
            let key = classify(
                field("verb").unwrap_or_default(),
                field("URL").unwrap_or_default(),
                None,
            );
            *self.throttled.entry(key).or_default() += 1;
            let wait = field("delay")
                .and_then(|d| humantime::parse_duration(d).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            self.throttled_max_s = self.throttled_max_s.max(wait);
        }
        let level = match severity {
            Some('W') => {
                self.warnings += 1;
                "WARN"
            }
            Some('E' | 'F') => {
                self.errors += 1;
                // `Lmmdd hh:mm:ss.uuuuuu pid file:line] message`
                let source = line
                    .split_once("] ")
                    .and_then(|(head, _)| head.split_whitespace().last())
                    .unwrap_or("unknown");
                *self.error_sources.entry(source.to_string()).or_default() += 1;
                "ERROR"
            }
            _ => return,
        };
        if self.problems.len() < 5 {
            let message = line.split_once("] ").map_or(line, |(_, m)| m);
            self.problems.push(format!(
                "{level} {}",
                message.chars().take(300).collect::<String>()
            ));
        }
    }
}

/// What MCM logs (at `--v=1`) once every informer has synced and its workers run.
const PEER_STARTED: &str = "Starting machine-controller-manager";

/// A port on 127.0.0.1 that nothing listens on just now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How a log stream is read.
#[derive(Clone, Copy)]
enum Parse {
    Json,
    Klog,
}

/// Copies `stream` line by line to `file`, parsing it as `parse` says into
/// `stats`. The stream that is parsed takes `ready`, whose sender fires on the
/// line that says the controller is up (ours: its admin address).
fn read_lines(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    file: Arc<Mutex<std::io::BufWriter<std::fs::File>>>,
    stats: Arc<Mutex<LogStats>>,
    parse: Option<Parse>,
    ready: &mut Option<oneshot::Sender<String>>,
) -> tokio::task::JoinHandle<()> {
    let mut ready = if parse.is_some() { ready.take() } else { None };
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(parse) = parse {
                let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
                match parse {
                    Parse::Json => stats.line(&line, &mut ready),
                    Parse::Klog => stats.klog_line(&line, &mut ready),
                }
            }
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{line}");
        }
        let _ = file.lock().unwrap_or_else(|e| e.into_inner()).flush();
    })
}

pub struct Controller {
    child: Child,
    pid: u32,
    admin: String,
    stats: Arc<Mutex<LogStats>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    pub log: PathBuf,
}

impl Controller {
    /// Starts `binary` (the controller of `side`) for `namespace` and waits
    /// until its caches have synced: ours answers 200 on `/readyz`, the Go peer
    /// logs that it starts its workers.
    pub async fn start(
        side: Side,
        binary: &Path,
        env: &Env,
        flags: &Flags,
        namespace: &str,
        log: PathBuf,
    ) -> Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = Arc::new(Mutex::new(std::io::BufWriter::new(std::fs::File::create(
            &log,
        )?)));
        let (args, peer_admin) = match side {
            Side::Ours => (flags.args(env, namespace), None),
            Side::Go | Side::GoTuned => {
                let port = free_port()?;
                (
                    flags.peer_args(env, namespace, port),
                    Some(format!("127.0.0.1:{port}")),
                )
            }
        };
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", rust_log())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let pid = child.id().ok_or("the controller exited at once")?;
        let stats = Arc::new(Mutex::new(LogStats::default()));
        let (tx, rx) = oneshot::channel();
        let stdout = child.stdout.take().ok_or("controller stdout")?;
        let stderr = child.stderr.take().ok_or("controller stderr")?;
        // Ours logs JSON to stdout, the Go peer klog text to stderr; each reader
        // copies its stream to the log file and parses the one its side writes.
        let (out_parse, err_parse) = match side {
            Side::Ours => (Some(Parse::Json), None),
            Side::Go | Side::GoTuned => (None, Some(Parse::Klog)),
        };
        let mut ready = Some(tx);
        let readers = vec![
            read_lines(stdout, file.clone(), stats.clone(), out_parse, &mut ready),
            read_lines(stderr, file.clone(), stats.clone(), err_parse, &mut ready),
        ];
        let mut controller = Controller {
            child,
            pid,
            admin: String::new(),
            stats,
            readers,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = tokio::time::timeout_at(deadline, rx)
            .await
            .map_err(|_| match side {
                Side::Ours => "the controller did not report its admin address within 60s",
                Side::Go | Side::GoTuned => "the Go peer did not start its workers within 60s",
            })?
            .map_err(|_| format!("the controller exited; see {}", controller.log.display()))?;
        if let Some(admin) = peer_admin {
            // The Go peer's line comes after its caches synced: nothing to poll.
            controller.admin = admin;
            return Ok(controller);
        }
        controller.admin = address.replace("0.0.0.0", "127.0.0.1");
        // With leader election, the caller waits for what it needs: a standby
        // or a leader.
        if !flags.leader_elect {
            controller.ready_by(deadline, false).await?;
        }
        Ok(controller)
    }

    /// Waits until `/readyz` answers 200 (and, if `leading`, the controller
    /// said it acquired the lease): a readiness probe, polled as kubelet
    /// would, since the controller announces no other event when its caches
    /// have synced.
    async fn ready_by(&mut self, deadline: Instant, leading: bool) -> Result<()> {
        loop {
            if (!leading || self.stats().leading)
                && self.get("/readyz").await.is_ok_and(|(s, _)| s == 200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let what = if leading {
                    "leading and ready"
                } else {
                    "ready"
                };
                return Err(format!(
                    "the controller was not {what} in time; see {}",
                    self.log.display()
                )
                .into());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the controller exited ({status}); see {}",
                    self.log.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until it leads with every cache listed; returns when that was seen.
    pub async fn leading_and_ready(&mut self, deadline: Instant) -> Result<Instant> {
        self.ready_by(deadline, true).await?;
        Ok(Instant::now())
    }

    /// Waits until it stands by (or leads), ready either way.
    pub async fn standing_by(&mut self, deadline: Instant) -> Result<()> {
        self.ready_by(deadline, false).await
    }

    pub fn stats(&self) -> LogStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// User plus system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        crate::proc::cpu_seconds(&self.pid.to_string()).unwrap_or(0.0)
    }

    /// Open sockets (connections to the API servers, the admin listener).
    pub fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|l| l.to_string_lossy().starts_with("socket:"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// A `/proc/<pid>/status` value in kB (VmHWM: peak RSS, VmRSS: current RSS).
    pub fn memory_kb(&self, key: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_string))
            })
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// A plain HTTP/1.1 GET to the admin server: status and body.
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect(&self.admin).await?;
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.admin
                )
                .as_bytes(),
            )
            .await?;
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            stream.read_to_string(&mut response),
        )
        .await??;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no HTTP status")?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// `machine_controller_reconcile_total` by result and category.
    pub async fn reconciles(&self) -> BTreeMap<String, u64> {
        let Ok((200, text)) = self.get("/metrics").await else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("machine_controller_reconcile_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let labels = crate::cluster::parse_labels(labels);
            let key = match labels.get("category").map(String::as_str) {
                None | Some("") => labels.get("result").cloned().unwrap_or_default(),
                Some(c) => format!("{}:{c}", labels.get("result").cloned().unwrap_or_default()),
            };
            let v: f64 = value.trim().parse().unwrap_or(0.0);
            *out.entry(key).or_default() += v.round() as u64;
        }
        out
    }

    /// SIGTERM, then SIGKILL if it has not exited after 15s.
    /// Ends it at once (SIGKILL), as a crash or a lost node would: its lease
    /// is not released.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
    }

    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handover_reports_the_problems_of_both_processes() {
        let first = LogStats {
            requests: Requests::from([(("POST".into(), "pods".into()), 10)]),
            statuses: BTreeMap::from([(409, 1)]),
            errors: 1,
            problems: vec!["ERROR a".into(); 4],
            ..Default::default()
        };
        let last = LogStats {
            requests: Requests::from([(("POST".into(), "pods".into()), 5)]),
            statuses: BTreeMap::from([(409, 2), (500, 1)]),
            errors: 2,
            warnings: 3,
            problems: vec!["ERROR b".into(); 3],
            ..Default::default()
        };
        let both = first.plus(&last);
        assert_eq!(both.requests[&("POST".into(), "pods".into())], 15);
        assert_eq!(both.statuses, BTreeMap::from([(409, 3), (500, 1)]));
        assert_eq!((both.errors, both.warnings), (3, 3));
        assert_eq!(both.problems.len(), 5, "the first few, as for one process");
        assert_eq!(both.problems[4], "ERROR b");
    }
}
