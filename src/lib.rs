//! smo — a multi-cluster application orchestrator.
//!
//! Module map (read this first; ARCHITECTURE.md has the longer story):
//! - [`hdag`]       descriptor types, parsing and validation (pure)
//! - [`placement`]  which cluster each service runs on: a MILP over good_lp + HiGHS (pure)
//! - [`scaling`]    replicas per service from request rates, per cluster (SPEC §3; pure)
//! - [`monitoring`] dashboards, alert rules and PromQL (pure); Prometheus/Grafana clients (`io`)
//! - [`oci`]        packaged descriptors: tar.gz, `oci://` references, registry pull/push
//! - [`settings`]   layered configuration shared by every binary
//! - [`server`]     the long-running roles (api, worker, scheduler) over the job engine `smo-jobs`
//! - [`credentials`] one credentials type for registries, Prometheus and Grafana
//! - [`cli`]        output, duration and connection helpers of the command lines
//! - [`store`]      smo's tables: graphs, services, clusters, decisions
//! - [`federation`] generated Karmada objects (pure) and the kube-rs client
//! - [`jobs`]       smo's job kinds: deploy, start, stop, re-place, remove, cluster-sync
//! - [`http`]       the REST API (poem-openapi), problem+json errors
//! - [`metrics`]    smo's own Prometheus series (queue, jobs, requests, solves)
//! - [`bench`]      `smo bench`: figures printed, never asserted

pub mod bench;
pub mod cli;
pub mod credentials;
pub mod federation;
pub mod hdag;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod monitoring;
pub mod oci;
pub mod placement;
pub mod scaling;
pub mod server;
pub mod settings;
pub mod store;

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
mod tidy {
    /// The module map above names every public module: a newcomer's first hop must not miss one.
    #[test]
    fn the_module_map_names_every_module() {
        let lib = include_str!("lib.rs");
        let (map, code) = lib
            .split_once("\npub mod ")
            .expect("modules follow the map");
        let code = format!("pub mod {code}");
        let modules: Vec<&str> = code
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod "))
            .filter_map(|l| l.strip_suffix(';'))
            .collect();
        assert!(modules.len() >= 10, "{modules:?}");
        for m in modules {
            assert!(
                map.contains(&format!("[`{m}`]")),
                "module {m} is missing from the module map in src/lib.rs"
            );
        }
    }
}
