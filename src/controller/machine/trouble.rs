// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Not in MCM: a VM that cannot run (an image that cannot be pulled, no node
//! to schedule on, a crash loop, a failed Pod) is reported on its machine only
//! once it has lasted past `--machine-vm-trouble-grace`. A `Failed`
//! lastOperation puts the machine into its MachineDeployment's
//! `failedMachines`, which fails Gardener's Worker reconcile and health check:
//! a pull error that clears by itself a few seconds later must not. Until then
//! the machine keeps its phase and status, and a Warning Event says what is
//! wrong and when it will be reported. Pure: [`super::reconcile`] acts.

use std::time::Duration;

use crate::contract::text;
use crate::controller::events::{EventType, Note};
use crate::driver::{MachineError, VmTrouble};
use crate::duration::{age, format_go};

/// What a trouble of the VM calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Within the grace: warn (the note), and look again after `after`, when
    /// the grace ends (a change of the VM brings the machine back sooner).
    Wait { note: Note, after: Duration },
    /// It lasted past the grace, or the driver cannot say since when: a
    /// creation failure in the provider's own words.
    Report(MachineError),
}

/// Decides from the trouble, the grace and the clock.
pub(crate) fn decide(trouble: VmTrouble, grace: Duration, now: jiff::Timestamp) -> Plan {
    let VmTrouble {
        reason,
        error,
        since,
    } = trouble;
    let Some(since) = since else {
        return Plan::Report(error);
    };
    let lasted = age(Some(&since), now);
    let deadline = jiff::SignedDuration::try_from(grace)
        .ok()
        .and_then(|g| since.checked_add(g).ok());
    let (Some(after), Some(deadline)) = (grace.checked_sub(lasted), deadline) else {
        return Plan::Report(error);
    };
    if after.is_zero() {
        return Plan::Report(error);
    }
    let note = Note {
        type_: EventType::Warning,
        reason: "VMTrouble".into(),
        action: "CreateMachine".into(),
        // The same text for the whole grace, so that repeats count into one Event.
        message: text::vm_trouble_in_grace(
            &reason,
            &error.message,
            &since.to_string(),
            &format_go(grace),
            &deadline.to_string(),
        ),
    };
    Plan::Wait { note, after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Code;

    const GRACE: Duration = Duration::from_secs(60);

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn pull_error(since: Option<&str>) -> VmTrouble {
        VmTrouble {
            reason: "ErrImagePull".into(),
            error: MachineError::new(
                Code::Unavailable,
                "pod \"machine-m\" cannot run container \"node\": ErrImagePull: not found",
            ),
            since: since.map(at),
        }
    }

    #[test]
    fn a_fresh_trouble_waits_for_the_end_of_the_grace_and_says_when() {
        let plan = decide(
            pull_error(Some("2026-12-03T10:00:00Z")),
            GRACE,
            at("2026-12-03T10:00:15Z"),
        );
        let Plan::Wait { note, after } = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(after, Duration::from_secs(45));
        assert_eq!(note.type_, EventType::Warning);
        assert_eq!(note.reason, "VMTrouble");
        assert_eq!(
            note.message,
            "ErrImagePull since 2026-12-03T10:00:00Z: pod \"machine-m\" cannot run container \
             \"node\": ErrImagePull: not found. Reported on the machine if it lasts 1m0s \
             (at 2026-12-03T10:01:00Z)"
        );
        // Later in the grace: the same Event text, a shorter wait.
        let Plan::Wait { note: later, after } = decide(
            pull_error(Some("2026-12-03T10:00:00Z")),
            GRACE,
            at("2026-12-03T10:00:59.5Z"),
        ) else {
            panic!()
        };
        assert_eq!(later, note);
        assert_eq!(after, Duration::from_millis(500));
    }

    #[test]
    fn a_trouble_past_the_grace_is_reported_in_the_providers_words() {
        let trouble = pull_error(Some("2026-12-03T10:00:00Z"));
        for now in ["2026-12-03T10:01:00Z", "2026-12-03T12:00:00Z"] {
            assert_eq!(
                decide(trouble.clone(), GRACE, at(now)),
                Plan::Report(trouble.error.clone()),
                "{now}"
            );
        }
    }

    #[test]
    fn without_a_start_or_a_grace_it_is_reported_at_once() {
        let now = at("2026-12-03T10:00:00Z");
        let unknown = pull_error(None);
        assert_eq!(
            decide(unknown.clone(), GRACE, now),
            Plan::Report(unknown.error)
        );
        let fresh = pull_error(Some("2026-12-03T10:00:00Z"));
        assert_eq!(
            decide(fresh.clone(), Duration::ZERO, now),
            Plan::Report(fresh.error)
        );
    }

    #[test]
    fn a_start_in_the_future_waits_no_longer_than_the_grace_and_nothing_overflows() {
        // A provider clock ahead of ours: the trouble counts as just begun.
        let ahead = pull_error(Some("2026-12-03T10:05:00Z"));
        let Plan::Wait { after, .. } = decide(ahead, GRACE, at("2026-12-03T10:00:00Z")) else {
            panic!()
        };
        assert_eq!(after, GRACE);
        let trouble = pull_error(Some("2026-12-03T10:00:00Z"));
        assert_eq!(
            decide(trouble.clone(), Duration::MAX, at("2026-12-03T10:00:00Z")),
            Plan::Report(trouble.error)
        );
    }
}
