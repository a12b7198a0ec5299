// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Wiring: the caches of everything a reconcile reads ([`caches`], one helper
//! each), the context over them, the Controller and what wakes it, and the
//! background tasks beside it. [`mapping`] says what an event means: what a
//! cache keeps and which machines a change of a class, Secret, Pod or Node
//! concerns. A new watch or trigger is a helper in [`caches`] and a line in
//! [`run_with`].

mod caches;
mod mapping;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector;

use super::context::{Context, SyncGate, Target};
use super::own_writes::OwnWrites;
use super::settings::Settings;
use super::workers::{MachineQueue, Workers};
use crate::admin::Telemetry;
use crate::api::{Machine, MachineClass};
use crate::client::ClusterClients;
use crate::driver::instrumented::InstrumentedDriver;
use crate::driver::{Driver, VmWatch};
use crate::metrics::Metrics;
use caches::Watches;
use mapping::TARGET_PODS;

pub struct Clients {
    pub control: ClusterClients,
    pub target: Option<ClusterClients>,
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
/// probes, machine lifecycle, driver and reconcile metrics. Caches first, then
/// the shared context, then the Controller and what wakes it, then the
/// background tasks beside it.
///
/// Over 80 lines because: it is the wiring's table of contents, each line one
/// call to a helper; splitting it would hide the order that matters (caches
/// before the context, the context before the Controller).
pub async fn run_with<D: Driver>(
    clients: Clients,
    driver: D,
    settings: Settings,
    concurrency: u16,
    reporter_instance: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    telemetry: Telemetry,
) {
    let Telemetry { metrics, health } = telemetry;
    let vm_watch = driver.watch();
    let (gate, synced) = SyncGate::new(&cache_names(clients.target.is_some(), vm_watch.as_ref()));
    let w = Watches {
        gate,
        health,
        metrics: metrics.clone(),
        namespace: settings.namespace.clone(),
    };
    let control = clients.control.client.clone();
    let own_writes = Arc::new(OwnWrites::default());
    let machine_deleted = Arc::new(tokio::sync::Notify::new());
    let (machines, machine_stream) =
        w.machines(&control, own_writes.clone(), machine_deleted.clone());
    // Any class or secret event wakes the secret finalizer upkeep.
    let secrets_changed = Arc::new(tokio::sync::Notify::new());
    let (classes, class_stream, class_handle) = w.classes(&control, secrets_changed.clone());
    let (secrets, secret_stream) = w.secrets::<D>(&control, secrets_changed.clone());
    let target = (clients.target.as_ref()).map(|t| w.target(t, &control, &machines));

    let caches = Caches {
        machines: machines.clone(),
        classes: classes.clone(),
        secrets,
        target: target.as_ref().map(|t| t.shared.clone()),
        synced,
        own_writes,
    };
    let ctx = context(
        &clients.control,
        caches,
        driver,
        settings,
        reporter_instance,
        &metrics,
    );
    load_go_tokens(&ctx);

    let (thawed, on_thaw) = futures::channel::mpsc::unbounded();
    let mut controller = Controller::for_stream(machine_stream, machines.clone())
        // No limit here: the Controller hands every trigger to the workers'
        // queue at once (see [`super::workers`]).
        .with_config(ControllerConfig::default().concurrency(0))
        .reconcile_all_on(w.resyncs(on_thaw, ctx.settings.resync_period, &machines))
        .watches_stream(class_stream, w.by_class(&machines))
        .watches_stream(secret_stream, w.by_secret(&machines, &classes));
    if let Some(t) = target {
        controller = controller
            .watches_stream(t.node_stream, w.by_node(&machines))
            .reconcile_on(w.draining(t.pod_stream, &machines));
    }
    if let Some(vm_watch) = vm_watch {
        controller = controller.reconcile_on(w.vm_changes(vm_watch));
    }

    let shutdown = futures::FutureExt::shared(shutdown);
    let classes_upkeep = super::class::run(
        super::class::Watched::of(&ctx),
        class_handle,
        ctx.finalized_classes.clone(),
        shutdown.clone(),
    );
    let background = spawn_background(
        &ctx,
        &metrics,
        thawed,
        classes,
        machine_deleted,
        secrets_changed,
    );
    let main = reconciles(controller, shutdown, &metrics, concurrency, ctx);
    futures::future::join(main, classes_upkeep).await;
    for task in background {
        task.abort();
    }
}

/// The Controller's triggers, handed to the workers' queue, until
/// `shutdown`; the reconciles that run then finish first.
async fn reconciles<D: Driver>(
    controller: Controller<Machine>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    metrics: &Arc<Metrics>,
    concurrency: u16,
    ctx: Arc<Context<InstrumentedDriver<D>>>,
) {
    let queue = Arc::new(MachineQueue::new(ctx.own_writes.clone()));
    let workers = Workers::start(queue.clone(), concurrency, ctx, metrics.clone());
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            |machine, queue: Arc<MachineQueue>| {
                queue.offer(&machine);
                futures::future::ready(Ok::<_, Infallible>(Action::await_change()))
            },
            |_, never, _| match *never {},
            queue,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    workers.finish().await;
}

/// What the reconciles read of the caches.
struct Caches {
    machines: reflector::Store<Machine>,
    classes: reflector::Store<MachineClass>,
    secrets: reflector::Store<Secret>,
    target: Option<Target>,
    synced: tokio::sync::watch::Receiver<bool>,
    own_writes: Arc<OwnWrites>,
}

/// The context every reconcile shares, over the caches just made.
fn context<D: Driver>(
    control: &ClusterClients,
    caches: Caches,
    driver: D,
    settings: Settings,
    reporter_instance: Option<String>,
    metrics: &Arc<Metrics>,
) -> Arc<Context<InstrumentedDriver<D>>> {
    Arc::new(Context {
        control: control.client.clone(),
        target: caches.target,
        driver: InstrumentedDriver::new(driver, metrics.clone()),
        machines: caches.machines,
        classes: caches.classes,
        secrets: caches.secrets,
        synced: caches.synced,
        events: super::events::Events::new(
            control.events.clone(),
            crate::contract::LEASE_NAME,
            reporter_instance.as_deref(),
        ),
        own_writes: caches.own_writes,
        mcm_tokens: Default::default(),
        finalized_classes: Default::default(),
        frozen: Default::default(),
        meltdown: Default::default(),
        settings,
    })
}

/// The tasks beside the Controller, aborted when it ends: the freeze check,
/// orphan collection (at start, every period, and when a machine is deleted)
/// and the upkeep of Secret finalizers.
fn spawn_background<D: Driver>(
    ctx: &Arc<Context<InstrumentedDriver<D>>>,
    metrics: &Arc<Metrics>,
    thawed: futures::channel::mpsc::UnboundedSender<()>,
    classes: reflector::Store<MachineClass>,
    machine_deleted: Arc<tokio::sync::Notify>,
    secrets_changed: Arc<tokio::sync::Notify>,
) -> [tokio::task::JoinHandle<()>; 3] {
    let orphans = super::safety::orphans::run(
        ctx.clone(),
        classes,
        metrics.clone(),
        ctx.settings.orphan_vms_period,
        machine_deleted,
    );
    [
        tokio::spawn(super::safety::freeze::run(
            ctx.clone(),
            metrics.clone(),
            thawed,
        )),
        tokio::spawn(orphans),
        tokio::spawn(super::class::keep_secret_finalizers(
            ctx.clone(),
            secrets_changed,
        )),
    ]
}

/// The caches the controller waits for before any decision.
fn cache_names(with_target: bool, vm_watch: Option<&VmWatch>) -> Vec<&'static str> {
    let mut caches = vec!["machines", "machineclasses", "secrets"];
    if with_target {
        caches.extend(["nodes", TARGET_PODS]);
    }
    caches.extend(vm_watch.map(|w| w.name));
    caches
}

/// The Go controller's bootstrap tokens, listed in the background: until the
/// list is in, each join looks for itself.
fn load_go_tokens<D: Send + Sync + 'static>(ctx: &Arc<Context<D>>) {
    let Some(target) = ctx.target.as_ref().map(|t| t.client.clone()) else {
        return;
    };
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
