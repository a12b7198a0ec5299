// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Command-line options: MCM's flag names and defaults, each also an env var.

use std::time::Duration;

use clap::{Parser, ValueEnum};

fn duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Machine controller for Gardener's machine-controller-manager with the `local`
/// driver: every Machine becomes a Pod in the target cluster.
#[derive(Clone, Debug, Parser)]
#[command(name = "machine-controller", version)]
pub struct Options {
    /// Kubeconfig of the cluster holding Machines, MachineClasses and Secrets;
    /// `inClusterConfig` (or empty) uses the Pod's service account.
    #[arg(long, env = "CONTROL_KUBECONFIG", default_value = "")]
    pub control_kubeconfig: String,
    /// Kubeconfig of the cluster the machines join; `none` runs without one.
    #[arg(long, env = "TARGET_KUBECONFIG", default_value = "")]
    pub target_kubeconfig: String,
    /// Namespace of the Machines in the control cluster.
    #[arg(long, env = "CONTROL_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Port of /healthz, /readyz and /metrics.
    #[arg(long, env = "PORT", default_value_t = 10259)]
    pub port: u16,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "ADDRESS", default_value = "0.0.0.0")]
    pub address: String,
    /// Machines reconciled at once.
    #[arg(long, env = "CONCURRENT_SYNCS", default_value_t = 50)]
    pub concurrent_syncs: u16,
    /// Resync of every watched object.
    #[arg(long, env = "MIN_RESYNC_PERIOD", default_value = "12h", value_parser = duration)]
    pub min_resync_period: Duration,
    /// Requests per second to each API server.
    #[arg(long, env = "KUBE_API_QPS", default_value_t = 20.0)]
    pub kube_api_qps: f32,
    /// Burst of requests to each API server.
    #[arg(long, env = "KUBE_API_BURST", default_value_t = 30)]
    pub kube_api_burst: u32,
    /// How long a machine may take to join before it is Failed.
    #[arg(long, env = "MACHINE_CREATION_TIMEOUT", default_value = "20m", value_parser = duration)]
    pub machine_creation_timeout: Duration,
    /// How long a machine may be Unknown before it is Failed.
    #[arg(long, env = "MACHINE_HEALTH_TIMEOUT", default_value = "10m", value_parser = duration)]
    pub machine_health_timeout: Duration,
    /// After this long since deletion, drain turns to force.
    #[arg(long, env = "MACHINE_DRAIN_TIMEOUT", default_value = "2h", value_parser = duration)]
    pub machine_drain_timeout: Duration,
    /// Eviction attempts of a Pod protected by a PodDisruptionBudget.
    #[arg(long, env = "MACHINE_MAX_EVICT_RETRIES", default_value_t = 360)]
    pub machine_max_evict_retries: i32,
    /// Wait for volumes to detach during drain. Accepted for MCM's flag set; unused,
    /// because the local driver reports no volume IDs to wait for.
    #[arg(long, env = "MACHINE_PV_DETACH_TIMEOUT", default_value = "2m", value_parser = duration)]
    pub machine_pv_detach_timeout: Duration,
    /// Wait for volumes to reattach elsewhere during drain. Accepted; unused, as above.
    #[arg(long, env = "MACHINE_PV_REATTACH_TIMEOUT", default_value = "90s", value_parser = duration)]
    pub machine_pv_reattach_timeout: Duration,
    /// Period of orphan VM collection.
    #[arg(long, env = "MACHINE_SAFETY_ORPHAN_VMS_PERIOD", default_value = "15m", value_parser = duration)]
    pub machine_safety_orphan_vms_period: Duration,
    /// Not in MCM: a VM younger than this is never collected as an orphan, even
    /// when its Machine is gone (a Machine and its VM may be made and seen in
    /// any order; collection looks again next period).
    #[arg(long, env = "MACHINE_SAFETY_ORPHAN_VMS_MIN_AGE", default_value = "2m", value_parser = duration)]
    pub machine_safety_orphan_vms_min_age: Duration,
    /// Not in MCM: a VM that cannot run (image pull error, unschedulable, crash
    /// loop, failed Pod) is reported on its machine (CrashLoopBackOff, state
    /// Failed) only once the trouble has lasted this long; until then a Warning
    /// Event. 0 reports at once.
    #[arg(long, env = "MACHINE_VM_TROUBLE_GRACE", default_value = "1m", value_parser = duration)]
    pub machine_vm_trouble_grace: Duration,
    /// Not in MCM: the local cloud's cloud-wide profile, a JSON file read again
    /// whenever it changes: quotas shared by classes (`quota.total`,
    /// `quota.perZone`, `quota.perInstanceType`) and zone outages (`outages`,
    /// zone -> the code its Creates answer). See README, "Simulating a cloud".
    #[arg(long, env = "CLOUD_PROFILE")]
    pub cloud_profile: Option<std::path::PathBuf>,
    /// Period of API server reachability checks.
    #[arg(long, env = "MACHINE_SAFETY_APISERVER_STATUSCHECK_PERIOD", default_value = "1m", value_parser = duration)]
    pub machine_safety_apiserver_statuscheck_period: Duration,
    /// Unreachability after which the controller freezes.
    #[arg(long, env = "MACHINE_SAFETY_APISERVER_STATUSCHECK_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub machine_safety_apiserver_statuscheck_timeout: Duration,
    /// Node conditions that make a machine unhealthy when not False (comma list).
    #[arg(
        long,
        env = "NODE_CONDITIONS",
        default_value = "KernelDeadlock,ReadonlyFilesystem,DiskPressure,NetworkUnavailable"
    )]
    pub node_conditions: String,
    /// Extra groups of the bootstrap tokens (comma list).
    #[arg(long, env = "BOOTSTRAP_TOKEN_AUTH_EXTRA_GROUPS", default_value = "")]
    pub bootstrap_token_auth_extra_groups: String,
    /// Retry after a ResourceExhausted answer from the provider.
    #[arg(long, env = "RESOURCE_EXHAUSTED_RETRY", default_value = "10m", value_parser = duration)]
    pub resource_exhausted_retry: Duration,
    /// Only one replica acts at a time.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub leader_elect: bool,
    #[arg(long, env = "LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub leader_elect_lease_duration: Duration,
    #[arg(long, env = "LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = duration)]
    pub leader_elect_renew_deadline: Duration,
    #[arg(long, env = "LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = duration)]
    pub leader_elect_retry_period: Duration,
    /// The lock leader election uses; MCM v0.62.1 knows only `leases`.
    #[arg(long, env = "LEADER_ELECT_RESOURCE_LOCK", default_value = "leases", value_parser = ["leases"])]
    pub leader_elect_resource_lock: String,

    // MCM v0.62.1 flags without an effect here. They are accepted so that a Go
    // command line (Gardener's, MCM's integration framework) starts this binary
    // unchanged; each help text says why it does nothing.
    /// An InPlaceUpdating machine whose update takes longer is InPlaceUpdateFailed.
    #[arg(long, env = "MACHINE_INPLACE_UPDATE_TIMEOUT", default_value = "20m", value_parser = duration)]
    pub machine_inplace_update_timeout: Duration,
    /// How long a machine annotated for preservation is kept (machines may
    /// set their own `machinePreserveTimeout`).
    #[arg(long, env = "MACHINE_PRESERVE_TIMEOUT", default_value = "96h", value_parser = duration)]
    pub machine_preserve_timeout: Duration,
    /// Accepted, unused: this binary serves the `local` provider only.
    #[arg(long, env = "CLOUD_PROVIDER", default_value = "")]
    pub cloud_provider: String,
    /// Accepted, unused: requests are sent as JSON.
    #[arg(
        long,
        env = "KUBE_API_CONTENT_TYPE",
        default_value = "application/vnd.kubernetes.protobuf"
    )]
    pub kube_api_content_type: String,
    /// Accepted, unused: there is one controller to start.
    #[arg(long, env = "CONTROLLER_START_INTERVAL", default_value = "0s", value_parser = duration)]
    pub controller_start_interval: Duration,
    /// Accepted, unused: there is no pprof endpoint.
    #[arg(long, env = "PROFILING", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub profiling: bool,
    /// Accepted, unused: there is no pprof endpoint.
    #[arg(long, env = "CONTENTION_PROFILING", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub contention_profiling: bool,
    /// Accepted, unused: per-module verbosity is RUST_LOG's job here.
    #[arg(long, env = "VMODULE", default_value = "")]
    pub vmodule: String,
    /// Accepted, unused: log lines are written as they come.
    #[arg(long, env = "LOG_FLUSH_FREQUENCY", default_value = "5s", value_parser = duration)]
    pub log_flush_frequency: Duration,

    /// Log verbosity as in klog (0 info, 4 debug, 6 trace); RUST_LOG wins when set.
    #[arg(long, short = 'v', env = "V", default_value_t = 0)]
    pub v: u8,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Options {
    pub fn node_conditions(&self) -> Vec<String> {
        split_list(&self.node_conditions)
    }

    /// Whether the target cluster is disabled.
    pub fn without_target(&self) -> bool {
        self.target_kubeconfig == "none"
    }
}

/// Splits a comma list, ignoring blanks.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_mcms() {
        let o = Options::try_parse_from(["machine-controller"]).unwrap();
        assert_eq!(o.namespace, "default");
        assert_eq!(o.port, 10259);
        assert_eq!(o.concurrent_syncs, 50);
        assert_eq!(o.kube_api_qps, 20.0);
        assert_eq!(o.kube_api_burst, 30);
        assert_eq!(o.machine_creation_timeout, Duration::from_secs(20 * 60));
        assert_eq!(o.machine_health_timeout, Duration::from_secs(10 * 60));
        assert_eq!(o.machine_drain_timeout, Duration::from_secs(2 * 3600));
        assert_eq!(o.machine_max_evict_retries, 360);
        assert_eq!(o.machine_pv_reattach_timeout, Duration::from_secs(90));
        assert_eq!(o.resource_exhausted_retry, Duration::from_secs(600));
        assert!(o.leader_elect);
        assert_eq!(o.leader_elect_lease_duration, Duration::from_secs(15));
        assert_eq!(
            o.node_conditions(),
            [
                "KernelDeadlock",
                "ReadonlyFilesystem",
                "DiskPressure",
                "NetworkUnavailable"
            ]
        );
    }

    /// Every flag of MCM v0.62.1's machine controller (`pkg/util/provider/app/options`,
    /// its leader-election and klog flags), as a Go command line writes them.
    #[test]
    fn a_go_command_line_with_every_v0_62_1_flag_parses() {
        let o = Options::try_parse_from([
            "machine-controller",
            "--address=0.0.0.0",
            "--bootstrap-token-auth-extra-groups=system:bootstrappers:a",
            "--cloud-provider=local",
            "--concurrent-syncs=30",
            "--contention-profiling",
            "--control-kubeconfig=inClusterConfig",
            "--controller-start-interval=0s",
            "--kube-api-burst=30",
            "--kube-api-content-type=application/vnd.kubernetes.protobuf",
            "--kube-api-qps=20",
            "--leader-elect",
            "--leader-elect-lease-duration=15s",
            "--leader-elect-renew-deadline=10s",
            "--leader-elect-resource-lock=leases",
            "--leader-elect-retry-period=2s",
            "--log-flush-frequency=5s",
            "--machine-creation-timeout=20m",
            "--machine-drain-timeout=2h",
            "--machine-health-timeout=10m",
            "--machine-inplace-update-timeout=20m",
            "--machine-max-evict-retries=360",
            "--machine-preserve-timeout=96h",
            "--machine-pv-detach-timeout=2m",
            "--machine-pv-reattach-timeout=90s",
            "--machine-safety-apiserver-statuscheck-period=1m",
            "--machine-safety-apiserver-statuscheck-timeout=30s",
            "--machine-safety-orphan-vms-period=15m",
            "--min-resync-period=12h",
            "--namespace=shoot--local--a",
            "--node-conditions=ReadonlyFilesystem,KernelDeadlock,DiskPressure",
            "--port=10259",
            "--profiling=false",
            "--resource-exhausted-retry=10m",
            "--target-kubeconfig=/var/run/secrets/gardener.cloud/shoot/generic-kubeconfig/kubeconfig",
            "--v=3",
            "--vmodule=",
        ])
        .unwrap();
        assert!(o.leader_elect, "a bare bool flag means true, as in Go");
        assert!(o.contention_profiling && !o.profiling);
        assert_eq!(o.concurrent_syncs, 30);
        assert_eq!(o.namespace, "shoot--local--a");
        assert_eq!(o.machine_preserve_timeout, Duration::from_secs(96 * 3600));
        // Values Go would reject are refused here too.
        assert!(
            Options::try_parse_from([
                "machine-controller",
                "--leader-elect-resource-lock=configmaps"
            ])
            .is_err()
        );
    }

    #[test]
    fn takes_mcm_flag_names() {
        let o = Options::try_parse_from([
            "machine-controller",
            "--control-kubeconfig=inClusterConfig",
            "--target-kubeconfig=none",
            "--namespace=shoot--a",
            "--concurrent-syncs=5",
            "--machine-creation-timeout=90s",
            "--leader-elect=false",
            "--bootstrap-token-auth-extra-groups=system:bootstrappers:a,b",
            "--v=4",
        ])
        .unwrap();
        assert!(o.without_target());
        assert_eq!(o.concurrent_syncs, 5);
        assert_eq!(o.machine_creation_timeout, Duration::from_secs(90));
        assert!(!o.leader_elect);
        assert_eq!(o.v, 4);
    }

    #[test]
    fn rejects_a_bad_duration_naming_it() {
        let err = Options::try_parse_from(["machine-controller", "--machine-health-timeout=soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
    }
}
