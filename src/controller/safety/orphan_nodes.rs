// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Orphan Nodes, as MCM's safety controller (`AnnotateNodesUnmanagedByMCM`)
//! handles them: a Node no Machine claims, older than the creation timeout,
//! loses our finalizer (else nobody could ever delete it) and is annotated
//! `node.machine.sapcloud.io/not-managed-by-mcm`. Gardener's worker health
//! check and its care controller count every Node without that annotation as
//! one of MCM's, so an orphan or foreign Node left unmarked shows up there as a
//! missing machine.
//!
//! In a target shared by several control namespaces (this project's own test
//! cluster), another controller's Nodes look unclaimed from here and are
//! marked too, as MCM would mark them. That costs their owner nothing: its
//! Node upkeep removes the annotation (and restores the finalizer) as soon as
//! the change reaches it ([`crate::controller::node::patch_for`]).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use serde_json::json;

use crate::api::Machine;
use crate::contract::{
    NODE_FINALIZER, NODE_MACHINE_NAME_LABEL, NOT_MANAGED_BY_MCM_ANNOTATION, local::NAME_PREFIX,
};
use crate::controller::context::Context;
use crate::controller::node::{machine_of_node, naming_in};

/// A Node nobody claims, and the Machine names that would claim it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub node: String,
    pub machines: Vec<String>,
}

/// Nodes that no cached Machine claims, that are older than `min_age` and still
/// carry our finalizer or lack the annotation: candidates, which a live read of
/// their Machines confirms.
pub(crate) fn candidates(
    nodes: &[Arc<Node>],
    machines: &[Arc<Machine>],
    now: jiff::Timestamp,
    min_age: Duration,
) -> Vec<Candidate> {
    nodes
        .iter()
        .filter(|n| {
            let (ours, marked) = state(n);
            ours || !marked
        })
        .filter(|n| {
            n.metadata.creation_timestamp.as_ref().is_some_and(|t| {
                Duration::try_from(now.duration_since(t.0)).is_ok_and(|age| age >= min_age)
            })
        })
        .filter(|n| {
            let claimed = machine_of_node(n, naming_in(machines))
                .is_some_and(|m| machines.iter().any(|x| x.name() == m));
            !claimed
        })
        .map(|n| {
            let name = n.name_any();
            let machines = match n.labels().get(NODE_MACHINE_NAME_LABEL) {
                Some(m) => vec![m.clone()],
                None => name
                    .strip_prefix(NAME_PREFIX)
                    .map(str::to_string)
                    .into_iter()
                    .chain([name.clone()])
                    .collect(),
            };
            Candidate {
                node: name,
                machines,
            }
        })
        .collect()
}

/// Whether `node` carries our finalizer, and whether it is marked not managed.
fn state(node: &Node) -> (bool, bool) {
    (
        node.finalizers().iter().any(|f| f == NODE_FINALIZER),
        node.annotations()
            .contains_key(NOT_MANAGED_BY_MCM_ANNOTATION),
    )
}

/// What an orphan Node needs: our finalizer gone and the annotation set, each
/// only if needed, guarded by the version it was computed from; `None`: nothing.
pub(crate) fn orphan_patch(node: &Node) -> Option<serde_json::Value> {
    let (ours, marked) = state(node);
    if !ours && marked {
        return None;
    }
    let mut metadata = serde_json::Map::new();
    if ours {
        let rest: Vec<&String> = node
            .finalizers()
            .iter()
            .filter(|f| *f != NODE_FINALIZER)
            .collect();
        metadata.insert("finalizers".into(), json!(rest));
    }
    if !marked {
        metadata.insert(
            "annotations".into(),
            json!({ NOT_MANAGED_BY_MCM_ANNOTATION: "1" }),
        );
    }
    metadata.insert(
        "resourceVersion".into(),
        json!(node.metadata.resource_version),
    );
    Some(json!({ "metadata": metadata }))
}

/// Releases and marks the orphan Nodes; returns how many.
pub(crate) async fn release<D>(ctx: &Context<D>) -> usize {
    let Some(target) = &ctx.target else {
        return 0;
    };
    let nodes = target.node_writes();
    let found = candidates(
        &target.nodes.state(),
        &ctx.machines.state(),
        jiff::Timestamp::now(),
        ctx.settings.creation_timeout,
    );
    let mut released = 0;
    'nodes: for c in found {
        for m in &c.machines {
            match ctx.machine_api().get_opt(m).await {
                Ok(None) => {}
                Ok(Some(_)) => continue 'nodes,
                Err(e) => {
                    tracing::warn!(node = %c.node, "could not read machine {m}, leaving the node: {e}");
                    continue 'nodes;
                }
            }
        }
        let Ok(Some(node)) = nodes.read(&c.node).await else {
            continue;
        };
        let Some(patch) = orphan_patch(&node) else {
            continue;
        };
        match nodes.merge(&c.node, &patch).await {
            Ok(_) => {
                released += 1;
                tracing::info!(node = %c.node, "released and marked not-managed-by-mcm a node no machine claims");
            }
            Err(e) => tracing::debug!(node = %c.node, "could not release the orphan node: {e}"),
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn node(name: &str, created: &str, label: Option<&str>, ours: bool) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        if let Some(m) = label {
            n.metadata.labels = Some([(NODE_MACHINE_NAME_LABEL.to_string(), m.to_string())].into());
        }
        if ours {
            n.metadata.finalizers = Some(vec![NODE_FINALIZER.into()]);
        }
        Arc::new(n)
    }

    #[test]
    fn only_old_unclaimed_nodes_not_yet_released_and_marked_are_candidates() {
        let now = "2026-01-01T01:00:00Z".parse().unwrap();
        let old = "2026-01-01T00:00:00Z";
        let mut claimed = Machine::named("a");
        claimed.metadata.labels = Some([("node".to_string(), "machine-a".to_string())].into());
        let machines = [Arc::new(claimed)];
        let mut marked = node("machine-f", old, None, false);
        Arc::make_mut(&mut marked).metadata.annotations =
            Some([(NOT_MANAGED_BY_MCM_ANNOTATION.to_string(), "1".to_string())].into());
        let nodes = [
            node("machine-a", old, Some("a"), true), // claimed
            node("machine-b", old, Some("b"), true), // orphan
            node("machine-c", "2026-01-01T00:59:00Z", None, true), // too young
            node("machine-d", old, None, false),     // not ours, not yet marked
            node("machine-e", old, None, true),      // orphan, no label
            marked,                                  // released and marked already
        ];
        let found = candidates(&nodes, &machines, now, Duration::from_secs(20 * 60));
        let names = |n: &str| {
            let bare = n.strip_prefix("machine-").unwrap_or(n);
            vec![bare.to_string(), n.to_string()]
        };
        assert_eq!(
            found,
            [
                Candidate {
                    node: "machine-b".into(),
                    machines: vec!["b".into()]
                },
                Candidate {
                    node: "machine-d".into(),
                    machines: names("machine-d")
                },
                Candidate {
                    node: "machine-e".into(),
                    machines: names("machine-e")
                },
            ]
        );
    }

    #[test]
    fn an_orphan_loses_our_finalizer_and_is_marked_once() {
        let old = "2026-01-01T00:00:00Z";
        let mut n = (*node("machine-b", old, Some("b"), true)).clone();
        n.metadata.finalizers = Some(vec!["other".into(), NODE_FINALIZER.into()]);
        n.metadata.resource_version = Some("7".into());
        assert_eq!(
            orphan_patch(&n),
            Some(json!({"metadata": {
                "finalizers": ["other"],
                "annotations": { NOT_MANAGED_BY_MCM_ANNOTATION: "1" },
                "resourceVersion": "7",
            }}))
        );
        // Marked already (say by MCM), our finalizer back: only the finalizer.
        n.metadata.annotations =
            Some([(NOT_MANAGED_BY_MCM_ANNOTATION.to_string(), "1".to_string())].into());
        assert_eq!(
            orphan_patch(&n),
            Some(json!({"metadata": {"finalizers": ["other"], "resourceVersion": "7"}}))
        );
        // Neither: nothing to write.
        n.metadata.finalizers = Some(vec!["other".into()]);
        assert_eq!(orphan_patch(&n), None);
    }
}
