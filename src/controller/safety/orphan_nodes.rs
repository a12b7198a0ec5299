// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Orphan Nodes: a Node that carries our finalizer while no Machine claims it
//! could never be deleted (nobody would remove the finalizer). As MCM's safety
//! controller does (`AnnotateNodesUnmanagedByMCM`), such a Node older than the
//! creation timeout loses our finalizer.
//!
//! MCM also annotates such Nodes `not-managed-by-mcm`. We do not: in a target
//! cluster shared by several control namespaces (this project's own test
//! cluster, say) the annotation would make every other controller stop caring
//! for its own Nodes, while a finalizer removed in error is put back by the
//! owner's next Node upkeep.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Patch;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::Machine;
use crate::contract::{NODE_FINALIZER, NODE_MACHINE_NAME_LABEL, local::NAME_PREFIX};
use crate::controller::context::Context;
use crate::controller::node::machine_of_node;

/// A Node nobody claims, and the Machine names that would claim it.
#[derive(Debug, PartialEq, Eq)]
pub struct Candidate {
    pub node: String,
    pub machines: Vec<String>,
}

/// Nodes with our finalizer that no cached Machine claims and that are older
/// than `min_age`: candidates, which a live read of their Machines confirms.
pub fn candidates(
    nodes: &[Arc<Node>],
    machines: &[Arc<Machine>],
    now: jiff::Timestamp,
    min_age: Duration,
) -> Vec<Candidate> {
    nodes
        .iter()
        .filter(|n| n.finalizers().iter().any(|f| f == NODE_FINALIZER))
        .filter(|n| {
            n.metadata.creation_timestamp.as_ref().is_some_and(|t| {
                Duration::try_from(now.duration_since(t.0)).is_ok_and(|age| age >= min_age)
            })
        })
        .filter(|n| {
            let claimed = machine_of_node(n, machines)
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

/// Removes our finalizer from the orphan Nodes; returns how many.
pub async fn release<D>(ctx: &Context<D>) -> usize {
    let (Some(target), Some(store)) = (&ctx.target, &ctx.nodes) else {
        return 0;
    };
    let nodes: Api<Node> = Api::all(target.clone());
    let found = candidates(
        &store.state(),
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
        // The list without ours, guarded by the version it was computed from.
        let Ok(Some(node)) = nodes.get_opt(&c.node).await else {
            continue;
        };
        let rest: Vec<&String> = node
            .finalizers()
            .iter()
            .filter(|f| *f != NODE_FINALIZER)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": node.metadata.resource_version,
        }});
        match nodes
            .patch(
                &c.node,
                &super::super::writes::params(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                released += 1;
                tracing::info!(node = %c.node, "removed our finalizer from a node no machine claims");
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
    fn only_old_unclaimed_nodes_with_our_finalizer_are_candidates() {
        let now = "2026-01-01T01:00:00Z".parse().unwrap();
        let old = "2026-01-01T00:00:00Z";
        let mut claimed = Machine::named("a");
        claimed.metadata.labels = Some([("node".to_string(), "machine-a".to_string())].into());
        let machines = [Arc::new(claimed)];
        let nodes = [
            node("machine-a", old, Some("a"), true), // claimed
            node("machine-b", old, Some("b"), true), // orphan
            node("machine-c", "2026-01-01T00:59:00Z", None, true), // too young
            node("machine-d", old, None, false),     // not ours
            node("machine-e", old, None, true),      // orphan, no label
        ];
        let found = candidates(&nodes, &machines, now, Duration::from_secs(20 * 60));
        assert_eq!(
            found,
            [
                Candidate {
                    node: "machine-b".into(),
                    machines: vec!["b".into()]
                },
                Candidate {
                    node: "machine-e".into(),
                    machines: vec!["e".into(), "machine-e".into()]
                },
            ]
        );
    }
}
