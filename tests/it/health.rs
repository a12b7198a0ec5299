// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A machine's health as MCM judges it: a VM that never joins, dies or cannot
//! pull its image; a Node that is not ready yet; timeouts, one machine of a
//! deployment at a time; a leftover Node of the same name.

use crate::support;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::{OpState, OpType, Phase};
use std::collections::BTreeMap;
use support::controller::{WORKERS, delete_all_machines, kubectl_apply, sample, settings, start};
use support::running::{Running, class, machine, user_data_secret};
use support::wait::record_history;
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted, wait_for_list};

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

/// A VM that dies turns its Running machine Unknown (its Node goes NotReady),
/// and Failed once the health timeout has passed — for MCM to replace.
#[tokio::test]
async fn a_machine_whose_vm_dies_turns_unknown_then_failed() {
    let Running {
        ns: _ns,
        machines,
        pods,
        name,
        node_name,
        controller,
        ..
    } = Running::with("vm-dies", WORKERS, |s| {
        s.health_timeout = std::time::Duration::from_secs(5)
    })
    .await;

    // The VM dies: nobody deletes the Machine, its Pod is simply gone.
    pods.delete(&node_name, &DeleteParams::default())
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
