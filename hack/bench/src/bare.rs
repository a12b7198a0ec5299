// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The limit: a bare client creates the objects of N machines (Secret, Pod,
//! Service each, built by the driver's own builders) under the controller's token
//! bucket, as fast as the API server takes them, and waits until every Pod runs.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher;
use mcm_local::api::provider_spec::LocalProviderSpec;
use mcm_local::driver::local::build;
use tokio::time::Instant;

use crate::Options;
use crate::cluster::{Env, Result, create_namespace, delete_namespace, delta, minus};
use crate::machines::{machine_name, run_tag};
use crate::report::{BareRun, PhaseCpu, per_machine, summarize};
use crate::track::{Progress, Tracker};

/// The user data of the sample secret (`stringData.userData: |` block), with a
/// token in place of the placeholder: the same size as what the driver writes.
fn sample_user_data(env: &Env, machine: &str) -> Result<String> {
    let text = env.sample("secret.yaml", "default")?;
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("userData:"));
    let header = lines
        .next()
        .ok_or("kubernetes/secret.yaml has no userData")?;
    let indent = header.len() - header.trim_start().len() + 2;
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    Ok(mcm_local::controller::bootstrap::substitute(
        &(body.join("\n") + "\n"),
        Some("abcdef.0123456789abcdef"),
        machine,
    ))
}

/// The image the sample class asks for.
fn sample_image(env: &Env) -> Result<String> {
    let text = env.sample("machine-class.yaml", "default")?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .map(|i| i.trim().to_string())
        .ok_or_else(|| "kubernetes/machine-class.yaml has no image".into())
}

pub async fn run(env: &Env, opts: &Options, n: usize) -> Result<BareRun> {
    let tag = run_tag();
    let ns = format!("bare-{n}-{tag}");
    eprintln!("bench: N={n}: bare client in namespace {ns}");
    create_namespace(&env.target.client, &ns, "bare").await?;
    let spec = LocalProviderSpec {
        image: sample_image(env)?,
        ..Default::default()
    };

    let progress = Progress::new();
    let tracker = {
        let p = progress.clone();
        Tracker::start(
            "pods",
            Api::<Pod>::namespaced(env.target.client.clone(), &ns),
            watcher::Config::default(),
            |_| true,
            move |pod: &Pod, at| {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let status = pod.status.as_ref();
                match status.and_then(|s| s.phase.as_deref()) {
                    Some("Running") => p.reach(1, name, at),
                    Some(f @ ("Failed" | "Succeeded")) => p.fail(name, f),
                    _ if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) => {
                        p.reach(0, name, at)
                    }
                    _ => {}
                }
            },
        )
    };
    if !tracker
        .synced(Instant::now() + Duration::from_secs(60))
        .await
    {
        return Err("the watch of the bare client's Pods did not sync within 60s".into());
    }

    // The controller's bucket, built the controller's way.
    let client = mcm_local::client::from_config(
        env.target.config.clone(),
        opts.flags.qps,
        opts.flags.burst,
    )?
    .client;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client, &ns);
    let sets: Vec<(String, String)> = (0..n)
        .map(|i| {
            let m = machine_name(&tag, i);
            let data = sample_user_data(env, &m)?;
            Ok((m, data))
        })
        .collect::<Result<_>>()?;
    let server0 = env.server_requests().await?;
    let load0 = env.load.snapshot();
    let cpu0 = crate::proc::components(&env.root);

    eprintln!("bench: N={n}: bare client creating {n} Secrets, Pods and Services");
    let t0 = Instant::now();
    let deadline = t0 + opts.deadline(n);
    let results: Vec<Result<(), String>> = stream::iter(sets.iter())
        .map(|(m, user_data)| {
            let (secrets, pods, services, progress, spec, ns) = (
                secrets.clone(),
                pods.clone(),
                services.clone(),
                progress.clone(),
                spec.clone(),
                ns.clone(),
            );
            async move {
                let pp = PostParams::default();
                let mut pod = build::pod(m, &ns, &ns, &spec);
                // Not a machine Pod: the kubelet stand-in must not try to join it.
                pod.metadata.labels = Some(
                    [
                        ("app".to_string(), "bench-bare".to_string()),
                        ("machine".to_string(), m.clone()),
                    ]
                    .into(),
                );
                let name = pod.metadata.name.clone().unwrap_or_default();
                progress.start(&name, Instant::now());
                secrets
                    .create(&pp, &build::user_data_secret(m, &ns, user_data.as_bytes()))
                    .await
                    .map_err(|e| format!("create Secret for {m}: {e}"))?;
                pods.create(&pp, &pod)
                    .await
                    .map_err(|e| format!("create Pod for {m}: {e}"))?;
                services
                    .create(&pp, &build::service(m, &ns))
                    .await
                    .map_err(|e| format!("create Service for {m}: {e}"))?;
                Ok(())
            }
        })
        .buffer_unordered(usize::from(opts.flags.concurrent_syncs.max(1)))
        .collect()
        .await;
    let submitted = t0.elapsed();
    let mut messages = Vec::new();
    let mut errors = crate::report::tally_errors(results, &mut messages);
    let running = progress.wait(1, n - errors, deadline).await;
    if !running {
        eprintln!(
            "bench: N={n}: bare client: deadline passed with {} of {n} Pods Running",
            progress.reached_count(1)
        );
    }
    let cpu1 = crate::proc::components(&env.root);
    let wall = t0.elapsed();
    let server1 = env.server_requests().await?;
    let load1 = env.load.snapshot();
    let since = |at: Option<Instant>| at.map(|a| a.saturating_duration_since(t0).as_secs_f64());
    let all_scheduled_s = (progress.reached_count(0) == n)
        .then(|| since(progress.last(0)))
        .flatten();
    let all_running_s = (progress.reached_count(1) == n)
        .then(|| since(progress.last(1)))
        .flatten();
    eprintln!(
        "bench: N={n}: bare client: all Pods Running after {}",
        all_running_s.map_or("—".into(), |s| format!("{s:.2}s"))
    );
    let failed = progress.failures();
    errors += failed.len();
    messages.extend(
        failed
            .iter()
            .take(5)
            .map(|(p, what)| format!("Pod {p} {what}")),
    );
    drop(tracker);
    let cleanup = delete_namespace(&env.target.client, &ns, opts.deadline(n)).await?;

    let resources: BTreeSet<String> = ["pods", "secrets", "services"]
        .into_iter()
        .map(String::from)
        .collect();
    let server = minus(&delta(&server0, &server1), &delta(&load0, &load1));
    Ok(BareRun {
        n,
        namespace: ns,
        requests_per_set_client: 3.0,
        submitted_s: submitted.as_secs_f64(),
        all_scheduled_s,
        all_running_s,
        to_running: summarize(progress.latencies(1)),
        throughput_per_s: all_running_s.map(|s| n as f64 / s),
        errors: errors as u64,
        messages,
        requests_server: per_machine(&server, n, Some(&resources)),
        requests_server_all: per_machine(&server, n, None),
        cpu: PhaseCpu {
            wall_s: wall.as_secs_f64(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            by_process: crate::proc::cpu_delta(&cpu0, &cpu1),
        },
        cleanup_s: cleanup.map(|d| d.as_secs_f64()),
    })
}
