// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A fresh namespace per test, and cleanup of what a test made outside it.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, ObjectMeta};
use kube::{Api, Client, Resource, ResourceExt};
use rand::Rng;

use super::cluster::Cluster;
use super::wait::wait_for;

/// Label on every test namespace (value: the test's prefix), to find leftovers:
/// `kubectl delete ns -l e2e.local.machine.sapcloud.io/test`.
pub const TEST_LABEL: &str = "e2e.local.machine.sapcloud.io/test";

/// Set to `1` to keep namespaces and registered objects after the tests, for a look.
pub const KEEP_ENV: &str = "KEEP_TEST_NAMESPACES";

/// How long dropping a [`TestNamespace`] may take at most.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// `<prefix>-<6 random characters>`: a name no other test run uses.
pub fn unique_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect();
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!("{}-{suffix}", prefix.trim_matches('-'))
}

/// An object to delete at cleanup.
struct Registered {
    cluster: Cluster,
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
}

/// A uniquely named namespace in one or both clusters, deleted when dropped
/// (also when the test panics), together with the objects given to
/// [`TestNamespace::delete_on_drop`] (Nodes, bootstrap tokens, ...).
///
/// Deletion is requested, not awaited: the namespace controller finishes it in
/// the background.
pub struct TestNamespace {
    name: String,
    clusters: Vec<Cluster>,
    registered: Mutex<Vec<Registered>>,
}

impl TestNamespace {
    /// A namespace in the target cluster, where machine Pods live.
    pub async fn new(prefix: &str) -> Self {
        Self::create(prefix, &[Cluster::Target]).await
    }

    /// A namespace in `cluster`.
    pub async fn in_cluster(cluster: Cluster, prefix: &str) -> Self {
        Self::create(prefix, &[cluster]).await
    }

    /// The same namespace in the control and the target cluster (once, if they are
    /// the same cluster).
    pub async fn in_both(prefix: &str) -> Self {
        if super::two_clusters() {
            Self::create(prefix, &[Cluster::Control, Cluster::Target]).await
        } else {
            Self::create(prefix, &[Cluster::Target]).await
        }
    }

    async fn create(prefix: &str, clusters: &[Cluster]) -> Self {
        let name = unique_name(prefix);
        // Created first, so that a failure below still deletes what exists.
        let ns = TestNamespace {
            name: name.clone(),
            clusters: clusters.to_vec(),
            registered: Mutex::default(),
        };
        for &cluster in clusters {
            let client = cluster.client().await;
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some([(TEST_LABEL.to_owned(), prefix.to_owned())].into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace)
                .await
                .unwrap_or_else(|e| {
                    panic!("creating namespace {name} in the {cluster:?} cluster: {e}")
                });
            // The ServiceAccount admission plugin refuses Pods until the namespace
            // has its default ServiceAccount.
            let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
            wait_for(
                &accounts,
                "default",
                super::TIMEOUT,
                "the default ServiceAccount",
                |_| true,
            )
            .await;
        }
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A namespaced Api in this namespace.
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(client.clone(), &self.name)
    }

    /// Deletes object `name` of type `K` in `cluster` (in `namespace`, or
    /// cluster-scoped with `None`) when this namespace is dropped, before the
    /// namespace itself. Missing objects are fine.
    pub fn delete_on_drop<K: Resource<DynamicType = ()>>(
        &self,
        cluster: Cluster,
        namespace: Option<&str>,
        name: &str,
    ) {
        let registered = Registered {
            cluster,
            resource: ApiResource::erase::<K>(&()),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        };
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(registered);
    }

    async fn cleanup(name: String, clusters: Vec<Cluster>, registered: Vec<Registered>) {
        let background = DeleteParams::background();
        for r in registered {
            let client = r.cluster.client().await;
            let api: Api<DynamicObject> = match &r.namespace {
                Some(ns) => Api::namespaced_with(client, ns, &r.resource),
                None => Api::all_with(client, &r.resource),
            };
            if r.resource.kind == "Node" {
                // The controller's finalizer would keep a Node of a failed test forever.
                let clear = serde_json::json!({"metadata": {"finalizers": null}});
                let _ = api
                    .patch(
                        &r.name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&clear),
                    )
                    .await;
            }
            if let Err(e) = api.delete(&r.name, &background).await
                && !matches!(&e, kube::Error::Api(s) if s.code == 404)
            {
                eprintln!("cleanup: deleting {} {}: {e}", r.resource.kind, r.name);
            }
        }
        for &cluster in &clusters {
            // Machines of a failed test keep the controller's finalizer, and with it
            // the namespace, forever: the controller is gone by now.
            let machines: Api<DynamicObject> = Api::namespaced_with(
                cluster.client().await,
                &name,
                &ApiResource::erase::<mcm_local::api::Machine>(&()),
            );
            let clear = serde_json::json!({"metadata": {"finalizers": null}});
            if let Ok(list) = machines.list(&Default::default()).await {
                for m in list.items {
                    let _ = machines
                        .patch(
                            &m.name_any(),
                            &kube::api::PatchParams::default(),
                            &kube::api::Patch::Merge(&clear),
                        )
                        .await;
                }
            }
        }
        for cluster in clusters {
            let api: Api<Namespace> = Api::all(cluster.client().await);
            if let Err(e) = api.delete(&name, &background).await
                && !matches!(&e, kube::Error::Api(s) if s.code == 404)
            {
                eprintln!("cleanup: deleting namespace {name} in the {cluster:?} cluster: {e}");
            }
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let registered =
            std::mem::take(&mut *self.registered.lock().unwrap_or_else(|e| e.into_inner()));
        if std::env::var(KEEP_ENV).as_deref() == Ok("1") {
            eprintln!(
                "{KEEP_ENV}=1: keeping namespace {} and {} other object(s)",
                self.name,
                registered.len()
            );
            return;
        }
        let (name, clusters) = (self.name.clone(), std::mem::take(&mut self.clusters));
        // Drop cannot await, and the test's runtime may be the one this thread
        // drives: clean up on a thread with its own runtime and fresh clients.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => {
                    let done = rt.block_on(async {
                        let cleanup = Self::cleanup(name.clone(), clusters, registered);
                        tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await
                    });
                    if done.is_err() {
                        eprintln!("cleanup of namespace {name} timed out");
                    }
                }
                Err(e) => eprintln!("cleanup of namespace {name}: no runtime: {e}"),
            }
        });
        if cleanup.join().is_err() {
            eprintln!("cleanup of namespace {} panicked", self.name);
        }
    }
}
