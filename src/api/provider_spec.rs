// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The `local` provider spec (`MachineClass.providerSpec`) and its validation.

use serde::Deserialize;

/// What the local driver needs to make a machine Pod. Unknown fields are ignored,
/// as provider-local does.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocalProviderSpec {
    /// Node image the machine Pod runs.
    #[serde(default)]
    pub image: String,
    /// Namespace of the machine Pods; the Machine's namespace when empty.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default, rename = "ipPoolNameV4")]
    pub ip_pool_name_v4: Option<String>,
    #[serde(default, rename = "ipPoolNameV6")]
    pub ip_pool_name_v6: Option<String>,
    /// How the local cloud delays and fails this class's calls, as written;
    /// the driver reads and checks it (`driver::local::profile`).
    #[serde(default)]
    pub cloud_profile: Option<serde_json::Value>,
}

/// A provider spec we cannot work with; the message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("providerSpec is missing")]
    Missing,
    #[error("providerSpec could not be decoded: {0}")]
    Decode(String),
    #[error("providerSpec.image: Required value: the node image must be set")]
    MissingImage,
    #[error("providerSpec.namespace: Invalid value {0:?}: {1}")]
    InvalidNamespace(String, &'static str),
    #[error("providerSpec.{0}: Invalid value {1:?}: must not be empty")]
    EmptyPool(&'static str, String),
}

impl LocalProviderSpec {
    /// Decodes and validates the raw provider spec of a class.
    pub fn parse(raw: &serde_json::Value) -> Result<Self, SpecError> {
        if raw.is_null() {
            return Err(SpecError::Missing);
        }
        let spec: LocalProviderSpec =
            serde_json::from_value(raw.clone()).map_err(|e| SpecError::Decode(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), SpecError> {
        if self.image.trim().is_empty() {
            return Err(SpecError::MissingImage);
        }
        if let Some(ns) = &self.namespace
            && !ns.is_empty()
            && let Err(why) = check_dns_label(ns)
        {
            return Err(SpecError::InvalidNamespace(ns.clone(), why));
        }
        for (field, pool) in [
            ("ipPoolNameV4", &self.ip_pool_name_v4),
            ("ipPoolNameV6", &self.ip_pool_name_v6),
        ] {
            if let Some(p) = pool
                && p.trim().is_empty()
            {
                return Err(SpecError::EmptyPool(field, p.clone()));
            }
        }
        Ok(())
    }

    /// Where the machine's Pod lives.
    pub fn pod_namespace<'a>(&'a self, machine_namespace: &'a str) -> &'a str {
        self.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(machine_namespace)
    }
}

/// RFC 1123 label: what Kubernetes requires of namespace names.
pub fn check_dns_label(value: &str) -> Result<(), &'static str> {
    if value.len() > 63 {
        return Err("must be no more than 63 characters");
    }
    let bytes = value.as_bytes();
    let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    if bytes.is_empty()
        || !bytes.iter().all(ok_char)
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return Err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_a_full_spec_and_ignores_unknown_fields() {
        let spec = LocalProviderSpec::parse(&json!({
            "image": "kindest/node:v1.34.0", "namespace": "shoot", "ipPoolNameV4": "p4", "whatever": 1
        }))
        .unwrap();
        assert_eq!(spec.image, "kindest/node:v1.34.0");
        assert_eq!(spec.pod_namespace("default"), "shoot");
        assert_eq!(spec.ip_pool_name_v4.as_deref(), Some("p4"));
    }

    #[test]
    fn namespace_defaults_to_the_machines() {
        let spec = LocalProviderSpec::parse(&json!({"image": "i"})).unwrap();
        assert_eq!(spec.pod_namespace("default"), "default");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!(null), "providerSpec is missing"),
            (json!({}), "providerSpec.image: Required value"),
            (json!({"image": "  "}), "providerSpec.image: Required value"),
            (json!({"image": 3}), "providerSpec could not be decoded"),
            (
                json!({"image": "i", "namespace": "Bad_NS"}),
                "providerSpec.namespace: Invalid value",
            ),
            (
                json!({"image": "i", "ipPoolNameV6": ""}),
                "providerSpec.ipPoolNameV6",
            ),
        ];
        for (raw, want) in cases {
            let err = LocalProviderSpec::parse(&raw).unwrap_err().to_string();
            assert!(err.starts_with(want), "{raw}: {err}");
        }
    }
}
