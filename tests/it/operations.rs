// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Issue "Operations": probes and metrics of the admin server, leader election
//! between two replicas, graceful shutdown, the freeze while an API server is out
//! of reach, and logs that never carry user data or credentials. Each test runs
//! the real binary against the local cluster.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use mcm_local::api::Machine;
use mcm_local::contract::{OpState, OpType, Phase};
use support::admin::{
    Binary, RemoveOnDrop, get, impersonating_kubeconfig, kubeconfig_via, sample_value, samples,
    wait_for_http,
};
use support::controller::{delete_all_machines, kubectl_apply, sample};
use support::proxy::Proxy;
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted};

/// A machine name no other test uses (Nodes, named after it, are cluster-wide),
/// ending in random characters as a MachineSet's machines do: MCM derives the
/// bootstrap token id from the end of the name, and machines whose names end
/// alike would share one token, deleted by the first of them to join or go.
fn machine_name(prefix: &str) -> String {
    support::unique_name(prefix)
}

/// The sample secret and class in `ns`, and a sample machine named `name`.
async fn apply_samples(ns: &TestNamespace, secret_renames: &[(&str, &str)]) {
    kubectl_apply(
        Cluster::Control,
        &sample("secret.yaml", ns.name(), secret_renames),
    )
    .await;
    kubectl_apply(
        Cluster::Control,
        &sample("machine-class.yaml", ns.name(), &[]),
    )
    .await;
}

async fn apply_machine(ns: &TestNamespace, name: &str) {
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    kubectl_apply(
        Cluster::Control,
        &sample("machine.yaml", ns.name(), &[("test-machine", name)]),
    )
    .await;
}

/// A replica whose identity may not touch the Lease never leads, and says so:
/// an error in its log and a `/readyz` that names the Lease, not a quiet standby.
#[tokio::test]
async fn a_replica_that_cannot_take_the_lease_is_not_ready_and_says_why() {
    let ns = TestNamespace::in_both("ops-no-lease").await;
    let user = format!("e2e-nobody-{}", ns.name());
    let kubeconfig = RemoveOnDrop(impersonating_kubeconfig(
        Cluster::Control,
        &user,
        &format!("{}-nobody.kubeconfig", ns.name()),
    ));
    let binary = Binary::spawn(
        ns.name(),
        &format!("{}.log", ns.name()),
        &[
            format!("--control-kubeconfig={}", kubeconfig.0.display()),
            "--leader-elect=true".into(),
        ],
        &[],
    );
    let admin = binary.admin_address(TIMEOUT).await;
    let (_, why) = wait_for_http(
        admin,
        "/readyz",
        TIMEOUT,
        "/readyz names the Lease",
        |code, body| code == 503 && body.contains("cannot take the leader lease"),
    )
    .await;
    assert!(why.contains("forbidden"), "{why}");
    binary
        .wait_for_log(TIMEOUT, "an error about the Lease", |text| {
            text.lines()
                .any(|l| l.contains("ERROR") && l.contains("cannot take the leader lease"))
        })
        .await;
    assert!(
        !binary.log_text().contains("acquired the leader lease"),
        "it never leads"
    );
}

#[tokio::test]
async fn readyz_waits_for_the_caches_and_metrics_count_a_running_machine() {
    let ns = TestNamespace::in_both("ops-admin").await;
    let control = support::control().await;
    let machines: Api<Machine> = ns.api(&control);
    apply_samples(&ns, &[]).await;
    let name = machine_name("ops");
    apply_machine(&ns, &name).await;

    // A user no RBAC rule names yet: its watches of the control cluster are
    // refused, so the caches cannot sync and the replica must not be ready.
    let user = format!("e2e-{}", ns.name());
    let kubeconfig = RemoveOnDrop(impersonating_kubeconfig(
        Cluster::Control,
        &user,
        &format!("{}-control.kubeconfig", ns.name()),
    ));
    let mut binary = Binary::spawn(
        ns.name(),
        &format!("{}.log", ns.name()),
        &[
            format!("--control-kubeconfig={}", kubeconfig.0.display()),
            "--leader-elect=false".into(),
        ],
        &[],
    );
    let admin = binary.admin_address(TIMEOUT).await;
    let (_, why) = wait_for_http(admin, "/readyz", TIMEOUT, "/readyz refuses", |code, _| {
        code == 503
    })
    .await;
    assert!(
        why.contains("caches not synced") && why.contains("machines"),
        "{why}"
    );
    // Refused watches are retried, not yet a reason to restart.
    let (code, body) = get(admin, "/healthz").await.expect("GET /healthz");
    assert_eq!(code, 200, "{body}");

    let bindings: Api<RoleBinding> = ns.api(&control);
    let binding = RoleBinding {
        metadata: kube::core::ObjectMeta {
            name: Some("e2e-controller".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.clone(),
            ..Default::default()
        }]),
    };
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");
    wait_for_http(
        admin,
        "/readyz",
        TIMEOUT,
        "/readyz once the caches synced",
        |code, _| code == 200,
    )
    .await;

    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let running_series = format!(
        "mcm_machine_current_status_phase{{name=\"{name}\",namespace=\"{}\"}} 1",
        ns.name()
    );
    let (_, metrics) = wait_for_http(
        admin,
        "/metrics",
        TIMEOUT,
        "the Running machine in /metrics",
        |code, body| code == 200 && body.lines().any(|l| l == running_series),
    )
    .await;
    assert_eq!(
        samples(&metrics, "mcm_machine_items_total"),
        ["mcm_machine_items_total 1"]
    );
    assert_eq!(
        samples(&metrics, "mcm_machine_controller_frozen"),
        ["mcm_machine_controller_frozen 0"]
    );
    let info = samples(&metrics, "mcm_machine_info");
    assert_eq!(info.len(), 1, "{metrics}");
    for label in [
        format!("name=\"{name}\""),
        format!("spec_provider_id=\"machine-{name}\""),
        "spec_class_kind=\"MachineClass\"".to_string(),
        "spec_class_name=\"test-class\"".to_string(),
        format!("node_name=\"machine-{name}\""),
    ] {
        assert!(info[0].contains(&label), "{label} in {}", info[0]);
    }
    for line in [
        "machine_controller_machine_create_duration_seconds_count 1",
        "machine_controller_machine_join_duration_seconds_count 1",
        "mcm_cloud_api_driver_request_duration_seconds_count{provider=\"local\",operation=\"CreateMachine\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} in\n{metrics}");
    }
    // The VM did not exist before it was made: MCM counts that as a failed call.
    assert!(
        metrics.contains("mcm_cloud_api_driver_requests_failed_total{provider=\"local\",operation=\"GetMachineStatus\",error_code=\"NotFound\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("machine_controller_reconcile_total{result=\"success\",category=\"\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("machine_controller_reconcile_duration_seconds_bucket"));
    // What Gardener's ServiceMonitor keeps of client-go's queue and the process.
    for family in [
        "mcm_workqueue_depth{name=\"machine\"}",
        "mcm_workqueue_unfinished_work_seconds{name=\"machine\"}",
        "mcm_workqueue_longest_running_processor_seconds{name=\"machine\"}",
        "mcm_workqueue_retries_total{name=\"machine\"}",
        "mcm_workqueue_queue_duration_seconds_bucket{",
        "mcm_workqueue_work_duration_seconds_count{name=\"machine\"}",
        "process_open_fds ",
        "process_max_fds ",
    ] {
        assert!(metrics.contains(family), "{family} in\n{metrics}");
    }
    let adds = samples(&metrics, "mcm_workqueue_adds_total");
    let added = sample_value(&metrics, "mcm_workqueue_adds_total").unwrap_or_default();
    assert!(added >= 1.0, "the machine was added to the queue: {adds:?}");

    // Deleted machines leave the per-machine series; the deletion is timed.
    machines
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the machine");
    wait_for_deleted(&machines, &name, TIMEOUT, "the machine is gone").await;
    // The watch may report the deletion before the reconcile that removed the
    // finalizer has timed it: wait for both.
    let (_, metrics) = wait_for_http(
        admin,
        "/metrics",
        TIMEOUT,
        "the deleted machine leaves /metrics and its deletion is timed",
        |_, body| {
            body.lines().any(|l| l == "mcm_machine_items_total 0")
                && body
                    .lines()
                    .any(|l| l == "machine_controller_machine_delete_duration_seconds_count 1")
        },
    )
    .await;
    assert!(!metrics.contains(&name), "{metrics}");

    binary.terminate();
    assert!(binary.exit_status(TIMEOUT).await.success());
}

/// The holder of the Lease, once there is one.
async fn holder(
    leases: &Api<Lease>,
    description: &str,
    predicate: impl Fn(&str) -> bool,
) -> String {
    let lease = wait_for(
        leases,
        "machine-controller",
        TIMEOUT,
        description,
        |l: &Lease| {
            l.spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(&predicate)
        },
    )
    .await;
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .expect("a holder")
}

/// The replicas that published Events about machine `name`.
async fn reporters(events: &Api<Event>, name: &str) -> Vec<String> {
    let mut seen: Vec<String> = events
        .list(&Default::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

#[tokio::test]
async fn one_of_two_replicas_acts_and_the_other_takes_over_when_it_is_killed() {
    let ns = TestNamespace::in_both("ops-leader").await;
    let control = support::control().await;
    let machines: Api<Machine> = ns.api(&control);
    let leases: Api<Lease> = ns.api(&control);
    let events: Api<Event> = ns.api(&control);
    apply_samples(&ns, &[]).await;

    let lease_duration = Duration::from_secs(6);
    let flags = vec![
        "--leader-elect=true".to_string(),
        format!(
            "--leader-elect-lease-duration={}s",
            lease_duration.as_secs()
        ),
        "--leader-elect-renew-deadline=4s".into(),
        "--leader-elect-retry-period=1s".into(),
    ];
    let mut replicas = ["replica-a", "replica-b"].map(|pod| {
        let log = format!("{}-{pod}.log", ns.name());
        (
            pod,
            Binary::spawn(ns.name(), &log, &flags, &[("POD_NAME", pod)]),
        )
    });
    let first = holder(&leases, "a replica holds the lease", |h| {
        h.starts_with("replica-a_") || h.starts_with("replica-b_")
    })
    .await;
    let leader = usize::from(first.starts_with("replica-b_"));
    let (leader_pod, standby_pod) = (replicas[leader].0, replicas[1 - leader].0);
    // Both are ready: the standby by design (see admin.rs).
    for (_, binary) in &replicas {
        let admin = binary.admin_address(TIMEOUT).await;
        wait_for_http(admin, "/readyz", TIMEOUT, "/readyz", |code, _| code == 200).await;
    }

    let one = machine_name("lead1");
    apply_machine(&ns, &one).await;
    wait_for(
        &machines,
        &one,
        TIMEOUT,
        "the first machine is Running",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    assert_eq!(
        holder(&leases, "the lease", |_| true).await,
        first,
        "the holder stays the same while it renews"
    );
    assert_eq!(
        reporters(&events, &one).await,
        [leader_pod],
        "only the leader writes"
    );

    // The leader dies without a word; a machine is created and one deleted meanwhile.
    replicas[leader]
        .1
        .child
        .start_kill()
        .expect("kill the leader");
    let killed = tokio::time::Instant::now();
    let _ = replicas[leader].1.child.wait().await;
    let two = machine_name("lead2");
    apply_machine(&ns, &two).await;
    machines
        .delete(&one, &DeleteParams::default())
        .await
        .expect("delete the first machine");

    let second = holder(&leases, "the standby takes the lease", |h| {
        h.starts_with(&format!("{standby_pod}_"))
    })
    .await;
    let took = killed.elapsed();
    eprintln!("the standby took over {took:?} after the leader was killed");
    // The lease expires at most a lease duration after the leader's last renewal;
    // kube-lease-manager then waits up to a second more before it takes it.
    assert!(
        took < lease_duration + Duration::from_secs(5),
        "took over after {took:?}; lease duration {lease_duration:?}"
    );
    wait_for(
        &machines,
        &two,
        TIMEOUT,
        "the new leader brings up the second machine",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    wait_for_deleted(
        &machines,
        &one,
        TIMEOUT,
        "the new leader finishes the deletion",
    )
    .await;
    assert_eq!(reporters(&events, &two).await, [standby_pod]);

    // SIGTERM: in-flight work finishes, the lease is released, exit 0.
    delete_all_machines(&machines).await;
    let new_leader = &mut replicas[1 - leader].1;
    new_leader.terminate();
    let status = new_leader.exit_status(TIMEOUT).await;
    assert!(
        status.success(),
        "{status}; log: {}",
        new_leader.log.display()
    );
    let lease = leases.get("machine-controller").await.expect("the Lease");
    // Released as client-go releases it: no holder, a one-second duration.
    let spec = lease.spec.unwrap_or_default();
    assert_eq!(
        (
            spec.holder_identity.unwrap_or_default().as_str(),
            spec.lease_duration_seconds
        ),
        ("", Some(1)),
        "the lease was released (held by {second} before)"
    );
    let log = new_leader.log_text();
    assert!(log.contains("released the leader lease"), "{log}");
}

#[tokio::test]
async fn a_replica_that_loses_the_lease_stops_and_exits_non_zero() {
    let ns = TestNamespace::in_both("ops-lost").await;
    let leases: Api<Lease> = ns.api(&support::control().await);
    let mut binary = Binary::spawn(
        ns.name(),
        &format!("{}.log", ns.name()),
        &["--leader-elect=true".into()],
        &[("POD_NAME", "replica")],
    );
    holder(&leases, "the replica holds the lease", |h| {
        h.starts_with("replica_")
    })
    .await;
    // Another holder, as after a partition in which the lease expired.
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    let patch = serde_json::json!({"spec": {
        "holderIdentity": "intruder", "renewTime": now, "acquireTime": now, "leaseDurationSeconds": 60,
    }});
    leases
        .patch(
            "machine-controller",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("take the lease");
    let status = binary.exit_status(TIMEOUT).await;
    assert_eq!(status.code(), Some(1), "{status}");
    let log = binary.log_text();
    assert!(log.contains("lost the leader lease"), "{log}");
}

/// The `mcm_machine_controller_frozen` sample of an exposition.
fn frozen(exposition: &str) -> Vec<&str> {
    samples(exposition, "mcm_machine_controller_frozen")
}

/// Waits until `/metrics` says `mcm_machine_controller_frozen <value>`.
async fn wait_for_frozen(admin: SocketAddr, value: u8, description: &str) {
    let sample = format!("mcm_machine_controller_frozen {value}");
    wait_for_http(admin, "/metrics", TIMEOUT, description, |code, body| {
        code == 200 && frozen(body) == [sample.as_str()]
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_target_api_server_freezes_the_controller_until_it_answers() {
    let ns = TestNamespace::in_both("ops-freeze").await;
    let control = support::control().await;
    let machines: Api<Machine> = ns.api(&control);
    apply_samples(&ns, &[]).await;

    // The controller reaches the target through a proxy the test can cut.
    let server = Cluster::Target.server();
    let upstream: SocketAddr = server
        .trim_start_matches("https://")
        .parse()
        .unwrap_or_else(|e| panic!("target server {server}: {e}"));
    let mut proxy = Proxy::start(upstream).await;
    let kubeconfig = RemoveOnDrop(kubeconfig_via(
        Cluster::Target,
        &proxy.url(),
        &format!("{}-target.kubeconfig", ns.name()),
    ));
    let binary = Binary::spawn(
        ns.name(),
        &format!("{}.log", ns.name()),
        &[
            format!("--target-kubeconfig={}", kubeconfig.0.display()),
            "--leader-elect=false".into(),
            "--machine-safety-apiserver-statuscheck-period=1s".into(),
            "--machine-safety-apiserver-statuscheck-timeout=2s".into(),
        ],
        &[],
    );
    let admin = binary.admin_address(TIMEOUT).await;
    let running = machine_name("frz1");
    apply_machine(&ns, &running).await;
    wait_for(
        &machines,
        &running,
        TIMEOUT,
        "the machine is Running",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    let (_, metrics) = get(admin, "/metrics").await.expect("GET /metrics");
    assert_eq!(frozen(&metrics), ["mcm_machine_controller_frozen 0"]);

    proxy.cut().await;
    wait_for_frozen(admin, 1, "the controller freezes").await;
    // Meanwhile the machine's Node looks unhealthy, and a new machine comes.
    let unknown = serde_json::json!({"status": {
        "currentStatus": {"phase": "Unknown", "timeoutActive": true},
        "lastOperation": {
            "description": format!("Machine {running} is unhealthy - changing MachinePhase to Unknown"),
            "state": "Processing",
            "type": "HealthCheck",
        },
    }});
    machines
        .patch_status(&running, &PatchParams::default(), &Patch::Merge(&unknown))
        .await
        .expect("mark the machine Unknown");
    let waiting = machine_name("frz2");
    apply_machine(&ns, &waiting).await;
    binary
        .wait_for_line(TIMEOUT, "the new machine left alone", |line| {
            (line.contains("frozen: an API server does not answer") && line.contains(&waiting))
                .then_some(())
        })
        .await;
    let left = machines.get(&waiting).await.expect("get the new machine");
    assert_eq!(left.phase(), None, "a frozen controller creates nothing");
    assert_eq!(left.spec.provider_id, "");
    assert_eq!(
        machines.get(&running).await.expect("get").phase(),
        Some(&Phase::Unknown),
        "nor does it judge health"
    );

    proxy.restore().await;
    wait_for_frozen(admin, 0, "the controller thaws").await;
    let reset = wait_for(
        &machines,
        &running,
        TIMEOUT,
        "the Unknown machine is reset to Running",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    assert_eq!(
        reset.status.last_operation.description,
        "Machine Health Timeout was reset due to APIServer being unreachable"
    );
    assert_eq!(reset.status.last_operation.state, Some(OpState::Successful));
    assert_eq!(reset.status.last_operation.type_, Some(OpType::HealthCheck));
    wait_for(
        &machines,
        &waiting,
        TIMEOUT,
        "the new machine is created after the thaw",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    delete_all_machines(&machines).await;
}

#[tokio::test]
async fn bad_leader_election_flags_are_refused_with_a_clear_message() {
    let mut binary = Binary::spawn(
        "default",
        "ops-bad-flags.log",
        &[
            "--leader-elect-lease-duration=10s".into(),
            "--leader-elect-renew-deadline=10s".into(),
        ],
        &[],
    );
    let status = binary.exit_status(TIMEOUT).await;
    assert_eq!(status.code(), Some(1), "{status}");
    let log = binary.log_text();
    assert!(
        log.contains(
            "--leader-elect-renew-deadline (10s) must be shorter than --leader-elect-lease-duration (10s)"
        ),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// `text` base64-encoded at each of the three alignments it can have inside a
/// longer value, without the edge characters that depend on the neighbours.
fn base64_forms(text: &str) -> Vec<String> {
    (0..3)
        .map(|pad| {
            let mut bytes = vec![b'\0'; pad];
            bytes.extend_from_slice(text.as_bytes());
            let json = serde_json::to_string(&ByteString(bytes)).expect("base64");
            let b64 = json.trim_matches('"');
            // Characters whose six bits all come from `text`.
            let start = (8 * pad).div_ceil(6);
            let end = 8 * (pad + text.len()) / 6;
            b64[start..end].to_string()
        })
        .collect()
}

#[tokio::test]
async fn user_data_tokens_and_kubeconfigs_never_reach_a_log_line() {
    let ns = TestNamespace::in_both("ops-logs").await;
    let (control, target) = (support::control().await, support::target().await);
    let machines: Api<Machine> = ns.api(&control);
    let marker = format!("UserDataMarker{}", &ns.name()[ns.name().len() - 6..]);
    apply_samples(
        &ns,
        &[("#!/bin/bash", &format!("#!/bin/bash\n    echo {marker}"))],
    )
    .await;
    let name = machine_name("logs");

    let mut binary = Binary::spawn(
        ns.name(),
        &format!("{}.log", ns.name()),
        &[
            "--leader-elect=true".into(),
            "--v=6".into(),
            "--log-format=json".into(),
        ],
        &[("RUST_LOG", "trace")],
    );
    apply_machine(&ns, &name).await;

    // The bootstrap token the controller made, as the machine receives it.
    let secrets: Api<Secret> = ns.api(&target);
    let user_data = wait_for(
        &secrets,
        &format!("machine-{name}-userdata"),
        TIMEOUT,
        "the machine's user data",
        |_| true,
    )
    .await;
    let text = user_data
        .data
        .as_ref()
        .and_then(|d| d.get("userdata"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .expect("userdata");
    assert!(text.contains(&marker), "the marker is in the user data");
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("a token line")
        .to_string();
    let token_secret = token
        .split_once('.')
        .map(|(_, s)| s.to_string())
        .expect("id.secret");
    assert_eq!(token_secret.len(), 16, "{token}");

    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    machines
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the machine");
    wait_for_deleted(&machines, &name, TIMEOUT, "the machine is gone").await;
    binary.terminate();
    assert!(binary.exit_status(TIMEOUT).await.success());

    let log = binary.log_text();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "--log-format=json: every line is JSON"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"level\":\"TRACE\"")),
        "the log was written at trace level"
    );
    let kubeconfig = std::fs::read_to_string(Cluster::Control.kubeconfig()).expect("kubeconfig");
    let key = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .expect("the admin kubeconfig has a client key")
        .to_string();
    // A stretch from the middle: the start only encodes "-----BEGIN".
    let mut secrets = vec![marker.clone(), token_secret, key[100..160].to_string()];
    secrets.extend(base64_forms(&marker));
    for (i, line) in lines.iter().enumerate() {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "log line {} of {} carries {secret:?}: {line}",
                i + 1,
                binary.log.display()
            );
        }
    }
    assert!(
        lines.len() > 100,
        "{} lines only: was anything logged?",
        lines.len()
    );
}

#[test]
fn base64_forms_match_inside_any_encoding() {
    let marker = "UserDataMarker123";
    for prefix in ["", "a", "ab", "abc", "#!/bin/bash\n"] {
        let whole = format!("{prefix}{marker} and more");
        let json = serde_json::to_string(&ByteString(whole.into_bytes())).unwrap();
        assert!(
            base64_forms(marker)
                .iter()
                .any(|f| json.contains(f.as_str())),
            "prefix {prefix:?}: {json}"
        );
    }
}

/// The controller's clients speak HTTP/2, as client-go's do: one connection per
/// cluster carries every request and watch, instead of one TLS connection per
/// request in flight (about 200 at N=100 in `make bench` over HTTP/1.1).
#[tokio::test]
async fn the_controller_clients_multiplex_requests_over_http2() {
    let kubeconfig = Cluster::Target.kubeconfig();
    let clients = mcm_local::client::build(&kubeconfig.to_string_lossy(), 50.0, 100)
        .await
        .expect("clients");
    for client in [&clients.client, &clients.no_retry] {
        let request = http::Request::get("/version")
            .body(kube::client::Body::empty())
            .expect("request");
        let response = client.send(request).await.expect("the API server answers");
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
    }
}
