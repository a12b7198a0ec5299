// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `machine-controller`: wiring only.

use std::io::IsTerminal;

use clap::Parser;
use mcm_local::admin::{self, Role, Telemetry};
use mcm_local::cli::{LogFormat, Options};
use mcm_local::controller::settings::Settings;
use mcm_local::controller::watches::{self, Clients};
use mcm_local::leader::{self, Shutdown};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let opts = Options::parse();
    init_logging(&opts);
    match run(opts).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Targets held at a level whatever `RUST_LOG` or `--v` ask, because their lines
/// can carry object bodies, i.e. Secret data: kube-client logs a whole response
/// body at WARN when it cannot decode it.
const HYGIENE: &[&str] = &["kube_client::client=error"];

/// The filter for `--v` (klog levels: 0-1 info, 2-4 debug, more trace), or
/// `RUST_LOG` when set, with the [`HYGIENE`] directives on top.
fn log_filter(rust_log: Option<&str>, v: u8) -> EnvFilter {
    let level = match v {
        0..=1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    let mut filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "{level},kube=warn,hyper=warn,tower=warn,rustls=warn"
            ))
        });
    for directive in HYGIENE {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

fn init_logging(opts: &Options) {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(rust_log.as_deref(), opts.v))
        // Colour codes only for a person at a terminal, not in files or collectors.
        .with_ansi(std::io::stdout().is_terminal());
    match opts.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
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

async fn run(opts: Options) -> Result<(), String> {
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
        .transpose()?;

    let control = mcm_local::client::build(
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
            mcm_local::client::build(
                &opts.target_kubeconfig,
                opts.kube_api_qps,
                opts.kube_api_burst,
            )
            .await?,
        )
    };

    let telemetry = Telemetry::default();
    let listener = admin::bind(&opts.address, opts.port).await?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("admin server: {e}"))?;
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
            watches::run_with(
                clients,
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
    let lease_client = mcm_local::client::build(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    fn enabled(filter: EnvFilter, level: Level) -> (bool, bool) {
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            (
                match level {
                    Level::WARN => tracing::enabled!(target: "kube_client::client", Level::WARN),
                    _ => tracing::enabled!(target: "kube_client::client", Level::ERROR),
                },
                tracing::enabled!(target: "mcm_local::controller", Level::TRACE),
            )
        })
    }

    #[test]
    fn body_dumping_targets_stay_quiet_at_any_verbosity() {
        for rust_log in [
            None,
            Some("trace"),
            Some("kube_client=trace"),
            Some("kube_client::client=trace"),
        ] {
            let (kube_warn, _) = enabled(log_filter(rust_log, 6), Level::WARN);
            assert!(!kube_warn, "RUST_LOG={rust_log:?}");
            let (kube_error, _) = enabled(log_filter(rust_log, 6), Level::ERROR);
            assert!(kube_error, "errors still show with RUST_LOG={rust_log:?}");
        }
        let (_, ours) = enabled(log_filter(None, 6), Level::WARN);
        assert!(ours, "--v=6 is trace for our own code");
        let (_, ours) = enabled(log_filter(None, 0), Level::WARN);
        assert!(!ours);
    }
}
