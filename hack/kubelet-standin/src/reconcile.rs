// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Performs the [`Plan`] for one machine Pod against the target cluster.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Taint};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Config, Resource};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::PodKey;
use crate::decide::{Observation, Plan, PodState, decide};
use crate::node::{self, NodeView};
use crate::token::{self, BootstrapToken};

const FIELD_MANAGER: &str = "kubelet-standin";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubelet may not join; retried with backoff (the user data or the token
    /// may still be fixed).
    #[error("join refused: {0}")]
    Refused(String),
    /// Something the join needs is not there yet; retried with backoff.
    #[error("waiting: {0}")]
    Waiting(String),
    #[error("{0}: {1}")]
    Kube(&'static str, #[source] kube::Error),
}

/// What this process remembers per machine Pod.
#[derive(Default)]
struct Memory {
    /// When each Pod was first seen Running (by UID).
    running_since: HashMap<PodKey, (String, Instant)>,
    /// The Pod UID whose kubelet registered or re-joined the Node.
    joined: HashMap<PodKey, String>,
    /// The resourceVersion of the Node as our last stop left it, by Node name.
    stopped: HashMap<String, u64>,
}

pub struct Context {
    admin: Client,
    /// The admin connection's settings: cluster URL and CA for token clients.
    admin_config: Config,
    pods: Store<Pod>,
    nodes: Store<Node>,
    recorder: Recorder,
    join_delay: Duration,
    memory: Mutex<Memory>,
    /// Zones that are out (the local cloud's cloud-wide profiles).
    outages: Mutex<BTreeSet<String>>,
}

impl Context {
    pub fn new(
        admin: Client,
        admin_config: Config,
        pods: Store<Pod>,
        nodes: Store<Node>,
        join_delay: Duration,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        };
        Context {
            recorder: Recorder::new(admin.clone(), reporter),
            admin,
            admin_config,
            pods,
            nodes,
            join_delay,
            memory: Mutex::default(),
            outages: Mutex::default(),
        }
    }

    fn pod(&self, key: &PodKey) -> Option<Arc<Pod>> {
        self.pods.get(&key.object_ref())
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A poisoned lock only means another reconcile panicked; the maps stay usable.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Updates the memory for `key` and returns (joined uid, time seen running).
    fn remember(&self, key: &PodKey, state: PodState<'_>) -> (Option<String>, Duration) {
        let mut memory = self.memory();
        match state {
            PodState::Running { uid } => {
                let entry = memory
                    .running_since
                    .entry(key.clone())
                    .or_insert_with(|| (uid.to_owned(), Instant::now()));
                if entry.0 != uid {
                    *entry = (uid.to_owned(), Instant::now());
                }
                let running_for = entry.1.elapsed();
                (memory.joined.get(key).cloned(), running_for)
            }
            PodState::Gone => {
                memory.running_since.remove(key);
                memory.joined.remove(key);
                (None, Duration::ZERO)
            }
            PodState::Starting | PodState::Stopped { .. } => {
                memory.running_since.remove(key);
                (memory.joined.get(key).cloned(), Duration::ZERO)
            }
        }
    }

    /// Whether `node` is a cached copy from before our last stop of it. Every
    /// Node event brings the Pod back, and a copy that does not show the stop
    /// yet (the watch lags on a busy API server) would stop it again: at N=1000
    /// in `make bench` that was three or four writes a Node instead of two.
    /// Our own write's event comes, and brings the Pod back, in any case.
    fn before_our_stop(&self, node: &Node) -> bool {
        let (Some(name), Some(version)) = (node.metadata.name.as_ref(), resource_version(node))
        else {
            return false;
        };
        self.memory()
            .stopped
            .get(name)
            .is_some_and(|&stopped| version < stopped)
    }

    fn mark_stopped(&self, node: &Node) {
        if let (Some(name), Some(version)) = (node.metadata.name.clone(), resource_version(node)) {
            let mut memory = self.memory();
            let entry = memory.stopped.entry(name).or_insert(version);
            *entry = (*entry).max(version);
        }
    }

    fn mark_joined(&self, key: &PodKey, uid: &str) {
        self.memory().joined.insert(key.clone(), uid.to_owned());
    }

    async fn publish(&self, pod: &Pod, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "RegisterNode".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &pod.object_ref(&())).await {
            debug!(error = %e, "could not publish event");
        }
    }
}

impl Context {
    /// Takes the zones that are out now; whether that changed anything.
    pub fn set_outages(&self, zones: BTreeSet<String>) -> bool {
        let mut outages = self.outages.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *outages != zones;
        *outages = zones;
        changed
    }

    fn zone_out(&self, pod: Option<&Pod>) -> bool {
        let outages = self.outages.lock().unwrap_or_else(|p| p.into_inner());
        pod.and_then(node::zone_of)
            .is_some_and(|zone| outages.contains(zone))
    }
}

/// Brings the Node of machine Pod `key` in line with the Pod. Returns when to look
/// again, if the join delay is still running.
pub async fn reconcile(ctx: Arc<Context>, key: PodKey) -> Result<Option<Duration>, Error> {
    let pod = ctx.pod(&key);
    let state = PodState::of(pod.as_deref());
    let nodes: Api<Node> = Api::all(ctx.admin.clone());
    // From the cache: every change of the Node enqueues its Pod again, so a
    // decision on a copy that is behind is redone when the cache catches up.
    let node = ctx.nodes.get(&ObjectRef::new(&key.name));
    let view = node.as_deref().map(NodeView::of);
    // gardener-node-agent's part of an in-place update, on a Node this Pod runs.
    if let (Some(n), PodState::Running { .. }) = (node.as_deref(), state)
        && view.as_ref().and_then(|v| v.pod.as_ref()) == Some(&key)
        && let Some(report) = node::in_place_update_report(n)
    {
        nodes
            .patch(
                &key.name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(report),
            )
            .await
            .map_err(|e| Error::Kube("reporting the in-place update", e))?;
        info!(pod = %key, "in-place update of node {} reported", key.name);
    }
    let node_owner_running = view
        .as_ref()
        .and_then(|v| v.pod.as_ref())
        .filter(|owner| **owner != key)
        .is_some_and(|owner| {
            matches!(
                PodState::of(ctx.pod(owner).as_deref()),
                PodState::Running { .. }
            )
        });
    if node.as_deref().is_some_and(|n| ctx.before_our_stop(n)) {
        debug!(pod = %key, "the cached node predates our stop of it");
        return Ok(None);
    }
    let (joined_uid, running_for) = ctx.remember(&key, state);
    let plan = decide(&Observation {
        key: &key,
        pod: state,
        node: view.as_ref(),
        joined_uid: joined_uid.as_deref(),
        running_for,
        join_delay: ctx.join_delay,
        node_owner_running,
        zone_out: ctx.zone_out(pod.as_deref()),
        boot_fault: pod.as_deref().and_then(node::boot_fault_of),
    });
    debug!(pod = %key, ?plan, "decided");
    match plan {
        Plan::Nothing(_) => Ok(None),
        Plan::WaitForJoinDelay(left) => Ok(Some(left)),
        Plan::Joined | Plan::JoinedUntil(_) => {
            if let PodState::Running { uid } = state {
                ctx.mark_joined(&key, uid);
            }
            if let (Some(pod), Some(node)) = (pod.as_deref(), node.as_deref()) {
                report_capacity(&nodes, pod, node).await?;
            }
            Ok(match plan {
                Plan::JoinedUntil(left) => Some(left),
                _ => None,
            })
        }
        Plan::FailPod => {
            let pods: Api<Pod> = Api::namespaced(ctx.admin.clone(), &key.namespace);
            let patch = Patch::Merge(node::failed_pod_status_patch());
            match pods
                .patch_status(&key.name, &PatchParams::apply(FIELD_MANAGER), &patch)
                .await
            {
                Ok(_) => {}
                // Deleted meanwhile: nothing left to fail.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::Kube("failing the pod", e)),
            }
            info!(pod = %key, "the VM crashed at boot (boot fault): its pod failed");
            Ok(None)
        }
        Plan::Register | Plan::Rejoin => {
            let (Some(pod), PodState::Running { uid }) = (pod.as_deref(), state) else {
                return Ok(None);
            };
            let (token, taints, boot) = match authenticate(&ctx, pod).await {
                Ok(found) => found,
                Err(Error::Refused(why)) => {
                    ctx.publish(pod, EventType::Warning, "JoinRefused", why.clone())
                        .await;
                    return Err(Error::Refused(why));
                }
                Err(e) => return Err(e),
            };
            // This machine boots slower than the join delay says: look again then.
            if let Some(left) = boot
                .and_then(|b| b.checked_sub(running_for))
                .filter(|l| !l.is_zero())
            {
                return Ok(Some(left));
            }
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            if plan == Plan::Register {
                let new = node::build_node(&key, uid, taints, node::vm_labels(pod));
                match nodes.create(&params, &new).await {
                    Ok(created) => report_capacity(&nodes, pod, &created).await?,
                    // Someone registered it meanwhile: decide again on the next event.
                    Err(kube::Error::Api(s)) if s.code == 409 => return Ok(None),
                    Err(e) => return Err(Error::Kube("creating the node", e)),
                }
            } else {
                let patch = Patch::Merge(node::rejoin_patch(&key, uid));
                nodes
                    .patch(&key.name, &PatchParams::apply(FIELD_MANAGER), &patch)
                    .await
                    .map_err(|e| Error::Kube("re-annotating the node", e))?;
            }
            ctx.mark_joined(&key, uid);
            let what = if plan == Plan::Register {
                "registered"
            } else {
                "re-joined"
            };
            info!(pod = %key, "{what} node {} with {token}", key.name);
            let note = format!("Node {} {what} with {token}", key.name);
            ctx.publish(pod, EventType::Normal, "NodeRegistered", note)
                .await;
            Ok(None)
        }
        Plan::Resume => {
            let patch = Patch::Merge(node::resume_patch());
            nodes
                .patch(&key.name, &PatchParams::apply(FIELD_MANAGER), &patch)
                .await
                .map_err(|e| Error::Kube("bringing the node back", e))?;
            info!(pod = %key, "its zone is back: node {} posts status again", key.name);
            Ok(None)
        }
        Plan::Stop {
            stop_heartbeat,
            mark_not_ready,
            outage,
        } => {
            let params = PatchParams::apply(FIELD_MANAGER);
            // A stop written is remembered, so that copies older than it are skipped.
            let ignore_gone = |r: kube::Result<Node>| match r {
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Ok(node) => {
                    ctx.mark_stopped(&node);
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if stop_heartbeat || outage {
                let patch = Patch::Merge(node::stop_heartbeat_patch(outage));
                ignore_gone(nodes.patch(&key.name, &params, &patch).await)
                    .map_err(|e| Error::Kube("removing the kwok annotation", e))?;
            }
            if mark_not_ready {
                let patch = Patch::Strategic(node::not_ready_status_patch(jiff::Timestamp::now()));
                ignore_gone(nodes.patch_status(&key.name, &params, &patch).await)
                    .map_err(|e| Error::Kube("marking the node NotReady", e))?;
            }
            let why = match outage {
                true => "its zone is out",
                false => "machine pod is gone",
            };
            info!(pod = %key, "{why}: node {} is NotReady", key.name);
            Ok(None)
        }
    }
}

/// Reports the VM's size as the Node's capacity, unless it does already.
async fn report_capacity(nodes: &Api<Node>, pod: &Pod, node: &Node) -> Result<(), Error> {
    let Some(status) = node::capacity_status_patch(pod, Some(node)) else {
        return Ok(());
    };
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER);
    match nodes
        .patch_status(name, &params, &Patch::Merge(status))
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube("reporting the node's capacity", e)),
    }
}

/// Reads the Pod's user data, takes its bootstrap token and proves that the API
/// server accepts it, the way a kubelet's TLS bootstrap would; also returns the
/// taints the user data's kubelet registers with and the machine's boot time.
async fn authenticate(
    ctx: &Context,
    pod: &Pod,
) -> Result<(BootstrapToken, Vec<Taint>, Option<Duration>), Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let source = node::userdata_source(pod).map_err(Error::Refused)?;
    let secret_name = source.secret;
    let secrets: Api<Secret> = Api::namespaced(ctx.admin.clone(), namespace);
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|e| Error::Kube("reading the user data", e))?
        .ok_or_else(|| {
            Error::Waiting(format!(
                "user data Secret {namespace}/{secret_name} not found"
            ))
        })?;
    let userdata = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&source.key))
        .ok_or_else(|| {
            Error::Refused(format!(
                "user data Secret {namespace}/{secret_name} has no key {:?}",
                source.key
            ))
        })?;
    let token = token::find_token(&userdata.0).map_err(|e| Error::Refused(e.to_string()))?;
    let taints = node::register_with_taints(&userdata.0);
    let boot = node::boot_time(&userdata.0);

    let client = token_client(&ctx.admin_config, &token)
        .map_err(|e| Error::Kube("building a client for the bootstrap token", e))?;
    let reviews: Api<SelfSubjectReview> = Api::all(client);
    match reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(review) => {
            let username = review
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .unwrap_or_default();
            if username == token.username() {
                Ok((token, taints, boot))
            } else {
                Err(Error::Refused(format!(
                    "{token} authenticates as {username:?}, not {}",
                    token.username()
                )))
            }
        }
        Err(kube::Error::Api(s)) if s.code == 401 => {
            let token_secrets: Api<Secret> = Api::namespaced(ctx.admin.clone(), "kube-system");
            let stored = token_secrets
                .get_opt(&token.secret_name())
                .await
                .map_err(|e| Error::Kube("reading the bootstrap token Secret", e))?;
            Err(Error::Refused(token::explain_rejection(
                &token,
                stored.as_ref(),
                jiff::Timestamp::now(),
            )))
        }
        Err(kube::Error::Api(s)) if s.code == 403 => Err(Error::Refused(format!(
            "{token} may not create a SelfSubjectReview: {}",
            s.message
        ))),
        Err(e) => Err(Error::Kube("authenticating with the bootstrap token", e)),
    }
}

/// A client for the same API server and CA as the admin, authenticated only by
/// the bearer token (no client certificate).
fn token_client(admin: &Config, token: &BootstrapToken) -> kube::Result<Client> {
    let mut config = Config::new(admin.cluster_url.clone());
    config.root_cert = admin.root_cert.clone();
    config.root_cert_file = admin.root_cert_file.clone();
    config.tls_server_name = admin.tls_server_name.clone();
    config.accept_invalid_certs = admin.accept_invalid_certs;
    config.proxy_url = admin.proxy_url.clone();
    config.read_timeout = Some(Duration::from_secs(30));
    // AuthInfo keeps the token in a secrecy::SecretString; build it through serde
    // rather than depending on secrecy directly.
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": token.bearer() }))
        .map_err(kube::Error::SerdeError)?;
    Client::try_from(config)
}

/// The API server's resourceVersions are etcd revisions; anything else is not
/// compared.
fn resource_version(node: &Node) -> Option<u64> {
    node.metadata.resource_version.as_deref()?.parse().ok()
}
