//! smo — a multi-cluster application orchestrator.
//!
//! Module map (read this first; ARCHITECTURE.md has the longer story):
//! - [`hdag`]       descriptor types, parsing and validation (pure)
//! - [`placement`]  which cluster each service runs on: a MILP over good_lp + HiGHS (pure)
//! - [`settings`]   layered configuration shared by every binary
//! - [`server`]     the long-running roles (api, worker, scheduler) wired over the job engine

pub mod hdag;
pub mod placement;
