// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The cloud-wide profile (issue #23): what no one class decides, namely
//! quotas shared by every class (in total, per zone, per instance type) and
//! zone outages. It is a JSON file named by `--cloud-profile`, read again
//! whenever it changes, so that an outage is switched on and off at runtime.
//!
//! A file, not a ConfigMap: it needs no RBAC beyond what Gardener grants MCM,
//! a ConfigMap mounted into a Deployment is such a file (updated in place by
//! the kubelet), and the local cluster's kubelet stand-in reads the same file
//! to take an outage zone's Nodes down. [`CloudWide`] decides from plain
//! values; [`ProfileFile`] reads the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;

use crate::driver::Code;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    quota: RawQuota,
    /// Zone -> the code its Creates answer while it is out.
    #[serde(default)]
    outages: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawQuota {
    total: Option<u32>,
    #[serde(default)]
    per_zone: BTreeMap<String, u32>,
    #[serde(default)]
    per_instance_type: BTreeMap<String, u32>,
}

/// A checked cloud-wide profile; the default has no quota and no outage.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CloudWide {
    total: Option<u32>,
    per_zone: BTreeMap<String, u32>,
    per_instance_type: BTreeMap<String, u32>,
    outages: BTreeMap<String, Code>,
}

/// Where a VM runs and what it is, as the quotas count it (from the class's
/// `nodeTemplate`; empty when the class names none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape<'a> {
    pub zone: &'a str,
    pub instance_type: &'a str,
}

/// Why one more VM may not be made: the rule (for the log and the count) and
/// the cloud's words.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: Code,
    pub rule: String,
    pub message: String,
}

impl CloudWide {
    /// Reads and checks the file's text; the message names what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut outages = BTreeMap::new();
        for (zone, code) in raw.outages {
            match Code::parse(&code) {
                Some(Code::Ok) | None => {
                    return Err(format!(
                        "outages.{zone}: {code:?} is not an error code (for example Unavailable or ResourceExhausted)"
                    ));
                }
                Some(code) => outages.insert(zone, code),
            };
        }
        Ok(CloudWide {
            total: raw.quota.total,
            per_zone: raw.quota.per_zone,
            per_instance_type: raw.quota.per_instance_type,
            outages,
        })
    }

    /// Whether any quota is set (only then are VMs counted).
    pub(crate) fn has_quota(&self) -> bool {
        self.total.is_some() || !self.per_zone.is_empty() || !self.per_instance_type.is_empty()
    }

    /// Refuses a Create in a zone that is out.
    pub(crate) fn outage(&self, zone: &str) -> Option<Refusal> {
        let code = *self.outages.get(zone)?;
        Some(Refusal {
            code,
            rule: format!("outages.{zone} {code}"),
            message: format!("zone {zone:?} is unavailable (outage)"),
        })
    }

    /// Refuses one more VM of `new` when the VMs that exist (`existing`, not
    /// counting `new` itself) fill a quota it falls under.
    pub(crate) fn admit<'a>(
        &self,
        new: Shape<'_>,
        existing: impl IntoIterator<Item = Shape<'a>>,
    ) -> Result<(), Refusal> {
        let (mut all, mut in_zone, mut of_type) = (0u64, 0u64, 0u64);
        for vm in existing {
            all += 1;
            in_zone += u64::from(vm.zone == new.zone);
            of_type += u64::from(vm.instance_type == new.instance_type);
        }
        let checks = [
            (
                self.total,
                all,
                "quota.total".to_string(),
                "instances".to_string(),
            ),
            (
                self.per_zone.get(new.zone).copied(),
                in_zone,
                format!("quota.perZone.{}", new.zone),
                format!("instances in zone {:?}", new.zone),
            ),
            (
                self.per_instance_type.get(new.instance_type).copied(),
                of_type,
                format!("quota.perInstanceType.{}", new.instance_type),
                format!("instances of type {:?}", new.instance_type),
            ),
        ];
        for (quota, used, rule, what) in checks {
            if let Some(quota) = quota
                && used >= u64::from(quota)
            {
                return Err(Refusal {
                    code: Code::ResourceExhausted,
                    message: format!("quota exceeded: {used} of {quota} {what} are in use"),
                    rule: format!("{rule} {quota}"),
                });
            }
        }
        Ok(())
    }
}

/// The file behind `--cloud-profile`, read again when its modification time
/// or size changes. A file that cannot be read or parsed keeps the last good
/// profile and is logged once per change; a missing file is no profile.
pub(crate) struct ProfileFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    /// What the file looked like when last looked at (`Some(None)`: missing);
    /// `None` before the first look.
    stamp: Option<Option<(SystemTime, u64)>>,
    profile: Arc<CloudWide>,
}

impl ProfileFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        ProfileFile {
            path,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// The profile as the file says now.
    pub(crate) fn current(&self) -> Arc<CloudWide> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.stamp == Some(stamp) {
            return loaded.profile.clone();
        }
        loaded.stamp = Some(stamp);
        let path = self.path.display();
        if stamp.is_none() {
            tracing::info!(%path, "no cloud-wide profile file: no shared quota, no outage");
            loaded.profile = Arc::default();
            return loaded.profile.clone();
        }
        match std::fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|text| CloudWide::parse(&text))
        {
            Ok(profile) => {
                tracing::info!(%path, ?profile, "cloud-wide profile loaded");
                loaded.profile = Arc::new(profile);
            }
            Err(why) => tracing::error!(
                %path,
                "cloud-wide profile not used, the last good one stays: {why}"
            ),
        }
        loaded.profile.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape<'a>(zone: &'a str, instance_type: &'a str) -> Shape<'a> {
        Shape {
            zone,
            instance_type,
        }
    }

    #[test]
    fn quotas_count_in_total_per_zone_and_per_instance_type() {
        let p = CloudWide::parse(
            r#"{"quota": {"total": 5, "perZone": {"z1": 2}, "perInstanceType": {"big": 1}}}"#,
        )
        .unwrap();
        assert!(p.has_quota());
        let existing = [shape("z1", "small"), shape("z2", "big")];
        // z1 has one of two: fine; another zone: fine.
        assert!(p.admit(shape("z1", "small"), existing).is_ok());
        assert!(p.admit(shape("z3", "small"), existing).is_ok());
        // The only "big" is taken.
        let big = p.admit(shape("z3", "big"), existing).unwrap_err();
        assert_eq!(big.code, Code::ResourceExhausted);
        assert_eq!(big.rule, "quota.perInstanceType.big 1");
        assert_eq!(
            big.message,
            "quota exceeded: 1 of 1 instances of type \"big\" are in use"
        );
        let full_zone = [shape("z1", "small"), shape("z1", "small")];
        assert_eq!(
            p.admit(shape("z1", "small"), full_zone).unwrap_err().rule,
            "quota.perZone.z1 2"
        );
        let five = [shape("z2", "small"); 5];
        assert_eq!(
            p.admit(shape("z3", "small"), five).unwrap_err().rule,
            "quota.total 5"
        );
    }

    #[test]
    fn an_outage_refuses_its_zone_only_with_its_code() {
        let p = CloudWide::parse(r#"{"outages": {"z2": "ResourceExhausted"}}"#).unwrap();
        assert!(!p.has_quota());
        assert_eq!(p.outage("z1"), None);
        let r = p.outage("z2").unwrap();
        assert_eq!(r.code, Code::ResourceExhausted);
        assert_eq!(r.message, "zone \"z2\" is unavailable (outage)");
        assert_eq!(r.rule, "outages.z2 ResourceExhausted");
    }

    #[test]
    fn the_sample_profile_is_one_the_driver_takes() {
        let sample = CloudWide::parse(include_str!("../../../kubernetes/cloud-profile.json"))
            .expect("kubernetes/cloud-profile.json");
        assert!(sample.has_quota());
        assert_eq!(
            sample.outage("local-b").map(|r| r.code),
            Some(Code::Unavailable)
        );
    }

    #[test]
    fn a_wrong_file_is_refused_with_what_is_wrong() {
        assert!(
            CloudWide::parse(r#"{"outages": {"z2": "Down"}}"#)
                .unwrap_err()
                .starts_with("outages.z2: \"Down\" is not an error code")
        );
        assert!(
            CloudWide::parse(r#"{"quota": {"perzone": {}}}"#)
                .unwrap_err()
                .contains("unknown field `perzone`")
        );
        assert_eq!(CloudWide::parse("{}").unwrap(), CloudWide::default());
    }

    #[test]
    fn the_file_is_read_again_when_it_changes_and_a_bad_edit_keeps_the_last_good_one() {
        let dir = std::env::temp_dir().join(format!("cloud-wide-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cloud.json");
        let file = ProfileFile::new(path.clone());
        assert_eq!(*file.current(), CloudWide::default());
        std::fs::write(&path, r#"{"outages": {"z1": "Unavailable"}}"#).unwrap();
        assert!(file.current().outage("z1").is_some());
        // A different size is a change even within the clock's resolution.
        std::fs::write(&path, r#"{"outages": {"z1": "Nope!"}}"#).unwrap();
        assert!(file.current().outage("z1").is_some(), "the last good one");
        std::fs::write(&path, "{}").unwrap();
        assert!(file.current().outage("z1").is_none());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(*file.current(), CloudWide::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
