// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Machine status changes, decided as values; [`super::writes`] writes them.

use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::Machine;
use crate::contract::{OpState, OpType, Phase};

/// A lastOperation/phase pair to write, with optional new conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    pub description: String,
    pub error_code: String,
    pub state: OpState,
    pub op: OpType,
    /// `None` keeps the current phase (deletion steps do).
    pub phase: Option<Phase>,
    pub timeout_active: bool,
    pub conditions: Option<Vec<NodeCondition>>,
    /// Written only without a target cluster, where no Node reports them.
    pub addresses: Option<Vec<NodeAddress>>,
}

impl StatusChange {
    pub fn new(description: impl Into<String>, state: OpState, op: OpType) -> Self {
        StatusChange {
            description: description.into(),
            error_code: String::new(),
            state,
            op,
            phase: None,
            timeout_active: false,
            conditions: None,
            addresses: None,
        }
    }
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.error_code = code.into();
        self
    }
    pub fn timeout_active(mut self) -> Self {
        self.timeout_active = true;
        self
    }
    pub fn addresses(mut self, addresses: Vec<NodeAddress>) -> Self {
        self.addresses = Some(addresses);
        self
    }
    pub fn conditions(mut self, conditions: Vec<NodeCondition>) -> Self {
        self.conditions = Some(conditions);
        self
    }

    /// True when writing this would change nothing but timestamps, so that a
    /// repeated decision does not wake every watcher of the machine.
    pub fn is_noop_for(&self, machine: &Machine) -> bool {
        let lo = &machine.status.last_operation;
        let cs = &machine.status.current_status;
        lo.description == self.description
            && lo.error_code == self.error_code
            && lo.state.as_ref() == Some(&self.state)
            && lo.type_.as_ref() == Some(&self.op)
            && self.phase.as_ref().is_none_or(|p| {
                cs.phase.as_ref() == Some(p) && cs.timeout_active == self.timeout_active
            })
            && self
                .conditions
                .as_ref()
                .is_none_or(|c| *c == machine.status.conditions)
            && self
                .addresses
                .as_ref()
                .is_none_or(|a| *a == machine.status.addresses)
    }
}

pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CurrentStatus, LastOperation};

    #[test]
    fn a_repeated_decision_is_a_noop() {
        let change = StatusChange::new(
            "Creating machine on cloud provider",
            OpState::Processing,
            OpType::Create,
        )
        .phase(Phase::Pending)
        .timeout_active();
        let mut machine = Machine::default();
        assert!(!change.is_noop_for(&machine));
        machine.status.last_operation = LastOperation {
            description: change.description.clone(),
            state: Some(OpState::Processing),
            type_: Some(OpType::Create),
            last_update_time: Some(now()),
            ..Default::default()
        };
        machine.status.current_status = CurrentStatus {
            phase: Some(Phase::Pending),
            timeout_active: true,
            ..Default::default()
        };
        assert!(change.is_noop_for(&machine));
        let other = change.clone().code("NotFound");
        assert!(!other.is_noop_for(&machine));
    }
}
