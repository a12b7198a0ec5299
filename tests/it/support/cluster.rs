// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Connecting to the local cluster(s) written by `make cluster-up`.
//!
//! The kubeconfigs come from `CONTROL_KUBECONFIG` / `TARGET_KUBECONFIG`, defaulting
//! to `.local/control.kubeconfig` and `.local/target.kubeconfig` in the repository.
//! Every client made here verifies the API server's certificate against the
//! kubeconfig's CA: [`config`] refuses a kubeconfig that would skip it.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// One of the two clusters the controller talks to. With `CLUSTERS=1` both are the
/// same cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cluster {
    /// Machines, MachineClasses, Secrets.
    Control,
    /// Machine Pods, Nodes, bootstrap tokens.
    Target,
}

impl Cluster {
    /// The kubeconfig of this cluster (admin certificate).
    pub fn kubeconfig(self) -> PathBuf {
        let (var, file) = match self {
            Cluster::Control => ("CONTROL_KUBECONFIG", "control.kubeconfig"),
            Cluster::Target => ("TARGET_KUBECONFIG", "target.kubeconfig"),
        };
        match std::env::var_os(var) {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => local_dir().join(file),
        }
    }

    /// A client for this cluster (see [`config`]).
    pub async fn client(self) -> Client {
        let config = config(self).await;
        Client::try_from(config).unwrap_or_else(|e| panic!("client for the {self:?} cluster: {e}"))
    }

    /// The API server URL of this cluster, as written in its kubeconfig.
    pub fn server(self) -> String {
        let path = self.kubeconfig();
        let kubeconfig = read_kubeconfig(&path);
        cluster_entry(&kubeconfig, &path)
            .server
            .clone()
            .unwrap_or_else(|| panic!("{}: the current cluster has no server", path.display()))
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.local/` in the repository: kubeconfigs, logs, `bin/kubectl`.
pub fn local_dir() -> PathBuf {
    repo_root().join(".local")
}

/// The kubectl that `make cluster-up` links into `.local/bin` (or `$KUBECTL`).
pub fn kubectl() -> PathBuf {
    match std::env::var_os("KUBECTL") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => local_dir().join("bin/kubectl"),
    }
}

/// A client for the control cluster.
pub async fn control() -> Client {
    Cluster::Control.client().await
}

/// A client for the target cluster.
pub async fn target() -> Client {
    Cluster::Target.client().await
}

/// Whether control and target are different clusters (`CLUSTERS=2 make cluster-up`).
pub fn two_clusters() -> bool {
    Cluster::Control.server() != Cluster::Target.server()
}

/// Reads a kubeconfig, or panics saying how to get one.
pub fn read_kubeconfig(path: &Path) -> Kubeconfig {
    Kubeconfig::read_from(path).unwrap_or_else(|e| {
        panic!(
            "cannot read kubeconfig {}: {e}\nStart the local cluster with `make cluster-up` \
             (or point CONTROL_KUBECONFIG / TARGET_KUBECONFIG at one).",
            path.display()
        )
    })
}

/// The cluster entry the current context of `kubeconfig` uses.
pub fn cluster_entry<'a>(kubeconfig: &'a Kubeconfig, path: &Path) -> &'a kube::config::Cluster {
    let context_name = kubeconfig
        .current_context
        .as_deref()
        .unwrap_or_else(|| panic!("{}: no current-context", path.display()));
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.as_str())
        .unwrap_or_else(|| panic!("{}: no context {context_name:?}", path.display()));
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .unwrap_or_else(|| panic!("{}: no cluster {cluster_name:?}", path.display()))
}

/// The client configuration of `cluster`, checked by [`assert_tls_verified`].
/// Change fields (e.g. `default_retry`) before building a client with
/// `Client::try_from(config)`.
pub async fn config(cluster: Cluster) -> Config {
    let path = cluster.kubeconfig();
    let kubeconfig = read_kubeconfig(&path);
    assert_kubeconfig_verifies_tls(&kubeconfig, &path);
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", path.display()));
    assert_tls_verified(&config);
    config
}

/// Panics unless the kubeconfig's current cluster is reached over https, names a CA
/// and does not skip verification: what every tool (kubectl, the controller, MCM)
/// given this kubeconfig relies on.
pub fn assert_kubeconfig_verifies_tls(kubeconfig: &Kubeconfig, path: &Path) {
    let cluster = cluster_entry(kubeconfig, path);
    let server = cluster.server.as_deref().unwrap_or_default();
    assert!(
        server.starts_with("https://"),
        "{}: server {server:?} is not https",
        path.display()
    );
    assert_ne!(
        cluster.insecure_skip_tls_verify,
        Some(true),
        "{}: insecure-skip-tls-verify is set",
        path.display()
    );
    assert!(
        cluster.certificate_authority_data.is_some() || cluster.certificate_authority.is_some(),
        "{}: no certificate-authority(-data)",
        path.display()
    );
}

/// Panics unless a client built from `config` verifies the server certificate
/// against a configured CA.
pub fn assert_tls_verified(config: &Config) {
    assert_eq!(
        config.cluster_url.scheme_str(),
        Some("https"),
        "{} is not https",
        config.cluster_url
    );
    assert!(
        !config.accept_invalid_certs,
        "the client would accept invalid certificates"
    );
    assert!(
        config.root_cert.as_ref().is_some_and(|c| !c.is_empty()) || config.root_cert_file.is_some(),
        "the client has no CA to verify {} with",
        config.cluster_url
    );
}
