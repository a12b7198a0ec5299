// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! N machines through the controller: created at once, watched to Pending and
//! Running, deleted at once, watched until every object of theirs is gone.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::phase;
use mcm_local::controller::bootstrap;
use tokio::time::Instant;

use crate::Options;
use crate::cluster::{Env, Requests, Result, create_namespace, delete_namespace};
use crate::controller::{Controller, LogStats};
use crate::report::{
    Deletion, Errors, MachinesRun, PhaseCpu, PhaseRequests, ProcessStats, per_machine, summarize,
};
use crate::track::{Progress, Tracker};

const CLASS: &str = "test-class";
const CLASS_SECRET: &str = "test-secret";
const MACHINE_SELECTOR: &str = "machine-provider=local";

/// Three base-36 digits of `i`. MCM derives a machine's bootstrap token id from
/// the 3rd- to 5th-last characters of its name, so these must differ per machine.
fn base36(mut i: usize, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[i % 36];
        i /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A short tag that keeps this run's names (Nodes are cluster-wide) apart from
/// earlier runs'.
pub fn run_tag() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("b{}", base36(now.as_secs() as usize % 36usize.pow(4), 4))
}

pub fn machine_name(tag: &str, i: usize) -> String {
    format!("{tag}-{}-m", base36(i, 3))
}

fn machine(name: &str, namespace: &str) -> Result<Machine> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "machine.sapcloud.io/v1alpha1",
        "kind": "Machine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"class": {"kind": "MachineClass", "name": CLASS}},
    }))?)
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// One snapshot of every counter, taken at a phase boundary.
struct Snapshot {
    at: Instant,
    /// CPU seconds by process: cluster components, benchmark, controller.
    processes: BTreeMap<String, f64>,
    server: Requests,
    load: Requests,
    log: LogStats,
    cpu: f64,
}

async fn snapshot(env: &Env, controller: &Controller) -> Result<Snapshot> {
    let mut processes = crate::proc::components(&env.root);
    processes.insert("machine-controller".into(), controller.cpu_seconds());
    Ok(Snapshot {
        at: Instant::now(),
        processes,
        server: env.server_requests().await?,
        load: env.load.snapshot(),
        log: controller.stats(),
        cpu: controller.cpu_seconds(),
    })
}

/// Requests of the phase between two snapshots, per machine.
fn phase_requests(
    a: &Snapshot,
    b: &Snapshot,
    n: usize,
    resources: &BTreeSet<String>,
) -> PhaseRequests {
    let load = crate::cluster::delta(&a.load, &b.load);
    let server = crate::cluster::minus(&crate::cluster::delta(&a.server, &b.server), &load);
    PhaseRequests {
        controller: per_machine(
            &crate::cluster::delta(&a.log.requests, &b.log.requests),
            n,
            None,
        ),
        server: per_machine(&server, n, Some(resources)),
        server_all: per_machine(&server, n, None),
        load_generator: per_machine(&load, n, None),
    }
}

/// Waits until every tracker has listed its objects.
async fn synced(trackers: &[Tracker]) -> Result<()> {
    let by = Instant::now() + Duration::from_secs(60);
    for t in trackers {
        if !t.synced(by).await {
            return Err(format!("the watch of {} did not sync within 60s", t.kind).into());
        }
    }
    Ok(())
}

/// Watches of everything a machine leaves in the target cluster.
fn object_trackers(env: &Env, ns: &str, tag: &str, names: &[String]) -> Vec<Tracker> {
    let node_prefix = format!("machine-{tag}-");
    let tokens: HashSet<String> = names
        .iter()
        .map(|m| bootstrap::secret_name(ns, m))
        .collect();
    let selected = || watcher::Config::default().labels(MACHINE_SELECTOR);
    vec![
        Tracker::start(
            "pods",
            Api::<Pod>::namespaced(env.target.client.clone(), ns),
            selected(),
            |_| true,
            |_, _| {},
        ),
        Tracker::start(
            "user-data secrets",
            Api::<Secret>::namespaced(env.target.client.clone(), ns),
            selected(),
            |_| true,
            |_, _| {},
        ),
        Tracker::start(
            "services",
            Api::<Service>::namespaced(env.target.client.clone(), ns),
            selected(),
            |_| true,
            |_, _| {},
        ),
        Tracker::start(
            "nodes",
            Api::<Node>::all(env.target.client.clone()),
            watcher::Config::default(),
            move |node: &Node| node.name_any().starts_with(&node_prefix),
            |_, _| {},
        ),
        Tracker::start(
            "bootstrap tokens",
            Api::<Secret>::namespaced(env.target.client.clone(), "kube-system"),
            watcher::Config::default().fields("type=bootstrap.kubernetes.io/token"),
            move |s: &Secret| tokens.contains(&s.name_any()),
            |_, _| {},
        ),
    ]
}

/// CPU seconds by process between two snapshots, and the wall time.
fn cpu(a: &Snapshot, b: &Snapshot) -> PhaseCpu {
    PhaseCpu {
        wall_s: b.at.saturating_duration_since(a.at).as_secs_f64(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        by_process: crate::proc::cpu_delta(&a.processes, &b.processes),
    }
}

pub async fn run(env: &Env, opts: &Options, n: usize) -> Result<MachinesRun> {
    let tag = run_tag();
    let ns = format!("bench-{n}-{tag}");
    let names: Vec<String> = (0..n).map(|i| machine_name(&tag, i)).collect();
    eprintln!("bench: N={n}: machines in namespace {ns}");
    for cluster in env.clusters() {
        create_namespace(&cluster.client, &ns, "machines").await?;
    }
    env.kubectl_apply(&env.control, &env.sample("secret.yaml", &ns)?)?;
    env.kubectl_apply(&env.control, &env.sample("machine-class.yaml", &ns)?)?;

    // Watches first, so that nothing the controller does is missed.
    let progress = Progress::new();
    let machines: Api<Machine> = Api::namespaced(env.control.client.clone(), &ns);
    let mut trackers = {
        let p = progress.clone();
        vec![Tracker::start(
            "machines",
            machines.clone(),
            watcher::Config::default(),
            |_| true,
            move |m: &Machine, at| match m.phase() {
                phase::PENDING => p.reach(0, m.name(), at),
                phase::RUNNING => p.reach(1, m.name(), at),
                f @ (phase::FAILED | phase::CRASH_LOOP_BACK_OFF) => p.fail(m.name(), f),
                _ => {}
            },
        )]
    };
    synced(&trackers).await?;

    let log = opts.logs.join(format!("controller-{n}.log"));
    let controller = Controller::start(&opts.controller, env, &opts.flags, &ns, log).await?;
    let s0 = snapshot(env, &controller).await?;

    // --- Create -------------------------------------------------------------------
    eprintln!("bench: N={n}: creating {n} machines");
    let t0 = Instant::now();
    let deadline = t0 + opts.deadline(n);
    let mut messages = Vec::new();
    let results: Vec<Result<(), String>> = stream::iter(names.iter())
        .map(|name| {
            let (machines, progress) = (machines.clone(), progress.clone());
            let ns = ns.clone();
            async move {
                let m = machine(name, &ns).map_err(|e| e.to_string())?;
                progress.start(name, Instant::now());
                machines
                    .create(&PostParams::default(), &m)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("create machine {name}: {e}"))
            }
        })
        .buffer_unordered(opts.load_concurrency)
        .collect()
        .await;
    let submitted = t0.elapsed();
    let mut load_errors = crate::report::tally_errors(results, &mut messages);
    let all_running = progress.wait(1, n - load_errors, deadline).await;
    if !all_running {
        eprintln!(
            "bench: N={n}: deadline passed with {} of {n} machines Running",
            progress.reached_count(1)
        );
    }
    let rss_after_create = controller.memory_kb("VmRSS");
    let sockets_after_create = controller.sockets();
    // The other watches only now, so that they add no load to the create phase.
    trackers.extend(object_trackers(env, &ns, &tag, &names));
    synced(&trackers).await?;
    let s1 = snapshot(env, &controller).await?;
    let since = |at: Option<Instant>| at.map(|a| a.saturating_duration_since(t0).as_secs_f64());
    let all_pending_s = (progress.reached_count(0) == n)
        .then(|| since(progress.last(0)))
        .flatten();
    let all_running_s = (progress.reached_count(1) == n)
        .then(|| since(progress.last(1)))
        .flatten();
    eprintln!(
        "bench: N={n}: all Running after {}",
        all_running_s.map_or("—".into(), |s| format!("{s:.2}s"))
    );

    // --- Delete -------------------------------------------------------------------
    eprintln!("bench: N={n}: deleting {n} machines");
    let t1 = Instant::now();
    let deadline = t1 + opts.deadline(n);
    let results: Vec<Result<(), String>> = stream::iter(names.iter())
        .map(|name| {
            let machines = machines.clone();
            async move {
                delete_machine(&machines, name)
                    .await
                    .map_err(|e| format!("delete machine {name}: {e}"))
            }
        })
        .buffer_unordered(opts.load_concurrency)
        .collect()
        .await;
    let delete_submitted = t1.elapsed();
    load_errors += crate::report::tally_errors(results, &mut messages);
    let gone = futures::future::join_all(trackers.iter().map(|t| t.gone(deadline))).await;
    let mut deletion = Deletion {
        submitted_s: delete_submitted.as_secs_f64(),
        ..Default::default()
    };
    for (t, at) in trackers.iter().zip(&gone) {
        deletion.gone_s.insert(
            t.kind.to_string(),
            at.map(|a| a.saturating_duration_since(t1).as_secs_f64()),
        );
    }
    deletion.all_gone_s = gone
        .iter()
        .copied()
        .collect::<Option<Vec<_>>>()
        .and_then(|all| all.into_iter().max())
        .map(|a| a.saturating_duration_since(t1).as_secs_f64());
    let s2 = snapshot(env, &controller).await?;
    let reconciles = controller.reconciles().await;
    let peak_rss = controller.memory_kb("VmHWM");
    let rss_end = controller.memory_kb("VmRSS");
    let log_path = controller.log.display().to_string();

    let mut leftovers = BTreeMap::new();
    let mut leftover_count = 0;
    for t in &trackers {
        if t.count() > 0 {
            leftover_count += t.count();
            leftovers.insert(t.kind.to_string(), t.names(10));
        }
    }
    eprintln!(
        "bench: N={n}: all gone after {} ({leftover_count} leftovers)",
        deletion
            .all_gone_s
            .map_or("—".into(), |s| format!("{s:.2}s"))
    );
    let watch_errors = trackers
        .iter()
        .map(|t| t.errors.load(Ordering::Relaxed))
        .sum();
    drop(trackers);
    controller.stop().await;
    cleanup(env, &ns, opts.deadline(n)).await;

    // --- Figures --------------------------------------------------------------------
    let log = &s2.log;
    let resources: BTreeSet<String> = log.requests.keys().map(|(_, r)| r.clone()).collect();
    let status = |f: &dyn Fn(u16) -> bool| -> u64 {
        log.statuses
            .iter()
            .filter(|(c, _)| f(**c))
            .map(|(_, v)| v)
            .sum()
    };
    let failed = progress.failures();
    let not_running = (n - progress.reached_count(1).min(n)) as u64;
    let mut errors = Errors {
        failed_machines: failed.clone(),
        not_running,
        load_generator: load_errors as u64,
        controller_http: status(&|c| c == 429 || c >= 500),
        controller_log_errors: log.errors,
        controller_log_warnings: log.warnings,
        conflicts: status(&|c| c == 409),
        not_found: status(&|c| c == 404),
        watch_errors,
        messages,
        ..Default::default()
    };
    errors.messages.extend(log.problems.iter().cloned());
    errors.total = failed.len() as u64
        + not_running
        + errors.load_generator
        + errors.controller_http
        + errors.controller_log_errors;
    Ok(MachinesRun {
        n,
        namespace: ns,
        submitted_s: submitted.as_secs_f64(),
        all_pending_s,
        all_running_s,
        to_pending: summarize(progress.latencies(0)),
        to_running: summarize(progress.latencies(1)),
        throughput_per_s: all_running_s.map(|s| n as f64 / s),
        deletion,
        controller: ProcessStats {
            cpu_startup_s: s0.cpu,
            cpu_create_s: s1.cpu - s0.cpu,
            cpu_delete_s: s2.cpu - s1.cpu,
            cpu_total_s: s2.cpu,
            peak_rss_mib: mib(peak_rss),
            rss_after_create_mib: mib(rss_after_create),
            rss_end_mib: mib(rss_end),
            sockets_after_create,
        },
        errors,
        leftovers,
        leftover_count,
        cpu_create: cpu(&s0, &s1),
        cpu_delete: cpu(&s1, &s2),
        requests_create: phase_requests(&s0, &s1, n, &resources),
        requests_delete: phase_requests(&s1, &s2, n, &resources),
        reconciles,
        controller_statuses: log.statuses.clone(),
        controller_log: log_path,
    })
}

/// Removes the namespace: the class and its secret keep our finalizers while the
/// controller runs, and it has stopped by now.
async fn cleanup(env: &Env, ns: &str, timeout: Duration) {
    let clear = serde_json::json!({"metadata": {"finalizers": null}});
    let params = PatchParams::default();
    let classes: Api<MachineClass> = Api::namespaced(env.control.client.clone(), ns);
    let _ = classes.patch(CLASS, &params, &Patch::Merge(&clear)).await;
    let secrets: Api<Secret> = Api::namespaced(env.control.client.clone(), ns);
    let _ = secrets
        .patch(CLASS_SECRET, &params, &Patch::Merge(&clear))
        .await;
    for cluster in env.clusters() {
        match delete_namespace(&cluster.client, ns, timeout).await {
            Ok(Some(_)) => {}
            Ok(None) => eprintln!("bench: namespace {ns} still there after {timeout:?}"),
            Err(e) => eprintln!("bench: deleting namespace {ns}: {e}"),
        }
    }
}

/// Deletes one machine; already gone is fine.
pub async fn delete_machine(api: &Api<Machine>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
