//! `smo`: the orchestrator's command line (it talks to the REST API through `smo-sdk`, the client
//! generated from api/openapi.yaml) and its server roles.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use smo::{
    cli::{Output, connect, parse_duration},
    server::{self, Role},
    settings::{self, FileSettings, ServerSettings},
};
use smo_sdk::{
    Client, DecisionView, DeployGraphResponse, DryRun, GraphDetail, JobAccepted, JobView,
    ProblemItem,
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
    /// is unreachable or not ready, or no worker is alive.
    Status,
    /// Show the effective configuration (secrets hidden).
    Config,
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
    #[command(args_conflicts_with_subcommands = true)]
    Sim(SimArgs),
    /// Benchmarks that print figures.
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

#[derive(Subcommand)]
enum ClusterCmd {
    /// Refresh clusters from Karmada (a `cluster-sync` job).
    Sync {
        /// Wait for the job to finish.
        #[arg(long)]
        wait: bool,
    },
    /// List clusters with free capacity.
    List,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The worst descriptor the API accepts (the service limit, near the body limit): parse,
    /// place and render times and peak memory. Needs no database.
    Descriptor,
    /// The console's pages over many stored graphs: server time per page (p50/p99/max) through
    /// HTTP on loopback, in a scratch database `<db>_bench`. Target: < 50 ms for 1,000 graphs.
    Console {
        /// Running graphs (3 services each).
        #[arg(long, default_value_t = 1_000)]
        graphs: usize,
        /// Requests per page.
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// Placement solve times over many seeded instances of the reference's family (first
    /// placement and re-placement of its perturbed result, roomy and tight capacity): p50, p99
    /// and max per size. Targets: max < 100 ms at 200×50, < 1 s at 2,000×200, < 10 s at
    /// 10,000×1,000. Needs no database.
    Placement {
        /// Instances per size and capacity.
        #[arg(long, default_value_t = 200)]
        instances: usize,
        /// Sizes as services×clusters, comma-separated.
        #[arg(long, default_value = "20x5,200x50,2000x200", value_delimiter = ',')]
        sizes: Vec<String>,
        /// Capacity as multiples of demand, comma-separated.
        #[arg(long, default_value = "1.3,1.05", value_delimiter = ',')]
        headroom: Vec<f64>,
        /// The first seed (to study one slow instance: `--seed S --instances 1`).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// The API's read routes under load: `GET /graphs?limit=50`, `GET /graphs/{name}` and
    /// `GET /clusters` with many keep-alive connections, over many stored graphs, in a scratch
    /// database `<db>_bench`. Load from wrk when installed (scripts/setup installs it), else from
    /// a client in this process. Target: ≥ 10,000 req/s and p99 < 10 ms (release build).
    Reads {
        /// Running graphs stored (3 services each).
        #[arg(long, default_value_t = 1000)]
        graphs: usize,
        /// Connections kept busy at once.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds per route.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Graphs deployed through the API by worker processes against the sim (started here, write
    /// latency 0) or a federation you name: graphs/s and submit→Running p50/p99, in a scratch
    /// database `<db>_bench`. Target: 1,000 graphs in < 60 s with 2 workers, all on first attempts.
    Deploy {
        /// Graphs to deploy.
        #[arg(long, default_value_t = 1_000)]
        graphs: usize,
        /// Services per graph.
        #[arg(long, default_value_t = 2)]
        services: usize,
        /// Worker processes (`smo run --role worker`).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Submissions in flight at once.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Deploy onto this federation instead of a sim started here.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Two scaling rounds over many running graphs (real engine, round and shard code, a stub
    /// Prometheus answering the fleet query, the sim in-process), in a scratch database
    /// `<db>_bench`: the first scales the changing graphs, the second is the steady state.
    /// Target: < 30 s per round at 100,000 graphs.
    ScaleRound {
        /// Running graphs (3 services each); several sizes give the curve, e.g.
        /// `1000,10000,100000`.
        #[arg(long, value_delimiter = ',', default_value = "10000")]
        graphs: Vec<usize>,
        /// Share of the graphs whose load rises before the first round (0–1): their services go
        /// from 1 to 3 replicas through the federation (the simulated one, in this process).
        #[arg(long, default_value_t = 0.01)]
        changing: f64,
        /// Worker instances.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Jobs each worker runs at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
enum PlacementCmd {
    /// Solve a what-if placement problem given as JSON (format: README, "Placement what-ifs") and
    /// print the placement, objective, status and explanation.
    Solve {
        /// Problem file (`-` for stdin).
        #[arg(long, short)]
        input: PathBuf,
        /// Use the reference's first-fit heuristic instead of the optimiser (for comparison).
        #[arg(long)]
        first_fit: bool,
    },
}

#[derive(Subcommand)]
enum GraphCmd {
    /// Deploy (or upgrade) a graph from a descriptor file (YAML or JSON; `-` for stdin) or by
    /// reference to a packaged descriptor (`oci://host/repo/name:tag`, `https://…/graph.tar.gz`).
    Deploy {
        /// Descriptor file or artifact reference.
        file: PathBuf,
        /// Project (= Kubernetes namespace).
        #[arg(long, short)]
        project: String,
        /// Follow the job until it ends; exit non-zero if it failed.
        #[arg(long)]
        wait: bool,
        /// Print the placement and the objects that would be applied; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Package a descriptor (a file, or a directory holding one) as a tar.gz for a registry.
    Package {
        /// Descriptor file, or a directory with exactly one *.yaml/*.yml/*.json.
        path: PathBuf,
        /// Output file [default: <graph>-<version>.tgz in the current directory]
        #[arg(long, short = 'O')]
        out: Option<PathBuf>,
    },
    /// Push a descriptor (packaged first if it is not a .tgz) to an OCI registry.
    Push {
        /// Descriptor or package file.
        file: PathBuf,
        /// Target, e.g. oci://registry:5000/graphs/shop:1.0.0.
        reference: String,
        /// Plain HTTP to the registry (loopback registries always are).
        #[arg(long)]
        plain_http: bool,
    },
    /// Validate a descriptor locally (no server needed): every problem with its path.
    Validate {
        /// Descriptor file (YAML or JSON).
        file: PathBuf,
    },
    /// List graphs.
    List {
        /// Only this project.
        #[arg(long, short)]
        project: Option<String>,
    },
    /// Services, clusters, status, recent jobs and decisions of a graph.
    Describe {
        /// Graph name.
        name: String,
    },
    /// Start a stopped graph.
    Start(GraphAction),
    /// Stop a graph (workloads deleted, graph kept).
    Stop(GraphAction),
    /// Re-place a graph (only moved services are re-applied).
    RePlace(GraphAction),
    /// Remove a graph and everything it created.
    Remove(GraphAction),
}

#[derive(clap::Args)]
struct GraphAction {
    /// Graph name.
    name: String,
    /// Follow the job until it ends; exit non-zero if it failed.
    #[arg(long)]
    wait: bool,
}

#[derive(clap::Args)]
struct SimArgs {
    #[command(subcommand)]
    cmd: Option<SimCmd>,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// Member clusters (YAML: `clusters: [{name, cpu, memory, gpus, labels, ready}]`) [default: three demo clusters]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write the kubeconfig smo uses to reach the sim.
    #[arg(long, default_value_t = default_sim_kubeconfig())]
    kubeconfig_out: String,
    /// A directory of CustomResourceDefinition files (Karmada, MCS, Prometheus operator): their
    /// schemas are served in /openapi/v3, so `kubectl explain` works [default: open schemas]
    #[arg(long)]
    crds: Option<PathBuf>,
    /// Keep the federation's objects in FILE across restarts (read at start, written within a
    /// second of every change) [default: in memory only]
    #[arg(long)]
    state: Option<PathBuf>,
    /// Delay every write by this long (`150ms`, `2s`), as a loaded API server would: makes a
    /// deploy slow enough to interrupt in tests and demos.
    #[arg(long, value_parser = parse_duration_ms, default_value = "0ms")]
    write_latency: Duration,
}

#[derive(Subcommand)]
enum SimCmd {
    /// Set the synthetic request rate of a service (its Deployment name) in a running sim.
    Load {
        /// Deployment name (`<graph>-<service>`).
        service: String,
        /// Requests per second.
        rate: f64,
        /// Namespace (= project).
        #[arg(long, short)]
        namespace: String,
        /// The sim's URL.
        #[arg(long, default_value = "http://127.0.0.1:6443")]
        sim_url: String,
    },
}

/// Durations with millisecond precision for tests (`200ms`), else as [`parse_duration`].
fn parse_duration_ms(s: &str) -> Result<Duration, String> {
    match s.strip_suffix("ms") {
        Some(ms) => ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("invalid duration {s:?}")),
        None => parse_duration(s),
    }
}

fn default_sim_kubeconfig() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    format!("{home}/.smo/karmada-sim.kubeconfig")
}

#[derive(clap::Args)]
struct RunArgs {
    /// Roles to run (repeatable or comma-separated).
    #[arg(
        long = "role",
        value_enum,
        value_delimiter = ',',
        default_value = "all"
    )]
    roles: Vec<Role>,
    /// API listen address.
    #[arg(long, env = "SMO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Also serve this process's metrics on this address (GET /metrics): for worker and
    /// scheduler processes, whose series the API's /metrics cannot carry. [default: none]
    #[arg(long, env = "SMO_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Jobs this worker runs at once.
    #[arg(long, env = "SMO_WORKER_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// Database connections of this process (default: derived from its roles and concurrency).
    #[arg(long, env = "SMO_DB_POOL_SIZE")]
    db_pool_size: Option<u32>,
    /// Time a client has to send a request's headers; also closes keep-alive connections idle
    /// that long.
    #[arg(long, env = "SMO_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration_ms)]
    http_header_timeout: Duration,
    /// Time a client has to send a request's whole body (then 408).
    #[arg(long, env = "SMO_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration_ms)]
    http_body_timeout: Duration,
    /// Connections the API serves at once; more wait in the listen backlog.
    #[arg(long, env = "SMO_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    http_max_connections: usize,
    /// Jobs claimed per fetch.
    #[arg(long, env = "SMO_WORKER_BATCH", default_value_t = 256)]
    batch: usize,
    /// Worker name prefix; the host (pod) name, pid and a random suffix are appended.
    #[arg(long, env = "SMO_WORKER_PREFIX", default_value = "smo")]
    worker_prefix: String,
    /// Finished jobs are pruned after this long (e.g. 7d, 12h).
    #[arg(long, env = "SMO_RETENTION", default_value = "7d", value_parser = parse_duration)]
    retention: Duration,
    /// On SIGTERM, in-flight jobs may take this long before being handed back.
    #[arg(long, env = "SMO_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// How often the worker heartbeats; its jobs go to other workers after 3 missed beats.
    #[arg(long, env = "SMO_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration_ms)]
    heartbeat_interval: Duration,
    /// Prometheus URL (request rates; rule reloads) [default: config prometheus_url]
    #[arg(long, env = "SMO_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Grafana URL (dashboards) [default: config grafana_url]
    #[arg(long, env = "SMO_GRAFANA_URL")]
    grafana_url: Option<String>,
    /// apalis-board URL (`smo-admin board`), linked from the console's queue page [default: config board_url]
    #[arg(long, env = "SMO_BOARD_URL")]
    board_url: Option<String>,
    /// Where alert rules go: prometheus-rule, rule-file or none [default: config alert_rules, else prometheus-rule]
    #[arg(long, env = "SMO_ALERT_RULES")]
    alert_rules: Option<String>,
    /// Rule-file directory for --alert-rules rule-file [default: config rules_dir]
    #[arg(long, env = "SMO_RULES_DIR")]
    rules_dir: Option<PathBuf>,
    /// How often running graphs are rescaled [default: config scaling_interval, else 30s]
    #[arg(long, env = "SMO_SCALING_INTERVAL", value_parser = parse_duration)]
    scaling_interval: Option<Duration>,
    /// rate() window of request-rate queries [default: config rate_window, else 1m]
    #[arg(long, env = "SMO_RATE_WINDOW")]
    rate_window: Option<String>,
    /// Karmada kubeconfig [default: ~/.smo/config.yaml's karmada_kubeconfig]
    #[arg(long, env = "SMO_KARMADA_KUBECONFIG")]
    karmada_kubeconfig: Option<PathBuf>,
    /// Bearer token the API requires [default: ~/.smo/config.yaml's api_token; none = open]
    #[arg(long, env = "SMO_API_TOKEN")]
    api_token: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    smo::install_crypto_provider();
    smo::cli::quiet_broken_pipe();
    let cli = Cli::parse();
    smo::init_tracing(match cli.verbose {
        0 => "info",
        1 => "debug",
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
                .or(file.api_token.clone()),
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
            shown.database_url = Some(smo::cli::redact_url(&database_url));
            shown.api_url = Some(api_url);
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                println!("# {}", settings::config_path().display());
                print!("{}", serde_norway::to_string(&shown)?);
            }
        }
        Command::Run(a) => {
            let settings = ServerSettings {
                database_url,
                listen: a.listen,
                metrics_listen: a.metrics_listen.filter(|l| !l.is_empty()),
                worker_concurrency: a.concurrency,
                db_pool_size: a.db_pool_size,
                http: smo::http::HttpLimits {
                    header_read_timeout: a.http_header_timeout,
                    body_read_timeout: a.http_body_timeout,
                    max_connections: a.http_max_connections,
                },
                worker_batch: a.batch,
                worker_prefix: a.worker_prefix,
                retention: a.retention,
                shutdown_grace: a.shutdown_grace,
                heartbeat_interval: a.heartbeat_interval,
                karmada_kubeconfig: a.karmada_kubeconfig.or(file.karmada_kubeconfig.clone()),
                api_token: a.api_token.or(file.api_token.clone()),
                registry: file.registry(),
                board_url: a.board_url.or(file.board_url.clone()),
                helm_binary: std::env::var_os("SMO_HELM_BINARY")
                    .map(PathBuf::from)
                    .or(file.helm_binary.clone())
                    .unwrap_or_else(|| PathBuf::from("helm")),
                helm_plain_http: file.helm_insecure_registry.unwrap_or(false),
                monitoring: smo::settings::MonitoringSettings {
                    prometheus_url: a.prometheus_url.or(file.prometheus_url.clone()),
                    grafana_url: a.grafana_url.or(file.grafana_url.clone()),
                    prometheus_user: env_or("SMO_PROMETHEUS_USER", &file.prometheus_user),
                    prometheus_password: env_or(
                        "SMO_PROMETHEUS_PASSWORD",
                        &file.prometheus_password,
                    ),
                    prometheus_token: env_or("SMO_PROMETHEUS_TOKEN", &file.prometheus_token),
                    grafana_user: env_or("SMO_GRAFANA_USER", &file.grafana_user),
                    grafana_password: env_or("SMO_GRAFANA_PASSWORD", &file.grafana_password),
                    grafana_token: env_or("SMO_GRAFANA_TOKEN", &file.grafana_token),
                    alert_rules: a
                        .alert_rules
                        .or(file.alert_rules.clone())
                        .unwrap_or_else(|| "prometheus-rule".into()),
                    rules_dir: a.rules_dir.or(file.rules_dir.clone()),
                    scaling_interval: match a.scaling_interval {
                        Some(d) => d,
                        None => file
                            .scaling_interval
                            .as_deref()
                            .map(parse_duration)
                            .transpose()
                            .map_err(|e| anyhow::anyhow!("scaling_interval: {e}"))?
                            .unwrap_or(Duration::from_secs(30)),
                    },
                    rate_window: a
                        .rate_window
                        .or(file.rate_window.clone())
                        .unwrap_or_else(|| "1m".into()),
                },
            };
            server::run(settings, &a.roles, server::shutdown_on_signals()).await?;
        }
        Command::Sim(a) => return sim(a).await,
        Command::Scaler { .. } => {
            eprintln!(
                "smo has no separate scaler: the scheduler enqueues a scale tick per running graph every \
                 scaling_interval and workers run them. Run: smo run --role scheduler,worker"
            );
            return Ok(2);
        }
        Command::Bench(BenchCmd::Descriptor) => {
            let r = smo::bench::descriptor()?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "worst accepted descriptor: {} services, {:.1} MiB; parse {:.2} s, place + render {:.2} s ({} objects); RSS {:.0} MiB before, peak {:.0} MiB",
                    r.services,
                    r.bytes as f64 / (1024.0 * 1024.0),
                    r.parse_secs,
                    r.plan_secs,
                    r.objects,
                    r.rss_before_mib,
                    r.peak_rss_mib
                );
            }
        }
        Command::Bench(BenchCmd::Console { graphs, requests }) => {
            let url = smo::cli::scratch_database(&database_url).await?;
            let pool = connect(&url, 8).await?;
            let r = smo::bench::console(pool, graphs, requests, |m| eprintln!("… {m}")).await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "console over {} graphs, {} requests per page (target: < 50 ms for 1,000 graphs):",
                    r.graphs, r.requests
                );
                for p in &r.pages {
                    println!(
                        "  GET {:<22} {:>9} bytes  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
                        p.path, p.bytes, p.p50_ms, p.p99_ms, p.max_ms
                    );
                }
                println!("  stylesheet + script compiled in: {} bytes", r.asset_bytes);
            }
        }
        Command::Bench(BenchCmd::Placement {
            instances,
            sizes,
            headroom,
            seed,
        }) => {
            let sizes = sizes
                .iter()
                .map(|s| {
                    s.split_once('x')
                        .and_then(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?)))
                        .ok_or_else(|| {
                            anyhow::anyhow!("--sizes: {s:?} is not <services>x<clusters>")
                        })
                })
                .collect::<anyhow::Result<Vec<(usize, usize)>>>()?;
            let r =
                smo::bench::placement(&sizes, &headroom, instances, seed, |m| eprintln!("… {m}"));
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "placement over {} seeded instances per row (targets: max < 100 ms at 200×50, < 1 s at 2000×200, < 10 s at 10000×1000):",
                    r.instances
                );
                for row in &r.rows {
                    println!(
                        "  {:>9} {:>4}× {:<8}  p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms (seed {})  optimal {} not proven {} infeasible {}",
                        row.size,
                        row.headroom,
                        row.kind,
                        row.p50_ms,
                        row.p99_ms,
                        row.max_ms,
                        row.slowest_seed,
                        row.optimal,
                        row.not_proven,
                        row.infeasible
                    );
                }
            }
        }
        Command::Bench(BenchCmd::Reads {
            graphs,
            connections,
            secs,
        }) => {
            let url = smo::cli::scratch_database(&database_url).await?;
            // What `smo run --role api` gives the API.
            let pool = connect(&url, 12).await?;
            let r =
                smo::bench::reads(pool, graphs, connections, secs, |m| eprintln!("… {m}")).await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "reads over {} graphs, {} connections, {} s per route (target: ≥ 10,000 req/s, p99 < 10 ms):",
                    r.graphs, r.connections, r.secs
                );
                for p in &r.routes {
                    println!(
                        "  GET {:<18} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests, {})",
                        p.path, p.req_per_sec, p.p50_ms, p.p99_ms, p.requests, p.client
                    );
                }
            }
        }
        Command::Bench(BenchCmd::Deploy {
            graphs,
            services,
            workers,
            clients,
            kubeconfig,
        }) => {
            let url = smo::cli::scratch_database(&database_url).await?;
            // The sim runs in this process unless a federation is named.
            let mut _sim = None;
            let kubeconfig = match kubeconfig {
                Some(k) => k,
                None => {
                    let (addr, handle) =
                        smo_sim::Sim::new(smo_sim::SimConfig::demo()).spawn_on("127.0.0.1:0")?;
                    _sim = Some(handle);
                    let path =
                        std::env::temp_dir().join(format!("smo-bench-{}.kubeconfig", addr.port()));
                    std::fs::write(&path, smo_sim::kubeconfig_yaml(&format!("http://{addr}")))?;
                    path
                }
            };
            let r = smo::bench::deploy(
                smo::bench::DeployBench {
                    database_url: url,
                    kubeconfig,
                    smo_binary: std::env::current_exe()?,
                    graphs,
                    services,
                    workers,
                    clients,
                },
                |m| eprintln!("… {m}"),
            )
            .await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "deploy: {} graphs × {} services, {} worker processes: {:.1} s, {:.1} graphs/s; submit→Running p50 {:.2} s, p99 {:.2} s; {} deploy jobs retried (target: 1,000 graphs < 60 s, none retried)",
                    r.graphs,
                    r.services_per_graph,
                    r.workers,
                    r.total_secs,
                    r.graphs_per_sec,
                    r.p50_secs,
                    r.p99_secs,
                    r.retried_jobs
                );
            }
        }
        Command::Bench(BenchCmd::ScaleRound {
            graphs,
            changing,
            workers,
            concurrency,
        }) => {
            if !(0.0..=1.0).contains(&changing) {
                anyhow::bail!("--changing must be between 0 and 1, got {changing}");
            }
            let url = smo::cli::scratch_database(&database_url).await?;
            let pool = connect(&url, (workers * concurrency + 10) as u32).await?;
            let mut reports = Vec::new();
            for n in graphs {
                let hot = (n as f64 * changing).round() as usize;
                let r = smo::bench::scale_round(pool.clone(), n, hot, workers, concurrency, |m| {
                    eprintln!("… {m}")
                })
                .await?;
                if out != Output::Json {
                    let p = |f: &smo::bench::RoundFigures| {
                        format!(
                            "{:.2} s (load {} ms, rates {} ms, solve {} ms, {} shards)",
                            f.secs, f.plan.load_ms, f.plan.query_ms, f.plan.solve_ms, f.plan.shards
                        )
                    };
                    println!(
                        "scale round: {} graphs × {} services on {} workers × {}: {} of them scaled: {}; steady round: {} (target at 100,000 graphs: < 30 s)",
                        r.graphs,
                        r.services_per_graph,
                        r.workers,
                        r.concurrency,
                        r.changing_graphs,
                        p(&r.round),
                        p(&r.steady)
                    );
                }
                reports.push(r);
            }
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
        }
        Command::Placement(PlacementCmd::Solve { input, first_fit }) => {
            return solve(&input, first_fit, out);
        }
        Command::Migrate => {
            let pool = connect(&database_url, 2).await?;
            server::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::Openapi => print!("{}", smo::http::openapi_yaml()),
        Command::Status => return status(&client, &api_url, out).await,
        Command::Dashboard => println!(
            "{}",
            serde_json::to_string_pretty(&smo::monitoring::render_smo_dashboard().model)?
        ),
        Command::Cluster(ClusterCmd::List) => {
            let clusters = client.list_clusters().await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&clusters)?);
                return Ok(0);
            }
            let mut t = smo::cli::table(&[
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
        Command::Cluster(ClusterCmd::Sync { wait }) => {
            let accepted = client.sync_clusters().await?;
            return follow(&client, &accepted, wait, out).await;
        }
        Command::Graph(cmd) => return graph(&client, cmd, out).await,
    }
    Ok(0)
}

/// Largest problem file read: far above any real federation, far below memory trouble.
const MAX_PROBLEM_BYTES: u64 = 256 * 1024 * 1024;

fn solve(input: &std::path::Path, first_fit: bool, out: Output) -> anyhow::Result<u8> {
    let mut text = String::new();
    let read = if input.as_os_str() == "-" {
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::io::stdin(), MAX_PROBLEM_BYTES + 1),
            &mut text,
        )
    } else {
        std::fs::File::open(input).and_then(|f| {
            std::io::Read::read_to_string(
                &mut std::io::Read::take(f, MAX_PROBLEM_BYTES + 1),
                &mut text,
            )
        })
    };
    read.map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    if text.len() as u64 > MAX_PROBLEM_BYTES {
        anyhow::bail!("{}: larger than {MAX_PROBLEM_BYTES} bytes", input.display());
    }
    let problem: smo::placement::Problem = serde_json::from_str(&text)
        .map_err(|e| BadInput(format!("{}: not a placement problem: {e}", input.display())))?;
    let result = if first_fit {
        smo::placement::first_fit(&problem)
    } else {
        smo::placement::solve_problem(&problem)
    };
    let solution = match result {
        Ok(s) => s,
        Err(e @ smo::placement::PlacementError::Invalid(_)) => {
            return Err(BadInput(e.to_string()).into());
        }
        Err(e) => {
            if out == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"status": "infeasible", "error": e.to_string()})
                    )?
                );
            } else {
                eprintln!("error: {e}");
            }
            return Ok(1);
        }
    };
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(&solution)?);
        return Ok(0);
    }
    let status = match &solution.status {
        smo::placement::SolveStatus::Optimal { gap } => format!("proven optimal (gap {gap:.2e})"),
        smo::placement::SolveStatus::Feasible { gap } => {
            format!("feasible, not proven optimal (gap {gap:.2e})")
        }
        smo::placement::SolveStatus::Heuristic => {
            "first-fit heuristic (no optimality claim)".into()
        }
    };
    println!("status:    {status}");
    let o = &solution.objective;
    println!(
        "objective: {:.4} (deployments {}, moves {}, cost {:.2}, carbon {:.2}, max utilisation {:.2})",
        o.total, o.deployments, o.moves, o.cost, o.carbon, o.max_utilisation
    );
    println!();
    let mut t = smo::cli::table(&["service", "cluster(s)", "moved"]);
    for p in &solution.placement {
        let clusters = p
            .clusters
            .iter()
            .map(|c| format!("{} ×{}", c.cluster, c.replicas))
            .collect::<Vec<_>>()
            .join(", ");
        let moved = solution.moved.iter().any(|m| m.service == p.service);
        t.add_row(vec![
            p.service.clone(),
            clusters,
            if moved { "yes".into() } else { "-".into() },
        ]);
    }
    println!("{t}\nwhy:");
    for e in &solution.explanations {
        println!("  {}", e.summary);
    }
    Ok(0)
}

/// The descriptor at `path`: the file itself, or the only *.yaml/*.yml/*.json in a directory.
fn read_descriptor(path: &std::path::Path) -> anyhow::Result<(String, Vec<u8>)> {
    let file = if path.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        found.sort();
        match found.len() {
            1 => found.remove(0),
            0 => {
                return Err(BadInput(format!(
                    "{}: no *.yaml, *.yml or *.json descriptor",
                    path.display()
                ))
                .into());
            }
            _ => {
                return Err(BadInput(format!(
                    "{}: several descriptors ({}); name one",
                    path.display(),
                    found.len()
                ))
                .into());
            }
        }
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "graph.yaml".into());
    Ok((name, bytes))
}

/// Input the user must fix: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

async fn sim(a: SimArgs) -> anyhow::Result<u8> {
    if let Some(SimCmd::Load {
        service,
        rate,
        namespace,
        sim_url,
    }) = a.cmd
    {
        if !rate.is_finite() || rate < 0.0 {
            anyhow::bail!("rate: must be a finite number >= 0, got {rate}");
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/sim/load", sim_url.trim_end_matches('/')))
            .json(&serde_json::json!({"service": service, "namespace": namespace, "rate": rate}))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the sim at {sim_url}: {e}"))?;
        if !resp.status().is_success() {
            anyhow::bail!("the sim refused: {}", resp.text().await.unwrap_or_default());
        }
        println!("{namespace}/{service}: {rate} requests/s");
        return Ok(0);
    }
    let config = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            smo_sim::SimConfig::from_yaml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => smo_sim::SimConfig::demo(),
    };
    let mut config = config;
    config.state_file = a.state.clone();
    config.write_latency_ms = u64::try_from(a.write_latency.as_millis()).unwrap_or(u64::MAX);
    if let Some(dir) = &a.crds {
        config.schemas = smo_sim::crd_schemas(dir)
            .map_err(|e| anyhow::anyhow!("--crds {}: {e}", dir.display()))?;
    }
    let listener = std::net::TcpListener::bind(&a.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", a.listen))?;
    let addr = listener.local_addr()?;
    let path = PathBuf::from(&a.kubeconfig_out);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, smo_sim::kubeconfig_yaml(&format!("http://{addr}")))?;
    eprintln!(
        "smo sim: {} member clusters ({}) on http://{addr}; kubeconfig written to {}",
        config.clusters.len(),
        config
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        path.display()
    );
    let shutdown = server::shutdown_on_signals();
    smo_sim::serve(
        smo_sim::Sim::new(config),
        listener,
        shutdown.cancelled_owned(),
    )
    .await?;
    Ok(0)
}

async fn graph(client: &Client, cmd: GraphCmd, out: Output) -> anyhow::Result<u8> {
    match cmd {
        GraphCmd::Deploy {
            file,
            project,
            wait,
            dry_run,
        } => {
            let arg = file.to_string_lossy();
            let body = if ["oci://", "http://", "https://"]
                .iter()
                .any(|p| arg.starts_with(p))
            {
                serde_json::to_vec(&serde_json::json!({ "artifact": arg }))?
            } else if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                b
            } else {
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
            };
            match client
                .deploy_graph(&project, dry_run.then_some(true), body)
                .await?
            {
                DeployGraphResponse::Ok(answer) => {
                    warn(&answer.warnings);
                    print_dry_run(&answer, out)?;
                    Ok(0)
                }
                DeployGraphResponse::Accepted(accepted) => {
                    warn(&accepted.warnings);
                    follow(client, &accepted, wait, out).await
                }
            }
        }
        GraphCmd::Package {
            path,
            out: out_path,
        } => {
            let (name, descriptor) = read_descriptor(&path)?;
            let parsed = smo::hdag::parse(&descriptor)
                .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
            let tgz = smo::oci::package(&descriptor, &name)?;
            let target = out_path.unwrap_or_else(|| {
                PathBuf::from(format!("{}-{}.tgz", parsed.graph.id, parsed.graph.version))
            });
            std::fs::write(&target, &tgz)
                .map_err(|e| anyhow::anyhow!("{}: {e}", target.display()))?;
            println!(
                "packaged graph {} into {} ({} bytes)",
                parsed.graph.id,
                target.display(),
                tgz.len()
            );
            Ok(0)
        }
        GraphCmd::Push {
            file,
            reference,
            plain_http,
        } => {
            let r = smo::oci::parse_ref(&reference).map_err(|e| BadInput(e.to_string()))?;
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let tgz = if bytes.starts_with(&[0x1f, 0x8b]) {
                bytes
            } else {
                smo::hdag::parse(&bytes)
                    .map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "graph.yaml".into());
                smo::oci::package(&bytes, &name)?
            };
            let file_settings = settings::load_file().map_err(anyhow::Error::msg)?;
            let mut reg = file_settings.registry();
            reg.plain_http |= plain_http;
            let digest = reg
                .client_for(Some(&r.registry))
                .push_descriptor(&r, &tgz)
                .await?;
            if out == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"reference": reference, "digest": digest})
                    )?
                );
            } else {
                println!("pushed {reference} ({digest})");
            }
            Ok(0)
        }
        GraphCmd::Validate { file } => {
            let body =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            match smo::hdag::parse(&body) {
                Ok(parsed) => {
                    for w in &parsed.warnings {
                        eprintln!("warning: {}: {}", w.path, w.message);
                    }
                    if out == Output::Json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(
                                &serde_json::json!({"valid": true, "graph": parsed.graph.id, "warnings": parsed.warnings})
                            )?
                        );
                    } else {
                        println!(
                            "{}: graph {} is valid ({} services)",
                            file.display(),
                            parsed.graph.id,
                            parsed.graph.services.len()
                        );
                    }
                    Ok(0)
                }
                Err(e) => {
                    if out == Output::Json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(
                                &serde_json::json!({"valid": false, "problems": e.problems()})
                            )?
                        );
                    } else {
                        eprintln!("error: {} is not a valid descriptor:", file.display());
                        for p in e.problems() {
                            eprintln!("  {}: {}", p.path, p.message);
                        }
                    }
                    Ok(2)
                }
            }
        }
        GraphCmd::List { project } => {
            let graphs = match project {
                Some(p) => client.list_project_graphs(&p, None, None).await?,
                None => client.list_graphs(None, None).await?,
            };
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&graphs)?);
                return Ok(0);
            }
            let mut t =
                smo::cli::table(&["name", "project", "version", "status", "desired", "updated"]);
            for g in &graphs {
                t.add_row(vec![
                    g.name.clone(),
                    g.project.clone(),
                    g.version.clone(),
                    g.status.clone(),
                    g.desired.clone(),
                    g.updated_at.clone(),
                ]);
            }
            println!("{t}");
            if graphs.is_empty() {
                println!("(no graphs)");
            }
            Ok(0)
        }
        GraphCmd::Describe { name } => {
            let g = client.get_graph(&name).await?;
            let jobs = client.list_graph_jobs(&name, Some(5)).await?;
            let history = client.graph_history(&name, Some(10)).await?;
            if out == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"graph": g, "jobs": jobs, "history": history})
                    )?
                );
                return Ok(0);
            }
            describe(&g, &jobs, &history);
            Ok(0)
        }
        GraphCmd::Start(a) => {
            follow(client, &client.start_graph(&a.name).await?, a.wait, out).await
        }
        GraphCmd::Stop(a) => follow(client, &client.stop_graph(&a.name).await?, a.wait, out).await,
        GraphCmd::RePlace(a) => {
            follow(client, &client.replace_graph(&a.name).await?, a.wait, out).await
        }
        GraphCmd::Remove(a) => {
            follow(client, &client.remove_graph(&a.name).await?, a.wait, out).await
        }
    }
}

fn warn(warnings: &[ProblemItem]) {
    for w in warnings {
        eprintln!("warning: {}: {}", w.path, w.message);
    }
}

/// Prints the accepted job; with `wait`, follows it with a progress line until it ends.
async fn follow(
    client: &Client,
    accepted: &JobAccepted,
    wait: bool,
    out: Output,
) -> anyhow::Result<u8> {
    let id = &accepted.job_id;
    if !wait {
        if out == Output::Json {
            println!("{}", serde_json::to_string_pretty(accepted)?);
        } else {
            let what = if accepted.graph.is_empty() {
                String::new()
            } else {
                format!(" for graph {}", accepted.graph)
            };
            println!(
                "{} job {id} accepted{what}; follow it with `smo-admin jobs show {id}`",
                accepted.kind
            );
        }
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last = String::new();
    let job = loop {
        let job: JobView = client.get_job(id).await?;
        let state = job.state.clone();
        let line = format!(
            "{} {id}: {state} (attempt {}/{}) {:.1}s",
            job.kind,
            job.attempt,
            job.max_attempts,
            started.elapsed().as_secs_f64()
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else if state != last {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
        last = state.clone();
        if matches!(state.as_str(), "succeeded" | "dead" | "cancelled") {
            if tty {
                eprintln!();
            }
            break job;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    }
    match job.state.as_str() {
        "succeeded" => {
            if out != Output::Json {
                println!(
                    "{} {id} succeeded in {:.1}s",
                    job.kind,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(0)
        }
        state => {
            eprintln!("error: {} {id} {state}: {}", job.kind, opt(&job.last_error));
            Ok(1)
        }
    }
}

fn print_dry_run(answer: &DryRun, out: Output) -> anyhow::Result<()> {
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(answer)?);
        return Ok(());
    }
    println!(
        "dry run for graph {} — nothing stored, nothing applied",
        answer.graph
    );
    println!("\nplacement:");
    for e in answer.solution["explanations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("  {}", s(&e["summary"]));
    }
    if answer.solution.is_null() {
        for (svc, c) in &answer.placement {
            println!("  {svc} → {c}");
        }
    }
    if !answer.helm_services.is_empty() {
        println!(
            "\nHelm-chart services (installed by the Helm runner): {}",
            answer.helm_services.join(", ")
        );
    }
    println!("\nobjects that would be applied:");
    for o in &answer.objects {
        println!("---");
        print!("{}", serde_norway::to_string(o)?);
    }
    Ok(())
}

fn describe(g: &GraphDetail, jobs: &[JobView], history: &[DecisionView]) {
    println!(
        "graph:       {} (project {}, version {}, revision {})",
        g.name, g.project, g.version, g.revision
    );
    println!("status:      {} (desired: {})", g.status, g.desired);
    if let Some(m) = &g.status_message {
        println!("message:     {m}");
    }
    if let Some(d) = &g.description {
        println!("description: {}", d.trim());
    }
    println!("\nservices:");
    let mut t = smo::cli::table(&[
        "service",
        "status",
        "cluster",
        "ready/replicas",
        "cpu",
        "memory",
        "gpu",
        "artifact",
    ]);
    for sv in &g.services {
        let status = if sv.conditional {
            format!("{} (on event)", sv.status)
        } else {
            sv.status.clone()
        };
        t.add_row(vec![
            sv.name.clone(),
            status,
            opt(&sv.cluster),
            format!("{}/{}", sv.ready, sv.replicas),
            format!("{}m", sv.cpu_millis),
            mib(sv.memory_bytes),
            if sv.gpu { "yes".into() } else { "-".into() },
            sv.artifact.clone(),
        ]);
    }
    println!("{t}");
    if !g.dashboards.is_empty() {
        println!("\ndashboards:");
        for (k, v) in &g.dashboards {
            println!("  {k}: {v}");
        }
    }
    println!("\nrecent jobs:");
    for j in jobs {
        let err = match &j.last_error {
            Some(e) => format!(" — {e}"),
            None => String::new(),
        };
        println!(
            "  {} {:<10} {:<9} attempt {}/{}{err}",
            j.id, j.kind, j.state, j.attempt, j.max_attempts
        );
    }
    println!("\ndecisions (newest first):");
    for d in history {
        println!("  {} {:<9} {}", d.at, d.kind, d.message);
        for e in d.outcome["explanations"].as_array().into_iter().flatten() {
            println!("      {}", s(&e["summary"]));
        }
    }
}

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

/// A secret from the environment (how the chart passes Secrets), else from the config file.
fn env_or(var: &str, file: &Option<String>) -> Option<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| file.clone())
}

/// `smo status`: three questions to the API (live? ready? the queue?), one line each.
async fn status(client: &Client, api_url: &str, out: Output) -> anyhow::Result<u8> {
    client.healthz().await?;
    let ready = match client.readyz().await {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(503) => Err(e
            .problem()
            .map(|p| p.detail.clone())
            .unwrap_or_else(|| e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let health = smo::metrics::QueueHealth::from_exposition(&client.metrics().await?);
    let healthy = ready.is_ok() && health.workers_alive > 0;
    if out == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "api": api_url,
                "ready": ready.is_ok(),
                "not_ready_because": ready.as_ref().err(),
                "workers_alive": health.workers_alive,
                "waiting": health.waiting.iter().map(|(k, (n, age))| {
                    (k.clone(), json!({ "jobs": n, "oldest_seconds": age }))
                }).collect::<serde_json::Map<_, _>>(),
                "healthy": healthy,
            }))?
        );
        return Ok(u8::from(!healthy));
    }
    println!("api       {api_url}: up");
    match &ready {
        Ok(()) => println!("database  ready"),
        Err(why) => println!("database  NOT ready: {why}"),
    }
    match health.workers_alive {
        0 => println!(
            "workers   none alive: jobs wait until a worker runs (`smo run --role worker`)"
        ),
        n => println!("workers   {n} alive"),
    }
    if health.waiting.is_empty() {
        println!("queue     nothing waiting");
    } else {
        let total: u64 = health.waiting.values().map(|(n, _)| n).sum();
        let oldest = health.waiting.values().map(|(_, a)| *a).fold(0.0, f64::max);
        let per_kind: Vec<String> = health
            .waiting
            .iter()
            .map(|(k, (n, _))| format!("{k} {n}"))
            .collect();
        println!(
            "queue     {total} waiting ({}); oldest {oldest:.1}s",
            per_kind.join(", ")
        );
    }
    Ok(u8::from(!healthy))
}
