// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Workload on a machine's Node: a Pod, and a PodDisruptionBudget that holds a drain.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Toleration};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::PostParams;

use super::{TIMEOUT, TestNamespace, wait_for};

/// A workload Pod bound to `node` (tolerating the machine Node's taint), once Running.
pub async fn workload_on(pods: &Api<Pod>, node: &str, name: &str, labels: &[(&str, &str)]) {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    pod.spec = Some(PodSpec {
        node_name: Some(node.into()),
        tolerations: Some(vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        containers: vec![Container {
            name: "app".into(),
            image: Some("registry.invalid/app:1".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait_for(
        pods,
        name,
        TIMEOUT,
        "the workload runs on the machine",
        |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
    )
    .await;
}

/// A Pod "guarded" on `node` whose PodDisruptionBudget "guard" allows no
/// eviction, once the budget says so.
pub async fn guarded_workload(
    ns: &TestNamespace,
    pods: &Api<Pod>,
    node_name: &str,
) -> Api<PodDisruptionBudget> {
    workload_on(pods, node_name, "guarded", &[("app", "guarded")]).await;
    let pdbs: Api<PodDisruptionBudget> = ns.api(&super::target().await);
    let mut pdb = PodDisruptionBudget::default();
    pdb.metadata.name = Some("guard".into());
    pdb.spec = Some(PodDisruptionBudgetSpec {
        min_available: Some(IntOrString::Int(1)),
        selector: Some(LabelSelector {
            match_labels: Some([("app".to_string(), "guarded".to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    wait_for(
        &pdbs,
        "guard",
        TIMEOUT,
        "the budget allows no disruption",
        |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.current_healthy == 1 && s.disruptions_allowed == 0)
        },
    )
    .await;
    pdbs
}
