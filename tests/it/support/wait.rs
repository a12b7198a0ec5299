// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Waiting for the cluster, by watching, with a timeout.
//!
//! Each wait watches the objects (a watch starts with a list, so a state reached
//! before the call counts), checks the predicate on every change, and when the
//! timeout passes panics with the description and the last state it saw, so a
//! failing test shows what the cluster looked like. Never sleep in a test instead.
//! [`holds_until`] is the other way round: it watches for a while and panics as
//! soon as something is no longer so; [`never`] watches in the background while
//! the test goes on, and is asked at the end.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Resource, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::{Instant, timeout_at};

/// What the waits need of a resource type.
pub trait Watchable:
    Resource<DynamicType: Default + Eq + Hash + Clone>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watchable for K where
    K: Resource<DynamicType: Default + Eq + Hash + Clone>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// Waits until object `name` exists and `predicate` holds for it; returns it.
///
/// Panics after `timeout` with `description` and the object as last seen.
///
/// ```ignore
/// let pod = wait_for(&pods, "machine-a", TIMEOUT, "the machine Pod runs", |p| {
///     p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
/// }).await;
/// ```
pub async fn wait_for<K: Watchable>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    description: &str,
    predicate: impl Fn(&K) -> bool,
) -> K {
    watch_object(api, name, timeout, description, |obj| {
        obj.is_some_and(&predicate)
    })
    .await
    .unwrap_or_else(|| unreachable!("the predicate only holds for an object"))
}

/// Waits until object `name` does not exist (never existed, or is deleted).
///
/// Panics after `timeout` with `description` and the object as last seen.
pub async fn wait_for_deleted<K: Watchable>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    description: &str,
) {
    watch_object(api, name, timeout, description, |obj| obj.is_none()).await;
}

/// Waits until `config` selects no object in `api` (every one is gone).
///
/// Panics after `timeout` with `description` and the objects as last seen.
pub async fn wait_for_none<K: Watchable>(
    api: &Api<K>,
    config: watcher::Config,
    timeout: Duration,
    description: &str,
) {
    wait_for_list(api, config, timeout, description, |l: &[K]| l.is_empty()).await;
}

/// Waits until `predicate` holds for the objects that `config` selects (labels,
/// fields) in `api`; returns them.
///
/// Panics after `timeout` with `description` and the objects as last seen.
pub async fn wait_for_list<K: Watchable>(
    api: &Api<K>,
    config: watcher::Config,
    timeout: Duration,
    description: &str,
    predicate: impl Fn(&[K]) -> bool,
) -> Vec<K> {
    let outcome = watch_list(api, config, timeout, |objects| {
        predicate(objects).then(|| objects.to_vec())
    })
    .await;
    outcome.unwrap_or_else(|(objects, last_error)| {
        panic!(
            "timed out after {} waiting for {description}\n{}",
            humantime::format_duration(timeout),
            seen_last(&objects, last_error),
        )
    })
}

/// Watches the objects `config` selects in `api` for `period`, checking
/// `invariant` on each change: as every change comes as an event, it held all
/// along if it held each time. Returns the objects at the end.
///
/// Panics the moment it does not hold, with `description` and the objects.
pub async fn holds_until<K: Watchable>(
    api: &Api<K>,
    config: watcher::Config,
    period: Duration,
    description: &str,
    invariant: impl Fn(&[K]) -> bool,
) -> Vec<K> {
    let broken = watch_list(api, config, period, |objects| {
        (!invariant(objects)).then(|| objects.to_vec())
    })
    .await;
    match broken {
        Ok(objects) => panic!("no longer {description}\n{}", seen_last(&objects, None)),
        Err((objects, _)) => objects,
    }
}

/// A watch in the background that remembers the first object it saw in a
/// state that must never be; [`Never::check`] panics with it.
pub struct Never {
    description: String,
    seen: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Never {
    /// Panics with the first object seen in the forbidden state, if any.
    pub fn check(&self) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(obj) = seen.as_ref() {
            panic!("seen {}:\n{obj}", self.description);
        }
    }
}

impl Drop for Never {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the objects `config` selects in `api` from now on, each change as
/// it comes (not snapshots), and remembers the first one for which `bad`
/// holds (`description` says what that is). Returns once the watch has listed
/// them, so that every later change is seen; [`Never::check`] asks.
pub async fn never<K: Watchable>(
    api: &Api<K>,
    config: watcher::Config,
    description: &str,
    bad: impl Fn(&K) -> bool + Send + 'static,
) -> Never {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (listed, on_list) = tokio::sync::oneshot::channel();
    let mut listed = Some(listed);
    let mut events = watcher(api.clone(), config).default_backoff().boxed();
    let remember = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) if bad(&obj) => {
                    let mut first = remember.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert_with(|| pretty(&obj));
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
    });
    let list_timeout = Duration::from_secs(60);
    tokio::time::timeout(list_timeout, on_list)
        .await
        .unwrap_or_else(|_| panic!("the watch for {description} did not list in time"))
        .unwrap_or_else(|_| panic!("the watch for {description} ended"));
    Never {
        description: description.to_string(),
        seen,
        task,
    }
}

/// Watches the objects `config` selects in `api` and calls `check` with them
/// (sorted by namespace and name) after the list and on each change, until it
/// returns something; `Err` with the objects and the last watch error when
/// `timeout` passes first.
async fn watch_list<K: Watchable, R>(
    api: &Api<K>,
    config: watcher::Config,
    timeout: Duration,
    mut check: impl FnMut(&[K]) -> Option<R>,
) -> Result<R, (Vec<K>, Option<String>)> {
    let deadline = Instant::now() + timeout;
    let (store, writer) = reflector::store::<K>();
    let mut events = watcher(api.clone(), config)
        .default_backoff()
        .reflect(writer)
        .boxed();
    let mut listed = false;
    let mut last_error = None;
    let snapshot = || {
        let mut objects: Vec<K> = store.state().iter().map(|o| (**o).clone()).collect();
        objects.sort_by_key(|o| (o.namespace(), o.name_any()));
        objects
    };
    loop {
        match timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(event))) => {
                if matches!(event, watcher::Event::InitDone) {
                    listed = true;
                }
                let during_list =
                    matches!(event, watcher::Event::Init | watcher::Event::InitApply(_));
                if listed
                    && !during_list
                    && let Some(found) = check(&snapshot())
                {
                    return Ok(found);
                }
            }
            Ok(Some(Err(e))) => last_error = Some(e.to_string()),
            Ok(None) => panic!("the watch of {} ended", K::plural(&Default::default())),
            Err(_) => return Err((snapshot(), last_error)),
        }
    }
}

/// The objects a wait saw last, and its last watch error, for its panic.
fn seen_last<K: Watchable>(objects: &[K], last_error: Option<String>) -> String {
    let pretty: Vec<_> = objects.iter().map(pretty).collect();
    format!(
        "{} {} seen last:\n[{}]{}",
        objects.len(),
        K::plural(&Default::default()),
        pretty.join(",\n"),
        last_error
            .map(|e| format!("\nlast watch error: {e}"))
            .unwrap_or_default(),
    )
}

/// Watches object `name` until `done(current)` holds; returns the object then.
async fn watch_object<K: Watchable>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    description: &str,
    done: impl Fn(Option<&K>) -> bool,
) -> Option<K> {
    let deadline = Instant::now() + timeout;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api.clone(), config).default_backoff().boxed();
    let mut current: Option<K> = None;
    // During a (re)list the object is current only once it is listed again.
    let mut relisted: Option<Option<K>> = None;
    let mut last_error = None;
    loop {
        let changed = match timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(event))) => match event {
                watcher::Event::Apply(obj) => {
                    current = Some(obj);
                    true
                }
                watcher::Event::Delete(_) => {
                    current = None;
                    true
                }
                watcher::Event::Init => {
                    relisted = Some(None);
                    false
                }
                watcher::Event::InitApply(obj) => {
                    relisted = Some(Some(obj));
                    false
                }
                watcher::Event::InitDone => {
                    current = relisted.take().flatten();
                    true
                }
            },
            Ok(Some(Err(e))) => {
                last_error = Some(e.to_string());
                false
            }
            Ok(None) => panic!("the watch for {description} ended"),
            Err(_) => {
                let kind = K::kind(&Default::default()).into_owned();
                let ns = api_namespace(current.as_ref());
                let seen = current
                    .as_ref()
                    .map_or_else(|| "(does not exist)".to_owned(), pretty);
                panic!(
                    "timed out after {} waiting for {description} ({kind} {ns}{name})\nlast seen:\n{seen}{}",
                    humantime::format_duration(timeout),
                    last_error
                        .map(|e| format!("\nlast watch error: {e}"))
                        .unwrap_or_default(),
                );
            }
        };
        if changed && done(current.as_ref()) {
            return current;
        }
    }
}

fn api_namespace<K: Resource>(obj: Option<&K>) -> String {
    obj.and_then(|o| o.meta().namespace.clone())
        .map(|ns| format!("{ns}/"))
        .unwrap_or_default()
}

/// An object as pretty JSON without its managed fields.
pub fn pretty<K: Resource + Serialize + Clone>(obj: &K) -> String {
    let mut obj = obj.clone();
    obj.meta_mut().managed_fields = None;
    serde_json::to_string_pretty(&obj).unwrap_or_else(|e| format!("(cannot serialize: {e})"))
}

/// Waits until `condition` (of something no watch reports, such as the clock)
/// holds, looking every 50 ms; panics with `description` after `timeout`.
pub async fn until(timeout: Duration, description: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !condition() {
        assert!(Instant::now() < deadline, "timed out: {description}");
        tick.tick().await;
    }
}

/// Every (phase, description) a machine shows, in order, from a watch of its own.
pub type History = tokio::sync::watch::Receiver<Vec<(Option<Phase>, String)>>;

/// Records the machine's history; [`seen_in`] waits for an entry.
pub fn record_history(api: Api<Machine>, name: &str) -> History {
    let (tx, rx) = tokio::sync::watch::channel(Vec::new());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut stream = watcher(api, cfg).applied_objects().boxed();
        while let Some(Ok(m)) = stream.next().await {
            let entry = (
                m.phase().cloned(),
                m.status.last_operation.description.clone(),
            );
            tx.send_if_modified(|seen| {
                let new = seen.last() != Some(&entry);
                if new {
                    seen.push(entry);
                }
                new
            });
        }
    });
    rx
}

/// The history once it holds an entry that `wanted` picks: the history's watch
/// is its own and may lag behind the one that saw the state first.
pub async fn seen_in(
    history: &History,
    wanted: impl Fn(&(Option<Phase>, String)) -> bool,
) -> Vec<(Option<Phase>, String)> {
    let mut rx = history.clone();
    match tokio::time::timeout(super::TIMEOUT, rx.wait_for(|h| h.iter().any(&wanted))).await {
        Ok(Ok(seen)) => seen.clone(),
        _ => panic!(
            "history never showed the entry; seen: {:#?}",
            *history.borrow()
        ),
    }
}
