// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Pods as our caches read them: a drain (every Pod of the target) and the
//! local driver (the machine Pods).
//!
//! Each cache holds thousands of Pods. A `k8s_openapi` Pod is 2.2 KB before
//! any of its strings, even with all but a few fields emptied, because its spec
//! and status are inline structs of optional fields. These views are decoded
//! straight from the API server's JSON (the fields they lack are skipped while
//! decoding) and served where Pods are.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
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

/// A machine Pod as the local driver reads it: its metadata and status (its
/// spec is the driver's own, and the larger part of it).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PodWithStatus {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

impl From<Pod> for PodWithStatus {
    fn from(pod: Pod) -> Self {
        PodWithStatus {
            metadata: pod.metadata,
            status: pod.status,
        }
    }
}

/// Serves a view as `v1` Pods.
macro_rules! served_as_pods {
    ($ty:ty) => {
        impl kube::Resource for $ty {
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
    };
}
served_as_pods!(PodOnNode);
served_as_pods!(PodWithStatus);

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;

    #[test]
    fn they_are_served_where_pods_are() {
        for ns in [None, Some("app")] {
            assert_eq!(PodOnNode::url_path(&(), ns), Pod::url_path(&(), ns));
            assert_eq!(PodWithStatus::url_path(&(), ns), Pod::url_path(&(), ns));
        }
        assert_eq!(PodOnNode::kind(&()), Pod::kind(&()));
        assert_eq!(PodWithStatus::api_version(&()), Pod::api_version(&()));
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
    fn a_full_pod_decodes_to_its_metadata_and_status() {
        let json = serde_json::json!({
            "metadata": {"name": "machine-a", "namespace": "ns"},
            "spec": {"containers": [{"name": "node", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        });
        let pod: PodWithStatus = serde_json::from_value(json.clone()).unwrap();
        let full: Pod = serde_json::from_value(json).unwrap();
        assert_eq!(pod, PodWithStatus::from(full));
        assert_eq!(pod.status.unwrap().pod_ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn they_are_far_smaller_than_a_pod() {
        // What makes a cache of thousands affordable.
        assert!(std::mem::size_of::<PodOnNode>() * 4 < std::mem::size_of::<Pod>());
        assert!(std::mem::size_of::<PodWithStatus>() * 2 < std::mem::size_of::<Pod>());
    }
}
