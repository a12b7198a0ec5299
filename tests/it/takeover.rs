// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A switch between gardener's Go controller (gardener v1.150.0's
//! machine-controller-manager-provider-local with MCM v0.62.1, built by
//! `make tools`) and ours, in the middle of a rollout, in either direction: the
//! first is killed with machines Running, Pending and Terminating, and the
//! second brings every machine to its end state without a second Pod or Node
//! for any machine, and without a second bootstrap token.
//!
//! Both run as child processes with the admin kubeconfigs. The class carries a
//! `credentialsSecretRef` whose Secret holds the target's kubeconfig, as the Go
//! driver needs; the user data asks the kubelet stand-in for a 15 s boot
//! (`# kubelet-standin: boot-time=15s`): the Go driver deletes a VM whose Node
//! registered before its CreateMachine returned (it polls the Pod every 5 s).

use crate::support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use support::controller::{kubectl_apply, sample, spawn_binary, spawn_for};
use support::mcm::free_port;
use support::workload::guarded_workload;
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted};

/// Which controller runs the machines.
#[derive(Clone, Copy, Debug)]
enum Side {
    Go,
    Ours,
}

/// The Go peer's binary, from the tools cache (`make tools` builds it).
fn peer_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PEER_BIN").filter(|p| !p.is_empty()) {
        return path.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let path =
        cache.join("mcm-provider-local/tools/current/machine-controller-manager-provider-local");
    assert!(
        path.exists(),
        "{} is missing: run `make tools` (hack/tools.sh builds gardener's Go peer)",
        path.display()
    );
    path
}

/// Starts `side` for `ns`; killed when dropped.
fn run(side: Side, ns: &TestNamespace, round: &str) -> tokio::process::Child {
    let log = format!("{}-{round}-{side:?}.log", ns.name());
    match side {
        Side::Ours => spawn_binary(ns.name(), &log),
        Side::Go => spawn_for(
            &peer_binary(),
            ns.name(),
            &log,
            &[
                "--leader-elect=false".into(),
                "--address=127.0.0.1".into(),
                format!("--port={}", free_port()),
                "--machine-creation-timeout=20m".into(),
                "--v=3".into(),
            ],
        ),
    }
}

/// The sample Secret with a 15 s boot and the target's kubeconfig, and the
/// sample class naming it as credentials too.
async fn class_for_both(ns: &TestNamespace) {
    let secret = sample("secret.yaml", ns.name(), &[]).replace(
        "    #!/bin/bash\n",
        "    #!/bin/bash\n    # kubelet-standin: boot-time=15s\n",
    );
    kubectl_apply(Cluster::Control, &secret).await;
    let kubeconfig = std::fs::read(Cluster::Target.kubeconfig()).expect("target kubeconfig");
    let secrets: Api<Secret> = ns.api(&support::control().await);
    let patch = serde_json::json!({"data": {"kubeconfig": k8s_openapi::ByteString(kubeconfig)}});
    secrets
        .patch(
            "test-secret",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("add the kubeconfig to the Secret");
    let class = sample("machine-class.yaml", ns.name(), &[]).replace(
        "secretRef:\n",
        &format!(
            "credentialsSecretRef:\n  name: test-secret\n  namespace: {}\nsecretRef:\n",
            ns.name()
        ),
    );
    kubectl_apply(Cluster::Control, &class).await;
}

async fn create(machines: &Api<Machine>, name: &str) {
    let mut m = Machine::named(name);
    m.spec.class.kind = "MachineClass".into();
    m.spec.class.name = "test-class".into();
    machines
        .create(&PostParams::default(), &m)
        .await
        .expect("create machine");
}

/// The UIDs of the namespace's machine Pods, by name.
async fn pods(ns: &TestNamespace) -> BTreeMap<String, String> {
    let pods: Api<Pod> = ns.api(&support::target().await);
    pods.list(&ListParams::default())
        .await
        .expect("list Pods")
        .items
        .into_iter()
        .filter(|p| p.name_any().starts_with("machine-"))
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

/// Bootstrap tokens whose description names `machine`.
async fn tokens_of(machine: &str) -> Vec<Secret> {
    let secrets: Api<Secret> = Api::namespaced(support::target().await, "kube-system");
    let needle = format!("machine {machine:?}");
    secrets
        .list(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
        .await
        .expect("list tokens")
        .items
        .into_iter()
        .filter(|s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("description"))
                .is_some_and(|d| String::from_utf8_lossy(&d.0).contains(&needle))
        })
        .collect()
}

/// `first` runs a rollout and is killed in the middle of it; `second` finishes it.
async fn hand_over(first: Side, second: Side, prefix: &str) {
    let ns = TestNamespace::in_both(prefix).await;
    let control = support::control().await;
    let target = support::target().await;
    let machines: Api<Machine> = ns.api(&control);
    let nodes: Api<Node> = Api::all(target.clone());
    class_for_both(&ns).await;
    let suffix = &ns.name()[ns.name().len() - 6..];
    let [running, leaving, pending] = ["run", "del", "pend"].map(|n| format!("{n}-{suffix}"));
    for m in [&running, &leaving, &pending] {
        ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{m}"));
    }

    let mut before = run(first, &ns, "first");
    for m in [&running, &leaving] {
        create(&machines, m).await;
    }
    for m in [&running, &leaving] {
        wait_for(&machines, m, TIMEOUT * 2, "Running under the first", |m| {
            m.phase() == Some(&Phase::Running)
        })
        .await;
    }
    // Mid-rollout: one machine Pending (its VM made, its Node not yet there),
    // one being deleted whose drain a PodDisruptionBudget holds.
    let workloads: Api<Pod> = ns.api(&target);
    let budgets = guarded_workload(&ns, &workloads, &format!("machine-{leaving}")).await;
    create(&machines, &pending).await;
    machines
        .delete(&leaving, &DeleteParams::default())
        .await
        .expect("delete a machine");
    wait_for(&machines, &pending, TIMEOUT, "a Pending machine", |m| {
        m.phase() == Some(&Phase::Pending)
    })
    .await;
    wait_for(&machines, &leaving, TIMEOUT, "a machine draining", |m| {
        m.phase() == Some(&Phase::Terminating)
            && m.status
                .last_operation
                .description
                .contains("Initiate node drain")
    })
    .await;
    before.kill().await.expect("kill the first controller");
    let vms = pods(&ns).await;
    assert!(
        vms.contains_key(&format!("machine-{pending}")),
        "the Pending machine has its Pod: {vms:?}"
    );

    let _after = run(second, &ns, "second");
    for m in [&running, &pending] {
        wait_for(&machines, m, TIMEOUT * 2, "Running under the second", |m| {
            m.phase() == Some(&Phase::Running)
        })
        .await;
    }
    // The budget still holds the drain; once it goes, the deletion finishes.
    workloads
        .get("guarded")
        .await
        .expect("the guarded Pod is not evicted against its budget");
    budgets
        .delete("guard", &DeleteParams::default())
        .await
        .expect("delete the budget");
    wait_for_deleted(&machines, &leaving, TIMEOUT * 2, "the deletion finished").await;
    wait_for_deleted(
        &nodes,
        &format!("machine-{leaving}"),
        TIMEOUT,
        "the deleted machine's Node is gone",
    )
    .await;

    // The same VMs as before the switch: no Pod was made twice.
    let now: BTreeMap<String, String> = pods(&ns).await;
    let expected: BTreeMap<String, String> = vms
        .into_iter()
        .filter(|(name, _)| name != &format!("machine-{leaving}"))
        .collect();
    assert_eq!(now, expected, "the Pods of the machines, by UID");
    for m in [&running, &pending] {
        let node = nodes
            .get(&format!("machine-{m}"))
            .await
            .expect("one Node per machine");
        assert!(node.metadata.deletion_timestamp.is_none());
        // A token left behind by a switch back to Go expires with the creation
        // timeout (README); never a second one. Ours deletes at the join the
        // token the Go controller made (it finds it in the list it took when
        // it started).
        let tokens = tokens_of(m).await;
        assert!(tokens.len() <= 1, "one token at most for {m}: {tokens:?}");
        if matches!(second, Side::Ours) {
            assert!(tokens.is_empty(), "no token left for {m}: {tokens:?}");
        }
    }

    for m in [&running, &pending] {
        machines
            .delete(m, &DeleteParams::default())
            .await
            .expect("delete");
    }
    for m in [&running, &pending] {
        wait_for_deleted(&machines, m, TIMEOUT * 2, "the machines are deleted").await;
    }
    assert!(pods(&ns).await.is_empty(), "no Pod is left");
    // Nothing else of any machine is left either (Go leaves the Service and
    // the user data to the garbage collector, after the Pod).
    let target = support::target().await;
    let (secrets, services): (Api<Secret>, Api<Service>) = (ns.api(&target), ns.api(&target));
    for m in [&running, &pending, &leaving] {
        let vm = format!("machine-{m}");
        wait_for_deleted(&nodes, &vm, TIMEOUT, "the machine's Node is gone").await;
        wait_for_deleted(&services, &vm, TIMEOUT, "its Service is gone").await;
        let user_data = format!("{vm}-userdata");
        wait_for_deleted(&secrets, &user_data, TIMEOUT, "its user data is gone").await;
        let tokens = tokens_of(m).await;
        match second {
            Side::Ours => assert!(tokens.is_empty(), "no token left for {m}: {tokens:?}"),
            // A token the Go controller made and never used expires (README).
            Side::Go => assert!(tokens.len() <= 1, "one token at most for {m}: {tokens:?}"),
        }
    }
}

#[tokio::test]
async fn ours_finishes_what_the_go_controller_started() {
    hand_over(Side::Go, Side::Ours, "from-go").await;
}

#[tokio::test]
async fn the_go_controller_finishes_what_ours_started() {
    hand_over(Side::Ours, Side::Go, "to-go").await;
}
