// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The machine controller: one queue of machine keys, fed by watches on
//! Machines and on everything that belongs to them, worked by two pools.
//!
//! - [`watches`]: the caches, the mappings from a change to the machines it
//!   concerns, the Controller and the background tasks; [`watches::run`] is the entry.
//! - [`workers`]: the queue the Controller hands machines to, and its two
//!   worker pools, one for deleting machines (MCM's termination queue) and one
//!   for the others; [`action`]: what a reconcile asks of the queue next.
//! - [`machine`]: the reconcile of one machine and its flows: [`machine::creation`],
//!   [`machine::health`], [`machine::deletion`] (step by step, MCM's texts) and
//!   [`machine::drain`].
//! - [`node`]: upkeep of a machine's Node (label, finalizer, node template);
//!   [`node::writes`]: every write to a Node.
//! - [`class`]: MachineClass and Secret finalizers.
//! - [`bootstrap`]: bootstrap tokens and user-data placeholders.
//! - [`safety`]: orphan VM collection and the API-server freeze.
//! - [`context`]: what every reconcile shares (clients, caches, settings; the
//!   target cluster and its caches as one [`context::Target`]);
//!   [`events`]: core Events on Machines.
//! - [`writes`]: every write to a Machine; [`status`]: status changes as values;
//!   [`own_writes`]: our last write per machine.
//! - [`settings`]: flags and per-machine overrides; [`error`]: errors and retries.
//!
//! Adding a deletion step: give it a text in `contract::step`, a variant of
//! [`machine::deletion::Step`] (read from the description in MCM's order), a pure
//! function for its outcome next to `after_vm_deletion`, and its arm in
//! `machine::deletion::run`; the step before it ends its description with the new
//! step's text.

mod action;
pub(crate) mod bootstrap;
pub(crate) mod class;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod events;
#[cfg(test)]
mod fake_api;
pub(crate) mod machine;
pub(crate) mod node;
pub(crate) mod own_writes;
pub(crate) mod safety;
pub(crate) mod settings;
pub(crate) mod status;
pub(crate) mod watches;
pub(crate) mod workers;
pub(crate) mod writes;

pub(crate) use context::Context;
pub(crate) use error::Error;
pub(crate) use machine::{error_policy, reconcile};
