// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local driver's cache: machine Pods of the target cluster, watched by the
//! controller ([`crate::driver::Driver::watch`]) and read by the driver's calls.

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
pub fn watch(target: Client, writer: Writer<Pod>) -> VmWatch {
    let config = watcher::Config::default().labels(&format!("{LABEL_PROVIDER}={PROVIDER}"));
    let events = watcher(Api::<Pod>::all(target), config)
        .modify(trim_pod)
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
