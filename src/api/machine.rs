// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer, Serialize};

use super::machine_resource;
use crate::contract::{OpState, OpType, Phase};

/// A Machine: one VM that should join the target cluster as one Node.
///
/// Decoding never fails on a malformed spec or status: the object comes back with
/// its metadata and [`Machine::parse_error`] set, so that one bad Machine is
/// reported and skipped instead of failing the list of all of them.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: MachineSpec,
    #[serde(default)]
    pub status: MachineStatus,
    /// Why the spec or status could not be decoded, if they could not.
    #[serde(skip)]
    pub parse_error: Option<String>,
}

/// The wire form, decoded strictly.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MachineWire {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: MachineSpec,
    #[serde(default)]
    status: MachineStatus,
}

impl<'de> Deserialize<'de> for Machine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match MachineWire::deserialize(&value) {
            Ok(w) => Ok(Machine {
                api_version: w.api_version,
                kind: w.kind,
                metadata: w.metadata,
                spec: w.spec,
                status: w.status,
                parse_error: None,
            }),
            Err(e) => {
                // Metadata is the API server's and always decodes; without it we
                // could not even say which machine is broken.
                let metadata = value
                    .get("metadata")
                    .and_then(|m| ObjectMeta::deserialize(m).ok())
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!("machine without readable metadata: {e}"))
                    })?;
                Ok(Machine {
                    metadata,
                    parse_error: Some(e.to_string()),
                    ..Default::default()
                })
            }
        }
    }
}
machine_resource!(Machine, "Machine", "machines");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    #[serde(default)]
    pub class: ClassSpec,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        rename = "providerID"
    )]
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_template: Option<NodeTemplateSpec>,
    #[serde(flatten)]
    pub configuration: MachineConfiguration,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClassSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

/// Labels, annotations and taints to keep on the Node.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct NodeTemplateSpec {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
}

/// Per-machine overrides of the controller's flags. Durations are Go duration
/// strings (`"20m"`, `"1h30m0s"`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MachineConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_preserve_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_health_timeout: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_evict_retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_conditions: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<NodeCondition>,
    #[serde(default)]
    pub last_operation: LastOperation,
    #[serde(default)]
    pub current_status: CurrentStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_known_state: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastOperation {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(
        default,
        deserialize_with = "non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub state: Option<OpState>,
    #[serde(
        default,
        rename = "type",
        deserialize_with = "non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<OpType>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CurrentStatus {
    #[serde(
        default,
        deserialize_with = "non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub timeout_active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_expiry_time: Option<Time>,
}

/// MCM writes these names with `omitempty`, so an empty one is none at all; as
/// `None` it is left out again when we write, as MCM would.
fn non_empty<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.filter(|s| !s.is_empty()).map(T::from))
}

impl Machine {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    }
    /// `None` while no phase was written (a machine not yet created).
    pub fn phase(&self) -> Option<&Phase> {
        self.status.current_status.phase.as_ref()
    }
    pub fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
    /// When the current status (the phase) was last written.
    pub fn status_updated_at(&self) -> Option<&jiff::Timestamp> {
        self.status
            .current_status
            .last_update_time
            .as_ref()
            .map(|t| &t.0)
    }
    /// The node name recorded on the machine (label `node`), if any.
    pub fn node_name(&self) -> Option<&str> {
        self.label(crate::contract::NODE_LABEL)
            .filter(|n| !n.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let json = serde_json::json!({
            "apiVersion": "machine.sapcloud.io/v1alpha1",
            "kind": "Machine",
            "metadata": {"name": "m1", "namespace": "default", "labels": {"node": "machine-m1"}},
            "spec": {
                "class": {"kind": "MachineClass", "name": "local", "apiGroup": "machine.sapcloud.io"},
                "providerID": "machine-m1",
                "nodeTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}},
                "drainTimeout": "2h",
                "healthTimeout": "10m",
                "creationTimeout": "20m",
                "inPlaceUpdateTimeout": "5m",
                "machinePreserveTimeout": "1h",
                "disableHealthTimeout": true,
                "maxEvictRetries": 3,
                "nodeConditions": "KernelDeadlock"
            },
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "lastOperation": {"description": "d", "errorCode": "NotFound", "lastUpdateTime": "2026-01-01T00:00:00Z", "state": "Failed", "type": "Create"},
                "currentStatus": {"phase": "Pending", "timeoutActive": true, "lastUpdateTime": "2026-01-01T00:00:00Z", "preserveExpiryTime": "2026-01-02T00:00:00Z"},
                "lastKnownState": "s"
            }
        });
        let machine: Machine = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(machine.spec.configuration.max_evict_retries, Some(3));
        assert_eq!(machine.node_name(), Some("machine-m1"));
        assert_eq!(serde_json::to_value(&machine).unwrap(), json);
    }

    #[test]
    fn names_we_do_not_know_are_kept_exactly() {
        let json = serde_json::json!({
            "metadata": {"name": "m"},
            "spec": {"class": {"name": "c"}},
            "status": {
                "lastOperation": {"state": "Paused", "type": "Rebuild"},
                "currentStatus": {"phase": "Hibernating", "timeoutActive": false}
            }
        });
        let machine: Machine = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(machine.parse_error, None);
        assert_eq!(machine.phase(), Some(&Phase::Other("Hibernating".into())));
        let lo = &machine.status.last_operation;
        assert_eq!(lo.state, Some(OpState::Other("Paused".into())));
        assert_eq!(lo.type_, Some(OpType::Other("Rebuild".into())));
        assert_eq!(serde_json::to_value(&machine).unwrap(), json);
    }

    #[test]
    fn empty_names_are_none_and_stay_unwritten() {
        let machine: Machine = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "m"},
            "status": {
                "lastOperation": {"state": "", "type": null},
                "currentStatus": {"phase": ""}
            }
        }))
        .unwrap();
        assert_eq!(machine.parse_error, None);
        assert_eq!(machine.phase(), None);
        assert_eq!(machine.status.last_operation.state, None);
        assert_eq!(machine.status.last_operation.type_, None);
        let status = serde_json::to_value(&machine.status).unwrap();
        assert_eq!(status["lastOperation"], serde_json::json!({}));
        assert_eq!(status["currentStatus"].get("phase"), None);
    }

    #[test]
    fn a_malformed_machine_decodes_with_its_error() {
        let json = serde_json::json!({
            "metadata": {"name": "broken", "namespace": "default"},
            "spec": {"class": {"name": "c"}, "maxEvictRetries": "lots"}
        });
        let machine: Machine = serde_json::from_value(json).unwrap();
        assert_eq!(machine.name(), "broken");
        let error = machine.parse_error.unwrap();
        assert!(error.contains("invalid type"), "{error}");
        let list: Vec<Machine> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "good"}},
            {"metadata": {"name": "bad"}, "status": {"conditions": "no"}}
        ]))
        .unwrap();
        assert_eq!(list[0].parse_error, None);
        assert!(list[1].parse_error.is_some());
    }

    #[test]
    fn a_bare_machine_parses() {
        let machine: Machine =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "m"}})).unwrap();
        assert_eq!(machine.phase(), None);
        assert_eq!(machine.node_name(), None);
    }
}
