// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `machine.sapcloud.io/v1alpha1` as served by MCM's CRDs, and the local
//! driver's provider spec.

mod machine;
mod machine_class;
mod pod_view;
pub mod provider_spec;

pub use machine::*;
pub use machine_class::*;
pub use pod_view::*;

pub const GROUP: &str = "machine.sapcloud.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "machine.sapcloud.io/v1alpha1";

/// Implements `kube::Resource` for a namespaced type of our group. Written by hand
/// rather than derived because MachineClass has no `spec` and we want one shape for all.
/// Exported for the tests, which define MCM's MachineDeployment with it (the
/// product never reads MachineSets or MachineDeployments).
#[doc(hidden)]
#[macro_export]
macro_rules! machine_resource {
    ($ty:ident, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = kube::core::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::api::GROUP.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::api::VERSION.into()
            }
            fn api_version(_: &()) -> std::borrow::Cow<'_, str> {
                $crate::api::API_VERSION.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl $ty {
            /// An empty object named `name`, with apiVersion and kind set for sending.
            pub fn named(name: &str) -> Self {
                let mut obj = Self::default();
                obj.api_version = Some($crate::api::API_VERSION.into());
                obj.kind = Some($kind.into());
                obj.metadata.name = Some(name.into());
                obj
            }
        }
    };
}
pub use machine_resource;
