// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Running the machine controller for one test namespace, in-process or as the
//! real binary, and applying the samples in `kubernetes/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, ListParams};
use mcm_local::api::Machine;
use mcm_local::embed::LocalDriver;
use mcm_local::embed::Settings;
use mcm_local::embed::{self, Clients};
use tokio::sync::oneshot;

use super::cluster::{Cluster, repo_root};
use super::namespace::TestNamespace;

/// The controller of one test, stopped (gracefully) when dropped.
pub struct ControllerGuard {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ControllerGuard {
    /// Stops the controller and waits until its in-flight reconciles are done.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for ControllerGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Settings for a test: the namespace, otherwise the flag defaults.
pub fn settings(ns: &TestNamespace) -> Settings {
    Settings {
        namespace: ns.name().to_string(),
        ..Settings::default()
    }
}

/// The controller's default workers per queue (`--concurrent-syncs`).
pub const WORKERS: u16 = 50;

/// Starts the controller in this process for `settings.namespace`. Its log goes to
/// the test's output (shown when the test fails); `RUST_LOG` tunes it.
pub async fn start(settings: Settings) -> ControllerGuard {
    start_with(settings, WORKERS).await
}

/// [`start`] with `concurrency` workers per queue (`--concurrent-syncs`).
pub async fn start_with(settings: Settings, concurrency: u16) -> ControllerGuard {
    let clients = Clients {
        control: cluster_clients(Cluster::Control).await,
        target: Some(cluster_clients(Cluster::Target).await),
    };
    start_on(clients, settings, concurrency, None)
}

/// [`start`], with the local cloud's cloud-wide profile read from `file`
/// (`--cloud-profile`).
pub async fn start_with_cloud_profile(settings: Settings, file: PathBuf) -> ControllerGuard {
    let clients = Clients {
        control: cluster_clients(Cluster::Control).await,
        target: Some(cluster_clients(Cluster::Target).await),
    };
    start_on(clients, settings, 50, Some(file))
}

/// [`start`], with every request of the control client (the one that writes
/// Machines and classes, for the machines and the class upkeep) recorded as
/// `"<METHOD> <path>"`. That client has no token bucket, so that nothing spaces
/// out the requests of machines reconciled at once.
pub async fn start_recorded(settings: Settings) -> (ControllerGuard, Sent) {
    let sent = Sent::default();
    let mut control = cluster_clients(Cluster::Control).await;
    let config = super::cluster::config(Cluster::Control).await;
    control.client = kube::client::ClientBuilder::try_from(config)
        .expect("control client")
        .with_layer(&sent)
        .build();
    let clients = Clients {
        control,
        target: Some(cluster_clients(Cluster::Target).await),
    };
    (start_on(clients, settings, 50, None), sent)
}

/// Requests a client sent, as `"<METHOD> <path>"`, and the status each was
/// answered with.
#[derive(Clone, Default)]
pub struct Sent {
    sent: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Sent {
    /// How many of the requests so far were `line`.
    pub fn count(&self, line: &str) -> usize {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.iter().filter(|l| *l == line).count()
    }

    /// The statuses the requests `line` were answered with so far.
    pub fn answers(&self, line: &str) -> Vec<u16> {
        let answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        answered
            .iter()
            .filter(|(l, _)| l == line)
            .map(|(_, code)| *code)
            .collect()
    }
}

impl<S> tower::Layer<S> for Sent {
    type Service = Recorded<S>;
    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded {
            inner,
            sent: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    sent: Sent,
}

impl<S, B, R> tower::Service<http::Request<B>> for Recorded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let line = format!("{} {}", request.method(), request.uri().path());
        self.sent
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.clone());
        let answered = self.sent.answered.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            answered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((line, response.status().as_u16()));
            Ok(response)
        })
    }
}

fn start_on(
    clients: Clients,
    settings: Settings,
    concurrency: u16,
    cloud_profile: Option<PathBuf>,
) -> ControllerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("mcm_local=debug,kube=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let (stop, stopped) = oneshot::channel::<()>();
    let driver = LocalDriver::new(clients.target.as_ref().map(|t| t.client.clone()))
        .with_cloud_profile(cloud_profile);
    let task = tokio::spawn(embed::run(
        clients,
        driver,
        settings,
        concurrency,
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    ControllerGuard {
        stop: Some(stop),
        task: Some(task),
    }
}

/// The controller's clients for a cluster, with the flag defaults for QPS and burst.
pub async fn cluster_clients(cluster: Cluster) -> mcm_local::client::ClusterClients {
    let config = super::cluster::config(cluster).await;
    mcm_local::client::from_config(config, 20.0, 30).expect("clients")
}

/// `program` against the test clusters for `namespace` (kubeconfig and namespace
/// flags first, then `args`), its output in `.local/logs/<log>`; killed when dropped.
pub fn spawn_for(
    program: &std::path::Path,
    namespace: &str,
    log: &str,
    args: &[String],
) -> tokio::process::Child {
    let logs = super::cluster::local_dir().join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let out = std::fs::File::create(logs.join(log)).expect("log file");
    tokio::process::Command::new(program)
        .arg(format!(
            "--control-kubeconfig={}",
            Cluster::Control.kubeconfig().display()
        ))
        .arg(format!(
            "--target-kubeconfig={}",
            Cluster::Target.kubeconfig().display()
        ))
        .arg(format!("--namespace={namespace}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()))
}

/// The `machine-controller` binary as a child process for `namespace`; killed when dropped.
pub fn spawn_binary(namespace: &str, log: &str) -> tokio::process::Child {
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_machine-controller"));
    spawn_for(
        program,
        namespace,
        log,
        &["--leader-elect=false".into(), "--port=0".into()],
    )
}

/// A sample from `kubernetes/`, moved into `namespace` and with names replaced.
pub fn sample(file: &str, namespace: &str, renames: &[(&str, &str)]) -> String {
    let path = repo_root().join("kubernetes").join(file);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text = text.replace("namespace: default", &format!("namespace: {namespace}"));
    for (from, to) in renames {
        text = text.replace(from, to);
    }
    text
}

/// `kubectl apply` of YAML text to a cluster, as a user would; panics with kubectl's output.
pub async fn kubectl_apply(cluster: Cluster, yaml: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(super::kubectl())
        .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().expect("kubectl stdin");
    stdin
        .write_all(yaml.as_bytes())
        .await
        .expect("write to kubectl");
    drop(stdin);
    let out = child.wait_with_output().await.expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl apply failed: {}\n{}\n--- input ---\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes every Machine of the namespace and waits until they are gone, so that
/// the namespace can go too (machines carry our finalizer).
pub async fn delete_all_machines(machines: &Api<Machine>) {
    let _ = machines
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    super::wait_for_none(
        machines,
        Default::default(),
        super::TIMEOUT,
        "every machine is deleted",
    )
    .await;
}
