// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Every write to a Node, the twin of [`crate::controller::writes`] for
//! Machines: one field manager, one rule for conditions, and each write
//! skipped when the Node already is as asked.

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::api::{DeleteParams, Patch};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value as Json, json};

use crate::client::{ignore_not_found, patch_params as params};
use crate::contract::NODE_FINALIZER;

/// The target's Nodes, for writing.
pub(crate) struct NodeWrites(Api<Node>);

impl NodeWrites {
    pub(crate) fn new(target: Client) -> Self {
        NodeWrites(Api::all(target))
    }

    /// Replaces the condition of `condition`'s type and leaves the others alone.
    pub(crate) async fn set_condition(
        &self,
        node: &str,
        condition: NodeCondition,
    ) -> kube::Result<()> {
        let patch = condition_patch(condition);
        self.0
            .patch_status(node, &params(), &Patch::Strategic(&patch))
            .await?;
        Ok(())
    }

    /// Marks `node` unschedulable (a cordon) or schedulable again; says
    /// whether it wrote, which it does only if the Node is not so already.
    pub(crate) async fn set_unschedulable(&self, node: &Node, on: bool) -> kube::Result<bool> {
        let now = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
        if now == on {
            return Ok(false);
        }
        let patch = json!({"spec": {"unschedulable": on}});
        self.0
            .patch(&node.name_any(), &params(), &Patch::Merge(&patch))
            .await?;
        Ok(true)
    }

    /// Takes our finalizer, and only ours, off `node` if it carries it. The
    /// strategic merge directive deletes one entry of the list on the server, so
    /// neither a stale copy nor another controller's finalizer is in the way.
    pub(crate) async fn remove_finalizer(&self, node: &Node) -> kube::Result<()> {
        if !node.finalizers().iter().any(|f| f == NODE_FINALIZER) {
            return Ok(());
        }
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [NODE_FINALIZER]}});
        ignore_not_found(
            self.0
                .patch(&node.name_any(), &params(), &Patch::Strategic(&patch))
                .await,
        )
    }

    /// A JSON merge patch of the Node: annotations, labels, a guarded release.
    pub(crate) async fn merge(&self, node: &str, patch: &Json) -> kube::Result<()> {
        self.0.patch(node, &params(), &Patch::Merge(patch)).await?;
        Ok(())
    }

    /// A JSON merge patch of the Node's status (its capacity).
    pub(crate) async fn merge_status(&self, node: &str, patch: &Json) -> kube::Result<()> {
        self.0
            .patch_status(node, &params(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// A strategic merge patch of the Node: lists with a patch strategy
    /// (finalizers, taints' keys) merge instead of being replaced.
    pub(crate) async fn merge_strategic(&self, node: &str, patch: &Json) -> kube::Result<()> {
        self.0
            .patch(node, &params(), &Patch::Strategic(patch))
            .await?;
        Ok(())
    }

    /// Deletes the Node; the answer is the Node as it now is while finalizers
    /// hold it, none once it is gone.
    pub(crate) async fn delete(&self, node: &str) -> kube::Result<Option<Node>> {
        let answer = self.0.delete(node, &DeleteParams::default()).await?;
        Ok(answer.left())
    }

    /// The Node as the API server has it now, not as cached.
    pub(crate) async fn read(&self, node: &str) -> kube::Result<Option<Node>> {
        self.0.get_opt(node).await
    }
}

/// The patch that sets `condition` on a Node: a strategic merge keyed by type
/// leaves the other conditions alone, but would keep whatever field of this one
/// it leaves out, so its message and reason are always written. MCM replaces
/// the condition whole (`CloneAndAddCondition`): once preservation stopped, no
/// message may still say "drained successfully", or the next preservation of
/// the machine would neither drain nor cordon its Node.
pub(crate) fn condition_patch(mut condition: NodeCondition) -> Json {
    condition.message.get_or_insert_default();
    condition.reason.get_or_insert_default();
    json!({"status": {"conditions": [condition]}})
}
