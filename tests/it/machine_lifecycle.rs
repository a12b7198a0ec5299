// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Issue "Machine controller with the local driver": create, join and delete,
//! against the local cluster (control and target may be two clusters).

use crate::support;

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::{OpState, OpType, Phase};
use mcm_local::payload::bootstrap;
use support::controller::{delete_all_machines, kubectl_apply, sample, settings, start};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted, wait_for_list};

/// Every (phase, description) a machine shows, in order, from a watch of its own.
type History = tokio::sync::watch::Receiver<Vec<(Option<Phase>, String)>>;

/// Records the machine's history; [`seen_in`] waits for an entry.
fn record_history(api: Api<Machine>, name: &str) -> History {
    let (tx, rx) = tokio::sync::watch::channel(Vec::new());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut stream = watcher(api, cfg).applied_objects().boxed();
        while let Some(Ok(m)) = stream.next().await {
            let entry = (
                m.phase().cloned(),
                m.status.last_operation.description.clone(),
            );
            tx.send_if_modified(|seen| {
                let new = seen.last() != Some(&entry);
                if new {
                    seen.push(entry);
                }
                new
            });
        }
    });
    rx
}

/// The history once it holds an entry that `wanted` picks: the history's watch
/// is its own and may lag behind the one that saw the state first.
async fn seen_in(
    history: &History,
    wanted: impl Fn(&(Option<Phase>, String)) -> bool,
) -> Vec<(Option<Phase>, String)> {
    let mut rx = history.clone();
    match tokio::time::timeout(TIMEOUT, rx.wait_for(|h| h.iter().any(&wanted))).await {
        Ok(Ok(seen)) => seen.clone(),
        _ => panic!(
            "history never showed the entry; seen: {:#?}",
            *history.borrow()
        ),
    }
}

#[tokio::test]
async fn sample_machine_joins_and_is_deleted_without_leftovers() {
    let ns = TestNamespace::in_both("lifecycle").await;
    let (control, target) = (support::control().await, support::target().await);
    let machines: Api<Machine> = ns.api(&control);
    ns.delete_on_drop::<Node>(Cluster::Target, None, "machine-test-machine");

    // The samples, as a user applies them.
    for file in ["secret.yaml", "machine-class.yaml", "machine.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let history = record_history(machines.clone(), "test-machine");
    let controller = start(settings(&ns)).await;

    let pods: Api<Pod> = ns.api(&target);
    let pod = wait_for(
        &pods,
        "machine-test-machine",
        TIMEOUT,
        "the machine Pod exists",
        |_| true,
    )
    .await;
    assert_eq!(
        pod.labels().get("machine-provider").map(String::as_str),
        Some("local")
    );
    assert_eq!(
        pod.labels().get("machine").map(String::as_str),
        Some("test-machine")
    );
    // Gardener's machine image runs the file /etc/machine/userdata: the Secret is
    // mounted at /etc/machine, executable; the stand-in joins only through it.
    let spec = pod.spec.as_ref().expect("a Pod spec");
    let node = &spec.containers[0];
    let mount = node
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/etc/machine")
        .expect("a mount at /etc/machine");
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.secret.as_ref())
        .expect("a Secret volume at /etc/machine");
    assert_eq!(
        (volume.secret_name.as_deref(), volume.default_mode),
        (Some("machine-test-machine-userdata"), Some(0o777))
    );
    assert_eq!(node.image_pull_policy.as_deref(), Some("IfNotPresent"));

    let running = wait_for(
        &machines,
        "test-machine",
        TIMEOUT,
        "the machine is Running",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    let seen = seen_in(&history, |(p, _)| *p == Some(Phase::Running)).await;
    let pending_at = seen
        .iter()
        .position(|(p, d)| *p == Some(Phase::Pending) && d == "Creating machine on cloud provider");
    let running_at = seen.iter().position(|(p, d)| {
        *p == Some(Phase::Running)
            && d.starts_with("Machine test-machine successfully joined the cluster in ")
    });
    assert!(
        matches!((pending_at, running_at), (Some(p), Some(r)) if p < r),
        "phases seen: {seen:#?}"
    );
    assert_eq!(
        running.status.last_operation.state,
        Some(OpState::Successful)
    );
    assert_eq!(running.status.last_operation.type_, Some(OpType::Create));

    // providerID = node label = Node name, and the Node knows its machine.
    assert_eq!(running.spec.provider_id, "machine-test-machine");
    assert_eq!(
        running.labels().get("node").map(String::as_str),
        Some("machine-test-machine")
    );
    assert!(
        running
            .annotations()
            .contains_key("node.machine.sapcloud.io/machine-join-duration")
    );
    assert_eq!(
        running
            .annotations()
            .get("machinepriority.machine.sapcloud.io")
            .map(String::as_str),
        Some("3")
    );
    assert!(
        running
            .finalizers()
            .iter()
            .any(|f| f == "machine.sapcloud.io/machine-controller-manager")
    );
    let nodes: Api<Node> = Api::all(target.clone());
    let node = wait_for(
        &nodes,
        "machine-test-machine",
        TIMEOUT,
        "the Node is labelled with its machine",
        |n| {
            n.labels()
                .get("node.gardener.cloud/machine-name")
                .map(String::as_str)
                == Some("test-machine")
        },
    )
    .await;
    assert_eq!(
        node.spec.as_ref().and_then(|s| s.provider_id.as_deref()),
        Some("machine-test-machine")
    );

    // The user data carries this machine's token, and the token is gone after the join.
    let secrets: Api<Secret> = ns.api(&target);
    let user_data = secrets
        .get("machine-test-machine-userdata")
        .await
        .expect("user data Secret");
    let text = String::from_utf8(user_data.data.unwrap()["userdata"].0.clone()).unwrap();
    let id = bootstrap::token_id(ns.name(), "test-machine");
    assert!(
        !text.contains("<<BOOTSTRAP_TOKEN>>"),
        "placeholder left in user data"
    );
    assert!(
        text.contains(&format!("token: {id}.")),
        "no token {id}.<secret> in the user data"
    );
    let tokens: Api<Secret> = Api::namespaced(target.clone(), "kube-system");
    wait_for_deleted(
        &tokens,
        &bootstrap::secret_name(ns.name(), "test-machine"),
        TIMEOUT,
        "the bootstrap token is deleted after the join",
    )
    .await;
    let services: Api<Service> = ns.api(&target);
    services
        .get("machine-test-machine")
        .await
        .expect("the machine's Service");

    // Deletion removes everything. The Secret and Service go just before the
    // Pod, not only once the Pod is gone (when the garbage collector would take
    // them): a finalizer holds the Pod meanwhile.
    const HOLD: &str = "test.mcm-local/hold";
    let hold = |finalizers: Vec<&str>| {
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        let pods = pods.clone();
        async move {
            pods.patch(
                "machine-test-machine",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap();
        }
    };
    hold(vec![HOLD]).await;
    machines
        .delete("test-machine", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &pods,
        "machine-test-machine",
        TIMEOUT,
        "the Pod is being deleted",
        |p| p.metadata.deletion_timestamp.is_some(),
    )
    .await;
    wait_for_deleted(
        &secrets,
        "machine-test-machine-userdata",
        TIMEOUT,
        "the user data Secret is gone while the Pod terminates",
    )
    .await;
    wait_for_deleted(
        &services,
        "machine-test-machine",
        TIMEOUT,
        "the Service is gone while the Pod terminates",
    )
    .await;
    assert!(
        pods.get_opt("machine-test-machine")
            .await
            .unwrap()
            .is_some(),
        "the Pod is still held by the test's finalizer"
    );
    hold(vec![]).await;
    wait_for_deleted(&machines, "test-machine", TIMEOUT, "the machine is deleted").await;
    wait_for_deleted(&pods, "machine-test-machine", TIMEOUT, "the Pod is gone").await;
    wait_for_deleted(&nodes, "machine-test-machine", TIMEOUT, "the Node is gone").await;
    // The deletion writes where it waits (here: for the VM to go).
    let terminating = |(p, d): &(Option<Phase>, String)| {
        *p == Some(Phase::Terminating) && d.contains("Initiate VM deletion")
    };
    let seen = seen_in(&history, terminating).await;
    assert!(
        seen.iter().any(terminating),
        "deletion steps seen: {seen:#?}"
    );

    // The class and its secret were protected while in use, and are released once not.
    let classes: Api<MachineClass> = ns.api(&control);
    let class_secrets: Api<Secret> = ns.api(&control);
    let class = classes.get("test-class").await.unwrap();
    assert!(
        class
            .finalizers()
            .iter()
            .any(|f| f == "machine.sapcloud.io/machine-controller-manager")
    );
    wait_for(
        &class_secrets,
        "test-secret",
        TIMEOUT,
        "the class secret carries the secret finalizer",
        |s| {
            s.finalizers()
                .iter()
                .any(|f| f == "machine.sapcloud.io/machine-controller")
        },
    )
    .await;
    classes
        .delete("test-class", &DeleteParams::default())
        .await
        .unwrap();
    wait_for_deleted(
        &classes,
        "test-class",
        TIMEOUT,
        "the unused class is deleted",
    )
    .await;
    wait_for(
        &class_secrets,
        "test-secret",
        TIMEOUT,
        "the secret finalizer is removed with the class",
        |s| s.finalizers().is_empty(),
    )
    .await;
    controller.stop().await;
}

/// Machine `name` of class `class` in `ns`.
/// A fresh namespace with the sample secret and class, and the name of a
/// machine to make there and of its Node (removed when the test ends).
struct Sampled {
    ns: TestNamespace,
    target: kube::Client,
    machines: Api<Machine>,
    name: String,
    node_name: String,
}

async fn sampled(prefix: &str, machine_prefix: &str) -> Sampled {
    let ns = TestNamespace::in_both(prefix).await;
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machines: Api<Machine> = ns.api(&support::control().await);
    let name = support::unique_name(machine_prefix);
    let node_name = format!("machine-{name}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
    Sampled {
        ns,
        target: support::target().await,
        machines,
        name,
        node_name,
    }
}

/// Starts a controller with the default settings and waits until `m` (of
/// `sampled`'s name) runs.
async fn start_running(sampled: &Sampled, m: Machine) -> support::controller::ControllerGuard {
    let controller = start(settings(&sampled.ns)).await;
    sampled
        .machines
        .create(&PostParams::default(), &m)
        .await
        .unwrap();
    wait_for(
        &sampled.machines,
        &sampled.name,
        TIMEOUT,
        "the machine is Running",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    controller
}

fn machine(name: &str, class: &str) -> Machine {
    let mut m = Machine::named(name);
    m.spec.class.kind = "MachineClass".into();
    m.spec.class.name = class.into();
    m
}

fn class(
    name: &str,
    provider: &str,
    spec: serde_json::Value,
    secret: &str,
    ns: &str,
) -> MachineClass {
    let mut c = MachineClass {
        api_version: MachineClass::named(name).api_version,
        kind: MachineClass::named(name).kind,
        provider: provider.into(),
        provider_spec: spec,
        secret_ref: Some(k8s_openapi::api::core::v1::SecretReference {
            name: Some(secret.into()),
            namespace: Some(ns.into()),
        }),
        ..Default::default()
    };
    c.metadata.name = Some(name.into());
    c
}

fn user_data_secret(name: &str, key: &str) -> Secret {
    let mut s = Secret {
        string_data: Some(BTreeMap::from([(
            key.to_string(),
            "#!/bin/sh\ntoken=<<BOOTSTRAP_TOKEN>>\n".to_string(),
        )])),
        ..Default::default()
    };
    s.metadata.name = Some(name.into());
    s
}

#[tokio::test]
async fn bad_input_is_reported_on_the_machine_and_harms_no_other() {
    let ns = TestNamespace::in_both("bad-input").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    let machines: Api<Machine> = ns.api(&control);
    let classes: Api<MachineClass> = ns.api(&control);
    let secrets: Api<Secret> = ns.api(&control);
    let pp = PostParams::default();

    secrets
        .create(&pp, &user_data_secret("good", "userData"))
        .await
        .unwrap();
    secrets
        .create(&pp, &user_data_secret("no-userdata", "somethingElse"))
        .await
        .unwrap();
    let image = serde_json::json!({"image": "localhost/machine-image:1"});
    for c in [
        class("good", "local", image.clone(), "good", n),
        class(
            "no-image",
            "local",
            serde_json::json!({"namespace": n}),
            "good",
            n,
        ),
        class("aws", "aws", image.clone(), "good", n),
        class("no-userdata", "local", image.clone(), "no-userdata", n),
    ] {
        classes.create(&pp, &c).await.unwrap();
    }
    let suffix = &ns.name()[ns.name().len() - 6..];
    let good = format!("good-{suffix}");
    let cases = [
        (
            format!("noimage-{suffix}"),
            "no-image",
            "providerSpec.image: Required value",
        ),
        (
            format!("noclass-{suffix}"),
            "missing",
            "MachineClass \"missing\" not found",
        ),
        (
            format!("nouserdata-{suffix}"),
            "no-userdata",
            "has no \"userData\" key",
        ),
        (
            format!("aws-{suffix}"),
            "aws",
            "requested for provider \"aws\"",
        ),
    ];
    for (name, class, _) in &cases {
        machines.create(&pp, &machine(name, class)).await.unwrap();
    }
    machines.create(&pp, &machine(&good, "good")).await.unwrap();
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{good}"));
    let controller = start(settings(&ns)).await;

    wait_for(
        &machines,
        &good,
        TIMEOUT,
        "the good machine runs beside the bad ones",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    let events: Api<Event> = ns.api(&control);
    for (name, _, message) in &cases {
        let m = wait_for(
            &machines,
            name,
            TIMEOUT,
            &format!("{name} reports {message:?}"),
            |m| m.status.last_operation.description.contains(message),
        )
        .await;
        assert_eq!(
            m.status.last_operation.state,
            Some(OpState::Failed),
            "{name}"
        );
        assert_eq!(m.phase(), Some(&Phase::CrashLoopBackOff), "{name}");
        wait_for_list(
            &events,
            watcher::Config::default().fields(&format!("involvedObject.name={name}")),
            TIMEOUT,
            &format!("a Warning event with {message:?} for {name}"),
            |listed| {
                listed.iter().any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.message.as_deref().unwrap_or_default().contains(message)
                })
            },
        )
        .await;
    }
    let pods: Api<Pod> = ns.api(&target);
    let names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(
        names,
        [format!("machine-{good}")],
        "only the good machine has a Pod"
    );

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// A Pod that cannot start and does not recover says why on its Machine once
/// `--machine-vm-trouble-grace` has passed (well before the creation timeout),
/// in the kubelet's words; within the grace only a Warning Event says so and
/// the machine's status stays. The machine is still deleted cleanly.
#[tokio::test]
async fn a_pod_whose_image_cannot_be_pulled_shows_why_on_the_machine() {
    let ns = TestNamespace::in_both("pull-fails").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    let machines: Api<Machine> = ns.api(&control);
    let pp = PostParams::default();
    ns.api::<Secret>(&control)
        .create(&pp, &user_data_secret("user-data", "userData"))
        .await
        .unwrap();
    // hack/kwok/pod-image-pull-failure.yaml plays a kubelet that cannot pull it.
    let image = serde_json::json!({"image": "registry.invalid/unpullable:1"});
    ns.api::<MachineClass>(&control)
        .create(&pp, &class("unpullable", "local", image, "user-data", n))
        .await
        .unwrap();
    let name = format!("pull-{}", &n[n.len() - 6..]);
    machines
        .create(&pp, &machine(&name, "unpullable"))
        .await
        .unwrap();
    let history = record_history(machines.clone(), &name);
    let grace = std::time::Duration::from_secs(15);
    let controller = start(mcm_local::embed::Settings {
        vm_trouble_grace: grace,
        ..settings(&ns)
    })
    .await;

    let why = "ImagePullBackOff: Back-off pulling image \"registry.invalid/unpullable:1\"";
    let events: Api<Event> = ns.api(&control);
    let warned = |reason: &'static str| {
        move |l: &[Event]| {
            l.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().unwrap_or_default().contains(why)
            })
        }
    };
    let on_machine = || watcher::Config::default().fields(&format!("involvedObject.name={name}"));
    wait_for_list(
        &events,
        on_machine(),
        TIMEOUT,
        "a Warning Event names the pull failure within the grace",
        warned("VMTrouble"),
    )
    .await;
    let m = wait_for(
        &machines,
        &name,
        TIMEOUT,
        "the machine names the image pull failure",
        |m| {
            m.phase() == Some(&Phase::CrashLoopBackOff)
                && m.status.last_operation.description.contains(why)
        },
    )
    .await;
    assert_eq!(m.status.last_operation.state, Some(OpState::Failed));
    assert_eq!(m.status.last_operation.type_, Some(OpType::Create));
    // Reported no earlier than the grace after the Pod stopped being ready.
    let pod = ns
        .api::<Pod>(&target)
        .get(&format!("machine-{name}"))
        .await
        .unwrap();
    let not_ready_since = pod
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "False")
        .and_then(|c| c.last_transition_time)
        .expect("the Pod's Ready condition")
        .0;
    let reported = m
        .status
        .last_operation
        .last_update_time
        .expect("reported at")
        .0;
    let lasted = reported.duration_since(not_ready_since);
    assert!(
        lasted >= jiff::SignedDuration::try_from(grace).unwrap(),
        "reported {lasted} after the Pod stopped being ready, within the grace of {grace:?}"
    );
    // Before the report the machine never showed the failure.
    let seen = history.borrow().clone();
    let first_failure = seen.iter().position(|(_, d)| d.contains(why)).unwrap();
    assert!(
        seen[..first_failure]
            .iter()
            .all(|(phase, _)| phase != &Some(Phase::CrashLoopBackOff)),
        "{seen:#?}"
    );
    wait_for_list(
        &events,
        on_machine(),
        TIMEOUT,
        "a Warning Event names the image pull failure as a creation failure",
        warned("CreateFailed"),
    )
    .await;

    delete_all_machines(&machines).await;
    let pods: Api<Pod> = ns.api(&target);
    wait_for_deleted(
        &pods,
        &format!("machine-{name}"),
        TIMEOUT,
        "the Pod is deleted",
    )
    .await;
    controller.stop().await;
}

/// Without a target cluster (`gardenadm bootstrap`), no Node joins: the machine is
/// Available once its VM runs, and its addresses say how to reach it.
#[tokio::test]
async fn without_a_target_the_machine_is_available_with_its_addresses() {
    let ns = TestNamespace::in_both("no-target").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    let pp = PostParams::default();
    let secrets: Api<Secret> = ns.api(&control);
    secrets
        .create(&pp, &user_data_secret("user-data", "userData"))
        .await
        .unwrap();
    // The Pods' cluster comes from the class credentials, as in gardener's setup.
    let mut credentials = Secret {
        string_data: Some(BTreeMap::from([(
            "kubeconfig".to_string(),
            std::fs::read_to_string(Cluster::Target.kubeconfig()).unwrap(),
        )])),
        ..Default::default()
    };
    credentials.metadata.name = Some("cloudprovider".into());
    secrets.create(&pp, &credentials).await.unwrap();
    let mut c = class(
        "pool",
        "local",
        serde_json::json!({"image": "localhost/machine-image:1"}),
        "user-data",
        n,
    );
    c.credentials_secret_ref = Some(k8s_openapi::api::core::v1::SecretReference {
        name: Some("cloudprovider".into()),
        namespace: Some(n.into()),
    });
    ns.api::<MachineClass>(&control)
        .create(&pp, &c)
        .await
        .unwrap();
    let name = format!("bare-{}", &n[n.len() - 6..]);
    let machines: Api<Machine> = ns.api(&control);
    machines.create(&pp, &machine(&name, "pool")).await.unwrap();
    let controller = support::admin::Binary::spawn(
        n,
        &format!("{n}-controller.log"),
        &[
            "--target-kubeconfig=none".into(),
            "--leader-elect=false".into(),
        ],
        &[],
    );

    let available = wait_for(&machines, &name, TIMEOUT, "the machine is Available", |m| {
        m.phase() == Some(&Phase::Available)
    })
    .await;
    assert_eq!(
        available.status.last_operation.description,
        "Created machine on cloud provider"
    );
    let pods: Api<Pod> = ns.api(&target);
    let pod = pods.get(&format!("machine-{name}")).await.unwrap();
    let ip = pod
        .status
        .and_then(|s| s.pod_ip)
        .expect("the Pod has an IP");
    let addresses: Vec<(String, String)> = available
        .status
        .addresses
        .iter()
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    assert_eq!(
        addresses,
        [
            ("Hostname".to_string(), format!("machine-{name}")),
            ("InternalIP".to_string(), ip),
        ]
    );

    delete_all_machines(&machines).await;
    wait_for_deleted(
        &pods,
        &format!("machine-{name}"),
        TIMEOUT,
        "the Pod is deleted",
    )
    .await;
    drop(controller);
}

/// The class's `nodeTemplate.virtualCapacity` reaches the Node's capacity and
/// leaves it when the class drops it, as MCM's SyncVirtualCapacity does.
#[tokio::test]
async fn the_class_virtual_capacity_reaches_the_node_and_leaves_it() {
    let ns = TestNamespace::in_both("virtual-cap").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    kubectl_apply(Cluster::Control, &sample("secret.yaml", n, &[])).await;
    let class = |virtual_capacity: &str| {
        format!(
            r#"apiVersion: machine.sapcloud.io/v1alpha1
kind: MachineClass
metadata:
  name: test-class
  namespace: {n}
provider: local
providerSpec:
  image: localhost/machine-image:latest
secretRef:
  name: test-secret
  namespace: {n}
nodeTemplate:
  capacity: {{cpu: "2", memory: 4Gi}}
  instanceType: local
  region: local
  zone: local{virtual_capacity}
"#
        )
    };
    kubectl_apply(
        Cluster::Control,
        &class("\n  virtualCapacity: {example.com/virtual: \"3\"}"),
    )
    .await;
    let name = format!("cap-{}", &n[n.len() - 6..]);
    let node_name = format!("machine-{name}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
    let machines: Api<Machine> = ns.api(&control);
    machines
        .create(&PostParams::default(), &machine(&name, "test-class"))
        .await
        .unwrap();
    let controller = start(settings(&ns)).await;

    let nodes: Api<Node> = Api::all(target);
    let has = |node: &Node| {
        node.status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("example.com/virtual"))
            .map(|q| q.0.clone())
    };
    wait_for(
        &nodes,
        &node_name,
        TIMEOUT,
        "the Node has the virtual capacity",
        |node| has(node).as_deref() == Some("3"),
    )
    .await;
    kubectl_apply(Cluster::Control, &class("")).await;
    wait_for(
        &nodes,
        &node_name,
        TIMEOUT,
        "the Node lost the virtual capacity",
        |node| has(node).is_none(),
    )
    .await;

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// Twenty machines of a new class at once: all run, and the class gets our
/// finalizer by one write, not one per machine that saw it without (each after
/// the first met a conflict and failed its machine's reconcile).
#[tokio::test]
async fn twenty_machines_created_at_once_all_run() {
    let ns = TestNamespace::in_both("twenty").await;
    let control = support::control().await;
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machines: Api<Machine> = ns.api(&control);
    // MCM derives a machine's bootstrap token id from the end of its name, so the
    // names end in random characters, as MachineSet-made names do.
    let names: Vec<String> = (0..20).map(|_| support::unique_name("m")).collect();
    for name in &names {
        ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    }
    let (controller, sent) = support::controller::start_recorded(settings(&ns)).await;
    let creates = names.iter().map(|name| {
        let machines = machines.clone();
        let m = machine(name, "test-class");
        async move { machines.create(&PostParams::default(), &m).await.unwrap() }
    });
    futures::future::join_all(creates).await;
    wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "all 20 machines run",
        |l: &[Machine]| l.len() == 20 && l.iter().all(|m| m.phase() == Some(&Phase::Running)),
    )
    .await;
    let class_path = format!(
        "/apis/machine.sapcloud.io/v1alpha1/namespaces/{}/machineclasses/test-class",
        ns.name()
    );
    // One write, by a machine or the class upkeep (they share one record of
    // it), and no conflict (which would fail a reconcile).
    let patch = format!("PATCH {class_path}");
    let writes = sent.count(&patch);
    assert_eq!(writes, 1, "the class was patched {writes} times");
    let answers = sent.answers(&patch);
    assert!(
        answers.iter().all(|code| *code == 200),
        "the class patches were answered {answers:?}"
    );
    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// A VM that dies turns its Running machine Unknown (its Node goes NotReady),
/// and Failed once the health timeout has passed — for MCM to replace.
#[tokio::test]
async fn a_machine_whose_vm_dies_turns_unknown_then_failed() {
    let ns = TestNamespace::in_both("vm-dies").await;
    let (control, target) = (support::control().await, support::target().await);
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machines: Api<Machine> = ns.api(&control);
    let name = support::unique_name("dies");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    let mut s = settings(&ns);
    s.health_timeout = std::time::Duration::from_secs(5);
    let controller = start(s).await;
    machines
        .create(&PostParams::default(), &machine(&name, "test-class"))
        .await
        .unwrap();
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;

    // The VM dies: nobody deletes the Machine, its Pod is simply gone.
    let pods: Api<Pod> = ns.api(&target);
    pods.delete(&format!("machine-{name}"), &DeleteParams::default())
        .await
        .unwrap();
    let unknown = wait_for(
        &machines,
        &name,
        TIMEOUT,
        "the machine turns Unknown",
        |m| m.phase() == Some(&Phase::Unknown),
    )
    .await;
    assert!(
        unknown
            .status
            .last_operation
            .description
            .starts_with(&format!(
                "Machine {name} is unhealthy - changing MachinePhase to Unknown"
            )),
        "{:?}",
        unknown.status.last_operation
    );
    let failed = wait_for(
        &machines,
        &name,
        TIMEOUT,
        "the machine turns Failed after the health timeout",
        |m| m.phase() == Some(&Phase::Failed),
    )
    .await;
    assert!(
        failed
            .status
            .last_operation
            .description
            .contains("health checks failing since last 5s minutes"),
        "{:?}",
        failed.status.last_operation
    );

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// MCM's critical-components gate: a Node registered with
/// `node.gardener.cloud/critical-components-not-ready` keeps its machine Pending,
/// though Ready, until the taint goes (gardener-resource-manager removes it once
/// CNI and CSI run; the test does here).
#[tokio::test]
async fn a_node_waiting_for_critical_components_keeps_its_machine_pending() {
    let ns = TestNamespace::in_both("critical").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    let pp = PostParams::default();
    let taint = "node.gardener.cloud/critical-components-not-ready";
    let mut user_data = Secret {
        string_data: Some(BTreeMap::from([(
            "userData".to_string(),
            format!(
                "#!/bin/sh\ntoken=<<BOOTSTRAP_TOKEN>>\nexec kubelet --register-with-taints={taint}:NoSchedule\n"
            ),
        )])),
        ..Default::default()
    };
    user_data.metadata.name = Some("user-data".into());
    ns.api::<Secret>(&control)
        .create(&pp, &user_data)
        .await
        .unwrap();
    let image = serde_json::json!({"image": "localhost/machine-image:1"});
    ns.api::<MachineClass>(&control)
        .create(&pp, &class("pool", "local", image, "user-data", n))
        .await
        .unwrap();
    let name = format!("crit-{}", &n[n.len() - 6..]);
    let node_name = format!("machine-{name}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
    let machines: Api<Machine> = ns.api(&control);
    machines.create(&pp, &machine(&name, "pool")).await.unwrap();
    let controller = start(settings(&ns)).await;

    let ready = |m: &Machine| {
        m.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    let gated = wait_for(
        &machines,
        &name,
        TIMEOUT,
        "the machine records its Ready Node and stays Pending",
        |m| ready(m),
    )
    .await;
    assert_eq!(gated.phase(), Some(&Phase::Pending), "{:?}", gated.status);

    let nodes: Api<Node> = Api::all(target);
    let node = nodes.get(&node_name).await.unwrap();
    let rest: Vec<_> = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key != taint)
        .collect();
    // A merge patch of the list, not a replace: the Node's heartbeats change
    // its resourceVersion all the time (a replace met a conflict).
    let patch = serde_json::json!({"spec": {"taints": rest}});
    nodes
        .patch(&node_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(
        &machines,
        &name,
        TIMEOUT,
        "the machine runs once the taint is gone",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// Meltdown protection, serialised: six machines of one MachineDeployment lose
/// their VMs at once and time out together, yet only one at a time is marked
/// Failed; each next one only after the Failed one was replaced (deleted here,
/// as MCM's MachineSet would).
#[tokio::test]
async fn machines_of_one_deployment_that_time_out_together_fail_one_at_a_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let ns = TestNamespace::in_both("meltdown").await;
    let (control, target) = (support::control().await, support::target().await);
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machines: Api<Machine> = ns.api(&control);
    let deployment = format!("md-{}", &ns.name()[ns.name().len() - 6..]);
    let names: Vec<String> = (0..6).map(|_| support::unique_name("melt")).collect();
    for name in &names {
        ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
        let mut m = machine(name, "test-class");
        m.metadata.labels = Some(BTreeMap::from([("name".to_string(), deployment.clone())]));
        machines.create(&PostParams::default(), &m).await.unwrap();
    }
    let mut s = settings(&ns);
    s.health_timeout = std::time::Duration::from_secs(2);
    let controller = start(s).await;
    wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT,
        "all six machines run",
        |l: &[Machine]| l.len() == 6 && l.iter().all(|m| m.phase() == Some(&Phase::Running)),
    )
    .await;

    // Every phase change is seen; the most machines Failed at one moment is kept.
    let most_failed = Arc::new(AtomicUsize::new(0));
    let watching = {
        let (api, most) = (machines.clone(), most_failed.clone());
        tokio::spawn(async move {
            let mut phases = BTreeMap::<String, Option<Phase>>::new();
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(Ok(event)) = events.next().await {
                match event {
                    watcher::Event::Apply(m) | watcher::Event::InitApply(m) => {
                        phases.insert(m.name_any(), m.phase().cloned());
                    }
                    // A deleted machine is no longer Failed (a deletion may
                    // finish without ever writing Terminating).
                    watcher::Event::Delete(m) => {
                        phases.remove(&m.name_any());
                    }
                    _ => {}
                }
                let failed = phases
                    .values()
                    .filter(|p| **p == Some(Phase::Failed))
                    .count();
                most.fetch_max(failed, Ordering::SeqCst);
            }
        })
    };

    let pods: Api<Pod> = ns.api(&target);
    for name in &names {
        pods.delete(&format!("machine-{name}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for round in 0..names.len() {
        let listed = wait_for_list(
            &machines,
            Default::default(),
            TIMEOUT,
            &format!("a machine is Failed (round {round})"),
            |l: &[Machine]| l.iter().any(|m| m.phase() == Some(&Phase::Failed)),
        )
        .await;
        let failed: Vec<&Machine> = listed
            .iter()
            .filter(|m| m.phase() == Some(&Phase::Failed))
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "one at a time: {:?}",
            failed.iter().map(|m| m.name_any()).collect::<Vec<_>>()
        );
        let gone = failed[0].name_any();
        machines
            .delete(&gone, &DeleteParams::default())
            .await
            .unwrap();
        wait_for_deleted(&machines, &gone, TIMEOUT, "the Failed machine is replaced").await;
    }
    watching.abort();
    assert_eq!(
        most_failed.load(Ordering::SeqCst),
        1,
        "never two machines of the deployment Failed at once"
    );
    controller.stop().await;
}

/// A node template the API server refuses for the Node (an invalid taint effect)
/// never keeps the machine from Running; as in MCM it is a log line and a
/// Warning Event with the server's message naming the field, never a status:
/// the machine's lastOperation is never `Failed` (MCM would list it in
/// `failedMachines`).
#[tokio::test]
async fn a_refused_node_template_is_reported_and_the_machine_still_runs() {
    let ns = TestNamespace::in_both("bad-template").await;
    let control = support::control().await;
    let machines: Api<Machine> = ns.api(&control);
    let name = format!("tmpl-{}", &ns.name()[ns.name().len() - 6..]);
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machine = format!(
        r#"apiVersion: machine.sapcloud.io/v1alpha1
kind: Machine
metadata:
  name: {name}
  namespace: {ns}
spec:
  class:
    kind: MachineClass
    name: test-class
  nodeTemplate:
    metadata:
      labels:
        team: blue
    spec:
      taints:
      - key: dedicated
        value: blue
        effect: Sometimes
"#,
        ns = ns.name()
    );
    kubectl_apply(Cluster::Control, &machine).await;
    let failed = support::wait::never(
        &machines,
        Default::default(),
        "the machine with lastOperation.state Failed",
        |m: &Machine| m.status.last_operation.state == Some(OpState::Failed),
    )
    .await;
    let controller = start(settings(&ns)).await;

    // The Node's validation names the taint by its index among the Node's taints.
    let field = "].effect: Unsupported value: \"Sometimes\"";
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let events: Api<Event> = ns.api(&control);
    wait_for_list(
        &events,
        Default::default(),
        TIMEOUT,
        "a Warning Event names the refused field, counted on each retry (every 5 s)",
        |l: &[Event]| {
            l.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.count.unwrap_or(1) >= 3
                    && e.reason.as_deref() == Some("NodeTemplateRefused")
                    && e.message.as_deref().unwrap_or_default().contains(&format!(
                        "Node template could not be applied to node machine-{name}: "
                    ))
                    && e.message.as_deref().unwrap_or_default().contains(field)
            })
        },
    )
    .await;
    let running = machines.get(&name).await.unwrap();
    assert_eq!(running.phase(), Some(&Phase::Running));
    failed.check();

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// MCM's stale-node check: a Node left behind by an earlier machine of the same
/// name is never taken for the new VM's. The new VM is deleted and the machine
/// marked Failed ("VM using old node obj"), for its MachineSet to replace.
#[tokio::test]
async fn a_leftover_node_of_the_same_name_fails_the_new_machine() {
    let ns = TestNamespace::in_both("stale-node").await;
    let (control, target) = (support::control().await, support::target().await);
    let machines: Api<Machine> = ns.api(&control);
    let name = format!("stale-{}", &ns.name()[ns.name().len() - 6..]);
    let node_name = format!("machine-{name}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
    let nodes: Api<Node> = Api::all(target.clone());
    let mut leftover = Node::default();
    leftover.metadata.name = Some(node_name.clone());
    let leftover = nodes
        .create(&PostParams::default(), &leftover)
        .await
        .expect("a leftover Node");
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let controller = start(settings(&ns)).await;
    // The API server's timestamps are whole seconds: the VM must come a second
    // later to be told from a Node it registered itself.
    let created = leftover
        .metadata
        .creation_timestamp
        .map(|t| t.0.as_second())
        .unwrap_or_default();
    support::wait::until(TIMEOUT, "the next second", || {
        jiff::Timestamp::now().as_second() > created
    })
    .await;
    let mut m = Machine::named(&name);
    m.spec.class.kind = "MachineClass".into();
    m.spec.class.name = "test-class".into();
    machines.create(&PostParams::default(), &m).await.unwrap();

    wait_for(
        &machines,
        &name,
        TIMEOUT,
        "Failed for the stale Node",
        |m| {
            m.phase() == Some(&Phase::Failed)
                && m.status.last_operation.description == "VM using old node obj"
        },
    )
    .await;
    let pods: Api<Pod> = ns.api(&target);
    wait_for_deleted(&pods, &node_name, TIMEOUT, "the new VM is deleted").await;
    let still = nodes
        .get(&node_name)
        .await
        .expect("the leftover Node stays");
    assert_eq!(still.uid(), leftover.metadata.uid);

    machines
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_for_deleted(&machines, &name, TIMEOUT, "the Failed machine is deleted").await;
    controller.stop().await;
}

/// MCM's machine preservation: a machine annotated `preserve=when-failed` that
/// fails is preserved: `preserveExpiryTime` set, its Node drained and cordoned,
/// cluster-autoscaler's scale-down-disabled annotation and the `Preserved`
/// condition on it, in MCM's words. When the Node is healthy again the machine
/// runs and preservation stops: uncordoned, the condition False
/// ("Preservation stopped."), the autoscaler annotation and the expiry gone.
#[tokio::test]
async fn a_failed_machine_annotated_when_failed_is_preserved_until_it_recovers() {
    use support::node::{cordoned, fails_preserved, preserved, recovers};

    let Sampled {
        ns,
        target,
        machines,
        name,
        node_name,
    } = sampled("preserve", "keep").await;
    let mut s = settings(&ns);
    s.health_timeout = std::time::Duration::from_secs(2);
    let controller = start(s).await;
    let mut m = machine(&name, "test-class");
    m.metadata.annotations = Some(BTreeMap::from([(
        "node.machine.sapcloud.io/preserve".to_string(),
        "when-failed".to_string(),
    )]));
    // The Node will not answer: its Pods are drained by force, as MCM's
    // `force-drain` label (or 5 minutes NotReady) has it.
    m.metadata
        .labels
        .get_or_insert_default()
        .insert("force-drain".into(), "True".into());
    machines.create(&PostParams::default(), &m).await.unwrap();
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let pods: Api<Pod> = ns.api(&target);
    support::workload::workload_on(&pods, &node_name, "app", &[]).await;

    // The Node stops reporting (its heartbeat is taken from kwok) and turns NotReady.
    let nodes: Api<Node> = Api::all(target.clone());
    let (failed, node) = fails_preserved(&machines, &nodes, &name, &node_name).await;
    let condition = preserved(&node).unwrap();
    assert_eq!(condition.reason.as_deref(), Some("Preserved by user."));
    assert!(
        condition
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("Preserved node drained successfully. Machine preserved until "),
        "{condition:?}"
    );
    assert!(cordoned(&node));
    assert_eq!(
        node.annotations()
            .get("cluster-autoscaler.kubernetes.io/scale-down-disabled")
            .map(String::as_str),
        Some("true")
    );
    wait_for_deleted(&pods, "app", TIMEOUT, "the workload is drained").await;
    assert!(failed.status.current_status.preserve_expiry_time.is_some());

    // The Node recovers: the machine runs again and preservation stops.
    let node = recovers(&machines, &nodes, &name, &node_name).await;
    assert!(
        !node
            .annotations()
            .contains_key("cluster-autoscaler.kubernetes.io/scale-down-disabled")
    );

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// MCM's `shouldAnnotationsBeUpdatedOnMachine` after a stop: a Running machine
/// and its Node both annotated `preserve=when-failed` are not preserved (not
/// Failed), and yet the Node's value is recorded on the machine and the
/// machine's own annotation cleared, so that the Node's value rules from then on.
#[tokio::test]
async fn the_nodes_preserve_value_is_recorded_on_a_machine_not_preserved() {
    use mcm_local::contract::preserve;

    let sampled = sampled("preserve-record", "rec").await;
    let mut m = machine(&sampled.name, "test-class");
    m.metadata.annotations = Some(BTreeMap::from([(
        preserve::ANNOTATION.to_string(),
        "when-failed".to_string(),
    )]));
    let controller = start_running(&sampled, m).await;
    let Sampled {
        target,
        machines,
        name,
        node_name,
        ..
    } = &sampled;
    let nodes: Api<Node> = Api::all(target.clone());
    let annotate =
        serde_json::json!({"metadata": {"annotations": {preserve::ANNOTATION: "when-failed"}}});
    nodes
        .patch(node_name, &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    let recorded = wait_for(
        machines,
        name,
        TIMEOUT,
        "the Node's value is recorded on the machine",
        |m| {
            m.annotations()
                .get(preserve::LAST_APPLIED_NODE_VALUE)
                .map(String::as_str)
                == Some("when-failed")
        },
    )
    .await;
    assert!(!recorded.annotations().contains_key(preserve::ANNOTATION));
    assert_eq!(recorded.status.current_status.preserve_expiry_time, None);
    assert_eq!(recorded.phase(), Some(&Phase::Running));

    delete_all_machines(machines).await;
    controller.stop().await;
}

/// A Node marked `not-managed-by-mcm` (by MCM's safety controller, or by another
/// control namespace's controller sharing the target) while a machine claims it
/// loses the mark and gets its upkeep again: our finalizer comes back.
#[tokio::test]
async fn a_claimed_node_loses_a_stale_not_managed_mark() {
    use mcm_local::contract::{NODE_FINALIZER, NOT_MANAGED_BY_MCM_ANNOTATION};

    let sampled = sampled("not-managed", "nm").await;
    let controller = start_running(&sampled, machine(&sampled.name, "test-class")).await;
    let Sampled {
        target,
        machines,
        node_name,
        ..
    } = &sampled;
    let nodes: Api<Node> = Api::all(target.clone());
    // What an orphan pass elsewhere leaves: our finalizer gone, the mark set.
    // The patch carries the copy's resourceVersion (the finalizer list is
    // replaced whole), so a heartbeat in between means reading again.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let node = nodes.get(node_name).await.unwrap();
        let others: Vec<&String> = node
            .finalizers()
            .iter()
            .filter(|f| *f != NODE_FINALIZER)
            .collect();
        let marked = serde_json::json!({"metadata": {
            "finalizers": others,
            "annotations": {NOT_MANAGED_BY_MCM_ANNOTATION: "1"},
            "resourceVersion": node.metadata.resource_version,
        }});
        match nodes
            .patch(node_name, &PatchParams::default(), &Patch::Merge(&marked))
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 && std::time::Instant::now() < deadline => {}
            Err(e) => panic!("mark the Node {node_name}: {e}"),
        }
    }
    wait_for(
        &nodes,
        node_name,
        TIMEOUT,
        "the mark is gone and our finalizer back",
        |n| {
            !n.annotations().contains_key(NOT_MANAGED_BY_MCM_ANNOTATION)
                && n.finalizers().iter().any(|f| f == NODE_FINALIZER)
        },
    )
    .await;

    delete_all_machines(machines).await;
    controller.stop().await;
}

/// After a switch from the Go controller: a Node whose last-applied node
/// template annotation MCM wrote (Go's marshalled `NodeTemplateSpec`) is brought
/// to the machine's new template: what the old template put there and the new
/// one drops is removed, the rest added, and the annotation is written back in
/// Go's form, so that a switch back reads it too.
#[tokio::test]
async fn a_node_templated_by_the_go_controller_follows_a_template_change() {
    use kube::api::{Patch, PatchParams};

    let Sampled {
        ns,
        target,
        machines,
        name,
        node_name,
    } = sampled("go-template", "gotmpl").await;
    let controller = start(settings(&ns)).await;
    machines
        .create(&PostParams::default(), &machine(&name, "test-class"))
        .await
        .unwrap();
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    controller.stop().await;

    // What MCM v0.62.1 leaves on a Node templated with {old: x, kept: k}.
    let nodes: Api<Node> = Api::all(target.clone());
    let go = r#"{"metadata":{"creationTimestamp":null,"labels":{"kept":"k","old":"x"}},"spec":{}}"#;
    let as_go_left_it = serde_json::json!({"metadata": {
        "labels": {"old": "x", "kept": "k"},
        "annotations": {"node.machine.sapcloud.io/last-applied-anno-labels-taints": go},
    }});
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(&as_go_left_it),
        )
        .await
        .unwrap();
    // The new template: `old` dropped, `new` added.
    let template = serde_json::json!({"spec": {"nodeTemplate": {"metadata": {
        "labels": {"kept": "k", "new": "y"},
    }}}});
    machines
        .patch(&name, &PatchParams::default(), &Patch::Merge(&template))
        .await
        .unwrap();

    let controller = start(settings(&ns)).await;
    let node = wait_for(
        &nodes,
        &node_name,
        TIMEOUT,
        "the new template on the Node",
        |n| {
            let labels = n.labels();
            labels.get("new").map(String::as_str) == Some("y")
                && !labels.contains_key("old")
                && labels.get("kept").map(String::as_str) == Some("k")
        },
    )
    .await;
    let written: serde_json::Value = serde_json::from_str(
        node.annotations()
            .get("node.machine.sapcloud.io/last-applied-anno-labels-taints")
            .expect("the annotation"),
    )
    .unwrap();
    assert_eq!(
        written["metadata"]["labels"],
        serde_json::json!({"kept": "k", "new": "y"}),
        "{written}"
    );
    delete_all_machines(&machines).await;
    controller.stop().await;
}
