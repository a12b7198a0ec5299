// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! One helper per cache: the watch, what it keeps, its place in the sync gate
//! and the health probes, and the mapping from its changes to the machines
//! they wake.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::mapping::{
    TARGET_PODS, counted_adds, keep_secret_event, leaving_pod, machine_key, machines_of_class,
    node_fingerprint, on_node_deleted, resync_ticks, trim, trim_node, with_vanished,
};
use crate::admin::Health;
use crate::api::{Machine, MachineClass, PodOnNode};
use crate::client::ClusterClients;
use crate::controller::context::{SyncGate, Target};
use crate::controller::machine::drain;
use crate::controller::node::{machine_of_node, naming_in_cache};
use crate::controller::own_writes::OwnWrites;
use crate::driver::{Driver, VmWatch, VmWatchItem};
use crate::metrics::Metrics;

/// Class events buffered for the class controller.
const CLASS_EVENTS: usize = 64;

/// Records every item of watch `name` in `health` (synced, failing).
fn watch_health<K>(
    health: &Arc<Health>,
    name: &'static str,
) -> impl Fn(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    health.register_watch(name);
    let health = health.clone();
    move |item| health.watch_event(name, item)
}

/// What every cache of one run shares: the sync gate, the health probes, the
/// queue's metrics and the control namespace.
pub(super) struct Watches {
    pub gate: Arc<SyncGate>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub namespace: String,
}

/// The target's caches and the streams of their changes that wake machines.
pub(super) struct TargetWatches<N, P> {
    pub shared: Target,
    pub node_stream: N,
    pub pod_stream: P,
}

impl Watches {
    fn config() -> watcher::Config {
        watcher::Config::default()
    }

    /// The Machines of the control namespace: the cache, with lifecycle
    /// metrics read before each event is applied, and the Controller's stream.
    /// A deleted machine is forgotten by our own writes and the queue, and
    /// wakes orphan collection (`deleted`).
    pub(super) fn machines(
        &self,
        control: &kube::Client,
        own_writes: Arc<OwnWrites>,
        deleted: Arc<tokio::sync::Notify>,
    ) -> (
        reflector::Store<Machine>,
        impl futures::Stream<Item = Result<Machine, watcher::Error>> + Send + 'static + use<>,
    ) {
        let queue = self.metrics.queue.clone();
        let forget_deleted = move |item: &Result<watcher::Event<Machine>, watcher::Error>| {
            if let Ok(watcher::Event::Delete(m)) = item {
                own_writes.forget(m);
                queue.forget(m.name());
                deleted.notify_one();
            }
        };
        let (machines, writer) = reflector::store::<Machine>();
        self.metrics.observe_machines(machines.clone());
        let lifecycle = {
            let (metrics, before) = (self.metrics.clone(), machines.clone());
            // Runs before the reflector applies the event, so the cache holds the old state.
            move |item: &Result<_, _>| metrics.machine_event(&before, item)
        };
        let api = Api::<Machine>::namespaced(control.clone(), &self.namespace);
        let queue = self.metrics.queue.clone();
        let stream = self
            .gate
            .reflect(
                "machines",
                writer,
                watcher(api, Self::config())
                    .modify(trim)
                    .flat_map(with_vanished(machines.clone()))
                    .inspect(watch_health(&self.health, "machines"))
                    .inspect(lifecycle)
                    .inspect(forget_deleted),
            )
            .default_backoff()
            .applied_objects()
            .inspect(move |m: &Result<Machine, _>| {
                if let Ok(m) = m {
                    queue.added(m.name(), Instant::now());
                }
            });
        (machines, stream)
    }

    /// The MachineClasses of the control namespace; each change wakes
    /// `changed`. One watch for the machine controller (the stream returned)
    /// and the class controller (the handle: each class the stream applies).
    pub(super) fn classes(
        &self,
        control: &kube::Client,
        changed: Arc<tokio::sync::Notify>,
    ) -> (
        reflector::Store<MachineClass>,
        impl futures::Stream<Item = Result<MachineClass, watcher::Error>> + Send + 'static + use<>,
        reflector::ReflectHandle<MachineClass>,
    ) {
        // A full buffer holds the watch until the class controller has read on.
        let (classes, writer) = reflector::store_shared::<MachineClass>(CLASS_EVENTS);
        let Some(handle) = writer.subscribe() else {
            unreachable!("a shared store always has a dispatcher");
        };
        let api = Api::<MachineClass>::namespaced(control.clone(), &self.namespace);
        let stream = self
            .gate
            .reflect(
                "machineclasses",
                writer,
                watcher(api, Self::config())
                    .modify(trim)
                    .inspect(watch_health(&self.health, "machineclasses")),
            )
            .default_backoff()
            .touched_objects()
            .inspect(move |_| changed.notify_one());
        (classes, stream, handle)
    }

    /// The Secrets of the control namespace that the driver may read; each
    /// change wakes `changed`.
    pub(super) fn secrets<D: Driver>(
        &self,
        control: &kube::Client,
        changed: Arc<tokio::sync::Notify>,
    ) -> (
        reflector::Store<Secret>,
        impl futures::Stream<Item = Result<Secret, watcher::Error>> + Send + 'static + use<D>,
    ) {
        let (secrets, writer) = reflector::store::<Secret>();
        let api = Api::<Secret>::namespaced(control.clone(), &self.namespace);
        let stream = self
            .gate
            .reflect(
                "secrets",
                writer,
                watcher(api, Self::config())
                    .try_filter(|event| std::future::ready(keep_secret_event::<D>(event)))
                    .modify(trim)
                    .inspect(watch_health(&self.health, "secrets")),
            )
            .default_backoff()
            .touched_objects()
            .inspect(move |_| changed.notify_one());
        (secrets, stream)
    }

    /// The target's Nodes (a deleted one takes its machine along) and every
    /// Pod of it, for drains (MCM's pod lister).
    pub(super) fn target(
        &self,
        target: &ClusterClients,
        control: &kube::Client,
        machines: &reflector::Store<Machine>,
    ) -> TargetWatches<
        impl futures::Stream<Item = Result<Node, watcher::Error>> + Send + 'static + use<>,
        impl futures::Stream<Item = Result<String, watcher::Error>> + Send + 'static + use<>,
    > {
        let client = target.client.clone();
        let (nodes, nodes_w) = reflector::store::<Node>();
        let node_stream = self
            .gate
            .reflect(
                "nodes",
                nodes_w,
                watcher(Api::<Node>::all(client.clone()), Self::config())
                    .modify(trim_node)
                    .inspect(watch_health(&self.health, "nodes"))
                    .inspect(on_node_deleted(
                        control.clone(),
                        self.namespace.clone(),
                        machines.clone(),
                    )),
            )
            .default_backoff()
            .touched_objects()
            .predicate_filter(node_fingerprint, Default::default());
        // A Pod leaving a node wakes the machine that drains it.
        let (pods, pods_w) = reflector::store::<PodOnNode>();
        let pod_stream = self
            .gate
            .reflect(
                TARGET_PODS,
                pods_w,
                watcher(Api::<PodOnNode>::all(client.clone()), Self::config())
                    .modify(drain::trim_pod)
                    .inspect(watch_health(&self.health, TARGET_PODS)),
            )
            .default_backoff()
            .try_filter_map(|event| std::future::ready(Ok(leaving_pod(event))));
        TargetWatches {
            shared: Target {
                client,
                evictor: target.no_retry.clone(),
                nodes,
                pods,
            },
            node_stream,
            pod_stream,
        }
    }

    /// Every machine again: on each resync tick, and when the freeze thaws.
    pub(super) fn resyncs(
        &self,
        thawed: futures::channel::mpsc::UnboundedReceiver<()>,
        period: std::time::Duration,
        machines: &reflector::Store<Machine>,
    ) -> impl futures::Stream<Item = ()> + Send + 'static + use<> {
        let (queue, machines) = (self.metrics.queue.clone(), machines.clone());
        futures::stream::select(thawed, resync_ticks(period)).inspect(move |_| {
            let now = Instant::now();
            for m in machines.state() {
                queue.added(m.name(), now);
            }
        })
    }

    /// A class wakes its machines.
    pub(super) fn by_class(
        &self,
        machines: &reflector::Store<Machine>,
    ) -> impl Fn(MachineClass) -> Vec<ObjectRef<Machine>> + Send + Sync + 'static + use<> {
        let (machines, queue) = (machines.clone(), self.metrics.queue.clone());
        move |class| counted_adds(&queue, machines_of_class(&machines, &class.name_any()))
    }

    /// A Secret wakes the machines of every class that references it.
    pub(super) fn by_secret(
        &self,
        machines: &reflector::Store<Machine>,
        classes: &reflector::Store<MachineClass>,
    ) -> impl Fn(Secret) -> Vec<ObjectRef<Machine>> + Send + Sync + 'static + use<> {
        let (machines, classes) = (machines.clone(), classes.clone());
        let queue = self.metrics.queue.clone();
        move |secret| {
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
        }
    }

    /// A Node wakes its machine.
    pub(super) fn by_node(
        &self,
        machines: &reflector::Store<Machine>,
    ) -> impl Fn(Node) -> Vec<ObjectRef<Machine>> + Send + Sync + 'static + use<> {
        let (machines, queue) = (machines.clone(), self.metrics.queue.clone());
        let ns = self.namespace.clone();
        move |node| {
            let key =
                machine_of_node(&node, naming_in_cache(&machines)).map(|m| machine_key(m, &ns));
            counted_adds(&queue, key)
        }
    }

    /// A Pod leaving a Node wakes the deleting machine that drains it.
    pub(super) fn draining<S>(
        &self,
        leaving: S,
        machines: &reflector::Store<Machine>,
    ) -> impl futures::Stream<Item = ObjectRef<Machine>> + Send + 'static + use<S>
    where
        S: futures::Stream<Item = Result<String, watcher::Error>> + Send + 'static,
    {
        let (machines, queue) = (machines.clone(), self.metrics.queue.clone());
        let ns = self.namespace.clone();
        leaving.filter_map(move |node| {
            let key = node.ok().and_then(|node| {
                machines
                    .find(|m| m.is_deleting() && m.node_name() == Some(node.as_str()))
                    .map(|m| machine_key(m.name().to_string(), &ns))
            });
            std::future::ready(counted_adds(&queue, key).pop())
        })
    }

    /// The driver's VM cache: its changes wake machines, and it counts for
    /// readiness and health like ours.
    pub(super) fn vm_changes(
        &self,
        VmWatch { name, items }: VmWatch,
    ) -> impl futures::Stream<Item = ObjectRef<Machine>> + Send + 'static + use<> {
        self.health.register_watch(name);
        let (gate, health) = (self.gate.clone(), self.health.clone());
        let (queue, ns) = (self.metrics.queue.clone(), self.namespace.clone());
        items.filter_map(move |item| {
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
        })
    }
}
