// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! End to end with the real MCM (v0.62.1, built by `make tools`): its
//! MachineDeployment and MachineSet controllers make the Machines, ours makes
//! their VMs, and a scale-down goes through our deletion flow.

mod support;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mcm_local::api::Machine;
use support::controller::{delete_all_machines, kubectl_apply, sample, settings, spawn_for, start};
use support::mcm::{MachineDeployment, free_port, mcm_binary};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_list};

fn phase(m: &Machine) -> &str {
    &m.status.current_status.phase
}

#[tokio::test]
async fn mcm_machine_deployment_rolls_out_and_scales_down_through_us() {
    let ns = TestNamespace::in_both("mcm-e2e").await;
    let control = support::control().await;
    let target = support::target().await;
    let suffix = &ns.name()[ns.name().len() - 6..];
    let deployment = format!("md-{suffix}");
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    kubectl_apply(
        Cluster::Control,
        &sample(
            "machine-deployment.yaml",
            ns.name(),
            &[("test-machine-deployment", &deployment)],
        ),
    )
    .await;

    // Run `make tools` if the MCM binary is missing.
    let _mcm = spawn_for(
        &mcm_binary(),
        ns.name(),
        &format!("{}-mcm.log", ns.name()),
        &[
            "--leader-elect=false".into(),
            format!("--port={}", free_port()),
            "--address=127.0.0.1".into(),
        ],
    );
    let controller = start(settings(&ns)).await;

    let machines: Api<Machine> = ns.api(&control);
    let running = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "three Running machines of the deployment",
        |l: &[Machine]| l.len() == 3 && l.iter().all(|m| phase(m) == "Running"),
    )
    .await;
    let nodes: Api<Node> = Api::all(target.clone());
    for m in &running {
        let node = m.node_name().expect("node label");
        ns.delete_on_drop::<Node>(Cluster::Target, None, node);
        // The deployment's nodeTemplate reaches the Node.
        wait_for(
            &nodes,
            node,
            TIMEOUT,
            "the Node carries the template's label",
            |n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("pool"))
                    .map(String::as_str)
                    == Some("local")
            },
        )
        .await;
    }
    let deployments: Api<MachineDeployment> = ns.api(&control);
    wait_for(
        &deployments,
        &deployment,
        TIMEOUT,
        "the MachineDeployment reports 3 available",
        |d| d.status.get("availableReplicas").and_then(|v| v.as_i64()) == Some(3),
    )
    .await;

    // MCM picks the victims; our deletion flow drains and removes them.
    deployments
        .patch(
            &deployment,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let left = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "one machine after the scale-down",
        |l: &[Machine]| l.len() == 1 && phase(&l[0]) == "Running",
    )
    .await;
    let kept = left[0].node_name().expect("node label").to_string();
    for m in running
        .iter()
        .filter(|m| m.node_name() != Some(kept.as_str()))
    {
        support::wait_for_deleted(
            &nodes,
            m.node_name().unwrap(),
            TIMEOUT,
            "the scaled-down machine's Node is deleted",
        )
        .await;
    }

    deployments
        .delete(&deployment, &Default::default())
        .await
        .unwrap();
    delete_all_machines(&machines).await;
    controller.stop().await;
}
