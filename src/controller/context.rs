// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What every reconcile shares: clients, caches, settings, the driver, events.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};

use super::events::EventType;
use super::node::writes::NodeWrites;
use super::own_writes::OwnWrites;
use super::settings::Settings;
use crate::api::{Machine, MachineClass, PodOnNode};
use crate::contract::Phase;
use crate::driver::SecretData;

pub(crate) struct Context<D> {
    pub control: Client,
    /// The cluster the VMs join; none when the controller runs without one.
    pub target: Option<Target>,
    pub settings: Settings,
    pub driver: D,
    pub machines: Store<Machine>,
    pub classes: Store<MachineClass>,
    pub secrets: Store<Secret>,
    /// Core Events on Machines; repeated warnings are counted into one.
    pub events: super::events::Events,
    /// Our last write to each machine, to tell a stale cached copy.
    pub own_writes: Arc<OwnWrites>,
    /// The Go controller's bootstrap tokens, listed at the start.
    pub mcm_tokens: super::bootstrap::McmTokens,
    /// Classes that got our finalizer by a machine's write.
    pub finalized_classes: super::own_writes::Finalized,
    /// Set while an API server does not answer; see [`super::safety::freeze`].
    pub frozen: Frozen,
    /// One machine at a time per deployment may be marked Failed.
    pub meltdown: super::machine::meltdown::Permits,
    /// True once every cache has synced; see [`SyncGate`].
    pub synced: tokio::sync::watch::Receiver<bool>,
}

/// The cluster the VMs join as Nodes, and what the controller caches of it.
/// Its client and caches exist together or not at all: without a target
/// (`--target-kubeconfig` not given) the VMs are all there is.
#[derive(Clone)]
pub(crate) struct Target {
    pub client: Client,
    /// The same cluster without retries of 429: for an eviction a 429 is a
    /// budget's answer, to report, not to wait out.
    pub evictor: Client,
    pub nodes: Store<Node>,
    /// Every Pod of the target, trimmed to what a drain reads.
    pub pods: Store<PodOnNode>,
}

impl Target {
    pub(crate) fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes.get(&ObjectRef::new(name))
    }

    /// Every write to a Node goes through here.
    pub(crate) fn node_writes(&self) -> NodeWrites {
        NodeWrites::new(self.client.clone())
    }
}

/// Whether the controller is frozen (an API server does not answer), shared by
/// the check in [`super::safety::freeze`] and every reconcile.
#[derive(Default)]
pub(crate) struct Frozen(std::sync::atomic::AtomicBool);

impl Frozen {
    pub(crate) fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub(crate) fn set(&self, frozen: bool) {
        self.0.store(frozen, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Opens once every cache has its first full list *stored*.
///
/// The signal is taken from the stream *after* [`reflector`] has applied an
/// event ([`SyncGate::reflect`]). An `inspect` on the watch stream inside the
/// reflector runs before the store swaps the list in: a gate opened there once
/// let orphan collection see the Pods but not yet the Machines, and delete the
/// VMs of every live machine. (The store's own `wait_until_ready` is no way
/// out: kube-runtime 5 keeps one waker for it, so a second waiter starves the
/// Controller's.) Reconciles and the collector wait on the channel, which
/// wakes every waiter.
///
/// [`reflector`]: kube::runtime::reflector::reflector
pub(crate) struct SyncGate {
    pending: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
    tx: tokio::sync::watch::Sender<bool>,
}

impl SyncGate {
    pub(crate) fn new(caches: &[&'static str]) -> (Arc<Self>, tokio::sync::watch::Receiver<bool>) {
        let (tx, rx) = tokio::sync::watch::channel(caches.is_empty());
        let gate = SyncGate {
            pending: std::sync::Mutex::new(caches.iter().copied().collect()),
            tx,
        };
        (Arc::new(gate), rx)
    }

    /// `reflector(writer, stream)`, reporting cache `name` synced once its
    /// first list is in the store.
    pub(crate) fn reflect<K, S>(
        self: &Arc<Self>,
        name: &'static str,
        writer: kube::runtime::reflector::store::Writer<K>,
        stream: S,
    ) -> impl futures::Stream<Item = S::Item> + use<K, S>
    where
        K: kube::runtime::reflector::Lookup + Clone,
        K::DynamicType: Eq + std::hash::Hash + Clone,
        S: futures::Stream<
                Item = Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
            >,
    {
        let gate = self.clone();
        futures::StreamExt::inspect(
            kube::runtime::reflector::reflector(writer, stream),
            move |item| {
                if matches!(item, Ok(kube::runtime::watcher::Event::InitDone)) {
                    gate.stored(name);
                }
            },
        )
    }

    /// Cache `name` holds its first list (for caches fed outside [`Self::reflect`]).
    pub(crate) fn stored(&self, name: &'static str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.remove(name) && pending.is_empty() {
            tracing::debug!("every cache has synced");
            let _ = self.tx.send(true);
        }
    }
}

/// Input that keeps a machine from being made: reported on its status and as an Event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InputError {
    #[error("machine class kind {0:?} is not supported, only \"MachineClass\"")]
    WrongClassKind(String),
    #[error("MachineClass {0:?} not found in namespace {1:?}")]
    ClassNotFound(String, String),
    #[error("Secret {0:?} referenced by MachineClass {1:?} not found")]
    SecretNotFound(String, String),
    #[error("MachineClass {0:?} references no secret")]
    NoSecret(String),
    #[error("Secret referenced by MachineClass {0:?} has no \"userData\" key")]
    NoUserData(String),
}

impl<D> Context<D> {
    pub(crate) fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.target.as_ref()?.node(name)
    }

    /// Waits until every cache has its first full list, so that a decision never
    /// mistakes "not listed yet" for "absent". One task watches the stores
    /// ([`SyncGate`]).
    pub(crate) async fn wait_ready(&self) -> Result<(), super::Error> {
        let mut synced = self.synced.clone();
        synced
            .wait_for(|s| *s)
            .await
            .map(|_| ())
            .map_err(|_| super::Error::NotReady)
    }

    /// Waits until the machine cache shows `name` in `phase` (or it is gone),
    /// for at most `timeout`; says whether it did.
    pub(crate) async fn wait_for_cached_phase(
        &self,
        name: &str,
        phase: &Phase,
        timeout: std::time::Duration,
    ) -> bool {
        let key = ObjectRef::new(name).within(&self.settings.namespace);
        let seen = || {
            self.machines
                .get(&key)
                .is_none_or(|m| m.phase() == Some(phase))
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while !seen() {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    machine = name,
                    "the cache did not show the {phase} phase in time"
                );
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        true
    }

    /// The machine's class and the merged data of its secrets (credentials win).
    pub(crate) fn resolve(
        &self,
        machine: &Machine,
    ) -> Result<(Arc<MachineClass>, SecretData), InputError> {
        self.resolve_with(machine, false)
    }

    /// [`Self::resolve`] for taking a VM down: a Secret that is gone (Gardener
    /// deletes a worker's class Secrets while its machines still terminate) is
    /// read as empty, as MCM does, and never blocks the deletion.
    pub(crate) fn resolve_for_deletion(
        &self,
        machine: &Machine,
    ) -> Result<(Arc<MachineClass>, SecretData), InputError> {
        self.resolve_with(machine, true)
    }

    fn resolve_with(
        &self,
        machine: &Machine,
        missing_secrets_ok: bool,
    ) -> Result<(Arc<MachineClass>, SecretData), InputError> {
        let ns = &self.settings.namespace;
        let class_ref = &machine.spec.class;
        if !class_ref.kind.is_empty() && class_ref.kind != "MachineClass" {
            return Err(InputError::WrongClassKind(class_ref.kind.clone()));
        }
        let class = self
            .classes
            .get(&ObjectRef::new(&class_ref.name).within(ns))
            .ok_or_else(|| InputError::ClassNotFound(class_ref.name.clone(), ns.clone()))?;
        let class_name = class.metadata.name.clone().unwrap_or_default();
        let mut data = BTreeMap::new();
        let mut found = false;
        for r in class.secret_refs() {
            let name = r.name.clone().unwrap_or_default();
            let secret_ns = r
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| ns.clone());
            let Some(secret) = self.secrets.get(&ObjectRef::new(&name).within(&secret_ns)) else {
                if missing_secrets_ok {
                    found = true;
                    continue;
                }
                return Err(InputError::SecretNotFound(
                    format!("{secret_ns}/{name}"),
                    class_name.clone(),
                ));
            };
            found = true;
            for (k, v) in secret.data.clone().unwrap_or_default() {
                data.insert(k, v.0);
            }
        }
        if !found {
            return Err(InputError::NoSecret(class_name));
        }
        Ok((class, data))
    }

    /// Publishes an Event on the machine in the background: an Event is a
    /// record for people, and no step waits for it. Failures are logged.
    pub(crate) fn event(
        &self,
        machine: &Machine,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = super::events::Note {
            type_,
            reason: reason.to_string(),
            action: action.to_string(),
            message: note,
        };
        self.note(machine, event);
    }

    /// [`Self::event`] for a note decided beforehand.
    pub(crate) fn note(&self, machine: &Machine, mut event: super::events::Note) {
        event.message = truncate(event.message, 1024);
        let events = self.events.clone();
        let reference = machine.object_ref(&());
        let name = machine.name().to_string();
        tokio::spawn(async move {
            if let Err(e) = events.publish(&reference, &event).await {
                tracing::warn!(machine = name, error = %e, "could not publish event");
            }
        });
    }
}

/// Event notes are limited to 1 KiB by the API server.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(
        names: &[&str],
    ) -> Vec<Result<kube::runtime::watcher::Event<Machine>, kube::runtime::watcher::Error>> {
        use kube::runtime::watcher::Event as W;
        let mut events = vec![Ok(W::Init)];
        events.extend(names.iter().map(|n| Ok(W::InitApply(Machine::named(n)))));
        events.push(Ok(W::InitDone));
        events
    }

    /// Whenever the gate is seen open, the store already holds the list.
    #[tokio::test]
    async fn the_gate_opens_only_on_a_filled_store() {
        use futures::StreamExt;
        let (gate, synced) = SyncGate::new(&["machines"]);
        let (machines, writer) = kube::runtime::reflector::store::<Machine>();
        let seen = machines.clone();
        let stream = gate
            .reflect(
                "machines",
                writer,
                futures::stream::iter(listed(&["m1", "m2"])),
            )
            .inspect(move |_| {
                if *synced.borrow() {
                    assert_eq!(seen.state().len(), 2, "open on a store without the list");
                }
            });
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 4);
        assert_eq!(machines.state().len(), 2);
    }

    #[tokio::test]
    async fn the_gate_stays_shut_while_any_cache_is_unsynced() {
        use futures::StreamExt;
        let (gate, synced) = SyncGate::new(&["machines", "machineclasses"]);
        let (_, writer) = kube::runtime::reflector::store::<Machine>();
        let _: Vec<_> = gate
            .reflect("machines", writer, futures::stream::iter(listed(&[])))
            .collect()
            .await;
        assert!(!*synced.borrow());
        gate.stored("machineclasses");
        assert!(*synced.borrow());
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        assert_eq!(truncate("abc".into(), 10), "abc");
        let long = "é".repeat(600);
        let t = truncate(long, 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }
}
