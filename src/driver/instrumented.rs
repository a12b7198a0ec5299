// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The driver as the controller sees it: every MCM driver call counted and timed.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::PersistentVolumeSpec;

use super::{
    Deletion, Driver, DriverResult, MachineList, MachineRequest, MachineResponse, SecretData,
    VmFacts, VmTrouble, VmWatch,
};
use crate::api::MachineClass;
use crate::metrics::{Metrics, Outcome};

/// A driver whose calls are counted and timed under MCM's `mcm_cloud_api_driver_*`
/// names; everything else is the inner driver's.
pub(crate) struct InstrumentedDriver<D> {
    inner: D,
    metrics: Arc<Metrics>,
}

impl<D: Driver> InstrumentedDriver<D> {
    pub(crate) fn new(inner: D, metrics: Arc<Metrics>) -> Self {
        InstrumentedDriver { inner, metrics }
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = DriverResult<T>>,
    ) -> DriverResult<T> {
        let start = Instant::now();
        let result = call.await;
        let outcome = match &result {
            // As MCM: the duration of successful calls, the count of failed ones.
            Ok(_) => Outcome::Ok(start.elapsed()),
            Err(e) => Outcome::Failed {
                code: e.code.as_str(),
                injected: e.injected.is_some(),
            },
        };
        self.metrics.driver_call(D::PROVIDER, operation, outcome);
        result
    }
}

impl<D: Driver> Driver for InstrumentedDriver<D> {
    const PROVIDER: &'static str = D::PROVIDER;

    fn watch(&self) -> Option<VmWatch> {
        self.inner.watch()
    }

    fn made_secret(secret: &k8s_openapi::api::core::v1::Secret) -> bool {
        D::made_secret(secret)
    }

    async fn create_machine(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        self.call("CreateMachine", self.inner.create_machine(req))
            .await
    }

    async fn initialize_machine(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        self.call("InitializeMachine", self.inner.initialize_machine(req))
            .await
    }

    async fn delete_machine(&self, req: &MachineRequest<'_>) -> DriverResult<Deletion> {
        self.call("DeleteMachine", self.inner.delete_machine(req))
            .await
    }

    async fn get_machine_status(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        self.call("GetMachineStatus", self.inner.get_machine_status(req))
            .await
    }

    async fn list_machines(
        &self,
        class: &MachineClass,
        secret: &SecretData,
    ) -> DriverResult<MachineList> {
        self.call("ListMachines", self.inner.list_machines(class, secret))
            .await
    }

    async fn get_volume_ids(&self, specs: &[PersistentVolumeSpec]) -> DriverResult<Vec<String>> {
        self.call("GetVolumeIDs", self.inner.get_volume_ids(specs))
            .await
    }

    // Not MCM driver calls: passed through uncounted, so that MCM's series mean
    // what they mean in Go.
    async fn vm_trouble(&self, req: &MachineRequest<'_>) -> Option<VmTrouble> {
        // A read of the driver's cache, not a provider call: not counted.
        self.inner.vm_trouble(req).await
    }

    fn vm_namespace(&self, class: &MachineClass) -> Option<String> {
        self.inner.vm_namespace(class)
    }

    async fn vm_facts(
        &self,
        class: &MachineClass,
        secret: &SecretData,
        provider_id: &str,
    ) -> DriverResult<Option<VmFacts>> {
        self.inner.vm_facts(class, secret, provider_id).await
    }

    async fn delete_vm(
        &self,
        class: &MachineClass,
        secret: &SecretData,
        provider_id: &str,
        uid: &str,
    ) -> DriverResult<()> {
        self.inner.delete_vm(class, secret, provider_id, uid).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Machine;
    use crate::driver::{Code, MachineError};

    struct Failing;
    impl Driver for Failing {
        const PROVIDER: &'static str = "local";

        async fn create_machine(&self, _: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
            Err(MachineError::new(
                Code::ResourceExhausted,
                "quota: secret detail",
            ))
        }
        async fn initialize_machine(
            &self,
            _: &MachineRequest<'_>,
        ) -> DriverResult<MachineResponse> {
            Err(MachineError::new(Code::Unimplemented, ""))
        }
        async fn delete_machine(&self, _: &MachineRequest<'_>) -> DriverResult<Deletion> {
            Ok(Deletion::Gone)
        }
        async fn get_machine_status(
            &self,
            _: &MachineRequest<'_>,
        ) -> DriverResult<MachineResponse> {
            Ok(MachineResponse::default())
        }
        async fn list_machines(
            &self,
            _: &MachineClass,
            _: &SecretData,
        ) -> DriverResult<MachineList> {
            Ok(MachineList::new())
        }
        async fn get_volume_ids(&self, _: &[PersistentVolumeSpec]) -> DriverResult<Vec<String>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn the_driver_wrapper_counts_by_code_never_by_message() {
        let metrics = Arc::new(Metrics::new());
        let driver = InstrumentedDriver::new(Failing, metrics.clone());
        let (m, class, secret) = (
            Machine::default(),
            MachineClass::default(),
            SecretData::new(),
        );
        let req = MachineRequest {
            machine: &m,
            class: &class,
            secret: &secret,
        };
        let err = driver.create_machine(&req).await.unwrap_err();
        assert_eq!(err.code, Code::ResourceExhausted, "errors pass through");
        driver.delete_machine(&req).await.unwrap();
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("mcm_cloud_api_driver_requests_failed_total{provider=\"local\",operation=\"CreateMachine\",error_code=\"ResourceExhausted\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mcm_cloud_api_driver_request_duration_seconds_count{provider=\"local\",operation=\"DeleteMachine\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("secret detail"));
    }
}
