// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Upkeep of a machine's Node: the machine-name label and our finalizer, so that
//! the Node outlives neither its machine's knowledge nor a deletion in flight.

use k8s_openapi::api::core::v1::Node;
use kube::api::Patch;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::error::Error;
use crate::api::Machine;
use crate::contract::{NODE_FINALIZER, NODE_MACHINE_NAME_LABEL, NOT_MANAGED_BY_MCM_ANNOTATION};

/// The strategic merge patch a Node needs, if any: our label and finalizer, and
/// the machine's node template.
pub fn patch_for(machine: &Machine, node: &Node) -> Option<serde_json::Value> {
    if node
        .annotations()
        .contains_key(NOT_MANAGED_BY_MCM_ANNOTATION)
    {
        return None;
    }
    let label_ok = node
        .labels()
        .get(NODE_MACHINE_NAME_LABEL)
        .map(String::as_str)
        == Some(machine.name());
    let has_finalizer = node.finalizers().iter().any(|f| f == NODE_FINALIZER);
    let template = super::node_template::changes(machine, node);
    if label_ok && has_finalizer && template.is_none() {
        return None;
    }
    let mut metadata = serde_json::Map::new();
    let mut spec = None;
    if let Some((fragment, taints)) = template {
        metadata = fragment;
        spec = taints;
    }
    let labels = metadata.entry("labels").or_insert_with(|| json!({}));
    labels[NODE_MACHINE_NAME_LABEL] = json!(machine.name());
    if !has_finalizer {
        // A strategic merge adds to the finalizers (their patch strategy is merge).
        metadata.insert("finalizers".into(), json!([NODE_FINALIZER]));
    }
    let mut patch = json!({ "metadata": metadata });
    if let Some(spec) = spec {
        // Taints are replaced whole: the resourceVersion keeps us from dropping
        // one that someone added since we read the Node. Without them there is
        // nothing to guard, and heartbeats would make the patch conflict.
        patch["spec"] = spec;
        patch["metadata"]["resourceVersion"] = json!(node.metadata.resource_version);
    }
    Some(patch)
}

/// The machine a Node belongs to: our label, else the local driver's naming.
pub fn machine_of_node(node: &Node) -> Option<String> {
    if let Some(m) = node.labels().get(NODE_MACHINE_NAME_LABEL) {
        return Some(m.clone());
    }
    node.metadata
        .name
        .as_deref()?
        .strip_prefix(crate::contract::local::NAME_PREFIX)
        .map(str::to_string)
}

pub async fn upkeep<D>(ctx: &Context<D>, machine: &Machine, node: &Node) -> Result<(), Error> {
    let (Some(patch), Some(target)) = (patch_for(machine, node), &ctx.target) else {
        return Ok(());
    };
    let nodes: Api<Node> = Api::all(target.clone());
    let params = super::params();
    nodes
        .patch(&node.name_any(), &params, &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_finalizes_once() {
        let mut machine = Machine::default();
        machine.metadata.name = Some("m1".into());
        let mut node = Node::default();
        node.metadata.name = Some("machine-m1".into());
        node.metadata.finalizers = Some(vec!["other".into()]);
        let patch = patch_for(&machine, &node).unwrap();
        assert_eq!(patch["metadata"]["labels"][NODE_MACHINE_NAME_LABEL], "m1");
        assert_eq!(patch["metadata"]["finalizers"], json!([NODE_FINALIZER]));
        assert_eq!(patch["metadata"].get("resourceVersion"), None);

        node.metadata.labels =
            Some([(NODE_MACHINE_NAME_LABEL.to_string(), "m1".to_string())].into());
        node.metadata.finalizers = Some(vec![NODE_FINALIZER.into()]);
        assert_eq!(patch_for(&machine, &node), None);
        assert_eq!(machine_of_node(&node).as_deref(), Some("m1"));
    }

    #[test]
    fn only_a_taint_change_is_guarded_by_the_resource_version() {
        let mut machine = Machine::named("m1");
        let mut node = Node::default();
        node.metadata.resource_version = Some("42".into());
        machine.spec.node_template = Some(crate::api::NodeTemplateSpec {
            spec: k8s_openapi::api::core::v1::NodeSpec {
                taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                    key: "dedicated".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        });
        let patch = patch_for(&machine, &node).unwrap();
        assert_eq!(patch["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
    }

    #[test]
    fn leaves_unmanaged_nodes_alone() {
        let machine = Machine::default();
        let mut node = Node::default();
        node.metadata.annotations =
            Some([(NOT_MANAGED_BY_MCM_ANNOTATION.to_string(), "1".to_string())].into());
        assert_eq!(patch_for(&machine, &node), None);
    }
}
