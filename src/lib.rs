//! smo — a multi-cluster application orchestrator.
//!
//! Module map (read this first; ARCHITECTURE.md has the longer story):
//! - [`access`]     who may do what: roles, grants, token format, console sessions (pure)
//! - [`hdag`]       descriptor types, parsing and validation (pure; crate `smo-core`)
//! - [`placement`]  which cluster each service runs on: a MILP over good_lp + HiGHS (pure;
//!   `smo-core`)
//! - [`plan`]       what a graph job will do: placement, objects, releases, records (pure;
//!   `smo-core`)
//! - [`scaling`]    replicas from request rates (SPEC §3), a cluster's graphs together (pure;
//!   `smo-core`)
//! - [`monitoring`] dashboards, alert rules and PromQL (pure; `smo-core`); Prometheus/Grafana
//!   clients (`io`)
//! - [`oci`]        packaged descriptors: tar.gz, `oci://` references, registry pull/push
//! - [`settings`]   layered configuration shared by every binary
//! - [`server`]     the long-running roles (api, worker, scheduler) over the job engine `smo-jobs`
//! - [`credentials`] one credentials type for registries, Prometheus and Grafana
//! - [`cli`]        output, duration and connection helpers of the command lines
//! - [`store`]      smo's tables: graphs, services, clusters, decisions
//! - [`federation`] generated Karmada objects (pure; `smo-core`) and the kube-rs client
//! - [`reconcile`]  smo's job kinds as reconciles (load → plan → apply → record): deploy, stop, …
//! - [`http`]       the REST API (poem-openapi), problem+json errors
//! - [`metrics`]    smo's own Prometheus series (queue, jobs, requests, solves)
//! - [`bench`]      `smo bench`: figures printed, never asserted

pub mod access;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cli;
pub mod credentials;
pub mod federation;
pub mod http;
pub mod metrics;
pub mod monitoring;
pub mod oci;
pub mod reconcile;
pub mod server;
pub mod settings;
pub mod store;

// The vocabulary and pure logic live in smo-core; their old paths stay.
pub use smo_core::{hdag, placement, plan, scaling};

/// Installs the process-wide TLS provider (ring). kube, reqwest and sqlx all use rustls; with a
/// provider installed up front none of them has to guess, and none panics at run time.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), so stdout stays for command output.
///
/// `SMO_LOG_FORMAT=json` writes one JSON object per line instead (what log collectors in a
/// cluster want; the chart sets it). Colours only when stderr is a terminal.
pub fn init_tracing(default: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("SMO_LOG_FORMAT").unwrap_or_default();
    let _ = match format.trim().to_ascii_lowercase().as_str() {
        "json" => builder.json().flatten_event(true).try_init(),
        other => {
            if !matches!(other, "" | "text") {
                eprintln!("warning: SMO_LOG_FORMAT={format:?} is not text or json; using text");
            }
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .try_init()
        }
    };
}

#[cfg(test)]
mod tidy;
