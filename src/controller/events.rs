// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Events on Machines, in the core `v1` API.
//!
//! kube-runtime's `Recorder` writes `events.k8s.io/v1` Events only. Gardener's
//! ClusterRole for MCM in the seed (`system:machine-controller-manager-runtime`)
//! grants `events` in the core group and nothing in `events.k8s.io`, so there
//! every Event of that recorder is refused. This thin layer writes core Events as
//! client-go's recorder does, and counts a repeated warning into the Event that
//! first reported it (a PATCH of `count` and `lastTimestamp`) instead of writing
//! a new one each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::status;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// How long a warning is counted into the Event that first reported it.
const SERIES_WINDOW: Duration = Duration::from_secs(10 * 60);

/// An Event's type: Normal marks a step, Warning a problem someone may have
/// to look at (and is counted when it repeats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One Event to publish on `object`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: String,
    pub action: String,
    pub message: String,
}

/// Repeats of a warning: by object UID, reason and message.
type Key = (String, String, String);

#[derive(Debug)]
struct Series {
    name: String,
    count: i32,
    seen: Instant,
}

/// What to send for one Event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Send {
    Create { name: String },
    Count { name: String, count: i32 },
}

/// The warnings sent lately, to count repeats into their first Event.
#[derive(Debug, Default)]
struct Book(Mutex<HashMap<Key, Series>>);

impl Book {
    /// Decides whether `note` starts an Event or counts into one, at `now`.
    /// Normal Events mark one-off steps and are never counted (nor kept: with
    /// 1000 machines such a cache was most of the controller's heap).
    fn plan(&self, object: &ObjectReference, note: &Note, now: Instant, stamp: &str) -> Send {
        let name = format!("{}.{stamp}", object.name.as_deref().unwrap_or("machine"));
        if note.type_ == EventType::Normal {
            return Send::Create { name };
        }
        let key = (
            object.uid.clone().unwrap_or_default(),
            note.reason.clone(),
            note.message.clone(),
        );
        let mut series = self.0.lock().unwrap_or_else(|e| e.into_inner());
        series.retain(|_, s| now.saturating_duration_since(s.seen) < SERIES_WINDOW);
        match series.get_mut(&key) {
            Some(s) => {
                s.count = s.count.saturating_add(1);
                s.seen = now;
                Send::Count {
                    name: s.name.clone(),
                    count: s.count,
                }
            }
            None => {
                series.insert(
                    key,
                    Series {
                        name: name.clone(),
                        count: 1,
                        seen: now,
                    },
                );
                Send::Create { name }
            }
        }
    }
}

/// Publishes core Events; clones share the warning series.
#[derive(Clone)]
pub struct Events {
    client: Client,
    component: String,
    instance: String,
    book: Arc<Book>,
}

impl Events {
    pub fn new(client: Client, component: &str, instance: Option<&str>) -> Self {
        Events {
            client,
            component: component.to_string(),
            instance: instance.unwrap_or(component).to_string(),
            book: Arc::default(),
        }
    }

    /// Writes the Event; a counted one whose Event is gone starts anew.
    pub async fn publish(&self, object: &ObjectReference, note: &Note) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let stamp = format!("{:x}", now.as_nanosecond());
        let namespace = object.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let create = |name: String| Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: object.clone(),
            type_: Some(note.type_.as_str().into()),
            reason: Some(note.reason.clone()),
            action: Some(note.action.clone()),
            message: Some(note.message.clone()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        match self.book.plan(object, note, Instant::now(), &stamp) {
            Send::Create { name } => api
                .create(&PostParams::default(), &create(name))
                .await
                .map(drop),
            Send::Count { name, count } => {
                let patch = json!({"count": count, "lastTimestamp": Time(now)});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Err(kube::Error::Api(s)) if status::not_found(&s) => api
                        .create(&PostParams::default(), &create(format!("{name}.{stamp}")))
                        .await
                        .map(drop),
                    other => other.map(drop),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(type_: EventType, message: &str) -> Note {
        Note {
            type_,
            reason: "CreateFailed".into(),
            action: "CreateMachine".into(),
            message: message.into(),
        }
    }

    #[test]
    fn repeated_warnings_count_into_one_event_and_normal_ones_never_do() {
        let e = Book::default();
        let object = ObjectReference {
            name: Some("m1".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let t = Instant::now();
        let first = e.plan(&object, &note(EventType::Warning, "boom"), t, "a");
        assert_eq!(
            first,
            Send::Create {
                name: "m1.a".into()
            }
        );
        assert_eq!(
            e.plan(&object, &note(EventType::Warning, "boom"), t, "b"),
            Send::Count {
                name: "m1.a".into(),
                count: 2
            }
        );
        assert_eq!(
            e.plan(&object, &note(EventType::Warning, "other"), t, "c"),
            Send::Create {
                name: "m1.c".into()
            }
        );
        assert_eq!(
            e.plan(&object, &note(EventType::Normal, "boom"), t, "d"),
            Send::Create {
                name: "m1.d".into()
            }
        );
        // After the window a warning starts a new Event.
        assert_eq!(
            e.plan(
                &object,
                &note(EventType::Warning, "boom"),
                t + SERIES_WINDOW,
                "e"
            ),
            Send::Create {
                name: "m1.e".into()
            }
        );
    }
}
