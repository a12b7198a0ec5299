// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The class's `nodeTemplate.virtualCapacity` onto the Node's
//! `status.capacity`, as MCM's `SyncVirtualCapacity`: resources the class adds
//! (say, a virtual extended resource cluster-autoscaler should count), and
//! removal of those it dropped, remembered in
//! `node.machine.sapcloud.io/last-applied-virtual-capacity`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde_json::{Map, Value, json};

use crate::api::MachineClass;
use crate::contract::LAST_APPLIED_VIRTUAL_CAPACITY_ANNOTATION;

type Resources = BTreeMap<String, Quantity>;

/// What to write: a merge patch of the Node's status, and one of its metadata
/// (the annotation).
#[derive(Debug, PartialEq)]
pub(crate) struct CapacityPatch {
    pub status: Value,
    pub metadata: Value,
}

/// The patches that bring the Node's capacity to the class's virtual capacity,
/// or `None` when it has it. Quantities are compared as written (MCM compares
/// them numerically; a differently written equal value costs one write).
pub(crate) fn plan(class: &MachineClass, node: &Node) -> Option<CapacityPatch> {
    let desired: Resources = class
        .node_template
        .as_ref()
        .and_then(|t| t.virtual_capacity.clone())
        .unwrap_or_default();
    let last: Resources = node
        .annotations()
        .get(LAST_APPLIED_VIRTUAL_CAPACITY_ANNOTATION)
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    let current = node
        .status
        .as_ref()
        .and_then(|s| s.capacity.clone())
        .unwrap_or_default();
    let mut changes = Map::new();
    for k in last.keys().filter(|k| !desired.contains_key(*k)) {
        if current.contains_key(k) {
            changes.insert(k.clone(), Value::Null);
        }
    }
    for (k, v) in &desired {
        if current.get(k) != Some(v) {
            changes.insert(k.clone(), json!(v));
        }
    }
    let annotation_stale = desired != last;
    if changes.is_empty() && !annotation_stale {
        return None;
    }
    let annotation = if desired.is_empty() {
        Value::Null
    } else {
        Value::String(serde_json::to_string(&desired).unwrap_or_default())
    };
    Some(CapacityPatch {
        status: json!({"status": {"capacity": changes}}),
        metadata: json!({"metadata": {"annotations": {
            LAST_APPLIED_VIRTUAL_CAPACITY_ANNOTATION: annotation
        }}}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NodeTemplate;
    use k8s_openapi::api::core::v1::NodeStatus;

    fn class(virtual_capacity: &[(&str, &str)]) -> MachineClass {
        MachineClass {
            node_template: Some(NodeTemplate {
                virtual_capacity: Some(
                    virtual_capacity
                        .iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(capacity: &[(&str, &str)], last: Option<&str>) -> Node {
        let mut n = Node {
            status: Some(NodeStatus {
                capacity: Some(
                    capacity
                        .iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(last) = last {
            n.metadata.annotations = Some(
                [(
                    LAST_APPLIED_VIRTUAL_CAPACITY_ANNOTATION.to_string(),
                    last.to_string(),
                )]
                .into(),
            );
        }
        n
    }

    #[test]
    fn adds_the_class_resources_and_remembers_them() {
        let p = plan(
            &class(&[("example.com/gpu", "2")]),
            &node(&[("cpu", "4")], None),
        )
        .unwrap();
        assert_eq!(
            p.status,
            json!({"status": {"capacity": {"example.com/gpu": "2"}}})
        );
        assert_eq!(
            p.metadata["metadata"]["annotations"][LAST_APPLIED_VIRTUAL_CAPACITY_ANNOTATION],
            r#"{"example.com/gpu":"2"}"#
        );
        let applied = node(
            &[("cpu", "4"), ("example.com/gpu", "2")],
            Some(r#"{"example.com/gpu":"2"}"#),
        );
        assert_eq!(plan(&class(&[("example.com/gpu", "2")]), &applied), None);
    }

    #[test]
    fn removes_what_the_class_dropped_and_only_that() {
        let applied = node(
            &[("cpu", "4"), ("example.com/gpu", "2")],
            Some(r#"{"example.com/gpu":"2"}"#),
        );
        let p = plan(&MachineClass::default(), &applied).unwrap();
        assert_eq!(
            p.status,
            json!({"status": {"capacity": {"example.com/gpu": null}}})
        );
        assert_eq!(
            p.metadata["metadata"]["annotations"][LAST_APPLIED_VIRTUAL_CAPACITY_ANNOTATION],
            Value::Null
        );
        // Nothing ever applied, nothing asked for: nothing to do.
        assert_eq!(
            plan(&MachineClass::default(), &node(&[("cpu", "4")], None)),
            None
        );
    }
}
