// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The shipped RBAC (`kubernetes/deployment/`) is enough: the controller binary,
//! running as the ServiceAccount those manifests bind, takes a machine through
//! create, Running and delete, with leader election on.

use crate::support;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use support::admin::{RemoveOnDrop, impersonating_kubeconfig};
use support::controller::{kubectl_apply, sample};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted};

/// A deployment manifest with the namespace and cluster-scoped names made this test's.
fn manifest(file: &str, namespace: &str, suffix: &str) -> String {
    let path = support::cluster::repo_root()
        .join("kubernetes/deployment")
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace(
            "namespace: machine-controller",
            &format!("namespace: {namespace}"),
        )
        .replace(
            "name: machine-controller-target",
            &format!("name: machine-controller-target-{suffix}"),
        )
}

#[tokio::test]
async fn the_shipped_rbac_is_enough_for_a_machine_lifecycle() {
    let ns = TestNamespace::in_both("rbac").await;
    let n = ns.name();
    let suffix = &n[n.len() - 6..];
    let control = support::control().await;

    // Control: ServiceAccount, Role and RoleBinding in the controller's namespace.
    for file in ["serviceaccount.yaml", "rbac.yaml"] {
        let text = manifest(file, n, suffix);
        let text = if file == "serviceaccount.yaml" {
            text.replace(
                "name: machine-controller\n",
                &format!("name: machine-controller\n  namespace: {n}\n"),
            )
        } else {
            text
        };
        kubectl_apply(
            Cluster::Control,
            &text
                .replace(
                    "kind: Role\nmetadata:\n",
                    &format!("kind: Role\nmetadata:\n  namespace: {n}\n"),
                )
                .replace(
                    "kind: RoleBinding\nmetadata:\n",
                    &format!("kind: RoleBinding\nmetadata:\n  namespace: {n}\n"),
                ),
        )
        .await;
    }
    // Target: the ClusterRole and its binding to that ServiceAccount.
    kubectl_apply(Cluster::Target, &manifest("target/rbac.yaml", n, suffix)).await;
    let name = format!("machine-controller-target-{suffix}");
    ns.delete_on_drop::<ClusterRole>(Cluster::Target, None, &name);
    ns.delete_on_drop::<ClusterRoleBinding>(Cluster::Target, None, &name);
    let tokens = format!("{name}-tokens");
    ns.delete_on_drop::<Role>(Cluster::Target, Some("kube-system"), &tokens);
    ns.delete_on_drop::<RoleBinding>(Cluster::Target, Some("kube-system"), &tokens);

    let user = format!("system:serviceaccount:{n}:machine-controller");
    let control_kc = RemoveOnDrop(impersonating_kubeconfig(
        Cluster::Control,
        &user,
        &format!("{n}-control.kubeconfig"),
    ));
    let target_kc = RemoveOnDrop(impersonating_kubeconfig(
        Cluster::Target,
        &user,
        &format!("{n}-target.kubeconfig"),
    ));

    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, n, &[])).await;
    }
    let log_path = support::cluster::local_dir()
        .join("logs")
        .join(format!("{n}-controller.log"));
    let _ = std::fs::create_dir_all(log_path.parent().unwrap());
    let log = std::fs::File::create(&log_path).expect("log file");
    let _controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_machine-controller"))
        .arg(format!("--control-kubeconfig={}", control_kc.0.display()))
        .arg(format!("--target-kubeconfig={}", target_kc.0.display()))
        .arg(format!("--namespace={n}"))
        .args(["--leader-elect=true", "--port=0", "--address=127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start machine-controller");

    let machines: Api<Machine> = ns.api(&control);
    let machine = format!("rbac-{suffix}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{machine}"));
    let mut m = Machine::named(&machine);
    m.spec.class.kind = "MachineClass".into();
    m.spec.class.name = "test-class".into();
    machines.create(&PostParams::default(), &m).await.unwrap();
    wait_for(
        &machines,
        &machine,
        TIMEOUT,
        "the machine is Running under the shipped RBAC",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    machines
        .delete(&machine, &DeleteParams::default())
        .await
        .unwrap();
    wait_for_deleted(
        &machines,
        &machine,
        TIMEOUT,
        "the machine is deleted under the shipped RBAC",
    )
    .await;
    let nodes: Api<Node> = Api::all(support::target().await);
    wait_for_deleted(
        &nodes,
        &format!("machine-{machine}"),
        TIMEOUT,
        "its Node is deleted",
    )
    .await;

    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        !text.to_lowercase().contains("forbidden"),
        "the controller was refused something:\n{text}"
    );
}
