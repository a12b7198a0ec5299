// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! kubelet-standin: plays the kubelet inside every machine Pod of the local
//! cluster (not used in production).
//!
//! For each Running Pod labelled `app=machine,machine-provider=local` it reads the
//! user data the Pod mounts, authenticates to the API server with the bootstrap
//! token found there and only then registers a Node named after the Pod, annotated
//! so that kwok keeps it Ready. When the Pod goes away, its Node stays and turns
//! NotReady, as a real VM's would. Nodes it did not register are never touched.
//!
//! Everything is driven by watches: reflectors of machine Pods and of Nodes feed
//! a queue of Pod keys and are read instead of the API server; one reconcile per
//! key runs at a time, failures are retried with backoff and the join delay is a
//! timer per Pod.

mod decide;
mod node;
mod outages;
mod queue;
mod reconcile;
mod token;

use std::collections::HashSet;
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, ResourceExt};
use tracing::{error, info, warn};

use crate::queue::Queue;
use crate::reconcile::Context;

/// The machine Pods of the local driver.
const POD_SELECTOR: &str = "app=machine,machine-provider=local";

#[derive(Debug, Parser)]
#[command(about = "Plays the kubelet inside each machine Pod of the local cluster")]
struct Cli {
    /// Admin kubeconfig of the target cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// How long a machine Pod runs before its kubelet joins (e.g. 0s, 5s, 1m).
    #[arg(long, env = "JOIN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    join_delay: Duration,
    /// The local cloud's cloud-wide profile (a JSON file, or a directory of
    /// them), looked at every second: the Nodes of machines in a zone under
    /// `outages` go NotReady until the zone is back.
    #[arg(long, env = "CLOUD_PROFILES")]
    cloud_profiles: Option<PathBuf>,
}

/// Namespace and name of a machine Pod; the Node has the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    fn of(pod: &Pod) -> Option<Self> {
        Some(PodKey {
            namespace: pod.namespace()?,
            name: pod.metadata.name.clone()?,
        })
    }

    pub fn object_ref(&self) -> ObjectRef<Pod> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }

    /// Parses `<namespace>/<name>`.
    pub fn parse(s: &str) -> Option<Self> {
        let (namespace, name) = s.split_once('/')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then(|| PodKey {
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        error!("kubelet-standin failed: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let kubeconfig = Kubeconfig::read_from(&cli.kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config.clone())?;
    info!(
        server = %config.cluster_url,
        join_delay = %humantime::format_duration(cli.join_delay),
        "kubelet-standin watching machine pods ({POD_SELECTOR})"
    );

    let (pods, writer) = reflector::store();
    let mut pod_events = watcher(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(POD_SELECTOR),
    )
    .default_backoff()
    .reflect(writer)
    .boxed();
    let (nodes, node_writer) = reflector::store();
    let mut node_events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .boxed();
    let ctx = Arc::new(Context::new(
        client,
        config,
        pods.clone(),
        nodes,
        cli.join_delay,
    ));

    let mut queue = Queue::new(ctx.clone());
    // Pods seen so far, to notice the ones deleted while the watch was down.
    let mut known = HashSet::<PodKey>::new();
    let mut synced = false;
    let mut nodes_synced = false;
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut profiles = tokio::time::interval(Duration::from_secs(1));
    let mut problems_seen = Vec::new();

    loop {
        tokio::select! {
            _ = &mut shutdown => {
                info!("shutting down");
                return Ok(());
            }
            event = pod_events.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    if let Some(key) = PodKey::of(&pod) {
                        known.insert(key.clone());
                        queue.enqueue(key, Duration::ZERO);
                    }
                }
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(key) = PodKey::of(&pod) {
                        known.remove(&key);
                        queue.enqueue(key, Duration::ZERO);
                    }
                }
                Some(Ok(watcher::Event::Init)) => {}
                Some(Ok(watcher::Event::InitDone)) => {
                    known.retain(|key| {
                        let present = pods.get(&key.object_ref()).is_some();
                        if !present {
                            queue.enqueue(key.clone(), Duration::ZERO);
                        }
                        present
                    });
                    if !synced {
                        info!(pods = known.len(), "machine pods listed");
                        synced = true;
                    }
                }
                Some(Err(e)) => warn!("watching machine pods: {e}"),
                None => return Err("the pod watch ended".into()),
            },
            event = node_events.next() => match event {
                Some(Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n) | watcher::Event::Delete(n))) => {
                    if let Some(key) = node::pod_key_of(&n.metadata) {
                        queue.enqueue(key, Duration::ZERO);
                    }
                }
                Some(Ok(watcher::Event::InitDone)) => nodes_synced = true,
                Some(Ok(watcher::Event::Init)) => {}
                Some(Err(e)) => warn!("watching nodes: {e}"),
                None => return Err("the node watch ended".into()),
            },
            _ = profiles.tick(), if cli.cloud_profiles.is_some() => {
                let path = cli.cloud_profiles.as_deref().unwrap_or(std::path::Path::new(""));
                let (zones, problems) = outages::read(path);
                if problems != problems_seen {
                    for p in &problems {
                        warn!("cloud profile not read: {p}");
                    }
                    problems_seen = problems;
                }
                let listed = zones.iter().cloned().collect::<Vec<_>>().join(",");
                if ctx.set_outages(zones) {
                    info!(zones = %listed, "zones out changed");
                    for key in &known {
                        queue.enqueue(key.clone(), Duration::ZERO);
                    }
                }
            }
            // Nothing runs before both stores are complete: a pod or node missing
            // from a partial store would look deleted.
            () = queue.run_next(synced && nodes_synced) => {}
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_keys() {
        let key = PodKey::parse("ns/machine-a").unwrap();
        assert_eq!(
            key,
            PodKey {
                namespace: "ns".into(),
                name: "machine-a".into()
            }
        );
        assert_eq!(key.to_string(), "ns/machine-a");
        for bad in ["", "ns", "/a", "ns/", "a/b/c"] {
            assert_eq!(PodKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn cli_defaults_and_durations() {
        let cli = Cli::try_parse_from(["kubelet-standin", "--kubeconfig", "k"]).unwrap();
        assert_eq!(cli.join_delay, Duration::ZERO);
        let cli = Cli::try_parse_from([
            "kubelet-standin",
            "--kubeconfig",
            "k",
            "--join-delay",
            "1m 5s",
        ])
        .unwrap();
        assert_eq!(cli.join_delay, Duration::from_secs(65));
        assert!(
            Cli::try_parse_from([
                "kubelet-standin",
                "--kubeconfig",
                "k",
                "--join-delay",
                "soon"
            ])
            .is_err()
        );
    }
}
