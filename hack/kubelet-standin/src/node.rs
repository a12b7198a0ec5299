// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The Node the stand-in registers for a machine Pod, and the patches it writes
//! later. Pure functions only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, Pod, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use crate::PodKey;

/// kwok keeps Nodes with this label (value [`KWOK_VALUE`]) Ready. A label, not an
/// annotation: kwok selects by it, and lets go of a Node as soon as it is removed.
pub const KWOK_LABEL: &str = "kwok.x-k8s.io/node";
pub const KWOK_VALUE: &str = "fake";
/// Marks a Node as registered by the stand-in; Nodes without it are never touched.
pub const REGISTERED_BY_ANNOTATION: &str = "local.machine.sapcloud.io/registered-by";
pub const REGISTERED_BY_VALUE: &str = "kubelet-standin";
/// `<namespace>/<name>` of the machine Pod the Node belongs to.
pub const POD_ANNOTATION: &str = "local.machine.sapcloud.io/pod";
/// UID of the machine Pod (the "boot") that registered or last re-joined the Node.
pub const POD_UID_ANNOTATION: &str = "local.machine.sapcloud.io/pod-uid";

/// On a Node the stand-in took down because its zone is out; it brings back
/// only Nodes that carry it.
pub const OUTAGE_ANNOTATION: &str = "local.machine.sapcloud.io/zone-outage";

/// The VM's place and type the local driver puts on its Pod, which a cloud's
/// kubelet (or cloud-controller-manager) puts on the Node.
const VM_LABELS: [&str; 3] = [
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
];
/// The VM's size on its Pod (JSON), reported as the Node's capacity.
const CAPACITY_ANNOTATION: &str = "local.machine.sapcloud.io/capacity";

/// What the local cloud's profile made of the VM (`pod-fails`, `never-joins`,
/// `not-ready-after=<duration>`), on its Pod.
const BOOT_FAULT_ANNOTATION: &str = "local.machine.sapcloud.io/boot-fault";

/// What the local cloud's profile made of the Pod's VM (its annotation).
pub fn boot_fault_of(pod: &Pod) -> Option<crate::decide::BootFault> {
    let value = pod
        .metadata
        .annotations
        .as_ref()?
        .get(BOOT_FAULT_ANNOTATION)?;
    crate::decide::BootFault::parse(value)
}

/// Status patch of a VM that crashed at boot: its Pod fails.
pub fn failed_pod_status_patch() -> Value {
    json!({"status": {
        "phase": "Failed",
        "reason": "BootFailed",
        "message": "the VM crashed at boot (boot fault of the local cloud profile)",
    }})
}

/// The zone the machine Pod's VM runs in, if the Pod says.
pub fn zone_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(VM_LABELS[0])
        .map(String::as_str)
}

/// The VM labels a kubelet on this Pod's VM registers its Node with.
pub fn vm_labels(pod: &Pod) -> BTreeMap<String, String> {
    let labels = pod.metadata.labels.as_ref();
    VM_LABELS
        .iter()
        .filter_map(|k| Some((k.to_string(), labels?.get(*k)?.clone())))
        .collect()
}

/// Status patch that reports the VM's size as the Node's capacity and
/// allocatable (no reservations), with room for 110 Pods unless the size says
/// otherwise; `None` when the Node reports it already, or the Pod names no
/// size or one that is not a map of quantities. Asked again at every change
/// of the Node: kwok's first status may land after ours and overwrite it.
pub fn capacity_status_patch(pod: &Pod, node: Option<&Node>) -> Option<Value> {
    let text = pod
        .metadata
        .annotations
        .as_ref()?
        .get(CAPACITY_ANNOTATION)?;
    let mut capacity: BTreeMap<String, String> = serde_json::from_str(text).ok()?;
    capacity
        .entry("pods".to_owned())
        .or_insert_with(|| "110".to_owned());
    let status = node.and_then(|n| n.status.as_ref());
    let reported = |q: Option<&BTreeMap<String, Quantity>>| {
        q.is_some_and(|q| q.iter().map(|(k, v)| (k, &v.0)).eq(capacity.iter()))
    };
    if reported(status.and_then(|s| s.capacity.as_ref()))
        && reported(status.and_then(|s| s.allocatable.as_ref()))
    {
        return None;
    }
    Some(json!({"status": {"capacity": capacity, "allocatable": capacity}}))
}

pub const NOT_READY_REASON: &str = "NodeStatusUnknown";
pub const NOT_READY_MESSAGE: &str = "Kubelet stopped posting node status.";

/// What the stand-in needs to know about an existing Node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeView {
    /// Carries our marker annotation.
    pub ours: bool,
    /// The Pod named by [`POD_ANNOTATION`].
    pub pod: Option<PodKey>,
    pub pod_uid: Option<String>,
    /// Carries the kwok annotation (kwok keeps it Ready).
    pub kwok_managed: bool,
    pub deleting: bool,
    /// Its Ready condition already says what a stopped kubelet leaves behind.
    pub stopped_status: bool,
    /// Taken down by the stand-in because its zone is out ([`OUTAGE_ANNOTATION`]).
    pub outage: bool,
}

impl NodeView {
    pub fn of(node: &Node) -> Self {
        let annotations = node.metadata.annotations.as_ref();
        let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
        let stopped_status = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| {
                c.status == "Unknown" && c.reason.as_deref() == Some(NOT_READY_REASON)
            });
        NodeView {
            ours: get(REGISTERED_BY_ANNOTATION) == Some(REGISTERED_BY_VALUE),
            pod: get(POD_ANNOTATION).and_then(PodKey::parse),
            pod_uid: get(POD_UID_ANNOTATION).map(str::to_owned),
            kwok_managed: node
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(KWOK_LABEL)),
            deleting: node.metadata.deletion_timestamp.is_some(),
            stopped_status,
            outage: get(OUTAGE_ANNOTATION).is_some(),
        }
    }
}

/// The pod key a Node of ours points back to, if any (for mapping Node events).
pub fn pod_key_of(meta: &ObjectMeta) -> Option<PodKey> {
    let annotations = meta.annotations.as_ref()?;
    if annotations
        .get(REGISTERED_BY_ANNOTATION)
        .map(String::as_str)
        != Some(REGISTERED_BY_VALUE)
    {
        return None;
    }
    annotations
        .get(POD_ANNOTATION)
        .and_then(|v| PodKey::parse(v))
}

fn boot_annotations(key: &PodKey, uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            REGISTERED_BY_ANNOTATION.to_owned(),
            REGISTERED_BY_VALUE.to_owned(),
        ),
        (POD_ANNOTATION.to_owned(), key.to_string()),
        (POD_UID_ANNOTATION.to_owned(), uid.to_owned()),
    ])
}

/// A Node label that makes the stand-in's in-place update fail (for tests).
pub const UPDATE_FAILS_LABEL: &str = "kubelet-standin.local/in-place-update";

/// gardener-node-agent's part of an in-place update (MCM v0.62.1's protocol):
/// once the machine controller marks the Node `ReadyForUpdate` (condition
/// `InPlaceUpdate`), the agent updates the machine and reports with the label
/// `node.machine.sapcloud.io/update-result` (and, on failure, the reason in an
/// annotation). The stand-in "updates" at once; the Node label
/// `kubelet-standin.local/in-place-update=fail` makes it report a failure.
/// Returns the patch to apply, if the Node waits for one.
pub fn in_place_update_report(node: &Node) -> Option<Value> {
    const RESULT: &str = "node.machine.sapcloud.io/update-result";
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "InPlaceUpdate" && c.reason.as_deref() == Some("ReadyForUpdate"));
    let labels = node.metadata.labels.as_ref();
    if !ready || labels.is_some_and(|l| l.contains_key(RESULT)) {
        return None;
    }
    let fails = labels
        .and_then(|l| l.get(UPDATE_FAILS_LABEL))
        .is_some_and(|v| v == "fail");
    Some(if fails {
        json!({"metadata": {
            "labels": {RESULT: "failed"},
            "annotations": {"node.machine.sapcloud.io/update-failed-reason": "the stand-in was told to fail the update"},
        }})
    } else {
        json!({"metadata": {"labels": {RESULT: "successful"}}})
    })
}

/// How long the machine this user data starts takes to boot before its kubelet
/// registers, from a line `# kubelet-standin: boot-time=<duration>` (the node
/// image ignores comments). It lets one machine join as late as a real one,
/// say for gardener's Go driver, which deletes a VM whose Node registered
/// before its CreateMachine returned, while every other machine joins at once.
pub fn boot_time(userdata: &[u8]) -> Option<std::time::Duration> {
    let text = String::from_utf8_lossy(userdata);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("# kubelet-standin: boot-time="))
        .find_map(|v| humantime::parse_duration(v.trim()).ok())
}

/// The taints a kubelet started by this user data registers with: the value of
/// its `--register-with-taints` flag (`key[=value]:Effect`, comma-separated), as
/// Gardener's user data passes `node.gardener.cloud/critical-components-not-ready`.
/// Malformed entries are skipped, as nothing here may fail on user input.
pub fn register_with_taints(userdata: &[u8]) -> Vec<Taint> {
    let text = String::from_utf8_lossy(userdata);
    let Some(rest) = text.split("--register-with-taints=").nth(1) else {
        return Vec::new();
    };
    let value = rest
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .next()
        .unwrap_or_default();
    value
        .split(',')
        .filter_map(|entry| {
            let (key_value, effect) = entry.rsplit_once(':')?;
            let (key, value) = match key_value.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (key_value, None),
            };
            (!key.is_empty() && ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect))
                .then(|| Taint {
                    key: key.to_owned(),
                    value,
                    effect: effect.to_owned(),
                    ..Default::default()
                })
        })
        .collect()
}

/// The Node a kubelet in machine Pod `key` (uid `uid`) registers: named after the
/// Pod, providerID = name, kubelet-style labels, kwok and stand-in annotations,
/// and `taints` besides our own. Its status is left to kwok.
pub fn build_node(
    key: &PodKey,
    uid: &str,
    taints: Vec<Taint>,
    vm_labels: BTreeMap<String, String>,
) -> Node {
    let name = key.name.clone();
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        (KWOK_LABEL.to_owned(), KWOK_VALUE.to_owned()),
    ]);
    labels.extend(vm_labels);
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(boot_annotations(key, uid)),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(name),
            // In the local cluster the machine Pods and the Nodes they register share
            // one cluster: without this taint the scheduler would put machine Pods on
            // machine Nodes, and draining one machine would evict the VMs of others.
            taints: Some(
                std::iter::once(Taint {
                    key: MACHINE_NODE_TAINT.to_owned(),
                    value: Some("true".to_owned()),
                    effect: "NoSchedule".to_owned(),
                    ..Default::default()
                })
                .chain(taints)
                .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// Taint that keeps machine Pods (VMs) off machine Nodes; workloads that should
/// run on machines tolerate it.
pub const MACHINE_NODE_TAINT: &str = "local.machine.sapcloud.io/machine-node";

/// Merge patch for a Node of ours whose machine booted again (a new Pod with the
/// same name): kwok manages it again and it points to the new Pod.
pub fn rejoin_patch(key: &PodKey, uid: &str) -> Value {
    json!({ "metadata": {
        "annotations": boot_annotations(key, uid),
        "labels": { KWOK_LABEL: KWOK_VALUE },
    } })
}

/// Merge patch that stops kwok from heartbeating a Node (`outage`: and marks
/// it as down with its zone).
pub fn stop_heartbeat_patch(outage: bool) -> Value {
    match outage {
        false => json!({ "metadata": { "labels": { KWOK_LABEL: null } } }),
        true => json!({ "metadata": {
            "labels": { KWOK_LABEL: null },
            "annotations": { OUTAGE_ANNOTATION: "true" },
        } }),
    }
}

/// Merge patch for a Node whose zone is back: kwok heartbeats it again (and
/// makes it Ready, as a kubelet that reaches the API server again would).
pub fn resume_patch() -> Value {
    json!({ "metadata": {
        "labels": { KWOK_LABEL: KWOK_VALUE },
        "annotations": { OUTAGE_ANNOTATION: null },
    } })
}

/// Strategic merge patch for the status subresource: Ready turns Unknown the way
/// the node lifecycle controller writes it when a kubelet stops posting.
pub fn not_ready_status_patch(now: jiff::Timestamp) -> Value {
    json!({
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "Unknown",
                "reason": NOT_READY_REASON,
                "message": NOT_READY_MESSAGE,
                "lastTransitionTime": now.to_string(),
            }]
        }
    })
}

/// The file gardener's machine image runs at boot: it runs it only if it is a
/// file (`[[ -f ]]`), and runs it directly, so it must be executable.
pub const USERDATA_FILE: &str = "/etc/machine/userdata";
/// The directory the user data Secret is mounted at, so that the file appears.
const USERDATA_DIR: &str = "/etc/machine";
/// A Secret volume's default file mode, when the Pod sets none.
const SECRET_DEFAULT_MODE: i32 = 0o644;

/// Where the file [`USERDATA_FILE`] comes from: a key of a Secret.
#[derive(Debug, PartialEq, Eq)]
pub struct UserDataSource {
    pub secret: String,
    pub key: String,
}

/// What the machine image would find at [`USERDATA_FILE`], as the kubelet lays
/// out a Secret volume: the Secret mounted at `/etc/machine`, its key `userdata`
/// (or the item whose path is `userdata`), with an executable mode.
pub fn userdata_source(pod: &Pod) -> Result<UserDataSource, String> {
    let missing = || format!("the pod has no file {USERDATA_FILE}");
    let spec = pod.spec.as_ref().ok_or_else(missing)?;
    let mount = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| m.mount_path.trim_end_matches('/') == USERDATA_DIR)
        .ok_or_else(|| format!("the pod mounts nothing at {USERDATA_DIR}, so {}", missing()))?;
    let secret = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.secret.as_ref())
        .ok_or_else(|| format!("the volume at {USERDATA_DIR} is not a Secret"))?;
    let name = secret
        .secret_name
        .clone()
        .ok_or_else(|| format!("the volume at {USERDATA_DIR} names no Secret"))?;
    let (key, mode) = match &secret.items {
        Some(items) => {
            let item = items
                .iter()
                .find(|i| i.path == "userdata")
                .ok_or_else(missing)?;
            (item.key.clone(), item.mode.or(secret.default_mode))
        }
        None => ("userdata".to_string(), secret.default_mode),
    };
    let mode = mode.unwrap_or(SECRET_DEFAULT_MODE);
    if mode & 0o111 == 0 {
        return Err(format!(
            "{USERDATA_FILE} has mode {mode:o}: the machine image cannot run it"
        ));
    }
    Ok(UserDataSource { secret: name, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, KeyToPath, NodeCondition, NodeStatus, PodSpec, SecretVolumeSource, Volume,
        VolumeMount,
    };

    fn key() -> PodKey {
        PodKey {
            namespace: "shoot".into(),
            name: "machine-a".into(),
        }
    }

    #[test]
    fn builds_a_kubelet_style_node() {
        let node = build_node(&key(), "uid-1", Vec::new(), BTreeMap::new());
        let v = serde_json::to_value(&node).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": "machine-a",
                    "labels": {
                        "kubernetes.io/hostname": "machine-a",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "kwok.x-k8s.io/node": "fake",
                    },
                    "annotations": {
                        "local.machine.sapcloud.io/registered-by": "kubelet-standin",
                        "local.machine.sapcloud.io/pod": "shoot/machine-a",
                        "local.machine.sapcloud.io/pod-uid": "uid-1",
                    },
                },
                "spec": {
                    "providerID": "machine-a",
                    "taints": [{"key": MACHINE_NODE_TAINT, "value": "true", "effect": "NoSchedule"}],
                },
            })
        );
        let view = NodeView::of(&node);
        assert!(view.ours && view.kwok_managed && !view.deleting && !view.stopped_status);
        assert_eq!(view.pod, Some(key()));
        assert_eq!(view.pod_uid.as_deref(), Some("uid-1"));
        assert_eq!(pod_key_of(&node.metadata), Some(key()));
    }

    #[test]
    fn foreign_nodes_are_not_ours() {
        let mut node = build_node(&key(), "uid-1", Vec::new(), BTreeMap::new());
        node.metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(REGISTERED_BY_ANNOTATION);
        assert!(!NodeView::of(&node).ours);
        assert_eq!(pod_key_of(&node.metadata), None);
        assert_eq!(NodeView::of(&Node::default()), NodeView::default());
    }

    #[test]
    fn recognises_a_stopped_status() {
        let mut node = build_node(&key(), "uid-1", Vec::new(), BTreeMap::new());
        let ready = |status: &str, reason: &str| NodeCondition {
            type_: "Ready".into(),
            status: status.into(),
            reason: Some(reason.into()),
            ..Default::default()
        };
        node.status = Some(NodeStatus {
            conditions: Some(vec![ready("True", "KubeletReady")]),
            ..Default::default()
        });
        assert!(!NodeView::of(&node).stopped_status);
        node.status.as_mut().unwrap().conditions = Some(vec![ready("Unknown", NOT_READY_REASON)]);
        assert!(NodeView::of(&node).stopped_status);
    }

    #[test]
    fn a_vm_shows_its_zone_type_and_size_on_its_node() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {
            "labels": {"topology.kubernetes.io/zone": "z1", "node.kubernetes.io/instance-type": "big", "app": "machine"},
            "annotations": {"local.machine.sapcloud.io/capacity": "{\"cpu\":\"2\",\"memory\":\"8Gi\"}"},
        }}))
        .unwrap();
        assert_eq!(zone_of(&pod), Some("z1"));
        let labels = vm_labels(&pod);
        assert_eq!(
            labels,
            BTreeMap::from([
                (
                    "node.kubernetes.io/instance-type".to_owned(),
                    "big".to_owned()
                ),
                ("topology.kubernetes.io/zone".to_owned(), "z1".to_owned()),
            ])
        );
        let node = build_node(&key(), "uid-1", Vec::new(), labels);
        assert_eq!(
            node.metadata.labels.as_ref().unwrap()["topology.kubernetes.io/zone"],
            "z1"
        );
        let status = capacity_status_patch(&pod, Some(&node)).unwrap();
        let want = json!({"cpu": "2", "memory": "8Gi", "pods": "110"});
        assert_eq!(status["status"]["capacity"], want);
        assert_eq!(status["status"]["allocatable"], want);
        // Reported already: nothing to do; overwritten (kwok's defaults): again.
        let mut reported = node.clone();
        reported.status = serde_json::from_value(status["status"].clone()).unwrap();
        assert_eq!(capacity_status_patch(&pod, Some(&reported)), None);
        let capacity = reported.status.as_mut().unwrap().capacity.as_mut().unwrap();
        capacity.insert("cpu".into(), Quantity("4".into()));
        assert!(capacity_status_patch(&pod, Some(&reported)).is_some());
        // No size, or one that is no map of quantities: nothing to report.
        assert_eq!(capacity_status_patch(&Pod::default(), None), None);
        let mut odd = pod.clone();
        odd.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(CAPACITY_ANNOTATION.into(), "[1]".into());
        assert_eq!(capacity_status_patch(&odd, None), None);
    }

    #[test]
    fn patches() {
        assert_eq!(
            stop_heartbeat_patch(false),
            json!({"metadata": {"labels": {"kwok.x-k8s.io/node": null}}})
        );
        let down = stop_heartbeat_patch(true);
        assert_eq!(down["metadata"]["annotations"][OUTAGE_ANNOTATION], "true");
        let back = resume_patch();
        assert_eq!(back["metadata"]["labels"][KWOK_LABEL], KWOK_VALUE);
        assert!(back["metadata"]["annotations"][OUTAGE_ANNOTATION].is_null());
        let now: jiff::Timestamp = "2030-01-02T03:04:05Z".parse().unwrap();
        let p = not_ready_status_patch(now);
        let c = &p["status"]["conditions"][0];
        assert_eq!(c["type"], "Ready");
        assert_eq!(c["status"], "Unknown");
        assert_eq!(c["reason"], "NodeStatusUnknown");
        assert_eq!(c["message"], "Kubelet stopped posting node status.");
        assert_eq!(c["lastTransitionTime"], "2030-01-02T03:04:05Z");
        let r = rejoin_patch(&key(), "uid-2");
        assert_eq!(r["metadata"]["labels"]["kwok.x-k8s.io/node"], "fake");
        assert_eq!(
            r["metadata"]["annotations"]["local.machine.sapcloud.io/pod-uid"],
            "uid-2"
        );
    }

    fn pod_with(mount_path: &str, secret: Option<&str>, mode: Option<i32>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "node".into(),
                    volume_mounts: Some(vec![
                        VolumeMount {
                            name: "containerd".into(),
                            mount_path: "/var/lib/containerd".into(),
                            ..Default::default()
                        },
                        VolumeMount {
                            name: "userdata".into(),
                            mount_path: mount_path.into(),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                volumes: Some(vec![Volume {
                    name: "userdata".into(),
                    secret: secret.map(|s| SecretVolumeSource {
                        secret_name: Some(s.into()),
                        default_mode: mode,
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn taints_come_from_the_kubelet_flag_in_the_user_data() {
        let userdata = b"#!/bin/bash\nkubelet --node-ip=1.2.3.4 --register-with-taints=node.gardener.cloud/critical-components-not-ready:NoSchedule,a=b:NoExecute,bad,c:Sometimes --v=2\n";
        let taints = register_with_taints(userdata);
        let pairs: Vec<(&str, Option<&str>, &str)> = taints
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_deref(), t.effect.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "node.gardener.cloud/critical-components-not-ready",
                    None,
                    "NoSchedule"
                ),
                ("a", Some("b"), "NoExecute"),
            ]
        );
        assert!(register_with_taints(b"kubelet --v=2").is_empty());
        let node = build_node(&key(), "uid-1", taints, BTreeMap::new());
        assert_eq!(node.spec.unwrap().taints.unwrap().len(), 3);
    }

    #[test]
    fn the_agent_reports_an_update_once_the_node_is_ready_for_it() {
        let mut node = build_node(&key(), "uid-1", Vec::new(), BTreeMap::new());
        assert_eq!(in_place_update_report(&node), None);
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            conditions: Some(vec![k8s_openapi::api::core::v1::NodeCondition {
                type_: "InPlaceUpdate".into(),
                status: "True".into(),
                reason: Some("ReadyForUpdate".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let report = in_place_update_report(&node).unwrap();
        assert_eq!(
            report["metadata"]["labels"]["node.machine.sapcloud.io/update-result"],
            "successful"
        );
        node.metadata
            .labels
            .get_or_insert_default()
            .insert(UPDATE_FAILS_LABEL.into(), "fail".into());
        let report = in_place_update_report(&node).unwrap();
        assert_eq!(
            report["metadata"]["labels"]["node.machine.sapcloud.io/update-result"],
            "failed"
        );
        // Reported once.
        node.metadata.labels.get_or_insert_default().insert(
            "node.machine.sapcloud.io/update-result".into(),
            "failed".into(),
        );
        assert_eq!(in_place_update_report(&node), None);
    }

    #[test]
    fn a_boot_time_comment_delays_the_join() {
        let userdata = b"#!/bin/bash\n# kubelet-standin: boot-time=15s\nkubelet --v=2\n";
        assert_eq!(
            boot_time(userdata),
            Some(std::time::Duration::from_secs(15))
        );
        assert_eq!(boot_time(b"#!/bin/bash\nkubelet\n"), None);
        assert_eq!(boot_time(b"# kubelet-standin: boot-time=soon\n"), None);
    }

    #[test]
    fn the_userdata_file_is_an_executable_key_of_the_secret_at_etc_machine() {
        let found = |secret: &str| {
            Ok(UserDataSource {
                secret: secret.into(),
                key: "userdata".into(),
            })
        };
        let pod = pod_with("/etc/machine", Some("machine-a-userdata"), Some(0o777));
        assert_eq!(userdata_source(&pod), found("machine-a-userdata"));
        let pod = pod_with("/etc/machine/", Some("machine-a-userdata"), Some(0o755));
        assert_eq!(userdata_source(&pod), found("machine-a-userdata"));
        // Mounted as a directory named userdata: the image finds no file.
        let err = userdata_source(&pod_with("/etc/machine/userdata", Some("x"), Some(0o777)))
            .unwrap_err();
        assert!(err.contains("mounts nothing at /etc/machine"), "{err}");
        // The Secret volume's default mode (0644) cannot be run.
        let err = userdata_source(&pod_with("/etc/machine", Some("x"), None)).unwrap_err();
        assert!(err.contains("mode 644"), "{err}");
        assert!(userdata_source(&pod_with("/etc/machine", None, Some(0o777))).is_err());
        assert!(userdata_source(&Pod::default()).is_err());
    }

    #[test]
    fn an_item_can_map_another_key_to_the_file() {
        let mut pod = pod_with("/etc/machine", Some("s"), None);
        let volume = &mut pod.spec.as_mut().unwrap().volumes.as_mut().unwrap()[0];
        volume.secret.as_mut().unwrap().items = Some(vec![KeyToPath {
            key: "script".into(),
            path: "userdata".into(),
            mode: Some(0o700),
        }]);
        assert_eq!(
            userdata_source(&pod),
            Ok(UserDataSource {
                secret: "s".into(),
                key: "script".into()
            })
        );
    }
}
