// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Issue "Drop-in inside Gardener": the controller as Gardener runs it. It gets
//! exactly the rights Gardener grants MCM, written out below from gardener's
//! source, and nothing of ours; the real MCM rolls out a worker pool whose class
//! puts its Pods in an `infra-…` namespace through credentials that carry a
//! kubeconfig, as gardener's provider-local classes do; and the worker is
//! deleted in the order Gardener's worker actuator deletes it. The cluster such
//! credentials name is watched as the target is, not asked for each machine's Pod.

use crate::support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use mcm_local::api::provider_spec::LocalProviderSpec;
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::Phase;
use mcm_local::payload::build;
use support::admin::{Binary, RemoveOnDrop, impersonating_kubeconfig, kubeconfig_via};
use support::controller::{kubectl_apply, spawn_for};
use support::mcm::{MachineDeployment, MachineSet, free_port, mcm_binary};
use support::proxy::Proxy;
use support::{
    Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted, wait_for_list, wait_for_none,
};

/// The seed-side ClusterRole Gardener binds MCM's ServiceAccount to
/// (`system:machine-controller-manager-runtime`, gardener v1.150.0,
/// `pkg/component/nodemanagement/machinecontrollermanager/bootstrap.go`), bound
/// by a ClusterRoleBinding (`machine_controller_manager.go`).
fn seed_rules(name: &str) -> String {
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {name}
rules:
- apiGroups: [machine.sapcloud.io]
  resources: ["*"]
  verbs: ["*"]
- apiGroups: [""]
  resources: [configmaps, secrets, endpoints, events, pods]
  verbs: ["*"]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, watch, update]
  resourceNames: [machine-controller, machine-controller-manager]
"#
    )
}

/// The shoot-side rules (`gardener.cloud:target:machine-controller-manager`,
/// same file, `computeShootResourcesData`): a ClusterRole and a Role for the
/// bootstrap tokens in kube-system.
fn shoot_rules(name: &str) -> String {
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {name}
rules:
- apiGroups: [""]
  resources: [nodes, nodes/status, endpoints, replicationcontrollers, pods, persistentvolumes, persistentvolumeclaims]
  verbs: [create, delete, deletecollection, get, list, patch, update, watch]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
- apiGroups: [apps]
  resources: [replicasets, statefulsets, daemonsets, deployments]
  verbs: [create, delete, deletecollection, get, list, patch, update, watch]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [create, delete, deletecollection, get, list, patch, update, watch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch]
- apiGroups: [storage.k8s.io]
  resources: [volumeattachments]
  verbs: [delete, get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {name}
  namespace: kube-system
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete, get, list]
"#
    )
}

fn cluster_binding(name: &str, role_kind: &str, namespace: Option<&str>, user: &str) -> String {
    let kind = if namespace.is_some() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    let ns = namespace
        .map(|n| format!("\n  namespace: {n}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata:
  name: {name}{ns}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {role_kind}
  name: {name}
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: {user}
"#
    )
}

/// The Secret `user-data`, whose script only joins (the kubelet stand-in
/// reads the bootstrap token that replaces the placeholder).
async fn create_user_data(secrets: &Api<Secret>) {
    let script = "#!/bin/bash\n# joins with <<BOOTSTRAP_TOKEN>>\n";
    let mut user_data = Secret {
        string_data: Some([("userData".to_string(), script.to_string())].into()),
        ..Default::default()
    };
    user_data.metadata.name = Some("user-data".into());
    secrets
        .create(&PostParams::default(), &user_data)
        .await
        .unwrap();
}

/// The class `pool` in namespace `n` with the Secret `user-data`, plus
/// `spec_lines` under its providerSpec and `more` at its top level.
fn pool_class(n: &str, spec_lines: &str, more: &str) -> String {
    format!(
        r#"apiVersion: machine.sapcloud.io/v1alpha1
kind: MachineClass
metadata:
  name: pool
  namespace: {n}
provider: local
providerSpec:
  image: localhost/machine-image:latest
{spec_lines}secretRef:
  name: user-data
  namespace: {n}
{more}"#
    )
}

/// What the controller asked of the API server at `server`, from its JSON log
/// (`mcm_local::client::http=debug`): method and path with query.
fn requests_to(log: &str, server: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| {
            v["target"] == mcm_local::client::REQUEST_LOG_TARGET
                && v["fields"]["message"] == "requesting"
        })
        .filter_map(|v| {
            let span = &v["span"];
            let url = span["http.url"].as_str()?;
            let path = url.strip_prefix(server)?;
            Some((span["http.method"].as_str()?.to_string(), path.to_string()))
        })
        .collect()
}

/// Issue "lean as creation": the cluster a class's credentials name by
/// kubeconfig (gardener's class shape) has its machine Pods watched, as the
/// target's are. Once that watch has listed, the driver reads a machine's Pod
/// from it instead of asking the API server for it at every look: deleting a
/// machine sends that cluster the Pod's DELETE and no GET of it. The
/// credentials reach the cluster through a proxy of their own, so that the
/// controller's request log tells their requests from the target's.
#[tokio::test]
async fn a_cluster_named_by_credentials_is_watched_not_asked_per_machine() {
    let ns = TestNamespace::in_both("foreign").await;
    let control = support::control().await;
    let target = support::target().await;
    let n = ns.name();
    let server = Cluster::Target.server();
    let upstream: SocketAddr = server
        .trim_start_matches("https://")
        .parse()
        .unwrap_or_else(|e| panic!("target server {server}: {e}"));
    let proxy = Proxy::start(upstream).await;
    let credentials = RemoveOnDrop(kubeconfig_via(
        Cluster::Target,
        &proxy.url(),
        &format!("{n}-credentials.kubeconfig"),
    ));
    let secrets: Api<Secret> = ns.api(&control);
    let pp = PostParams::default();
    let kubeconfig = std::fs::read_to_string(&credentials.0).expect("the credentials' kubeconfig");
    let mut cloudprovider = Secret {
        string_data: Some([("kubeconfig".to_string(), kubeconfig)].into()),
        ..Default::default()
    };
    cloudprovider.metadata.name = Some("cloudprovider".into());
    secrets.create(&pp, &cloudprovider).await.unwrap();
    create_user_data(&secrets).await;
    let name = format!("far-{}", &n[n.len() - 6..]);
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    let credentials_ref =
        format!("credentialsSecretRef:\n  name: cloudprovider\n  namespace: {n}\n");
    let machine = format!(
        r#"---
apiVersion: machine.sapcloud.io/v1alpha1
kind: Machine
metadata:
  name: {name}
  namespace: {n}
spec:
  class: {{kind: MachineClass, name: pool}}
"#
    );
    let yaml = pool_class(n, "", &credentials_ref) + &machine;
    kubectl_apply(Cluster::Control, &yaml).await;
    let controller = Binary::spawn(
        n,
        &format!("{n}-controller.log"),
        &["--leader-elect=false".into(), "--log-format=json".into()],
        &[(
            "RUST_LOG",
            &format!("info,{}=debug", mcm_local::client::REQUEST_LOG_TARGET),
        )],
    );

    let machines: Api<Machine> = ns.api(&control);
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let foreign = proxy.url();
    // The watch asks for its first list, then watches from it.
    controller
        .wait_for_log(TIMEOUT, "watch of the credentials' cluster", |log| {
            requests_to(log, &foreign).iter().any(|(method, path)| {
                method == "GET" && path.starts_with("/api/v1/pods?") && path.contains("watch=true")
            })
        })
        .await;
    let before = controller.log_text().len();

    machines.delete(&name, &Default::default()).await.unwrap();
    wait_for_deleted(&machines, &name, TIMEOUT, "the machine is deleted").await;
    let pods: Api<Pod> = ns.api(&target);
    wait_for_deleted(
        &pods,
        &format!("machine-{name}"),
        TIMEOUT,
        "the Pod is gone",
    )
    .await;

    let log = controller.log_text();
    let pod = format!("/api/v1/namespaces/{n}/pods/machine-{name}");
    let asked: Vec<(String, String)> = requests_to(&log[before..], &foreign)
        .into_iter()
        .filter(|(_, path)| path.split('?').next() == Some(pod.as_str()))
        .collect();
    assert!(
        asked.iter().any(|(method, _)| method == "DELETE"),
        "the Pod was deleted through the credentials' cluster: {asked:?}"
    );
    let gets: Vec<&(String, String)> = asked.iter().filter(|(m, _)| m == "GET").collect();
    assert!(
        gets.is_empty(),
        "the watched Pod was still asked for {} times: {gets:?}",
        gets.len()
    );
}

#[tokio::test]
async fn a_gardener_worker_rolls_out_under_gardeners_rbac_and_is_deleted_in_gardeners_order() {
    let ns = TestNamespace::in_both("shoot").await;
    let infra = TestNamespace::new("infra").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    let suffix = &n[n.len() - 6..];

    // Gardener's rights, for users that only impersonation gives a name.
    let seed_user = format!("system:serviceaccount:{n}:machine-controller-manager");
    let shoot_user =
        format!("system:serviceaccount:kube-system:machine-controller-manager-{suffix}");
    let seed_role = format!("system:machine-controller-manager-runtime-{suffix}");
    let shoot_role = format!("gardener.cloud:target:machine-controller-manager-{suffix}");
    kubectl_apply(Cluster::Control, &seed_rules(&seed_role)).await;
    kubectl_apply(
        Cluster::Control,
        &cluster_binding(&seed_role, "ClusterRole", None, &seed_user),
    )
    .await;
    kubectl_apply(Cluster::Target, &shoot_rules(&shoot_role)).await;
    kubectl_apply(
        Cluster::Target,
        &cluster_binding(&shoot_role, "ClusterRole", None, &shoot_user),
    )
    .await;
    kubectl_apply(
        Cluster::Target,
        &cluster_binding(&shoot_role, "Role", Some("kube-system"), &shoot_user),
    )
    .await;
    ns.delete_on_drop::<ClusterRole>(Cluster::Control, None, &seed_role);
    ns.delete_on_drop::<ClusterRoleBinding>(Cluster::Control, None, &seed_role);
    ns.delete_on_drop::<ClusterRole>(Cluster::Target, None, &shoot_role);
    ns.delete_on_drop::<ClusterRoleBinding>(Cluster::Target, None, &shoot_role);
    ns.delete_on_drop::<Role>(Cluster::Target, Some("kube-system"), &shoot_role);
    ns.delete_on_drop::<RoleBinding>(Cluster::Target, Some("kube-system"), &shoot_role);
    let control_kc = RemoveOnDrop(impersonating_kubeconfig(
        Cluster::Control,
        &seed_user,
        &format!("{n}-seed.kubeconfig"),
    ));
    let target_kc = RemoveOnDrop(impersonating_kubeconfig(
        Cluster::Target,
        &shoot_user,
        &format!("{n}-shoot.kubeconfig"),
    ));

    // The worker as Gardener's provider-local writes it: the cloudprovider
    // credentials with a kubeconfig for the cluster the Pods go to, a class per
    // pool with its Pods in infra-…, the pool's user data in a class Secret.
    let provider_kubeconfig =
        std::fs::read_to_string(Cluster::Target.kubeconfig()).expect("the target's kubeconfig");
    let secrets: Api<Secret> = ns.api(&control);
    let pp = PostParams::default();
    let mut cloudprovider = Secret {
        string_data: Some([("kubeconfig".to_string(), provider_kubeconfig)].into()),
        ..Default::default()
    };
    cloudprovider.metadata.name = Some("cloudprovider".into());
    secrets.create(&pp, &cloudprovider).await.unwrap();
    let pool = "shoot-worker-pool-z1";
    let mut user_data = Secret {
        string_data: Some(
            [(
                "userData".to_string(),
                "#!/bin/bash\n# joins with <<BOOTSTRAP_TOKEN>>\n".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    user_data.metadata.name = Some(pool.into());
    user_data.metadata.labels = Some([("worker.gardener.cloud/pool".into(), "pool".into())].into());
    secrets.create(&pp, &user_data).await.unwrap();
    let class = format!(
        r#"apiVersion: machine.sapcloud.io/v1alpha1
kind: MachineClass
metadata:
  name: {pool}
  namespace: {n}
provider: local
providerSpec:
  image: localhost/machine-image:latest
  namespace: {infra}
secretRef:
  name: {pool}
  namespace: {n}
credentialsSecretRef:
  name: cloudprovider
  namespace: {n}
"#,
        infra = infra.name()
    );
    kubectl_apply(Cluster::Control, &class).await;
    let deployment = format!(
        r#"apiVersion: machine.sapcloud.io/v1alpha1
kind: MachineDeployment
metadata:
  name: {pool}
  namespace: {n}
spec:
  replicas: 2
  minReadySeconds: 0
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  selector:
    matchLabels: {{name: {pool}}}
  template:
    metadata:
      labels: {{name: {pool}}}
    spec:
      class: {{kind: MachineClass, name: {pool}}}
      nodeTemplate:
        metadata:
          labels: {{worker.gardener.cloud/pool: pool}}
"#
    );
    kubectl_apply(Cluster::Control, &deployment).await;

    let _mcm = spawn_for(
        &mcm_binary(),
        n,
        &format!("{n}-mcm.log"),
        &[
            "--leader-elect=false".into(),
            format!("--port={}", free_port()),
            "--address=127.0.0.1".into(),
        ],
    );
    let controller = Binary::spawn(
        n,
        &format!("{n}-controller.log"),
        &[
            format!("--control-kubeconfig={}", control_kc.0.display()),
            format!("--target-kubeconfig={}", target_kc.0.display()),
            "--leader-elect=true".into(),
        ],
        &[],
    );

    let machines: Api<Machine> = ns.api(&control);
    let running = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "both machines of the pool are Running",
        |l: &[Machine]| l.len() == 2 && l.iter().all(|m| m.phase() == Some(&Phase::Running)),
    )
    .await;
    let names: Vec<String> = running.iter().map(|m| m.name_any()).collect();
    for m in &names {
        ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{m}"));
    }
    let pods: Api<Pod> = infra.api(&target);
    let listed = pods.list(&ListParams::default()).await.unwrap().items;
    let pod_names: BTreeSet<String> = listed.iter().map(|p| p.name_any()).collect();
    let expected: BTreeSet<String> = names.iter().map(|m| format!("machine-{m}")).collect();
    assert_eq!(pod_names, expected, "the Pods are in {}", infra.name());
    let class_secret = secrets.get(pool).await.unwrap();
    assert!(
        class_secret
            .finalizers()
            .contains(&"machine.sapcloud.io/machine-controller".to_string()),
        "the class Secret is held while its class exists"
    );

    // Gardener's order (worker actuator): the MachineDeployments, then the
    // classes, then the class Secrets, without waiting in between.
    let deployments: Api<MachineDeployment> = ns.api(&control);
    deployments.delete(pool, &Default::default()).await.unwrap();
    let classes: Api<MachineClass> = ns.api(&control);
    classes.delete(pool, &Default::default()).await.unwrap();
    secrets.delete(pool, &Default::default()).await.unwrap();

    let deadline = TIMEOUT * 3;
    wait_for_none(
        &machines,
        Default::default(),
        deadline,
        "no Machine is left",
    )
    .await;
    let sets: Api<MachineSet> = ns.api(&control);
    wait_for_none(&sets, Default::default(), deadline, "no MachineSet is left").await;
    wait_for_deleted(
        &deployments,
        pool,
        deadline,
        "the MachineDeployment is gone",
    )
    .await;
    wait_for_deleted(&classes, pool, deadline, "the MachineClass is gone").await;
    wait_for_deleted(&secrets, pool, deadline, "the class Secret is gone").await;
    wait_for_none(
        &pods,
        Default::default(),
        deadline,
        "no machine Pod is left",
    )
    .await;
    let services: Api<Service> = infra.api(&target);
    wait_for_none(
        &services,
        Default::default(),
        deadline,
        "no machine Service is left",
    )
    .await;
    let infra_secrets: Api<Secret> = infra.api(&target);
    wait_for_list(
        &infra_secrets,
        Default::default(),
        deadline,
        "no user data Secret is left",
        |l: &[Secret]| !l.iter().any(|s| s.name_any().ends_with("-userdata")),
    )
    .await;
    let nodes: Api<Node> = Api::all(target.clone());
    for m in &names {
        wait_for_deleted(
            &nodes,
            &format!("machine-{m}"),
            deadline,
            "the Node is gone",
        )
        .await;
    }
    let tokens: Api<Secret> = Api::namespaced(target.clone(), "kube-system");
    let of_these = support::machine::token_of_machines(n, &names);
    wait_for_list(
        &tokens,
        Default::default(),
        deadline,
        "no bootstrap token is left",
        |l: &[Secret]| !l.iter().any(&of_these),
    )
    .await;
    // The credentials outlive the worker (they are the shoot's), without our finalizer.
    wait_for(
        &secrets,
        "cloudprovider",
        deadline,
        "the credentials lose our finalizer once no class names them",
        |s| s.finalizers().is_empty(),
    )
    .await;

    let log = controller.log_text();
    assert!(
        log.contains("acquired the leader lease"),
        "the controller led under Gardener's Lease rights:\n{log}"
    );
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .collect();
    assert!(
        refused.is_empty(),
        "Gardener's rules refused something:\n{}",
        refused.join("\n")
    );
}

/// Orphan collection in an `infra-…` namespace that two control namespaces
/// share: our orphan goes, the other's VM stays.
#[tokio::test]
async fn orphans_in_a_shared_infra_namespace_are_collected_only_if_ours() {
    let ns = TestNamespace::in_both("orphan-infra").await;
    let infra = TestNamespace::new("infra").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    let suffix = &n[n.len() - 6..];
    create_user_data(&ns.api(&control)).await;
    let class = pool_class(n, &format!("  namespace: {}\n", infra.name()), "");
    kubectl_apply(Cluster::Control, &class).await;

    let spec = LocalProviderSpec {
        image: "localhost/machine-image:latest".into(),
        ..Default::default()
    };
    let pods: Api<Pod> = infra.api(&target);
    let (ours, theirs) = (format!("ours-{suffix}"), format!("theirs-{suffix}"));
    for (machine, control_ns) in [(&ours, n), (&theirs, "shoot--another--one")] {
        ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{machine}"));
        pods.create(
            &PostParams::default(),
            &build::pod(machine, control_ns, infra.name(), &spec),
        )
        .await
        .unwrap();
    }

    let controller = Binary::spawn(
        n,
        &format!("{n}-controller.log"),
        &[
            "--leader-elect=false".into(),
            "--machine-safety-orphan-vms-period=2s".into(),
            "--machine-safety-orphan-vms-min-age=1s".into(),
        ],
        &[],
    );
    wait_for_deleted(
        &pods,
        &format!("machine-{ours}"),
        TIMEOUT,
        "our orphan VM is deleted",
    )
    .await;
    // Two more whole passes after that one: the other's VM was judged and kept.
    let passes = |text: &str| text.matches("orphan collection done").count();
    let seen = passes(&controller.log_text());
    controller
        .wait_for_log(TIMEOUT, "two more orphan passes", |text| {
            passes(text) >= seen + 2
        })
        .await;
    pods.get(&format!("machine-{theirs}"))
        .await
        .expect("the VM of another control namespace is left alone");
}
