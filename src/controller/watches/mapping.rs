// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What a watch event means: what the caches keep of an object, which events
//! matter, and the machines a change concerns.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus, Secret};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::api::{Machine, PodOnNode};
use crate::controller::machine::drain;
use crate::controller::node::{machine_of_node, naming_in_cache};
use crate::driver::Driver;
use crate::metrics::workqueue::WorkQueue;

/// Drops what no decision reads, to keep the caches small.
pub(super) fn trim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// A Node is read for its metadata, spec (taints, unschedulable), conditions and
/// capacity (for the class's virtual capacity).
pub(super) fn trim_node(node: &mut Node) {
    trim(node);
    node.status = node.status.take().map(|s| NodeStatus {
        conditions: s.conditions,
        capacity: s.capacity,
        ..Default::default()
    });
}

/// Cache name of the target's Pods.
pub(super) const TARGET_PODS: &str = "target pods";

/// The node a Pod leaves (deleted, or on its way out), for waking its drain.
pub(super) fn leaving_pod(event: watcher::Event<PodOnNode>) -> Option<String> {
    match event {
        watcher::Event::Delete(pod) => drain::node_of(&pod).map(str::to_string),
        watcher::Event::Apply(pod) if pod.metadata.deletion_timestamp.is_some() => {
            drain::node_of(&pod).map(str::to_string)
        }
        _ => None,
    }
}

/// Node heartbeats change nothing we decide on; only these fields wake a machine.
pub(super) fn node_fingerprint(node: &Node) -> Option<u64> {
    let mut h = DefaultHasher::new();
    node.labels().hash(&mut h);
    node.finalizers().hash(&mut h);
    // Preservation follows the Node's preserve annotation.
    node.annotations()
        .get(crate::contract::preserve::ANNOTATION)
        .hash(&mut h);
    // A claimed Node marked not-managed-by-mcm gets the mark removed at once.
    node.annotations()
        .contains_key(crate::contract::NOT_MANAGED_BY_MCM_ANNOTATION)
        .hash(&mut h);
    node.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .hash(&mut h);
    // Taints: the critical-components gate opens when its taint goes.
    for t in node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
    {
        (&t.key, &t.effect).hash(&mut h);
    }
    // Capacity: the class's virtual capacity is put back if it goes.
    if let Some(capacity) = node.status.as_ref().and_then(|s| s.capacity.as_ref()) {
        for (k, v) in capacity {
            (k, &v.0).hash(&mut h);
        }
    }
    for c in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        (&c.type_, &c.status).hash(&mut h);
        // The in-place update moves by reason, its status staying True.
        if c.type_ == crate::contract::inplace::CONDITION {
            c.reason.hash(&mut h);
        }
    }
    Some(h.finish())
}

/// Secrets the driver made itself are no input: they stay out of the cache.
pub(super) fn keep_secret_event<D: Driver>(event: &watcher::Event<Secret>) -> bool {
    match event {
        watcher::Event::Apply(s) | watcher::Event::InitApply(s) => !D::made_secret(s),
        _ => true,
    }
}

/// Every `period`, as an informer's resync in MCM: each cached machine is
/// reconciled again. A zero period turns it off.
pub(super) fn resync_ticks(period: Duration) -> futures::stream::BoxStream<'static, ()> {
    if period.is_zero() {
        return futures::stream::pending().boxed();
    }
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
    .boxed()
}

/// MCM's `deleteNode`: a Node that is deleted (say, without our finalizer, so
/// the machine never saw it going) takes its Machine with it, unless the Node
/// is not MCM's or the Machine is already going.
pub(super) fn on_node_deleted(
    control: kube::Client,
    namespace: String,
    machines: Store<Machine>,
) -> impl Fn(&Result<watcher::Event<Node>, watcher::Error>) {
    let api = Api::<Machine>::namespaced(control, &namespace);
    move |event| {
        let Ok(watcher::Event::Delete(node)) = event else {
            return;
        };
        if node
            .annotations()
            .contains_key(crate::contract::NOT_MANAGED_BY_MCM_ANNOTATION)
        {
            return;
        }
        // The Machine that names this Node: in a target shared by several
        // control namespaces, a machine of the same name elsewhere is not it.
        // Looked up by its key: a scan per deleted Node would grow with the
        // fleet in a wave of deletions.
        let node_name = node.name_any();
        let Some(machine) = machine_of_node(node, naming_in_cache(&machines))
            .and_then(|m| machines.get(&machine_key(m, &namespace)))
            .filter(|x| x.node_name() == Some(node_name.as_str()))
        else {
            return;
        };
        if machine.is_deleting() {
            return;
        }
        let (api, name, node) = (api.clone(), machine.name().to_string(), node_name);
        tokio::spawn(async move {
            tracing::info!(%node, machine = %name, "the node was deleted, deleting its machine");
            if let Err(e) = api.delete(&name, &Default::default()).await {
                tracing::warn!(machine = %name, "could not delete the machine of a deleted node: {e}");
            }
        });
    }
}

/// Counts the machines a change maps to as adds to the queue (see
/// [`crate::metrics::workqueue`]).
pub(super) fn counted_adds<I: IntoIterator<Item = ObjectRef<Machine>>>(
    queue: &WorkQueue,
    keys: I,
) -> Vec<ObjectRef<Machine>> {
    let now = Instant::now();
    keys.into_iter()
        .inspect(|k| queue.added(&k.name, now))
        .collect()
}

pub(super) fn machine_key(name: String, namespace: &str) -> ObjectRef<Machine> {
    ObjectRef::new(&name).within(namespace)
}

/// Machines whose class is `class`.
pub(super) fn machines_of_class(machines: &Store<Machine>, class: &str) -> Vec<ObjectRef<Machine>> {
    machines
        .state()
        .iter()
        .filter(|m| m.spec.class.name == class)
        .map(|m| ObjectRef::from_obj(m.as_ref()))
        .collect()
}

/// One item of the machine watch.
type MachineEvent = Result<watcher::Event<Machine>, watcher::Error>;

/// A relist (after a gap in the watch) swaps the cache at once, so machines
/// deleted during the gap vanish without a Delete event, and what follows
/// Delete events (deletion timing, our write records, the queue, orphan
/// collection) would never hear of them. This puts a Delete event for each
/// ahead of the list's end. `before` is the cache the list replaces.
pub(super) fn with_vanished(
    before: Store<Machine>,
) -> impl FnMut(MachineEvent) -> futures::stream::Iter<std::vec::IntoIter<MachineEvent>> {
    let mut listed: Option<HashSet<String>> = None;
    move |item| {
        let mut out = Vec::new();
        match &item {
            Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(m)) => {
                if let Some(l) = listed.as_mut() {
                    l.insert(m.name().to_string());
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(l) = listed.take() {
                    out.extend(
                        vanished(&before.state(), &l)
                            .into_iter()
                            .map(|m| Ok(watcher::Event::Delete(m))),
                    );
                }
            }
            _ => {}
        }
        out.push(item);
        futures::stream::iter(out)
    }
}

/// The machines of `before` that a new full list (`listed`, by name) lacks.
pub(super) fn vanished(before: &[Arc<Machine>], listed: &HashSet<String>) -> Vec<Machine> {
    before
        .iter()
        .filter(|m| !listed.contains(m.name()))
        .map(|m| (**m).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::local::{LocalDriver, build};

    #[test]
    fn the_drivers_own_secrets_stay_out_of_the_cache_but_their_deletion_does_not() {
        let ours = build::user_data_secret("m1", "ns", b"data");
        let keep = keep_secret_event::<LocalDriver>;
        assert!(!keep(&watcher::Event::Apply(ours.clone())));
        assert!(!keep(&watcher::Event::InitApply(ours.clone())));
        // A deletion is passed on, so that nothing lingers in the cache.
        assert!(keep(&watcher::Event::Delete(ours.clone())));
        // A class secret that happens to carry the same labels is kept.
        let mut class_secret = ours;
        class_secret.metadata.name = Some("cloudprovider".into());
        assert!(keep(&watcher::Event::Apply(class_secret)));
        assert!(keep(&watcher::Event::Apply(Secret::default())));
    }

    #[test]
    fn a_node_marked_or_unmarked_not_managed_wakes_its_machine() {
        let plain = Node::default();
        let mut marked = plain.clone();
        marked.metadata.annotations = Some(
            [(
                crate::contract::NOT_MANAGED_BY_MCM_ANNOTATION.to_string(),
                "1".to_string(),
            )]
            .into(),
        );
        assert_ne!(node_fingerprint(&plain), node_fingerprint(&marked));
        // Other annotations are no reason to look again.
        let mut other = plain.clone();
        other.metadata.annotations = Some([("x".to_string(), "y".to_string())].into());
        assert_eq!(node_fingerprint(&plain), node_fingerprint(&other));
    }

    #[test]
    fn machines_gone_during_a_watch_gap_are_reported_deleted() {
        let before = vec![
            Arc::new(Machine::named("kept")),
            Arc::new(Machine::named("gone")),
        ];
        let listed: HashSet<String> = ["kept".to_string(), "new".to_string()].into();
        let gone: Vec<String> = vanished(&before, &listed)
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        assert_eq!(gone, ["gone"]);
        assert!(vanished(&[], &listed).is_empty());
    }
}
