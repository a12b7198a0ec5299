// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The `local` driver: every machine is a Pod (with a user-data Secret and a
//! headless Service) in the target cluster, or in the cluster named by the class
//! credentials' `kubeconfig`.
//!
//! Long because: MCM's six calls and the two of orphan collection share one
//! placement and one error mapping; the objects are built in [`build`], the
//! clusters named by credentials are kept in [`clusters`].

pub(crate) mod build;
pub(crate) mod cloud;
pub(crate) mod cloud_wide;
pub(crate) mod clusters;
pub(crate) mod profile;
pub(crate) mod trouble;
pub(crate) mod watch;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{NodeAddress, PersistentVolumeSpec, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::runtime::reflector::store::Writer;
use kube::{Api, Client};
use tokio::sync::OwnedMutexGuard;

use crate::client::describe;
use crate::client::status;
use cloud::Cloud;
use cloud_wide::Shape;
use profile::{Call, CloudProfile};

use super::{
    Code, Deletion, Driver, DriverResult, MachineError, MachineList, MachineRequest,
    MachineResponse, SecretData, VmFacts, VmTrouble, VmWatch, VmWatchItem,
};
use crate::api::provider_spec::LocalProviderSpec;
use crate::api::{Machine, MachineClass, PodWithStatus};
use crate::contract::{self, local::*};

/// Longest machine name whose Service name (`machine-<name>`) is still a DNS label.
pub(crate) const MAX_MACHINE_NAME_LEN: usize = 63 - NAME_PREFIX.len();

pub struct LocalDriver {
    /// The target cluster, whose machine Pods are watched into its cache once
    /// the controller runs [`Driver::watch`].
    target: Option<(Client, watch::PodCache)>,
    /// Fills the target's cache; taken by [`Driver::watch`].
    pods_writer: Mutex<Option<Writer<PodWithStatus>>>,
    /// Clusters named by class credentials, each watched the same way.
    foreign: clusters::ForeignClusters,
    /// What the classes' cloud profiles make the calls meet.
    cloud: Cloud,
    /// `--cloud-profile`: quotas shared by classes, zone outages.
    cloud_wide: Option<cloud_wide::ProfileFile>,
    /// Where injected boot faults are counted (the driver's calls are
    /// counted by `InstrumentedDriver`).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Where one machine's objects live.
struct Place {
    client: Client,
    namespace: String,
    /// The cluster's machine Pods, once its watch has listed; `None`: ask
    /// `client`.
    cache: Option<watch::PodCache>,
}

impl LocalDriver {
    /// The driver for `target` (none: every class must name its cluster by
    /// a kubeconfig in its credentials).
    pub fn new(target: Option<Client>) -> Self {
        let (target, writer) = match target {
            Some(client) => {
                let (pods, writer) = watch::PodCache::new();
                (Some((client, pods)), Some(writer))
            }
            None => (None, None),
        };
        LocalDriver {
            target,
            pods_writer: Mutex::new(writer),
            foreign: clusters::ForeignClusters::new(None),
            cloud: Cloud::default(),
            cloud_wide: None,
            metrics: None,
        }
    }

    /// Counts injected boot faults in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Quotas shared by classes and zone outages from this file
    /// (`--cloud-profile`), read again whenever it changes.
    pub fn with_cloud_profile(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.cloud_wide = path.map(cloud_wide::ProfileFile::new);
        self
    }

    /// Clients of clusters named by class credentials get the token bucket
    /// `qps`/`burst`, as the controller's own clients do.
    pub fn with_rate(mut self, qps: f32, burst: u32) -> Self {
        self.foreign = clusters::ForeignClusters::new(Some((qps, burst)));
        self
    }

    /// Checks everything about a request that does not need the cluster.
    pub fn validate(class: &MachineClass) -> DriverResult<LocalProviderSpec> {
        if class.provider != PROVIDER {
            return Err(MachineError::new(
                Code::InvalidArgument,
                format!(
                    "requested for provider {:?}, this driver only serves {PROVIDER:?}",
                    class.provider
                ),
            ));
        }
        LocalProviderSpec::parse(&class.provider_spec)
            .map_err(|e| MachineError::new(Code::InvalidArgument, e.to_string()))
    }

    fn check_name(machine: &Machine) -> DriverResult<()> {
        let name = machine.name();
        if name.len() > MAX_MACHINE_NAME_LEN {
            return Err(MachineError::new(
                Code::InvalidArgument,
                format!(
                    "machine name {name:?} is {} characters long; the local driver allows at most {MAX_MACHINE_NAME_LEN} so that {:?} is a valid Service name",
                    name.len(),
                    pod_name(name)
                ),
            ));
        }
        Ok(())
    }

    async fn place(
        &self,
        spec: &LocalProviderSpec,
        machine_namespace: &str,
        secret: &SecretData,
    ) -> DriverResult<Place> {
        let namespace = spec.pod_namespace(machine_namespace).to_string();
        let (client, pods) = match secret.get(CREDENTIALS_KUBECONFIG_KEY) {
            Some(kubeconfig) => {
                let cluster = self.foreign.cluster(kubeconfig).await?;
                (cluster.client, cluster.pods)
            }
            None => self.target.clone().ok_or_else(|| {
                MachineError::new(
                    Code::FailedPrecondition,
                    "no target cluster is configured and the class credentials carry no kubeconfig",
                )
            })?,
        };
        Ok(Place {
            client,
            namespace,
            cache: pods.readable(),
        })
    }

    /// Where the VMs of `class` live (for calls that concern no one machine).
    async fn place_of_class(
        &self,
        class: &MachineClass,
        secret: &SecretData,
    ) -> DriverResult<Place> {
        let spec = Self::validate(class)?;
        let class_ns = class.metadata.namespace.as_deref().unwrap_or("default");
        self.place(&spec, class_ns, secret).await
    }

    async fn find_pod(
        &self,
        place: &Place,
        machine: &str,
    ) -> DriverResult<Option<Arc<PodWithStatus>>> {
        let name = pod_name(machine);
        if let Some(cache) = &place.cache {
            return Ok(cache.get(&place.namespace, &name));
        }
        let pods: Api<PodWithStatus> = Api::namespaced(place.client.clone(), &place.namespace);
        pods.get_opt(&name)
            .await
            .map(|p| p.map(Arc::new))
            .map_err(|e| api_error(&format!("get Pod {}/{name}", place.namespace), e))
    }

    /// providerID and node name are the Pod's name; the addresses are every Pod
    /// IP (as gardener's provider-local reports them) and the Hostname.
    fn response(pod: &PodWithStatus) -> MachineResponse {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let mut ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect())
            .unwrap_or_default();
        if ips.is_empty() {
            ips.extend(status.and_then(|s| s.pod_ip.clone()));
        }
        let mut addresses: Vec<NodeAddress> = ips
            .into_iter()
            .filter(|ip| !ip.is_empty())
            .map(|address| NodeAddress {
                type_: "InternalIP".to_string(),
                address,
            })
            .collect();
        addresses.push(NodeAddress {
            type_: "Hostname".to_string(),
            address: name.clone(),
        });
        MachineResponse {
            provider_id: name.clone(),
            node_name: name,
            addresses,
            last_known_state: String::new(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    fn user_data<'r>(req: &'r MachineRequest<'_>) -> DriverResult<&'r [u8]> {
        req.secret
            .get(contract::USER_DATA_KEY)
            .map(Vec::as_slice)
            .ok_or_else(|| {
                MachineError::new(
                    Code::InvalidArgument,
                    format!(
                        "secret of class {:?} has no {:?} key",
                        req.class.metadata.name.as_deref().unwrap_or_default(),
                        contract::USER_DATA_KEY
                    ),
                )
            })
    }

    /// Applies the Service and the user-data Secret, both owned by the Pod so that
    /// the garbage collector removes them with it.
    async fn ensure_companions(
        &self,
        place: &Place,
        machine: &str,
        pod: &PodWithStatus,
        user_data: &[u8],
    ) -> DriverResult<()> {
        let ns = &place.namespace;
        let owner = build::owner_reference(&pod.metadata).map(|o| vec![o]);
        let mut service = build::service(machine, ns);
        service.metadata.owner_references = owner.clone();
        let mut secret = build::user_data_secret(machine, ns, user_data);
        secret.metadata.owner_references = owner;
        let client = &place.client;
        // Neither needs the other: one round trip for both, as a creation's
        // round trips in a row bound how many machines a worker makes.
        futures::try_join!(
            create_or_apply(client, &service),
            create_or_apply(client, &secret)
        )?;
        Ok(())
    }

    /// Whether the Pod's Secret and Service exist (a crash may have cut creation short).
    async fn companions_exist(&self, place: &Place, machine: &str) -> DriverResult<bool> {
        let ns = &place.namespace;
        let secret_name = user_data_secret_name(machine);
        let secret = Api::<Secret>::namespaced(place.client.clone(), ns)
            .get_metadata_opt(&secret_name)
            .await
            .map_err(|e| api_error(&format!("get Secret {ns}/{secret_name}"), e))?;
        let name = pod_name(machine);
        let service = Api::<Service>::namespaced(place.client.clone(), ns)
            .get_metadata_opt(&name)
            .await
            .map_err(|e| api_error(&format!("get Service {ns}/{name}"), e))?;
        Ok(secret.is_some() && service.is_some())
    }

    /// Deletes the Pod's Service and Secret just before the Pod itself.
    ///
    /// Left to the garbage collector, they go only once the Pod is gone, at a
    /// GET of the Pod and of each of them and a DELETE each (at N=1000 in `make
    /// bench` they outlived the last Machine by up to 23 s); and the Pod's
    /// deletion, while its Service still selects it, makes the endpoint
    /// controllers rewrite the Service's Endpoints and EndpointSlice first. The
    /// VM has mounted its user data already and is about to stop. Best effort:
    /// what fails here the garbage collector still removes after the Pod.
    async fn delete_companions(&self, place: &Place, machine: &str) {
        let ns = &place.namespace;
        let (service, secret) = (pod_name(machine), user_data_secret_name(machine));
        let dp = DeleteParams::default();
        let services = Api::<Service>::namespaced(place.client.clone(), ns);
        let secrets = Api::<Secret>::namespaced(place.client.clone(), ns);
        let (service_result, secret_result) =
            futures::join!(services.delete(&service, &dp), secrets.delete(&secret, &dp));
        for (what, result) in [
            (format!("Service {ns}/{service}"), service_result.map(drop)),
            (format!("Secret {ns}/{secret}"), secret_result.map(drop)),
        ] {
            match result {
                Err(kube::Error::Api(s)) if status::not_found(&s) => {}
                Err(e) => tracing::debug!(
                    "delete {what}: {}; the garbage collector removes it after the Pod",
                    describe(&e)
                ),
                Ok(()) => {}
            }
        }
    }

    async fn prepare(&self, req: &MachineRequest<'_>) -> DriverResult<(LocalProviderSpec, Place)> {
        Self::check_name(req.machine)?;
        let spec = Self::validate(req.class)?;
        let place = self
            .place(&spec, machine_ns(req.machine), req.secret)
            .await?;
        Ok((spec, place))
    }

    /// [`prepare`](Self::prepare), then what the class's cloud profile makes
    /// `call` meet: a wait, maybe an error. Windows run from the machine's
    /// creation, for Delete from its deletion.
    async fn prepare_call(
        &self,
        req: &MachineRequest<'_>,
        call: Call,
    ) -> DriverResult<(LocalProviderSpec, CloudProfile, Place)> {
        let (spec, place) = self.prepare(req).await?;
        let profile = self.cloud.profile(class_name(req.class), &spec, call)?;
        let meta = &req.machine.metadata;
        let start = match call {
            Call::Delete => meta.deletion_timestamp.as_ref(),
            _ => None,
        };
        let start = start.or(meta.creation_timestamp.as_ref());
        Cloud::meet(&profile, call, req.machine.name(), since(start)).await?;
        Ok((spec, profile, place))
    }

    /// Lets one more VM of `class` be made if its zone is up and the class's
    /// and the cloud's quotas allow; the guard holds the quota lock until
    /// that VM exists. VMs are counted live, not from the cache: the cache
    /// may not hold yet the VM this lock admitted a moment ago. Creating a VM
    /// that exists takes no more room.
    async fn admit(
        &self,
        place: &Place,
        class: &MachineClass,
        machine: &str,
        profile: &CloudProfile,
    ) -> DriverResult<Option<OwnedMutexGuard<()>>> {
        let wide = self
            .cloud_wide
            .as_ref()
            .map(|f| f.current())
            .unwrap_or_default();
        let shape = vm_shape(class);
        if let Some(refusal) = wide.outage(shape.zone) {
            return Err(cloud::refused(Call::Create, machine, refusal));
        }
        let class_quota = profile.instance_quota.is_some();
        if !class_quota && !wide.has_quota() {
            return Ok(None);
        }
        let (ns, name) = (&place.namespace, class_name(class));
        let value = build::class_label_value(name);
        // One lock for the whole cloud while it has quotas of its own.
        let key = match wide.has_quota() {
            true => String::new(),
            false => format!("{ns}/{value}"),
        };
        let guard = self.cloud.quota_lock(key).await;
        let own = Some(pod_name(machine));
        if class_quota {
            let lp = ListParams::default().labels(&format!("{LABEL_CLASS}={value}"));
            let vms = Api::<Pod>::namespaced(place.client.clone(), ns)
                .list_metadata(&lp)
                .await
                .map_err(|e| api_error(&format!("list Pods of class {name:?} in {ns}"), e))?;
            if !vms.items.iter().any(|p| p.metadata.name == own) {
                Cloud::admit(profile, name, machine, vms.items.len())?;
            }
        }
        if wide.has_quota() {
            let lp = ListParams::default().labels(&format!("{LABEL_PROVIDER}={PROVIDER}"));
            let vms = Api::<Pod>::all(place.client.clone())
                .list_metadata(&lp)
                .await
                .map_err(|e| api_error("list machine Pods", e))?;
            if !vms.items.iter().any(|p| p.metadata.name == own) {
                let label = |p: &ObjectMeta, key: &str| -> String {
                    p.labels
                        .as_ref()
                        .and_then(|l| l.get(key).cloned())
                        .unwrap_or_default()
                };
                let shapes: Vec<(String, String)> = vms
                    .items
                    .iter()
                    .map(|p| {
                        (
                            label(&p.metadata, LABEL_ZONE),
                            label(&p.metadata, LABEL_INSTANCE_TYPE),
                        )
                    })
                    .collect();
                let existing = shapes.iter().map(|(zone, instance_type)| Shape {
                    zone,
                    instance_type,
                });
                wide.admit(shape, existing)
                    .map_err(|r| cloud::refused(Call::Create, machine, r))?;
            }
        }
        Ok(Some(guard))
    }
}

/// How long ago `time` was (zero when unknown or to come): where a profile's
/// time windows stand.
fn since(
    time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> std::time::Duration {
    crate::duration::age(time.map(|t| &t.0), jiff::Timestamp::now())
}

fn class_name(class: &MachineClass) -> &str {
    class.metadata.name.as_deref().unwrap_or_default()
}

/// Where the class's VMs run and what they are (empty when it names none).
fn vm_shape(class: &MachineClass) -> Shape<'_> {
    let template = class.node_template.as_ref();
    Shape {
        zone: template.map(|t| t.zone.as_str()).unwrap_or_default(),
        instance_type: template
            .map(|t| t.instance_type.as_str())
            .unwrap_or_default(),
    }
}

fn machine_ns(machine: &Machine) -> &str {
    machine.metadata.namespace.as_deref().unwrap_or("default")
}

/// Creates `object` (named and namespaced) as the driver, or applies it where
/// it exists already (a creation cut short, a restart), so that every step
/// stays repeatable; the API server's copy either way. A new machine's objects
/// are created, not applied: an apply costs the API server a managed-fields
/// computation over the whole object (at N=1000 in `make bench`, one run each,
/// no join delay, its CPU over the create phase fell from 84 s to 61 s).
async fn create_or_apply<K>(client: &Client, object: &K) -> DriverResult<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let (ns, name) = (
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default(),
    );
    let api = Api::<K>::namespaced(client.clone(), ns);
    let params = PostParams {
        field_manager: Some(contract::FIELD_MANAGER.into()),
        ..Default::default()
    };
    let created = match api.create(&params, object).await {
        Err(kube::Error::Api(s)) if status::already_exists(&s) => {
            api.patch(name, &apply_params(), &Patch::Apply(object))
                .await
        }
        other => other,
    };
    created.map_err(|e| api_error(&format!("apply {} {ns}/{name}", K::kind(&())), e))
}

fn apply_params() -> PatchParams {
    PatchParams::apply(contract::FIELD_MANAGER).force()
}

/// Maps an API error to a machine code: server trouble is retried soon, the rest is not.
fn api_error(what: &str, e: kube::Error) -> MachineError {
    let code = match &e {
        kube::Error::Api(s) => match s.code {
            404 => Code::NotFound,
            409 => Code::Aborted,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            422 | 400 => Code::InvalidArgument,
            429 | 500.. => Code::Unavailable,
            _ => Code::Internal,
        },
        _ => Code::Unavailable,
    };
    MachineError::new(code, format!("{what}: {}", describe(&e)))
}

impl Driver for LocalDriver {
    const PROVIDER: &'static str = PROVIDER;

    /// Our user-data Secrets: labelled as ours and named after their machine.
    fn made_secret(secret: &Secret) -> bool {
        let labels = secret.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        label(LABEL_PROVIDER) == Some(PROVIDER)
            && label(LABEL_MACHINE)
                .is_some_and(|m| secret.metadata.name.as_deref() == Some(&user_data_secret_name(m)))
    }

    /// The target's watch, with the watches of clusters named by class
    /// credentials merged in as they start. Only the target's says `Listed`:
    /// without a target there is nothing to list, so it says so at once.
    fn watch(&self) -> Option<VmWatch> {
        let foreign = self.foreign.items()?;
        let writer = self
            .pods_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let target = match (&self.target, writer) {
            (Some((client, pods)), Some(writer)) => watch::watch(client.clone(), writer, pods),
            _ => futures::stream::once(std::future::ready(VmWatchItem::Listed)).boxed(),
        };
        Some(VmWatch {
            name: watch::NAME,
            items: futures::stream::select(target, foreign).boxed(),
        })
    }

    async fn create_machine(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        let (spec, profile, place) = self.prepare_call(req, Call::Create).await?;
        let machine = req.machine.name();
        let user_data = Self::user_data(req)?;
        let ns = &place.namespace;
        let _quota = self.admit(&place, req.class, machine, &profile).await?;

        // The Pod comes first, so that its Secret and Service are created owned by
        // it and never outlive it. Its kubelet waits for the Secret as for any
        // volume, and a crash in between leaves a Pod that GetMachineStatus calls
        // Uninitialized, which InitializeMachine completes. Each step creates, or
        // applies what exists, so every step is repeatable.
        let name = pod_name(machine);
        let mut vm = build::pod(machine, machine_ns(req.machine), ns, &spec);
        build::label_vm(&mut vm, req.class);
        if let Some((fault, rule)) = profile.boot_fault(machine) {
            tracing::warn!(machine, rule, "injected boot fault: {}", fault.annotation());
            if let Some(m) = &self.metrics {
                m.boot_fault_injected(fault.key());
            }
            vm.metadata
                .annotations
                .get_or_insert_default()
                .insert(BOOT_FAULT_ANNOTATION.to_string(), fault.annotation());
        }
        let pod: PodWithStatus = create_or_apply(&place.client, &vm).await?.into();
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(MachineError::new(
                Code::Unavailable,
                format!("Pod {ns}/{name} is still terminating"),
            ));
        }

        self.ensure_companions(&place, machine, &pod, user_data)
            .await?;
        Ok(Self::response(&pod))
    }

    /// Completes a machine whose Pod exists without its Secret or Service.
    async fn initialize_machine(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        let (_, _, place) = self.prepare_call(req, Call::Initialize).await?;
        let machine = req.machine.name();
        let user_data = Self::user_data(req)?;
        let Some(pod) = self.find_pod(&place, machine).await? else {
            return Err(MachineError::new(
                Code::NotFound,
                format!("Pod {}/{} not found", place.namespace, pod_name(machine)),
            ));
        };
        self.ensure_companions(&place, machine, &pod, user_data)
            .await?;
        Ok(Self::response(&pod))
    }

    async fn delete_machine(&self, req: &MachineRequest<'_>) -> DriverResult<Deletion> {
        let (_, _, place) = self.prepare_call(req, Call::Delete).await?;
        let machine = req.machine.name();
        let ns = &place.namespace;
        let name = pod_name(machine);
        let pods: Api<Pod> = Api::namespaced(place.client.clone(), ns);

        // The cache is asked first, to send nothing while the Pod terminates.
        // Its "no such Pod" alone is never taken as the answer: it may not have
        // seen a Pod made moments ago (or by another process). Only a Pod the
        // watch saw deleted (and not made again) is known gone; otherwise the
        // DELETE decides, with the Pod's Service and Secret just before it.
        match self.find_pod(&place, machine).await? {
            Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                return Ok(Deletion::Going);
            }
            None if place.cache.as_ref().is_some_and(|c| c.gone(ns, &name)) => {
                return Err(MachineError::new(
                    Code::NotFound,
                    format!("Pod {ns}/{name} not found"),
                ));
            }
            _ => {}
        }
        self.delete_companions(&place, machine).await;
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match pods.delete(&name, &dp).await {
            Err(kube::Error::Api(s)) if status::not_found(&s) => Err(MachineError::new(
                Code::NotFound,
                format!("Pod {ns}/{name} not found"),
            )),
            Err(e) => Err(api_error(&format!("delete Pod {ns}/{name}"), e)),
            // Saying "gone" before the Pod is gone would let its kubelet register
            // the Node again after the controller deletes it; the Pod's watch
            // event brings the machine back.
            Ok(_) => Ok(Deletion::Going),
        }
    }

    async fn get_machine_status(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        let (_, _, place) = self.prepare_call(req, Call::GetMachineStatus).await?;
        let machine = req.machine.name();
        let ns = &place.namespace;
        match self.find_pod(&place, machine).await? {
            None => Err(MachineError::new(
                Code::NotFound,
                format!("Pod {ns}/{} not found", pod_name(machine)),
            )),
            Some(pod) => {
                if !self.companions_exist(&place, machine).await? {
                    return Err(MachineError::new(
                        Code::Uninitialized,
                        format!(
                            "Pod {ns}/{} exists without its Secret or Service",
                            pod_name(machine)
                        ),
                    ));
                }
                Ok(Self::response(&pod))
            }
        }
    }

    async fn list_machines(
        &self,
        class: &MachineClass,
        secret: &SecretData,
    ) -> DriverResult<MachineList> {
        let place = self.place_of_class(class, secret).await?;
        let name = class_name(class);
        let profile = self
            .cloud
            .profile(name, &Self::validate(class)?, Call::ListMachines)?;
        let start = class.metadata.creation_timestamp.as_ref();
        Cloud::meet(&profile, Call::ListMachines, name, since(start)).await?;
        // A live machine Pod of the class's namespace, as (VM, machine) names.
        // Pods on their way out are no orphans to collect.
        let vm = |p: &ObjectMeta| {
            let ours = p.namespace.as_deref() == Some(place.namespace.as_str())
                && p.labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_PROVIDER))
                    .map(String::as_str)
                    == Some(PROVIDER);
            if !ours || p.deletion_timestamp.is_some() {
                return None;
            }
            let name = p.name.clone()?;
            let machine = name.strip_prefix(NAME_PREFIX)?.to_string();
            Some((name, machine))
        };
        // Read in place: this runs after every burst of deletions, and a copy
        // of each cached Pod would be the largest thing the process holds then.
        Ok(match &place.cache {
            Some(cache) => cache
                .pods()
                .iter()
                .filter_map(|p| vm(&p.metadata))
                .collect(),
            None => {
                let api: Api<Pod> = Api::namespaced(place.client.clone(), &place.namespace);
                let lp = ListParams::default().labels(&format!("{LABEL_PROVIDER}={PROVIDER}"));
                api.list(&lp)
                    .await
                    .map_err(|e| api_error(&format!("list Pods in {}", place.namespace), e))?
                    .items
                    .iter()
                    .filter_map(|p| vm(&p.metadata))
                    .collect()
            }
        })
    }

    async fn get_volume_ids(&self, _: &[PersistentVolumeSpec]) -> DriverResult<Vec<String>> {
        Ok(Vec::new())
    }

    async fn vm_trouble(&self, req: &MachineRequest<'_>) -> Option<VmTrouble> {
        let (_, place) = self.prepare(req).await.ok()?;
        let pod = self.find_pod(&place, req.machine.name()).await.ok()??;
        trouble::pod_trouble(&pod)
    }

    fn vm_namespace(&self, class: &MachineClass) -> Option<String> {
        let spec = Self::validate(class).ok()?;
        let class_ns = class.metadata.namespace.as_deref().unwrap_or("default");
        Some(spec.pod_namespace(class_ns).to_string())
    }

    async fn vm_facts(
        &self,
        class: &MachineClass,
        secret: &SecretData,
        provider_id: &str,
    ) -> DriverResult<Option<VmFacts>> {
        let place = self.place_of_class(class, secret).await?;
        let ns = &place.namespace;
        let pod = Api::<Pod>::namespaced(place.client.clone(), ns)
            .get_metadata_opt(provider_id)
            .await
            .map_err(|e| api_error(&format!("get Pod {ns}/{provider_id}"), e))?;
        Ok(pod.map(|p| VmFacts {
            control_namespace: p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONTROL_NAMESPACE_ANNOTATION).cloned()),
            uid: p.metadata.uid.unwrap_or_default(),
            created: p.metadata.creation_timestamp.map(|t| t.0),
            deleting: p.metadata.deletion_timestamp.is_some(),
        }))
    }

    async fn delete_vm(
        &self,
        class: &MachineClass,
        secret: &SecretData,
        provider_id: &str,
        uid: &str,
    ) -> DriverResult<()> {
        let place = self.place_of_class(class, secret).await?;
        let ns = &place.namespace;
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match Api::<Pod>::namespaced(place.client.clone(), ns)
            .delete(provider_id, &dp)
            .await
        {
            Ok(_) => Ok(()),
            // The API server answers a failed precondition with 409 Conflict.
            Err(kube::Error::Api(s)) if status::conflict(&s) => Err(MachineError::new(
                Code::FailedPrecondition,
                format!("Pod {ns}/{provider_id} is no longer the VM with UID {uid}"),
            )),
            Err(e) => Err(api_error(&format!("delete Pod {ns}/{provider_id}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(provider: &str, spec: serde_json::Value) -> MachineClass {
        MachineClass {
            provider: provider.into(),
            provider_spec: spec,
            ..Default::default()
        }
    }

    #[test]
    fn rejects_other_providers_with_invalid_argument() {
        let err =
            LocalDriver::validate(&class("aws", serde_json::json!({"image": "i"}))).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        assert!(err.to_string().contains("\"aws\""), "{err}");
    }

    #[test]
    fn rejects_a_spec_without_image() {
        let err = LocalDriver::validate(&class("local", serde_json::json!({}))).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        assert!(err.message.contains("providerSpec.image"), "{err}");
    }

    #[test]
    fn rejects_names_too_long_for_a_service() {
        let mut m = Machine::default();
        m.metadata.name = Some("a".repeat(MAX_MACHINE_NAME_LEN));
        assert!(LocalDriver::check_name(&m).is_ok());
        m.metadata.name = Some("a".repeat(MAX_MACHINE_NAME_LEN + 1));
        let err = LocalDriver::check_name(&m).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        assert!(err.message.contains("at most 55"), "{err}");
    }

    #[test]
    fn only_our_user_data_secrets_count_as_made_by_the_driver() {
        let ours = build::user_data_secret("m1", "ns", b"data");
        assert!(LocalDriver::made_secret(&ours));
        // A class secret that happens to carry the same labels is not ours.
        let mut class_secret = ours;
        class_secret.metadata.name = Some("cloudprovider".into());
        assert!(!LocalDriver::made_secret(&class_secret));
        assert!(!LocalDriver::made_secret(&Secret::default()));
    }

    #[test]
    fn maps_api_errors_to_codes() {
        let api = |code| {
            kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert_eq!(api_error("get", api(404)).code, Code::NotFound);
        assert_eq!(api_error("get", api(503)).code, Code::Unavailable);
        assert_eq!(api_error("get", api(429)).code, Code::Unavailable);
        assert_eq!(api_error("get", api(403)).code, Code::PermissionDenied);
    }
}
