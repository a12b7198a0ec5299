// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A Pod as a drain reads it, for the cache of every Pod of the target.
//!
//! That cache holds every Pod of a cluster, thousands of them. A
//! `k8s_openapi` Pod is 2.2 KB before any of its strings, even with all but a
//! few fields emptied, because its spec and status are inline structs of
//! optional fields; this view is its metadata and node name, decoded straight
//! from the API server's JSON (other fields are skipped while decoding).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Pod's metadata and the node it is bound to; served as `v1` Pods.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PodOnNode {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodOnNodeSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodOnNodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

impl PodOnNode {
    /// The node the Pod is bound to.
    pub fn node_name(&self) -> Option<&str> {
        self.spec.as_ref()?.node_name.as_deref()
    }
}

impl kube::Resource for PodOnNode {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Resource;

    use super::*;

    #[test]
    fn it_is_served_where_pods_are() {
        for ns in [None, Some("app")] {
            assert_eq!(
                PodOnNode::url_path(&(), ns),
                Pod::url_path(&(), ns),
                "namespace {ns:?}"
            );
        }
        assert_eq!(PodOnNode::kind(&()), Pod::kind(&()));
        assert_eq!(PodOnNode::api_version(&()), Pod::api_version(&()));
    }

    #[test]
    fn a_full_pod_decodes_to_its_metadata_and_node() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "app", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"},
        });
        let pod: PodOnNode = serde_json::from_value(json.clone()).unwrap();
        let full: Pod = serde_json::from_value(json).unwrap();
        assert_eq!(pod.metadata, full.metadata);
        assert_eq!(pod.node_name(), Some("n1"));
        let unbound: PodOnNode =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(unbound.node_name(), None);
    }

    #[test]
    fn it_is_far_smaller_than_a_pod() {
        // What makes a cache of every Pod affordable.
        assert!(std::mem::size_of::<PodOnNode>() * 4 < std::mem::size_of::<Pod>());
    }
}
