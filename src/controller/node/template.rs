// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `spec.nodeTemplate` onto the Node: labels, annotations and taints, as a
//! three-way merge against what we applied last (kept in an annotation), so that
//! what others put on the Node stays and what the template drops goes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::Machine;
use crate::contract::LAST_APPLIED_ALT_ANNOTATION;

/// What the template asks for, and what the annotation remembers.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub(crate) struct Applied {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
}

impl Applied {
    pub(crate) fn of_machine(machine: &Machine) -> Self {
        let Some(t) = &machine.spec.node_template else {
            return Applied::default();
        };
        Applied {
            labels: t.metadata.labels.clone().unwrap_or_default(),
            annotations: t.metadata.annotations.clone().unwrap_or_default(),
            taints: t.spec.taints.clone().unwrap_or_default(),
        }
    }

    /// The last applied state; an unreadable annotation counts as nothing applied.
    pub(crate) fn of_node(node: &Node) -> Self {
        node.annotations()
            .get(LAST_APPLIED_ALT_ANNOTATION)
            .and_then(|a| Self::parse(a))
            .unwrap_or_default()
    }

    /// Reads the annotation in Go's form (MCM writes the machine's whole
    /// `NodeTemplateSpec`: `{"metadata":{"labels",…},"spec":{"taints",…}}`) or
    /// in the flat form this controller wrote before, so that a switch from
    /// either controller still removes what the template dropped.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        if value.get("metadata").is_none() && value.get("spec").is_none() {
            return serde_json::from_value(value).ok();
        }
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(&value, |v, k| v.get(k))
                .filter(|v| !v.is_null())
                .cloned()
        };
        Some(Applied {
            labels: field(&["metadata", "labels"])
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            annotations: field(&["metadata", "annotations"])
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            taints: field(&["spec", "taints"])
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
        })
    }

    /// The annotation in Go's form, as MCM v0.62.1 marshals a NodeTemplateSpec
    /// (empty fields omitted, `creationTimestamp` null).
    pub(crate) fn to_go_json(&self) -> String {
        let mut metadata = json!({"creationTimestamp": null});
        if !self.labels.is_empty() {
            metadata["labels"] = json!(self.labels);
        }
        if !self.annotations.is_empty() {
            metadata["annotations"] = json!(self.annotations);
        }
        let mut spec = json!({});
        if !self.taints.is_empty() {
            spec["taints"] = json!(self.taints);
        }
        json!({"metadata": metadata, "spec": spec}).to_string()
    }
}

/// Merge-patch entries turning `current` into the desired map.
fn map_changes(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    last: &BTreeMap<String, String>,
) -> Map<String, Value> {
    let mut changes = Map::new();
    for k in last
        .keys()
        .filter(|k| !desired.contains_key(*k) && current.contains_key(*k))
    {
        changes.insert(k.clone(), Value::Null);
    }
    for (k, v) in desired.iter().filter(|(k, v)| current.get(*k) != Some(*v)) {
        changes.insert(k.clone(), Value::String(v.clone()));
    }
    changes
}

fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// The Node's taints after the merge, if they change.
fn taints_after(current: &[Taint], desired: &[Taint], last: &[Taint]) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !last.iter().any(|l| same_taint(l, t)) || desired.iter().any(|d| same_taint(d, t))
        })
        .cloned()
        .collect();
    for d in desired {
        match out.iter_mut().find(|t| same_taint(t, d)) {
            Some(t) if t.value == d.value => {}
            Some(t) => t.value = d.value.clone(),
            None => out.push(d.clone()),
        }
    }
    (out != current).then_some(out)
}

/// The metadata/spec fragments that bring the Node to the template, if any.
pub(crate) fn changes(
    machine: &Machine,
    node: &Node,
) -> Option<(Map<String, Value>, Option<Value>)> {
    let desired = Applied::of_machine(machine);
    let last = Applied::of_node(node);
    let mut labels = map_changes(node.labels(), &desired.labels, &last.labels);
    let mut annotations = map_changes(node.annotations(), &desired.annotations, &last.annotations);
    let current_taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taints = taints_after(&current_taints, &desired.taints, &last.taints);
    if labels.is_empty() && annotations.is_empty() && taints.is_none() && desired == last {
        return None;
    }
    annotations.insert(
        LAST_APPLIED_ALT_ANNOTATION.to_string(),
        Value::String(desired.to_go_json()),
    );
    let mut metadata = Map::new();
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(std::mem::take(&mut labels)));
    }
    metadata.insert("annotations".into(), Value::Object(annotations));
    Some((metadata, taints.map(|t| json!({ "taints": t }))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_and_flat_annotations_and_writes_gos() {
        let go = r#"{"metadata":{"creationTimestamp":null,"labels":{"pool":"a"}},"spec":{"taints":[{"key":"k","value":"v","effect":"NoSchedule"}]}}"#;
        let applied = Applied::parse(go).unwrap();
        assert_eq!(
            applied.labels,
            BTreeMap::from([("pool".into(), "a".into())])
        );
        assert_eq!(applied.taints, vec![taint("k", "v")]);
        assert!(applied.annotations.is_empty());
        let flat = r#"{"labels":{"pool":"a"},"annotations":{},"taints":[{"key":"k","value":"v","effect":"NoSchedule"}]}"#;
        assert_eq!(Applied::parse(flat), Some(applied.clone()));
        // What we write, Go's json.Unmarshal into a NodeTemplateSpec reads back.
        let written: Value = serde_json::from_str(&applied.to_go_json()).unwrap();
        assert_eq!(written, serde_json::from_str::<Value>(go).unwrap());
        assert_eq!(Applied::parse("not json"), None);
    }

    #[test]
    fn a_label_the_go_controller_applied_is_removed_when_the_template_drops_it() {
        let mut node = Node::default();
        node.metadata.labels = Some(BTreeMap::from([("old".into(), "x".into())]));
        node.metadata.annotations = Some(BTreeMap::from([(
            LAST_APPLIED_ALT_ANNOTATION.to_string(),
            r#"{"metadata":{"creationTimestamp":null,"labels":{"old":"x"}},"spec":{}}"#.to_string(),
        )]));
        let machine = Machine::default();
        let (metadata, _) = changes(&machine, &node).unwrap();
        assert_eq!(metadata["labels"]["old"], Value::Null);
    }
    use crate::api::NodeTemplateSpec;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn taint(key: &str, value: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        }
    }

    fn machine(labels: &[(&str, &str)], taints: Vec<Taint>) -> Machine {
        let mut m = Machine::named("m");
        m.spec.node_template = Some(NodeTemplateSpec {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: NodeSpec {
                taints: Some(taints),
                ..Default::default()
            },
        });
        m
    }

    fn apply(node: &mut Node, changes: (Map<String, Value>, Option<Value>)) {
        let (metadata, spec) = changes;
        for (field, map) in [
            ("labels", &mut node.metadata.labels),
            ("annotations", &mut node.metadata.annotations),
        ] {
            if let Some(Value::Object(entries)) = metadata.get(field) {
                let target = map.get_or_insert_with(BTreeMap::new);
                for (k, v) in entries {
                    match v {
                        Value::String(s) => target.insert(k.clone(), s.clone()),
                        _ => target.remove(k),
                    };
                }
            }
        }
        if let Some(spec) = spec {
            node.spec.get_or_insert_with(Default::default).taints =
                serde_json::from_value(spec["taints"].clone()).unwrap();
        }
    }

    #[test]
    fn applies_then_is_quiet() {
        let m = machine(&[("pool", "a")], vec![taint("dedicated", "x")]);
        let mut node = Node::default();
        node.metadata.labels =
            Some([("kubernetes.io/hostname".to_string(), "n".to_string())].into());
        let c = changes(&m, &node).unwrap();
        apply(&mut node, c);
        assert_eq!(node.labels()["pool"], "a");
        assert_eq!(node.labels()["kubernetes.io/hostname"], "n");
        assert_eq!(
            node.spec.as_ref().unwrap().taints.as_ref().unwrap()[0].key,
            "dedicated"
        );
        assert_eq!(changes(&m, &node), None, "a second pass changes nothing");
    }

    #[test]
    fn removes_only_what_it_applied() {
        let mut node = Node::default();
        let first = changes(
            &machine(&[("pool", "a"), ("tier", "1")], vec![taint("t", "1")]),
            &node,
        );
        apply(&mut node, first.unwrap());
        // Someone else adds a label and a taint.
        node.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("theirs".into(), "y".into());
        node.spec
            .as_mut()
            .unwrap()
            .taints
            .as_mut()
            .unwrap()
            .push(taint("theirs", "y"));
        let second = changes(&machine(&[("pool", "b")], vec![]), &node);
        apply(&mut node, second.unwrap());
        let labels = node.labels();
        assert_eq!(labels.get("pool").map(String::as_str), Some("b"));
        assert!(!labels.contains_key("tier"));
        assert_eq!(labels.get("theirs").map(String::as_str), Some("y"));
        let keys: Vec<_> = node
            .spec
            .unwrap()
            .taints
            .unwrap()
            .into_iter()
            .map(|t| t.key)
            .collect();
        assert_eq!(keys, ["theirs"]);
    }
}
