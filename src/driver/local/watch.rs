// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local driver's caches: machine Pods of the target cluster and of each
//! cluster named by class credentials, watched while the controller runs
//! [`crate::driver::Driver::watch`] and read by the driver's calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodStatus};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::build::machine_of_pod;
use crate::api::PodWithStatus;
use crate::contract::local::{LABEL_PROVIDER, PROVIDER};
use crate::driver::VmWatchItem;

/// Cache name of the machine Pods.
pub(crate) const NAME: &str = "pods";

/// A machine Pod is read for its identity, labels, deletion, IPs and what
/// [`super::trouble`] reads (its spec is not even decoded).
pub(crate) fn trim_pod(pod: &mut PodWithStatus) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.status = pod.status.take().map(|s| {
        let states = |statuses: Option<Vec<ContainerStatus>>| {
            statuses.map(|all| {
                all.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        state: c.state,
                        ..Default::default()
                    })
                    .collect()
            })
        };
        PodStatus {
            phase: s.phase,
            reason: s.reason,
            message: s.message,
            pod_ip: s.pod_ip,
            pod_ips: s.pod_ips,
            // Scheduling and readiness, with their transitions: when a
            // trouble began.
            conditions: s.conditions.map(|all| {
                all.into_iter()
                    .filter(|c| c.type_ == "PodScheduled" || c.type_ == "Ready")
                    .map(|c| PodCondition {
                        message: (c.type_ == "PodScheduled").then_some(c.message).flatten(),
                        ..c
                    })
                    .collect()
            }),
            start_time: s.start_time,
            container_statuses: states(s.container_statuses),
            init_container_statuses: states(s.init_container_statuses),
            ..Default::default()
        }
    });
}

/// Machine Pods the watch saw deleted (and not made again since), by
/// `namespace/name`, so that a deletion need not ask the API server whether the
/// Pod is really gone. Entries older than [`Tombstones::KEEP`] are dropped: by
/// then the machine has long been asked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tombstones(Arc<Mutex<HashMap<String, Instant>>>);

impl Tombstones {
    const KEEP: Duration = Duration::from_secs(10 * 60);

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Instant>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Notes what `event` says about which Pods exist.
    pub(crate) fn observe(
        &self,
        event: &Result<watcher::Event<PodWithStatus>, watcher::Error>,
        now: Instant,
    ) {
        let key = |pod: &PodWithStatus| {
            format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            )
        };
        match event {
            Ok(watcher::Event::Delete(pod)) => self.with(|t| {
                t.retain(|_, at| now.saturating_duration_since(*at) < Self::KEEP);
                t.insert(key(pod), now);
            }),
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                self.with(|t| t.remove(&key(pod)));
            }
            _ => {}
        }
    }

    /// True if the watch saw Pod `namespace/name` deleted and not made again.
    pub(crate) fn gone(&self, namespace: &str, name: &str) -> bool {
        self.with(|t| t.contains_key(&format!("{namespace}/{name}")))
    }
}

/// What one watch event means to the controller. The store has applied it
/// already (the reflector applies before it yields), so `Listed` means full.
pub(crate) fn item(event: &Result<watcher::Event<PodWithStatus>, watcher::Error>) -> VmWatchItem {
    match event {
        Ok(watcher::Event::InitDone) => VmWatchItem::Listed,
        Ok(
            watcher::Event::Apply(pod)
            | watcher::Event::InitApply(pod)
            | watcher::Event::Delete(pod),
        ) => machine_of_pod(&pod.metadata).map_or(VmWatchItem::Other, VmWatchItem::Changed),
        Ok(watcher::Event::Init) => VmWatchItem::Other,
        Err(_) => VmWatchItem::Failed,
    }
}

/// One cluster's machine Pods as its watch keeps them, and the Pods it saw go.
/// Until the watch has listed once, the store is empty or partial: a Pod
/// missing from it may well exist, so it is not read at all
/// ([`PodCache::readable`]) and the driver asks the API server instead.
#[derive(Clone)]
pub(crate) struct PodCache {
    store: Store<PodWithStatus>,
    tombstones: Tombstones,
    listed: Arc<AtomicBool>,
}

impl PodCache {
    /// An empty cache, and the writer its watch ([`watch`]) fills it through.
    pub(crate) fn new() -> (Self, Writer<PodWithStatus>) {
        let (store, writer) = reflector::store();
        let cache = PodCache {
            store,
            tombstones: Tombstones::default(),
            listed: Arc::default(),
        };
        (cache, writer)
    }

    /// This cache if its watch has listed once, else `None`: ask the API server.
    /// A later re-list keeps it readable: the reflector swaps the new list in
    /// whole, and until then the old one stands.
    pub(crate) fn readable(&self) -> Option<PodCache> {
        self.listed.load(Ordering::Acquire).then(|| self.clone())
    }

    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodWithStatus>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// True if the watch saw Pod `namespace/name` deleted and not made again.
    pub(crate) fn gone(&self, namespace: &str, name: &str) -> bool {
        self.tombstones.gone(namespace, name)
    }

    pub(crate) fn pods(&self) -> Vec<Arc<PodWithStatus>> {
        self.store.state()
    }
}

/// The watch of machine Pods in every namespace of `cluster`, filling `cache`
/// through `writer`; it runs while polled.
pub(crate) fn watch(
    cluster: Client,
    writer: Writer<PodWithStatus>,
    cache: &PodCache,
) -> BoxStream<'static, VmWatchItem> {
    let config = watcher::Config::default().labels(&format!("{LABEL_PROVIDER}={PROVIDER}"));
    let events = watcher(Api::<PodWithStatus>::all(cluster), config)
        .modify(trim_pod)
        .default_backoff();
    fill(events, writer, cache)
}

/// Feeds watch `events` into `cache` and says what each means to the controller.
fn fill(
    events: impl Stream<Item = Result<watcher::Event<PodWithStatus>, watcher::Error>> + Send + 'static,
    writer: Writer<PodWithStatus>,
    cache: &PodCache,
) -> BoxStream<'static, VmWatchItem> {
    let (tombstones, listed) = (cache.tombstones.clone(), cache.listed.clone());
    let events = events.inspect(move |event| tombstones.observe(event, Instant::now()));
    reflector::reflector(writer, events)
        .map(move |event| {
            let item = item(&event);
            if item == VmWatchItem::Listed {
                // The reflector has applied the list before yielding it.
                listed.store(true, Ordering::Release);
            }
            item
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::local::build;

    /// Machine m1's Pod in namespace ns.
    fn machine_pod() -> PodWithStatus {
        let spec = crate::api::provider_spec::LocalProviderSpec::parse(
            &serde_json::json!({"image": "img"}),
        )
        .unwrap();
        build::pod("m1", "ns", "ns", &spec).into()
    }

    #[test]
    fn trimmed_pods_keep_what_the_driver_reads() {
        let mut pod = machine_pod();
        pod.metadata.uid = Some("u1".into());
        pod.status = Some(
            serde_json::from_value(serde_json::json!({
                "podIP": "10.0.0.1",
                "hostIP": "10.0.0.2",
                "phase": "Pending",
                "startTime": "2026-12-03T10:00:00Z",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                "message": "containers with unready status: [node]",
                                "lastTransitionTime": "2026-12-03T10:00:01Z"}],
                "containerStatuses": [{
                    "name": "node", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "no"}},
                }],
            }))
            .unwrap(),
        );
        let trouble = super::super::trouble::pod_trouble(&pod);
        trim_pod(&mut pod);
        // What the driver reads of a Pod survives the trim.
        assert_eq!(super::super::trouble::pod_trouble(&pod), trouble);
        assert!(trouble.is_some_and(|t| t.since.is_some()));
        assert_eq!(machine_of_pod(&pod.metadata).as_deref(), Some("m1"));
        assert!(build::owner_reference(&pod.metadata).is_some());
        let status = pod.status.unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.host_ip, None);
    }

    #[test]
    fn a_pod_is_gone_once_deleted_until_it_is_made_again() {
        let tombstones = Tombstones::default();
        let mut pod = PodWithStatus::default();
        pod.metadata.name = Some("machine-m1".into());
        pod.metadata.namespace = Some("ns".into());
        let t0 = Instant::now();
        assert!(!tombstones.gone("ns", "machine-m1"));
        tombstones.observe(&Ok(watcher::Event::Delete(pod.clone())), t0);
        assert!(tombstones.gone("ns", "machine-m1"));
        assert!(!tombstones.gone("other", "machine-m1"));
        tombstones.observe(&Ok(watcher::Event::Apply(pod.clone())), t0);
        assert!(!tombstones.gone("ns", "machine-m1"));
        // Old entries make way when another Pod goes.
        tombstones.observe(&Ok(watcher::Event::Delete(pod.clone())), t0);
        let mut other = pod.clone();
        other.metadata.name = Some("machine-m2".into());
        let later = t0 + Tombstones::KEEP;
        tombstones.observe(&Ok(watcher::Event::Delete(other)), later);
        assert!(!tombstones.gone("ns", "machine-m1"));
        assert!(tombstones.gone("ns", "machine-m2"));
    }

    #[test]
    fn events_name_the_machine_whose_pod_changed() {
        let pod = machine_pod();
        assert_eq!(
            item(&Ok(watcher::Event::Apply(pod.clone()))),
            VmWatchItem::Changed("m1".into())
        );
        assert_eq!(
            item(&Ok(watcher::Event::Delete(pod))),
            VmWatchItem::Changed("m1".into())
        );
        assert_eq!(
            item(&Ok(watcher::Event::Apply(PodWithStatus::default()))),
            VmWatchItem::Other
        );
        assert_eq!(item(&Ok(watcher::Event::InitDone)), VmWatchItem::Listed);
    }

    #[tokio::test]
    async fn the_cache_is_read_only_once_its_watch_has_listed() {
        let pod = machine_pod();
        let (cache, writer) = PodCache::new();
        let (events, rx) = futures::channel::mpsc::unbounded();
        let mut items = fill(rx, writer, &cache);
        let mut next = async |event| {
            events.unbounded_send(Ok(event)).unwrap();
            items.next().await.unwrap()
        };
        assert_eq!(next(watcher::Event::Init).await, VmWatchItem::Other);
        assert_eq!(
            next(watcher::Event::InitApply(pod.clone())).await,
            VmWatchItem::Changed("m1".into())
        );
        // Half a list says nothing of the Pods not in it yet.
        assert!(cache.readable().is_none());
        assert_eq!(next(watcher::Event::InitDone).await, VmWatchItem::Listed);
        let readable = cache.readable().expect("listed");
        assert!(readable.get("ns", "machine-m1").is_some());
        // A re-list keeps the old list readable until the new one is in.
        next(watcher::Event::Init).await;
        let readable = cache.readable().expect("still listed");
        assert!(readable.get("ns", "machine-m1").is_some());
        next(watcher::Event::InitDone).await;
        assert!(readable.get("ns", "machine-m1").is_none());
        next(watcher::Event::Delete(pod)).await;
        assert!(readable.gone("ns", "machine-m1"));
    }
}
