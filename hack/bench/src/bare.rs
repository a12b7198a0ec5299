// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The limit: a bare client does for N machines what a machine inherently costs
//! the cluster, under the controller's token bucket and as fast as the API server
//! takes it: the bootstrap token, the user-data Secret, Pod and Service (built by
//! the controller's own builders), and the token's deletion once the Pod runs and
//! the Node is Ready. The Pods are machine Pods like the controllers', so the
//! kubelet stand-in joins them exactly as it joins ours: the join delay after the
//! Pod runs, reading the user data and proving the bootstrap token, through its
//! own client (outside the controller's token bucket). What the controller does
//! beyond that (its status writes, Events, finalizers, node labels) is its own
//! overhead, which "our rate / bare-client rate" shows, wall clock against wall
//! clock. With [`Limit::Floor`], each set also makes the writes MCM's contract
//! asks of any controller (floor.rs).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use mcm_local::api::provider_spec::LocalProviderSpec;
use mcm_local::payload::bootstrap;
use mcm_local::payload::build;
use tokio::time::Instant;

use crate::Options;
use crate::cluster::{Env, Result, create_namespace, delete_namespace, delta, minus};
use crate::floor::Floor;
use crate::machines::{machine_name, run_tag};
use crate::report::{BareRun, Milestones, PhaseCpu, per_machine, summarize};
use crate::track::{Progress, Tracker, all_reached};

/// The user data of the sample secret (`stringData.userData: |` block), with the
/// placeholders still in: the bare client substitutes them as the controller does.
fn sample_user_data(env: &Env) -> Result<String> {
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
    Ok(body.join("\n") + "\n")
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The image the sample class asks for.
fn sample_image(env: &Env) -> Result<String> {
    let text = env.sample("machine-class.yaml", "default")?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .map(|i| i.trim().to_string())
        .ok_or_else(|| "kubernetes/machine-class.yaml has no image".into())
}

/// What the client does per set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum Limit {
    /// What a machine inherently costs the cluster.
    #[default]
    Bare,
    /// That, and the writes of MCM's contract (floor.rs).
    Floor,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Bare => "bare client",
            Limit::Floor => "contract floor",
        }
    }
}

pub async fn run(env: &Env, opts: &Options, n: usize, limit: Limit) -> Result<BareRun> {
    let tag = run_tag();
    let what = limit.name();
    let ns = match limit {
        Limit::Bare => format!("bare-{n}-{tag}"),
        Limit::Floor => format!("floor-{n}-{tag}"),
    };
    eprintln!("bench: N={n}: {what} in namespace {ns}");
    for cluster in env.clusters() {
        create_namespace(&cluster.client, &ns, "bare").await?;
    }
    let spec = LocalProviderSpec {
        image: sample_image(env)?,
        ..Default::default()
    };

    // Pods: applied (seen), Running. Nodes: Ready (stage 1). Sets: started,
    // written (stage 0), and done (stage 1) once the Pod runs, the Node is Ready
    // and the token is deleted.
    let (pods, nodes, sets) = (Progress::new(), Progress::new(), Progress::new());
    let pod_tracker = {
        let p = pods.clone();
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
                    _ => p.reach(0, name, at),
                }
            },
        )
    };
    // The stand-in names each Node after its Pod.
    let node_prefix = mcm_local::contract::local::pod_name(&format!("{tag}-"));
    let conditions: crate::floor::Conditions = Arc::default();
    let node_tracker = {
        let (p, conditions) = (nodes.clone(), conditions.clone());
        let prefix = node_prefix.clone();
        Tracker::start(
            "nodes",
            Api::<Node>::all(env.target.client.clone()),
            watcher::Config::default(),
            move |node: &Node| {
                node.metadata
                    .name
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with(&prefix)
            },
            move |node: &Node, at| {
                if is_ready(node) {
                    let name = node.metadata.name.clone().unwrap_or_default();
                    let status = node.status.as_ref().and_then(|s| s.conditions.clone());
                    conditions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), status.unwrap_or_default());
                    p.reach(1, &name, at);
                }
            },
        )
    };
    for tracker in [&pod_tracker, &node_tracker] {
        if !tracker
            .synced(Instant::now() + Duration::from_secs(60))
            .await
        {
            return Err(format!(
                "the watch of the {what}'s {} did not sync within 60s",
                tracker.kind
            )
            .into());
        }
    }

    // The controller's bucket, built the controller's way.
    let client = mcm_local::client::from_config(
        env.target.config.clone(),
        opts.flags.qps,
        opts.flags.burst,
    )?
    .client;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let tokens: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let floor = match limit {
        Limit::Bare => None,
        Limit::Floor => Some(Floor::new(
            env,
            opts,
            &ns,
            Api::all(client.clone()),
            conditions,
        )?),
    };
    let user_data = sample_user_data(env)?;
    // The controller's workers: a set's writes and its join's writes each take
    // one, as a machine's reconcile does, so that no more of them are in flight
    // than a controller with `--concurrent-syncs` workers has.
    let workers = Arc::new(tokio::sync::Semaphore::new(usize::from(
        opts.flags.concurrent_syncs.max(1),
    )));
    let machines: Vec<String> = (0..n).map(|i| machine_name(&tag, i)).collect();
    let server0 = env.server_requests().await?;
    let load0 = env.load.snapshot();
    let cpu0 = crate::proc::components(&env.root);

    eprintln!("bench: N={n}: {what} creating {n} tokens, Secrets, Pods, Services and Nodes");
    let t0 = Instant::now();
    let deadline = t0 + opts.deadline(n);
    let ttl = Duration::from_secs(20 * 60);
    let create = stream::iter(machines.iter())
        .map(|m| {
            let (secrets, pod_api, services) = (secrets.clone(), pod_api.clone(), services.clone());
            let (client, sets, spec, ns, user_data, floor, workers) = (
                client.clone(),
                sets.clone(),
                spec.clone(),
                ns.clone(),
                &user_data,
                floor.clone(),
                workers.clone(),
            );
            async move {
                let _worker = workers.acquire().await.map_err(|e| e.to_string())?;
                let pp = PostParams::default();
                // A machine Pod, which the kubelet stand-in joins as it joins ours.
                let pod = build::pod(m, &ns, &ns, &spec);
                let name = pod.metadata.name.clone().unwrap_or_default();
                sets.start(&name, Instant::now());
                if let Some(floor) = &floor {
                    floor.create(m).await?;
                }
                let token = bootstrap::ensure_token(&client, &ns, m, ttl, "")
                    .await
                    .map_err(|e| format!("create token for {m}: {e}"))?;
                let data = bootstrap::substitute(user_data, Some(&token), m);
                secrets
                    .create(&pp, &build::user_data_secret(m, &ns, data.as_bytes()))
                    .await
                    .map_err(|e| format!("create Secret for {m}: {e}"))?;
                pod_api
                    .create(&pp, &pod)
                    .await
                    .map_err(|e| format!("create Pod for {m}: {e}"))?;
                services
                    .create(&pp, &build::service(m, &ns))
                    .await
                    .map_err(|e| format!("create Service for {m}: {e}"))?;
                if let Some(floor) = &floor {
                    floor.record(m, &name).await?;
                }
                // Written: the join may follow (stage 0 of the set).
                sets.reach(0, &name, Instant::now());
                Ok(())
            }
        })
        .buffer_unordered(usize::from(opts.flags.concurrent_syncs.max(1)))
        .collect::<Vec<Result<(), String>>>();
    // The stand-in registers each Node the join delay after its Pod runs; joined
    // sets lose their token, as the controller's machines do on joining.
    let finish = futures::future::join_all(machines.iter().map(|m| {
        let (tokens, pods, nodes, sets, ns, floor) = (&tokens, &pods, &nodes, &sets, &ns, &floor);
        let workers = &workers;
        async move {
            let name = mcm_local::contract::local::pod_name(m);
            pods.reached_by(1, &name, deadline).await?;
            nodes.reached_by(1, &name, deadline).await?;
            // The stand-in may join a Pod before its set's last writes are in
            // (with no join delay, at once): the contract's join writes follow
            // them, as in a controller.
            sets.reached_by(0, &name, deadline).await?;
            let _worker = workers.acquire().await.ok()?;
            let token = async {
                tokens
                    .delete(&bootstrap::secret_name(ns, m), &DeleteParams::default())
                    .await
                    .map(drop)
                    .map_err(|e| format!("token deletion failed: {e}"))
            };
            let done = match floor {
                None => token.await,
                Some(floor) => floor.join(m, &name, token).await,
            };
            match done {
                Ok(()) => sets.reach(1, &name, Instant::now()),
                Err(e) => sets.fail(&name, &e),
            }
            Some(())
        }
    }));
    let (results, _) = futures::join!(
        async {
            let results = create.await;
            (results, t0.elapsed())
        },
        finish
    );
    let (results, submitted) = results;
    let mut messages = Vec::new();
    let mut errors = crate::report::tally_errors(results, &mut messages);
    if sets.reached_count(1) < n - errors {
        eprintln!(
            "bench: N={n}: {what}: deadline passed with {} Pods Running, {} Nodes Ready, {} of {n} sets done",
            pods.reached_count(1),
            nodes.reached_count(1),
            sets.reached_count(1)
        );
    }
    let cpu1 = crate::proc::components(&env.root);
    let wall = t0.elapsed();
    let server1 = env.server_requests().await?;
    let load1 = env.load.snapshot();
    let all_running_s = all_reached(&sets, 1, n, t0);
    let milestones = Milestones::observed(&pods, &nodes, n, t0, all_running_s);
    eprintln!(
        "bench: N={n}: {what}: all sets Running (Pod Running, Node Ready, token deleted) after {}",
        all_running_s.map_or("—".into(), |s| format!("{s:.2}s"))
    );
    let mut failed = pods.failures();
    failed.extend(sets.failures());
    errors += failed.len();
    messages.extend(failed.iter().take(5).map(|(p, what)| format!("{p} {what}")));
    drop(pod_tracker);
    drop(node_tracker);
    if let Some(floor) = &floor {
        floor.release().await;
    }
    let cleanup = cleanup(env, &ns, &machines, opts.deadline(n)).await?;

    let mut resources: BTreeSet<String> = ["pods", "secrets", "services", "nodes"]
        .into_iter()
        .map(String::from)
        .collect();
    if floor.is_some() {
        resources.extend(["machines", "machines/status", "events"].map(String::from));
    }
    let server = minus(&delta(&server0, &server1), &delta(&load0, &load1));
    Ok(BareRun {
        n,
        namespace: ns,
        limit,
        // Token, Secret, Pod and Service created, token deleted (the Node is the
        // kubelet's); the floor adds finalizer, providerID, Pending, Node labels,
        // join annotation, Running and two Events.
        requests_per_set_client: if floor.is_some() { 13.0 } else { 5.0 },
        submitted_s: submitted.as_secs_f64(),
        milestones,
        all_running_s,
        to_running: summarize(sets.latencies(1)),
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

/// Deletes the namespace, then what its deletion does not remove: the Nodes
/// (once their Pods are gone, so that the stand-in does not register them
/// again), and the tokens of sets that never got as far as deleting theirs.
async fn cleanup(
    env: &Env,
    ns: &str,
    machines: &[String],
    deadline: Duration,
) -> Result<Option<Duration>> {
    let mut took = None;
    for cluster in env.clusters() {
        took = delete_namespace(&cluster.client, ns, deadline).await?;
    }
    let nodes: Api<Node> = Api::all(env.target.client.clone());
    let tokens: Api<Secret> = Api::namespaced(env.target.client.clone(), "kube-system");
    for m in machines {
        let node = mcm_local::contract::local::pod_name(m);
        for (what, deleted) in [
            (
                "Node",
                nodes
                    .delete(&node, &DeleteParams::default())
                    .await
                    .map(drop),
            ),
            (
                "token",
                tokens
                    .delete(&bootstrap::secret_name(ns, m), &DeleteParams::default())
                    .await
                    .map(drop),
            ),
        ] {
            match deleted {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(format!("delete the {what} of {m}: {e}").into()),
            }
        }
    }
    Ok(took)
}
