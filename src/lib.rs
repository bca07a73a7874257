//! smo — a multi-cluster application orchestrator.
//!
//! Module map (read this first; ARCHITECTURE.md has the longer story):
//! - [`access`]     who may do what: roles, grants, token format, console sessions (pure)
//! - [`hdag`]       descriptor types, parsing and validation (pure; crate `smo-core`)
//! - [`placement`]  which cluster each service runs on: a MILP over good_lp + HiGHS (pure;
//!   `smo-core`)
//! - [`plan`]       what a graph job will do: placement, objects, releases, records (pure)
//! - [`scaling`]    replicas from request rates (SPEC §3), a cluster's graphs together (pure;
//!   `smo-core`)
//! - [`monitoring`] dashboards, alert rules and PromQL (pure); Prometheus/Grafana clients (`io`)
//! - [`oci`]        packaged descriptors: tar.gz, `oci://` references, registry pull/push
//! - [`settings`]   layered configuration shared by every binary
//! - [`server`]     the long-running roles (api, worker, scheduler) over the job engine `smo-jobs`
//! - [`credentials`] one credentials type for registries, Prometheus and Grafana
//! - [`cli`]        output, duration and connection helpers of the command lines
//! - [`store`]      smo's tables: graphs, services, clusters, decisions
//! - [`federation`] generated Karmada objects (pure) and the kube-rs client
//! - [`reconcile`]  smo's job kinds as reconciles (load → plan → apply → record): deploy, stop, …
//! - [`http`]       the REST API (poem-openapi), problem+json errors
//! - [`metrics`]    smo's own Prometheus series (queue, jobs, requests, solves)
//! - [`bench`]      `smo bench`: figures printed, never asserted

pub mod access;
pub mod bench;
pub mod cli;
pub mod credentials;
pub mod federation;
pub mod http;
pub mod metrics;
pub mod monitoring;
pub mod oci;
pub mod plan;
pub mod reconcile;
pub mod server;
pub mod settings;
pub mod store;

// The vocabulary and pure logic live in smo-core; their old paths stay.
pub use smo_core::{hdag, placement, scaling};

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

    /// ARCHITECTURE.md's first invariant, enforced: the pure core (descriptor, placement,
    /// scaling, manifest, dashboard and page rendering) does no I/O, so it never names a database,
    /// Kubernetes, HTTP or async-runtime crate, nor std's file, network or process modules. Unit
    /// tests may (they read fixtures), and so may the named adapter beside the pure code.
    #[test]
    fn pure_modules_do_no_io() {
        // hdag, placement and scaling live in smo-core, whose dependencies prove it (below).
        const PURE: &[&str] = &[
            "access.rs",
            "plan.rs",
            "monitoring",
            "federation/manifests.rs",
            "http/compat.rs",
            "http/console/view.rs",
        ];
        const ADAPTERS: &[&str] = &["monitoring/io.rs"];
        const FORBIDDEN: &[&str] = &[
            "sqlx",
            "kube::",
            "reqwest",
            "tokio",
            "poem",
            "std::fs",
            "std::net",
            "std::process",
        ];
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut todo: Vec<std::path::PathBuf> = PURE.iter().map(|p| src.join(p)).collect();
        while let Some(path) = todo.pop() {
            if path.is_dir() {
                for e in std::fs::read_dir(&path).unwrap() {
                    todo.push(e.unwrap().path());
                }
            } else {
                files.push(path);
            }
        }
        let mut found = Vec::new();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap().display().to_string();
            if f.file_name().is_some_and(|n| n == "tests.rs") || ADAPTERS.contains(&rel.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // Unit tests at the end of a file may read fixtures.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (i, line) in code.lines().enumerate() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                for word in FORBIDDEN {
                    if line.contains(word) {
                        found.push(format!("src/{rel}:{}: {word}", i + 1));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "I/O in the pure core:\n{}",
            found.join("\n")
        );
    }

    /// smo-core's purity is its dependency tree: no database, Kubernetes, HTTP, async-runtime or
    /// job-engine crate may be reachable from it. Walks Cargo.lock (what `cargo tree -p smo-core`
    /// shows, dev-dependencies included), so adding one anywhere below smo-core fails here.
    #[test]
    fn smo_core_reaches_no_io_crate() {
        const FORBIDDEN: &[&str] = &[
            "sqlx",
            "sqlx-core",
            "tokio",
            "kube",
            "kube-client",
            "reqwest",
            "hyper",
            "poem",
            "poem-openapi",
            "apalis",
            "apalis-postgres",
            "smo-jobs",
            "smo-sim",
            "k8s-openapi",
        ];
        let lock = include_str!("../Cargo.lock");
        let mut deps: std::collections::HashMap<&str, Vec<&str>> = Default::default();
        for block in lock.split("[[package]]").skip(1) {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
                .unwrap_or_default();
            let listed = block
                .split_once("dependencies = [")
                .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
                .unwrap_or_default();
            // Every version of a name together (a lock may hold several).
            deps.entry(name).or_default().extend(
                listed
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix('"'))
                    .filter_map(|l| l.split(['"', ' ']).next()),
            );
        }
        assert!(
            deps.contains_key("smo-core"),
            "smo-core is not in Cargo.lock"
        );
        let (mut seen, mut todo) = (std::collections::HashSet::new(), vec!["smo-core"]);
        while let Some(p) = todo.pop() {
            if seen.insert(p) {
                todo.extend(deps.get(p).into_iter().flatten());
            }
        }
        assert!(
            seen.contains("good_lp") && seen.contains("serde"),
            "{seen:?}"
        );
        let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| seen.contains(*f)).collect();
        assert!(found.is_empty(), "smo-core reaches {found:?}");
    }

    /// Binaries are thin shells over library modules (`cli::smo`, `cli::admin`, …): what a
    /// command does is testable and reusable without spawning a process. Each stays under
    /// `BINARY_BUDGET` (100) lines.
    #[test]
    fn binaries_stay_within_their_line_budget() {
        const BINARY_BUDGET: usize = 100;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut bins = Vec::new();
        for dir in ["src/bin", "jobs/src/bin"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                bins.push(e.unwrap().path());
            }
        }
        bins.push(root.join("api/sdk-gen/src/main.rs"));
        assert!(bins.len() >= 4, "{bins:?}");
        let over: Vec<String> = bins
            .iter()
            .map(|p| (p, std::fs::read_to_string(p).unwrap().lines().count()))
            .filter(|(_, n)| *n > BINARY_BUDGET)
            .map(|(p, n)| format!("{}: {n} lines", p.strip_prefix(root).unwrap().display()))
            .collect();
        assert!(
            over.is_empty(),
            "binaries over {BINARY_BUDGET} lines (move the code into a library module):\n{}",
            over.join("\n")
        );
    }

    /// The simulated federation is a test and demo tool that knows nothing of smo: its crate
    /// must not depend on any of smo's.
    #[test]
    fn the_sim_crate_does_not_depend_on_smo() {
        let manifest = include_str!("../sim/Cargo.toml");
        for dep in ["smo =", "smo-jobs", "smo-sdk", "path = \"..\""] {
            assert!(!manifest.contains(dep), "sim/Cargo.toml names {dep}");
        }
    }
}
