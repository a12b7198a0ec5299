// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! An API server in memory, for tests of the executors (drain, deletion, Node
//! writes) that need answers but no cluster: objects are JSON kept by their
//! path; GET reads one or lists a collection, POST creates, PATCH merges
//! (strategic merges of conditions by type and of finalizers as a set, and
//! the `$deleteFromPrimitiveList` directive), DELETE removes or, with
//! finalizers, marks; an eviction deletes its Pod unless the test said that a
//! budget refuses it. Every request is recorded as "METHOD path".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Clone, Default)]
pub(crate) struct FakeApi(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    requests: Vec<String>,
    refused_evictions: BTreeSet<String>,
    version: u64,
}

/// Collections the fake lists; a GET of any other path that holds no object is a 404.
const COLLECTIONS: &[&str] = &[
    "pods",
    "nodes",
    "secrets",
    "events",
    "machines",
    "machineclasses",
    "volumeattachments",
    "poddisruptionbudgets",
];

impl FakeApi {
    /// A client whose every request this fake answers.
    pub(crate) fn client(&self) -> kube::Client {
        let api = self.clone();
        kube::Client::new(
            tower::service_fn(move |req| api.clone().serve(req)),
            "default",
        )
    }

    /// Stores `object` at `path` (its collection's path and its name).
    pub(crate) fn put(&self, path: &str, object: Value) {
        let mut state = self.lock();
        state.version += 1;
        let mut object = object;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        state.objects.insert(path.to_string(), object);
    }

    /// The object at `path`, if there is one.
    pub(crate) fn get(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    /// Every request so far, as "METHOD path".
    pub(crate) fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Evictions of the Pod at `pod` are refused, as a budget refuses them (429).
    pub(crate) fn refuse_evictions(&self, pod: &str) {
        self.lock().refused_evictions.insert(pod.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn serve(self, req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let strategic = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|t| {
                t.as_bytes()
                    .starts_with(b"application/strategic-merge-patch")
            });
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (code, answer) = self.answer(&method, &path, body, strategic);
        let mut response = Response::new(Body::from(answer.to_string().into_bytes()));
        *response.status_mut() = code;
        Ok(response)
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        body: Value,
        strategic: bool,
    ) -> (StatusCode, Value) {
        let mut state = self.lock();
        state.requests.push(format!("{method} {path}"));
        state.version += 1;
        let version = state.version.to_string();
        if let Some(pod) = path.strip_suffix("/eviction") {
            if state.refused_evictions.contains(pod) {
                let message = "Cannot evict pod as it would violate the pod's disruption budget.";
                return status(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
            }
            return match state.objects.remove(pod) {
                Some(_) => (
                    StatusCode::CREATED,
                    json!({"kind": "Status", "status": "Success"}),
                ),
                None => not_found(),
            };
        }
        let object = path.strip_suffix("/status").unwrap_or(path);
        match *method {
            Method::GET => match state.objects.get(object) {
                Some(found) => (StatusCode::OK, found.clone()),
                None if COLLECTIONS.contains(&last_segment(object)) => {
                    (StatusCode::OK, list(&state.objects, object, &version))
                }
                None => not_found(),
            },
            Method::POST => {
                let name = body["metadata"]["name"].as_str().unwrap_or("unnamed");
                let mut created = body.clone();
                created["metadata"]["resourceVersion"] = json!(version);
                state
                    .objects
                    .insert(format!("{object}/{name}"), created.clone());
                (StatusCode::CREATED, created)
            }
            Method::PATCH => match state.objects.get_mut(object) {
                Some(stored) => {
                    patch(stored, &body, strategic);
                    stored["metadata"]["resourceVersion"] = json!(version);
                    (StatusCode::OK, stored.clone())
                }
                None => not_found(),
            },
            Method::DELETE => {
                let Some(stored) = state.objects.get_mut(object) else {
                    return not_found();
                };
                let held = stored["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if held {
                    stored["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                    return (StatusCode::OK, stored.clone());
                }
                state.objects.remove(object);
                (
                    StatusCode::OK,
                    json!({"kind": "Status", "status": "Success", "code": 200}),
                )
            }
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "no"),
        }
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

/// The objects directly under `collection`, in a list.
fn list(objects: &BTreeMap<String, Value>, collection: &str, version: &str) -> Value {
    let prefix = format!("{collection}/");
    let items: Vec<Value> = objects
        .iter()
        .filter(|(path, _)| path.strip_prefix(&prefix).is_some_and(|n| !n.contains('/')))
        .map(|(_, object)| object.clone())
        .collect();
    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": version}, "items": items})
}

fn not_found() -> (StatusCode, Value) {
    status(StatusCode::NOT_FOUND, "NotFound", "not found")
}

fn status(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": reason, "message": message, "code": code.as_u16(),
    });
    (code, body)
}

/// A JSON merge patch (lists replaced whole), or a strategic one, which
/// differs for the lists the controller patches: conditions merge by type,
/// finalizers as a set, and `$deleteFromPrimitiveList/finalizers` takes
/// entries out.
fn patch(target: &mut Value, patch: &Value, strategic: bool) {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = patch.clone();
        return;
    };
    for (key, value) in p {
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let gone: Vec<&Value> = value.as_array().into_iter().flatten().collect();
            if let Some(Value::Array(entries)) = t.get_mut(list) {
                entries.retain(|e| !gone.contains(&e));
            }
        } else if value.is_null() {
            t.remove(key);
        } else if strategic && (key == "conditions" || key == "finalizers") {
            merge_list(
                t.entry(key.clone()).or_insert(json!([])),
                value,
                key == "conditions",
            );
        } else {
            self::patch(
                t.entry(key.clone()).or_insert(Value::Null),
                value,
                strategic,
            );
        }
    }
}

/// Conditions replace the one of their type; finalizers are added once.
fn merge_list(stored: &mut Value, added: &Value, by_type: bool) {
    let Value::Array(entries) = stored else {
        *stored = added.clone();
        return;
    };
    for new in added.as_array().into_iter().flatten() {
        let same = |e: &Value| {
            if by_type {
                e["type"] == new["type"]
            } else {
                e == new
            }
        };
        match entries.iter_mut().find(|e| same(e)) {
            Some(old) if by_type => self::patch(old, new, true),
            Some(_) => {}
            None => entries.push(new.clone()),
        }
    }
}
