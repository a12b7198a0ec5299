// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Pure builders for the objects that make up one local machine, field for field
//! as gardener's provider-local builds them (`create_machine.go` at gardener
//! v1.150.0), so that gardener's own machine image boots in our Pods unchanged.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HostPathVolumeSource, ObjectFieldSelector, Pod, PodSpec, Probe, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::MachineClass;
use crate::api::provider_spec::LocalProviderSpec;
use crate::contract::local::*;

/// Labels shared by the Pod, its Secret and its Service.
pub(crate) fn labels(machine: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_PROVIDER.to_string(), PROVIDER.to_string()),
        (LABEL_APP.to_string(), APP_MACHINE.to_string()),
        (LABEL_MACHINE.to_string(), machine.to_string()),
    ])
}

fn meta(name: String, namespace: &str, machine: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(machine)),
        ..Default::default()
    }
}

/// The Pod that plays the machine's VM. Its name is the node name and the
/// providerID; `control_namespace` is where its Machine lives.
pub fn pod(
    machine: &str,
    control_namespace: &str,
    namespace: &str,
    spec: &LocalProviderSpec,
) -> Pod {
    let mut metadata = meta(pod_name(machine), namespace, machine);
    let mut annotations = BTreeMap::from([(
        CONTROL_NAMESPACE_ANNOTATION.to_string(),
        control_namespace.to_string(),
    )]);
    // Calico reads the pool names as a JSON list.
    if let Some(pool) = &spec.ip_pool_name_v4 {
        annotations.insert(IPV4_POOLS_ANNOTATION.to_string(), format!("[\"{pool}\"]"));
    }
    if let Some(pool) = &spec.ip_pool_name_v6 {
        annotations.insert(IPV6_POOLS_ANNOTATION.to_string(), format!("[\"{pool}\"]"));
    }
    metadata.annotations = Some(annotations);
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let host_path = |name: &str, path: &str, kind: Option<&str>| Volume {
        name: name.to_string(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_string(),
            type_: kind.map(str::to_string),
        }),
        ..Default::default()
    };
    let empty_dir = |name: &str, medium: Option<&str>| Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    };
    Pod {
        metadata,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: CONTAINER_NAME.to_string(),
                image: Some(spec.image.clone()),
                // Never pull what the node already has: kind-loaded `:latest` images
                // exist on no registry.
                image_pull_policy: Some("IfNotPresent".to_string()),
                security_context: Some(SecurityContext {
                    privileged: Some(true),
                    ..Default::default()
                }),
                env: Some(vec![EnvVar {
                    name: "NODE_NAME".to_string(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".to_string(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                volume_mounts: Some(vec![
                    mount("userdata", USER_DATA_MOUNT, false),
                    mount("containerd", "/var/lib/containerd", false),
                    mount("run", "/run", false),
                    mount("docker-socket", "/var/run/docker.sock", false),
                    mount("modules", "/lib/modules", true),
                ]),
                readiness_probe: Some(Probe {
                    exec: Some(ExecAction {
                        command: Some(vec![
                            "sh".to_string(),
                            "-c".to_string(),
                            READINESS_COMMAND.to_string(),
                        ]),
                    }),
                    ..Default::default()
                }),
                ports: Some(vec![ContainerPort {
                    container_port: VPN_PORT,
                    name: Some(VPN_PORT_NAME.to_string()),
                    protocol: Some("TCP".to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![
                Volume {
                    name: "userdata".to_string(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(user_data_secret_name(machine)),
                        default_mode: Some(USER_DATA_MODE),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                empty_dir("containerd", None),
                empty_dir("run", Some("Memory")),
                host_path("docker-socket", "/var/run/docker.sock", Some("Socket")),
                host_path("modules", "/lib/modules", None),
            ]),
            dns_policy: Some("Default".to_string()),
            ..Default::default()
        }),
        status: None,
    }
}

/// Marks the Pod as a VM of `class` (ours, not gardener's: the instance
/// quotas count VMs by these): its class, and the zone, region, instance type
/// and capacity the class's `nodeTemplate` names, if any.
pub(crate) fn label_vm(pod: &mut Pod, class: &MachineClass) {
    let name = class.metadata.name.as_deref().unwrap_or_default();
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(LABEL_CLASS.to_string(), class_label_value(name));
    let Some(template) = &class.node_template else {
        return;
    };
    for (label, value) in [
        (LABEL_ZONE, &template.zone),
        (LABEL_REGION, &template.region),
        (LABEL_INSTANCE_TYPE, &template.instance_type),
    ] {
        if !value.is_empty() {
            labels.insert(label.to_string(), value.clone());
        }
    }
    if !template.capacity.is_empty()
        && let Ok(capacity) = serde_json::to_string(&template.capacity)
    {
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert(CAPACITY_ANNOTATION.to_string(), capacity);
    }
}

/// `class` as a label value: itself when it fits in 63 characters, otherwise
/// its first 54 and 8 hex digits of its hash (class names are DNS subdomains,
/// up to 253 characters, and use only characters a label value allows).
pub(crate) fn class_label_value(class: &str) -> String {
    if class.len() <= 63 {
        return class.to_string();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(class.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let head = class[..54].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hex}")
}

/// The Secret the Pod mounts, holding the machine's user data.
pub fn user_data_secret(
    machine: &str,
    namespace: &str,
    user_data: &[u8],
) -> k8s_openapi::api::core::v1::Secret {
    k8s_openapi::api::core::v1::Secret {
        metadata: meta(user_data_secret_name(machine), namespace, machine),
        data: Some(BTreeMap::from([(
            USER_DATA_SECRET_KEY.to_string(),
            ByteString(user_data.to_vec()),
        )])),
        ..Default::default()
    }
}

/// Headless Service that gives the machine a stable DNS name (for ssh). Its
/// addresses are published before the Pod is ready, because that happens only
/// when the Node joins (or never, with `gardenadm bootstrap`).
pub fn service(machine: &str, namespace: &str) -> Service {
    Service {
        metadata: meta(pod_name(machine), namespace, machine),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: Some("None".to_string()),
            selector: Some(labels(machine)),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("ssh".to_string()),
                port: 22,
                protocol: Some("TCP".to_string()),
                app_protocol: Some("ssh".to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Makes the Pod the controller of a Secret or Service so that the garbage
/// collector removes them with it (gardener's `SetControllerReference`).
pub(crate) fn owner_reference(pod: &ObjectMeta) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".to_string(),
        kind: "Pod".to_string(),
        name: pod.name.clone()?,
        uid: pod.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The machine a machine Pod belongs to: its `machine` label, else its name without the prefix.
pub(crate) fn machine_of_pod(pod: &ObjectMeta) -> Option<String> {
    if let Some(m) = pod.labels.as_ref().and_then(|l| l.get(LABEL_MACHINE)) {
        return Some(m.clone());
    }
    pod.name
        .as_deref()?
        .strip_prefix(NAME_PREFIX)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LocalProviderSpec {
        LocalProviderSpec {
            image: "node:1".into(),
            ip_pool_name_v4: Some("pool4".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_class_name_too_long_for_a_label_is_shortened_apart_from_its_neighbours() {
        assert_eq!(
            class_label_value("shoot--p--s-pool-z1"),
            "shoot--p--s-pool-z1"
        );
        let long = |last: &str| format!("{}{last}", "a".repeat(60));
        let (one, two) = (
            class_label_value(&long("-z1")),
            class_label_value(&long("-z2")),
        );
        assert_ne!(one, two);
        for v in [&one, &two] {
            assert_eq!(v.len(), 63, "{v}");
            assert!(v.starts_with(&"a".repeat(54)), "{v}");
        }
    }

    #[test]
    fn a_vm_carries_its_class_zone_type_and_size() {
        let mut class: MachineClass = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pool-z1"},
            "nodeTemplate": {"capacity": {"cpu": "2", "memory": "8Gi"}, "instanceType": "local-big",
                             "region": "local", "zone": "z1"},
            "provider": "local", "providerSpec": {}
        }))
        .unwrap();
        let mut vm = pod("m1", "ns", "ns", &spec());
        label_vm(&mut vm, &class);
        let labels = vm.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_CLASS], "pool-z1");
        assert_eq!(labels[LABEL_ZONE], "z1");
        assert_eq!(labels[LABEL_REGION], "local");
        assert_eq!(labels[LABEL_INSTANCE_TYPE], "local-big");
        assert_eq!(
            vm.metadata.annotations.as_ref().unwrap()[CAPACITY_ANNOTATION],
            r#"{"cpu":"2","memory":"8Gi"}"#
        );
        // Without a template: the class alone, gardener's Pod otherwise.
        class.node_template = None;
        let mut plain = pod("m1", "ns", "ns", &spec());
        label_vm(&mut plain, &class);
        let mut expected = pod("m1", "ns", "ns", &spec());
        expected
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_CLASS.into(), "pool-z1".into());
        assert_eq!(plain, expected);
    }

    #[test]
    fn pod_matches_the_contract() {
        let pod = pod("m1", "shoot--a", "ns", &spec());
        assert_eq!(pod.metadata.name.as_deref(), Some("machine-m1"));
        assert_eq!(pod.metadata.labels.as_ref().unwrap(), &labels("m1"));
        let annotations = pod.metadata.annotations.unwrap();
        assert_eq!(annotations[IPV4_POOLS_ANNOTATION], "[\"pool4\"]");
        assert_eq!(annotations[CONTROL_NAMESPACE_ANNOTATION], "shoot--a");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.dns_policy.as_deref(), Some("Default"));
        let c = &spec.containers[0];
        assert_eq!(c.name, "node");
        assert_eq!(c.image.as_deref(), Some("node:1"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.container_port, port.name.as_deref()),
            (30123, Some("vpn-shoot"))
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .exec
                .as_ref()
                .unwrap()
                .command
                .as_ref()
                .unwrap()[2],
            "/usr/bin/kubectl --kubeconfig /var/lib/kubelet/kubeconfig-real get no $NODE_NAME"
        );
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        let env = &c.env.as_ref().unwrap()[0];
        assert_eq!(env.name, "NODE_NAME");
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(
            mounts,
            [
                "/etc/machine",
                "/var/lib/containerd",
                "/run",
                "/var/run/docker.sock",
                "/lib/modules"
            ]
        );
        let volumes = spec.volumes.unwrap();
        let user_data = volumes[0].secret.as_ref().unwrap();
        assert_eq!(
            user_data.secret_name.as_deref(),
            Some("machine-m1-userdata")
        );
        assert_eq!(user_data.default_mode, Some(0o777));
        assert_eq!(
            volumes[2].empty_dir.as_ref().unwrap().medium.as_deref(),
            Some("Memory")
        );
        let socket = volumes[3].host_path.as_ref().unwrap();
        assert_eq!(
            (socket.path.as_str(), socket.type_.as_deref()),
            ("/var/run/docker.sock", Some("Socket"))
        );
        assert_eq!(volumes[4].host_path.as_ref().unwrap().path, "/lib/modules");
    }

    #[test]
    fn secret_and_service() {
        let s = user_data_secret("m1", "ns", b"#!/bin/sh");
        assert_eq!(s.metadata.name.as_deref(), Some("machine-m1-userdata"));
        assert_eq!(s.data.unwrap()["userdata"].0, b"#!/bin/sh");
        let svc = service("m1", "ns");
        let spec = svc.spec.unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("machine-m1"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.name.as_deref(), Some("ssh"));
        assert_eq!(port.app_protocol.as_deref(), Some("ssh"));
        assert_eq!(spec.selector.unwrap(), labels("m1"));
    }

    #[test]
    fn finds_the_machine_of_a_pod() {
        let mut p = pod("m1", "ns", "ns", &spec());
        assert_eq!(machine_of_pod(&p.metadata).as_deref(), Some("m1"));
        p.metadata.labels = None;
        assert_eq!(machine_of_pod(&p.metadata).as_deref(), Some("m1"));
        p.metadata.name = Some("other".into());
        assert_eq!(machine_of_pod(&p.metadata), None);
    }
}
