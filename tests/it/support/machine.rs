// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Objects built like the `local` driver's (machine Pod, user data Secret) and
//! bootstrap tokens, for tests that play the driver's part themselves.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    ObjectFieldSelector, Pod, PodSpec, Secret, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use kube::Resource;
use kube::core::ObjectMeta;
use rand::Rng;

/// The label cluster-up puts on the kwok "host" nodes that machine Pods run on.
pub const HOST_ROLE_LABEL: &str = "node-role.kubernetes.io/host";
/// The stand-in's marker on the Nodes it registered.
pub const REGISTERED_BY_ANNOTATION: &str = "local.machine.sapcloud.io/registered-by";
/// kwok keeps Nodes with this label (value `fake`) Ready.
pub const KWOK_LABEL: &str = "kwok.x-k8s.io/node";
/// Where a machine Pod mounts its user data Secret: its key `userdata` becomes the
/// file `/etc/machine/userdata` that gardener's machine image runs.
pub const USERDATA_MOUNT_PATH: &str = "/etc/machine";

/// The Pod of machine `machine` as gardener's provider-local builds it
/// (`pkg/provider-local/machine-provider/local/create_machine.go`, gardener
/// v1.150.0), written out here independently of our driver's builder:
/// `machine-<machine>`, labelled, privileged, its user data from Secret
/// `machine-<machine>-userdata` at `/etc/machine` with mode 0777, scheduled to a
/// host node.
pub fn machine_pod(machine: &str) -> Pod {
    let name = format!("machine-{machine}");
    let labels = BTreeMap::from([
        ("app".to_owned(), "machine".to_owned()),
        ("machine-provider".to_owned(), "local".to_owned()),
        ("machine".to_owned(), machine.to_owned()),
    ]);
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let volume = |name: &str| Volume {
        name: name.into(),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "node".into(),
                image: Some("local/machine-node:test".into()),
                env: Some(vec![EnvVar {
                    name: "NODE_NAME".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                security_context: Some(SecurityContext {
                    privileged: Some(true),
                    ..Default::default()
                }),
                volume_mounts: Some(vec![
                    mount("userdata", USERDATA_MOUNT_PATH, false),
                    mount("containerd", "/var/lib/containerd", false),
                    mount("run", "/run", false),
                    mount("docker-socket", "/var/run/docker.sock", false),
                    mount("modules", "/lib/modules", true),
                ]),
                ..Default::default()
            }],
            volumes: Some(vec![
                Volume {
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(userdata_secret_name(machine)),
                        default_mode: Some(0o777),
                        ..Default::default()
                    }),
                    ..volume("userdata")
                },
                Volume {
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..volume("containerd")
                },
                Volume {
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".into()),
                        ..Default::default()
                    }),
                    ..volume("run")
                },
                Volume {
                    host_path: Some(HostPathVolumeSource {
                        path: "/var/run/docker.sock".into(),
                        type_: Some("Socket".into()),
                    }),
                    ..volume("docker-socket")
                },
                Volume {
                    host_path: Some(HostPathVolumeSource {
                        path: "/lib/modules".into(),
                        ..Default::default()
                    }),
                    ..volume("modules")
                },
            ]),
            dns_policy: Some("Default".into()),
            node_selector: Some([(HOST_ROLE_LABEL.to_owned(), String::new())].into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// `machine-<machine>-userdata`.
pub fn userdata_secret_name(machine: &str) -> String {
    format!("machine-{machine}-userdata")
}

/// The user data Secret of machine `machine` (key `userdata`), owned by its
/// created Pod `owner` (which must carry its UID).
pub fn userdata_secret(machine: &str, owner: &Pod, userdata: &str) -> Secret {
    let owner_ref = owner
        .controller_owner_ref(&())
        .expect("the owner Pod has a name and a UID");
    Secret {
        metadata: ObjectMeta {
            name: Some(userdata_secret_name(machine)),
            labels: owner.metadata.labels.clone(),
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        string_data: Some([("userdata".to_owned(), userdata.to_owned())].into()),
        ..Default::default()
    }
}

/// User data like a cloud-init script whose kubelet joins with `token`.
pub fn userdata_with_token(token: &str) -> String {
    format!(
        "#!/bin/bash\nset -euo pipefail\nhostnamectl set-hostname \"$NODE_NAME\"\n\
         kubeadm join 127.0.0.1:6443 --token {token} --discovery-token-unsafe-skip-ca-verification\n"
    )
}

/// A bootstrap token `<id>.<secret>` (random, valid form).
#[derive(Debug, Clone)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: String,
}

impl BootstrapToken {
    pub fn random() -> Self {
        let mut rng = rand::rng();
        let mut chars = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        BootstrapToken {
            id: chars(6),
            secret: chars(16),
        }
    }

    /// `<id>.<secret>`.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// `bootstrap-token-<id>` (in `kube-system`).
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// The `kube-system` Secret that makes this token valid for authentication
    /// until now + `valid_for`; a negative `valid_for` makes it expired.
    pub fn secret(&self, valid_for: jiff::SignedDuration) -> Secret {
        let expiration = jiff::Timestamp::now() + valid_for;
        let data = BTreeMap::from([
            ("token-id".to_owned(), self.id.clone()),
            ("token-secret".to_owned(), self.secret.clone()),
            ("expiration".to_owned(), expiration.to_string()),
            (
                "usage-bootstrap-authentication".to_owned(),
                "true".to_owned(),
            ),
            ("usage-bootstrap-signing".to_owned(), "true".to_owned()),
        ]);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: Some("kube-system".into()),
                ..Default::default()
            },
            type_: Some("bootstrap.kubernetes.io/token".into()),
            string_data: Some(data),
            ..Default::default()
        }
    }
}

/// One hour, a typical validity for test tokens.
pub const TOKEN_VALIDITY: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// Generous timeout for a machine Pod to run and its Node to join.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a kubelet that finally pulled the image writes (kwok's
/// `pod-image-pull-failure` stage played the failed pulls): every container
/// running and ready, the Pod Running and Ready, its IP kept. Written through
/// the status subresource, as a kubelet writes it; the kubelet stand-in then
/// joins the machine's Node, as it does for any Running machine Pod.
pub async fn image_pulled_at_last(pods: &kube::Api<Pod>, name: &str) {
    let pod = pods.get(name).await.expect("the machine Pod");
    let now = jiff::Timestamp::now().to_string();
    let containers: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            serde_json::json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": true,
                "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let condition = |type_: &str| serde_json::json!({"type": type_, "status": "True", "lastTransitionTime": now});
    // Conditions merge by type; the container statuses are replaced whole.
    let status = serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [condition("Ready"), condition("ContainersReady")],
        "containerStatuses": containers,
    }});
    pods.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(status),
    )
    .await
    .expect("patch the machine Pod's status");
}

/// Whether a bootstrap token belongs to one of `machines` of namespace `ns`:
/// ours by name, or any whose description names one of them (MCM's form).
pub fn token_of_machines(
    ns: &str,
    machines: &[String],
) -> impl Fn(&Secret) -> bool + Send + Sync + 'static {
    let ours: std::collections::BTreeSet<String> = machines
        .iter()
        .map(|m| mcm_local::payload::bootstrap::secret_name(ns, m))
        .collect();
    let machines = machines.to_vec();
    move |t: &Secret| {
        let description = t
            .data
            .as_ref()
            .and_then(|d| d.get("description"))
            .map(|d| String::from_utf8_lossy(&d.0).into_owned())
            .unwrap_or_default();
        ours.contains(t.metadata.name.as_deref().unwrap_or_default())
            || machines
                .iter()
                .any(|m| description.contains(&format!("\"{m}\"")))
    }
}
