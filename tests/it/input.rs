// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Bad input (a class, Secret or user data that cannot work) is reported on its
//! machine with an Event, and harms no other machine.

use crate::support;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret};
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::{OpState, Phase};
use support::controller::{delete_all_machines, settings, start};
use support::running::{class, machine, user_data_secret};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_list};

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
