// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local cluster does what the controller relies on (issue 2, "Must show"):
//! TLS, machine Pods on kwok host nodes, the kubelet stand-in's joins, garbage
//! collection, PodDisruptionBudgets, and separate control and target clusters.
//!
//! Needs `make cluster-up` (with `CLUSTERS=2` for the isolation test).

use crate::support;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod, PodSpec, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, EvictParams, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use support::machine::{self, BootstrapToken, JOIN_TIMEOUT, TOKEN_VALIDITY};
use support::{
    Cluster, TIMEOUT, TestNamespace, unique_name, wait_for, wait_for_deleted, wait_for_list,
};

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_ready(node: &Node) -> Option<(&str, Option<&str>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.as_str(), c.reason.as_deref()))
}

fn annotation<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.annotations().get(key).map(String::as_str)
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.labels().get(key).map(String::as_str)
}

/// A plain Pod on a host node.
fn plain_pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("local/app:test".into()),
                ..Default::default()
            }],
            node_selector: Some([(machine::HOST_ROLE_LABEL.to_owned(), String::new())].into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates machine Pod `machine-<machine>` and its user data Secret, owned by the
/// Pod as the driver does it. Returns the created Pod.
async fn create_machine(
    pods: &Api<Pod>,
    secrets: &Api<Secret>,
    machine: &str,
    userdata: &str,
) -> Pod {
    let pod = pods
        .create(&PostParams::default(), &machine::machine_pod(machine))
        .await
        .unwrap_or_else(|e| panic!("creating the Pod of machine {machine}: {e}"));
    secrets
        .create(
            &PostParams::default(),
            &machine::userdata_secret(machine, &pod, userdata),
        )
        .await
        .unwrap_or_else(|e| panic!("creating the user data of machine {machine}: {e}"));
    pod
}

/// Creates bootstrap token `token` in the target cluster's kube-system, deleted with `ns`.
async fn create_token(
    target: &Client,
    ns: &TestNamespace,
    token: &BootstrapToken,
    valid_for: jiff::SignedDuration,
) {
    ns.delete_on_drop::<Secret>(Cluster::Target, Some("kube-system"), &token.secret_name());
    Api::<Secret>::namespaced(target.clone(), "kube-system")
        .create(&PostParams::default(), &token.secret(valid_for))
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", token.secret_name()));
}

#[tokio::test]
async fn tls_verification_is_on() {
    let mut clusters = vec![Cluster::Target];
    if support::two_clusters() {
        clusters.push(Cluster::Control);
    }
    for cluster in clusters {
        // support::config checks the kubeconfig (https, a CA, no insecure flag) and
        // the client settings built from it.
        let config = support::cluster::config(cluster).await;
        let client = Client::try_from(config.clone()).expect("client");
        client
            .apiserver_version()
            .await
            .expect("the API server answers over verified TLS");

        // The same client without the CA must fail the handshake: it really verifies.
        let mut no_ca = config.clone();
        no_ca.root_cert = None;
        no_ca.root_cert_file = None;
        let err = Client::try_from(no_ca)
            .expect("client")
            .apiserver_version()
            .await
            .expect_err("a client without the cluster CA must not connect");
        assert!(
            !matches!(err, kube::Error::Api(_)),
            "expected a TLS failure, got an API answer: {err}"
        );
        let chain = format!("{err:?}");
        assert!(
            chain.contains("certificate") || chain.contains("UnknownIssuer"),
            "expected a certificate error, got {chain}"
        );

        // kubectl (the tools' client) verifies too: fine with the kubeconfig, refused
        // with the same kubeconfig minus its CA.
        let kubectl = support::kubectl();
        if !kubectl.exists() {
            eprintln!(
                "{} is missing: skipping the kubectl part",
                kubectl.display()
            );
            continue;
        }
        let path = cluster.kubeconfig();
        let ok = tokio::process::Command::new(&kubectl)
            .args([
                "--kubeconfig",
                path.to_str().unwrap(),
                "get",
                "--raw",
                "/readyz",
            ])
            .output()
            .await
            .expect("running kubectl");
        assert!(
            ok.status.success(),
            "kubectl failed: {}",
            String::from_utf8_lossy(&ok.stderr)
        );

        let mut stripped = support::cluster::read_kubeconfig(&path);
        for c in stripped
            .clusters
            .iter_mut()
            .filter_map(|c| c.cluster.as_mut())
        {
            c.certificate_authority = None;
            c.certificate_authority_data = None;
        }
        let dir = std::env::temp_dir().join(unique_name("kubeconfig-no-ca"));
        std::fs::create_dir(&dir).expect("temp dir");
        let no_ca_path = dir.join("kubeconfig");
        std::fs::write(&no_ca_path, serde_json::to_vec(&stripped).unwrap())
            .expect("writing kubeconfig");
        let refused = tokio::process::Command::new(&kubectl)
            .args([
                "--kubeconfig",
                no_ca_path.to_str().unwrap(),
                "get",
                "--raw",
                "/readyz",
            ])
            .output()
            .await;
        std::fs::remove_dir_all(&dir).ok();
        let refused = refused.expect("running kubectl");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success(),
            "kubectl without the CA connected"
        );
        assert!(
            stderr.contains("certificate"),
            "expected a certificate error from kubectl: {stderr}"
        );
    }
}

#[tokio::test]
async fn machine_pod_runs_on_a_host_node() {
    let ns = TestNamespace::new("machine-pod").await;
    let target = support::target().await;
    let pods: Api<Pod> = ns.api(&target);
    let secrets: Api<Secret> = ns.api(&target);
    let m = unique_name("runs");
    // No token in this user data: the stand-in will refuse to join, which is fine here.
    let created = create_machine(&pods, &secrets, &m, "#!/bin/sh\necho no join\n").await;

    let pod = wait_for(
        &pods,
        &created.name_any(),
        TIMEOUT,
        "the machine Pod runs with a Pod IP",
        |p| is_running(p) && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some(),
    )
    .await;
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .expect("a scheduled Pod has a node");
    let node = Api::<Node>::all(target)
        .get(&node_name)
        .await
        .expect("the Pod's node");
    assert!(
        node.labels().contains_key(machine::HOST_ROLE_LABEL),
        "{node_name} is not a host node"
    );
    assert_eq!(
        label(&node, machine::KWOK_LABEL),
        Some("fake"),
        "{node_name} is not run by kwok"
    );
    assert_eq!(
        annotation(&node, machine::REGISTERED_BY_ANNOTATION),
        None,
        "{node_name} is a machine's node"
    );

    let spec = pod.spec.as_ref().unwrap();
    let node_container = spec
        .containers
        .iter()
        .find(|c| c.name == "node")
        .expect("container node");
    assert_eq!(
        node_container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged),
        Some(true)
    );
    assert_eq!(spec.dns_policy.as_deref(), Some("Default"));
}

/// Waits for the stand-in's Warning event on `pod` saying why it did not join.
async fn join_refusal(events: &Api<Event>, pod: &str) -> String {
    let description = format!("the kubelet stand-in's JoinRefused event for Pod {pod}");
    let found = wait_for_list(
        events,
        watcher::Config::default(),
        JOIN_TIMEOUT,
        &description,
        |events| {
            events.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
                    && e.reason.as_deref() == Some("JoinRefused")
            })
        },
    )
    .await;
    found
        .into_iter()
        .find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
                && e.reason.as_deref() == Some("JoinRefused")
        })
        .and_then(|e| e.note)
        .unwrap_or_default()
}

#[tokio::test]
async fn standin_registers_nodes_only_with_valid_tokens() {
    let ns = TestNamespace::new("standin-join").await;
    let target = support::target().await;
    let pods: Api<Pod> = ns.api(&target);
    let secrets: Api<Secret> = ns.api(&target);
    let nodes: Api<Node> = Api::all(target.clone());
    let events: Api<Event> = ns.api(&target);

    let valid = BootstrapToken::random();
    let expired = BootstrapToken::random();
    let unknown = BootstrapToken::random();
    create_token(&target, &ns, &valid, TOKEN_VALIDITY).await;
    create_token(&target, &ns, &expired, -TOKEN_VALIDITY).await;

    let good = unique_name("good");
    let bad = [
        (
            unique_name("unknown"),
            machine::userdata_with_token(&unknown.token()),
            &["unknown bootstrap token"][..],
        ),
        // The token cleaner may delete the expired token's Secret before the stand-in looks.
        (
            unique_name("expired"),
            machine::userdata_with_token(&expired.token()),
            &["expired at", "unknown bootstrap token"],
        ),
        (
            unique_name("malformed"),
            machine::userdata_with_token("abcdef.tooshort"),
            &["none of the form"],
        ),
        (
            unique_name("missing"),
            "#!/bin/sh\necho hello\n".to_owned(),
            &["no bootstrap token"],
        ),
    ];
    for m in std::iter::once(&good).chain(bad.iter().map(|(m, ..)| m)) {
        ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{m}"));
    }
    // All at once: the good machine's join shows the stand-in has seen them all.
    create_machine(
        &pods,
        &secrets,
        &good,
        &machine::userdata_with_token(&valid.token()),
    )
    .await;
    for (m, userdata, _) in &bad {
        create_machine(&pods, &secrets, m, userdata).await;
    }

    let name = format!("machine-{good}");
    let description = "the stand-in registers the Node and kwok makes it Ready \
                       (is the kubelet stand-in running? see .local/logs/target-kubelet-standin.log)";
    let node = wait_for(&nodes, &name, JOIN_TIMEOUT, description, |n| {
        node_ready(n).is_some_and(|(status, _)| status == "True")
    })
    .await;
    assert_eq!(
        node.spec.as_ref().and_then(|s| s.provider_id.as_deref()),
        Some(name.as_str())
    );
    let labels = node.labels();
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&name));
    assert_eq!(
        labels.get("kubernetes.io/os").map(String::as_str),
        Some("linux")
    );
    assert_eq!(
        labels.get("kubernetes.io/arch").map(String::as_str),
        Some("amd64")
    );
    assert_eq!(label(&node, machine::KWOK_LABEL), Some("fake"));
    assert_eq!(
        annotation(&node, machine::REGISTERED_BY_ANNOTATION),
        Some("kubelet-standin")
    );

    for (m, _, why) in &bad {
        let pod = format!("machine-{m}");
        let note = join_refusal(&events, &pod).await;
        assert!(
            why.iter().any(|w| note.contains(w)),
            "the refusal for {pod} should say one of {why:?}: {note}"
        );
        for token in [&valid, &expired, &unknown] {
            assert!(
                !note.contains(&token.secret),
                "the refusal for {pod} shows a token secret: {note}"
            );
        }
        assert!(
            nodes.get_opt(&pod).await.expect("reading nodes").is_none(),
            "a Node was registered for {pod} although its token is bad"
        );
    }
}

#[tokio::test]
async fn node_turns_not_ready_when_its_machine_pod_goes_and_rejoins_when_it_returns() {
    let ns = TestNamespace::new("standin-stop").await;
    let target = support::target().await;
    let pods: Api<Pod> = ns.api(&target);
    let secrets: Api<Secret> = ns.api(&target);
    let nodes: Api<Node> = Api::all(target.clone());

    let token = BootstrapToken::random();
    create_token(&target, &ns, &token, TOKEN_VALIDITY).await;
    let m = unique_name("stop");
    let name = format!("machine-{m}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &name);
    let userdata = machine::userdata_with_token(&token.token());
    create_machine(&pods, &secrets, &m, &userdata).await;
    wait_for(
        &nodes,
        &name,
        JOIN_TIMEOUT,
        "the machine's Node is Ready",
        |n| node_ready(n).is_some_and(|(status, _)| status == "True"),
    )
    .await;

    pods.delete(&name, &DeleteParams::default())
        .await
        .expect("deleting the machine Pod");
    wait_for_deleted(&pods, &name, TIMEOUT, "the machine Pod is gone").await;
    let node = wait_for(
        &nodes,
        &name,
        TIMEOUT,
        "the Node of the gone machine turns NotReady",
        |n| {
            node_ready(n) == Some(("Unknown", Some("NodeStatusUnknown")))
                && label(n, machine::KWOK_LABEL).is_none()
        },
    )
    .await;
    assert_eq!(
        annotation(&node, machine::REGISTERED_BY_ANNOTATION),
        Some("kubelet-standin")
    );

    // The secret went with the Pod (owner reference); the "VM" boots again under the
    // same name: its kubelet re-joins the Node.
    wait_for_deleted(
        &secrets,
        &machine::userdata_secret_name(&m),
        TIMEOUT,
        "the old user data is collected",
    )
    .await;
    let again = create_machine(&pods, &secrets, &m, &userdata).await;
    let uid = again.uid().expect("created Pod has a UID");
    wait_for(
        &nodes,
        &name,
        JOIN_TIMEOUT,
        "the Node is Ready again for the new machine Pod",
        |n| {
            node_ready(n).is_some_and(|(status, _)| status == "True")
                && label(n, machine::KWOK_LABEL) == Some("fake")
                && annotation(n, "local.machine.sapcloud.io/pod-uid") == Some(uid.as_str())
        },
    )
    .await;
}

#[tokio::test]
async fn deleting_a_pod_collects_the_secret_it_owns() {
    let ns = TestNamespace::new("gc").await;
    let target = support::target().await;
    let pods: Api<Pod> = ns.api(&target);
    let secrets: Api<Secret> = ns.api(&target);

    let pod = pods
        .create(
            &PostParams::default(),
            &plain_pod("owner", &[("app", "gc")]),
        )
        .await
        .expect("creating the owner Pod");
    let owned = Secret {
        metadata: ObjectMeta {
            name: Some("owned".into()),
            owner_references: Some(vec![pod.controller_owner_ref(&()).unwrap()]),
            ..Default::default()
        },
        string_data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &owned)
        .await
        .expect("creating the owned Secret");

    pods.delete("owner", &DeleteParams::default())
        .await
        .expect("deleting the owner Pod");
    wait_for_deleted(&pods, "owner", TIMEOUT, "the owner Pod is gone").await;
    wait_for_deleted(
        &secrets,
        "owned",
        TIMEOUT,
        "the garbage collector deletes the owned Secret",
    )
    .await;
}

#[tokio::test]
async fn eviction_against_a_pod_disruption_budget_is_refused_with_429() {
    let ns = TestNamespace::new("pdb").await;
    // No client-side retries: kube retries 429s by default, and this test wants to see
    // the API server's answer itself.
    let mut config = support::cluster::config(Cluster::Target).await;
    config.default_retry = false;
    let target = Client::try_from(config).expect("client");
    let pods: Api<Pod> = ns.api(&target);
    let pdbs: Api<PodDisruptionBudget> = ns.api(&target);

    pods.create(
        &PostParams::default(),
        &plain_pod("guarded", &[("app", "guarded")]),
    )
    .await
    .expect("creating the Pod");
    let pdb = PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some("guard".into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_owned(), "guarded".to_owned())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("creating the PDB");

    wait_for(
        &pods,
        "guarded",
        TIMEOUT,
        "the guarded Pod is Ready",
        is_ready,
    )
    .await;
    wait_for(
        &pdbs,
        "guard",
        TIMEOUT,
        "the disruption controller counts the Pod healthy",
        |p| {
            let generation = p.metadata.generation;
            p.status.as_ref().is_some_and(|s| {
                s.observed_generation == generation
                    && s.current_healthy == 1
                    && s.disruptions_allowed == 0
            })
        },
    )
    .await;

    match pods.evict("guarded", &EvictParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                status.code, 429,
                "eviction refused, but not with 429: {status:?}"
            )
        }
        other => panic!("eviction of a PDB-guarded Pod should be refused with 429, got {other:?}"),
    }
    assert!(
        pods.get_opt("guarded")
            .await
            .expect("reading the Pod")
            .is_some(),
        "the guarded Pod was evicted"
    );
}

#[tokio::test]
async fn control_and_target_are_separate_clusters() {
    if !support::two_clusters() {
        eprintln!(
            "skipped: control and target are the same cluster (run `CLUSTERS=2 make cluster-up`)"
        );
        return;
    }
    let ns = TestNamespace::in_cluster(Cluster::Control, "isolation").await;
    let control = support::control().await;
    let target = support::target().await;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("only-in-control".into()),
            ..Default::default()
        },
        data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Default::default()
    };
    ns.api::<ConfigMap>(&control)
        .create(&PostParams::default(), &cm)
        .await
        .expect("creating the ConfigMap in control");
    assert!(
        ns.api::<ConfigMap>(&control)
            .get_opt("only-in-control")
            .await
            .unwrap()
            .is_some()
    );

    let target_ns = Api::<k8s_openapi::api::core::v1::Namespace>::all(target.clone());
    assert!(
        target_ns
            .get_opt(ns.name())
            .await
            .expect("reading namespaces in target")
            .is_none(),
        "namespace {} of the control cluster is visible in the target cluster",
        ns.name()
    );
    assert!(
        ns.api::<ConfigMap>(&target)
            .get_opt("only-in-control")
            .await
            .expect("reading in target")
            .is_none(),
        "the ConfigMap of the control cluster is visible in the target cluster"
    );
}
