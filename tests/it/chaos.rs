// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! "A restart never deletes a live VM": the controller killed and started again
//! many times, at random points, while machines run, are created and are
//! deleted. Races show only under repetition, so each test repeats.
//!
//! Orphan collection runs at every start with `--machine-safety-orphan-vms-min-age=0s`,
//! so that only the synced caches and the live reads stand between a restart
//! and the VMs of live machines: the age guard cannot hide a mistake here.
//!
//! `make chaos` runs the same tests with 200 machines (`CHAOS_MACHINES`).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use mcm_local::payload::bootstrap;
use support::admin::Binary;
use support::chaos::{Record, Signal, between, kills, machines as scale};
use support::controller::{kubectl_apply, sample};
use support::{
    Cluster, TIMEOUT, TestNamespace, unique_name, wait_for, wait_for_list, wait_for_none,
};

const ORPHANS_AT_ONCE: &str = "--machine-safety-orphan-vms-min-age=0s";

/// A deadline that grows with the number of machines.
fn deadline(n: usize) -> Duration {
    TIMEOUT + Duration::from_secs(n as u64)
}

struct Setup {
    ns: TestNamespace,
    machines: Api<Machine>,
    names: Vec<String>,
}

/// A namespace with the sample class and secret, and `n` machine names (not
/// yet created) ending in random characters, as a MachineSet names them.
async fn setup(prefix: &str, n: usize) -> Setup {
    let ns = TestNamespace::in_both(prefix).await;
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machines: Api<Machine> = ns.api(&support::control().await);
    let names: Vec<String> = (0..n).map(|_| unique_name("chaos")).collect();
    for name in &names {
        ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    }
    Setup {
        ns,
        machines,
        names,
    }
}

async fn create_all(s: &Setup) {
    for name in &s.names {
        let mut m = Machine::named(name);
        m.spec.class.kind = "MachineClass".into();
        m.spec.class.name = "test-class".into();
        s.machines
            .create(&PostParams::default(), &m)
            .await
            .unwrap_or_else(|e| panic!("create machine {name}: {e}"));
    }
}

/// Deletes every machine and waits until they are gone (with a controller running).
async fn delete_all(s: &Setup) {
    request_deletion(s).await;
    all_gone(s).await;
}

async fn request_deletion(s: &Setup) {
    s.machines
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete the machines");
}

async fn all_gone(s: &Setup) {
    wait_for_none(
        &s.machines,
        Default::default(),
        deadline(s.names.len()),
        "every machine is gone",
    )
    .await;
}

async fn all_running(s: &Setup, description: &str) {
    let n = s.names.len();
    wait_for_list(
        &s.machines,
        Default::default(),
        deadline(n),
        description,
        |l: &[Machine]| l.len() == n && l.iter().all(|m| m.phase() == Some(&Phase::Running)),
    )
    .await;
}

/// The controller binary for the test's namespace, with orphan collection at
/// every start acting at once.
fn controller(s: &Setup, log: &str, flags: &[&str], env: &[(&str, &str)]) -> Binary {
    let mut all = vec!["--leader-elect=false".to_string(), ORPHANS_AT_ONCE.into()];
    if flags.iter().any(|f| f.starts_with("--leader-elect")) {
        all.remove(0);
    }
    all.extend(flags.iter().map(|f| f.to_string()));
    Binary::spawn(
        s.ns.name(),
        &format!("{}-{log}.log", s.ns.name()),
        &all,
        env,
    )
}

/// Records of what the machines leave in the target cluster: Pods, user-data
/// Secrets, Services (in the namespace), Nodes (by name) and bootstrap tokens
/// (ours by name, any whose description names a machine).
struct TargetRecords {
    pods: Record,
    secrets: Record,
    services: Record,
    nodes: Record,
    tokens: Record,
}

impl TargetRecords {
    fn all(&self) -> [(&'static str, &Record); 5] {
        [
            ("Pod", &self.pods),
            ("Secret", &self.secrets),
            ("Service", &self.services),
            ("Node", &self.nodes),
            ("token", &self.tokens),
        ]
    }

    /// Says how often each watch lost its place, and what only its relist showed.
    fn report_gaps(&self, when: &str) {
        let gaps: Vec<String> = self
            .all()
            .iter()
            .map(|(kind, r)| {
                format!(
                    "{kind}s {} relists, {} deletions found only by a relist",
                    r.relists(),
                    r.gap_deletions()
                )
            })
            .collect();
        eprintln!("chaos: watch gaps {when}: {}", gaps.join("; "));
    }
}

/// Whether `token` is one of the machines' (support::machine::token_of_machines).
fn token_of(s: &Setup) -> impl Fn(&Secret) -> bool + Send + 'static {
    support::machine::token_of_machines(s.ns.name(), &s.names)
}

async fn record_target(s: &Setup) -> TargetRecords {
    let target = support::target().await;
    let selected = || watcher::Config::default().labels("machine-provider=local");
    let node_names: BTreeSet<String> = s.names.iter().map(|m| format!("machine-{m}")).collect();
    let records = TargetRecords {
        pods: Record::start(
            s.ns.api::<Pod>(&target),
            selected(),
            |_| true,
            |_| String::new(),
        ),
        secrets: Record::start(
            s.ns.api::<Secret>(&target),
            selected(),
            |_| true,
            |_| String::new(),
        ),
        services: Record::start(
            s.ns.api::<Service>(&target),
            Default::default(),
            |_| true,
            |_| String::new(),
        ),
        nodes: Record::start(
            Api::<Node>::all(target.clone()),
            Default::default(),
            move |n| node_names.contains(&n.name_any()),
            |_| String::new(),
        ),
        tokens: Record::start(
            Api::<Secret>::namespaced(target, "kube-system"),
            watcher::Config::default().fields("type=bootstrap.kubernetes.io/token"),
            token_of(s),
            |_| String::new(),
        ),
    };
    for (_, r) in records.all() {
        r.synced().await;
    }
    records
}

/// Name -> UID of `items`.
fn uids<'a, K: kube::Resource + 'a>(
    items: impl IntoIterator<Item = &'a K>,
) -> BTreeMap<String, String> {
    items
        .into_iter()
        .map(|o| (o.name_any(), o.uid().unwrap_or_default()))
        .collect()
}

/// Fresh lists of every kind: name -> UID.
async fn list_live(s: &Setup) -> [BTreeMap<String, String>; 5] {
    let target = support::target().await;
    let selected = ListParams::default().labels("machine-provider=local");
    let node_names: BTreeSet<String> = s.names.iter().map(|m| format!("machine-{m}")).collect();
    let is_token = token_of(s);
    let list = |what: &str, e: kube::Error| -> ! { panic!("list {what}: {e}") };
    let pods = s.ns.api::<Pod>(&target).list(&selected).await;
    let secrets = s.ns.api::<Secret>(&target).list(&selected).await;
    let services = s.ns.api::<Service>(&target).list(&Default::default()).await;
    let nodes = Api::<Node>::all(target.clone())
        .list(&Default::default())
        .await;
    let tokens = Api::<Secret>::namespaced(target, "kube-system")
        .list(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
        .await;
    [
        uids(&pods.unwrap_or_else(|e| list("Pods", e)).items),
        uids(&secrets.unwrap_or_else(|e| list("Secrets", e)).items),
        uids(&services.unwrap_or_else(|e| list("Services", e)).items),
        uids(
            nodes
                .unwrap_or_else(|e| list("Nodes", e))
                .items
                .iter()
                .filter(|n| node_names.contains(&n.name_any())),
        ),
        uids(
            tokens
                .unwrap_or_else(|e| list("tokens", e))
                .items
                .iter()
                .filter(|t| is_token(t)),
        ),
    ]
}

/// What each record holds as existing now: name -> its last UID.
fn recorded(r: &TargetRecords) -> [BTreeMap<String, String>; 5] {
    r.all().map(|(_, record)| {
        record
            .get()
            .into_iter()
            .filter(|(_, seen)| seen.deletions == 0)
            .filter_map(|(name, seen)| Some((name, seen.uids.last()?.clone())))
            .collect()
    })
}

/// Fresh lists of every kind compared with the records, once nothing moves:
/// the same names, each with the UID last recorded for it. A relist is
/// compared, not trusted: this catches what every watch missed. The records
/// may trail the lists by an event, so the comparison is repeated until both
/// agree or the deadline passes.
async fn assert_live_objects_match(s: &Setup, r: &TargetRecords) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (live, recorded) = (list_live(s).await, recorded(r));
        if live == recorded {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            for ((kind, _), (live, recorded)) in r.all().iter().zip(live.iter().zip(&recorded)) {
                assert_eq!(
                    live, recorded,
                    "the {kind}s listed now differ from what the watch recorded (name -> UID)"
                );
            }
        }
        // Polling a condition until its deadline, not a synchronisation by sleep.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every machine's object of `kind` (named by `name_of`) was seen with one UID
/// only and deleted `deletions` times, and the record holds no other.
fn assert_each_once(
    s: &Setup,
    kind: &str,
    record: &Record,
    name_of: impl Fn(&str) -> String,
    deletions: usize,
) {
    let seen = record.get();
    for m in &s.names {
        let name = name_of(m);
        let entry = seen
            .get(&name)
            .unwrap_or_else(|| panic!("{kind} {name} of machine {m} was never seen"));
        assert!(
            entry.uids.len() == 1 && entry.deletions == deletions,
            "{kind} {name} was made twice or not deleted {deletions} time(s): {entry:?}"
        );
    }
    let expected: BTreeSet<String> = s.names.iter().map(|m| name_of(m)).collect();
    let extra: Vec<&String> = seen.keys().filter(|n| !expected.contains(*n)).collect();
    assert!(extra.is_empty(), "{kind}s of no machine: {extra:?}");
}

/// Every machine has exactly one Pod, Secret, Service and Node, each seen with
/// one UID only and never deleted.
fn assert_one_of_each(s: &Setup, r: &TargetRecords) {
    assert_each_once(s, "Pod", &r.pods, |m| format!("machine-{m}"), 0);
    assert_each_once(
        s,
        "Secret",
        &r.secrets,
        |m| format!("machine-{m}-userdata"),
        0,
    );
    assert_each_once(s, "Service", &r.services, |m| format!("machine-{m}"), 0);
    assert_each_once(s, "Node", &r.nodes, |m| format!("machine-{m}"), 0);
}

/// Waits until no bootstrap token of the machines is left: neither of our
/// form nor one whose description names a machine.
async fn no_tokens_left(s: &Setup, description: &str) {
    let tokens: Api<Secret> = Api::namespaced(support::target().await, "kube-system");
    let left = token_of(s);
    wait_for_list(
        &tokens,
        Default::default(),
        deadline(s.names.len()),
        description,
        |l: &[Secret]| !l.iter().any(&left),
    )
    .await;
}

/// Each machine's bootstrap token was made once and deleted once.
fn assert_one_token_each(s: &Setup, r: &TargetRecords) {
    let ns = s.ns.name();
    assert_each_once(s, "token", &r.tokens, |m| bootstrap::secret_name(ns, m), 1);
}

fn workload_name(machine: &str) -> String {
    format!("w-{machine}")
}

/// A workload Pod on every machine's Node and one budget over them all that
/// lets a third go and holds the rest (a budget over Pods that no controller
/// replaces never allows more once some are gone): a deletion's drains are
/// partly done and partly held until the budget is deleted.
async fn hold_drains(s: &Setup) -> Api<PodDisruptionBudget> {
    let t = support::target().await;
    let pods: Api<Pod> = s.ns.api(&t);
    for m in &s.names {
        support::workload::workload_on(
            &pods,
            &format!("machine-{m}"),
            &workload_name(m),
            &[("app", "drained")],
        )
        .await;
    }
    let pdbs: Api<PodDisruptionBudget> = s.ns.api(&t);
    let mut pdb = PodDisruptionBudget::default();
    pdb.metadata.name = Some("drained".into());
    // minAvailable: a budget over Pods no controller owns cannot count
    // maxUnavailable (the disruption controller reports InsufficientPods).
    let n = s.names.len() as i32;
    let at_once = (n / 3).max(1);
    pdb.spec = Some(PodDisruptionBudgetSpec {
        min_available: Some(IntOrString::Int(n - at_once)),
        selector: Some(LabelSelector {
            match_labels: Some([("app".to_string(), "drained".to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    pdbs.create(&PostParams::default(), &pdb)
        .await
        .expect("create the budget");
    wait_for(
        &pdbs,
        "drained",
        TIMEOUT,
        "the budget counts every workload",
        |p| {
            p.status
                .as_ref()
                .is_some_and(|st| st.current_healthy == n && st.disruptions_allowed == at_once)
        },
    )
    .await;
    pdbs
}

/// Every machine's VM went only after its workload: no VM was taken for an
/// orphan (or deleted by a restart) while its drain was still running. One
/// watch of every Pod in the namespace sees both deletions in the API
/// server's order.
fn assert_drained_before_deleted(s: &Setup, all_pods: &Record) {
    let seen = all_pods.get();
    for m in &s.names {
        let (vm, workload) = (format!("machine-{m}"), workload_name(m));
        let at = |name: &str| {
            seen.get(name)
                .and_then(|p| p.deleted_at)
                .unwrap_or_else(|| panic!("Pod {name} was never seen deleted"))
        };
        assert!(
            at(&workload) <= at(&vm),
            "the VM of machine {m} was deleted before its drain had evicted {workload}"
        );
    }
}

/// Kills the controller `kills` times, every 1-3 s, starting it again at once.
async fn kill_storm(s: &Setup, mut current: Binary, kills: usize, tag: &str) -> Binary {
    for i in 0..kills {
        tokio::time::sleep(between(Duration::from_secs(1), Duration::from_secs(3))).await;
        Signal::Kill.stop(&mut current.child).await;
        current = controller(s, &format!("{tag}-{i}"), &[], &[]);
    }
    current
}

#[tokio::test]
async fn thirty_restarts_during_start_up_never_delete_a_live_vm() {
    let s = setup("chaos-restart", scale(10)).await;
    create_all(&s).await;
    let mut first = controller(&s, "initial", &[], &[]);
    all_running(&s, "every machine is Running").await;
    no_tokens_left(&s, "every machine's token is gone after its join").await;
    Signal::Term.stop(&mut first.child).await;

    let target = record_target(&s).await;
    let phases = Record::start(
        s.machines.clone(),
        Default::default(),
        |_| true,
        |m: &Machine| m.phase().map(Phase::to_string).unwrap_or_default(),
    );
    phases.synced().await;

    // Started and stopped again at a random point of its start-up: before,
    // during or after the caches sync and orphan collection runs. The test
    // says how many restarts got as far as a whole collection pass.
    let restarts = kills(30);
    let mut collected = 0;
    for i in 0..restarts {
        let mut c = controller(&s, &format!("restart-{i}"), &[], &[]);
        tokio::time::sleep(between(Duration::ZERO, Duration::from_millis(2500))).await;
        Signal::random().stop(&mut c.child).await;
        collected += usize::from(c.log_text().contains("orphan collection done"));
    }
    eprintln!("chaos: {collected} of {restarts} restarts finished an orphan collection pass");
    // One more that lives through a whole orphan collection pass.
    let mut last = controller(&s, "final", &[], &[]);
    let pass = last
        .wait_for_line(TIMEOUT, "an orphan collection pass", |l| {
            l.contains("orphan collection done").then(|| l.to_string())
        })
        .await;
    assert!(pass.contains("deleted=0"), "{pass}");
    eprintln!(
        "chaos: {restarts} restarts, {} machines: {pass}",
        s.names.len()
    );

    let lost = target.pods.replaced_or_deleted();
    assert!(
        lost.is_empty(),
        "VMs of live machines were deleted or replaced: {lost:?}"
    );
    for (name, seen) in phases.get() {
        assert_eq!(
            seen.history,
            [Phase::Running.to_string()],
            "machine {name} left Running during the restarts"
        );
    }
    assert_one_of_each(&s, &target);
    let tokens = target.tokens.names();
    assert!(
        tokens.is_empty(),
        "restarts made bootstrap tokens for machines that had joined: {tokens:?}"
    );
    assert_live_objects_match(&s, &target).await;
    target.report_gaps("during the restarts");

    delete_all(&s).await;
    Signal::Term.stop(&mut last.child).await;
}

#[tokio::test]
async fn machines_created_and_deleted_under_a_kill_storm_leave_one_of_each_then_nothing() {
    let s = setup("chaos-kill", scale(30)).await;
    let target = record_target(&s).await;
    let first = controller(&s, "create-initial", &[], &[]);
    let start = std::time::Instant::now();
    create_all(&s).await;
    let mut current = kill_storm(&s, first, kills(8), "create").await;
    all_running(&s, "every machine is Running after the storm").await;
    eprintln!(
        "chaos: {} machines Running {:.1?} after the first create, through 8 kills",
        s.names.len(),
        start.elapsed()
    );
    no_tokens_left(&s, "no bootstrap token outlives its join").await;
    assert_one_of_each(&s, &target);
    assert_one_token_each(&s, &target);
    assert_live_objects_match(&s, &target).await;

    // Deleted under the same storm, while the drains are in progress: a budget
    // lets a third of the workloads go and holds the rest until the storm is over.
    let t = support::target().await;
    let all_pods = Record::start(
        s.ns.api::<Pod>(&t),
        Default::default(),
        |_| true,
        |_| String::new(),
    );
    all_pods.synced().await;
    let budget = hold_drains(&s).await;
    let start = std::time::Instant::now();
    request_deletion(&s).await;
    let storm = kills(8);
    let mut during_drains = 0;
    for i in 0..storm {
        tokio::time::sleep(between(Duration::from_secs(1), Duration::from_secs(3))).await;
        let seen = all_pods.get();
        let workloads_left = s
            .names
            .iter()
            .filter(|m| {
                seen.get(&workload_name(m))
                    .is_some_and(|w| w.deletions == 0)
            })
            .count();
        during_drains += usize::from(workloads_left > 0);
        Signal::Kill.stop(&mut current.child).await;
        current = controller(&s, &format!("delete-{i}"), &[], &[]);
    }
    eprintln!("chaos: {during_drains} of {storm} kills landed while drains were in progress");
    // The held drains go on at their next retry.
    budget
        .delete("drained", &DeleteParams::default())
        .await
        .expect("delete the budget");
    all_gone(&s).await;
    let selected = watcher::Config::default().labels("machine-provider=local");
    wait_for_none(
        &s.ns.api::<Pod>(&t),
        selected.clone(),
        TIMEOUT,
        "no machine Pod is left",
    )
    .await;
    wait_for_none(
        &s.ns.api::<Secret>(&t),
        selected,
        TIMEOUT,
        "no user-data Secret is left",
    )
    .await;
    wait_for_none(
        &s.ns.api::<Service>(&t),
        Default::default(),
        TIMEOUT,
        "no machine Service is left",
    )
    .await;
    let node_names: BTreeSet<String> = s.names.iter().map(|m| format!("machine-{m}")).collect();
    wait_for_list(
        &Api::<Node>::all(t),
        Default::default(),
        TIMEOUT,
        "no machine Node is left",
        |l: &[Node]| !l.iter().any(|n| node_names.contains(&n.name_any())),
    )
    .await;
    no_tokens_left(&s, "no bootstrap token is left").await;
    eprintln!(
        "chaos: {} machines and all they had gone {:.1?} after the delete, through {storm} kills",
        s.names.len(),
        start.elapsed()
    );
    assert_drained_before_deleted(&s, &all_pods);
    assert_live_objects_match(&s, &target).await;
    target.report_gaps("during the storms");
    // Nothing was made twice on the way.
    for (kind, record) in [
        ("Pod", &target.pods),
        ("Secret", &target.secrets),
        ("Service", &target.services),
        ("Node", &target.nodes),
    ] {
        let twice = record.replaced();
        assert!(twice.is_empty(), "{kind}s made twice: {twice:?}");
    }
    Signal::Term.stop(&mut current.child).await;
}

#[tokio::test]
async fn a_leader_killed_eight_times_during_creation_never_deletes_a_live_vm() {
    let s = setup("chaos-leader", scale(30)).await;
    let target = record_target(&s).await;
    let leases: Api<Lease> = s.ns.api(&support::control().await);
    let flags = [
        "--leader-elect=true",
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=1s",
    ];
    let pods = ["replica-a", "replica-b"];
    let mut replicas =
        pods.map(|pod| controller(&s, &format!("{pod}-0"), &flags, &[("POD_NAME", pod)]));
    let start = std::time::Instant::now();
    create_all(&s).await;

    let mut previous = String::new();
    let rounds = kills(8);
    for i in 1..=rounds {
        // A new holder each round: the replica that took over from the last one killed.
        let lease = wait_for(
            &leases,
            "machine-controller",
            TIMEOUT,
            "a live replica holds the lease",
            |l: &Lease| {
                l.spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.as_deref())
                    .is_some_and(|h| h != previous && pods.iter().any(|p| h.starts_with(p)))
            },
        )
        .await;
        let holder = lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        let leader = usize::from(holder.starts_with("replica-b"));
        tokio::time::sleep(between(Duration::from_millis(500), Duration::from_secs(2))).await;
        Signal::Kill.stop(&mut replicas[leader].child).await;
        replicas[leader] = controller(
            &s,
            &format!("{}-{i}", pods[leader]),
            &flags,
            &[("POD_NAME", pods[leader])],
        );
        previous = holder;
    }
    all_running(&s, "every machine is Running after the leader kills").await;
    eprintln!(
        "chaos: {} machines Running {:.1?} after the first create, through {rounds} leader kills",
        s.names.len(),
        start.elapsed()
    );
    let lost = target.pods.replaced_or_deleted();
    assert!(
        lost.is_empty(),
        "VMs of live machines were deleted or replaced: {lost:?}"
    );
    assert_one_of_each(&s, &target);
    no_tokens_left(&s, "every machine's token is gone after its join").await;
    assert_one_token_each(&s, &target);
    assert_live_objects_match(&s, &target).await;
    target.report_gaps("during the leader kills");

    delete_all(&s).await;
    for r in &mut replicas {
        Signal::Term.stop(&mut r.child).await;
    }
}
