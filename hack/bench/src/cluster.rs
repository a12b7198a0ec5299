// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local cluster as the benchmark sees it: kubeconfigs, clients that count
//! their own requests, the API server's `apiserver_request_total`, namespaces
//! and the samples in `kubernetes/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::HeaderValue;
use axum::http::Request;
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ObjectMeta;
use kube::runtime::{conditions, wait::await_condition};
use kube::{Api, Client, Config};
use tower::{Layer, Service};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Requests by (verb, resource), with the verbs `apiserver_request_total` uses
/// (LIST, WATCH, GET, POST, PATCH, APPLY, PUT, DELETE, DELETECOLLECTION) and
/// `resource[/subresource]`.
pub type Requests = BTreeMap<(String, String), u64>;

/// `after - before`, per key (counters only grow; a restart would make it 0).
pub fn delta(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// `a - b`, per key, never below zero.
pub fn minus(a: &Requests, b: &Requests) -> Requests {
    delta(b, a)
}

/// Verb and resource of a request, as the API server counts it. `apply` says
/// whether a PATCH carries an apply patch; when unknown (the controller's log has
/// only the URL), a PATCH with `force=` is taken for one: the controller applies
/// with force and merge-patches without.
pub fn classify(method: &str, url: &str, apply: Option<bool>) -> (String, String) {
    let path_and_query = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => url,
    };
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => return (method.to_string(), path.to_string()),
    };
    let (resource, name, sub) = match rest {
        ["namespaces", _, resource, tail @ ..] => (*resource, tail.first(), tail.get(1)),
        [resource, tail @ ..] => (*resource, tail.first(), tail.get(1)),
        [] => return (method.to_string(), path.to_string()),
    };
    let param = |p: &str| query.split('&').any(|kv| kv.starts_with(p));
    let verb = match method {
        "GET" if param("watch=true") || param("watch=1") => "WATCH",
        "GET" if name.is_none() => "LIST",
        "PATCH" if apply.unwrap_or_else(|| param("force=")) => "APPLY",
        "DELETE" if name.is_none() => "DELETECOLLECTION",
        other => other,
    };
    let resource = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    (verb.to_string(), resource)
}

/// A shared tally of requests.
#[derive(Clone, Default)]
pub struct Counter(Arc<Mutex<Requests>>);

impl Counter {
    pub fn add(&self, key: (String, String)) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }
    pub fn snapshot(&self) -> Requests {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Counts every request that passes, by verb and resource.
#[derive(Clone)]
pub struct CountLayer(pub Counter);

impl<S> Layer<S> for CountLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counter: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counter: Counter,
}

impl<S: Service<Request<B>>, B> Service<Request<B>> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        let apply = request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
        self.counter.add(classify(
            request.method().as_str(),
            &request.uri().to_string(),
            Some(apply),
        ));
        self.inner.call(request)
    }
}

/// One cluster: its kubeconfig, client configuration and an unthrottled client
/// for the load generator that counts its requests into the shared counter.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub config: Config,
    pub client: Client,
}

impl Cluster {
    async fn load(kubeconfig: PathBuf, counter: &Counter) -> Result<Self> {
        let kc = Kubeconfig::read_from(&kubeconfig)
            .map_err(|e| format!("{}: {e} (is the local cluster up?)", kubeconfig.display()))?;
        let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        // Named, so that an audit log (AUDIT_DIR=… hack/cluster-up.sh) tells the
        // benchmark's own requests from the controller's.
        config
            .headers
            .push((USER_AGENT, HeaderValue::from_static("mcm-bench")));
        let client = ClientBuilder::try_from(config.clone())?
            .with_layer(&CountLayer(counter.clone()))
            .build();
        Ok(Cluster {
            kubeconfig,
            config,
            client,
        })
    }

    pub fn server(&self) -> String {
        self.config.cluster_url.to_string()
    }
}

/// Where the benchmark runs: the repository (its `.local/`) and both clusters.
pub struct Env {
    pub root: PathBuf,
    pub control: Cluster,
    pub target: Cluster,
    pub kubectl: PathBuf,
    /// Every request of the benchmark's own clients (the load generator and its
    /// watches), to subtract from the API server's counts.
    pub load: Counter,
}

impl Env {
    pub async fn load(root: &Path) -> Result<Self> {
        let local = root.join(".local");
        let kubeconfig = |var: &str, file: &str| match std::env::var_os(var) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => local.join(file),
        };
        let load = Counter::default();
        let control = Cluster::load(
            kubeconfig("CONTROL_KUBECONFIG", "control.kubeconfig"),
            &load,
        )
        .await?;
        let target =
            Cluster::load(kubeconfig("TARGET_KUBECONFIG", "target.kubeconfig"), &load).await?;
        let kubectl = match std::env::var_os("KUBECTL") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => local.join("bin/kubectl"),
        };
        Ok(Env {
            root: root.to_path_buf(),
            control,
            target,
            kubectl,
            load,
        })
    }

    /// Whether control and target are one cluster (`CLUSTERS=1`).
    pub fn one_cluster(&self) -> bool {
        self.control.server() == self.target.server()
    }

    /// The clusters to create a namespace in, or to scrape: each API server once.
    pub fn clusters(&self) -> Vec<&Cluster> {
        if self.one_cluster() {
            vec![&self.target]
        } else {
            vec![&self.control, &self.target]
        }
    }

    /// `apiserver_request_total` of every API server, summed.
    pub async fn server_requests(&self) -> Result<Requests> {
        let mut sum = Requests::new();
        for cluster in self.clusters() {
            for (k, v) in server_requests(&cluster.client).await? {
                *sum.entry(k).or_default() += v;
            }
        }
        Ok(sum)
    }

    /// `kubectl apply` of YAML text, as a user would.
    pub fn kubectl_apply(&self, cluster: &Cluster, yaml: &str) -> Result<()> {
        use std::io::Write;
        let mut child = std::process::Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.kubectl.display()))?;
        child
            .stdin
            .take()
            .ok_or("kubectl stdin")?
            .write_all(yaml.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!(
                "kubectl apply failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }

    /// A sample from `kubernetes/`, moved into `namespace`.
    pub fn sample(&self, file: &str, namespace: &str) -> Result<String> {
        let path = self.root.join("kubernetes").join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(text.replace("namespace: default", &format!("namespace: {namespace}")))
    }
}

/// `apiserver_request_total` of one API server, by verb and resource/subresource.
pub async fn server_requests(client: &Client) -> Result<Requests> {
    let request = Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    Ok(parse_request_total(&text))
}

pub fn parse_request_total(text: &str) -> Requests {
    let mut out = Requests::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let labels = parse_labels(labels);
        let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or_default();
        let resource = match get("subresource") {
            "" => get("resource").to_string(),
            sub => format!("{}/{sub}", get("resource")),
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry((get("verb").to_string(), resource)).or_default() += value.round() as u64;
    }
    out
}

/// `k="v",k2="v2"` (Prometheus text format label values, with `\` escapes).
pub fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// Creates namespace `name` and waits for its default ServiceAccount, without
/// which Pods are refused.
pub async fn create_namespace(client: &Client, name: &str, label: &str) -> Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some([("mcm-local-bench".to_string(), label.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|e| format!("creating namespace {name}: {e}"))?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let present = await_condition(accounts, "default", |sa: Option<&ServiceAccount>| {
        sa.is_some()
    });
    tokio::time::timeout(Duration::from_secs(60), present)
        .await
        .map_err(|_| format!("namespace {name}: no default ServiceAccount after 60s"))??;
    Ok(())
}

/// Deletes namespace `name` and waits until it is gone; returns how long that took
/// (`None` if it was still there after `timeout`).
pub async fn delete_namespace(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<Option<Duration>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let start = tokio::time::Instant::now();
    let uid = match api.delete(name, &DeleteParams::background()).await {
        Ok(either) => either.left().and_then(|ns| ns.metadata.uid),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Some(Duration::ZERO)),
        Err(e) => return Err(format!("deleting namespace {name}: {e}").into()),
    };
    let uid = uid.unwrap_or_default();
    let gone = await_condition(api, name, conditions::is_deleted(&uid));
    match tokio::time::timeout(timeout, gone).await {
        Ok(r) => {
            r?;
            Ok(Some(start.elapsed()))
        }
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(verb: &str, resource: &str) -> (String, String) {
        (verb.to_string(), resource.to_string())
    }

    #[test]
    fn deltas_count_what_grew_and_never_go_below_zero() {
        let before = Requests::from([(key("GET", "pods"), 10), (key("LIST", "nodes"), 5)]);
        let after = Requests::from([
            (key("GET", "pods"), 15),
            (key("LIST", "nodes"), 5),
            (key("POST", "pods"), 2),
        ]);
        assert_eq!(
            delta(&before, &after),
            Requests::from([(key("GET", "pods"), 5), (key("POST", "pods"), 2)])
        );
        // A restarted server's counters start again: nothing, not a negative.
        assert!(delta(&after, &before).is_empty());
        assert_eq!(minus(&after, &before), delta(&before, &after));
    }

    #[test]
    fn requests_are_classified_as_the_api_server_counts_them() {
        let c = |m, u| classify(m, u, None);
        assert_eq!(
            c("GET", "https://h:6443/api/v1/namespaces/ns/pods/p1"),
            key("GET", "pods")
        );
        assert_eq!(
            c("GET", "/api/v1/namespaces/ns/pods?labelSelector=a"),
            key("LIST", "pods")
        );
        assert_eq!(
            c("GET", "/api/v1/nodes?watch=true&rv=1"),
            key("WATCH", "nodes")
        );
        assert_eq!(
            c(
                "PATCH",
                "/api/v1/namespaces/ns/pods/p1?fieldManager=m&force=true"
            ),
            key("APPLY", "pods")
        );
        assert_eq!(
            classify(
                "PATCH",
                "/api/v1/namespaces/ns/pods/p1?force=true",
                Some(false)
            ),
            key("PATCH", "pods")
        );
        assert_eq!(
            c(
                "PATCH",
                "/apis/machine.sapcloud.io/v1alpha1/namespaces/ns/machines/m1/status"
            ),
            key("PATCH", "machines/status")
        );
        assert_eq!(
            c("DELETE", "/api/v1/namespaces/ns/pods"),
            key("DELETECOLLECTION", "pods")
        );
        assert_eq!(c("GET", "/healthz"), key("GET", "/healthz"));
    }

    #[test]
    fn the_request_total_is_read_from_the_metrics_text() {
        let text = concat!(
            "# HELP apiserver_request_total x\n",
            "apiserver_request_total{code=\"200\",resource=\"pods\",subresource=\"\",verb=\"GET\"} 3\n",
            "apiserver_request_total{code=\"404\",resource=\"pods\",subresource=\"\",verb=\"GET\"} 2\n",
            "apiserver_request_total{code=\"200\",resource=\"nodes\",subresource=\"status\",verb=\"PATCH\"} 7\n",
            "apiserver_request_duration_seconds_count{verb=\"GET\"} 9\n",
        );
        assert_eq!(
            parse_request_total(text),
            Requests::from([(key("GET", "pods"), 5), (key("PATCH", "nodes/status"), 7)])
        );
        let labels = parse_labels(r#"a="1",b="x\"y\\z",c="""#);
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b"], r#"x"y\z"#);
        assert_eq!(labels["c"], "");
    }
}
