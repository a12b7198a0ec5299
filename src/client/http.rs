// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! One `HTTP` debug span per API request (method, URL, status), with a
//! `requesting` event when it leaves and `stream closed` when its body ends: what
//! `make bench` counts the controller's requests by, and what `--v=2` with
//! `RUST_LOG=mcm_local::client::http=debug` shows. The field names are the
//! OpenTelemetry ones kube-client's own stack uses.

use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, ServerErrorsFailureClass, SharedClassifier};
use tower_http::trace::{MakeSpan, OnEos, OnFailure, OnRequest, OnResponse, TraceLayer};
use tracing::Span;

/// The target of those spans and events, for log filters and for readers of the log.
pub const TARGET: &str = module_path!();

pub(super) type Layer =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, Spans, Spans, Spans, (), Spans, Spans>;

pub(super) fn layer() -> Layer {
    TraceLayer::new_for_http()
        .make_span_with(Spans)
        .on_request(Spans)
        .on_response(Spans)
        .on_body_chunk(())
        .on_eos(Spans)
        .on_failure(Spans)
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Spans;

impl<B> MakeSpan<B> for Spans {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        tracing::debug_span!(
            "HTTP",
            http.method = %request.method(),
            http.url = %request.uri(),
            http.status_code = tracing::field::Empty,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
        )
    }
}

impl<B> OnRequest<B> for Spans {
    fn on_request(&mut self, _: &Request<B>, _: &Span) {
        tracing::debug!("requesting");
    }
}

impl<B> OnResponse<B> for Spans {
    fn on_response(self, response: &Response<B>, _: Duration, span: &Span) {
        let status = response.status();
        span.record("http.status_code", status.as_u16());
        if status.is_client_error() || status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
}

impl OnEos for Spans {
    fn on_eos(self, _: Option<&HeaderMap>, _: Duration, _: &Span) {
        tracing::debug!("stream closed");
    }
}

impl OnFailure<ServerErrorsFailureClass> for Spans {
    fn on_failure(&mut self, failure: ServerErrorsFailureClass, _: Duration, span: &Span) {
        span.record("otel.status_code", "ERROR");
        match failure {
            ServerErrorsFailureClass::StatusCode(status) => {
                span.record("http.status_code", status.as_u16());
                tracing::error!("failed with status {status}");
            }
            ServerErrorsFailureClass::Error(error) => tracing::error!("failed with error {error}"),
        }
    }
}
