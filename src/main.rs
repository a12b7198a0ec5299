// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `machine-controller`: wiring only.

use std::io::IsTerminal;

use clap::Parser;
use mcm_local::admin::{self, Role, Telemetry};
use mcm_local::cli::{LogFormat, Options};
use mcm_local::embed::LocalDriver;
use mcm_local::embed::Settings;
use mcm_local::embed::{self, Clients};
use mcm_local::leader::{self, Shutdown};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::{self, MakeWriter};
use tracing_subscriber::prelude::*;

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    let opts = Options::parse();
    init_logging(&opts);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates an arena of its own, and every arena
/// keeps its own freed memory. A reconcile's allocations move between the
/// runtime's threads, so with one arena per thread that kept memory adds up:
/// one arena took peak RSS at N=1000 in `make bench` from 41.1 to 38.9 MiB, at
/// the same controller CPU (the work is I/O; there is little to contend for).
/// `MALLOC_ARENA_MAX` set in the environment still wins. Other C libraries
/// (the image is static musl) have no such arenas.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a tunable of the allocator; it runs before
        // any other thread exists, and a refused value (return 0) changes nothing.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// The filter for `--v` (klog levels: 0-1 info, 2-4 debug, more trace), or
/// `RUST_LOG` when set.
fn log_filter(rust_log: Option<&str>, v: u8) -> EnvFilter {
    let level = match v {
        0..=1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "{level},kube=warn,hyper=warn,h2=warn,tower=warn,rustls=warn,{}=warn",
                mcm_local::client::REQUEST_LOG_TARGET
            ))
        })
}

/// False for what must never be written whatever `RUST_LOG` or `--v` ask:
/// kube-client's `client` module logs a whole response body (Secret data
/// included) at WARN when it cannot decode it. Only its errors pass; its
/// submodules are not affected.
fn hygienic(meta: &Metadata<'_>) -> bool {
    !(meta.target() == "kube_client::client" && *meta.level() > Level::ERROR)
}

fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = match format {
        LogFormat::Json => fmt::layer().json().with_writer(writer).boxed(),
        LogFormat::Text => fmt::layer().with_ansi(ansi).with_writer(writer).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer.with_filter(filter_fn(hygienic)))
}

fn init_logging(opts: &Options) {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    subscriber(
        log_filter(rust_log.as_deref(), opts.v),
        opts.log_format,
        // Colour codes only for a person at a terminal, not in files or collectors.
        std::io::stdout().is_terminal(),
        std::io::stdout,
    )
    .init();
}

/// Requests shutdown on the first SIGTERM or SIGINT; a second one ends the
/// process at once, for an operator who does not want to wait.
fn on_signals() -> Shutdown {
    async fn signal() {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        let int = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = term => {}
            () = int => {}
        }
    }
    let (request, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutting down: in-flight reconciles finish, then the lease is released");
        let _ = request.send(true);
        signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
    shutdown
}

/// Why the controller could not start, or why leading ended in an error: each
/// stage says which, with the reason its own function gave.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// The leader-election durations do not fit together.
    #[error("leader election flags: {0}")]
    LeaderFlags(String),
    /// A kubeconfig cannot be read or a client cannot be built from it.
    #[error("{which} cluster: {reason}")]
    Cluster { which: &'static str, reason: String },
    /// The admin server (probes, metrics) cannot listen; the reason names
    /// the address.
    #[error("{0}")]
    Admin(String),
    /// Leader election failed (the Lease could not be read or written).
    #[error("leader election: {0}")]
    Leader(String),
}

/// The clients of the `which` cluster (MCM's QPS and burst), the error naming it.
async fn cluster(
    which: &'static str,
    kubeconfig: &str,
    qps: f32,
    burst: u32,
) -> Result<mcm_local::client::ClusterClients, StartError> {
    mcm_local::client::build(kubeconfig, qps, burst)
        .await
        .map_err(|reason| StartError::Cluster { which, reason })
}

async fn run(opts: Options) -> Result<(), StartError> {
    // Checked before anything connects, so that a bad flag fails at once and clearly.
    let timing = opts
        .leader_elect
        .then(|| {
            leader::timing(
                opts.leader_elect_lease_duration,
                opts.leader_elect_renew_deadline,
                opts.leader_elect_retry_period,
            )
        })
        .transpose()
        .map_err(StartError::LeaderFlags)?;

    let control = cluster(
        "control",
        &opts.control_kubeconfig,
        opts.kube_api_qps,
        opts.kube_api_burst,
    )
    .await?;
    let target = if opts.without_target() {
        None
    } else if opts.target_kubeconfig.is_empty() {
        Some(control.clone())
    } else {
        Some(
            cluster(
                "target",
                &opts.target_kubeconfig,
                opts.kube_api_qps,
                opts.kube_api_burst,
            )
            .await?,
        )
    };

    let telemetry = Telemetry::default();
    let listener = admin::bind(&opts.address, opts.port)
        .await
        .map_err(StartError::Admin)?;
    let address = listener
        .local_addr()
        .map_err(|e| StartError::Admin(format!("admin server: {e}")))?;
    // With --port=0 this line is the only place the chosen port is told.
    tracing::info!(%address, "admin server listening (/healthz, /readyz, /metrics)");
    {
        let telemetry = telemetry.clone();
        tokio::spawn(async move {
            // Serves until the process ends, so that a shutdown can be watched.
            if let Err(e) = admin::serve(listener, telemetry, std::future::pending()).await {
                tracing::error!("{e}");
            }
        });
    }

    tracing::info!(namespace = %opts.namespace, "starting machine controller");
    let shutdown = on_signals();
    let pod_name = std::env::var("POD_NAME").ok().filter(|s| !s.is_empty());
    let controller = {
        let (clients, settings) = (
            Clients {
                control: control.clone(),
                target,
            },
            Settings::from(&opts),
        );
        let (stop, telemetry, reporter) = (shutdown.clone(), telemetry.clone(), pod_name.clone());
        move || {
            // The driver: the local one is the only one this binary serves.
            let driver = LocalDriver::new(clients.target.as_ref().map(|t| t.client.clone()))
                .with_rate(opts.kube_api_qps, opts.kube_api_burst)
                .with_cloud_profile(opts.cloud_profile.clone())
                .with_metrics(telemetry.metrics.clone());
            embed::run_with(
                clients,
                driver,
                settings,
                opts.concurrent_syncs,
                reporter,
                stop.wait(),
                telemetry,
            )
        }
    };
    let Some(timing) = timing else {
        telemetry.health.set_role(Role::Leading);
        controller().await;
        return Ok(());
    };
    // Its own client, and so its own token bucket: renewals must not queue
    // behind the controller's requests and miss the renew deadline.
    let lease_client = cluster(
        "control",
        &opts.control_kubeconfig,
        opts.kube_api_qps,
        opts.kube_api_burst,
    )
    .await?;
    let identity = leader::identity(pod_name.as_deref(), leader::hostname().as_deref());
    leader::lead(
        lease_client.client,
        &opts.namespace,
        &identity,
        timing,
        telemetry.health.clone(),
        shutdown,
        controller,
    )
    .await
    .map_err(StartError::Leader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Buffer {
        type Writer = Buffer;
        fn make_writer(&self) -> Buffer {
            self.clone()
        }
    }

    fn logged(rust_log: Option<&str>, v: u8, format: LogFormat) -> String {
        let out = Buffer::default();
        let subscriber = subscriber(log_filter(rust_log, v), format, false, out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "kube_client::client", "BODY of a Secret");
            tracing::error!(target: "kube_client::client", "ERROR line");
            tracing::debug!(target: mcm_local::client::REQUEST_LOG_TARGET, "requesting");
            tracing::trace!(target: "mcm_local::controller", "reconciled");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn body_dumping_lines_never_show_at_any_verbosity() {
        for rust_log in [Some("trace"), Some("kube_client::client=trace"), None] {
            for format in [LogFormat::Json, LogFormat::Text] {
                let out = logged(rust_log, 6, format);
                assert!(!out.contains("BODY"), "RUST_LOG={rust_log:?}: {out}");
                assert!(out.contains("ERROR line"), "RUST_LOG={rust_log:?}: {out}");
            }
        }
        let out = logged(Some("trace"), 0, LogFormat::Json);
        assert!(
            out.contains("requesting") && out.contains("reconciled"),
            "{out}"
        );
        assert!(
            out.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
        let out = logged(None, 6, LogFormat::Text);
        assert!(
            out.contains("reconciled"),
            "--v=6 is trace for our own code: {out}"
        );
        let out = logged(None, 0, LogFormat::Text);
        assert!(!out.contains("reconciled"), "{out}");
    }
}
