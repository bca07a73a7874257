//! `smo bench …`: figures printed, never asserted.

use std::path::PathBuf;

use clap::Subcommand;

use crate::cli::{Output, connect};

#[derive(Subcommand)]
pub(super) enum BenchCmd {
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
    /// placement and re-placement of its perturbed result): p50, p99 and max per size, the
    /// slowest instance's seed, and the slowest instances solved again by the reference model
    /// (CVXPY + HiGHS) beside them. Targets: max < 100 ms at 200×50, < 1 s at 2,000×200, < 10 s
    /// at 10,000×1,000, and never slower than the reference. Needs no database.
    Placement {
        /// Instances per size and capacity.
        #[arg(long, default_value_t = 200)]
        instances: usize,
        /// Sizes as services×clusters, comma-separated.
        #[arg(long, default_value = "20x5,200x50,2000x200", value_delimiter = ',')]
        sizes: Vec<String>,
        /// Capacity as multiples of demand, comma-separated.
        /// (The reference's instances are 1.3; `--headroom 1.05` for tight ones, which can run
        /// to the 60 s time limit.)
        #[arg(long, default_value = "1.3", value_delimiter = ',')]
        headroom: Vec<f64>,
        /// The first seed (to study one slow instance: `--seed S --instances 1`).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Solve each row's N slowest instances again with the reference model (CVXPY +
        /// HiGHS, `scripts/placement-reference` in the venv scripts/setup makes; run from the
        /// checkout) and print both times and objectives. 0: none.
        #[arg(long, default_value_t = 1)]
        reference: usize,
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
        /// Offer this many graphs per second, evenly spread, instead of a burst: submit→Running
        /// then measures latency at that load rather than time spent queued behind the burst.
        #[arg(long)]
        rate: Option<f64>,
        /// Deploy onto this federation instead of a sim started here.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Losing a cluster: running graphs spread over simulated clusters (`--utilisation`), the
    /// busiest lost, then back (real health, failover, move and fail-back jobs on in-process
    /// workers, the sim in-process, a scratch database `<db>_bench`). Prints detection, the joint
    /// solve, seconds until every affected service runs elsewhere beside the ceiling (the same
    /// objects applied straight from one client), moves, clusters over capacity and the
    /// fail-back. Targets at 1,000 graphs × 10 clusters: solve < 2 s, running elsewhere ≤ 30 s.
    Failover {
        /// Running graphs (two services each).
        #[arg(long, default_value_t = 1_000)]
        graphs: usize,
        /// Member clusters.
        #[arg(long, default_value_t = 10)]
        clusters: usize,
        /// In-process workers.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Jobs each worker runs at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// NotReady this long and a cluster is lost (smo run's default is 30s; here only the
        /// health rounds of 1 s add to it).
        #[arg(long, default_value = "2s", value_parser = crate::cli::parse_duration)]
        threshold: std::time::Duration,
        /// Graphs moved back per fail-back round.
        #[arg(long, default_value_t = 200)]
        failback_max_moves: usize,
        /// How full the busiest cluster is before the loss (the others a little less).
        #[arg(long, default_value_t = 0.6)]
        utilisation: f64,
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
        /// Member clusters the graphs are spread over (round-robin); each is solved on its own.
        #[arg(long, default_value_t = 3)]
        clusters: usize,
        /// How full each cluster is before the round (0–1], e.g. 0.85: the changing graphs then
        /// compete for the headroom and HiGHS solves each cluster. Without it every cluster has
        /// 100,000 free cores and takes the closed form.
        #[arg(long)]
        utilisation: Option<f64>,
    },
}

/// Runs one benchmark and prints its figures.
pub(super) async fn run(cmd: BenchCmd, out: Output, database_url: &str) -> anyhow::Result<u8> {
    match cmd {
        BenchCmd::Descriptor => {
            let r = crate::bench::descriptor()?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "worst accepted descriptor: {} services, {:.1} MiB; parse {:.2} s (ceiling, same run: the YAML parser alone into a generic value {:.2} s; ratio {:.1}×), place + render {:.2} s ({} objects); RSS {:.0} MiB before, peak {:.0} MiB",
                    r.services,
                    r.bytes as f64 / (1024.0 * 1024.0),
                    r.parse_secs,
                    r.yaml_only_secs,
                    r.parse_ratio,
                    r.plan_secs,
                    r.objects,
                    r.rss_before_mib,
                    r.peak_rss_mib
                );
            }
        }
        BenchCmd::Console { graphs, requests } => {
            let url = crate::cli::scratch_database(database_url).await?;
            let pool = connect(&url, 8).await?;
            let r = crate::bench::console(pool, graphs, requests, |m| eprintln!("… {m}")).await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "console over {} graphs, {} requests per page (target: < 50 ms for 1,000 graphs):",
                    r.graphs, r.requests
                );
                for p in &r.pages {
                    let note = if p.path == "/healthz" {
                        " (the ceiling: same server and client, no database or rendering)".into()
                    } else {
                        format!(" (p50 {:.1}× the ceiling's)", p.p50_ms / r.pages[0].p50_ms)
                    };
                    println!(
                        "  GET {:<22} {:>9} bytes  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms{note}",
                        p.path, p.bytes, p.p50_ms, p.p99_ms, p.max_ms
                    );
                }
                println!("  stylesheet + script compiled in: {} bytes", r.asset_bytes);
            }
        }
        BenchCmd::Failover {
            graphs,
            clusters,
            workers,
            concurrency,
            threshold,
            failback_max_moves,
            utilisation,
        } => {
            let url = crate::cli::scratch_database(database_url).await?;
            let pool = connect(&url, 24).await?;
            let r = crate::bench::failover(
                pool,
                crate::bench::FailoverBench {
                    graphs,
                    clusters,
                    workers,
                    concurrency,
                    threshold,
                    failback_max_moves,
                    utilisation,
                },
                |m| eprintln!("… {m}"),
            )
            .await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "failover: {} graphs × 2 services on {} clusters, {} lost ({} graphs on it)",
                    r.graphs, r.clusters, r.lost, r.affected
                );
                println!(
                    "  detected lost after      {:>7.2} s (threshold {:?} + health rounds of 1 s)",
                    r.detection_secs, threshold
                );
                println!(
                    "  joint solve              {:>7.2} s ({}), {} services moved, {} graphs stranded",
                    r.solve_secs,
                    if r.optimal {
                        "proven optimal"
                    } else {
                        "not proven optimal"
                    },
                    r.moves,
                    r.stranded
                );
                println!(
                    "  running elsewhere after  {:>7.2} s; ceiling: the same moves from one client (apply, read back) {:.2} s (ratio {:.1}×)",
                    r.running_elsewhere_secs,
                    r.ceiling_apply_secs,
                    r.running_elsewhere_secs / r.ceiling_apply_secs.max(1e-9)
                );
                println!("  clusters over capacity   {:>7}", r.over_capacity);
                println!(
                    "  fail-back: every service home after {:.2} s, in {} round(s)",
                    r.failback_secs, r.failback_rounds
                );
            }
        }
        BenchCmd::Placement {
            instances,
            sizes,
            headroom,
            seed,
            reference,
        } => {
            let sizes = sizes
                .iter()
                .map(|s| super::solve::parse_size(s))
                .collect::<Result<Vec<(usize, usize)>, _>>()?;
            let model = match reference {
                0 => None,
                _ => Some(crate::bench::Reference::find().ok_or_else(|| {
                    anyhow::anyhow!(
                        "the reference model is not installed: run scripts/setup, then this \
                         from the checkout (or --reference 0)"
                    )
                })?),
            };
            let r = crate::bench::placement(
                &sizes,
                &headroom,
                instances,
                seed,
                model.as_ref().map(|m| (m, reference)),
                |m| eprintln!("… {m}"),
            )?;
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
                    for c in &row.reference {
                        println!(
                            "      seed {:>4}: smo {:>8.1} ms, reference (CVXPY + HiGHS) {:>8.1} ms (HiGHS {:.1} ms, {}), {:.2}× smo's — objective {} vs {}",
                            c.seed,
                            c.smo_ms,
                            c.reference_ms,
                            c.reference_solver_ms,
                            c.reference_status,
                            c.reference_ms / c.smo_ms,
                            c.smo_objective,
                            c.reference_objective
                        );
                    }
                }
            }
        }
        BenchCmd::Reads {
            graphs,
            connections,
            secs,
        } => {
            let url = crate::cli::scratch_database(database_url).await?;
            // What `smo run --role api` gives the API.
            let pool = connect(&url, 12).await?;
            let r = crate::bench::reads(pool, graphs, connections, secs, |m| eprintln!("… {m}"))
                .await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "reads over {} graphs, {} connections, {} s per route (target: ≥ 10,000 req/s, p99 < 10 ms):",
                    r.graphs, r.connections, r.secs
                );
                let ceiling = r
                    .routes
                    .iter()
                    .find(|p| p.path == "/healthz")
                    .map(|p| p.req_per_sec);
                for p in &r.routes {
                    let vs = match ceiling {
                        Some(_) if p.path == "/healthz" => "the ceiling".to_string(),
                        Some(c) => format!("{:.0} % of /healthz", 100.0 * p.req_per_sec / c),
                        None => String::new(),
                    };
                    println!(
                        "  GET {:<18} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests, {}; {vs})",
                        p.path, p.req_per_sec, p.p50_ms, p.p99_ms, p.requests, p.client
                    );
                }
            }
        }
        BenchCmd::Deploy {
            graphs,
            services,
            workers,
            clients,
            rate,
            kubeconfig,
        } => {
            let url = crate::cli::scratch_database(database_url).await?;
            // The sim runs in this process unless a federation is named: on a runtime of its
            // own whose threads are named `smo-sim`, so its CPU is told apart from the API's.
            let mut _sim = None;
            let kubeconfig = match kubeconfig {
                Some(k) => k,
                None => {
                    let (addr, guard) =
                        smo_sim::Sim::new(smo_sim::SimConfig::demo()).spawn_apart("127.0.0.1:0")?;
                    _sim = Some(guard);
                    let path =
                        std::env::temp_dir().join(format!("smo-bench-{}.kubeconfig", addr.port()));
                    std::fs::write(&path, smo_sim::kubeconfig_yaml(&format!("http://{addr}")))?;
                    path
                }
            };
            let r = crate::bench::deploy(
                crate::bench::DeployBench {
                    database_url: url,
                    kubeconfig,
                    smo_binary: std::env::current_exe()?,
                    graphs,
                    services,
                    workers,
                    clients,
                    rate,
                },
                |m| eprintln!("… {m}"),
            )
            .await?;
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let offered = r
                    .offered_rate
                    .map_or("a burst".to_string(), |o| format!("{o} graphs/s offered"));
                println!(
                    "deploy: {} graphs × {} services, {} worker processes, {offered}: {:.1} s, {:.1} graphs/s; submit→Running p50 {:.2} s, p99 {:.2} s; {} deploy jobs retried (target: 1,000 graphs < 60 s, p99 < 1 s, none retried)",
                    r.graphs,
                    r.services_per_graph,
                    r.workers,
                    r.total_secs,
                    r.graphs_per_sec,
                    r.p50_secs,
                    r.p99_secs,
                    r.retried_jobs
                );
                println!(
                    "ceiling, same run: the same objects applied from one client, each graph's Deployments read back: {:.1} s ({:.0} graphs/s); ratio {:.1}×",
                    r.ceiling_secs,
                    r.graphs as f64 / r.ceiling_secs.max(1e-9),
                    r.total_secs / r.ceiling_secs.max(1e-9)
                );
                let part = |name: &str, secs: Option<f64>| match secs {
                    Some(s) => format!(
                        "{name} {s:.1} s ({:.1} ms/graph)",
                        s * 1000.0 / r.graphs as f64
                    ),
                    None => format!("{name} n/a"),
                };
                println!(
                    "CPU over the run ({:.1} s × 2 cores = {:.1} s available): {}, {}, {}, {}",
                    r.total_secs,
                    r.total_secs * 2.0,
                    part("API + clients", r.cpu.api_and_clients),
                    part("sim", r.cpu.sim),
                    part("workers", r.cpu.workers),
                    part("PostgreSQL", r.cpu.postgres),
                );
            }
        }
        BenchCmd::ScaleRound {
            graphs,
            changing,
            workers,
            concurrency,
            clusters,
            utilisation,
        } => {
            if !(0.0..=1.0).contains(&changing) {
                anyhow::bail!("--changing must be between 0 and 1, got {changing}");
            }
            let url = crate::cli::scratch_database(database_url).await?;
            let pool = connect(&url, (workers * concurrency + 10) as u32).await?;
            let mut reports = Vec::new();
            for n in graphs {
                let hot = (n as f64 * changing).round() as usize;
                let fleet = crate::bench::ScaleFleet {
                    clusters,
                    utilisation,
                };
                let r = crate::bench::scale_round(
                    pool.clone(),
                    n,
                    hot,
                    workers,
                    concurrency,
                    fleet,
                    |m| eprintln!("… {m}"),
                )
                .await?;
                if out != Output::Json {
                    let p = |f: &crate::bench::RoundFigures| {
                        format!(
                            "{:.2} s (load {} ms, rates {} ms, solve {} ms, {} shards; cluster solves: {} HiGHS, {} closed form, {} greedy, p99 {:.1} ms, max {:.1} ms)",
                            f.secs,
                            f.plan.load_ms,
                            f.plan.query_ms,
                            f.plan.solve_ms,
                            f.plan.shards,
                            f.plan.milp_solves,
                            f.plan.closed_form_solves,
                            f.plan.greedy_solves,
                            f.plan.cluster_solve_p99_ms,
                            f.plan.cluster_solve_max_ms
                        )
                    };
                    let full = r
                        .utilisation
                        .map_or("100,000 free cores each".to_string(), |u| {
                            format!("{:.0} % full", u * 100.0)
                        });
                    println!(
                        "scale round: {} graphs × {} services on {} clusters ({full}), {} workers × {}: {} of them under more load and {} cooled down; {} services scaled up, {} down: {}; steady round: {} (target at 100,000 graphs: < 30 s)",
                        r.graphs,
                        r.services_per_graph,
                        r.clusters,
                        r.workers,
                        r.concurrency,
                        r.changing_graphs,
                        r.cooling_graphs,
                        r.scaled_services,
                        r.scaled_down_services,
                        p(&r.round),
                        p(&r.steady)
                    );
                    println!(
                        "  ceiling, same run: the round's {} replica changes made on a federation seeded as the round's, straight from one client, each read back (no queue, lock, plan or record): {:.2} s; ratio {:.1}×",
                        r.ceiling.patches, r.ceiling.secs, r.ceiling.ratio
                    );
                }
                reports.push(r);
            }
            if out == Output::Json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
        }
    }
    Ok(0)
}
