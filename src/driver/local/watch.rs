// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local driver's cache: machine Pods of the target cluster, watched by the
//! controller ([`crate::driver::Driver::watch`]) and read by the driver's calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::build::machine_of_pod;
use crate::contract::local::{LABEL_PROVIDER, PROVIDER};
use crate::driver::{VmWatch, VmWatchItem};

/// Cache name of the machine Pods.
pub const NAME: &str = "pods";

/// A machine Pod is read for its identity, labels, deletion, IPs and what
/// [`super::trouble`] reads; its spec is the larger part of it.
pub fn trim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.spec = None;
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
            conditions: s.conditions.map(|all| {
                all.into_iter()
                    .filter(|c| c.type_ == "PodScheduled")
                    .collect()
            }),
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
pub struct Tombstones(Arc<Mutex<HashMap<String, Instant>>>);

impl Tombstones {
    const KEEP: Duration = Duration::from_secs(10 * 60);

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Instant>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Notes what `event` says about which Pods exist.
    pub fn observe(&self, event: &Result<watcher::Event<Pod>, watcher::Error>, now: Instant) {
        let key = |pod: &Pod| {
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
    pub fn gone(&self, namespace: &str, name: &str) -> bool {
        self.with(|t| t.contains_key(&format!("{namespace}/{name}")))
    }
}

/// What one watch event means to the controller. The store has applied it
/// already (the reflector applies before it yields), so `Listed` means full.
pub fn item(event: &Result<watcher::Event<Pod>, watcher::Error>) -> VmWatchItem {
    match event {
        Ok(watcher::Event::InitDone) => VmWatchItem::Listed,
        Ok(
            watcher::Event::Apply(pod)
            | watcher::Event::InitApply(pod)
            | watcher::Event::Delete(pod),
        ) => machine_of_pod(pod).map_or(VmWatchItem::Other, VmWatchItem::Changed),
        Ok(watcher::Event::Init) => VmWatchItem::Other,
        Err(_) => VmWatchItem::Failed,
    }
}

/// The watch of machine Pods in every namespace of `target`, filling `writer`.
pub fn watch(target: Client, writer: Writer<Pod>, tombstones: Tombstones) -> VmWatch {
    let config = watcher::Config::default().labels(&format!("{LABEL_PROVIDER}={PROVIDER}"));
    let events = watcher(Api::<Pod>::all(target), config)
        .modify(trim_pod)
        .inspect(move |event| tombstones.observe(event, Instant::now()))
        .default_backoff();
    VmWatch {
        name: NAME,
        items: reflector::reflector(writer, events)
            .map(|event| item(&event))
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::local::build;

    #[test]
    fn trimmed_pods_keep_what_the_driver_reads() {
        let mut pod = build::pod(
            "m1",
            "ns",
            "ns",
            &crate::api::provider_spec::LocalProviderSpec::parse(
                &serde_json::json!({"image": "img"}),
            )
            .unwrap(),
        );
        pod.metadata.uid = Some("u1".into());
        pod.status = Some(
            serde_json::from_value(serde_json::json!({
                "podIP": "10.0.0.1",
                "hostIP": "10.0.0.2",
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False"}],
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
        assert!(trouble.is_some());
        assert_eq!(pod.spec, None);
        assert_eq!(machine_of_pod(&pod).as_deref(), Some("m1"));
        assert!(build::owner_reference(&pod).is_some());
        let status = pod.status.unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.host_ip, None);
    }

    #[test]
    fn a_pod_is_gone_once_deleted_until_it_is_made_again() {
        let tombstones = Tombstones::default();
        let mut pod = Pod::default();
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
        let pod = build::pod(
            "m1",
            "ns",
            "ns",
            &crate::api::provider_spec::LocalProviderSpec::parse(
                &serde_json::json!({"image": "img"}),
            )
            .unwrap(),
        );
        assert_eq!(
            item(&Ok(watcher::Event::Apply(pod.clone()))),
            VmWatchItem::Changed("m1".into())
        );
        assert_eq!(
            item(&Ok(watcher::Event::Delete(pod))),
            VmWatchItem::Changed("m1".into())
        );
        assert_eq!(
            item(&Ok(watcher::Event::Apply(Pod::default()))),
            VmWatchItem::Other
        );
        assert_eq!(item(&Ok(watcher::Event::InitDone)), VmWatchItem::Listed);
    }
}
