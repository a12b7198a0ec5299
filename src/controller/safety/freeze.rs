// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The API-server status check. When the control or the target API server has not
//! answered for longer than `--machine-safety-apiserver-statuscheck-timeout`, the
//! controller freezes: machines that are not being deleted are left alone, so that
//! Nodes that look unhealthy only because nobody can reach them are not replaced.
//! Once both answer again, machines that went Unknown meanwhile are reset to
//! Running (their health timeout starts afresh) and the controller thaws.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::time::Instant;

use crate::api::Machine;
use crate::contract::{OpState, OpType, Phase};
use crate::controller::context::Context;
use crate::controller::status::StatusChange;
use crate::metrics::Metrics;

/// MCM's lastOperation for a machine reset on thawing.
pub(crate) const RESET_DESCRIPTION: &str = crate::contract::text::HEALTH_TIMEOUT_RESET;

/// A name no object has: a GET answers 404 when the API server is fine.
const PROBE_NAME: &str = "machine-controller-apiserver-check";

/// What one probe changes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    Stay,
    Freeze,
    Thaw,
}

/// The check's memory between probes.
#[derive(Debug, Default)]
pub(crate) struct Check {
    frozen: bool,
    down_since: Option<Instant>,
}

impl Check {
    /// Takes one probe's answer; returns the transition and when to probe next.
    /// While the servers are down and the controller is not frozen yet, probes
    /// come five times per timeout, as in MCM.
    pub(crate) fn observe(
        &mut self,
        up: bool,
        now: Instant,
        period: Duration,
        timeout: Duration,
    ) -> (Transition, Duration) {
        match (self.frozen, up) {
            (true, true) => {
                self.frozen = false;
                self.down_since = None;
                (Transition::Thaw, period)
            }
            (true, false) => (Transition::Stay, period),
            (false, true) => {
                // MCM keeps the start of an earlier outage, so that a second short
                // one could freeze at once; a recovery ends the outage here.
                self.down_since = None;
                (Transition::Stay, period)
            }
            (false, false) => {
                let since = *self.down_since.get_or_insert(now);
                let transition = if now.duration_since(since) > timeout {
                    self.frozen = true;
                    Transition::Freeze
                } else {
                    Transition::Stay
                };
                (transition, timeout / 5)
            }
        }
    }

    /// A thaw that could not finish: frozen again, retried soon.
    pub(crate) fn refreeze(&mut self) {
        self.frozen = true;
    }
}

/// True when a GET answers found or not found, as MCM's check asks.
async fn answers<K>(api: Api<K>, timeout: Duration) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match tokio::time::timeout(timeout, api.get_opt(PROBE_NAME)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(crate::client::describe(&e)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn probe<D>(ctx: &Context<D>, timeout: Duration) -> Result<(), String> {
    answers(ctx.machine_api(), timeout)
        .await
        .map_err(|e| format!("control API server: {e}"))?;
    if let Some(target) = &ctx.target {
        answers(Api::<Node>::all(target.client.clone()), timeout)
            .await
            .map_err(|e| format!("target API server: {e}"))?;
    }
    Ok(())
}

/// Resets every Unknown machine that is not being deleted to Running.
async fn reset_unknown<D>(ctx: &Context<D>) -> Result<usize, kube::Error> {
    let change = StatusChange::new(RESET_DESCRIPTION, OpState::Successful, OpType::HealthCheck)
        .phase(Phase::Running);
    let unknown: Vec<Arc<Machine>> = ctx
        .machines
        .state()
        .into_iter()
        .filter(|m| m.phase() == Some(&Phase::Unknown) && !m.is_deleting())
        .collect();
    for machine in &unknown {
        ctx.write_status(machine, &change).await?;
        tracing::info!(
            machine = machine.name(),
            "health timeout reset: the API servers answer again"
        );
    }
    Ok(unknown.len())
}

/// Probes every period until the process ends. `thawed` is told after a thaw,
/// so that the machines left alone meanwhile are looked at again.
pub(crate) async fn run<D>(
    ctx: Arc<Context<D>>,
    metrics: Arc<Metrics>,
    thawed: futures::channel::mpsc::UnboundedSender<()>,
) {
    let (period, timeout) = (
        ctx.settings.apiserver_statuscheck_period,
        ctx.settings.apiserver_statuscheck_timeout,
    );
    let mut check = Check::default();
    loop {
        let answer = probe(&ctx, timeout / 5).await;
        let (transition, mut next) = check.observe(answer.is_ok(), Instant::now(), period, timeout);
        match (transition, answer) {
            (Transition::Freeze, answer) => {
                tracing::warn!(
                    "freezing: an API server has not answered for more than {timeout:?} ({}); only deletions go on",
                    answer.err().unwrap_or_default()
                );
                ctx.frozen.set(true);
                metrics.set_frozen(true);
            }
            (Transition::Thaw, _) => match reset_unknown(&ctx).await {
                Ok(reset) => {
                    tracing::info!(reset, "thawing: both API servers answer again");
                    ctx.frozen.set(false);
                    metrics.set_frozen(false);
                    let _ = thawed.unbounded_send(());
                }
                Err(e) => {
                    tracing::warn!("still frozen, resetting Unknown machines failed: {e}");
                    check.refreeze();
                    next = timeout / 5;
                }
            },
            (Transition::Stay, Err(e)) => {
                tracing::debug!("API server check: {e}");
            }
            (Transition::Stay, Ok(())) => {}
        }
        tokio::time::sleep(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(60);
    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn freezes_only_after_the_timeout_and_thaws_on_the_first_answer() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut check = Check::default();
        assert_eq!(
            check.observe(true, at(0), PERIOD, TIMEOUT),
            (Transition::Stay, PERIOD)
        );
        assert_eq!(
            check.observe(false, at(60), PERIOD, TIMEOUT),
            (Transition::Stay, TIMEOUT / 5)
        );
        assert_eq!(
            check.observe(false, at(90), PERIOD, TIMEOUT).0,
            Transition::Stay,
            "exactly the timeout is not more than it"
        );
        assert_eq!(
            check.observe(false, at(91), PERIOD, TIMEOUT),
            (Transition::Freeze, TIMEOUT / 5)
        );
        assert_eq!(
            check.observe(false, at(97), PERIOD, TIMEOUT),
            (Transition::Stay, PERIOD),
            "frozen and still down"
        );
        assert_eq!(
            check.observe(true, at(157), PERIOD, TIMEOUT),
            (Transition::Thaw, PERIOD)
        );
        assert_eq!(
            check.observe(true, at(217), PERIOD, TIMEOUT).0,
            Transition::Stay
        );
    }

    #[test]
    fn a_recovery_ends_the_outage() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut check = Check::default();
        check.observe(false, at(0), PERIOD, TIMEOUT);
        check.observe(true, at(20), PERIOD, TIMEOUT);
        // A new outage counts from its own start.
        assert_eq!(
            check.observe(false, at(40), PERIOD, TIMEOUT).0,
            Transition::Stay
        );
        assert_eq!(
            check.observe(false, at(71), PERIOD, TIMEOUT).0,
            Transition::Freeze
        );
    }

    #[test]
    fn a_failed_thaw_stays_frozen() {
        let start = Instant::now();
        let mut check = Check::default();
        check.observe(false, start, PERIOD, TIMEOUT);
        check.observe(false, start + TIMEOUT * 2, PERIOD, TIMEOUT);
        assert_eq!(
            check.observe(true, start + TIMEOUT * 3, PERIOD, TIMEOUT).0,
            Transition::Thaw
        );
        check.refreeze();
        assert_eq!(
            check.observe(true, start + TIMEOUT * 4, PERIOD, TIMEOUT).0,
            Transition::Thaw
        );
    }
}
