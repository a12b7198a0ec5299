// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Orphan collection: VMs whose Machine is gone (say, its finalizer was removed
//! by hand) are deleted at start, every `--machine-safety-orphan-vms-period`,
//! and shortly after a Machine is deleted.
//!
//! Deleting a VM is the one act a user of a machine controller cannot forgive
//! when it is wrong, so nothing here trusts a cache for the final word:
//! - it runs only once every cache has its first list in this process
//!   ([`crate::controller::context::SyncGate`]);
//! - the caches only nominate candidates; each is confirmed by a live read of
//!   its Machine and of the VM ([`judge`], a pure function);
//! - a VM younger than `--machine-safety-orphan-vms-min-age` is left for a later pass;
//! - where VMs live in a namespace of their own (Gardener's `infra-<id>`), which
//!   other control namespaces' controllers may share, only a VM that says it was
//!   made for this control namespace is ours to judge; a VM that does not say
//!   (made by another controller, or before we marked them) is left alone;
//! - the deletion carries the VM's UID as a precondition, so that a VM made anew
//!   under the same name since the read is never hit;
//! - every deletion is logged with its reason and counted
//!   (`machine_controller_orphan_vms_deleted_total{reason}`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::Store;
use tokio::sync::Notify;

use crate::api::{Machine, MachineClass};
use crate::contract::Phase;
use crate::controller::context::Context;
use crate::driver::{Code, Driver, MachineList, SecretData, VmFacts};
use crate::metrics::Metrics;

/// The VMs (providerID → machine name) the cache accounts for with no Machine,
/// or with a Machine that names another providerID: candidates only.
pub(crate) fn candidates(listed: &MachineList, machines: &[Arc<Machine>]) -> Vec<(String, String)> {
    let by_name: BTreeMap<&str, &Machine> =
        machines.iter().map(|m| (m.name(), m.as_ref())).collect();
    listed
        .iter()
        .filter(|(provider_id, name)| match by_name.get(name.as_str()) {
            None => true,
            Some(m) => !m.spec.provider_id.is_empty() && m.spec.provider_id != **provider_id,
        })
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

/// Why a VM is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// No Machine of its name exists.
    MachineGone,
    /// Its Machine is past creation and names another VM.
    MachineNamesAnotherVm,
}

impl Reason {
    /// For the metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::MachineGone => "machine_gone",
            Reason::MachineNamesAnotherVm => "machine_names_another_vm",
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Reason::MachineGone => "its machine is gone",
            Reason::MachineNamesAnotherVm => "its machine names another VM",
        }
    }
}

/// The decision on one candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep(&'static str),
    Delete { uid: String, reason: Reason },
}

/// Whose VMs a class's listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listing<'a> {
    /// Only this control namespace's (its VMs live in the control namespace).
    Ours,
    /// A namespace others may share: only VMs marked for this one are ours.
    Shared { control_namespace: &'a str },
}

/// Decides on one candidate from live reads: `machine` is the Machine of the
/// VM's name as the API server has it now, `vm` the VM as the provider has it.
pub(crate) fn judge(
    provider_id: &str,
    machine: Option<&Machine>,
    vm: Option<&VmFacts>,
    listing: Listing<'_>,
    now: jiff::Timestamp,
    min_age: Duration,
) -> Verdict {
    let Some(vm) = vm else {
        return Verdict::Keep("the VM is gone");
    };
    if let Listing::Shared { control_namespace } = listing
        && vm.control_namespace.as_deref() != Some(control_namespace)
    {
        return Verdict::Keep("the VM was not made for this control namespace");
    }
    if vm.deleting {
        return Verdict::Keep("the VM is already being deleted");
    }
    let reason = match machine {
        None => Reason::MachineGone,
        Some(m) if m.is_deleting() => return Verdict::Keep("its machine is being deleted"),
        Some(m) if m.spec.provider_id.is_empty() || m.spec.provider_id == provider_id => {
            return Verdict::Keep("its machine exists");
        }
        // As MCM: a machine still being created may yet settle on this VM.
        Some(m) if matches!(m.phase(), None | Some(Phase::CrashLoopBackOff)) => {
            return Verdict::Keep("its machine is still being created");
        }
        Some(_) => Reason::MachineNamesAnotherVm,
    };
    let old_enough = vm.created.is_some_and(|created| {
        now.duration_since(created)
            .try_into()
            .is_ok_and(|age: Duration| age >= min_age)
    });
    if !old_enough {
        return Verdict::Keep("the VM is younger than the minimum age");
    }
    Verdict::Delete {
        uid: vm.uid.clone(),
        reason,
    }
}

/// One pass over every class. Errors are logged: the next pass tries again.
/// Returns the number of VMs deleted.
pub(crate) async fn collect_once<D: Driver>(
    ctx: &Context<D>,
    classes: &Store<MachineClass>,
    metrics: &Metrics,
) -> usize {
    if ctx.wait_ready().await.is_err() {
        return 0;
    }
    let (mut listed_vms, mut nominated, mut deleted) = (0, 0, 0);
    for class in classes.state() {
        // Resolve the class's secrets as a machine of it would.
        let mut probe = Machine::named("orphan-collection");
        probe.metadata.namespace = Some(ctx.settings.namespace.clone());
        probe.spec.class.name = class.metadata.name.clone().unwrap_or_default();
        let Ok((class, secret)) = ctx.resolve_for_deletion(&probe) else {
            continue;
        };
        let control_namespace = ctx.settings.namespace.as_str();
        let listing = match ctx.driver.vm_namespace(&class) {
            Some(ns) if ns != control_namespace => Listing::Shared { control_namespace },
            _ => Listing::Ours,
        };
        let listed = match ctx.driver.list_machines(&class, &secret).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(class = ?class.metadata.name, "orphan collection: {e}");
                continue;
            }
        };
        listed_vms += listed.len();
        let nominees = candidates(&listed, &ctx.machines.state());
        nominated += nominees.len();
        for (provider_id, name) in nominees {
            let nominee = Nominee {
                class: &class,
                secret: &secret,
                listing,
                provider_id: &provider_id,
                machine: &name,
            };
            if let Some(reason) = judge_and_delete(ctx, nominee).await {
                deleted += 1;
                metrics.orphan_deleted(reason.label());
            }
        }
    }
    let nodes_released = super::orphan_nodes::release(ctx).await;
    tracing::info!(
        vms = listed_vms,
        candidates = nominated,
        deleted,
        nodes_released,
        "orphan collection done"
    );
    deleted
}

/// A VM that no machine in the cache claims, and what reading it needs.
struct Nominee<'a> {
    class: &'a MachineClass,
    secret: &'a SecretData,
    listing: Listing<'a>,
    provider_id: &'a str,
    machine: &'a str,
}

/// Reads the nominee's machine from the API server (not the cache) and the VM
/// from the driver, and deletes the VM if [`judge`] says it is an orphan.
/// Returns why it was deleted; anything unread leaves the VM alone.
async fn judge_and_delete<D: Driver>(ctx: &Context<D>, n: Nominee<'_>) -> Option<Reason> {
    let (vm, name) = (n.provider_id, n.machine);
    let machine = match ctx.machine_api().get_opt(name).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(
                vm,
                machine = name,
                "orphan collection could not read the machine, leaving the VM: {e}"
            );
            return None;
        }
    };
    let facts = match ctx.driver.vm_facts(n.class, n.secret, vm).await {
        Ok(facts) => facts,
        Err(e) => {
            tracing::warn!(
                vm,
                "orphan collection could not read the VM, leaving it: {e}"
            );
            return None;
        }
    };
    let verdict = judge(
        vm,
        machine.as_ref(),
        facts.as_ref(),
        n.listing,
        jiff::Timestamp::now(),
        ctx.settings.orphan_vms_min_age,
    );
    let (uid, reason) = match verdict {
        Verdict::Keep(why) => {
            tracing::debug!(vm, machine = name, "not an orphan: {why}");
            return None;
        }
        Verdict::Delete { uid, reason } => (uid, reason),
    };
    match ctx.driver.delete_vm(n.class, n.secret, vm, &uid).await {
        Ok(()) => {
            tracing::info!(vm, uid = %uid, machine = name, reason = reason.label(), "deleted orphan VM: {}", reason.text());
            Some(reason)
        }
        Err(e) if matches!(e.code, Code::NotFound | Code::FailedPrecondition) => {
            tracing::debug!(vm, "orphan VM changed meanwhile, left alone: {e}");
            None
        }
        Err(e) => {
            tracing::warn!(vm, "orphan collection could not delete the VM: {e}");
            None
        }
    }
}

/// Runs orphan collection every `period` until the process ends.
pub(crate) async fn run<D: Driver>(
    ctx: Arc<Context<D>>,
    classes: Store<MachineClass>,
    metrics: Arc<Metrics>,
    period: Duration,
    machine_deleted: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // As MCM: a deleted Machine may have left its VM behind. Deletions
            // come in bursts; one pass after the burst settles serves them all.
            () = machine_deleted.notified() => {
                tokio::time::sleep(AFTER_DELETIONS).await;
            }
        }
        collect_once(&ctx, &classes, &metrics).await;
    }
}

/// How long a pass waits after a Machine deletion, for more to come.
const AFTER_DELETIONS: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, provider_id: &str) -> Arc<Machine> {
        let mut m = Machine::named(name);
        m.spec.provider_id = provider_id.into();
        Arc::new(m)
    }

    #[test]
    fn the_cache_nominates_vms_without_their_machine() {
        let listed: MachineList = [
            ("machine-a".to_string(), "a".to_string()),
            ("machine-b".to_string(), "b".to_string()),
            ("machine-c".to_string(), "c".to_string()),
            ("machine-d".to_string(), "d".to_string()),
        ]
        .into();
        let machines = [
            machine("a", "machine-a"),
            machine("b", ""),           // being created: not an orphan
            machine("c", "machine-c2"), // names another VM
        ];
        let found: Vec<String> = candidates(&listed, &machines)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(found, ["machine-c", "machine-d"]);
    }

    const NOW: &str = "2026-01-01T01:00:00Z";
    const MIN_AGE: Duration = Duration::from_secs(120);

    fn vm(created: &str) -> VmFacts {
        VmFacts {
            uid: "uid-1".into(),
            created: Some(created.parse().unwrap()),
            deleting: false,
            control_namespace: Some("shoot--a".into()),
        }
    }

    fn judged(machine: Option<&Machine>, vm: Option<&VmFacts>) -> Verdict {
        judge(
            "machine-a",
            machine,
            vm,
            Listing::Ours,
            NOW.parse().unwrap(),
            MIN_AGE,
        )
    }

    #[test]
    fn in_a_shared_namespace_only_vms_marked_for_us_are_judged() {
        let now = NOW.parse().unwrap();
        let ours = Listing::Shared {
            control_namespace: "shoot--a",
        };
        let old = vm("2026-01-01T00:00:00Z");
        assert!(matches!(
            judge("machine-a", None, Some(&old), ours, now, MIN_AGE),
            Verdict::Delete { .. }
        ));
        let theirs = Listing::Shared {
            control_namespace: "shoot--b",
        };
        assert_eq!(
            judge("machine-a", None, Some(&old), theirs, now, MIN_AGE),
            Verdict::Keep("the VM was not made for this control namespace")
        );
        let unmarked = VmFacts {
            control_namespace: None,
            ..old.clone()
        };
        assert_eq!(
            judge("machine-a", None, Some(&unmarked), ours, now, MIN_AGE),
            Verdict::Keep("the VM was not made for this control namespace")
        );
    }

    #[test]
    fn deletes_an_old_vm_whose_machine_is_gone_by_its_uid() {
        assert_eq!(
            judged(None, Some(&vm("2026-01-01T00:00:00Z"))),
            Verdict::Delete {
                uid: "uid-1".into(),
                reason: Reason::MachineGone
            }
        );
    }

    #[test]
    fn a_machine_that_the_live_read_finds_keeps_its_vm() {
        // The cache did not show it (not synced, or behind): the live read wins.
        let old = vm("2026-01-01T00:00:00Z");
        assert_eq!(
            judged(Some(&machine("a", "machine-a")), Some(&old)),
            Verdict::Keep("its machine exists")
        );
        assert_eq!(
            judged(Some(&machine("a", "")), Some(&old)),
            Verdict::Keep("its machine exists")
        );
        let mut deleting = (*machine("a", "machine-x")).clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(NOW.parse().unwrap()),
        );
        assert_eq!(
            judged(Some(&deleting), Some(&old)),
            Verdict::Keep("its machine is being deleted")
        );
    }

    #[test]
    fn a_machine_naming_another_vm_frees_this_one_only_past_creation() {
        let old = vm("2026-01-01T00:00:00Z");
        let mut m = (*machine("a", "machine-x")).clone();
        assert_eq!(
            judged(Some(&m), Some(&old)),
            Verdict::Keep("its machine is still being created")
        );
        m.status.current_status.phase = Some(Phase::Running);
        assert_eq!(
            judged(Some(&m), Some(&old)),
            Verdict::Delete {
                uid: "uid-1".into(),
                reason: Reason::MachineNamesAnotherVm
            }
        );
    }

    #[test]
    fn young_gone_or_deleting_vms_are_left_alone() {
        assert_eq!(
            judged(None, Some(&vm("2026-01-01T00:59:00Z"))),
            Verdict::Keep("the VM is younger than the minimum age")
        );
        let unknown_age = VmFacts {
            created: None,
            ..vm(NOW)
        };
        assert_eq!(
            judged(None, Some(&unknown_age)),
            Verdict::Keep("the VM is younger than the minimum age")
        );
        assert_eq!(judged(None, None), Verdict::Keep("the VM is gone"));
        let deleting = VmFacts {
            deleting: true,
            ..vm("2026-01-01T00:00:00Z")
        };
        assert_eq!(
            judged(None, Some(&deleting)),
            Verdict::Keep("the VM is already being deleted")
        );
    }
}
