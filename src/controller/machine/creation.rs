// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Creation: ask the driver whether the VM exists, create it if not, record
//! providerID and node name, then mark the machine Pending.

use std::time::Duration;

use k8s_openapi::api::core::v1::NodeAddress;
use kube::runtime::controller::Action;
use serde_json::json;

use crate::api::{Machine, MachineClass};
use crate::contract::{
    DEFAULT_MACHINE_PRIORITY, MACHINE_PRIORITY_ANNOTATION, NODE_LABEL, OpState, OpType, Phase,
    USER_DATA_KEY, text,
};
use crate::controller::bootstrap;
use crate::controller::context::{Context, InputError};
use crate::controller::error::{Error, retry};
use crate::controller::status::StatusChange;
use crate::driver::{Code, Driver, MachineError, MachineRequest, MachineResponse, SecretData};
use crate::duration::age;

/// The phase a failed creation puts the machine in.
pub fn failure_phase(machine: &Machine, creation_timeout: Duration, now: jiff::Timestamp) -> Phase {
    let created = machine.metadata.creation_timestamp.as_ref().map(|t| &t.0);
    if age(created, now) > creation_timeout {
        Phase::Failed
    } else {
        Phase::CrashLoopBackOff
    }
}

/// How long to wait after a driver error, as MCM's `machineCreateErrorHandler` does.
pub fn failure_retry(code: Code, resource_exhausted_retry: Duration) -> Duration {
    match code {
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
pub fn stale_node(
    node: Option<&k8s_openapi::api::core::v1::Node>,
    vm: &MachineResponse,
    machine: &str,
) -> bool {
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

pub async fn run<D: Driver>(
    ctx: &Context<D>,
    mut machine: Machine,
    class: &MachineClass,
    secret: SecretData,
) -> Result<Action, Error> {
    let name = machine.name().to_string();
    let Some(user_data) = secret.get(USER_DATA_KEY) else {
        let class_name = class.metadata.name.clone().unwrap_or_default();
        return report_input(ctx, &machine, &InputError::NoUserData(class_name)).await;
    };
    let user_data = String::from_utf8_lossy(user_data).into_owned();

    let status_req = MachineRequest {
        machine: &machine,
        class,
        secret: &secret,
    };
    let (create, initialize) = match ctx.driver.get_machine_status(&status_req).await {
        Ok(vm) => (None, Some(Ok(vm))),
        Err(e) if matches!(e.code, Code::NotFound | Code::Unimplemented) => {
            if machine.spec.provider_id.is_empty() {
                (Some(()), None)
            } else {
                let vm = MachineResponse {
                    node_name: machine.node_name().unwrap_or_default().to_string(),
                    provider_id: machine.spec.provider_id.clone(),
                    ..Default::default()
                };
                (None, Some(Ok(vm)))
            }
        }
        // The VM exists but is incomplete (say, a crash cut its creation short).
        Err(e) if e.code == Code::Uninitialized => (None, Some(Err(e))),
        Err(e) => return failed(ctx, &machine, e).await,
    };

    let vm = match initialize {
        Some(Ok(vm)) => vm,
        _ => {
            // The token is made only now, so that an invalid class never gets one.
            let token = match &ctx.target {
                Some(target) => Some(
                    bootstrap::ensure_token(
                        target,
                        &ctx.settings.namespace,
                        &name,
                        ctx.settings.creation_timeout(&machine),
                        &ctx.settings.bootstrap_token_auth_extra_groups,
                    )
                    .await?,
                ),
                None => None,
            };
            let mut request_secret = secret.clone();
            let data = bootstrap::substitute(&user_data, token.as_deref(), &name);
            request_secret.insert(USER_DATA_KEY.to_string(), data.into_bytes());
            let req = MachineRequest {
                machine: &machine,
                class,
                secret: &request_secret,
            };
            let result = if create.is_some() {
                ctx.driver.create_machine(&req).await
            } else {
                ctx.driver.initialize_machine(&req).await
            };
            match result {
                Ok(vm)
                    if create.is_some()
                        && stale_node(ctx.node(&vm.node_name).as_deref(), &vm, &name) =>
                {
                    return stale(ctx, &machine, class, &request_secret, vm).await;
                }
                Ok(vm) => {
                    let (reason, verb) = if create.is_some() {
                        ("Created", "Created")
                    } else {
                        ("Initialized", "Completed")
                    };
                    ctx.event(
                        &machine,
                        false,
                        reason,
                        "CreateMachine",
                        format!("{verb} VM {} for machine {name}", vm.provider_id),
                    );
                    vm
                }
                Err(e) => return failed(ctx, &machine, e).await,
            }
        }
    };
    let (node_name, provider_id, addresses) = (vm.node_name, vm.provider_id, vm.addresses);

    if provider_id.is_empty() || (ctx.target.is_some() && node_name.is_empty()) {
        let e = MachineError::new(
            Code::Internal,
            format!(
                "machine {name:?}: nodeName ({node_name:?}) or providerID ({provider_id:?}) is empty after creation flow"
            ),
        );
        return Err(e.into());
    }

    if let Some(patch) = labels_patch(&machine, &node_name, &provider_id, ctx.target.is_some()) {
        machine = ctx.patch_machine(&name, &patch).await?;
    }

    if matches!(machine.phase(), None | Some(Phase::CrashLoopBackOff)) {
        let change = if ctx.target.is_some() {
            StatusChange::new(text::CREATING, OpState::Processing, OpType::Create)
                .phase(Phase::Pending)
                .timeout_active()
        } else {
            // Without a target cluster no Node will ever join: the VM is all there
            // is, and its addresses are how one reaches it (`gardenadm bootstrap`
            // connects to them). A VM without an IP yet is looked at again when
            // its watch reports one, as gardener's provider-local waits for the
            // Pod to run before it answers.
            if !has_ip(&addresses) {
                return Ok(Action::requeue(retry::SHORT));
            }
            StatusChange::new(
                "Created machine on cloud provider",
                OpState::Successful,
                OpType::Create,
            )
            .phase(Phase::Available)
            .addresses(address_status(addresses, &node_name))
        };
        // No Event: the "Created" one just before says as much, and every Event
        // costs the API server a write per machine.
        ctx.write_status(&machine, &change).await?;
    }
    Ok(Action::requeue(retry::LONG))
}

/// A new VM took the name of a leftover Node: the VM goes again and the
/// machine is Failed, for its MachineSet to replace, as MCM does.
async fn stale<D: Driver>(
    ctx: &Context<D>,
    machine: &Machine,
    class: &MachineClass,
    secret: &SecretData,
    vm: MachineResponse,
) -> Result<Action, Error> {
    let name = machine.name();
    tracing::warn!(
        node = vm.node_name,
        "a Node of the new VM's name was there before it: deleting the VM and marking the machine Failed"
    );
    let mut with_vm = machine.clone();
    with_vm.spec.provider_id = vm.provider_id.clone();
    let req = MachineRequest {
        machine: &with_vm,
        class,
        secret,
    };
    if let Err(e) = ctx.driver.delete_machine(&req).await {
        // Should this fail, the VM goes with the machine: the deletion's status
        // lookup finds it.
        tracing::warn!("deleting the VM of a stale node failed: {e}");
    }
    let change =
        StatusChange::new(text::STALE_NODE, OpState::Failed, OpType::Create).phase(Phase::Failed);
    if ctx.write_status(machine, &change).await?.is_some() {
        let note = format!(
            "Node {} existed before the VM of machine {name}: the VM is deleted",
            vm.node_name
        );
        ctx.event(machine, true, "Failed", "CreateMachine", note);
    }
    Ok(Action::requeue(retry::LONG))
}

fn has_ip(addresses: &[NodeAddress]) -> bool {
    addresses.iter().any(|a| a.type_ != "Hostname")
}

/// MCM's `buildAddressStatus`: the VM's addresses and the node name as
/// Hostname, without repeats, sorted by type and address.
pub fn address_status(mut addresses: Vec<NodeAddress>, node_name: &str) -> Vec<NodeAddress> {
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

/// Records a provider failure as MCM does: CrashLoopBackOff, or Failed past the creation timeout.
pub async fn failed<D>(
    ctx: &Context<D>,
    machine: &Machine,
    err: MachineError,
) -> Result<Action, Error> {
    let phase = failure_phase(
        machine,
        ctx.settings.creation_timeout(machine),
        jiff::Timestamp::now(),
    );
    let change = StatusChange::new(
        format!("{}{err}", text::CLOUD_PROVIDER_MESSAGE),
        OpState::Failed,
        OpType::Create,
    )
    .code(err.code.as_str())
    .phase(phase);
    let written = ctx.write_status(machine, &change).await?;
    if written.is_some() {
        ctx.event(
            machine,
            true,
            "CreateFailed",
            "CreateMachine",
            change.description.clone(),
        );
    }
    tracing::warn!(code = %err.code, "creation failed: {}", err.message);
    Ok(Action::requeue(failure_retry(
        err.code,
        ctx.settings.resource_exhausted_retry,
    )))
}

/// Input that keeps the machine from being created: status and Event, and a
/// watch on the class and its secrets brings us back when it is fixed.
pub async fn report_input<D>(
    ctx: &Context<D>,
    machine: &Machine,
    problem: &InputError,
) -> Result<Action, Error> {
    let description = problem.to_string();
    if matches!(
        machine.phase(),
        Some(Phase::Running | Phase::Unknown | Phase::Pending | Phase::Available)
    ) {
        // A machine that exists is not demoted because its class went away: only an Event.
        ctx.event(machine, true, "InvalidInput", "Reconcile", description);
        return Ok(Action::requeue(retry::MEDIUM));
    }
    let change = StatusChange::new(description.clone(), OpState::Failed, OpType::Create)
        .code(Code::InvalidArgument.as_str())
        .phase(failure_phase(
            machine,
            ctx.settings.creation_timeout(machine),
            jiff::Timestamp::now(),
        ));
    if ctx.write_status(machine, &change).await?.is_some() {
        ctx.event(machine, true, "InvalidInput", "CreateMachine", description);
    }
    Ok(Action::requeue(retry::MEDIUM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_node_older_than_its_vm_is_stale() {
        let at = |s: &str| {
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                s.parse().unwrap(),
            ))
        };
        let mut node = k8s_openapi::api::core::v1::Node::default();
        node.metadata.creation_timestamp = at("2026-01-01T00:00:00Z");
        let vm = MachineResponse {
            node_name: "machine-m1".into(),
            created: "2026-01-01T00:00:05Z".parse().ok(),
            ..Default::default()
        };
        assert!(stale_node(Some(&node), &vm, "m1"));
        assert!(!stale_node(None, &vm, "m1"));
        // Registered by the VM itself (same second or later): not stale.
        node.metadata.creation_timestamp = at("2026-01-01T00:00:05Z");
        assert!(!stale_node(Some(&node), &vm, "m1"));
        // A provider that does not say when the VM was made: never taken for stale.
        node.metadata.creation_timestamp = at("2026-01-01T00:00:00Z");
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn machine() -> Machine {
        let mut m = Machine::default();
        m.metadata.name = Some("m1".into());
        m.metadata.resource_version = Some("7".into());
        m.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        m
    }

    #[test]
    fn failures_turn_to_failed_after_the_creation_timeout() {
        let m = machine();
        let t = Duration::from_secs(1200);
        assert_eq!(
            failure_phase(&m, t, "2026-01-01T00:19:00Z".parse().unwrap()),
            Phase::CrashLoopBackOff
        );
        assert_eq!(
            failure_phase(&m, t, "2026-01-01T00:21:00Z".parse().unwrap()),
            Phase::Failed
        );
    }

    #[test]
    fn retries_follow_the_code() {
        let re = Duration::from_secs(42);
        assert_eq!(failure_retry(Code::ResourceExhausted, re), re);
        assert_eq!(failure_retry(Code::Unavailable, re), retry::SHORT);
        assert_eq!(failure_retry(Code::InvalidArgument, re), retry::MEDIUM);
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

        let mut done = m.clone();
        done.spec.provider_id = "machine-m1".into();
        done.metadata.labels = Some([("node".to_string(), "machine-m1".to_string())].into());
        done.metadata.annotations =
            Some([(MACHINE_PRIORITY_ANNOTATION.to_string(), "1".to_string())].into());
        assert_eq!(labels_patch(&done, "machine-m1", "machine-m1", true), None);
    }
}
