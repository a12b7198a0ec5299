// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Kubernetes clients that honour `--kube-api-qps` and `--kube-api-burst`, as
//! client-go's token bucket does: every request waits for a token.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt};
use tower::{BoxError, Layer, Service, ServiceBuilder};

mod http;
pub mod status;

/// The log target of the per-request `HTTP` spans (`requesting`, `stream closed`).
pub use http::TARGET as REQUEST_LOG_TARGET;

/// A token bucket of `qps` refills per second holding up to `burst` tokens.
pub fn limiter(qps: f32, burst: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
    if qps <= 0.0 {
        return None; // as in client-go, a non-positive QPS disables limiting
    }
    let period = Duration::from_secs_f64(1.0 / f64::from(qps));
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(Arc::new(RateLimiter::direct(quota)))
}

#[derive(Clone)]
pub struct RateLimitLayer(Option<Arc<DefaultDirectRateLimiter>>);

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limiter: self.0.clone(),
            wait: None,
            permitted: false,
        }
    }
}

/// Waits for a token in `poll_ready`, so that the client's request buffer
/// queues callers instead of sending.
pub struct RateLimited<S> {
    inner: S,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    permitted: bool,
}

impl<S: Service<R>, R> Service<R> for RateLimited<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(limiter) = &self.limiter
            && !self.permitted
        {
            let wait = self.wait.get_or_insert_with(|| {
                let limiter = limiter.clone();
                Box::pin(async move { limiter.until_ready().await })
            });
            ready!(wait.as_mut().poll(cx));
            self.wait = None;
            self.permitted = true;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.permitted = false;
        self.inner.call(request)
    }
}

/// Clients of one cluster sharing one token bucket.
#[derive(Clone)]
pub struct ClusterClients {
    pub client: kube::Client,
    /// Sees 429 answers at once instead of retrying them: an eviction refused by a
    /// PodDisruptionBudget is an answer, not a transient failure.
    pub no_retry: kube::Client,
    /// For Events, with a token bucket of its own, as MCM's event recorder has
    /// (a clientset of its own, `app.go`): Events never wait behind the
    /// machines' writes nor hold them up.
    pub events: kube::Client,
}

/// Builds the clients of a cluster from a kubeconfig path (`""` or
/// `inClusterConfig`: the Pod's service account).
pub async fn build(kubeconfig: &str, qps: f32, burst: u32) -> Result<ClusterClients, String> {
    let config = if kubeconfig.is_empty() || kubeconfig == "inClusterConfig" {
        kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?
    } else {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .map_err(|e| format!("kubeconfig {kubeconfig}: {e}"))?;
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| format!("kubeconfig {kubeconfig}: {e}"))?
    };
    from_config(config, qps, burst).map_err(|e| format!("client for {kubeconfig:?}: {e}"))
}

pub fn from_config(
    mut config: kube::Config,
    qps: f32,
    burst: u32,
) -> Result<ClusterClients, kube::Error> {
    // Named as client-go names a program, so that the API server's audit log
    // tells our requests from other clients' (unless the caller named itself).
    if !config
        .headers
        .iter()
        .any(|(name, _)| name == ::http::header::USER_AGENT)
    {
        config.headers.push((
            ::http::header::USER_AGENT,
            ::http::HeaderValue::from_static(concat!(
                env!("CARGO_PKG_NAME"),
                "/v",
                env!("CARGO_PKG_VERSION")
            )),
        ));
    }
    let layer = RateLimitLayer(limiter(qps, burst));
    let events_layer = RateLimitLayer(limiter(qps, burst));
    if config.proxy_url.is_some() {
        // kube's own stack answers a proxy with the error saying which feature it
        // lacks; ours does not speak to proxies either.
        let mut no_retry_config = config.clone();
        no_retry_config.default_retry = false;
        return Ok(ClusterClients {
            client: ClientBuilder::try_from(config.clone())?
                .with_layer(&layer)
                .build(),
            no_retry: ClientBuilder::try_from(no_retry_config)?
                .with_layer(&layer)
                .build(),
            events: ClientBuilder::try_from(config)?
                .with_layer(&events_layer)
                .build(),
        });
    }
    // One pool of connections under all three, as client-go shares one
    // transport among clientsets of the same config (6 sockets instead of 7
    // at N=1000 in `make bench`; peak RSS the same).
    let http = http2_connections(&config)?;
    Ok(ClusterClients {
        client: http2_client(&config, true, &layer, &http)?,
        no_retry: http2_client(&config, false, &layer, &http)?,
        events: http2_client(&config, true, &events_layer, &http)?,
    })
}

type Connector = hyper_timeout::TimeoutConnector<hyper_rustls::HttpsConnector<HttpConnector>>;
type Connections = hyper_util::client::legacy::Client<Connector, Body>;

/// A pool of connections that offers h2 by ALPN (the API server accepts it).
fn http2_connections(config: &kube::Config) -> Result<Connections, kube::Error> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    let tls = match &config.tls_server_name {
        Some(name) => {
            let name = name.clone().try_into().map_err(|e| {
                kube::Error::Service(format!("tls-server-name {name:?}: {e}").into())
            })?;
            tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => tls,
    };
    let https = tls.enable_http1().enable_http2().wrap_connector(tcp);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    Ok(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector))
}

/// A client whose requests share HTTP/2 connections, as client-go's do.
///
/// kube's `ClientBuilder` offers only HTTP/1.1, where every request in flight
/// holds a TCP and TLS connection of its own: with 50 workers and the watches the
/// controller kept about 150 connections and their buffers (3 MB of its heap at
/// N=100 in `make bench`). This is the same stack (base URI, retries of 429/503/504,
/// authentication, extra headers, timeouts, one `HTTP` debug span per request),
/// over [`http2_connections`]. Not carried
/// over: proxies (handled above) and the expiry of client certificates from an
/// exec plugin, which kube uses to refresh such clients.
fn http2_client(
    config: &kube::Config,
    retry: bool,
    rate: &RateLimitLayer,
    http: &Connections,
) -> Result<kube::Client, kube::Error> {
    let service = ServiceBuilder::new()
        .layer(rate.clone())
        .layer(config.base_uri_layer())
        .option_layer(retry.then(|| tower::retry::RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(http::layer())
        .map_err(BoxError::from)
        .service(http.clone());
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// Every write of the controller's carries its field manager.
pub fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(crate::contract::FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// A 404 is the outcome a delete wanted.
pub fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if status::not_found(&s) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A short, single-line form of an API error for status messages and Events.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_burst_tokens() {
        let l = limiter(20.0, 30).unwrap();
        let granted = (0..100).filter(|_| l.check().is_ok()).count();
        assert_eq!(granted, 30);
        assert!(limiter(0.0, 30).is_none());
    }
}
