//! kubelet-standin: plays the kubelet inside every machine Pod of the local
//! cluster (not used in production).
//!
//! For each Running Pod labelled `app=machine,machine-provider=local` it reads the
//! user data the Pod mounts, authenticates to the API server with the bootstrap
//! token found there and only then registers a Node named after the Pod, annotated
//! so that kwok keeps it Ready. When the Pod goes away, its Node stays and turns
//! NotReady, as a real VM's would. Nodes it did not register are never touched.
//!
//! Everything is driven by watches: a reflector of machine Pods and a metadata
//! watch of Nodes feed a queue of Pod keys; one reconcile per key runs at a time,
//! failures are retried with backoff and the join delay is a timer per Pod.

#[path = "kubelet_standin/decide.rs"]
mod decide;
#[path = "kubelet_standin/node.rs"]
mod node;
#[path = "kubelet_standin/reconcile.rs"]
mod reconcile;
#[path = "kubelet_standin/token.rs"]
mod token;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::scheduler::ScheduleRequest;
use kube::runtime::{WatchStreamExt, scheduler, watcher};
use kube::{Api, Client, Config, ResourceExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::reconcile::{Context, Error};

/// The machine Pods of the local driver.
const POD_SELECTOR: &str = "app=machine,machine-provider=local";
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(about = "Plays the kubelet inside each machine Pod of the local cluster")]
struct Cli {
    /// Admin kubeconfig of the target cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// How long a machine Pod runs before its kubelet joins (e.g. 0s, 5s, 1m).
    #[arg(long, env = "JOIN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    join_delay: Duration,
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

/// Retry delay after `failures` consecutive failures (1, 2, ...).
fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
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
    let mut node_events = watcher(
        Api::<PartialObjectMeta<Node>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .boxed();
    let ctx = Arc::new(Context::new(client, config, pods.clone(), cli.join_delay));

    let (requests, schedule) = futures::channel::mpsc::unbounded::<ScheduleRequest<PodKey>>();
    let enqueue = |key: PodKey, after: Duration| {
        // The receiver lives as long as this function: sending cannot fail.
        let _ = requests.unbounded_send(ScheduleRequest {
            message: key,
            run_at: Instant::now() + after,
        });
    };
    let mut due = std::pin::pin!(scheduler(schedule));
    let mut tasks = JoinSet::new();
    let mut running = HashSet::<PodKey>::new();
    let mut dirty = HashSet::<PodKey>::new();
    let mut failures = HashMap::<PodKey, u32>::new();
    // Pods seen so far, to notice the ones deleted while the watch was down.
    let mut known = HashSet::<PodKey>::new();
    let mut synced = false;
    let mut shutdown = std::pin::pin!(shutdown_signal());

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
                        enqueue(key, Duration::ZERO);
                    }
                }
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(key) = PodKey::of(&pod) {
                        known.remove(&key);
                        enqueue(key, Duration::ZERO);
                    }
                }
                Some(Ok(watcher::Event::Init)) => {}
                Some(Ok(watcher::Event::InitDone)) => {
                    known.retain(|key| {
                        let present = pods.get(&ObjectRef::new(&key.name).within(&key.namespace)).is_some();
                        if !present {
                            enqueue(key.clone(), Duration::ZERO);
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
                        enqueue(key, Duration::ZERO);
                    }
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                Some(Err(e)) => warn!("watching nodes: {e}"),
                None => return Err("the node watch ended".into()),
            },
            // Nothing runs before the pod store is complete: a pod missing from a
            // partial store would look deleted.
            Some(key) = due.next(), if synced => {
                if !running.insert(key.clone()) {
                    dirty.insert(key);
                    continue;
                }
                let ctx = ctx.clone();
                tasks.spawn(async move {
                    let result = AssertUnwindSafe(reconcile::reconcile(ctx, key.clone())).catch_unwind().await;
                    (key, result)
                });
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((key, result)) = done else {
                    error!("a reconcile task was cancelled");
                    continue;
                };
                running.remove(&key);
                let retry = match result {
                    Ok(Ok(after)) => {
                        failures.remove(&key);
                        after
                    }
                    Ok(Err(e)) => {
                        let n = failures.entry(key.clone()).or_default();
                        *n += 1;
                        let delay = backoff(*n);
                        let retry_in = humantime::format_duration(delay);
                        match e {
                            Error::Refused(_) => warn!(pod = %key, %retry_in, "not registering node {}: {e}", key.name),
                            Error::Waiting(_) => info!(pod = %key, %retry_in, "{e}"),
                            Error::Kube(..) => warn!(pod = %key, %retry_in, "{e}: {:?}", std::error::Error::source(&e)),
                        }
                        Some(delay)
                    }
                    Err(_) => {
                        error!(pod = %key, "reconcile panicked");
                        Some(BACKOFF_MAX)
                    }
                };
                if dirty.remove(&key) {
                    enqueue(key, Duration::ZERO);
                } else if let Some(after) = retry {
                    enqueue(key, after);
                }
            }
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
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(8), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
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
