//! Why a machine Pod cannot run, and since when, read from its status as the
//! kubelet and the scheduler write it. Gardener's provider-local waits up to 10
//! minutes for the Pod to run and then reports only its phase; reading the
//! reasons lets the Machine say what is wrong (an image that cannot be pulled,
//! no node to schedule on, a crashing container), in the Pod's own words, once
//! it has lasted past the controller's grace.

use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};

use crate::api::PodWithStatus;
use crate::driver::{Code, MachineError, VmTrouble};

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
pub(crate) fn pod_trouble(pod: &PodWithStatus) -> Option<VmTrouble> {
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
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // A Pod that stopped being ready did so when its trouble began; one that
    // never was has had it since it started.
    let not_ready_since = condition(status, "Ready", "False")
        .and_then(|c| c.last_transition_time.as_ref())
        .or(status.start_time.as_ref())
        .map(|t| t.0)
        .or(created);
    let trouble = |reason: &str, message: String, since: Option<jiff::Timestamp>| VmTrouble {
        reason: reason.to_string(),
        error: MachineError::new(Code::Unavailable, message),
        since,
    };
    if status.phase.as_deref() == Some("Failed") {
        let reason = status.reason.as_deref().filter(|r| !r.is_empty());
        return Some(trouble(
            reason.unwrap_or("Failed"),
            format!(
                "pod {name:?} failed: {}",
                said(status.reason.as_deref(), status.message.as_deref())
            ),
            not_ready_since,
        ));
    }
    if let Some(c) = condition(status, "PodScheduled", "False")
        .filter(|c| c.reason.as_deref() == Some("Unschedulable"))
    {
        return Some(trouble(
            "Unschedulable",
            format!(
                "pod {name:?} cannot be scheduled: {}",
                said(c.reason.as_deref(), c.message.as_deref())
            ),
            c.last_transition_time.as_ref().map(|t| t.0).or(created),
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
            trouble(
                reason,
                format!(
                    "pod {name:?} cannot run container {container:?}: {}",
                    said(Some(reason), message)
                ),
                not_ready_since,
            )
        })
}

fn condition<'a>(
    status: &'a PodStatus,
    type_: &str,
    value: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == value)
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

    fn said(p: &PodWithStatus) -> Option<String> {
        pod_trouble(p).map(|t| t.error.message)
    }

    fn at(text: &str) -> Option<jiff::Timestamp> {
        Some(text.parse().unwrap())
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
            said(&p).as_deref(),
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
            said(&p).as_deref(),
            Some("pod \"machine-a\" cannot be scheduled: Unschedulable: 0/3 nodes are available")
        );
        let p = pod(
            serde_json::json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        );
        assert_eq!(
            said(&p).as_deref(),
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
            said(&p).as_deref(),
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

    #[test]
    fn a_trouble_began_when_the_pod_said_so() {
        let waiting = serde_json::json!([{
            "name": "node", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}},
        }]);
        let mut p = pod(serde_json::json!({
            "phase": "Pending",
            "startTime": "2026-12-03T10:00:05Z",
            "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": "2026-12-03T10:00:07Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-03T10:00:01Z"},
            ],
            "containerStatuses": waiting,
        }));
        p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-12-03T10:00:00Z".parse().unwrap(),
        ));
        let t = pod_trouble(&p).unwrap();
        assert_eq!(t.reason, "ErrImagePull");
        assert_eq!(t.error.code, Code::Unavailable);
        // Not ready since: the Ready condition's transition.
        assert_eq!(t.since, at("2026-12-03T10:00:07Z"));
        // A Ready condition that is True says nothing of the trouble: the start.
        let status = p.status.as_mut().unwrap();
        status.conditions.as_mut().unwrap()[0].status = "True".into();
        assert_eq!(pod_trouble(&p).unwrap().since, at("2026-12-03T10:00:05Z"));
        // Nor a start: the Pod's creation.
        p.status.as_mut().unwrap().start_time = None;
        assert_eq!(pod_trouble(&p).unwrap().since, at("2026-12-03T10:00:00Z"));
        // Nothing at all: the driver cannot say.
        p.metadata.creation_timestamp = None;
        assert_eq!(pod_trouble(&p).unwrap().since, None);

        // Unschedulable: since the scheduler said so.
        let p = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "lastTransitionTime": "2026-12-03T11:00:00Z"}],
        }));
        let t = pod_trouble(&p).unwrap();
        assert_eq!(
            (t.reason.as_str(), t.since),
            ("Unschedulable", at("2026-12-03T11:00:00Z"))
        );

        // A Failed Pod names its own reason, or "Failed".
        let p = pod(serde_json::json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(pod_trouble(&p).unwrap().reason, "Evicted");
        let p = pod(serde_json::json!({"phase": "Failed"}));
        assert_eq!(pod_trouble(&p).unwrap().reason, "Failed");
    }
}
