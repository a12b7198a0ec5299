// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The `machine-controller` binary with chosen flags and environment, its admin
//! endpoints (`/healthz`, `/readyz`, `/metrics`) over plain HTTP/1.0, and signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep};

use super::cluster::{Cluster, local_dir};

/// How often a wait below looks again at something it cannot watch.
const POLL: Duration = Duration::from_millis(200);

/// A running controller binary; killed when dropped.
pub struct Binary {
    pub child: tokio::process::Child,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Binary {
    /// Starts the binary for `namespace` with `flags` after the kubeconfig and
    /// namespace flags (`--control-kubeconfig=` or `--target-kubeconfig=` in
    /// `flags` replaces the default),
    /// listening on 127.0.0.1 with a free port unless `flags` say otherwise.
    pub fn spawn(namespace: &str, log: &str, flags: &[String], env: &[(&str, &str)]) -> Binary {
        let dir = local_dir().join("logs");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(log);
        let out = std::fs::File::create(&path).expect("controller log file");
        let has = |prefix: &str| flags.iter().any(|f| f.starts_with(prefix));
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_machine-controller"));
        if !has("--control-kubeconfig=") {
            cmd.arg(format!(
                "--control-kubeconfig={}",
                Cluster::Control.kubeconfig().display()
            ));
        }
        if !has("--target-kubeconfig=") {
            cmd.arg(format!(
                "--target-kubeconfig={}",
                Cluster::Target.kubeconfig().display()
            ));
        }
        cmd.arg(format!("--namespace={namespace}"));
        if !has("--address=") {
            cmd.arg("--address=127.0.0.1");
        }
        if !has("--port=") {
            cmd.arg("--port=0");
        }
        cmd.args(flags)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("start machine-controller");
        Binary { child, log: path }
    }

    /// The admin server's address, from the line the binary logs when it binds.
    pub async fn admin_address(&self, timeout: Duration) -> SocketAddr {
        self.wait_for_line(
            timeout,
            "an \"admin server listening\" line",
            listening_address,
        )
        .await
    }

    /// Waits for a log line that `find` picks something from; panics with the
    /// log after `timeout`.
    pub async fn wait_for_line<T>(
        &self,
        timeout: Duration,
        description: &str,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if let Some(found) = text.lines().find_map(&find) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {description} in {} after {timeout:?}:\n{text}",
                self.log.display()
            );
            sleep(POLL).await;
        }
    }

    /// Waits until the whole log so far satisfies `done`; panics with the log
    /// after `timeout`.
    pub async fn wait_for_log(
        &self,
        timeout: Duration,
        description: &str,
        done: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if done(&text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the log shows no {description} in {} after {timeout:?}:\n{text}",
                self.log.display()
            );
            sleep(POLL).await;
        }
    }

    /// Sends SIGTERM, as the kubelet does to stop a Pod.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the controller is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Waits for the process to end; panics after `timeout`.
    pub async fn exit_status(&mut self, timeout: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the controller did not exit within {timeout:?}; log: {}",
                    self.log.display()
                )
            })
            .expect("wait for the controller")
    }

    /// Everything the binary has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `127.0.0.1:PORT` from an "admin server listening" line, text or JSON.
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("admin server listening") {
        return None;
    }
    let rest = line
        .split_once("\"address\":\"")
        .or_else(|| line.split_once("address="))?
        .1;
    let end = rest
        .find(|c: char| c == '"' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// One `GET path` over HTTP/1.0: the status code and the body.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))?;
    Ok((code, body.to_string()))
}

/// Asks `GET path` until `predicate(code, body)` holds; returns that answer.
/// Panics after `timeout` with `description` and the last answer.
pub async fn wait_for_http(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    description: &str,
    predicate: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = get(addr, path).await;
        if let Ok((code, body)) = &answer
            && predicate(*code, body)
        {
            return (*code, body.clone());
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {description} (GET http://{addr}{path}); last answer: {answer:?}"
        );
        sleep(POLL).await;
    }
}

/// A copy of `cluster`'s kubeconfig that impersonates `user`, so that the
/// binary runs with no more rights than RBAC grants that user. Written beside
/// the logs; the caller deletes it.
pub fn impersonating_kubeconfig(cluster: Cluster, user: &str, file: &str) -> PathBuf {
    edited_kubeconfig(cluster, file, |kubeconfig| {
        for auth in &mut kubeconfig.auth_infos {
            if let Some(info) = auth.auth_info.as_mut() {
                info.impersonate = Some(user.to_string());
            }
        }
    })
}

/// A copy of `cluster`'s kubeconfig that reaches its API server at `server` (a
/// [`super::proxy::Proxy`]). Written beside the logs; the caller deletes it.
pub fn kubeconfig_via(cluster: Cluster, server: &str, file: &str) -> PathBuf {
    edited_kubeconfig(cluster, file, |kubeconfig| {
        for entry in &mut kubeconfig.clusters {
            if let Some(c) = entry.cluster.as_mut() {
                c.server = Some(server.to_string());
            }
        }
    })
}

fn edited_kubeconfig(
    cluster: Cluster,
    file: &str,
    edit: impl FnOnce(&mut kube::config::Kubeconfig),
) -> PathBuf {
    let mut kubeconfig = super::cluster::read_kubeconfig(&cluster.kubeconfig());
    edit(&mut kubeconfig);
    let dir = local_dir().join("logs");
    let _ = std::fs::create_dir_all(&dir);
    let out = dir.join(file);
    // JSON is YAML, and keeps every field as read.
    let text = serde_json::to_string_pretty(&kubeconfig).expect("serialize kubeconfig");
    std::fs::write(&out, text).expect("write kubeconfig");
    out
}

/// Deletes `path` when dropped.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The value of the one series `series` (`name{labels}` as exposed, or a bare
/// name) in an exposition, if it is there.
pub fn sample_value(exposition: &str, series: &str) -> Option<f64> {
    let name = series.split('{').next().unwrap_or(series);
    samples(exposition, name)
        .into_iter()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The metric lines of an exposition that start with `name` (and a `{` or space).
pub fn samples<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .collect()
}
