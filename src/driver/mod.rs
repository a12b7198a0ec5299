// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The driver interface of MCM (`pkg/util/provider/driver`): six calls a provider
//! implements, and errors that carry a machine code.

pub(crate) mod instrumented;
pub(crate) mod local;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use k8s_openapi::api::core::v1::{NodeAddress, PersistentVolumeSpec};

use crate::api::{Machine, MachineClass};

/// The gRPC status codes plus MCM's `Uninitialized`; `Display` prints MCM's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Ok,
    Canceled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
    Uninitialized,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Canceled => "Canceled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
            Code::Uninitialized => "Uninitialized",
        }
    }

    /// Every code, in gRPC's order (MCM's `codes` package).
    pub const ALL: [Code; 18] = [
        Code::Ok,
        Code::Canceled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
        Code::Uninitialized,
    ];

    /// The code named as [`Code::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Codes after which MCM retries soon rather than in minutes.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Code::Unknown | Code::DeadlineExceeded | Code::Aborted | Code::Unavailable
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a driver call, printed exactly as MCM prints a machine status error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("machine codes error: code = [{code}] message = [{message}]")]
pub struct MachineError {
    pub code: Code,
    pub message: String,
    /// The cloud profile's rule that made this error on purpose; `None` for
    /// an error the driver met. Counted apart (see `InstrumentedDriver`).
    pub injected: Option<String>,
}

impl MachineError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        MachineError {
            code,
            message: message.into(),
            injected: None,
        }
    }

    /// An error the local cloud answers on purpose, because `rule` fired.
    pub fn injected(code: Code, message: impl Into<String>, rule: impl Into<String>) -> Self {
        MachineError {
            injected: Some(rule.into()),
            ..MachineError::new(code, message)
        }
    }
}

/// Merged data of the class's secrets (credentials win).
pub(crate) type SecretData = BTreeMap<String, Vec<u8>>;

pub struct MachineRequest<'a> {
    pub machine: &'a Machine,
    pub class: &'a MachineClass,
    pub secret: &'a SecretData,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MachineResponse {
    pub provider_id: String,
    pub node_name: String,
    pub addresses: Vec<NodeAddress>,
    pub last_known_state: String,
    /// When the VM was made, if the provider says: a Node older than its VM
    /// cannot be that VM's (see `creation::plan::stale_node`).
    pub created: Option<jiff::Timestamp>,
}

/// What DeleteMachine achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The VM is gone.
    Gone,
    /// Its deletion has begun and goes on. The controller writes nothing and asks
    /// again when the driver's watch reports a change (or soon, without one).
    Going,
}

/// One item of a driver's watch ([`Driver::watch`]), as the controller needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmWatchItem {
    /// The driver's cache holds its first full list: decisions may read it.
    Listed,
    /// The VM of this machine (by name) changed: the machine is looked at again.
    Changed(String),
    /// Nothing to act on (a change of no machine's VM).
    Other,
    /// The watch failed (it retries with backoff).
    Failed,
}

/// A watch the controller runs for a driver whose calls read a cache of VMs.
pub struct VmWatch {
    /// Names the cache in readiness, health and logs.
    pub name: &'static str,
    /// Runs the watch while polled; the driver's cache is filled before each item
    /// is yielded, so `Listed` means the cache is full. A driver may merge in
    /// watches it starts later (the local driver's, of clusters that classes
    /// name): their changes wake machines, but `Listed` and `Failed` speak of
    /// the cache the controller waits for at start only.
    pub items: futures::stream::BoxStream<'static, VmWatchItem>,
}

/// providerID -> machine name.
pub(crate) type MachineList = BTreeMap<String, String>;

/// What a live read says of one VM: enough to judge whether it may be deleted
/// as an orphan, and to delete exactly that VM and no successor of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmFacts {
    /// Unique per VM, also across VMs of one name (a Pod's UID).
    pub uid: String,
    pub created: Option<jiff::Timestamp>,
    /// Deletion has begun.
    pub deleting: bool,
    /// The control namespace the VM says it was made for, if it says.
    pub control_namespace: Option<String>,
}

pub(crate) type DriverResult<T> = Result<T, MachineError>;

/// Not in MCM: what keeps a VM from running, as [`Driver::vm_trouble`] tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmTrouble {
    /// The provider's own word for it (`ImagePullBackOff`, `Unschedulable` ...).
    pub reason: String,
    /// What the machine shows once the trouble is reported.
    pub error: MachineError,
    /// When it began, as the provider records it (so that a restart of the
    /// controller does not start the clock again); `None` when the provider
    /// does not say, and then it is reported at once.
    pub since: Option<jiff::Timestamp>,
}

/// The six calls of MCM's driver interface, and what the controller must know
/// beyond them: what to watch, where VMs live, and what orphan collection reads.
///
/// A new driver implements this trait in a module of its own under `driver/`
/// (see [`local`]), and `main.rs` constructs it; `controller/` needs no change.
pub trait Driver: Send + Sync + 'static {
    /// The provider name: the class's `provider`, and the `provider` label of
    /// MCM's driver metrics.
    const PROVIDER: &'static str;

    /// Whether the driver made this Secret itself (say, user data in the control
    /// namespace when control and target are one cluster): such Secrets are no
    /// input and stay out of the controller's Secret cache.
    fn made_secret(_secret: &k8s_openapi::api::core::v1::Secret) -> bool
    where
        Self: Sized,
    {
        false
    }

    /// The watch whose changes wake machines; taken once, at start. `None`: the
    /// driver reads no cache, and machines are looked at on their own events only.
    fn watch(&self) -> Option<VmWatch> {
        None
    }

    /// Creates the VM; must be idempotent.
    fn create_machine(
        &self,
        req: &MachineRequest<'_>,
    ) -> impl Future<Output = DriverResult<MachineResponse>> + Send;
    /// Post-creation setup; `Unimplemented` when there is none.
    fn initialize_machine(
        &self,
        req: &MachineRequest<'_>,
    ) -> impl Future<Output = DriverResult<MachineResponse>> + Send;
    /// Deletes the VM; `NotFound` when there is none. A driver need not block
    /// until the VM is gone: it may answer [`Deletion::Going`] and be asked again.
    fn delete_machine(
        &self,
        req: &MachineRequest<'_>,
    ) -> impl Future<Output = DriverResult<Deletion>> + Send;
    /// `NotFound` when the VM does not exist.
    fn get_machine_status(
        &self,
        req: &MachineRequest<'_>,
    ) -> impl Future<Output = DriverResult<MachineResponse>> + Send;
    /// Every VM this class may have made.
    fn list_machines(
        &self,
        class: &MachineClass,
        secret: &SecretData,
    ) -> impl Future<Output = DriverResult<MachineList>> + Send;
    fn get_volume_ids(
        &self,
        specs: &[PersistentVolumeSpec],
    ) -> impl Future<Output = DriverResult<Vec<String>>> + Send;

    /// Not in MCM: why the VM of a machine that is being created cannot run
    /// (say, its image cannot be pulled), and since when, from what the driver
    /// can read cheaply; `None` when nothing is wrong or the driver cannot tell.
    /// A trouble that outlasts `--machine-vm-trouble-grace` shows on the machine
    /// as a creation failure (CrashLoopBackOff, Failed after the creation
    /// timeout) instead of a wait for a Node that never joins.
    fn vm_trouble(
        &self,
        _req: &MachineRequest<'_>,
    ) -> impl Future<Output = Option<VmTrouble>> + Send {
        async { None }
    }

    /// Not in MCM, for orphan collection: the namespace the VMs of `class` live
    /// in, if the provider has namespaces. `None`: the provider has none.
    fn vm_namespace(&self, _class: &MachineClass) -> Option<String> {
        None
    }

    /// Not in MCM, for orphan collection: a live read (never a cache) of a VM
    /// that `list_machines` listed; `None` when it is gone. A driver that cannot
    /// tell answers `Unimplemented`, and its orphans are never deleted.
    fn vm_facts(
        &self,
        _class: &MachineClass,
        _secret: &SecretData,
        _provider_id: &str,
    ) -> impl Future<Output = DriverResult<Option<VmFacts>>> + Send {
        async { Err(MachineError::new(Code::Unimplemented, "vm_facts")) }
    }

    /// Not in MCM, for orphan collection: deletes the VM `provider_id` only if
    /// it is still the one with `uid` (a precondition the provider checks).
    /// `NotFound` when it is gone, `FailedPrecondition` when it is another VM.
    fn delete_vm(
        &self,
        _class: &MachineClass,
        _secret: &SecretData,
        _provider_id: &str,
        _uid: &str,
    ) -> impl Future<Output = DriverResult<()>> + Send {
        async { Err(MachineError::new(Code::Unimplemented, "delete_vm")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_from_its_name() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
        assert_eq!(Code::parse("resourceexhausted"), None);
    }

    #[test]
    fn prints_like_mcm() {
        let err = MachineError::new(Code::NotFound, "pod default/machine-a not found");
        assert_eq!(
            err.to_string(),
            "machine codes error: code = [NotFound] message = [pod default/machine-a not found]"
        );
        assert_eq!(Code::Uninitialized.to_string(), "Uninitialized");
        assert!(Code::Unavailable.is_transient());
        assert!(!Code::InvalidArgument.is_transient());
    }
}
