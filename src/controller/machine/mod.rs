// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The reconcile of one machine, in MCM's order: deletion if it is deleting;
//! else finalizer, class, node upkeep and health, then creation while it has no
//! VM. Each step decides in a pure function (see the modules below) and acts
//! through the context.

pub mod creation;
pub mod deletion;
pub mod drain;
pub mod health;
pub mod inplace;
pub mod meltdown;
pub mod preservation;
pub mod trouble;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use serde_json::json;

use super::context::Context;
use super::error::{Category, Error, retry};
use super::events::EventType;
use super::{bootstrap, class, node, writes};
use crate::api::Machine;
use crate::contract::{JOIN_DURATION_ANNOTATION, Phase, text};
use crate::driver::Driver;
use crate::duration::format_go;

/// One pass over one machine. Everything logged inside carries the machine's
/// name through the span.
#[tracing::instrument(skip_all, fields(machine = %machine.name()))]
pub async fn reconcile<D: Driver>(
    machine: Arc<Machine>,
    ctx: Arc<Context<D>>,
) -> Result<Action, Error> {
    tracing::trace!("reconcile: waiting for caches");
    ctx.wait_ready().await?;
    tracing::debug!(
        phase = machine.phase().map_or("", Phase::as_str),
        "reconcile"
    );
    if let Some(error) = &machine.parse_error {
        // Nothing can be decided on a machine we cannot read; it waits for a fix.
        tracing::warn!("cannot decode the machine, skipping it: {error}");
        let note =
            format!("The machine cannot be decoded and is skipped until it is fixed: {error}");
        ctx.event(
            &machine,
            EventType::Warning,
            "InvalidMachine",
            "Reconcile",
            note,
        );
        return Ok(Action::await_change());
    }
    if ctx.own_writes.outdate(&machine) {
        // The watch event of our last write is on its way and brings us back.
        tracing::debug!("cached copy predates our last write, skipping");
        return Ok(Action::await_change());
    }
    if ctx.frozen.get() && !machine.is_deleting() {
        // Thawing reconciles every machine again.
        tracing::info!("frozen: an API server does not answer; only deletions go on");
        return Ok(Action::await_change());
    }
    let mut machine = (*machine).clone();
    let name = machine.name().to_string();
    let api = ctx.machine_api();

    if machine.is_deleting() {
        return Box::pin(deletion::run(&ctx, machine)).await;
    }
    if let Some(finalizers) = writes::with_finalizer(&machine) {
        machine = ctx.set_finalizers(&machine, finalizers).await?;
    }

    let (class, secret) = match ctx.resolve(&machine) {
        Ok(found) => found,
        Err(problem) => return Box::pin(creation::report_input(&ctx, &machine, &problem)).await,
    };
    class::ensure_class_finalizer(&ctx.control, &class, &ctx.finalized_classes).await?;

    if matches!(
        machine.phase(),
        None | Some(Phase::Pending | Phase::CrashLoopBackOff)
    ) && !machine.spec.provider_id.is_empty()
    {
        let req = crate::driver::MachineRequest {
            machine: &machine,
            class: &class,
            secret: &secret,
        };
        if let Some(found) = ctx.driver.vm_trouble(&req).await {
            let reason = found.reason.clone();
            match trouble::decide(found, ctx.settings.vm_trouble_grace, jiff::Timestamp::now()) {
                trouble::Plan::Report(error) => {
                    // The VM cannot run: a creation failure, whatever the Node does.
                    return Box::pin(creation::failed(&ctx, &machine, error)).await;
                }
                trouble::Plan::Wait { note, after } => {
                    // It may clear by itself: no status until the grace ends.
                    tracing::info!(
                        reason,
                        reported_in = %format_go(after),
                        "the VM cannot run; reported on the machine if it lasts"
                    );
                    ctx.note(&machine, note);
                    return Ok(Action::requeue(after));
                }
            }
        }
    }

    let mut wake = retry::LONG;
    let mut upkeep = None;
    if machine.node_name().is_some() && machine.phase().is_some() {
        let node = machine.node_name().and_then(|n| ctx.node(n));
        if let Some(node) = &node {
            if node.metadata.deletion_timestamp.is_some() {
                // Someone deletes the Node: the machine goes with it, as in MCM.
                tracing::info!("node is being deleted, deleting its machine");
                writes::ignore_not_found(api.delete(&name, &Default::default()).await)?;
                return Ok(Action::await_change());
            }
            // Done before the status write, not beside it: that write's watch
            // event wakes the machine again, and beside it 750 of 1000 Nodes
            // were patched twice (N=1000 in `make bench`): their cached copy
            // did not show the first patch yet.
            upkeep = Some(Box::pin(node::upkeep(&ctx, &machine, &class, node)).await?);
            if let Some(node::Upkeep::Refused(why)) = &upkeep {
                // As MCM: a log line and another try in 5 s, no status (a
                // Failed one would count the machine in `failedMachines`).
                // Warnings repeat into one Event (the recorder counts them).
                let note = text::node_template_refused(&node.name_any(), why);
                tracing::warn!("{note}");
                ctx.event(
                    &machine,
                    EventType::Warning,
                    "NodeTemplateRefused",
                    "UpdateNode",
                    note,
                );
                wake = wake.min(retry::SHORT);
            }
        }
        let decide = |all: &[Arc<Machine>]| {
            health::decide(
                &machine,
                node.as_deref(),
                &ctx.settings,
                jiff::Timestamp::now(),
                || health::may_mark_failed(&machine, all),
            )
        };
        let mut plan = decide(&ctx.machines.state());
        let deployment = machine
            .label(crate::contract::DEPLOYMENT_NAME_LABEL)
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        let mut permit = None;
        if let (Some(change), Some(deployment)) = (&plan.change, &deployment)
            && health::needs_meltdown_permit(&machine, change)
        {
            // One Failed at a time per deployment: decide again under its permit.
            let Some(taken) = ctx.meltdown.take(deployment).await else {
                tracing::debug!("another machine of the deployment is being marked Failed");
                return Ok(Action::requeue(retry::SHORT));
            };
            permit = Some(taken);
            plan = decide(&ctx.machines.state());
        }
        if let Some(change) = &plan.change {
            if let Some(took) = plan.joined_after {
                // Before the status: a machine seen Running has its token deleted
                // and its join time recorded, even if we crash in between.
                machine = Box::pin(joined(&ctx, &machine, took)).await?;
            }
            ctx.write_status(&machine, change).await?;
            if permit.is_some() && change.phase == Some(Phase::Failed) {
                // The next holder must count this machine as Failed.
                ctx.wait_for_cached_phase(&name, &Phase::Failed, meltdown::CACHE_TIMEOUT)
                    .await;
            }
            if let Some(phase) = &change.phase
                && Some(phase) != machine.phase()
            {
                let type_ = match phase {
                    Phase::Unknown | Phase::Failed => EventType::Warning,
                    _ => EventType::Normal,
                };
                ctx.event(
                    &machine,
                    type_,
                    phase.as_str(),
                    "HealthCheck",
                    change.description.clone(),
                );
            }
            return Ok(Action::requeue(retry::LONG));
        }
        if let (Some(node), Some(upkeep)) = (&node, &upkeep)
            && let Some(change) = node::template_report(&machine, &node.name_any(), upkeep)
            && ctx.write_status(&machine, &change).await?.is_some()
        {
            tracing::info!("{}", change.description);
            return Ok(Action::requeue(retry::LONG));
        }
        if let Some(after) = plan.recheck_after {
            wake = wake.min(after);
        }
        if let Some(node) = &node
            && let Some(after) = Box::pin(inplace::run(&ctx, &machine, node)).await?
        {
            wake = wake.min(after);
        }
    }

    // After health, as in MCM: preservation reads the phase health just wrote.
    if let Some(after) = Box::pin(preservation::run(&ctx, &machine)).await? {
        wake = wake.min(after);
    }

    if machine.spec.provider_id.is_empty()
        || matches!(machine.phase(), None | Some(Phase::CrashLoopBackOff))
    {
        return Box::pin(creation::run(&ctx, machine, &class, secret)).await;
    }
    Ok(Action::requeue(wake))
}

/// First join: the token has done its job, and the join time is recorded.
/// The token and the annotation are independent: one round trip for both.
async fn joined<D>(ctx: &Context<D>, machine: &Machine, took: Duration) -> Result<Machine, Error> {
    let tokens = async {
        if let Some(target) = &ctx.target {
            bootstrap::delete_tokens(
                target,
                &ctx.mcm_tokens,
                &ctx.settings.namespace,
                machine.name(),
            )
            .await?;
        }
        Ok::<_, Error>(())
    };
    let patch = json!({"metadata": {
        "annotations": {JOIN_DURATION_ANNOTATION: format_go(took)},
        "resourceVersion": machine.metadata.resource_version,
    }});
    let annotate = async { Ok(ctx.patch_machine(machine.name(), &patch).await?) };
    let ((), machine) = futures::try_join!(tokens, annotate)?;
    Ok(machine)
}

/// Requeue after a failed reconcile; the error is logged and counted.
pub fn error_policy<D>(machine: Arc<Machine>, error: &Error, _ctx: Arc<Context<D>>) -> Action {
    let wait = error.retry_after();
    match error.category() {
        Category::Conflict => tracing::debug!(machine = machine.name(), "conflict, retrying"),
        // Its finalizer is gone and so is the machine; the cache has not seen it yet.
        Category::NotFound if machine.is_deleting() => {
            tracing::debug!(machine = machine.name(), "deleted meanwhile")
        }
        category => tracing::warn!(
            machine = machine.name(),
            category = category.as_str(),
            "reconcile failed: {error}"
        ),
    }
    Action::requeue(wait)
}

#[cfg(test)]
mod tests;
