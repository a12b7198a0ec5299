// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Orphan collection: VMs whose Machine is gone (say, its finalizer was removed
//! by hand) are deleted every `--machine-safety-orphan-vms-period`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::Store;

use super::context::Context;
use crate::api::{Machine, MachineClass};
use crate::driver::{Driver, MachineList};

/// The VMs (providerID → machine name) that no Machine accounts for: their
/// machine is gone, or it names another providerID.
pub fn orphans(listed: &MachineList, machines: &[Arc<Machine>]) -> Vec<(String, String)> {
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

/// One pass over every class. Errors are logged: the next pass tries again.
pub async fn collect_once<D: Driver>(ctx: &Context<D>, classes: &Store<MachineClass>) -> usize {
    if ctx.wait_ready().await.is_err() {
        return 0;
    }
    let mut deleted = 0;
    for class in classes.state() {
        // Resolve the class's secrets as a machine of it would.
        let mut probe = Machine::named("orphan-collection");
        probe.metadata.namespace = Some(ctx.settings.namespace.clone());
        probe.spec.class.name = class.metadata.name.clone().unwrap_or_default();
        let Ok((class, secret)) = ctx.resolve(&probe) else {
            continue;
        };
        // VMs in a namespace other controllers may share are not ours to judge.
        let vm_namespace = class
            .provider_spec
            .get("namespace")
            .and_then(|n| n.as_str())
            .unwrap_or_default();
        if !vm_namespace.is_empty() && vm_namespace != ctx.settings.namespace {
            continue;
        }
        let listed = match ctx.driver.list_machines(&class, &secret).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(class = ?class.metadata.name, "orphan collection: {e}");
                continue;
            }
        };
        for (provider_id, name) in orphans(&listed, &ctx.machines.state()) {
            let mut gone = Machine::named(&name);
            gone.metadata.namespace = Some(ctx.settings.namespace.clone());
            gone.spec.provider_id = provider_id.clone();
            let req = crate::driver::MachineRequest {
                machine: &gone,
                class: &class,
                secret: &secret,
            };
            match ctx.driver.delete_machine(&req).await {
                Ok(()) => deleted += 1,
                Err(e) if crate::driver::local::is_still_terminating(&e) => deleted += 1,
                Err(e) => {
                    tracing::warn!(vm = %provider_id, "orphan collection could not delete the VM: {e}")
                }
            }
            tracing::info!(vm = %provider_id, machine = %name, "deleting orphan VM: its machine is gone");
        }
    }
    deleted
}

/// Runs orphan collection every `period` until the process ends.
pub async fn run<D: Driver>(ctx: Arc<Context<D>>, classes: Store<MachineClass>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        collect_once(&ctx, &classes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, provider_id: &str) -> Arc<Machine> {
        let mut m = Machine::named(name);
        m.spec.provider_id = provider_id.into();
        Arc::new(m)
    }

    #[test]
    fn finds_vms_without_their_machine() {
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
        let found: Vec<String> = orphans(&listed, &machines)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(found, ["machine-c", "machine-d"]);
    }
}
