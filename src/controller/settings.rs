// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Controller-wide settings and the per-machine values that override them.

use std::time::Duration;

use crate::api::Machine;
use crate::cli::{Options, split_list};
use crate::contract::EFFECTIVE_CREATION_TIMEOUT_ANNOTATION;
use crate::duration;

#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace: String,
    pub creation_timeout: Duration,
    pub health_timeout: Duration,
    pub drain_timeout: Duration,
    pub preserve_timeout: Duration,
    pub in_place_update_timeout: Duration,
    pub max_evict_retries: i32,
    pub node_conditions: Vec<String>,
    pub bootstrap_token_auth_extra_groups: String,
    pub resource_exhausted_retry: Duration,
    pub orphan_vms_period: Duration,
    pub orphan_vms_min_age: Duration,
    /// Not in MCM: how long a VM trouble lasts before it is reported.
    pub vm_trouble_grace: Duration,
    pub apiserver_statuscheck_period: Duration,
    pub apiserver_statuscheck_timeout: Duration,
    pub resync_period: Duration,
}

impl From<&Options> for Settings {
    fn from(o: &Options) -> Self {
        Settings {
            namespace: o.namespace.clone(),
            creation_timeout: o.machine_creation_timeout,
            health_timeout: o.machine_health_timeout,
            drain_timeout: o.machine_drain_timeout,
            preserve_timeout: o.machine_preserve_timeout,
            in_place_update_timeout: o.machine_inplace_update_timeout,
            max_evict_retries: o.machine_max_evict_retries,
            node_conditions: o.node_conditions(),
            bootstrap_token_auth_extra_groups: o.bootstrap_token_auth_extra_groups.clone(),
            resource_exhausted_retry: o.resource_exhausted_retry,
            orphan_vms_period: o.machine_safety_orphan_vms_period,
            orphan_vms_min_age: o.machine_safety_orphan_vms_min_age,
            vm_trouble_grace: o.machine_vm_trouble_grace,
            apiserver_statuscheck_period: o.machine_safety_apiserver_statuscheck_period,
            apiserver_statuscheck_timeout: o.machine_safety_apiserver_statuscheck_timeout,
            resync_period: o.min_resync_period,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from(&<Options as clap::Parser>::parse_from([
            "machine-controller",
        ]))
    }
}

fn first_valid(candidates: &[Option<&str>], fallback: Duration) -> Duration {
    // A value that does not parse is skipped rather than failing the machine:
    // the flag's value is always a sane answer.
    candidates
        .iter()
        .flatten()
        .find_map(|text| duration::parse(text).ok())
        .unwrap_or(fallback)
}

impl Settings {
    /// Annotation, then spec, then flag.
    pub fn creation_timeout(&self, m: &Machine) -> Duration {
        first_valid(
            &[
                m.annotation(EFFECTIVE_CREATION_TIMEOUT_ANNOTATION),
                m.spec.configuration.creation_timeout.as_deref(),
            ],
            self.creation_timeout,
        )
    }
    pub fn health_timeout(&self, m: &Machine) -> Duration {
        first_valid(
            &[m.spec.configuration.health_timeout.as_deref()],
            self.health_timeout,
        )
    }
    pub fn drain_timeout(&self, m: &Machine) -> Duration {
        first_valid(
            &[m.spec.configuration.drain_timeout.as_deref()],
            self.drain_timeout,
        )
    }
    pub fn in_place_update_timeout(&self, m: &Machine) -> Duration {
        first_valid(
            &[m.spec.configuration.in_place_update_timeout.as_deref()],
            self.in_place_update_timeout,
        )
    }
    pub fn preserve_timeout(&self, m: &Machine) -> Duration {
        first_valid(
            &[m.spec.configuration.machine_preserve_timeout.as_deref()],
            self.preserve_timeout,
        )
    }
    pub fn max_evict_retries(&self, m: &Machine) -> i32 {
        m.spec
            .configuration
            .max_evict_retries
            .unwrap_or(self.max_evict_retries)
    }
    pub fn node_conditions(&self, m: &Machine) -> Vec<String> {
        match &m.spec.configuration.node_conditions {
            Some(list) => split_list(list),
            None => self.node_conditions.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_values_override_flags() {
        let s = Settings::default();
        let mut m = Machine::default();
        assert_eq!(s.creation_timeout(&m), Duration::from_secs(1200));
        m.spec.configuration.creation_timeout = Some("5m".into());
        assert_eq!(s.creation_timeout(&m), Duration::from_secs(300));
        m.metadata.annotations = Some(
            [(
                EFFECTIVE_CREATION_TIMEOUT_ANNOTATION.to_string(),
                "1m".to_string(),
            )]
            .into(),
        );
        assert_eq!(s.creation_timeout(&m), Duration::from_secs(60));
        m.spec.configuration.health_timeout = Some("garbage".into());
        assert_eq!(s.health_timeout(&m), Duration::from_secs(600));
        m.spec.configuration.node_conditions = Some("A, B".into());
        assert_eq!(s.node_conditions(&m), ["A", "B"]);
        m.spec.configuration.max_evict_retries = Some(2);
        assert_eq!(s.max_evict_retries(&m), 2);
    }
}
