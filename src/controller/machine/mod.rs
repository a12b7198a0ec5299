// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The reconcile of one machine, in MCM's order: deletion if it is deleting;
//! else finalizer, class, node upkeep and health, then creation while it has no
//! VM. Each step decides in a pure function (see the modules below) and acts
//! through the context.

pub(crate) mod creation;
pub(crate) mod deletion;
pub(crate) mod drain;
pub(crate) mod health;
pub(crate) mod inplace;
pub(crate) mod meltdown;
pub(crate) mod preservation;
pub(crate) mod trouble;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;

use kube::ResourceExt;
use serde_json::json;

use super::action::Action;
use super::context::Context;
use super::error::{Category, Error, retry};
use super::events::EventType;
use super::{bootstrap, class, node, writes};
use crate::api::{Machine, MachineClass};
use crate::contract::{JOIN_DURATION_ANNOTATION, Phase, text};
use crate::driver::{Driver, MachineRequest, SecretData};
use crate::duration::format_go;

/// Break with the Action a stage decided, or go on with what it found.
type Stage<T = ()> = ControlFlow<Action, T>;

/// The value of a stage that went on; the Action of one that broke.
macro_rules! stage {
    ($e:expr) => {
        match $e {
            ControlFlow::Continue(v) => v,
            ControlFlow::Break(action) => return Ok(action),
        }
    };
}

/// One pass over one machine, as a list of stages in MCM's order. Everything
/// logged inside carries the machine's name through the span.
#[tracing::instrument(skip_all, fields(machine = %machine.name()))]
pub(crate) async fn reconcile<D: Driver>(
    machine: Arc<Machine>,
    ctx: Arc<Context<D>>,
) -> Result<Action, Error> {
    tracing::trace!("reconcile: waiting for caches");
    ctx.wait_ready().await?;
    tracing::debug!(
        phase = machine.phase().map_or("", Phase::as_str),
        "reconcile"
    );
    stage!(guards(&ctx, &machine));
    let mut machine = (*machine).clone();
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
    stage!(Box::pin(vm_trouble(&ctx, &machine, &class, &secret)).await?);

    let mut wake = retry::LONG;
    if machine.node_name().is_some() && machine.phase().is_some() {
        wake = stage!(Box::pin(with_node(&ctx, &machine, &class)).await?);
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

/// Machines no reconcile may act on now: undecodable, a cached copy older
/// than our last write, or any but a deleting one while frozen.
fn guards<D>(ctx: &Context<D>, machine: &Machine) -> Stage {
    if let Some(error) = &machine.parse_error {
        // Nothing can be decided on a machine we cannot read; it waits for a fix.
        tracing::warn!("cannot decode the machine, skipping it: {error}");
        let note =
            format!("The machine cannot be decoded and is skipped until it is fixed: {error}");
        ctx.event(
            machine,
            EventType::Warning,
            "InvalidMachine",
            "Reconcile",
            note,
        );
        return ControlFlow::Break(Action::await_change());
    }
    if ctx.own_writes.outdate(machine) {
        // The watch event of our last write is on its way and brings us back.
        tracing::debug!("cached copy predates our last write, skipping");
        return ControlFlow::Break(Action::await_change());
    }
    if ctx.frozen.get() && !machine.is_deleting() {
        // Thawing reconciles every machine again.
        tracing::info!("frozen: an API server does not answer; only deletions go on");
        return ControlFlow::Break(Action::await_change());
    }
    ControlFlow::Continue(())
}

/// A VM that cannot run (the driver says why): a creation failure once it
/// lasts past the grace, whatever the Node does.
async fn vm_trouble<D: Driver>(
    ctx: &Context<D>,
    machine: &Machine,
    class: &MachineClass,
    secret: &SecretData,
) -> Result<Stage, Error> {
    let pending = matches!(
        machine.phase(),
        None | Some(Phase::Pending | Phase::CrashLoopBackOff)
    );
    if !pending || machine.spec.provider_id.is_empty() {
        return Ok(ControlFlow::Continue(()));
    }
    let req = MachineRequest {
        machine,
        class,
        secret,
    };
    let Some(found) = ctx.driver.vm_trouble(&req).await else {
        return Ok(ControlFlow::Continue(()));
    };
    let reason = found.reason.clone();
    Ok(ControlFlow::Break(
        match trouble::decide(found, ctx.settings.vm_trouble_grace, jiff::Timestamp::now()) {
            trouble::Plan::Report(error) => Box::pin(creation::failed(ctx, machine, error)).await?,
            trouble::Plan::Wait { note, after } => {
                // It may clear by itself: no status until the grace ends.
                tracing::info!(
                    reason,
                    reported_in = %format_go(after),
                    "the VM cannot run; reported on the machine if it lasts"
                );
                ctx.note(machine, note);
                Action::requeue(after)
            }
        },
    ))
}

/// A machine with a Node name and a phase: its Node's upkeep, its health, a
/// refused template taken back, its in-place update. Goes on with when to
/// look again.
async fn with_node<D: Driver>(
    ctx: &Context<D>,
    machine: &Machine,
    class: &MachineClass,
) -> Result<Stage<Duration>, Error> {
    let mut wake = retry::LONG;
    let node = machine.node_name().and_then(|n| ctx.node(n));
    let mut upkeep = None;
    if let Some(node) = &node {
        if node.metadata.deletion_timestamp.is_some() {
            // Someone deletes the Node: the machine goes with it, as in MCM.
            tracing::info!("node is being deleted, deleting its machine");
            let deleted = ctx
                .machine_api()
                .delete(machine.name(), &Default::default())
                .await;
            writes::ignore_not_found(deleted)?;
            return Ok(ControlFlow::Break(Action::await_change()));
        }
        let done = Box::pin(upkeep_of(ctx, machine, class, node)).await?;
        if matches!(done, node::Upkeep::Refused(_)) {
            wake = wake.min(retry::SHORT);
        }
        upkeep = Some(done);
    }
    let plan = match Box::pin(health(ctx, machine, node.as_deref())).await? {
        ControlFlow::Continue(plan) => plan,
        ControlFlow::Break(action) => return Ok(ControlFlow::Break(action)),
    };
    if let (Some(node), Some(upkeep)) = (&node, &upkeep)
        && let Some(change) = node::template_report(machine, &node.name_any(), upkeep)
        && ctx.write_status(machine, &change).await?.is_some()
    {
        tracing::info!("{}", change.description);
        return Ok(ControlFlow::Break(Action::requeue(retry::LONG)));
    }
    if let Some(after) = plan.recheck_after {
        wake = wake.min(after);
    }
    if let Some(node) = &node
        && let Some(after) = Box::pin(inplace::run(ctx, machine, node)).await?
    {
        wake = wake.min(after);
    }
    Ok(ControlFlow::Continue(wake))
}

/// The Node's label, finalizer, template and capacity. Done before the
/// health's status write, not beside it: that write's watch event wakes the
/// machine again, and beside it 750 of 1000 Nodes were patched twice (N=1000
/// in `make bench`): their cached copy did not show the first patch yet.
async fn upkeep_of<D>(
    ctx: &Context<D>,
    machine: &Machine,
    class: &MachineClass,
    node: &Node,
) -> Result<node::Upkeep, Error> {
    let upkeep = node::upkeep(ctx, machine, class, node).await?;
    if let node::Upkeep::Refused(why) = &upkeep {
        // As MCM: a log line and another try in 5 s, no status (a Failed one
        // would count the machine in `failedMachines`). Warnings repeat into
        // one Event (the recorder counts them).
        let note = text::node_template_refused(&node.name_any(), why);
        tracing::warn!("{note}");
        ctx.event(
            machine,
            EventType::Warning,
            "NodeTemplateRefused",
            "UpdateNode",
            note,
        );
    }
    Ok(upkeep)
}

/// Health decided and written: a phase change is written with its Event and
/// ends the pass; otherwise the plan goes on (when to look again). Marking a
/// machine Failed takes its deployment's meltdown permit first, and decides
/// again under it.
async fn health<D>(
    ctx: &Context<D>,
    machine: &Machine,
    node: Option<&Node>,
) -> Result<Stage<health::HealthPlan>, Error> {
    // The other machines are read only when a change needs MCM's meltdown
    // rule, and then only those of the deployment: a copy of the whole cache
    // in every reconcile would grow with the fleet.
    let decide = || {
        health::decide(machine, node, &ctx.settings, jiff::Timestamp::now(), || {
            health::may_mark_failed(machine, &health::same_deployment(&ctx.machines, machine))
        })
    };
    let mut plan = decide();
    let deployment = machine
        .label(crate::contract::DEPLOYMENT_NAME_LABEL)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let mut permit = None;
    if let (Some(change), Some(deployment)) = (&plan.change, &deployment)
        && health::needs_meltdown_permit(machine, change)
    {
        // One Failed at a time per deployment: decide again under its permit.
        let Some(taken) = ctx.meltdown.take(deployment).await else {
            tracing::debug!("another machine of the deployment is being marked Failed");
            return Ok(ControlFlow::Break(Action::requeue(retry::SHORT)));
        };
        permit = Some(taken);
        plan = decide();
    }
    let Some(change) = &plan.change else {
        return Ok(ControlFlow::Continue(plan));
    };
    let mut machine = machine.clone();
    if let Some(took) = plan.joined_after {
        // Before the status: a machine seen Running has its token deleted
        // and its join time recorded, even if we crash in between.
        machine = Box::pin(joined(ctx, &machine, took)).await?;
    }
    ctx.write_status(&machine, change).await?;
    if permit.is_some() && change.phase == Some(Phase::Failed) {
        // The next holder must count this machine as Failed.
        ctx.wait_for_cached_phase(machine.name(), &Phase::Failed, meltdown::CACHE_TIMEOUT)
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
    Ok(ControlFlow::Break(Action::requeue(retry::LONG)))
}

/// First join: the token has done its job, and the join time is recorded.
/// The token and the annotation are independent: one round trip for both.
async fn joined<D>(ctx: &Context<D>, machine: &Machine, took: Duration) -> Result<Machine, Error> {
    let tokens = async {
        if let Some(target) = &ctx.target {
            bootstrap::delete_tokens(
                &target.client,
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
pub(crate) fn error_policy<D>(
    machine: Arc<Machine>,
    error: &Error,
    _ctx: Arc<Context<D>>,
) -> Action {
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
