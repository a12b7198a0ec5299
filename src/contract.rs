// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Every name and text that other components (MCM, cluster-autoscaler, dashboards)
//! read from or write to our objects. They are MCM v0.62.1's, spelled once here so
//! that nobody types a finalizer or a lastOperation text twice.

/// Finalizer on Machines and MachineClasses.
pub const MACHINE_FINALIZER: &str = "machine.sapcloud.io/machine-controller-manager";
/// Finalizer on Secrets referenced by a MachineClass.
pub const SECRET_FINALIZER: &str = "machine.sapcloud.io/machine-controller";
/// Finalizer on Nodes that belong to a Machine.
pub const NODE_FINALIZER: &str = "node.machine.sapcloud.io/machine-controller";
/// gardener-resource-manager keeps this NoSchedule taint on a Node until its
/// critical components (CNI, CSI …) run; MCM keeps the machine Pending meanwhile.
pub const CRITICAL_COMPONENTS_NOT_READY_TAINT: &str =
    "node.gardener.cloud/critical-components-not-ready";

/// Machine label holding the node name.
pub const NODE_LABEL: &str = "node";
/// Machine label naming the MachineDeployment (written by MCM, read here).
pub const DEPLOYMENT_NAME_LABEL: &str = "name";
/// Machine label that forces deletion (drain with grace 0).
pub const FORCE_DELETION_LABEL: &str = "force-deletion";
/// Machine label that forces the drain of an in-place update or of a preserved
/// machine's Node (MCM reads it as `"True"` exactly).
pub const FORCE_DRAIN_LABEL: &str = "force-drain";
/// Machine annotation used by MachineSets to pick victims on scale-down.
pub const MACHINE_PRIORITY_ANNOTATION: &str = "machinepriority.machine.sapcloud.io";
pub const DEFAULT_MACHINE_PRIORITY: &str = "3";
pub const JOIN_DURATION_ANNOTATION: &str = "node.machine.sapcloud.io/machine-join-duration";
pub const EFFECTIVE_CREATION_TIMEOUT_ANNOTATION: &str =
    "node.machine.sapcloud.io/effective-creation-timeout";

/// Node label naming its Machine.
pub const NODE_MACHINE_NAME_LABEL: &str = "node.gardener.cloud/machine-name";
/// MCM's record of the class's virtual capacity last put on a Node.
pub const LAST_APPLIED_VIRTUAL_CAPACITY_ANNOTATION: &str =
    "node.machine.sapcloud.io/last-applied-virtual-capacity";
pub const LAST_APPLIED_ALT_ANNOTATION: &str =
    "node.machine.sapcloud.io/last-applied-anno-labels-taints";
pub const NOT_MANAGED_BY_MCM_ANNOTATION: &str = "node.machine.sapcloud.io/not-managed-by-mcm";
/// Node condition set while a machine is being drained.
pub const NODE_TERMINATING_CONDITION: &str = "Terminating";
pub const NODE_TERMINATING_REASON_SCALE_DOWN: &str = "ScaleDown";
pub const NODE_TERMINATING_REASON_UNHEALTHY: &str = "Unhealthy";

/// Lease used for leader election in `--namespace`.
/// MCM v0.62.1's machine preservation (`machineutils`, `machine_types.go`,
/// `autoscaler/types.go`).
pub mod preserve {
    /// On a Machine or its Node: `now`, `when-failed`, `auto-preserved`, `false`.
    pub const ANNOTATION: &str = "node.machine.sapcloud.io/preserve";
    /// On a Machine: the Node's value last applied, so that its removal is seen.
    pub const LAST_APPLIED_NODE_VALUE: &str =
        "node.machine.sapcloud.io/last-applied-node-preserve-value";
    /// The Node condition type.
    pub const CONDITION: &str = "Preserved";
    pub const BY_MCM: &str = "Preserved by MCM.";
    pub const BY_USER: &str = "Preserved by user.";
    pub const STOPPED: &str = "Preservation stopped.";
    pub const DRAINED: &str = "Preserved node drained successfully.";
    pub const NOT_DRAINED: &str = "Preserved node could not be drained.";
    pub const UNTIL: &str = "Machine preserved until";
    /// cluster-autoscaler leaves a Node with this annotation alone.
    pub const SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
    /// Says that MCM set the one above, so that it may remove it.
    pub const SCALE_DOWN_DISABLED_BY_MCM: &str =
        "cluster-autoscaler.kubernetes.io/scale-down-disabled-by-mcm";
}

pub const LEASE_NAME: &str = "machine-controller";
/// Field manager of every write we make.
pub const FIELD_MANAGER: &str = "machine-controller";

pub const BOOTSTRAP_TOKEN_PLACEHOLDER: &str = "<<BOOTSTRAP_TOKEN>>";
/// `url.QueryEscape("<<BOOTSTRAP_TOKEN>>")` as MCM computes it.
pub const BOOTSTRAP_TOKEN_PLACEHOLDER_URL: &str = "%3C%3CBOOTSTRAP_TOKEN%3E%3E";
pub const MACHINE_NAME_PLACEHOLDER: &str = "<<MACHINE_NAME>>";
pub const MACHINE_NAME_PLACEHOLDER_URL: &str = "%3C%3CMACHINE_NAME%3E%3E";
/// Key of the user data in the class secret.
pub const USER_DATA_KEY: &str = "userData";

mod status;
/// `status.currentStatus.phase`, `status.lastOperation.state` and `.type`.
pub use status::{OpState, OpType, Phase};

/// MCM v0.62.1's in-place update protocol (`v1alpha1/constants.go`,
/// `machine_types.go`): MCM's MachineSet labels a Node, the machine controller
/// turns the labels into the `InPlaceUpdate` condition and drains, and
/// gardener-node-agent updates the machine and reports by a label.
pub mod inplace {
    pub const CANDIDATE_LABEL: &str = "node.machine.sapcloud.io/candidate-for-update";
    pub const SELECTED_LABEL: &str = "node.machine.sapcloud.io/selected-for-update";
    pub const RESULT_LABEL: &str = "node.machine.sapcloud.io/update-result";
    pub const RESULT_SUCCESSFUL: &str = "successful";
    pub const RESULT_FAILED: &str = "failed";
    pub const FAILED_REASON_ANNOTATION: &str = "node.machine.sapcloud.io/update-failed-reason";
    /// The Node condition type and its reasons.
    pub const CONDITION: &str = "InPlaceUpdate";
    pub const CANDIDATE: &str = "CandidateForUpdate";
    pub const SELECTED: &str = "SelectedForUpdate";
    pub const READY: &str = "ReadyForUpdate";
    pub const DRAINED: &str = "DrainSuccessful";
    pub const SUCCESSFUL: &str = "UpdateSuccessful";
    pub const FAILED: &str = "UpdateFailed";
}

/// Deletion steps. The Go controller keys its deletion state machine on
/// `lastOperation.description` containing one of these, so every description we
/// write during deletion ends with the name of the next step.
pub mod step {
    pub const GET_VM_STATUS: &str = "Set machine status to termination. Now, getting VM Status";
    pub const INITIATE_DRAIN: &str = "Initiate node drain";
    pub const DELETE_VOLUME_ATTACHMENTS: &str = "Delete Volume Attachments";
    pub const INITIATE_VM_DELETION: &str = "Initiate VM deletion";
    pub const INITIATE_NODE_DELETION: &str = "Initiate node object deletion";
    pub const INITIATE_FINALIZER_REMOVAL: &str = "Initiate machine object finalizer removal";
}

/// Every lastOperation description and condition message, once.
pub mod text;

/// Labels on everything the local driver creates in the target cluster.
pub mod local {
    pub const PROVIDER: &str = "local";
    pub const LABEL_PROVIDER: &str = "machine-provider";
    pub const LABEL_APP: &str = "app";
    pub const APP_MACHINE: &str = "machine";
    pub const LABEL_MACHINE: &str = "machine";
    pub const NAME_PREFIX: &str = "machine-";
    pub const USER_DATA_SECRET_KEY: &str = "userdata";
    /// The user data Secret is mounted here, so that its key `userdata` is the
    /// file `/etc/machine/userdata` that gardener's machine image runs.
    pub const USER_DATA_MOUNT: &str = "/etc/machine";
    /// Mode of that file: the image runs it directly.
    pub const USER_DATA_MODE: i32 = 0o777;
    pub const CONTAINER_NAME: &str = "node";
    /// Ours, not gardener's: the control namespace whose machine the Pod plays.
    /// Where classes put Pods in a namespace of their own (`infra-<id>`), it is
    /// the only sign of whose VM a Pod is; orphan collection deletes there only
    /// Pods that carry ours.
    pub const CONTROL_NAMESPACE_ANNOTATION: &str = "local.machine.sapcloud.io/control-namespace";
    /// The port the shoot's VPN reaches the machine on (gardener's provider-local).
    pub const VPN_PORT: i32 = 30123;
    pub const VPN_PORT_NAME: &str = "vpn-shoot";
    /// Ready once the machine's kubelet has registered its Node (gardener's probe).
    pub const READINESS_COMMAND: &str =
        "/usr/bin/kubectl --kubeconfig /var/lib/kubelet/kubeconfig-real get no $NODE_NAME";
    /// Ours, not gardener's: the class a Pod was made for, so that the local
    /// cloud counts a class's VMs against its instance quota. A name longer
    /// than a label value allows is shortened with a hash (`class_label_value`).
    pub const LABEL_CLASS: &str = "local.machine.sapcloud.io/class";
    /// A VM's place and type, from its class's `nodeTemplate`, as a cloud's VM
    /// carries them; the local cluster's kubelet stand-in puts them on the
    /// Node, as a cloud's kubelet or cloud-controller-manager does.
    pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
    pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
    pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
    /// The VM's size (the class's `nodeTemplate.capacity`, JSON), which the
    /// stand-in reports as the Node's capacity and allocatable.
    pub const CAPACITY_ANNOTATION: &str = "local.machine.sapcloud.io/capacity";
    /// What becomes of the VM once made, chosen by the class's cloud profile
    /// (`pod-fails`, `never-joins`, `not-ready-after=<seconds>s`); the local
    /// cluster's kubelet stand-in plays it.
    pub const BOOT_FAULT_ANNOTATION: &str = "local.machine.sapcloud.io/boot-fault";
    pub const CREDENTIALS_KUBECONFIG_KEY: &str = "kubeconfig";
    pub const IPV4_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv4pools";
    pub const IPV6_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv6pools";

    /// Pod, Service and node name of a machine.
    pub fn pod_name(machine: &str) -> String {
        format!("{NAME_PREFIX}{machine}")
    }
    pub fn user_data_secret_name(machine: &str) -> String {
        format!("{NAME_PREFIX}{machine}-userdata")
    }
}
