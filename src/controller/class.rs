// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MachineClass and Secret upkeep: a class keeps our finalizer while machines
//! use it, and a secret keeps its finalizer while a class references it, so that
//! neither disappears from under a machine that still needs it (deletion does).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Patch;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::error::{Error, retry};
use crate::api::{Machine, MachineClass};
use crate::contract::{MACHINE_FINALIZER, SECRET_FINALIZER};

/// What to do with a finalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finalizer {
    Add,
    Remove,
    Keep,
}

/// The class finalizer, from whether the class is deleting, has it, and is used.
pub fn class_finalizer(deleting: bool, has: bool, used: bool) -> Finalizer {
    match (deleting, has, used) {
        (false, false, true) => Finalizer::Add,
        (true, true, false) => Finalizer::Remove,
        _ => Finalizer::Keep,
    }
}

/// The secret finalizer, from whether a live class references the secret.
pub fn secret_finalizer(has: bool, referenced: bool) -> Finalizer {
    match (has, referenced) {
        (false, true) => Finalizer::Add,
        (true, false) => Finalizer::Remove,
        _ => Finalizer::Keep,
    }
}

/// The finalizer list after `change`, or `None` when it stays as it is.
pub fn finalizers_after(current: &[String], name: &str, change: Finalizer) -> Option<Vec<String>> {
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
    classes: Store<MachineClass>,
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
    let name = class.name_any();
    let used = ctx
        .machines
        .state()
        .iter()
        .any(|m| m.spec.class.name == name);
    let deleting = class.metadata.deletion_timestamp.is_some();
    let has = class.finalizers().iter().any(|f| f == MACHINE_FINALIZER);
    let change = class_finalizer(deleting, has, used);

    // Secrets first: a class that goes away releases them only after it is gone.
    let secrets: Api<Secret> = Api::namespaced(ctx.control.clone(), &ctx.namespace);
    for r in class.secret_refs() {
        let Some(secret_name) = r.name.as_deref() else {
            continue;
        };
        let Some(secret) = secrets.get_opt(secret_name).await? else {
            continue;
        };
        let referenced = ctx.classes.state().iter().any(|c| {
            c.metadata.deletion_timestamp.is_none()
                && c.secret_refs()
                    .any(|r| r.name.as_deref() == Some(secret_name))
        });
        let has = secret.finalizers().iter().any(|f| f == SECRET_FINALIZER);
        if let Some(f) = finalizers_after(
            secret.finalizers(),
            SECRET_FINALIZER,
            secret_finalizer(has, referenced),
        ) {
            patch_finalizers(&secrets, &secret, f).await?;
        }
    }
    if let Some(f) = finalizers_after(class.finalizers(), MACHINE_FINALIZER, change) {
        let classes: Api<MachineClass> = Api::namespaced(ctx.control.clone(), &ctx.namespace);
        patch_finalizers(&classes, &class, f).await?;
    }
    // A deleting class still in use waits for its machines; nothing else wakes it.
    Ok(if deleting && used {
        Action::requeue(retry::SHORT)
    } else {
        Action::requeue(Duration::from_secs(10 * 60))
    })
}

/// Called by a machine's reconcile: its class must not go while it exists.
pub async fn ensure_class_finalizer(
    control: &Client,
    class: &MachineClass,
) -> Result<(), kube::Error> {
    if class.metadata.deletion_timestamp.is_some()
        || class.finalizers().iter().any(|f| f == MACHINE_FINALIZER)
    {
        return Ok(());
    }
    let ns = class.namespace().unwrap_or_default();
    let classes: Api<MachineClass> = Api::namespaced(control.clone(), &ns);
    let finalizers =
        finalizers_after(class.finalizers(), MACHINE_FINALIZER, Finalizer::Add).unwrap_or_default();
    patch_finalizers(&classes, class, finalizers).await
}

/// Runs class upkeep until `shutdown` completes.
pub async fn run(
    control: Client,
    namespace: String,
    machines: Store<Machine>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<MachineClass> = Api::namespaced(control.clone(), &namespace);
    let controller = Controller::new(api, watcher::Config::default());
    let ctx = Arc::new(ClassContext {
        control,
        namespace: namespace.clone(),
        machines: machines.clone(),
        classes: controller.store(),
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
