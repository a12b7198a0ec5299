// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `make bench` (`cargo bench --bench machines`): throughput, latency and
//! footprint of the controller on the local cluster, against gardener's Go
//! controller (as shipped, and tuned with the rate flags) on the same workload
//! and against what the cluster can do at all (the bare client, the contract
//! floor). `hack/bench/README.md` says what runs and how to read it.
//!
//! For each N, `BENCH_RUNS` rounds; each round runs every contender once, in an
//! order shuffled from `BENCH_SEED` (rounds.rs), each in a fresh namespace. A
//! controller's run (machines.rs): N Machines created at once, watched through
//! the same milestones as the limits' sets (Pods applied, Pods Running, Nodes
//! Ready, done), deleted at once and watched until every Machine, Pod,
//! user-data Secret, Service, Node and bootstrap token is gone; the controller
//! runs as a child process so that its CPU time and peak RSS can be read; ours
//! is restarted and changes leaders in between (handover.rs). The
//! report (report.rs, medians.rs) leads with medians and spreads over the
//! rounds and ratios of medians, and is written with a JSON file of every
//! figure to `hack/bench/results/<start>-n<N...>-r<rounds>.{md,json}`, never
//! over an earlier run.
//!
//! Environment: `BENCH_N` (default `100,1000`), `BENCH_RUNS` (3), `BENCH_SEED`
//! (the clock), `BENCH_QPS` (200), `BENCH_BURST` (300), `BENCH_CONCURRENT_SYNCS`
//! (50), `BENCH_LOAD_CONCURRENCY` (100 create or delete calls in flight),
//! `BENCH_DEADLINE` (seconds per phase; default 120 + 0.6 N, and ours'
//! `--machine-creation-timeout` where that is over MCM's 20 minutes),
//! `BENCH_RESTART_WINDOW` (seconds ours is watched after its restart and after
//! its leader change, with every machine Running; 120, 0 skips both), `BENCH_BARE=0`,
//! `BENCH_FLOOR=0`, `BENCH_PEER=0` (neither Go peer), `BENCH_PEER_BIN` and
//! `BENCH_PEER_TUNED_BIN` (defaults where `hack/tools.sh` links them; skipped
//! with a note when absent), `BENCH_CREDENTIALS=1` (ours with the peer's class
//! shape), `BENCH_CONTROLLER` (binary; default `machine-controller` beside this
//! benchmark's target directory), `BENCH_OUT` (results directory), `BENCH_GIT`
//! (commit shown in the header). The local cluster must be up
//! (`hack/bench/run.sh`, run by `make bench`, sees to it, with join delay 10s
//! when the peers run).

mod bare;
mod cluster;
mod controller;
mod floor;
mod handover;
mod machines;
mod medians;
mod proc;
mod report;
mod rounds;
mod track;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use bare::Limit;
use cluster::{Env, Result};
use controller::{Flags, Side};
use report::{Header, Report, Run};
use rounds::{Contender, Shuffler};

pub struct Options {
    pub ns: Vec<usize>,
    pub flags: Flags,
    pub load_concurrency: usize,
    pub deadline: Option<Duration>,
    /// How long ours is watched after its restart and after its leader
    /// change (handover.rs); zero: neither runs.
    pub restart_window: Duration,
    pub bare: bool,
    /// Also run the contract floor (floor.rs).
    pub floor: bool,
    pub controller: PathBuf,
    /// gardener's Go controller, run after ours on the same workload; `None`
    /// when it is not run, and `peer_skipped` says why.
    pub peer: Option<PathBuf>,
    pub peer_skipped: String,
    /// The same peer with its driver client given the rate flags.
    pub peer_tuned: Option<PathBuf>,
    pub peer_tuned_skipped: String,
    /// Rounds per N (each contender once per round).
    pub rounds: usize,
    /// Seed of the rounds' shuffled orders.
    pub seed: u64,
    /// Our run with the Go peer's class shape (`credentialsSecretRef`).
    pub credentials: bool,
    /// The kubelet stand-in's join delay, once read from its process.
    pub join_delay: Option<Duration>,
    pub out: PathBuf,
    /// Where the controller's logs go (`<target>/bench/`): `.local/` goes with a
    /// cluster that the run started.
    pub logs: PathBuf,
}

impl Options {
    /// How long each phase (create, delete) may take before the rest counts as
    /// failed or left over.
    pub fn deadline(&self, n: usize) -> Duration {
        self.deadline
            .unwrap_or(Duration::from_secs(120) + Duration::from_millis(600 * n as u64))
    }

    fn from_env(root: &Path) -> Result<Self> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={v:?} is not valid").into()),
                _ => Ok(default),
            }
        }
        let ns = var("BENCH_N", "100,1000".to_string())?
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=40_000).contains(n))
                    .ok_or_else(|| format!("BENCH_N: {n:?} is not a number from 1 to 40000"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // target/release/deps/machines-<hash> -> target/release
        let exe = std::env::current_exe()?;
        let release = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("cannot locate the target directory")?;
        let controller = match std::env::var_os("BENCH_CONTROLLER") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => release.join("machine-controller"),
        };
        let logs = release.parent().unwrap_or(release).join("bench");
        if !controller.is_file() {
            return Err(format!(
                "{} not found: run `cargo build --release --bin machine-controller` (make bench does)",
                controller.display()
            )
            .into());
        }
        let deadline: u64 = var("BENCH_DEADLINE", 0)?;
        let wanted = var("BENCH_PEER", 1u8)? != 0;
        let (peer, peer_skipped) = peer_binary(wanted, "BENCH_PEER_BIN", "");
        let (peer_tuned, peer_tuned_skipped) =
            peer_binary(wanted, "BENCH_PEER_TUNED_BIN", "-tuned");
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs());
        Ok(Options {
            ns,
            flags: Flags {
                qps: var("BENCH_QPS", 200.0)?,
                burst: var("BENCH_BURST", 300)?,
                concurrent_syncs: var("BENCH_CONCURRENT_SYNCS", 50)?,
                leader_elect: false,
                creation_timeout: None,
            },
            load_concurrency: var("BENCH_LOAD_CONCURRENCY", 100usize)?.max(1),
            deadline: (deadline > 0).then(|| Duration::from_secs(deadline)),
            restart_window: Duration::from_secs(var("BENCH_RESTART_WINDOW", 120)?),
            bare: var("BENCH_BARE", 1u8)? != 0,
            floor: var("BENCH_FLOOR", 1u8)? != 0,
            controller,
            peer,
            peer_skipped,
            peer_tuned,
            peer_tuned_skipped,
            rounds: var("BENCH_RUNS", 3usize)?.max(1),
            seed: var("BENCH_SEED", seed)?,
            credentials: var("BENCH_CREDENTIALS", 0u8)? != 0,
            join_delay: None,
            out: match std::env::var_os("BENCH_OUT") {
                Some(p) if !p.is_empty() => PathBuf::from(p),
                _ => root.join("hack/bench/results"),
            },
            logs,
        })
    }
}

/// Where `hack/tools.sh` links gardener's Go peer (`suffix` "-tuned": the tuned
/// one), unless the variable `var` says otherwise; `None` and the reason when it
/// is not to run or not there.
fn peer_binary(wanted: bool, var: &str, suffix: &str) -> (Option<PathBuf>, String) {
    if !wanted {
        return (None, "not run (BENCH_PEER=0)".into());
    }
    let path = match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .filter(|c| !c.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_default();
            cache.join(format!(
                "mcm-provider-local/tools/current/machine-controller-manager-provider-local{suffix}"
            ))
        }
    };
    if path.is_file() {
        (Some(path), String::new())
    } else {
        let why = format!(
            "not run: {} not found (`make tools` builds it)",
            path.display()
        );
        (None, why)
    }
}

/// The longest CreateMachine of the Go driver before it looks at Nodes: it polls
/// the Pod every 5 s, and a Node registered before it returned is taken for a
/// stale one ("VM using old node obj"), its VM deleted.
const PEER_MIN_JOIN_DELAY: Duration = Duration::from_secs(5);

fn command_output(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The kubelet stand-in's build and `--join-delay`, from its process
/// (`.local/pids`), and the join delay as a duration when it could be read.
fn standin(root: &Path) -> (String, Option<Duration>) {
    let pids = std::fs::read_to_string(root.join(".local/pids")).unwrap_or_default();
    let Some(pid) = pids.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"kubelet-standin")).then(|| f.get(2).map(|p| p.to_string()))?
    }) else {
        return ("kubelet stand-in not running".into(), None);
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let delay = args
        .iter()
        .position(|a| a == "--join-delay")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--join-delay=").map(str::to_string))
        })
        .unwrap_or_else(|| "0s (default)".into());
    let join_delay = humantime::parse_duration(delay.trim_end_matches(" (default)")).ok();
    let build = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|exe| {
            if exe.components().any(|c| c.as_os_str() == "release") {
                "release build"
            } else {
                "debug build"
            }
        })
        .unwrap_or("build unknown");
    (
        format!("kubelet stand-in ({build}) join delay {delay}"),
        join_delay,
    )
}

/// A peer's build: the tools cache's directory its link points into.
fn build_of(path: &Path) -> String {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| Some(p.parent()?.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "build unknown".into())
}

/// The Go peer as the header shows it: its build, flags and class shape, or
/// why it was not run.
fn peer_shown(opts: &Options) -> String {
    let Some(path) = &opts.peer else {
        return opts.peer_skipped.clone();
    };
    let build = build_of(path);
    format!(
        "gardener's machine-controller-manager-provider-local ({build}, MCM v0.62.1) `{}`; its class \
         has `credentialsSecretRef` naming the user-data Secret, which also holds the target's kubeconfig",
        opts.flags.peer_shown()
    )
}

/// The tuned peer as the header shows it.
fn peer_tuned_shown(opts: &Options) -> String {
    let Some(path) = &opts.peer_tuned else {
        return opts.peer_tuned_skipped.clone();
    };
    let build = build_of(path);
    format!(
        "the same ({build}) with hack/tools/gardener/kube-api-rate.patch: its driver client obeys `--kube-api-qps`/`--kube-api-burst` too (the shipped peer's runs at \
         client-go's 5/s, burst 10); same flags and class"
    )
}

/// The class our controller ran with.
fn our_class(opts: &Options) -> String {
    if opts.credentials {
        "the Go peer's shape (BENCH_CREDENTIALS=1): `credentialsSecretRef` with the target's \
         kubeconfig, so our driver reaches the Pods through a client of its own (with the \
         token bucket), whose machine Pods it watches too: a second watch of the same cluster"
            .into()
    } else {
        "the sample class (no `credentialsSecretRef`): our driver uses its target client, whose \
         machine Pods it watches; with the Go peer's shape it would use a client and a watch \
         of its own (BENCH_CREDENTIALS=1 runs it so)"
            .into()
    }
}

async fn header(env: &Env, opts: &Options, standin: &str) -> Header {
    let now = jiff::Zoned::now();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kubernetes = command_output(
        &env.kubectl,
        &[
            &format!("--kubeconfig={}", env.target.kubeconfig.display()),
            "version",
            "-o",
            "json",
        ],
    )
    .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
    .and_then(|v| {
        v["serverVersion"]["gitVersion"]
            .as_str()
            .map(str::to_string)
    })
    .unwrap_or_else(|| "unknown".into());
    let kwok = std::fs::canonicalize(&env.kubectl)
        .ok()
        .and_then(|k| k.parent().map(Path::to_path_buf))
        .and_then(|dir| {
            // kubectl sits in tools/kubernetes-<v>/, kwok in tools/kwok-<v>/
            let tools = dir.parent()?;
            let kwok_dir = std::fs::read_dir(tools)
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("kwok-"))
                })?;
            command_output(kwok_dir.join("kwok"), &["--version"])
        })
        .and_then(|v| v.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let hosts = Api::<Node>::all(env.target.client.clone())
        .list_metadata(&ListParams::default().labels("node-role.kubernetes.io/host"))
        .await
        .map_or(0, |l| l.items.len());
    let clusters = if env.one_cluster() {
        "1 cluster (control = target)".to_string()
    } else {
        "2 clusters (control, target)".to_string()
    };
    let ns: Vec<String> = opts
        .ns
        .iter()
        .map(|n| format!("N={n}: {:?}", opts.deadline(*n)))
        .collect();
    Header {
        date: now.strftime("%Y-%m-%d").to_string(),
        started: now.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        stamp: now.strftime("%Y-%m-%d-%H%M%S").to_string(),
        machine: format!(
            "{cpus} CPUs ({cpu_model}), {memory_gib:.1} GiB memory, {}; load average at start {} \
             (the machine is shared: see \"other processes\" in the CPU lines)",
            command_output("uname", &["-sr"]).unwrap_or_default(),
            std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        ),
        cpus,
        cpu_model,
        memory_gib,
        rustc: command_output("rustc", &["--version"]).unwrap_or_else(|| "rustc unknown".into()),
        kubernetes,
        kwok,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        git: std::env::var("BENCH_GIT")
            .ok()
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| "commit unknown".into()),
        cluster: format!("{clusters}, {hosts} kwok host nodes, {standin}"),
        join_delay_s: opts.join_delay.map(|d| d.as_secs_f64()),
        controller_flags: format!(
            "machine-controller {} (release build; control and target clients each have this bucket, and Events one of their own, as in MCM)",
            opts.flags.shown()
        ),
        our_class: our_class(opts),
        peer: peer_shown(opts),
        peer_tuned: peer_tuned_shown(opts),
        rounds: opts.rounds,
        seed: opts.seed,
        bare_client: format!(
            "kube-rs client with the same token bucket (qps {}, burst {}), {} workers (as many as \
             the controller's) shared by the sets' writes and their joins' writes, per set what \
             a machine inherently costs: bootstrap token, Secret, Pod and Service created (machine Pods: the kubelet stand-in joins them as it joins ours, the join \
             delay after the Pod runs), token deleted once kwok has the Node Ready",
            opts.flags.qps, opts.flags.burst, opts.flags.concurrent_syncs
        ),
        load_generator: format!(
            "unthrottled kube-rs client, {} create/delete calls in flight",
            opts.load_concurrency
        ),
        deadline: ns.join(", "),
    }
}

fn notes() -> Vec<String> {
    [
        "Times are wall clock from the first create (delete) call to the last object's watch event; per-machine latencies from each machine's own create call to the first watch event showing the step. Every contender is watched by the same watches, started before its first create.",
        "Requests per machine in the medians leave out Node Lease requests (kwok's heartbeats, which grow with how long the Nodes live), shown in rows of their own; kwok's periodic Node status updates stay in.",
        "Controller requests are counted client-side from its log: the client's `HTTP` span (src/client/http.rs) (method, URL) at debug level, one `requesting` event per request that left the token bucket; retries count again. A PATCH with `force=true` counts as APPLY.",
        "Server-side counts come from `apiserver_request_total` before and after each phase, for the resources the controller touched, less the benchmark's own requests; other components that touch the same resources (scheduler, kwok, kubelet stand-in, garbage collector) are included, so server-side ≥ controller.",
        "The bare client does per set what a machine inherently costs the cluster: a bootstrap token, the user-data Secret, Pod and Service through the controller's token bucket, the Node (registered by the kubelet stand-in the join delay after its Pod runs, exactly as it registers the controllers' machines: its Pods are machine Pods; made Ready by kwok), and the token's deletion once the Pod runs and the Node is Ready. What ours does beyond that (status writes, Events, finalizers, node labels, its watches and decisions) is the controller's overhead.",
        "The contract floor is the bare client's sets plus the writes MCM's contract asks of any machine controller, with our Events: the user's Machine (by the load generator, left out of the counts as in our runs), our finalizer, providerID and node label, the Pending status and its Event, then on joining the Node's label and finalizer, the join annotation, the Running status and its Event. It uses the controller's payload builders and token buckets (control, target, Events), neither watches Machines nor decides anything, and, like the bare client, has its Nodes registered by the kubelet stand-in, as the controllers' are. Its rate over the bare client's is what the contract costs on this cluster; ours over the floor's is what the controller adds.",
        "Errors: machines Failed/CrashLoopBackOff or not Running at the deadline, failed calls of the load generator, controller requests answered 429/5xx, ERROR lines in the controller log. Leftovers: Machines, machine Pods, user-data Secrets, Services, Nodes and bootstrap tokens of the run still present at the deletion deadline.",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

async fn run() -> Result<()> {
    // The repository: this package lives in hack/bench of it.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let mut opts = Options::from_env(&root)?;
    let env = Env::load(&root).await?;
    let (standin, join_delay) = standin(&env.root);
    opts.join_delay = join_delay;
    if opts.peer.is_some() && join_delay.is_none_or(|d| d <= PEER_MIN_JOIN_DELAY) {
        opts.peer = None;
        opts.peer_skipped = format!(
            "not run: the stand-in's join delay must exceed {PEER_MIN_JOIN_DELAY:?} for the Go \
             driver (it deletes a VM whose Node registered before its CreateMachine returned); \
             `hack/cluster-down.sh`, then `make bench` starts a cluster with 10s"
        );
    }
    let header = header(&env, &opts, &standin).await;
    eprintln!(
        "bench: N = {:?}; controller {}; {}; Go peer: {}",
        opts.ns, header.controller_flags, header.cluster, header.peer
    );
    let mut report = Report {
        header,
        runs: Vec::new(),
        notes: notes(),
    };
    let mut contenders = vec![Contender::Ours];
    if opts.peer.is_some() {
        contenders.push(Contender::Go);
    }
    if opts.peer_tuned.is_some() {
        contenders.push(Contender::GoTuned);
    }
    if opts.bare {
        contenders.push(Contender::Bare);
    }
    if opts.floor {
        contenders.push(Contender::Floor);
    }
    let mut shuffler = Shuffler::new(opts.seed);
    for &n in &opts.ns {
        for round in 1..=opts.rounds {
            let order = shuffler.shuffle(&contenders);
            let mut run = Run {
                round,
                order: order.iter().map(|c| c.name().to_string()).collect(),
                ..Default::default()
            };
            eprintln!(
                "bench: N={n}, round {round} of {}: {}",
                opts.rounds,
                run.order.join(", ")
            );
            // Each in a fresh namespace with fresh names, nothing of the one
            // before left running.
            for c in order {
                match c {
                    Contender::Ours => {
                        run.machines = machines::run(&env, &opts, n, Side::Ours).await?
                    }
                    Contender::Go => {
                        run.peer = Some(machines::run(&env, &opts, n, Side::Go).await?)
                    }
                    Contender::GoTuned => {
                        run.peer_tuned = Some(machines::run(&env, &opts, n, Side::GoTuned).await?)
                    }
                    Contender::Bare => {
                        run.bare = Some(bare::run(&env, &opts, n, Limit::Bare).await?)
                    }
                    Contender::Floor => {
                        run.floor = Some(bare::run(&env, &opts, n, Limit::Floor).await?)
                    }
                }
            }
            report.runs.push(run);
        }
    }
    let md = report.markdown();
    println!("{md}");
    std::fs::create_dir_all(&opts.out)?;
    // Never over another run's results: the start time is in the name, and a
    // suffix is added should two runs start in the same second.
    let ns: Vec<String> = opts.ns.iter().map(usize::to_string).collect();
    let stem = format!("{}-n{}-r{}", report.header.stamp, ns.join("-"), opts.rounds);
    let base = free_name(&opts.out, &stem);
    std::fs::write(base.with_extension("md"), &md)?;
    std::fs::write(
        base.with_extension("json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    eprintln!("bench: wrote {}.md and .json", base.display());
    Ok(())
}

/// `dir/stem`, or `dir/stem-2`, `-3`, ... : the first whose .md and .json are
/// both free.
fn free_name(dir: &Path, stem: &str) -> PathBuf {
    (1..)
        .map(|i| match i {
            1 => dir.join(stem),
            i => dir.join(format!("{stem}-{i}")),
        })
        .find(|b| !b.with_extension("md").exists() && !b.with_extension("json").exists())
        .unwrap_or_else(|| dir.join(stem))
}

/// Runs the benchmark (the bench target's `main`).
#[tokio::main]
pub async fn main() -> ExitCode {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("machines benchmark: run it with `make bench`");
        return ExitCode::SUCCESS;
    }
    let interrupted = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    // Returning drops the run, and with it the controller child (kill on drop).
    let result = tokio::select! {
        r = run() => r,
        _ = interrupted => Err("interrupted".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_never_overwrite_an_earlier_run() {
        let dir = std::env::temp_dir().join(format!("mcm-bench-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = free_name(&dir, "2026-12-07-170000-n100-r3");
        assert_eq!(first, dir.join("2026-12-07-170000-n100-r3"));
        std::fs::write(first.with_extension("md"), "taken").unwrap();
        let second = free_name(&dir, "2026-12-07-170000-n100-r3");
        assert_eq!(second, dir.join("2026-12-07-170000-n100-r3-2"));
        // A JSON alone also takes the name.
        std::fs::write(second.with_extension("json"), "{}").unwrap();
        assert_eq!(
            free_name(&dir, "2026-12-07-170000-n100-r3"),
            dir.join("2026-12-07-170000-n100-r3-3")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
