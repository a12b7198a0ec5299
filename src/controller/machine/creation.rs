// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Creation: ask the driver whether the VM exists, create it if not, record
//! providerID and node name, then mark the machine Pending. [`plan`] decides
//! each step from what was observed; this module only observes and acts.

pub(crate) mod plan;

use crate::api::{Machine, MachineClass};
use crate::contract::USER_DATA_KEY;
use crate::controller::action::Action;
use crate::controller::bootstrap;
use crate::controller::context::{Context, InputError};
use crate::controller::error::Error;
use crate::driver::{
    Driver, DriverResult, MachineError, MachineRequest, MachineResponse, SecretData,
};
use plan::{Call, Failure, Finish, Given, Invalid, Made, Record, Stale, Start};

/// One pass of creation: GetMachineStatus, then CreateMachine or
/// InitializeMachine if the plan says so, then what is recorded of the VM.
pub(crate) async fn run<D: Driver>(
    ctx: &Context<D>,
    mut machine: Machine,
    class: &MachineClass,
    secret: SecretData,
) -> Result<Action, Error> {
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
    let answer = ctx.driver.get_machine_status(&status_req).await;
    let record = match plan::after_status(&machine, answer, &given(ctx)) {
        Start::Record(record) => record,
        Start::Fail(failure) => return fail(ctx, &machine, failure).await,
        Start::Call(call) => {
            let (answer, request_secret) =
                make(ctx, &machine, class, &secret, &user_data, call).await?;
            let node = answer.as_ref().ok().and_then(|vm| ctx.node(&vm.node_name));
            match plan::after_call(&machine, call, answer, node.as_deref(), &given(ctx)) {
                Made::Record { event, record } => {
                    ctx.note(&machine, event);
                    record
                }
                Made::Stale(stale) => {
                    return remove_stale(ctx, &machine, class, &request_secret, stale).await;
                }
                Made::Fail(failure) => return fail(ctx, &machine, failure).await,
            }
        }
    };

    let (patch, finish) = match record {
        Record::Empty(e) => return Err(e.into()),
        Record::Write { patch, finish } => (patch, finish),
    };
    // The plan read the phase before this patch: the patch carries the
    // machine's resourceVersion, so it succeeds only on that very machine.
    if let Some(patch) = patch {
        machine = ctx.patch_machine(machine.name(), &patch).await?;
    }
    if let Finish::Status(change) = &finish {
        ctx.write_status(&machine, change).await?;
    }
    Ok(Action::requeue(finish.retry()))
}

/// What the plans read of the context, the clock read now.
fn given<D>(ctx: &Context<D>) -> Given<'_> {
    Given {
        settings: &ctx.settings,
        with_target: ctx.target.is_some(),
        now: jiff::Timestamp::now(),
    }
}

/// CreateMachine or InitializeMachine, with the user data's placeholders
/// filled: a bootstrap token (with a target cluster) and the machine's name.
/// Returns the answer and the secret sent, which a stale VM's deletion reuses.
async fn make<D: Driver>(
    ctx: &Context<D>,
    machine: &Machine,
    class: &MachineClass,
    secret: &SecretData,
    user_data: &str,
    call: Call,
) -> Result<(DriverResult<MachineResponse>, SecretData), Error> {
    let name = machine.name();
    let token = match &ctx.target {
        Some(target) => Some(
            bootstrap::ensure_token(
                &target.client,
                &ctx.settings.namespace,
                name,
                ctx.settings.creation_timeout(machine),
                &ctx.settings.bootstrap_token_auth_extra_groups,
            )
            .await?,
        ),
        None => None,
    };
    let mut request_secret = secret.clone();
    let data = bootstrap::substitute(user_data, token.as_deref(), name);
    request_secret.insert(USER_DATA_KEY.to_string(), data.into_bytes());
    let req = MachineRequest {
        machine,
        class,
        secret: &request_secret,
    };
    let answer = match call {
        Call::Create => ctx.driver.create_machine(&req).await,
        Call::Initialize => ctx.driver.initialize_machine(&req).await,
    };
    Ok((answer, request_secret))
}

/// Deletes the VM of a stale Node and marks the machine Failed.
async fn remove_stale<D: Driver>(
    ctx: &Context<D>,
    machine: &Machine,
    class: &MachineClass,
    secret: &SecretData,
    stale: Stale,
) -> Result<Action, Error> {
    tracing::warn!(
        node = stale.vm.node_name,
        "a Node of the new VM's name was there before it: deleting the VM and marking the machine Failed"
    );
    let mut with_vm = machine.clone();
    with_vm.spec.provider_id = stale.vm.provider_id.clone();
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
    if ctx.write_status(machine, &stale.change).await?.is_some() {
        ctx.note(machine, stale.event);
    }
    Ok(Action::requeue(stale.retry))
}

/// Records a provider failure as MCM does: CrashLoopBackOff, or Failed past the creation timeout.
pub(crate) async fn failed<D>(
    ctx: &Context<D>,
    machine: &Machine,
    err: MachineError,
) -> Result<Action, Error> {
    let failure = plan::failure(machine, err, &given(ctx));
    fail(ctx, machine, failure).await
}

async fn fail<D>(ctx: &Context<D>, machine: &Machine, failure: Failure) -> Result<Action, Error> {
    if ctx.write_status(machine, &failure.change).await?.is_some() {
        ctx.note(machine, failure.event);
    }
    let e = &failure.error;
    tracing::warn!(code = %e.code, "creation failed: {}", e.message);
    Ok(Action::requeue(failure.retry))
}

/// Input that keeps the machine from being created: status and Event, and a
/// watch on the class and its secrets brings us back when it is fixed.
pub(crate) async fn report_input<D>(
    ctx: &Context<D>,
    machine: &Machine,
    problem: &InputError,
) -> Result<Action, Error> {
    let invalid = plan::invalid(machine, problem, &given(ctx));
    let retry = invalid.retry();
    match invalid {
        Invalid::Warn(event) => ctx.note(machine, event),
        Invalid::Fail { change, event } => {
            if ctx.write_status(machine, &change).await?.is_some() {
                ctx.note(machine, event);
            }
        }
    }
    Ok(Action::requeue(retry))
}
