//! smo-core — smo's vocabulary and the pure logic over it: data in, data out, no I/O.
//!
//! - [`hdag`]       descriptor types, parsing and validation; graph, project and cluster names
//! - [`placement`]  which cluster each service runs on: a MILP over good_lp + HiGHS
//! - [`plan`]       what a graph job will do: placement, objects, releases, and what to record
//! - [`scaling`]    replicas from request rates (SPEC §3), a cluster's graphs together
//! - [`manifests`]  the Karmada objects and Helm values of a placed graph
//! - [`monitoring`]  dashboards, alert rules, PromQL and Alertmanager/Prometheus bodies
//! - [`model`]      statuses, decision and problem kinds, what a job decides and records
//!
//! The crate's dependencies are the proof of purity: no database, Kubernetes, HTTP or async
//! runtime crate may appear in its tree (smo's tidy tests walk Cargo.lock). The `smo` crate
//! re-exports these modules under their old paths (`smo::hdag`, …) and adds the adapters.

pub mod hdag;
pub mod manifests;
pub mod model;
pub mod monitoring;
pub mod placement;
pub mod plan;
pub mod scaling;
