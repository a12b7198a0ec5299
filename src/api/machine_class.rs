// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::machine_resource;

/// A MachineClass: provider, provider spec and the secrets machines are made with.
/// It has no `spec`: its fields sit at the top level, as in MCM.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineClass {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_template: Option<NodeTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
    /// Raw JSON, interpreted by the driver.
    #[serde(default)]
    pub provider_spec: serde_json::Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}
machine_resource!(MachineClass, "MachineClass", "machineclasses");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplate {
    #[serde(default)]
    pub capacity: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_capacity: Option<BTreeMap<String, Quantity>>,
    #[serde(default)]
    pub instance_type: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

impl MachineClass {
    /// The secrets whose data the driver receives, credentials last so that they win.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretReference> {
        self.secret_ref
            .iter()
            .chain(self.credentials_secret_ref.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let json = serde_json::json!({
            "apiVersion": "machine.sapcloud.io/v1alpha1",
            "kind": "MachineClass",
            "metadata": {"name": "local"},
            "nodeTemplate": {"capacity": {"cpu": "2"}, "virtualCapacity": {"x": "1"}, "instanceType": "local", "region": "r", "zone": "z", "architecture": "amd64"},
            "credentialsSecretRef": {"name": "c", "namespace": "default"},
            "providerSpec": {"image": "img", "extra": [1]},
            "provider": "local",
            "secretRef": {"name": "s", "namespace": "default"}
        });
        let class: MachineClass = serde_json::from_value(json.clone()).unwrap();
        let names: Vec<_> = class.secret_refs().filter_map(|r| r.name.clone()).collect();
        assert_eq!(names, ["s", "c"]);
        assert_eq!(serde_json::to_value(&class).unwrap(), json);
    }
}
