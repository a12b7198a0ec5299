// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What creation does next, decided as MCM v0.62.1's `triggerCreationFlow`
//! decides it: from GetMachineStatus's answer ([`after_status`]), from
//! CreateMachine's or InitializeMachine's ([`after_call`]), what is recorded of
//! the VM ([`record`]), how a driver error ([`failure`]) or bad input
//! ([`invalid`]) is reported. Pure: the machine, the driver's answers, the Node
//! of the VM's name and the clock are passed in; [`super::run`] gathers them and
//! carries the plans out.
//!
//! Long because: every branch of MCM's creation flow and its texts are decided
//! here, and more than half is their tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeAddress};
use serde_json::json;

use crate::api::Machine;
use crate::contract::{
    DEFAULT_MACHINE_PRIORITY, MACHINE_PRIORITY_ANNOTATION, NODE_LABEL, OpState, OpType, Phase, text,
};
use crate::controller::context::InputError;
use crate::controller::error::retry;
use crate::controller::events::{EventType, Note};
use crate::controller::settings::Settings;
use crate::controller::status::StatusChange;
use crate::driver::{Code, DriverResult, MachineError, MachineResponse};
use crate::duration::age;

/// What the decisions read besides the machine and the driver's answers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Given<'a> {
    pub settings: &'a Settings,
    /// A target cluster is where the VM's Node joins; without one the VM is all
    /// there is.
    pub with_target: bool,
    pub now: jiff::Timestamp,
}

/// The driver call that makes a VM complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// No VM, and none recorded on the machine: CreateMachine.
    Create,
    /// The VM exists but is incomplete (say, a crash cut its creation short):
    /// InitializeMachine.
    Initialize,
}

/// What GetMachineStatus's answer leads to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Start {
    /// Make the VM complete with this call. Its user data carries a bootstrap
    /// token made only now, so that an invalid class never gets one.
    Call(Call),
    /// The VM is there (or recorded on the machine): record it.
    Record(Record),
    /// The driver failed.
    Fail(Failure),
}

/// What CreateMachine's or InitializeMachine's answer leads to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Made {
    /// Say in an Event that the VM is made, then record it.
    Record { event: Note, record: Record },
    /// The new VM took the name of a leftover Node.
    Stale(Stale),
    /// The driver failed.
    Fail(Failure),
}

/// What is recorded of a VM.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Record {
    /// The driver left the providerID (or, with a target, the node name) empty:
    /// MCM's Internal error, retried as a failed reconcile.
    Empty(MachineError),
    /// Patch the machine's metadata if anything is missing, then finish.
    Write {
        patch: Option<serde_json::Value>,
        finish: Finish,
    },
}

/// The status a recorded VM leads to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Finish {
    /// Write this status: Pending with a target, Available without. No Event:
    /// the "Created" one says as much, and every Event costs the API server a
    /// write per machine.
    Status(StatusChange),
    /// Without a target the VM's addresses are how one reaches it (`gardenadm
    /// bootstrap` connects to them): a VM without an IP yet is looked at again
    /// when its watch reports one, as gardener's provider-local waits for the
    /// Pod to run before it answers.
    WaitForAddress,
    /// The machine is past creation: nothing more.
    Done,
}

impl Finish {
    /// When to look at the machine again.
    pub(crate) fn retry(&self) -> Duration {
        match self {
            Finish::WaitForAddress => retry::SHORT,
            Finish::Status(_) | Finish::Done => retry::LONG,
        }
    }
}

/// A new VM took the name of a leftover Node: the VM goes again and the
/// machine is Failed, for its MachineSet to replace, as MCM does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stale {
    /// The VM to delete.
    pub vm: MachineResponse,
    pub change: StatusChange,
    /// Published if the status was written.
    pub event: Note,
    pub retry: Duration,
}

/// A driver error, recorded as MCM's `machineCreateErrorHandler` does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Failure {
    pub error: MachineError,
    pub change: StatusChange,
    /// Published if the status was written.
    pub event: Note,
    pub retry: Duration,
}

/// What input that keeps the machine from being created does to it. A watch
/// on the class and its secrets brings the machine back when it is fixed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Invalid {
    /// A machine that exists is not demoted because its class went away: only
    /// this Event.
    Warn(Note),
    /// Record the failure; the Event is published if the status was written.
    Fail { change: StatusChange, event: Note },
}

impl Invalid {
    pub(crate) fn retry(&self) -> Duration {
        retry::MEDIUM
    }
}

/// The next step after GetMachineStatus, by its answer or error code.
pub(crate) fn after_status(
    machine: &Machine,
    answer: DriverResult<MachineResponse>,
    given: &Given<'_>,
) -> Start {
    match answer {
        Ok(vm) => Start::Record(record(machine, vm, given.with_target)),
        Err(e) if matches!(e.code, Code::NotFound | Code::Unimplemented) => {
            if machine.spec.provider_id.is_empty() {
                return Start::Call(Call::Create);
            }
            // A providerID means a VM, as MCM takes it, without asking again.
            let vm = MachineResponse {
                node_name: machine.node_name().unwrap_or_default().to_string(),
                provider_id: machine.spec.provider_id.clone(),
                ..Default::default()
            };
            Start::Record(record(machine, vm, given.with_target))
        }
        Err(e) if e.code == Code::Uninitialized => Start::Call(Call::Initialize),
        Err(e) => Start::Fail(failure(machine, e, given)),
    }
}

/// The next step after CreateMachine or InitializeMachine. `node` is the Node
/// named like the VM, if there is one: a new VM may have taken a leftover's name.
pub(crate) fn after_call(
    machine: &Machine,
    call: Call,
    answer: DriverResult<MachineResponse>,
    node: Option<&Node>,
    given: &Given<'_>,
) -> Made {
    let vm = match answer {
        Ok(vm) => vm,
        Err(e) => return Made::Fail(failure(machine, e, given)),
    };
    let name = machine.name();
    if call == Call::Create && stale_node(node, &vm, name) {
        return Made::Stale(stale(machine, vm));
    }
    let (reason, verb) = match call {
        Call::Create => ("Created", "Created"),
        Call::Initialize => ("Initialized", "Completed"),
    };
    let event = note(
        EventType::Normal,
        reason,
        format!("{verb} VM {} for machine {name}", vm.provider_id),
    );
    Made::Record {
        event,
        record: record(machine, vm, given.with_target),
    }
}

/// What is written of a complete VM: providerID, node label and priority,
/// then the first status, while the machine has none or is in CrashLoopBackOff.
pub(crate) fn record(machine: &Machine, vm: MachineResponse, with_target: bool) -> Record {
    let MachineResponse {
        node_name,
        provider_id,
        addresses,
        ..
    } = vm;
    if provider_id.is_empty() || (with_target && node_name.is_empty()) {
        let message = text::empty_after_creation(machine.name(), &node_name, &provider_id);
        return Record::Empty(MachineError::new(Code::Internal, message));
    }
    let patch = labels_patch(machine, &node_name, &provider_id, with_target);
    let finish = if !matches!(machine.phase(), None | Some(Phase::CrashLoopBackOff)) {
        Finish::Done
    } else if with_target {
        Finish::Status(
            StatusChange::new(text::CREATING, OpState::Processing, OpType::Create)
                .phase(Phase::Pending)
                .timeout_active(),
        )
    } else if !has_ip(&addresses) {
        Finish::WaitForAddress
    } else {
        Finish::Status(
            StatusChange::new(text::CREATED, OpState::Successful, OpType::Create)
                .phase(Phase::Available)
                .addresses(address_status(addresses, &node_name)),
        )
    };
    Record::Write { patch, finish }
}

/// A provider failure as MCM records it: CrashLoopBackOff, or Failed past the
/// creation timeout, and a retry by its code.
pub(crate) fn failure(machine: &Machine, error: MachineError, given: &Given<'_>) -> Failure {
    let phase = failure_phase(machine, given.settings.creation_timeout(machine), given.now);
    let change = StatusChange::new(
        text::cloud_provider_message(&error),
        OpState::Failed,
        OpType::Create,
    )
    .code(error.code.as_str())
    .phase(phase);
    Failure {
        event: note(
            EventType::Warning,
            "CreateFailed",
            change.description.clone(),
        ),
        retry: failure_retry(error.code, given.settings.resource_exhausted_retry),
        error,
        change,
    }
}

/// The VM of a stale Node goes; the machine is Failed.
pub(crate) fn stale(machine: &Machine, vm: MachineResponse) -> Stale {
    let message = format!(
        "Node {} existed before the VM of machine {}: the VM is deleted",
        vm.node_name,
        machine.name()
    );
    Stale {
        vm,
        change: StatusChange::new(text::STALE_NODE, OpState::Failed, OpType::Create)
            .phase(Phase::Failed),
        event: note(EventType::Warning, "Failed", message),
        retry: retry::LONG,
    }
}

/// Input that keeps the machine from being created.
pub(crate) fn invalid(machine: &Machine, problem: &InputError, given: &Given<'_>) -> Invalid {
    let description = problem.to_string();
    if matches!(
        machine.phase(),
        Some(Phase::Running | Phase::Unknown | Phase::Pending | Phase::Available)
    ) {
        return Invalid::Warn(Note {
            action: "Reconcile".into(),
            ..note(EventType::Warning, "InvalidInput", description)
        });
    }
    let phase = failure_phase(machine, given.settings.creation_timeout(machine), given.now);
    Invalid::Fail {
        change: StatusChange::new(description.clone(), OpState::Failed, OpType::Create)
            .code(Code::InvalidArgument.as_str())
            .phase(phase),
        event: note(EventType::Warning, "InvalidInput", description),
    }
}

/// An Event of the creation flow.
fn note(type_: EventType, reason: &str, message: String) -> Note {
    Note {
        type_,
        reason: reason.into(),
        action: "CreateMachine".into(),
        message,
    }
}

/// The phase a failed creation puts the machine in.
pub(crate) fn failure_phase(
    machine: &Machine,
    creation_timeout: Duration,
    now: jiff::Timestamp,
) -> Phase {
    let created = machine.metadata.creation_timestamp.as_ref().map(|t| &t.0);
    if age(created, now) > creation_timeout {
        Phase::Failed
    } else {
        Phase::CrashLoopBackOff
    }
}

/// How long to wait after a driver error, as MCM's `machineCreateErrorHandler` does.
/// `--resource-exhausted-retry=0` means MCM's long retry there, not at once.
pub(crate) fn failure_retry(code: Code, resource_exhausted_retry: Duration) -> Duration {
    match code {
        Code::ResourceExhausted if resource_exhausted_retry.is_zero() => retry::LONG,
        Code::ResourceExhausted => resource_exhausted_retry,
        c if c.is_transient() => retry::SHORT,
        _ => retry::MEDIUM,
    }
}

/// MCM's check after CreateMachine: a Node that already bears the new VM's node
/// name (other than the machine's own name) is a leftover, and the VM would be
/// taken for it. Only a Node made before the VM counts (timestamps are whole
/// seconds, so strictly before): one the VM itself registered meanwhile is
/// never taken for stale, which MCM, without the VM's creation time, cannot
/// tell (gardener's Go driver trips on it when a Node joins within its 5 s poll).
pub(crate) fn stale_node(node: Option<&Node>, vm: &MachineResponse, machine: &str) -> bool {
    let Some(node) = node else {
        return false;
    };
    let node_created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    vm.node_name != machine
        && matches!((node_created, vm.created), (Some(n), Some(v)) if n.as_second() < v.as_second())
}

/// The metadata patch that records the VM on the machine, if anything is missing.
pub fn labels_patch(
    machine: &Machine,
    node_name: &str,
    provider_id: &str,
    with_target: bool,
) -> Option<serde_json::Value> {
    let node_missing = with_target && machine.label(NODE_LABEL).is_none_or(str::is_empty);
    let priority_missing = machine
        .annotation(MACHINE_PRIORITY_ANNOTATION)
        .is_none_or(str::is_empty);
    if !node_missing && !priority_missing && !machine.spec.provider_id.is_empty() {
        return None;
    }
    let mut patch = json!({
        "metadata": {"resourceVersion": machine.metadata.resource_version},
        "spec": {"providerID": provider_id},
    });
    if with_target {
        patch["metadata"]["labels"] = json!({ NODE_LABEL: node_name });
    }
    if priority_missing {
        patch["metadata"]["annotations"] =
            json!({ MACHINE_PRIORITY_ANNOTATION: DEFAULT_MACHINE_PRIORITY });
    }
    Some(patch)
}

fn has_ip(addresses: &[NodeAddress]) -> bool {
    addresses.iter().any(|a| a.type_ != "Hostname")
}

/// MCM's `buildAddressStatus`: the VM's addresses and the node name as
/// Hostname, without repeats, sorted by type and address.
pub(crate) fn address_status(mut addresses: Vec<NodeAddress>, node_name: &str) -> Vec<NodeAddress> {
    if !node_name.is_empty() {
        addresses.push(NodeAddress {
            type_: "Hostname".into(),
            address: node_name.into(),
        });
    }
    addresses.sort_by_cached_key(|a| format!("{}{}", a.type_, a.address));
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    /// Made at midnight; the default creation timeout is 20 minutes.
    fn machine() -> Machine {
        let mut m = Machine::default();
        m.metadata.name = Some("m1".into());
        m.metadata.resource_version = Some("7".into());
        m.metadata.creation_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        m
    }

    fn with_phase(phase: Phase) -> Machine {
        let mut m = machine();
        m.status.current_status.phase = Some(phase);
        m
    }

    /// Recorded as the machine's VM: providerID, node label and priority.
    fn recorded(mut m: Machine) -> Machine {
        m.spec.provider_id = "machine-m1".into();
        m.metadata.labels = Some([(NODE_LABEL.to_string(), "machine-m1".to_string())].into());
        m.metadata.annotations =
            Some([(MACHINE_PRIORITY_ANNOTATION.to_string(), "1".to_string())].into());
        m
    }

    fn ip(address: &str) -> NodeAddress {
        NodeAddress {
            type_: "InternalIP".into(),
            address: address.into(),
        }
    }

    fn vm() -> MachineResponse {
        MachineResponse {
            provider_id: "machine-m1".into(),
            node_name: "machine-m1".into(),
            addresses: vec![ip("10.0.0.7")],
            created: Some(ts("2026-01-01T00:00:05Z")),
            ..Default::default()
        }
    }

    fn error(code: Code) -> MachineError {
        MachineError::new(code, "it broke")
    }

    fn node_made_at(at: &str) -> Node {
        let mut node = Node::default();
        node.metadata.creation_timestamp = Some(Time(ts(at)));
        node
    }

    /// At one minute past midnight, well within the creation timeout.
    fn given(settings: &Settings, with_target: bool) -> Given<'_> {
        Given {
            settings,
            with_target,
            now: ts("2026-01-01T00:01:00Z"),
        }
    }

    fn pending() -> Finish {
        Finish::Status(
            StatusChange::new(
                "Creating machine on cloud provider",
                OpState::Processing,
                OpType::Create,
            )
            .phase(Phase::Pending)
            .timeout_active(),
        )
    }

    fn write(record: Record) -> (Option<serde_json::Value>, Finish) {
        match record {
            Record::Write { patch, finish } => (patch, finish),
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn no_vm_and_none_recorded_is_created() {
        let s = Settings::default();
        for code in [Code::NotFound, Code::Unimplemented] {
            assert_eq!(
                after_status(&machine(), Err(error(code)), &given(&s, true)),
                Start::Call(Call::Create)
            );
        }
    }

    #[test]
    fn an_incomplete_vm_is_initialized() {
        let s = Settings::default();
        for m in [machine(), recorded(machine())] {
            assert_eq!(
                after_status(&m, Err(error(Code::Uninitialized)), &given(&s, true)),
                Start::Call(Call::Initialize)
            );
        }
    }

    #[test]
    fn a_found_vm_is_adopted_and_the_machine_goes_pending() {
        let s = Settings::default();
        let Start::Record(record) = after_status(&machine(), Ok(vm()), &given(&s, true)) else {
            panic!("expected a record");
        };
        let (patch, finish) = write(record);
        let patch = patch.expect("providerID, node and priority are missing");
        assert_eq!(patch["spec"]["providerID"], "machine-m1");
        assert_eq!(patch["metadata"]["labels"][NODE_LABEL], "machine-m1");
        assert_eq!(finish, pending());
        assert_eq!(finish.retry(), retry::LONG);
    }

    #[test]
    fn a_recorded_provider_id_stands_for_the_vm() {
        let s = Settings::default();
        let m = recorded(machine());
        for code in [Code::NotFound, Code::Unimplemented] {
            let start = after_status(&m, Err(error(code)), &given(&s, true));
            assert_eq!(
                start,
                Start::Record(Record::Write {
                    patch: None,
                    finish: pending()
                })
            );
        }
        // Without its node label there is no node name to go on: MCM's Internal error.
        let mut unlabelled = m.clone();
        unlabelled.metadata.labels = None;
        let start = after_status(&unlabelled, Err(error(Code::NotFound)), &given(&s, true));
        assert_eq!(
            start,
            Start::Record(internal(
                "machine \"m1\": nodeName (\"\") or providerID (\"machine-m1\") is empty after creation flow"
            ))
        );
    }

    #[test]
    fn a_driver_error_is_crash_loop_back_off_with_mcms_text() {
        let s = Settings::default();
        let Start::Fail(failure) =
            after_status(&machine(), Err(error(Code::Unavailable)), &given(&s, true))
        else {
            panic!("expected a failure");
        };
        let description = "Cloud provider message - machine codes error: code = [Unavailable] message = [it broke]";
        assert_eq!(
            failure,
            Failure {
                error: error(Code::Unavailable),
                change: StatusChange::new(description, OpState::Failed, OpType::Create)
                    .code("Unavailable")
                    .phase(Phase::CrashLoopBackOff),
                event: Note {
                    type_: EventType::Warning,
                    reason: "CreateFailed".into(),
                    action: "CreateMachine".into(),
                    message: description.into(),
                },
                retry: retry::SHORT,
            }
        );
    }

    #[test]
    fn a_driver_error_past_the_creation_timeout_is_failed() {
        let s = Settings::default();
        let late = Given {
            now: ts("2026-01-01T00:21:00Z"),
            ..given(&s, true)
        };
        let failure = failure(&machine(), error(Code::Internal), &late);
        assert_eq!(failure.change.phase, Some(Phase::Failed));
        assert_eq!(failure.change.error_code, "Internal");
        assert_eq!(failure.retry, retry::MEDIUM);
        // The machine's own creation timeout counts.
        let mut patient = machine();
        patient.spec.configuration.creation_timeout = Some("30m".into());
        let failure = super::failure(&patient, error(Code::Internal), &late);
        assert_eq!(failure.change.phase, Some(Phase::CrashLoopBackOff));
    }

    #[test]
    fn a_driver_error_is_retried_by_its_code() {
        let s = Settings::default();
        let retry_of = |code| failure(&machine(), error(code), &given(&s, true)).retry;
        assert_eq!(
            retry_of(Code::ResourceExhausted),
            s.resource_exhausted_retry
        );
        for code in [
            Code::Unknown,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Unavailable,
        ] {
            assert_eq!(retry_of(code), retry::SHORT, "{code}");
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Internal,
        ] {
            assert_eq!(retry_of(code), retry::MEDIUM, "{code}");
        }
    }

    #[test]
    fn a_zero_resource_exhausted_retry_is_the_long_retry() {
        // MCM: "If set to 0, it automatically reverts to LongRetry"; never a hot loop.
        assert_eq!(
            failure_retry(Code::ResourceExhausted, Duration::ZERO),
            retry::LONG
        );
        let s = Settings {
            resource_exhausted_retry: Duration::ZERO,
            ..Settings::default()
        };
        let failed = failure(&machine(), error(Code::ResourceExhausted), &given(&s, true));
        assert_eq!(failed.retry, retry::LONG);
        // Any other value is kept, however short.
        let second = Duration::from_secs(1);
        assert_eq!(failure_retry(Code::ResourceExhausted, second), second);
        // Other codes never read it.
        assert_eq!(
            failure_retry(Code::Unavailable, Duration::ZERO),
            retry::SHORT
        );
        assert_eq!(failure_retry(Code::Internal, Duration::ZERO), retry::MEDIUM);
    }

    #[test]
    fn a_failed_call_is_a_creation_failure() {
        let s = Settings::default();
        for call in [Call::Create, Call::Initialize] {
            let made = after_call(
                &machine(),
                call,
                Err(error(Code::ResourceExhausted)),
                None,
                &given(&s, true),
            );
            let Made::Fail(failure) = made else {
                panic!("expected a failure, got {made:?}");
            };
            assert_eq!(
                failure.change.description,
                "Cloud provider message - machine codes error: code = [ResourceExhausted] message = [it broke]"
            );
            assert_eq!(failure.retry, s.resource_exhausted_retry);
        }
    }

    #[test]
    fn a_created_vm_is_announced_and_recorded() {
        let s = Settings::default();
        // A Node the VM registered itself (after it was made) is no leftover.
        let own = node_made_at("2026-01-01T00:00:06Z");
        for node in [None, Some(&own)] {
            let made = after_call(&machine(), Call::Create, Ok(vm()), node, &given(&s, true));
            let Made::Record { event, record } = made else {
                panic!("expected a record, got {made:?}");
            };
            assert_eq!(
                event,
                Note {
                    type_: EventType::Normal,
                    reason: "Created".into(),
                    action: "CreateMachine".into(),
                    message: "Created VM machine-m1 for machine m1".into(),
                }
            );
            assert_eq!(write(record).1, pending());
        }
    }

    /// What a call's VM leads to when a Node of its name was there before it.
    fn beside_leftover(call: Call) -> Made {
        let s = Settings::default();
        let old = node_made_at("2026-01-01T00:00:00Z");
        after_call(&machine(), call, Ok(vm()), Some(&old), &given(&s, true))
    }

    #[test]
    fn a_new_vm_on_a_leftover_node_goes_and_the_machine_fails() {
        let made = beside_leftover(Call::Create);
        assert_eq!(
            made,
            Made::Stale(Stale {
                vm: vm(),
                change: StatusChange::new("VM using old node obj", OpState::Failed, OpType::Create)
                    .phase(Phase::Failed),
                event: Note {
                    type_: EventType::Warning,
                    reason: "Failed".into(),
                    action: "CreateMachine".into(),
                    message:
                        "Node machine-m1 existed before the VM of machine m1: the VM is deleted"
                            .into(),
                },
                retry: retry::LONG,
            })
        );
    }

    #[test]
    fn an_initialized_vm_is_never_taken_for_stale() {
        let made = beside_leftover(Call::Initialize);
        let Made::Record { event, .. } = made else {
            panic!("expected a record, got {made:?}");
        };
        assert_eq!(event.reason, "Initialized");
        assert_eq!(event.message, "Completed VM machine-m1 for machine m1");
        assert_eq!(event.type_, EventType::Normal);
    }

    /// MCM's Internal error for an empty answer, with its text.
    fn internal(message: &str) -> Record {
        Record::Empty(MachineError::new(Code::Internal, message))
    }

    #[test]
    fn an_empty_answer_is_mcms_internal_error() {
        let empty_id = MachineResponse {
            provider_id: String::new(),
            ..vm()
        };
        let no_node = MachineResponse {
            node_name: String::new(),
            ..vm()
        };
        let no_id = "machine \"m1\": nodeName (\"machine-m1\") or providerID (\"\") is empty after creation flow";
        let cases = [
            (empty_id.clone(), false, Some(no_id)),
            (empty_id, true, Some(no_id)),
            (
                no_node.clone(),
                true,
                Some(
                    "machine \"m1\": nodeName (\"\") or providerID (\"machine-m1\") is empty after creation flow",
                ),
            ),
            // Without a target no Node joins, and no node name is needed.
            (no_node, false, None),
        ];
        for (vm, with_target, error) in cases {
            let got = record(&machine(), vm, with_target);
            match error {
                Some(text) => assert_eq!(got, internal(text)),
                None => assert!(matches!(got, Record::Write { .. })),
            }
        }
    }

    #[test]
    fn only_a_machine_without_phase_or_in_crash_loop_back_off_gets_the_first_status() {
        assert_eq!(
            record(&recorded(with_phase(Phase::CrashLoopBackOff)), vm(), true),
            Record::Write {
                patch: None,
                finish: pending()
            }
        );
        for phase in [Phase::Pending, Phase::Failed, Phase::Running] {
            let (_, finish) = write(record(&recorded(with_phase(phase)), vm(), true));
            assert_eq!(finish, Finish::Done);
            assert_eq!(finish.retry(), retry::LONG);
        }
        // Still recorded on a machine past creation, as MCM's `updateLabels` does.
        let (patch, _) = write(record(&with_phase(Phase::Pending), vm(), true));
        assert_eq!(patch.unwrap()["spec"]["providerID"], "machine-m1");
    }

    #[test]
    fn without_a_target_the_vm_is_available_once_it_has_an_ip() {
        let hostname_only = MachineResponse {
            addresses: vec![NodeAddress {
                type_: "Hostname".into(),
                address: "machine-m1".into(),
            }],
            ..vm()
        };
        let (patch, finish) = write(record(&machine(), hostname_only, false));
        assert_eq!(finish, Finish::WaitForAddress);
        assert_eq!(finish.retry(), retry::SHORT);
        // The VM is still recorded, without a node label.
        let patch = patch.unwrap();
        assert_eq!(patch["spec"]["providerID"], "machine-m1");
        assert!(patch["metadata"].get("labels").is_none());

        let (_, finish) = write(record(&machine(), vm(), false));
        assert_eq!(
            finish,
            Finish::Status(
                StatusChange::new(
                    "Created machine on cloud provider",
                    OpState::Successful,
                    OpType::Create
                )
                .phase(Phase::Available)
                .addresses(vec![
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: "machine-m1".into()
                    },
                    ip("10.0.0.7"),
                ])
            )
        );
    }

    #[test]
    fn bad_input_fails_a_machine_not_yet_made() {
        let s = Settings::default();
        let problem = InputError::NoUserData("c1".into());
        let text = "Secret referenced by MachineClass \"c1\" has no \"userData\" key";
        let expected = |phase| Invalid::Fail {
            change: StatusChange::new(text, OpState::Failed, OpType::Create)
                .code("InvalidArgument")
                .phase(phase),
            event: Note {
                type_: EventType::Warning,
                reason: "InvalidInput".into(),
                action: "CreateMachine".into(),
                message: text.into(),
            },
        };
        for m in [machine(), with_phase(Phase::CrashLoopBackOff)] {
            let invalid = invalid(&m, &problem, &given(&s, true));
            assert_eq!(invalid, expected(Phase::CrashLoopBackOff));
            assert_eq!(invalid.retry(), retry::MEDIUM);
        }
        let late = Given {
            now: ts("2026-01-01T00:21:00Z"),
            ..given(&s, true)
        };
        assert_eq!(
            invalid(&machine(), &problem, &late),
            expected(Phase::Failed)
        );
    }

    #[test]
    fn bad_input_only_warns_about_a_machine_that_exists() {
        let s = Settings::default();
        let problem = InputError::NoSecret("c1".into());
        for phase in [
            Phase::Running,
            Phase::Unknown,
            Phase::Pending,
            Phase::Available,
        ] {
            let invalid = invalid(&with_phase(phase), &problem, &given(&s, true));
            assert_eq!(
                invalid,
                Invalid::Warn(Note {
                    type_: EventType::Warning,
                    reason: "InvalidInput".into(),
                    action: "Reconcile".into(),
                    message: "MachineClass \"c1\" references no secret".into(),
                })
            );
            assert_eq!(invalid.retry(), retry::MEDIUM);
        }
    }

    #[test]
    fn only_a_node_older_than_its_vm_is_stale() {
        let node = node_made_at("2026-01-01T00:00:00Z");
        let vm = vm();
        assert!(stale_node(Some(&node), &vm, "m1"));
        assert!(!stale_node(None, &vm, "m1"));
        // Registered by the VM itself (same second or later): not stale.
        let own = node_made_at("2026-01-01T00:00:05Z");
        assert!(!stale_node(Some(&own), &vm, "m1"));
        // A provider that does not say when the VM was made: never taken for stale.
        let unknown = MachineResponse {
            created: None,
            ..vm.clone()
        };
        assert!(!stale_node(Some(&node), &unknown, "m1"));
        // The node named like the machine is MCM's exception.
        let same = MachineResponse {
            node_name: "m1".into(),
            ..vm
        };
        assert!(!stale_node(Some(&node), &same, "m1"));
    }

    #[test]
    fn addresses_as_mcm_builds_them() {
        let a = |t: &str, v: &str| NodeAddress {
            type_: t.into(),
            address: v.into(),
        };
        assert_eq!(
            address_status(
                vec![
                    a("InternalIP", "10.0.0.2"),
                    a("InternalIP", "fd00::2"),
                    a("Hostname", "machine-a")
                ],
                "machine-a"
            ),
            [
                a("Hostname", "machine-a"),
                a("InternalIP", "10.0.0.2"),
                a("InternalIP", "fd00::2")
            ]
        );
        assert!(!has_ip(&[a("Hostname", "machine-a")]));
    }

    #[test]
    fn failures_turn_to_failed_after_the_creation_timeout() {
        let m = machine();
        let t = Duration::from_secs(1200);
        assert_eq!(
            failure_phase(&m, t, ts("2026-01-01T00:19:00Z")),
            Phase::CrashLoopBackOff
        );
        assert_eq!(
            failure_phase(&m, t, ts("2026-01-01T00:21:00Z")),
            Phase::Failed
        );
    }

    #[test]
    fn records_provider_id_node_and_priority_once() {
        let m = machine();
        let patch = labels_patch(&m, "machine-m1", "machine-m1", true).unwrap();
        assert_eq!(patch["spec"]["providerID"], "machine-m1");
        assert_eq!(patch["metadata"]["labels"]["node"], "machine-m1");
        assert_eq!(
            patch["metadata"]["annotations"][MACHINE_PRIORITY_ANNOTATION],
            "3"
        );
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(
            labels_patch(&recorded(m), "machine-m1", "machine-m1", true),
            None
        );
    }
}
