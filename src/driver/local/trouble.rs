// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Why a machine Pod cannot run, read from its status as the kubelet and the
//! scheduler write it. Gardener's provider-local waits up to 10 minutes for the
//! Pod to run and then reports only its phase; reading the reasons lets the
//! Machine say within seconds what is wrong (an image that cannot be pulled, no
//! node to schedule on, a crashing container), in the Pod's own words.

use k8s_openapi::api::core::v1::ContainerStatus;

use crate::api::PodWithStatus;

/// Container waiting reasons that mean the container will not start without a
/// change (to the image, the node or the configuration); passing states such as
/// `ContainerCreating` and `PodInitializing` are not among them.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What keeps the Pod from running, or `None` while it runs or is on its way.
pub fn pod_trouble(pod: &PodWithStatus) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let said = |reason: Option<&str>, message: Option<&str>| {
        [reason, message]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ")
    };
    if status.phase.as_deref() == Some("Failed") {
        return Some(format!(
            "pod {name:?} failed: {}",
            said(status.reason.as_deref(), status.message.as_deref())
        ));
    }
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    }) {
        return Some(format!(
            "pod {name:?} cannot be scheduled: {}",
            said(c.reason.as_deref(), c.message.as_deref())
        ));
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    containers
        .filter_map(stuck)
        .next()
        .map(|(container, reason, message)| {
            format!(
                "pod {name:?} cannot run container {container:?}: {}",
                said(Some(reason), message)
            )
        })
}

fn stuck(c: &ContainerStatus) -> Option<(&str, &str, Option<&str>)> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    STUCK
        .contains(&reason)
        .then_some((c.name.as_str(), reason, waiting.message.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> PodWithStatus {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "machine-a"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_named_with_the_kubelets_words() {
        let p = pod(serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{
                "name": "node", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}},
            }],
        }));
        assert_eq!(
            pod_trouble(&p).as_deref(),
            Some(
                "pod \"machine-a\" cannot run container \"node\": ImagePullBackOff: Back-off pulling image \"x\""
            )
        );
    }

    #[test]
    fn unschedulable_failed_and_crashing_pods_are_trouble() {
        let p = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/3 nodes are available"}],
        }));
        assert_eq!(
            pod_trouble(&p).as_deref(),
            Some("pod \"machine-a\" cannot be scheduled: Unschedulable: 0/3 nodes are available")
        );
        let p = pod(
            serde_json::json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        );
        assert_eq!(
            pod_trouble(&p).as_deref(),
            Some("pod \"machine-a\" failed: Evicted: low on memory")
        );
        let p = pod(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "node", "image": "x", "imageID": "", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            }],
        }));
        assert_eq!(
            pod_trouble(&p).as_deref(),
            Some("pod \"machine-a\" cannot run container \"node\": CrashLoopBackOff")
        );
    }

    #[test]
    fn pods_on_their_way_or_running_are_no_trouble() {
        for status in [
            serde_json::json!({}),
            serde_json::json!({"phase": "Pending", "containerStatuses": [{
                "name": "node", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }]}),
            serde_json::json!({"phase": "Running", "containerStatuses": [{
                "name": "node", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {}},
            }]}),
            serde_json::json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulerError"}]}),
        ] {
            assert_eq!(pod_trouble(&pod(status.clone())), None, "{status}");
        }
        assert_eq!(pod_trouble(&PodWithStatus::default()), None);
    }
}
