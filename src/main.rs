// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `machine-controller`: wiring only.

use clap::Parser;
use mcm_local::cli::{LogFormat, Options};
use mcm_local::controller::settings::Settings;
use mcm_local::controller::watches::{self, Clients};
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

fn init_logging(opts: &Options) {
    let level = match opts.v {
        0..=1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},kube=warn,hyper=warn,tower=warn,rustls=warn"
        ))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match opts.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(opts: Options) -> Result<(), String> {
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
    tracing::info!(namespace = %opts.namespace, "starting machine controller");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    watches::run(
        Clients { control, target },
        Settings::from(&opts),
        opts.concurrent_syncs,
        std::env::var("POD_NAME").ok(),
        shutdown,
    )
    .await;
    Ok(())
}
