// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A machine's life: the samples create, join and delete with MCM's texts and
//! nothing left behind; twenty at once; without a target, Available with its
//! addresses (control and target may be two clusters).

use crate::support;
use support::running::{class, machine, user_data_secret};
use support::wait::{record_history, seen_in};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::{OpState, OpType, Phase};
use mcm_local::payload::bootstrap;
use support::controller::{delete_all_machines, kubectl_apply, sample, settings, start};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted, wait_for_list};

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
