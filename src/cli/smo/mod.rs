//! `smo`: the orchestrator's command line (it talks to the REST API through `smo-sdk`, the client
//! generated from api/openapi.yaml) and its server roles. The binary only calls [`main`].
//!
//! - `mod.rs`    the top-level arguments and the dispatch
//! - `graph.rs`  `smo graph …`: upload, dry run, describe, follow jobs
//! - `server.rs` `smo run`: the server roles' flags laid over the file's settings
//! - `sim.rs`    `smo sim`: the simulated federation
//! - `bench.rs`  `smo bench …`: figures printed, never asserted
//! - `solve.rs`  `smo placement solve`: the optimiser on a problem file
//! - `status.rs` `smo status`, `smo cluster list`

#[cfg(feature = "bench")]
mod bench;
mod graph;
mod server;
#[cfg(feature = "sim")]
mod sim;
mod solve;
mod status;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use serde_json::Value;
use smo_sdk::Client;

use crate::{
    cli::{Output, connect},
    settings::{self, FileSettings},
};

#[cfg(feature = "bench")]
use self::bench::BenchCmd;
#[cfg(feature = "sim")]
use self::sim::SimArgs;
use self::{
    graph::{GraphCmd, follow},
    server::RunArgs,
    solve::PlacementCmd,
    status::ClusterCmd,
};

/// smo — deploy application graphs (HDAGs) onto a Karmada federation.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// PostgreSQL URL for server roles [default: ~/.smo/config.yaml, else the scripts/dev-db server]
    #[arg(long, env = "SMO_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Where the API is [default: ~/.smo/config.yaml, else http://127.0.0.1:8080]
    #[arg(long, env = "SMO_API_URL", global = true)]
    api_url: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: Output,
    /// More log detail on stderr: -v debug, -vv trace (RUST_LOG, when set, wins).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The reference SMO's `scaler run`: smo has no separate scaler (prints what to run instead).
    #[command(hide = true)]
    Scaler {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Write ~/.smo/config.yaml with defaults (the simulated federation's kubeconfig included).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// Karmada kubeconfig to record.
        #[arg(long)]
        karmada_kubeconfig: Option<PathBuf>,
    },
    /// Is smo healthy? The API, its database, live workers and waiting jobs. Exits 1 when the API
    /// is unreachable or not ready, or no worker is alive. With a token whose role cannot read
    /// /metrics (viewer, deployer), says the queue is not visible and judges by readiness.
    Status,
    /// Show the effective configuration (secrets hidden).
    Config,
    /// The token this CLI uses (`SMO_API_TOKEN`, else `api_token` in ~/.smo/config.yaml): its
    /// name, role and projects, as the API sees it.
    Whoami,
    /// Member clusters.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Application graphs.
    #[command(subcommand)]
    Graph(GraphCmd),
    /// The placement optimiser, offline.
    #[command(subcommand)]
    Placement(PlacementCmd),
    /// Run server roles until SIGTERM: api, worker, scheduler, or all.
    Run(Box<RunArgs>),
    /// Run the simulated Karmada federation (an apiserver-shaped server with member clusters,
    /// synthetic load on /metrics and Grafana's dashboard API) and write a kubeconfig for it.
    #[cfg(feature = "sim")]
    #[command(args_conflicts_with_subcommands = true)]
    Sim(SimArgs),
    /// Benchmarks that print figures.
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML) of the REST API.
    Openapi,
    /// Print the Grafana dashboard of smo itself (queue, workers, API, optimizers) as JSON; the
    /// chart ships it as charts/smo/dashboards/smo.json.
    Dashboard,
}

/// Runs `smo` with the process's arguments; the exit code says how it went (2: bad input).
pub async fn main() -> ExitCode {
    crate::install_crypto_provider();
    crate::cli::quiet_broken_pipe();
    let cli = Cli::parse();
    crate::init_tracing(match (cli.verbose, &cli.command) {
        // A benchmark's API answers hundreds of thousands of requests: its figures, not a
        // log line per request (`RUST_LOG` still has the last word).
        #[cfg(feature = "bench")]
        (0, Command::Bench(_)) => "info,poem::middleware::tracing_mw=warn",
        (0, _) => "info",
        (1, _) => "debug",
        _ => "trace",
    });
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let api = e.downcast_ref::<smo_sdk::Error>();
            let code = match (api, e.downcast_ref::<BadInput>()) {
                // Bad input (400/413/422) exits 2, like a local validation failure.
                (Some(c), _) => u8::from(c.is_bad_input()) + 1,
                (None, Some(_)) => 2,
                (None, None) => 1,
            };
            eprintln!("error: {e:#}");
            for p in api.map(smo_sdk::Error::problem_lines).unwrap_or_default() {
                eprintln!("  {p}");
            }
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let file = settings::load_file().map_err(anyhow::Error::msg)?;
    let database_url = settings::database_url(cli.database_url, &file);
    let api_url = cli
        .api_url
        .or(file.api_url.clone())
        .unwrap_or_else(|| settings::DEFAULT_API_URL.into());
    let client = Client::with_config(
        smo_sdk::Config::new(&api_url).token(
            std::env::var("SMO_API_TOKEN")
                .ok()
                .or(crate::credentials::exposed(&file.api_token).map(str::to_string)),
        ),
    );
    let out = cli.output;
    match cli.command {
        Command::Init {
            force,
            karmada_kubeconfig,
        } => {
            let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
            let s = FileSettings {
                database_url: Some(database_url),
                api_url: Some(api_url),
                karmada_kubeconfig: Some(
                    karmada_kubeconfig
                        .unwrap_or_else(|| PathBuf::from(home).join(".smo/karmada-sim.kubeconfig")),
                ),
                scaling_interval: Some("30s".into()),
                ..file
            };
            let path = settings::write_file(&s, force).map_err(anyhow::Error::msg)?;
            println!("wrote {}", path.display());
        }
        Command::Config => {
            // What the commands see: the file with SMO_* variables laid over it.
            let effective = file
                .clone()
                .with_env(|k| std::env::var(k).ok())
                .map_err(anyhow::Error::msg)?;
            let mut shown = effective.redacted();
            shown.database_url = Some(crate::cli::redact_url(&database_url));
            shown.api_url = Some(api_url);
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                println!("# {}", settings::config_path().display());
                print!("{}", serde_norway::to_string(&shown)?);
            }
        }
        Command::Run(a) => return server::run(*a, file, database_url).await,
        #[cfg(feature = "sim")]
        Command::Sim(a) => return sim::sim(a).await,
        Command::Scaler { .. } => {
            eprintln!(
                "smo has no separate scaler: every scaling_interval the scheduler enqueues one \
                 scale-fanout job, which solves the whole fleet's replicas in one round and hands \
                 the graphs that change to scale-shard jobs; workers run both. \
                 Run: smo run --role scheduler,worker"
            );
            return Ok(2);
        }
        #[cfg(feature = "bench")]
        Command::Bench(cmd) => return bench::run(cmd, out, &database_url).await,
        Command::Placement(PlacementCmd::Solve { input, first_fit }) => {
            return solve::solve(&input, first_fit, out);
        }
        Command::Placement(PlacementCmd::Instance {
            size,
            seed,
            headroom,
            replace,
        }) => return solve::instance(&size, seed, headroom, replace),
        Command::Migrate => {
            let pool = connect(&database_url, 2).await?;
            crate::server::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::Openapi => print!("{}", crate::http::openapi_yaml()),
        Command::Status => return status::status(&client, &api_url, out).await,
        Command::Whoami => {
            let me = client.whoami().await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&me)?);
            } else {
                println!("name:     {}", me.name);
                println!("role:     {}", me.role);
                println!("projects: {}", me.projects.join(", "));
            }
        }
        Command::Dashboard => println!(
            "{}",
            serde_json::to_string_pretty(&crate::monitoring::render_smo_dashboard().model)?
        ),
        Command::Cluster(ClusterCmd::List) => {
            let clusters = client.list_clusters().await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&clusters)?);
                return Ok(0);
            }
            let mut t = crate::cli::table(&[
                "name",
                "ready",
                "cpu free/total",
                "memory free/total",
                "gpus",
                "synced",
            ]);
            for c in &clusters {
                t.add_row(vec![
                    c.name.clone(),
                    if c.ready {
                        "yes".into()
                    } else {
                        format!("no ({})", opt(&c.message))
                    },
                    format!("{:.1}/{:.1}", c.cpu_free, c.cpu_allocatable),
                    format!("{}/{}", gib(c.memory_free), gib(c.memory_allocatable)),
                    c.gpus.to_string(),
                    c.synced_at.clone(),
                ]);
            }
            println!("{t}");
            if clusters.is_empty() {
                println!("(no clusters yet: run `smo cluster sync`)");
            }
        }
        Command::Cluster(ClusterCmd::History { cluster, limit }) => {
            let events = client
                .cluster_history(cluster.as_deref(), Some(limit))
                .await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&events)?);
                return Ok(0);
            }
            let mut t = crate::cli::table(&["at", "cluster", "event", "what"]);
            for e in &events {
                t.add_row(vec![
                    e.at.clone(),
                    e.cluster.clone(),
                    e.event.clone(),
                    opt(&e.message),
                ]);
            }
            println!("{t}");
            if events.is_empty() {
                println!(
                    "(no health history yet: the scheduler's cluster-health entry records it)"
                );
            }
        }
        Command::Cluster(ClusterCmd::Sync { wait }) => {
            let accepted = client.sync_clusters().await?;
            return follow(&client, &accepted, wait, out).await;
        }
        Command::Graph(cmd) => return graph::graph(&client, cmd, out).await,
    }
    Ok(0)
}

/// Input the user must fix: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadInput(String);

/// An optional field as a table cell.
fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn gib(bytes: i64) -> String {
    format!("{:.1}Gi", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

fn mib(bytes: i64) -> String {
    format!("{:.0}Mi", bytes as f64 / (1024.0 * 1024.0))
}
