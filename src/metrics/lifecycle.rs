// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Which step of a machine's life (created, joined, deleted) a change of the
//! watched object completes, and how long it took.

use std::time::Duration;

use crate::api::Machine;
use crate::contract::{OpType, Phase};

/// A step of a machine's life whose duration is observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Creation timestamp → the VM exists (Pending, or Available without a target).
    Created,
    /// Creation timestamp → first Running.
    Joined,
    /// Deletion timestamp → the object is gone.
    Deleted,
}

/// What a change of a machine from `old` (as cached, if it was) to `new` completes,
/// with how long it took. Observing transitions of the watched object, rather than
/// hooks in the flows, counts each step once however often it is retried, and
/// whichever controller made it.
pub(crate) fn lifecycle(
    old: Option<&Machine>,
    new: &Machine,
    deleted: bool,
    now: jiff::Timestamp,
) -> Vec<(Lifecycle, Duration)> {
    let since = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
                 until: jiff::Timestamp| {
        t.and_then(|t| Duration::try_from(until.duration_since(t.0)).ok())
    };
    let created = new.metadata.creation_timestamp.as_ref();
    if deleted {
        return since(new.metadata.deletion_timestamp.as_ref(), now)
            .map(|d| vec![(Lifecycle::Deleted, d)])
            .unwrap_or_default();
    }
    // A machine first seen (no old state) counts only if it is brand new, not
    // one that existed before we started.
    let old_phase = old.and_then(Machine::phase);
    let new_phase = new.phase();
    if old_phase == new_phase {
        return Vec::new();
    }
    let at = new
        .status
        .current_status
        .last_update_time
        .as_ref()
        .map_or(now, |t| t.0);
    let mut out = Vec::new();
    if matches!(old_phase, None | Some(Phase::CrashLoopBackOff))
        && matches!(new_phase, Some(Phase::Pending | Phase::Available))
        && let Some(d) = since(created, at)
    {
        out.push((Lifecycle::Created, d));
    }
    // First join only: a re-join after Unknown is a HealthCheck, not a Create.
    if new_phase == Some(&Phase::Running)
        && new.status.last_operation.type_ == Some(OpType::Create)
        && let Some(d) = since(created, at)
    {
        out.push((Lifecycle::Joined, d));
    }
    out
}
