// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Upkeep of a machine's Node: the machine-name label and our finalizer, so that
//! the Node outlives neither its machine's knowledge nor a deletion in flight,
//! and the machine's node template ([`template`]) and its class's virtual
//! capacity ([`capacity`]).

pub(crate) mod capacity;
pub(crate) mod template;
pub(crate) mod writes;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::api::{Machine, MachineClass};
use crate::client::status;
use crate::contract::{
    NODE_FINALIZER, NODE_MACHINE_NAME_LABEL, NOT_MANAGED_BY_MCM_ANNOTATION, OpState, OpType, text,
};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::status::StatusChange;

/// The strategic merge patch a Node needs, if any: our label and finalizer, and
/// the machine's node template. A `not-managed-by-mcm` annotation left from a
/// time no machine claimed the Node goes, as MCM's safety controller removes it
/// from a Node a machine claims: this machine does.
pub fn patch_for(machine: &Machine, node: &Node) -> Option<serde_json::Value> {
    let stale = node
        .annotations()
        .contains_key(NOT_MANAGED_BY_MCM_ANNOTATION);
    let label_ok = node
        .labels()
        .get(NODE_MACHINE_NAME_LABEL)
        .map(String::as_str)
        == Some(machine.name());
    let has_finalizer = node.finalizers().iter().any(|f| f == NODE_FINALIZER);
    let template = template::changes(machine, node);
    if label_ok && has_finalizer && template.is_none() && !stale {
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
    if stale {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        annotations[NOT_MANAGED_BY_MCM_ANNOTATION] = serde_json::Value::Null;
    }
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

/// The machine a Node belongs to: our label, else the machine whose `node`
/// label names it (a Node that just registered has no label of ours yet),
/// which `naming` finds, asked only then: a search of every machine per Node
/// event would grow with the fleet.
pub(crate) fn machine_of_node(
    node: &Node,
    naming: impl FnOnce(&str) -> Option<Arc<Machine>>,
) -> Option<String> {
    if let Some(m) = node.labels().get(NODE_MACHINE_NAME_LABEL) {
        return Some(m.clone());
    }
    let name = node.metadata.name.as_deref()?;
    naming(name).map(|m| m.name().to_string())
}

/// The machine among `machines` whose `node` label is the given Node name.
pub(crate) fn naming_in(machines: &[Arc<Machine>]) -> impl FnOnce(&str) -> Option<Arc<Machine>> {
    move |node| {
        machines
            .iter()
            .find(|m| m.node_name() == Some(node))
            .cloned()
    }
}

/// [`naming_in`] the machine cache, read in place (no copy of the cache).
pub(crate) fn naming_in_cache(
    machines: &Store<Machine>,
) -> impl FnOnce(&str) -> Option<Arc<Machine>> {
    move |node| machines.find(|m| m.node_name() == Some(node))
}

/// How a Node patch went: done, or refused by the API server for its content
/// (an invalid label, taint ...), with the server's message, which names the field.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upkeep {
    Done,
    Refused(String),
}

/// Writes what [`patch_for`] finds missing. A refusal is no error of the
/// reconcile: a node template the server will never take must not keep the
/// machine from Running; the caller warns and tries again soon, as MCM does.
pub(crate) async fn upkeep<D>(
    ctx: &Context<D>,
    machine: &Machine,
    class: &MachineClass,
    node: &Node,
) -> Result<Upkeep, Error> {
    let Some(target) = &ctx.target else {
        return Ok(Upkeep::Done);
    };
    let nodes = target.node_writes();
    let name = node.name_any();
    if let Some(p) = capacity::plan(class, node) {
        // Capacity lives in the status; the annotation records it afterwards,
        // so that a crash in between repeats the status write, never skips it.
        nodes.merge_status(&name, &p.status).await?;
        nodes.merge(&name, &p.metadata).await?;
    }
    let Some(patch) = patch_for(machine, node) else {
        return Ok(Upkeep::Done);
    };
    match nodes.merge_strategic(&name, &patch).await {
        Ok(()) => Ok(Upkeep::Done),
        Err(kube::Error::Api(s)) if status::invalid(&s) => Ok(Upkeep::Refused(s.message)),
        Err(e) => Err(e.into()),
    }
}

/// A refused node template is an Event and a log line only, as in MCM (which
/// logs it and retries in 5 s): a `Failed` lastOperation would list the machine
/// in its MachineDeployment's `failedMachines`. What is left to write is taking
/// back the report an earlier version of this controller wrote (state Failed,
/// type Update), once the template applies.
pub(crate) fn template_report(
    machine: &Machine,
    node: &str,
    upkeep: &Upkeep,
) -> Option<StatusChange> {
    let lo = &machine.status.last_operation;
    let reported = lo.description.starts_with(text::NODE_TEMPLATE_REFUSED);
    (reported && *upkeep == Upkeep::Done).then(|| {
        StatusChange::new(
            text::node_template_applied(node),
            OpState::Successful,
            OpType::Update,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Phase;

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
        assert_eq!(
            machine_of_node(&node, naming_in(&[])).as_deref(),
            Some("m1")
        );
        // Before our label: found through the machine's `node` label.
        node.metadata.labels = None;
        let mut m = Machine::named("m2");
        m.metadata.labels = Some([("node".to_string(), "machine-m1".to_string())].into());
        assert_eq!(
            machine_of_node(&node, naming_in(&[Arc::new(m)])).as_deref(),
            Some("m2")
        );
        assert_eq!(machine_of_node(&node, naming_in(&[])), None);
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
    fn a_refused_template_writes_no_status_and_an_old_report_is_taken_back() {
        let mut m = Machine::named("m1");
        let refused = Upkeep::Refused("spec.taints[0].effect: Unsupported value".into());
        for phase in [Phase::Pending, Phase::Running] {
            m.status.current_status.phase = Some(phase);
            assert_eq!(template_report(&m, "machine-m1", &refused), None);
            assert_eq!(template_report(&m, "machine-m1", &Upkeep::Done), None);
        }

        // What an earlier version wrote goes once the template applies.
        m.status.last_operation.description =
            text::node_template_refused("machine-m1", "spec.taints[0].effect: Unsupported value");
        m.status.last_operation.state = Some(OpState::Failed);
        assert_eq!(template_report(&m, "machine-m1", &refused), None);
        let fixed = template_report(&m, "machine-m1", &Upkeep::Done).unwrap();
        assert_eq!(
            fixed.description,
            "Node template applied to node machine-m1"
        );
        assert_eq!(fixed.state, OpState::Successful);
        assert_eq!(fixed.op, OpType::Update);
        assert_eq!(fixed.phase, None, "the phase stays");
    }

    #[test]
    fn a_claimed_node_loses_a_stale_not_managed_annotation_and_gets_upkeep() {
        // Annotated while no machine claimed it; now this machine does.
        let machine = Machine::named("m1");
        let mut node = Node::default();
        node.metadata.name = Some("machine-m1".into());
        node.metadata.annotations = Some(
            [
                (NOT_MANAGED_BY_MCM_ANNOTATION.to_string(), "1".to_string()),
                ("other".to_string(), "kept".to_string()),
            ]
            .into(),
        );
        let patch = patch_for(&machine, &node).unwrap();
        assert_eq!(patch["metadata"]["labels"][NODE_MACHINE_NAME_LABEL], "m1");
        assert_eq!(patch["metadata"]["finalizers"], json!([NODE_FINALIZER]));
        // null deletes the key in a strategic merge; other annotations are untouched.
        assert_eq!(
            patch["metadata"]["annotations"],
            json!({ NOT_MANAGED_BY_MCM_ANNOTATION: null })
        );
        // Label and finalizer in place: the annotation alone still needs a patch.
        node.metadata.labels =
            Some([(NODE_MACHINE_NAME_LABEL.to_string(), "m1".to_string())].into());
        node.metadata.finalizers = Some(vec![NODE_FINALIZER.into()]);
        let patch = patch_for(&machine, &node).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"],
            json!({ NOT_MANAGED_BY_MCM_ANNOTATION: null })
        );
        assert_eq!(patch["metadata"].get("finalizers"), None);
        // Gone: nothing more to do.
        node.metadata.annotations = Some([("other".to_string(), "kept".to_string())].into());
        assert_eq!(patch_for(&machine, &node), None);
    }
}
