// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Clusters named by class credentials (a `kubeconfig` key, gardener's class
//! shape): one client and one watch of machine Pods per distinct kubeconfig,
//! made the first time a class names it. The watch fills a [`PodCache`] as the
//! target's does, and its items wake machines through the driver's
//! [`crate::driver::VmWatch`], into which late watches are fed by a channel.
//!
//! A changed kubeconfig (credentials rotation) is another key, so another
//! client and watch; the old ones stay until the process ends. Their number is
//! bounded by the distinct kubeconfigs seen, and an old watch costs one
//! connection (or, once its credentials are revoked, a retry every 30 s or so).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use futures::StreamExt;
use futures::channel::mpsc;
use futures::stream::BoxStream;
use kube::Client;

use super::watch::{self, PodCache};
use crate::driver::{Code, DriverResult, MachineError, VmWatchItem};

/// A cluster named by class credentials.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub client: Client,
    /// Its machine Pods; read only once listed ([`PodCache::readable`]).
    pub pods: PodCache,
}

type Items = BoxStream<'static, VmWatchItem>;

pub(crate) struct ForeignClusters {
    /// Keyed by a hash of the kubeconfig: no credentials are kept as keys.
    known: Mutex<HashMap<u64, Cluster>>,
    /// The client-side token bucket (`--kube-api-qps`, `--kube-api-burst`), as
    /// for the controller's own clients; `None`: unlimited.
    rate: Option<(f32, u32)>,
    /// Each new cluster's watch goes here, to run inside [`Self::items`].
    started: mpsc::UnboundedSender<Items>,
    /// Taken once by [`Self::items`]. Until then watches wait in the channel
    /// unpolled (their caches stay unlisted, so the driver asks the API server).
    watches: Mutex<Option<mpsc::UnboundedReceiver<Items>>>,
}

impl ForeignClusters {
    pub(crate) fn new(rate: Option<(f32, u32)>) -> Self {
        let (started, watches) = mpsc::unbounded();
        ForeignClusters {
            known: Mutex::default(),
            rate,
            started,
            watches: Mutex::new(Some(watches)),
        }
    }

    /// The items of every cluster's watch, those started later included; each
    /// watch runs while this stream is polled. Taken once.
    pub(crate) fn items(&self) -> Option<Items> {
        let watches = lock(&self.watches).take()?;
        Some(watches.flatten_unordered(None).boxed())
    }

    /// The cluster `kubeconfig` names; its client and watch are made on first use.
    pub(crate) async fn cluster(&self, kubeconfig: &[u8]) -> DriverResult<Cluster> {
        let key = key(kubeconfig);
        if let Some(cluster) = lock(&self.known).get(&key) {
            return Ok(cluster.clone());
        }
        let (client, server) = self.client(kubeconfig).await?;
        // Another call may have made it meanwhile: the first one in is kept, so
        // that each kubeconfig has one watch.
        let mut known = lock(&self.known);
        if let Some(cluster) = known.get(&key) {
            return Ok(cluster.clone());
        }
        let (pods, writer) = PodCache::new();
        let items = watch::watch(client.clone(), writer, &pods);
        let mut watch_state = WatchState::default();
        let items = items
            .map(move |item| {
                let (item, news) = foreign_item(item, &mut watch_state);
                match news {
                    Some(News::Listed) => {
                        tracing::info!(%server, "watching the machine Pods of a cluster named by class credentials")
                    }
                    Some(News::Failing) => {
                        tracing::warn!(%server, "the watch of machine Pods of a cluster named by class credentials fails; it retries, and until it lists the driver reads Pods from the API server")
                    }
                    None => {}
                }
                item
            })
            .boxed();
        // A closed channel means no one runs the watches any more: the cache
        // then stays unlisted and the driver asks the API server, as before.
        let _ = self.started.unbounded_send(items);
        let cluster = Cluster { client, pods };
        known.insert(key, cluster.clone());
        Ok(cluster)
    }

    /// A client for `kubeconfig`, and the server it names (for logs: never
    /// the kubeconfig, which holds credentials).
    async fn client(&self, kubeconfig: &[u8]) -> DriverResult<(Client, String)> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            // Never echo the kubeconfig: it holds credentials, and this message
            // goes to the machine's status and Events.
            MachineError::new(
                Code::InvalidArgument,
                format!(
                    "the class credentials' kubeconfig {what}: {}",
                    first_line(e)
                ),
            )
        };
        let text = std::str::from_utf8(kubeconfig).map_err(|e| invalid("is not UTF-8", &e))?;
        let parsed = kube::config::Kubeconfig::from_yaml(text)
            .map_err(|e| invalid("cannot be parsed", &e))?;
        let config = kube::Config::from_custom_kubeconfig(
            parsed,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| invalid("is unusable", &e))?;
        let server = server_of(config.cluster_url.host(), config.cluster_url.port_u16());
        let client = match self.rate {
            Some((qps, burst)) => crate::client::from_config(config, qps, burst).map(|c| c.client),
            None => Client::try_from(config),
        }
        .map_err(|e| invalid("is unusable", &e))?;
        Ok((client, server))
    }
}

/// The first line of an error. The YAML parser's says what is wrong and
/// where; the lines after it quote the kubeconfig around that place.
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(kubeconfig: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    kubeconfig.hash(&mut hasher);
    hasher.finish()
}

/// Host and port of a server URL: no path, no user info.
fn server_of(host: Option<&str>, port: Option<u16>) -> String {
    match (host, port) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => String::new(),
    }
}

/// What a foreign watch has said so far, for logging its changes only.
#[derive(Debug, Default)]
struct WatchState {
    listed: bool,
    failing: bool,
}

/// What to log about a foreign watch.
#[derive(Debug, PartialEq, Eq)]
enum News {
    Listed,
    Failing,
}

/// What an item of a foreign watch means to the controller, and what to log.
/// Only its changes wake machines: the controller's `Listed` and `Failed`
/// speak of the target's watch (readiness, health), and a foreign cluster
/// neither delays the controller's start nor makes it unready (without a
/// list the driver reads that cluster's Pods as it did before it was watched).
fn foreign_item(item: VmWatchItem, state: &mut WatchState) -> (VmWatchItem, Option<News>) {
    let news = match item {
        VmWatchItem::Changed(_) => {
            state.failing = false;
            None
        }
        VmWatchItem::Listed => {
            state.failing = false;
            (!std::mem::replace(&mut state.listed, true)).then_some(News::Listed)
        }
        VmWatchItem::Failed => {
            (!std::mem::replace(&mut state.failing, true)).then_some(News::Failing)
        }
        VmWatchItem::Other => None,
    };
    let item = match item {
        VmWatchItem::Changed(machine) => VmWatchItem::Changed(machine),
        _ => VmWatchItem::Other,
    };
    (item, news)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_watch_only_wakes_machines() {
        let mut state = WatchState::default();
        let mut step = |item| foreign_item(item, &mut state);
        assert_eq!(step(VmWatchItem::Other), (VmWatchItem::Other, None));
        assert_eq!(
            step(VmWatchItem::Failed),
            (VmWatchItem::Other, Some(News::Failing))
        );
        // A watch that keeps failing is logged once.
        assert_eq!(step(VmWatchItem::Failed), (VmWatchItem::Other, None));
        assert_eq!(
            step(VmWatchItem::Listed),
            (VmWatchItem::Other, Some(News::Listed))
        );
        assert_eq!(
            step(VmWatchItem::Changed("m1".into())),
            (VmWatchItem::Changed("m1".into()), None)
        );
        // A re-list is no news; failing again after a success is.
        assert_eq!(step(VmWatchItem::Listed), (VmWatchItem::Other, None));
        assert_eq!(
            step(VmWatchItem::Failed),
            (VmWatchItem::Other, Some(News::Failing))
        );
    }

    #[test]
    fn servers_are_logged_by_host_and_port() {
        assert_eq!(
            server_of(Some("example.org"), Some(6443)),
            "example.org:6443"
        );
        assert_eq!(server_of(Some("example.org"), None), "example.org");
    }

    #[tokio::test]
    async fn an_unparsable_kubeconfig_is_an_invalid_argument_that_quotes_none_of_it() {
        let clusters = ForeignClusters::new(None);
        let kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    \
                          token: s3cr3t\n    exec: notamap\n";
        let Err(err) = clusters.cluster(kubeconfig.as_bytes()).await else {
            panic!("parsed");
        };
        assert_eq!(err.code, Code::InvalidArgument);
        assert!(err.message.contains("cannot be parsed"), "{err}");
        assert!(err.message.contains("line 7"), "where: {err}");
        assert!(!err.message.contains("s3cr3t"), "{err}");
        assert!(!err.message.contains("notamap"), "{err}");
        // Nothing was started for it.
        assert!(lock(&clusters.known).is_empty());
    }

    #[tokio::test]
    async fn one_watch_per_distinct_kubeconfig() {
        let kubeconfig = |server: &str| {
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n\
                 users: [{{name: u, user: {{token: t}}}}]\n\
                 contexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
            )
        };
        let clusters = ForeignClusters::new(None);
        let a = kubeconfig("https://127.0.0.1:1");
        let b = kubeconfig("https://127.0.0.1:2");
        clusters.cluster(a.as_bytes()).await.unwrap();
        clusters.cluster(a.as_bytes()).await.unwrap();
        clusters.cluster(b.as_bytes()).await.unwrap();
        assert_eq!(lock(&clusters.known).len(), 2);
        // Two watches wait in the channel, unpolled: nothing is listed.
        let mut watches = lock(&clusters.watches).take().unwrap();
        assert!(watches.try_recv().is_ok());
        assert!(watches.try_recv().is_ok());
        assert!(watches.try_recv().is_err());
        assert!(
            lock(&clusters.known)
                .values()
                .all(|c| c.pods.readable().is_none())
        );
    }
}
