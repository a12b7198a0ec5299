// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MachineClass and Secret upkeep: a class keeps our finalizer while machines
//! use it, and a secret keeps its finalizer while any class references it, so
//! that neither disappears from under a machine that still needs it (deletion
//! does).
//!
//! The secret rule is MCM's secret controller's: *any* class, deleting or not,
//! counts. Gardener deletes a worker's classes and then their Secrets while the
//! machines still terminate; a class that is deleting still holds its machines'
//! secrets. Conversely a class that never had machines (and so never got our
//! finalizer) or whose secretRef changed must release the secrets it no longer
//! names, or shoot deletion waits for them forever. So the secret finalizers are
//! planned over the whole namespace (every Secret against every class), on any
//! change to either, rather than per class event.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Patch;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use super::context::Context;
use super::error::{Error, retry};
use super::own_writes::Finalized;
use crate::api::{Machine, MachineClass};
use crate::client::status;
use crate::contract::{MACHINE_FINALIZER, SECRET_FINALIZER};

/// What to do with a finalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finalizer {
    Add,
    Remove,
    Keep,
}

/// The class finalizer, from whether the class is deleting, has it, and is used.
pub(crate) fn class_finalizer(deleting: bool, has: bool, used: bool) -> Finalizer {
    match (deleting, has, used) {
        (false, false, true) => Finalizer::Add,
        (true, true, false) => Finalizer::Remove,
        _ => Finalizer::Keep,
    }
}

/// The secret finalizer, from whether any class references the secret.
pub(crate) fn secret_finalizer(has: bool, referenced: bool) -> Finalizer {
    match (has, referenced) {
        (false, true) => Finalizer::Add,
        (true, false) => Finalizer::Remove,
        _ => Finalizer::Keep,
    }
}

/// The finalizer list after `change`, or `None` when it stays as it is.
pub(crate) fn finalizers_after(
    current: &[String],
    name: &str,
    change: Finalizer,
) -> Option<Vec<String>> {
    match change {
        Finalizer::Add => Some(current.iter().cloned().chain([name.to_string()]).collect()),
        Finalizer::Remove => Some(current.iter().filter(|f| *f != name).cloned().collect()),
        Finalizer::Keep => None,
    }
}

struct ClassContext {
    control: Client,
    namespace: String,
    machines: Store<Machine>,
    finalized: Finalized,
    synced: tokio::sync::watch::Receiver<bool>,
}

async fn patch_finalizers<K>(
    api: &Api<K>,
    obj: &K,
    finalizers: Vec<String>,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.meta().resource_version}});
    let params = super::writes::params();
    api.patch(&obj.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn reconcile(class: Arc<MachineClass>, ctx: Arc<ClassContext>) -> Result<Action, Error> {
    // Whether the class is used is read from the machine cache: not before it
    // holds its first list, or a restart would take the finalizer off a
    // deleting class whose machines still terminate (Gardener deletes a
    // worker's classes first).
    let mut synced = ctx.synced.clone();
    if synced.wait_for(|s| *s).await.is_err() {
        return Ok(Action::await_change());
    }
    let name = class.name_any();
    // Read in place, stopping at the first user: no copy of the whole cache.
    let used = ctx.machines.find(|m| m.spec.class.name == name).is_some();
    let deleting = class.metadata.deletion_timestamp.is_some();
    let has = class.finalizers().iter().any(|f| f == MACHINE_FINALIZER);
    let change = class_finalizer(deleting, has, used);

    let classes: Api<MachineClass> = Api::namespaced(ctx.control.clone(), &ctx.namespace);
    if change == Finalizer::Add {
        // As a machine's write (`ensure_class_finalizer`), under the same lock:
        // once we wrote it, our cached copy may just be older than that write,
        // and the live class says whether it is really missing.
        let mut written = ctx.finalized.0.lock().await;
        let uid = class.uid().unwrap_or_default();
        let current = match written.contains(&uid) {
            true => Arc::new(classes.get(&name).await?),
            false => class.clone(),
        };
        if current.metadata.deletion_timestamp.is_none()
            && let Some(f) = finalizers_after(current.finalizers(), MACHINE_FINALIZER, change)
        {
            patch_finalizers(&classes, &current, f).await?;
        }
        written.insert(uid);
    } else if let Some(f) = finalizers_after(class.finalizers(), MACHINE_FINALIZER, change) {
        patch_finalizers(&classes, &class, f).await?;
    }
    // A deleting class still in use waits for its machines; nothing else wakes it.
    Ok(if deleting && used {
        Action::requeue(retry::SHORT)
    } else {
        Action::requeue(Duration::from_secs(10 * 60))
    })
}

/// Whether `class` names the Secret `name` in `namespace` (a reference without a
/// namespace means the class's own).
fn references(class: &MachineClass, name: &str, namespace: &str) -> bool {
    let class_ns = class.metadata.namespace.as_deref().unwrap_or_default();
    class.secret_refs().any(|r| {
        r.name.as_deref() == Some(name)
            && r.namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(class_ns)
                == namespace
    })
}

/// The secret finalizer changes for the whole namespace: each Secret whose
/// finalizers must change, with its new list.
pub(crate) fn secret_plan<'a>(
    secrets: &'a [Arc<Secret>],
    classes: &[Arc<MachineClass>],
) -> Vec<(&'a Secret, Vec<String>)> {
    secrets
        .iter()
        .filter_map(|secret| {
            let (name, ns) = (secret.name_any(), secret.namespace().unwrap_or_default());
            let referenced = classes.iter().any(|c| references(c, &name, &ns));
            let has = secret.finalizers().iter().any(|f| f == SECRET_FINALIZER);
            let change = secret_finalizer(has, referenced);
            // A Secret that is going and not referenced only loses ours; one that
            // is going never gains it (the API server refuses new finalizers then).
            if change == Finalizer::Add && secret.metadata.deletion_timestamp.is_some() {
                return None;
            }
            finalizers_after(secret.finalizers(), SECRET_FINALIZER, change)
                .map(|f| (secret.as_ref(), f))
        })
        .collect()
}

/// Keeps the secret finalizers as [`secret_plan`] says, whenever `wake` is
/// notified (any class or secret event) and every 10 minutes. Runs until dropped.
pub(crate) async fn keep_secret_finalizers<D>(ctx: Arc<super::Context<D>>, wake: Arc<Notify>) {
    let secrets_api: Api<Secret> = Api::namespaced(ctx.control.clone(), &ctx.settings.namespace);
    loop {
        if ctx.wait_ready().await.is_err() {
            return;
        }
        let (secrets, classes) = (ctx.secrets.state(), ctx.classes.state());
        let mut again = Duration::from_secs(10 * 60);
        for (secret, finalizers) in secret_plan(&secrets, &classes) {
            match patch_finalizers(&secrets_api, secret, finalizers).await {
                Ok(()) => {}
                // Changed meanwhile (its event wakes us) or gone: nothing to do.
                Err(kube::Error::Api(s)) if status::not_found(&s) || status::conflict(&s) => {}
                Err(e) => {
                    tracing::warn!(secret = %secret.name_any(), error = %e, "cannot update the secret's finalizers");
                    again = retry::SHORT;
                }
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(again) => {}
        }
    }
}

/// Called by a machine's reconcile: its class must not go while it exists.
pub(crate) async fn ensure_class_finalizer(
    control: &Client,
    class: &MachineClass,
    finalized: &Finalized,
) -> Result<(), kube::Error> {
    if class.metadata.deletion_timestamp.is_some()
        || class.finalizers().iter().any(|f| f == MACHINE_FINALIZER)
    {
        return Ok(());
    }
    let uid = class.uid().unwrap_or_default();
    // One write per class: the machines of a new class all start on a cached
    // copy without the finalizer, and every write after the first met a conflict
    // and failed its machine's reconcile (49 of 1000 in `make bench`).
    let mut written = finalized.0.lock().await;
    if written.contains(&uid) {
        return Ok(());
    }
    let ns = class.namespace().unwrap_or_default();
    let classes: Api<MachineClass> = Api::namespaced(control.clone(), &ns);
    let finalizers =
        finalizers_after(class.finalizers(), MACHINE_FINALIZER, Finalizer::Add).unwrap_or_default();
    match patch_finalizers(&classes, class, finalizers).await {
        Ok(()) => {}
        // Written since our copy, most often by the class upkeep adding the same
        // finalizer at start: the live class says whether a write is still due.
        // Returning the conflict instead left the class unmarked as written, and
        // every machine behind this one met the same conflict (16 PATCHes for
        // 20 machines in a loaded CI run).
        Err(kube::Error::Api(s)) if status::conflict(&s) => {
            let live = classes.get(&class.name_any()).await?;
            let missing = !live.finalizers().iter().any(|f| f == MACHINE_FINALIZER);
            if missing && live.metadata.deletion_timestamp.is_none() {
                let finalizers =
                    finalizers_after(live.finalizers(), MACHINE_FINALIZER, Finalizer::Add)
                        .unwrap_or_default();
                patch_finalizers(&classes, &live, finalizers).await?;
            }
        }
        Err(e) => return Err(e),
    }
    written.insert(uid);
    Ok(())
}

/// What the class controller reads: the control cluster's classes and
/// machines, from the machine controller's caches.
pub(crate) struct Watched {
    pub control: Client,
    pub namespace: String,
    pub machines: Store<Machine>,
    pub classes: Store<MachineClass>,
    /// True once every cache holds its first list.
    pub synced: tokio::sync::watch::Receiver<bool>,
}

impl Watched {
    /// What the machine controller's context already holds.
    pub(crate) fn of<D>(ctx: &Context<D>) -> Self {
        Watched {
            control: ctx.control.clone(),
            namespace: ctx.settings.namespace.clone(),
            machines: ctx.machines.clone(),
            classes: ctx.classes.clone(),
            synced: ctx.synced.clone(),
        }
    }
}

/// Runs class upkeep until `shutdown` completes, on `changed`: the classes
/// the machine controller's watch applies (no watch of its own).
pub(crate) async fn run(
    watched: Watched,
    changed: impl futures::Stream<Item = Arc<MachineClass>> + Send + 'static,
    finalized: Finalized,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::for_shared_stream(changed, watched.classes);
    let ctx = Arc::new(ClassContext {
        control: watched.control,
        namespace: watched.namespace,
        machines: watched.machines,
        finalized,
        synced: watched.synced,
    });
    // Machines add the class finalizer themselves (see `ensure_class_finalizer`);
    // this controller adds it to classes in use at start and removes it when a
    // deleting class is no longer used.
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |_, e: &Error, _| Action::requeue(e.retry_after()),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Until the machine cache holds its list, a deleting class keeps our
    /// finalizer: no machine seen is not no machine there.
    #[tokio::test(start_paused = true)]
    async fn a_deleting_class_keeps_its_finalizer_until_the_machines_are_listed() {
        use kube::runtime::reflector;
        use kube::runtime::watcher::Event;
        let api = crate::controller::fake_api::FakeApi::default();
        let mut class = MachineClass::named("c1");
        class.metadata.namespace = Some("ns".into());
        class.metadata.finalizers = Some(vec![MACHINE_FINALIZER.into()]);
        class.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let path = "/apis/machine.sapcloud.io/v1alpha1/namespaces/ns/machineclasses/c1";
        api.put(path, serde_json::to_value(&class).unwrap());
        let (machines, mut machines_w) = reflector::store::<Machine>();
        let (listed, synced) = tokio::sync::watch::channel(false);
        let ctx = Arc::new(ClassContext {
            control: api.client(),
            namespace: "ns".into(),
            machines,
            finalized: Default::default(),
            synced,
        });
        let pass = reconcile(Arc::new(class), ctx);
        tokio::pin!(pass);
        // The clock is paused: the timeout fires once the pass can only wait.
        let early = tokio::time::timeout(Duration::from_secs(60), &mut pass).await;
        assert!(early.is_err(), "decided before the machines were listed");

        let mut machine = Machine::named("m1");
        machine.metadata.namespace = Some("ns".into());
        machine.spec.class.name = "c1".into();
        machines_w.apply_watcher_event(&Event::Apply(machine));
        listed.send(true).unwrap();
        pass.await.expect("reconcile");
        let requests = api.requests();
        assert!(
            !requests.iter().any(|r| r.starts_with("PATCH")),
            "the finalizer of a class in use stays: {requests:?}"
        );
    }

    #[test]
    fn class_finalizer_follows_use() {
        assert_eq!(class_finalizer(false, false, true), Finalizer::Add);
        assert_eq!(class_finalizer(false, false, false), Finalizer::Keep);
        assert_eq!(class_finalizer(true, true, true), Finalizer::Keep);
        assert_eq!(class_finalizer(true, true, false), Finalizer::Remove);
        assert_eq!(class_finalizer(false, true, false), Finalizer::Keep);
    }

    #[test]
    fn secret_finalizer_follows_references() {
        assert_eq!(secret_finalizer(false, true), Finalizer::Add);
        assert_eq!(secret_finalizer(true, false), Finalizer::Remove);
        assert_eq!(secret_finalizer(true, true), Finalizer::Keep);
    }

    fn secret(name: &str, finalizers: &[&str], deleting: bool) -> Arc<Secret> {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("ns".into());
        s.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        if deleting {
            s.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            );
        }
        Arc::new(s)
    }

    fn class(
        name: &str,
        secret: &str,
        credentials: Option<&str>,
        deleting: bool,
    ) -> Arc<MachineClass> {
        let mut c: MachineClass = serde_json::from_value(serde_json::json!({
            "apiVersion": "machine.sapcloud.io/v1alpha1",
            "kind": "MachineClass",
            "metadata": {"name": name, "namespace": "ns"},
            "providerSpec": {},
            "provider": "local",
            "secretRef": {"name": secret},
        }))
        .unwrap();
        c.credentials_secret_ref =
            credentials.map(|n| k8s_openapi::api::core::v1::SecretReference {
                name: Some(n.into()),
                namespace: Some("ns".into()),
            });
        if deleting {
            c.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            );
        }
        Arc::new(c)
    }

    fn plan_of(
        secrets: &[Arc<Secret>],
        classes: &[Arc<MachineClass>],
    ) -> Vec<(String, Vec<String>)> {
        secret_plan(secrets, classes)
            .into_iter()
            .map(|(s, f)| (s.name_any(), f))
            .collect()
    }

    #[test]
    fn a_deleting_class_still_holds_its_secrets() {
        let secrets = [secret("user-data", &[SECRET_FINALIZER], true)];
        let classes = [class("c", "user-data", None, true)];
        assert!(plan_of(&secrets, &classes).is_empty());
        // Once the class is gone, the secret is released.
        assert_eq!(plan_of(&secrets, &[]), [("user-data".to_string(), vec![])]);
    }

    #[test]
    fn every_referenced_secret_gets_the_finalizer_used_or_not() {
        let secrets = [
            secret("user-data", &["other"], false),
            secret("creds", &[], false),
        ];
        let classes = [class("never-used", "user-data", Some("creds"), false)];
        assert_eq!(
            plan_of(&secrets, &classes),
            [
                (
                    "user-data".to_string(),
                    vec!["other".to_string(), SECRET_FINALIZER.to_string()]
                ),
                ("creds".to_string(), vec![SECRET_FINALIZER.to_string()]),
            ]
        );
    }

    #[test]
    fn a_changed_secret_ref_releases_the_old_secret() {
        let secrets = [
            secret("old", &[SECRET_FINALIZER], false),
            secret("new", &[SECRET_FINALIZER], false),
        ];
        let classes = [class("c", "new", None, false)];
        assert_eq!(plan_of(&secrets, &classes), [("old".to_string(), vec![])]);
    }

    #[test]
    fn a_deleting_unreferenced_secret_never_gains_it() {
        let secrets = [secret("s", &[], true)];
        assert!(plan_of(&secrets, &[class("c", "s", None, false)]).is_empty());
        assert!(plan_of(&secrets, &[]).is_empty());
    }

    #[test]
    fn finalizer_lists() {
        let cur = vec!["a".to_string()];
        assert_eq!(
            finalizers_after(&cur, "x", Finalizer::Add),
            Some(vec!["a".into(), "x".into()])
        );
        assert_eq!(
            finalizers_after(&["a".into(), "x".into()], "x", Finalizer::Remove),
            Some(cur.clone())
        );
        assert_eq!(finalizers_after(&cur, "x", Finalizer::Keep), None);
    }
}
