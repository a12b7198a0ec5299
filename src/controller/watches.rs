// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Wiring: caches for everything a reconcile reads, and the mappings that turn
//! a change of a class, secret, Pod or Node into the keys of the machines it concerns.

mod mapping;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::context::{Context, SyncGate};
use super::machine::drain;
use super::node::machine_of_node;
use super::own_writes::OwnWrites;
use super::settings::Settings;
use super::workers::WorkerPools;
use super::{error_policy, reconcile};
use crate::admin::{Health, Telemetry};
use crate::api::{Machine, MachineClass, PodOnNode};
use crate::client::ClusterClients;
use crate::driver::instrumented::InstrumentedDriver;
use crate::driver::{Driver, VmWatch, VmWatchItem};
use mapping::{
    TARGET_PODS, counted_adds, keep_secret_event, leaving_pod, machine_key, machines_of_class,
    node_fingerprint, on_node_deleted, resync_ticks, trim, trim_node, with_vanished,
};

pub struct Clients {
    pub control: ClusterClients,
    pub target: Option<ClusterClients>,
}

/// Records every item of watch `name` in `health` (synced, failing).
fn watch_health<K>(
    health: &Arc<Health>,
    name: &'static str,
) -> impl Fn(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    health.register_watch(name);
    let health = health.clone();
    move |item| health.watch_event(name, item)
}

/// Runs the controller with `driver` until `shutdown` completes; in-flight
/// reconciles finish first.
pub async fn run<D: Driver>(
    clients: Clients,
    driver: D,
    settings: Settings,
    concurrency: u16,
    reporter_instance: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_with(
        clients,
        driver,
        settings,
        concurrency,
        reporter_instance,
        shutdown,
        Telemetry::default(),
    )
    .await;
}

/// [`run`], reporting to `telemetry`: cache sync and watch failures for the
/// probes, machine lifecycle, driver and reconcile metrics.
pub async fn run_with<D: Driver>(
    clients: Clients,
    driver: D,
    settings: Settings,
    concurrency: u16,
    reporter_instance: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    telemetry: Telemetry,
) {
    let ns = settings.namespace.clone();
    let ns_for_classes = ns.clone();
    let cfg = watcher::Config::default();
    let Telemetry { metrics, health } = telemetry;
    let vm_watch = driver.watch();
    let mut caches = vec!["machines", "machineclasses", "secrets"];
    if clients.target.is_some() {
        caches.extend(["nodes", TARGET_PODS]);
    }
    caches.extend(vm_watch.as_ref().map(|w| w.name));
    let (gate, synced) = SyncGate::new(&caches);

    let own_writes = Arc::new(OwnWrites::default());
    let machine_deleted = Arc::new(tokio::sync::Notify::new());
    let forget_deleted = {
        let (own_writes, deleted) = (own_writes.clone(), machine_deleted.clone());
        let queue = metrics.queue.clone();
        move |item: &Result<watcher::Event<Machine>, watcher::Error>| {
            if let Ok(watcher::Event::Delete(m)) = item {
                own_writes.forget(m);
                queue.forget(m.name());
                deleted.notify_one();
            }
        }
    };
    let (machines, machines_w) = reflector::store::<Machine>();
    metrics.observe_machines(machines.clone());
    let lifecycle = {
        let (metrics, before) = (metrics.clone(), machines.clone());
        // Runs before the reflector applies the event, so the cache holds the old state.
        move |item: &Result<_, _>| metrics.machine_event(&before, item)
    };
    let machine_stream = gate
        .reflect(
            "machines",
            machines_w,
            watcher(
                Api::<Machine>::namespaced(clients.control.client.clone(), &ns),
                cfg.clone(),
            )
            .modify(trim)
            .flat_map(with_vanished(machines.clone()))
            .inspect(watch_health(&health, "machines"))
            .inspect(lifecycle)
            .inspect(forget_deleted),
        )
        .default_backoff()
        .applied_objects()
        .inspect({
            let queue = metrics.queue.clone();
            move |m: &Result<Machine, _>| {
                if let Ok(m) = m {
                    queue.added(m.name(), Instant::now());
                }
            }
        });

    // Any class or secret event wakes the secret finalizer upkeep.
    let secrets_changed = Arc::new(tokio::sync::Notify::new());
    let (classes, classes_w) = reflector::store::<MachineClass>();
    let class_stream = gate
        .reflect(
            "machineclasses",
            classes_w,
            watcher(
                Api::<MachineClass>::namespaced(clients.control.client.clone(), &ns),
                cfg.clone(),
            )
            .modify(trim)
            .inspect(watch_health(&health, "machineclasses")),
        )
        .default_backoff()
        .touched_objects()
        .inspect({
            let wake = secrets_changed.clone();
            move |_| wake.notify_one()
        });

    let (secrets, secrets_w) = reflector::store::<Secret>();
    let secret_stream = gate
        .reflect(
            "secrets",
            secrets_w,
            watcher(
                Api::<Secret>::namespaced(clients.control.client.clone(), &ns),
                cfg.clone(),
            )
            .try_filter(|event| std::future::ready(keep_secret_event::<D>(event)))
            .modify(trim)
            .inspect(watch_health(&health, "secrets")),
        )
        .default_backoff()
        .touched_objects()
        .inspect({
            let wake = secrets_changed.clone();
            move |_| wake.notify_one()
        });

    let target_streams = clients
        .target
        .as_ref()
        .map(|t| t.client.clone())
        .map(|target| {
            let (nodes, nodes_w) = reflector::store::<Node>();
            let node_stream = gate
                .reflect(
                    "nodes",
                    nodes_w,
                    watcher(Api::<Node>::all(target.clone()), cfg.clone())
                        .modify(trim_node)
                        .inspect(watch_health(&health, "nodes"))
                        .inspect(on_node_deleted(
                            Api::namespaced(clients.control.client.clone(), &ns),
                            machines.clone(),
                        )),
                )
                .default_backoff()
                .touched_objects()
                .predicate_filter(node_fingerprint, Default::default());
            // Every Pod of the target, for drains (MCM's pod lister): a Pod
            // leaving a node wakes the machine that drains it.
            let (pods, pods_w) = reflector::store::<PodOnNode>();
            let pod_stream = gate
                .reflect(
                    TARGET_PODS,
                    pods_w,
                    watcher(Api::<PodOnNode>::all(target.clone()), cfg.clone())
                        .modify(drain::trim_pod)
                        .inspect(watch_health(&health, TARGET_PODS)),
                )
                .default_backoff()
                .try_filter_map(|event| std::future::ready(Ok(leaving_pod(event))));
            (nodes, node_stream, pods, pod_stream)
        });

    let ctx = Arc::new(Context {
        control: clients.control.client.clone(),
        target: clients.target.as_ref().map(|t| t.client.clone()),
        evictor: clients.target.as_ref().map(|t| t.no_retry.clone()),
        driver: InstrumentedDriver::new(driver, metrics.clone()),
        machines: machines.clone(),
        classes: classes.clone(),
        secrets: secrets.clone(),
        nodes: target_streams.as_ref().map(|t| t.0.clone()),
        pods: target_streams.as_ref().map(|t| t.2.clone()),
        synced,
        events: super::events::Events::new(
            clients.control.events.clone(),
            crate::contract::LEASE_NAME,
            reporter_instance.as_deref(),
        ),
        own_writes,
        mcm_tokens: Default::default(),
        finalized_classes: Default::default(),
        frozen: Default::default(),
        meltdown: Default::default(),
        settings,
    });

    if let Some(target) = ctx.target.clone() {
        // In the background: until the list is in, each join looks for itself.
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match ctx.mcm_tokens.load(&target).await {
                Ok(n) => tracing::debug!("{n} bootstrap tokens of the Go controller's form"),
                Err(e) => tracing::info!(
                    "listing bootstrap tokens failed, each join looks for the Go controller's: {}",
                    crate::client::describe(&e)
                ),
            }
        });
    }
    let (thawed, on_thaw) = futures::channel::mpsc::unbounded();
    let mut controller = Controller::for_stream(machine_stream, machines.clone())
        // No limit here: the worker pools are the limit (see [`WorkerPools`]).
        .with_config(ControllerConfig::default().concurrency(0))
        .reconcile_all_on(
            futures::stream::select(on_thaw, resync_ticks(ctx.settings.resync_period)).inspect({
                let (queue, machines) = (metrics.queue.clone(), machines.clone());
                move |_| {
                    let now = Instant::now();
                    for m in machines.state() {
                        queue.added(m.name(), now);
                    }
                }
            }),
        );
    {
        let machines = machines.clone();
        let queue = metrics.queue.clone();
        controller = controller.watches_stream(class_stream, move |class: MachineClass| {
            counted_adds(&queue, machines_of_class(&machines, &class.name_any()))
        });
    }
    {
        let (machines, classes) = (machines.clone(), classes.clone());
        let queue = metrics.queue.clone();
        controller = controller.watches_stream(secret_stream, move |secret: Secret| {
            let (name, secret_ns) = (secret.name_any(), secret.namespace().unwrap_or_default());
            let keys = classes
                .state()
                .iter()
                .filter(|c| {
                    c.secret_refs().any(|r| {
                        r.name.as_deref() == Some(name.as_str())
                            && r.namespace
                                .as_deref()
                                .is_none_or(|n| n.is_empty() || n == secret_ns)
                    })
                })
                .flat_map(|c| machines_of_class(&machines, &c.name_any()))
                .collect::<Vec<_>>();
            counted_adds(&queue, keys)
        });
    }
    if let Some((_, node_stream, _, pod_stream)) = target_streams {
        let (node_ns, of_node) = (ns.clone(), machines.clone());
        let queue = metrics.queue.clone();
        controller = controller.watches_stream(node_stream, move |node: Node| {
            let key = machine_of_node(&node, &of_node.state()).map(|m| machine_key(m, &node_ns));
            counted_adds(&queue, key)
        });
        let (pod_ns, machines) = (ns.clone(), machines.clone());
        let queue = metrics.queue.clone();
        let draining = pod_stream.filter_map(move |node| {
            let key = node.ok().and_then(|node| {
                machines
                    .state()
                    .iter()
                    .find(|m| m.is_deleting() && m.node_name() == Some(node.as_str()))
                    .map(|m| machine_key(m.name().to_string(), &pod_ns))
            });
            std::future::ready(counted_adds(&queue, key).pop())
        });
        controller = controller.reconcile_on(draining);
    }
    if let Some(VmWatch { name, items }) = vm_watch {
        // The driver's cache counts for readiness and health like ours.
        health.register_watch(name);
        let (gate, health, queue) = (gate.clone(), health.clone(), metrics.queue.clone());
        let changed = items.filter_map(move |item| {
            let key = match item {
                VmWatchItem::Listed => {
                    gate.stored(name);
                    health.watch_ok(name, true);
                    None
                }
                VmWatchItem::Changed(machine) => {
                    health.watch_ok(name, false);
                    queue.added(&machine, Instant::now());
                    Some(machine_key(machine, &ns))
                }
                VmWatchItem::Other => None,
                VmWatchItem::Failed => {
                    health.watch_failed(name);
                    None
                }
            };
            std::future::ready(key)
        });
        controller = controller.reconcile_on(changed);
    }

    let freeze_check = tokio::spawn(super::safety::freeze::run(
        ctx.clone(),
        metrics.clone(),
        thawed,
    ));
    let orphan_metrics = metrics.clone();
    // An error requeue is a retry to the queue's metrics.
    let retried = {
        let queue = metrics.queue.clone();
        move |machine: Arc<Machine>, error: &super::Error, ctx| {
            queue.retried(machine.name(), error.retry_after());
            error_policy(machine, error, ctx)
        }
    };
    // Counted here rather than in `reconcile`, so that every exit of it is.
    let pools = Arc::new(WorkerPools::new(concurrency));
    let counted = move |machine: Arc<Machine>, ctx: Arc<Context<_>>| {
        let (metrics, pools) = (metrics.clone(), pools.clone());
        async move {
            // A machine waits for a worker of its pool, still counted as queued.
            let Some((machine, _worker)) =
                pools.turn(machine, &ctx.own_writes, &ctx.machines).await
            else {
                return Ok(Action::await_change());
            };
            let start = Instant::now();
            let work = metrics.queue.started(machine.name(), start);
            // Boxed: a reconcile's state is kilobytes, and up to every machine
            // waits above for a worker; only the running ones need it.
            let result = Box::pin(reconcile(machine, ctx)).await;
            metrics.queue.done(work, Instant::now());
            let category = result.as_ref().err().map(|e| e.category().as_str());
            metrics.reconciled(category, start.elapsed());
            result
        }
    };
    let shutdown = futures::FutureExt::shared(shutdown);
    // Orphan VMs are looked for at start and then every period; it ends with the process.
    let orphans = tokio::spawn(super::safety::orphans::run(
        ctx.clone(),
        classes.clone(),
        orphan_metrics,
        ctx.settings.orphan_vms_period,
        machine_deleted,
    ));
    let secret_upkeep = tokio::spawn(super::class::keep_secret_finalizers(
        ctx.clone(),
        secrets_changed,
    ));
    let classes_upkeep = super::class::run(
        clients.control.client.clone(),
        ns_for_classes,
        machines.clone(),
        ctx.finalized_classes.clone(),
        shutdown.clone(),
    );
    let main = controller
        .graceful_shutdown_on(shutdown)
        .run(counted, retried, ctx)
        .for_each(|result| async move {
            match result {
                Ok((machine, _)) => tracing::trace!(machine = %machine.name, "reconciled"),
                Err(e) => tracing::debug!("reconcile error: {e}"),
            }
        });
    futures::future::join(main, classes_upkeep).await;
    orphans.abort();
    secret_upkeep.abort();
    freeze_check.abort();
}
