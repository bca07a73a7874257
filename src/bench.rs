//! `smo bench …`: figures for the README, each from real code paths. `scale-round` times scaling
//! rounds over many running graphs with the real job engine and round code (store, Prometheus
//! client, optimiser, shards, federation client) against a stub Prometheus that answers the
//! fleet query as a real one does, and the simulated federation.

mod failover;

pub use failover::{FailoverBench, FailoverReport, failover};

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use poem::{EndpointExt, Route, handler, listener::TcpAcceptor, web::Data};
use serde::Serialize;
use smo_jobs::{JobContext, Queue, Worker, WorkerConfig, worker_name};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    federation::Federation,
    monitoring::io::Prometheus,
    reconcile::{self, App, Monitoring, RoundReport, RulesTarget, ScaleFanoutJob},
};

/// The figures of one round.
#[derive(Debug, Serialize)]
pub struct ScaleRoundReport {
    /// Running graphs.
    pub graphs: usize,
    /// Services per graph.
    pub services_per_graph: usize,
    /// Worker instances.
    pub workers: usize,
    /// Jobs each worker runs at once.
    pub concurrency: usize,
    /// Graphs whose load changed before the round (their services want 3 replicas instead of 1).
    pub changing_graphs: usize,
    /// Member clusters the graphs are spread over.
    pub clusters: usize,
    /// How full each cluster was before the round (`None`: 100,000 free cores each, so every
    /// cluster takes the closed form and no solver runs).
    pub utilisation: Option<f64>,
    /// Services the first round scaled up (all of the changing graphs' when capacity allows).
    pub scaled_services: i64,
    /// Graphs that cooled down (seeded at 3 replicas, load for 1) beside the changing ones, under
    /// a utilisation; and how many of their services the round scaled down to make room.
    pub cooling_graphs: usize,
    pub scaled_down_services: i64,
    /// Seconds to set the graphs up (not part of the round).
    pub setup_secs: f64,
    /// The first round: changes planned, applied through the federation and recorded.
    pub round: RoundFigures,
    /// A second round on the same rates: nothing changes (the steady state).
    pub steady: RoundFigures,
}

/// One round's figures.
#[derive(Debug, Serialize)]
pub struct RoundFigures {
    /// Seconds from the round job's enqueue to its last shard's acknowledgement.
    pub secs: f64,
    /// What the planning job reported (load / query / solve / enqueue times, counts).
    pub plan: RoundReport,
}

/// Answers Prometheus's `/api/v1/query` as a real server does: the fleet query gets one series
/// per deployment (`body`), any other query one sample of 5 req/s.
#[handler]
fn stub_query(req: &poem::Request, Data(body): Data<&Arc<Vec<u8>>>) -> poem::Response {
    let fleet = req
        .uri()
        .query()
        .is_some_and(|q| q.contains("sum%20by") || q.contains("sum+by"));
    let body = if fleet {
        body.as_ref().clone()
    } else {
        br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0,"5"]}]}}"#
            .to_vec()
    };
    poem::Response::builder()
        .content_type("application/json")
        .body(body)
}

/// The graph indices whose load changes: `changing` of `graphs`, spread evenly.
fn changing_set(graphs: usize, changing: usize) -> Vec<usize> {
    (0..changing)
        .map(|k| k * graphs / changing.max(1))
        .collect()
}

/// The stub's answer to the fleet query: 25 req/s (3 replicas at α = 10) for the services of the
/// changing graphs, 5 req/s (1 replica) for the others.
fn fleet_answer(graphs: usize, changing: &[usize]) -> Vec<u8> {
    let hot: std::collections::HashSet<usize> = changing.iter().copied().collect();
    let mut out = String::with_capacity(graphs * 3 * 90 + 100);
    out.push_str(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for i in 0..graphs {
        let rate = if hot.contains(&i) { "25" } else { "5" };
        for k in 0..3 {
            if i > 0 || k > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                r#"{{"metric":{{"namespace":"bench","service":"g{i}-s{k}"}},"value":[1733300000.123,"{rate}"]}}"#
            ));
        }
    }
    out.push_str("]}}");
    out.into_bytes()
}

/// A simulated federation holding the Deployments of the changing graphs (so their scale patches
/// land on real objects), loaded in the sim's state-file format.
async fn seeded_sim(
    changing: &[usize],
    cooling: &[usize],
    clusters: &[SeededCluster],
) -> anyhow::Result<(Federation, smo_sim::SimHandle, ScratchDir)> {
    let dir = ScratchDir::new("scale-bench")?;
    let mut objects = vec![serde_json::json!({"seq": 1, "object": {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}})];
    let graphs = changing
        .iter()
        .map(|i| (i, 1))
        .chain(cooling.iter().map(|i| (i, 3)));
    for (n, (i, replicas)) in graphs.enumerate() {
        for k in 0..3 {
            let name = format!("g{i}-s{k}");
            objects.push(serde_json::json!({"seq": 2 + n * 3 + k, "object": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "bench", "generation": 1},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "s", "image": "example/s:1",
                                               "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}}));
        }
    }
    // The federation has the clusters smo's table has, each with the room smo's table says is
    // free (the sim holds only the changing graphs' Deployments, unscheduled): a re-placement's
    // cluster sync then sees the same fleet.
    let sim = smo_sim::Sim::new(smo_sim::SimConfig {
        clusters: clusters
            .iter()
            .map(|c| smo_sim::SimCluster {
                name: c.name.clone(),
                cpu: c.free,
                memory: "1Ti".into(),
                gpus: 0,
                labels: Default::default(),
                ready: true,
                nodes: 1000,
            })
            .collect(),
        ..smo_sim::SimConfig::default()
    });
    sim.load_objects(
        &serde_json::json!({"resourceVersion": objects.len() + 1, "objects": objects}),
    );
    let (addr, handle) = sim.spawn_on("127.0.0.1:0")?;
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        smo_sim::kubeconfig_yaml(&format!("http://{addr}")),
    )?;
    let federation = Federation::from_kubeconfig(&kubeconfig).await?;
    Ok((federation, handle, dir))
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(what: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "smo-{what}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fleet a scaling round runs over: how many clusters, how full.
#[derive(Debug, Clone, Copy)]
pub struct ScaleFleet {
    pub clusters: usize,
    /// Each cluster's CPU in use before the round over its allocatable (0–1]; `None` for
    /// clusters with 100,000 free cores.
    pub utilisation: Option<f64>,
}

impl Default for ScaleFleet {
    /// Three clusters with room to spare: what the reads and console benchmarks stand on.
    fn default() -> Self {
        ScaleFleet {
            clusters: 3,
            utilisation: None,
        }
    }
}

/// Runs two rounds over `graphs` running graphs of three services each, `changing` of them under
/// more load, on `pool` (a scratch database: its smo tables are emptied).
pub async fn scale_round(
    pool: PgPool,
    graphs: usize,
    changing: usize,
    workers: usize,
    concurrency: usize,
    fleet: ScaleFleet,
    progress: impl Fn(&str),
) -> anyhow::Result<ScaleRoundReport> {
    anyhow::ensure!(
        graphs > 0 && workers > 0 && concurrency > 0 && fleet.clusters > 0,
        "graphs, workers, concurrency and clusters must be at least 1"
    );
    anyhow::ensure!(
        fleet
            .utilisation
            .is_none_or(|u| u.is_finite() && u > 0.0 && u <= 1.0),
        "--utilisation must be in (0, 1]"
    );
    anyhow::ensure!(changing <= graphs, "--changing exceeds --graphs");
    progress(&format!(
        "creating {graphs} running graphs of 3 services, {changing} of them under more load…"
    ));
    let started = Instant::now();
    let hot = changing_set(graphs, changing);
    // On full clusters, beside each hot graph one that cooled down (3 replicas, load for 1): the
    // room the hot ones need must come from those, and choosing which is HiGHS's knapsack.
    let cooling: Vec<usize> = match fleet.utilisation {
        Some(_) => {
            let is_hot: std::collections::HashSet<usize> = hot.iter().copied().collect();
            hot.iter()
                .map(|i| i + 1)
                .filter(|i| *i < graphs && !is_hot.contains(i))
                .collect()
        }
        None => Vec::new(),
    };
    let seeded = seed_running_graphs(&pool, graphs, fleet, &cooling).await?;
    let (federation, _sim, _dir) = seeded_sim(&hot, &cooling, &seeded).await?;
    let answer = Arc::new(fleet_answer(graphs, &hot));
    let setup_secs = started.elapsed().as_secs_f64();

    // A stub Prometheus on a free port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let prom_url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server = poem::Server::new_with_acceptor(TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(
            Route::new().at("/api/v1/query", stub_query).data(answer),
            stop.clone().cancelled_owned(),
            None,
        );
    tokio::spawn(server);

    let app = App {
        pool: pool.clone(),
        federation: Some(federation),
        monitoring: Monitoring {
            prometheus: Some(Prometheus::new(&prom_url, Duration::from_secs(60))),
            grafana: None,
            rules: RulesTarget::None,
            rate_window: "1m".into(),
        },
        helm: None,
        failover: Default::default(),
    };
    let reports: Arc<Mutex<Vec<RoundReport>>> = Arc::default();
    let queue = Queue::new(pool.clone());
    let mut handles = Vec::new();
    for w in 0..workers {
        // The real round, with its report kept for the figures.
        let (app_w, reports) = (app.clone(), reports.clone());
        let registry =
            reconcile::registry(app.clone()).register(move |_: ScaleFanoutJob, ctx: JobContext| {
                let (app, reports) = (app_w.clone(), reports.clone());
                async move {
                    let r = reconcile::scaling_round(&app, &ctx).await?;
                    reports.lock().expect("reports").push(r);
                    Ok(())
                }
            });
        let cfg = WorkerConfig {
            name: worker_name(&format!("scale-bench{w}")),
            concurrency,
            batch_size: concurrency,
            ..WorkerConfig::default()
        };
        handles.push(tokio::spawn(
            Worker::new(queue.clone(), registry, cfg).run(stop.clone()),
        ));
    }
    let mut figures = Vec::new();
    for which in ["first round (with changes)", "second round (steady)"] {
        progress(&format!("{which} on {workers} workers × {concurrency}…"));
        let started = Instant::now();
        let id = queue.enqueue(&ScaleFanoutJob {}).await?.id;
        loop {
            let (round_done, shards_left): (bool, i64) = sqlx::query_as(
                "SELECT (SELECT state = 'succeeded' FROM smo_jobs.jobs WHERE id = $1),
                        (SELECT count(*) FROM smo_jobs.jobs
                          WHERE kind = 'scale-shard' AND state NOT IN ('succeeded', 'dead', 'cancelled'))",
            )
            .bind(id)
            .fetch_one(&pool)
            .await?;
            if round_done && shards_left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let plan = reports
            .lock()
            .expect("reports")
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the round reported nothing"))?;
        figures.push(RoundFigures { secs, plan });
    }
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind IN ('scale-shard', 'scale-fanout') AND state <> 'succeeded'",
    )
    .fetch_one(&pool)
    .await?;
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    anyhow::ensure!(failed == 0, "{failed} round or shard jobs did not succeed");
    let cooled: Vec<String> = cooling.iter().map(|i| format!("g{i}")).collect();
    let (changed, scaled_down): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.replicas > 1 AND NOT g.name = ANY($1)),
                count(*) FILTER (WHERE s.replicas < 3 AND g.name = ANY($1))
           FROM smo.services s JOIN smo.graphs g ON g.id = s.graph_id",
    )
    .bind(&cooled)
    .fetch_one(&pool)
    .await?;
    if fleet.utilisation.is_none() {
        anyhow::ensure!(
            changed as usize == changing * 3,
            "{changed} services scaled up, expected {}",
            changing * 3
        );
    }
    // However full the clusters, no round may plan more CPU on one than it has.
    let used: Vec<(String, f64)> = sqlx::query_as(
        "SELECT cluster, (sum(cpu_millis * replicas) / 1000.0)::float8 FROM smo.services GROUP BY cluster",
    )
    .fetch_all(&pool)
    .await?;
    let over: Vec<String> = used
        .iter()
        .filter(|(c, cpu)| {
            seeded
                .iter()
                .find(|s| &s.name == c)
                .is_none_or(|s| *cpu > s.allocatable + 1e-6)
        })
        .map(|(c, cpu)| format!("{c} ({cpu:.1} cores)"))
        .collect();
    anyhow::ensure!(
        over.is_empty(),
        "clusters over their allocatable CPU: {over:?}"
    );
    let steady = figures.pop().expect("two rounds");
    let round = figures.pop().expect("two rounds");
    Ok(ScaleRoundReport {
        graphs,
        services_per_graph: 3,
        workers,
        concurrency,
        changing_graphs: changing,
        clusters: fleet.clusters,
        utilisation: fleet.utilisation,
        scaled_services: changed,
        cooling_graphs: cooling.len(),
        scaled_down_services: scaled_down,
        setup_secs,
        round,
        steady,
    })
}

/// A cluster as seeded: its allocatable and free cores.
struct SeededCluster {
    name: String,
    allocatable: f64,
    free: f64,
}

/// Empties smo's tables in the scratch database `pool` and fills them with `graphs` running graphs
/// of three services each (0.1 core, one replica) spread round-robin over `fleet.clusters`
/// clusters sized to `fleet.utilisation` (set-based inserts: seconds for 100,000 graphs).
async fn seed_running_graphs(
    pool: &PgPool,
    graphs: usize,
    fleet: ScaleFleet,
    cooling: &[usize],
) -> anyhow::Result<Vec<SeededCluster>> {
    let pool = pool.clone();
    crate::server::migrate(&pool).await?;
    sqlx::raw_sql(
        "TRUNCATE smo.graphs, smo.services, smo.clusters, smo.graph_jobs, smo.decisions, smo.projects CASCADE;
         DELETE FROM smo_jobs.jobs WHERE kind IN ('scale-shard', 'scale-fanout');",
    )
    .execute(&pool)
    .await?;

    let now = chrono::Utc::now();
    // Graph i runs on cluster c(i × clusters / graphs): contiguous blocks, so every cluster gets
    // its share of the changing graphs. A cluster's load is its graphs' 3 services × 0.1 core ×
    // replicas (3 for a cooling graph); its allocatable that load over the utilisation (none:
    // 100,000 cores, all free).
    let n = fleet.clusters.min(graphs);
    let cooled: std::collections::HashSet<usize> = cooling.iter().copied().collect();
    let cooled_names: Vec<String> = cooling.iter().map(|i| format!("g{i}")).collect();
    let mut load = vec![0.0f64; n];
    for i in 0..graphs {
        load[i * n / graphs] += if cooled.contains(&i) { 0.9 } else { 0.3 };
    }
    let names: Vec<String> = (0..n).map(|j| format!("c{j}")).collect();
    let (allocatable, free): (Vec<f64>, Vec<f64>) = load
        .iter()
        .map(|l| match fleet.utilisation {
            Some(u) => (l / u, l / u - l),
            None => (100_000.0, 100_000.0),
        })
        .unzip();
    sqlx::query(
        "INSERT INTO smo.clusters (name, ready, cpu_allocatable, cpu_free, memory_allocatable, memory_free, gpus, synced_at)
         SELECT name, true, a, f, 1099511627776, 1099511627776, 0, $1
           FROM unnest($2::text[], $3::float8[], $4::float8[]) AS t(name, a, f)",
    )
    .bind(now)
    .bind(&names)
    .bind(&allocatable)
    .bind(&free)
    .execute(&pool)
    .await?;
    sqlx::query("INSERT INTO smo.projects (name, created_at) VALUES ('bench', $1)")
        .bind(now)
        .execute(&pool)
        .await?;
    let descriptor = serde_json::json!({
        "id": "g", "version": "1.0.0",
        "services": (0..3).map(|i| serde_json::json!({
            "id": format!("s{i}"),
            "deployment": {"trigger": {"auto": {"dependencies": []}}, "intent": {"compute": {"cpu": "100m", "ram": "64Mi", "storage": "light", "gpu": {"enabled": false}}, "scaling": {"minReplicas": 1, "maxReplicas": 10, "alpha": 10.0, "beta": 0.0}}},
            "artifact": {"image": "example/s:1"}
        })).collect::<Vec<_>>()
    });
    sqlx::query(
        "INSERT INTO smo.graphs (id, project, name, version, descriptor, source, desired, status, placement, created_at, updated_at)
         SELECT gen_random_uuid(), 'bench', 'g' || i, '1.0.0', d, '', 'running', 'Running',
                jsonb_build_object('s0', 'c' || (i * $4 / $3), 's1', 'c' || (i * $4 / $3), 's2', 'c' || (i * $4 / $3)), $2, $2
           FROM generate_series(0, $3 - 1) i,
                LATERAL (SELECT jsonb_set($1, '{id}', to_jsonb('g' || i)) AS base) b,
                LATERAL (SELECT CASE WHEN $5 AND ('g' || i) = ANY($6) THEN
                           jsonb_set(base, '{services,0,deployment,intent,scaling,maxReplicas}', '20')
                         ELSE base END AS d) x",
    )
    .bind(&descriptor)
    .bind(now)
    .bind(graphs as i64)
    .bind(n as i64)
    // A cooling graph's first service may grow to 20 replicas: the largest maxReplicas × CPU of
    // the graph (SPEC §3's M) is then its, so scaling the other two down has a cost, and HiGHS
    // must choose which make room (at equal M going down is free and the closed form does it).
    .bind(fleet.utilisation.is_some())
    .bind(&cooled_names)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO smo.services (graph_id, name, position, status, cluster, replicas, ready, conditional, cpu_millis,
                                   memory_bytes, gpu, updated_at)
         SELECT g.id, 's' || k, k, 'Running', g.placement->>('s' || k), r, r, false, 100, 67108864, false, $1
           FROM smo.graphs g, generate_series(0, 2) k,
                LATERAL (SELECT CASE WHEN g.name = ANY($2) THEN 3 ELSE 1 END AS r) rep",
    )
    .bind(now)
    .bind(&cooled_names)
    .execute(&pool)
    .await?;
    let seeded: Vec<(String, f64, f64)> =
        sqlx::query_as("SELECT name, cpu_allocatable, cpu_free FROM smo.clusters ORDER BY name")
            .fetch_all(&pool)
            .await?;
    Ok(seeded
        .into_iter()
        .map(|(name, allocatable, free)| SeededCluster {
            name,
            allocatable,
            free,
        })
        .collect())
}

/// The `q` quantile (0–1) of ascending `sorted` values, by nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Serves the API (default settings, no token) on a free loopback port over `pool`, as
/// `smo run --role api` does; its base URL and what stops it.
async fn spawn_api(pool: &PgPool) -> anyhow::Result<(String, CancellationToken)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    tokio::spawn(crate::server::serve_api_on(
        pool.clone(),
        listener,
        None,
        Default::default(),
        Default::default(),
        None,
        stop.clone(),
    ));
    Ok((base, stop))
}

/// The figures of `smo bench console`: server-side render times of its pages, through HTTP on
/// loopback (one request at a time, so a figure is one page's whole server time plus loopback).
#[derive(Debug, Serialize)]
pub struct ConsoleReport {
    /// Graphs stored.
    pub graphs: usize,
    /// Requests per page.
    pub requests: usize,
    /// Per page: path, bytes, p50, p99 and max in milliseconds.
    pub pages: Vec<PageTimes>,
    /// Bytes of the console's stylesheet and script compiled into the binary.
    pub asset_bytes: usize,
}

/// One page's figures.
#[derive(Debug, Serialize)]
pub struct PageTimes {
    pub path: String,
    pub bytes: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Serves the console over `graphs` running graphs (each with a decision) in the scratch database
/// `pool` and times `requests` GETs of each page.
pub async fn console(
    pool: PgPool,
    graphs: usize,
    requests: usize,
    progress: impl Fn(&str),
) -> anyhow::Result<ConsoleReport> {
    anyhow::ensure!(
        graphs > 0 && requests > 0,
        "graphs and requests must be at least 1"
    );
    progress(&format!("creating {graphs} running graphs of 3 services…"));
    seed_running_graphs(&pool, graphs, ScaleFleet::default(), &[]).await?;
    sqlx::query(
        "INSERT INTO smo.decisions (graph, project, kind, message, at)
         SELECT name, project, 'placement', 'placed 3 services (3 new, 0 moved), proven optimal', now() FROM smo.graphs",
    )
    .execute(&pool)
    .await?;
    let (base, stop) = spawn_api(&pool).await?;
    let http = reqwest::Client::new();
    let mut pages = Vec::new();
    for path in [
        "/console",
        "/console/graphs/g0",
        "/console/clusters",
        "/console/queue",
    ] {
        progress(&format!("GET {path} × {requests}…"));
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let r = http.get(format!("{base}{path}")).send().await?;
            anyhow::ensure!(r.status().is_success(), "GET {path}: {}", r.status());
            bytes = r.bytes().await?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| quantile(&times, q);
        pages.push(PageTimes {
            path: path.into(),
            bytes,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        });
    }
    stop.cancel();
    Ok(ConsoleReport {
        graphs,
        requests,
        pages,
        asset_bytes: crate::http::console::ASSET_BYTES,
    })
}

/// The figures of `smo bench placement`: solve times over many seeded instances.
#[derive(Debug, Serialize)]
pub struct PlacementReport {
    /// Instances per row.
    pub instances: usize,
    pub rows: Vec<PlacementRow>,
}

/// One size × capacity × kind (first placement or re-placement).
#[derive(Debug, Serialize)]
pub struct PlacementRow {
    /// `services×clusters`.
    pub size: String,
    /// Capacity as a multiple of demand.
    pub headroom: f64,
    /// `first` or `re-place`.
    pub kind: &'static str,
    /// Solved and proven optimal.
    pub optimal: usize,
    /// Solved, not proven (time limit).
    pub not_proven: usize,
    /// No placement exists (re-placement after losing a cluster may leave none).
    pub infeasible: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The seed of the slowest instance, to study it alone.
    pub slowest_seed: u64,
}

/// Solves `instances` seeded instances of each size and headroom (first placement, then the
/// re-placement of its perturbed result) and gives p50/p99/max solve times.
pub fn placement(
    sizes: &[(usize, usize)],
    headrooms: &[f64],
    instances: usize,
    first_seed: u64,
    progress: impl Fn(&str),
) -> PlacementReport {
    use crate::placement::{self, SolveStatus, instances as family};
    let mut rows = Vec::new();
    for &(n, m) in sizes {
        for &headroom in headrooms {
            progress(&format!(
                "{n}×{m}, capacity {headroom}× demand: {instances} instances…"
            ));
            let mut times: [Vec<(f64, u64)>; 2] = [Vec::new(), Vec::new()];
            let mut counts = [[0usize; 3]; 2];
            let mut count = |k: usize, status: Option<&SolveStatus>| {
                counts[k][match status {
                    Some(s) if s.is_optimal() => 0,
                    Some(_) => 1,
                    None => 2,
                }] += 1;
            };
            for seed in first_seed..first_seed + instances as u64 {
                let base = family::reference_family(seed, n, m, headroom);
                let t = Instant::now();
                let first = placement::solve_problem(&base);
                times[0].push((t.elapsed().as_secs_f64() * 1e3, seed));
                count(0, first.as_ref().ok().map(|s| &s.status));
                let Ok(first) = first else { continue };
                let p = family::perturbed(seed, &base, &first);
                let usage = placement::own_usage_from_current(&p);
                let t = Instant::now();
                let re = placement::replan(&p, &usage);
                times[1].push((t.elapsed().as_secs_f64() * 1e3, seed));
                count(1, re.as_ref().ok().map(|r| &r.solution.status));
            }
            for (k, kind) in ["first", "re-place"].into_iter().enumerate() {
                let t = &mut times[k];
                if t.is_empty() {
                    continue;
                }
                t.sort_by(|a, b| a.0.total_cmp(&b.0));
                let ms: Vec<f64> = t.iter().map(|(ms, _)| *ms).collect();
                let at = |q: f64| quantile(&ms, q);
                rows.push(PlacementRow {
                    size: format!("{n}×{m}"),
                    headroom,
                    kind,
                    optimal: counts[k][0],
                    not_proven: counts[k][1],
                    infeasible: counts[k][2],
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                    max_ms: at(1.0),
                    slowest_seed: t[t.len() - 1].1,
                });
            }
        }
    }
    PlacementReport { instances, rows }
}

/// The figures of `smo bench reads`: the API's read routes under concurrent load.
#[derive(Debug, Serialize)]
pub struct ReadsReport {
    /// Graphs stored.
    pub graphs: usize,
    /// Connections kept busy at once.
    pub connections: usize,
    /// Seconds each route was loaded.
    pub secs: f64,
    /// Per route.
    pub routes: Vec<RouteLoad>,
}

/// One route under load.
#[derive(Debug, Serialize)]
pub struct RouteLoad {
    pub path: String,
    pub requests: usize,
    pub req_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// What generated the load: `wrk` (a separate process, when installed) or `in-process`.
    pub client: String,
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// One route loaded by wrk (2 threads), each request to another graph for `/graphs/{name}`
/// (a Lua script); its summary parsed.
async fn wrk_load(
    wrk: &std::path::Path,
    base: &str,
    label: &str,
    per_graph: bool,
    graphs: usize,
    connections: usize,
    secs: f64,
) -> anyhow::Result<RouteLoad> {
    let script = std::env::temp_dir().join(format!("smo-bench-reads-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, {})\nend\n",
            if per_graph {
                format!("\"/graphs/g\" .. (n % {graphs})")
            } else {
                format!("{label:?}")
            }
        ),
    )?;
    let out = tokio::process::Command::new(wrk)
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", secs.ceil() as u64),
        ])
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .await?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        !text.contains("Non-2xx"),
        "GET {label}: errors under load:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .ok_or_else(|| anyhow::anyhow!("no {prefix:?} in wrk's output:\n{text}"))
    };
    let ms = |v: String| -> anyhow::Result<f64> {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse()?;
        Ok(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            other => anyhow::bail!("unit {other:?} in wrk's output"),
        })
    };
    let requests: usize = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(RouteLoad {
        path: label.into(),
        requests,
        req_per_sec: field("Requests/sec:")?.parse()?,
        p50_ms: ms(field("50%")?)?,
        p99_ms: ms(field("99%")?)?,
        client: "wrk".into(),
    })
}

/// Loads `GET /graphs?limit=50`, `GET /graphs/{name}` (a different graph each time) and
/// `GET /clusters` of an API serving `graphs` running graphs, each for `secs` seconds with
/// `connections` keep-alive connections always busy (as `wrk -c` does), in this process.
pub async fn reads(
    pool: PgPool,
    graphs: usize,
    connections: usize,
    secs: f64,
    progress: impl Fn(&str),
) -> anyhow::Result<ReadsReport> {
    anyhow::ensure!(
        graphs > 0 && connections > 0 && secs > 0.0,
        "graphs, connections and seconds must be positive"
    );
    progress(&format!("creating {graphs} running graphs of 3 services…"));
    seed_running_graphs(&pool, graphs, ScaleFleet::default(), &[]).await?;
    let (base, stop) = spawn_api(&pool).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let wrk = which("wrk");
    let mut routes = Vec::new();
    // `/healthz` of the same server first: the ceiling the others are read against (the same
    // connections, server, client and machine, and no database or rendering).
    for (label, path) in [
        ("/healthz", None),
        ("/graphs?limit=50", None),
        ("/graphs/{name}", Some(())),
        ("/clusters", None),
    ] {
        progress(&format!(
            "GET {label}: {connections} connections for {secs} s ({})…",
            if wrk.is_some() {
                "wrk"
            } else {
                "in-process client"
            }
        ));
        if let Some(wrk) = &wrk {
            // A first pass opens the connections and warms the caches (every graph once).
            wrk_load(wrk, &base, label, path.is_some(), graphs, connections, 1.0).await?;
            routes.push(
                wrk_load(wrk, &base, label, path.is_some(), graphs, connections, secs).await?,
            );
            continue;
        }
        let run = |duration: Duration| {
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..connections {
                let (http, base) = (http.clone(), base.clone());
                tasks.spawn(async move {
                    let mut times = Vec::new();
                    let start = Instant::now();
                    let mut k = c;
                    while start.elapsed() < duration {
                        let url = match path {
                            Some(()) => format!("{base}/graphs/g{}", k % graphs),
                            None => format!("{base}{label}"),
                        };
                        k += connections;
                        let t = Instant::now();
                        let r = http.get(url).send().await?;
                        anyhow::ensure!(r.status().is_success(), "GET {label}: {}", r.status());
                        r.bytes().await?;
                        times.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(times)
                });
            }
            async move {
                let mut all = Vec::new();
                while let Some(t) = tasks.join_next().await {
                    all.extend(t??);
                }
                anyhow::Ok(all)
            }
        };
        run(Duration::from_millis(300)).await?; // connections open, caches warm
        let started = Instant::now();
        let mut times = run(Duration::from_secs_f64(secs)).await?;
        let elapsed = started.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| quantile(&times, q);
        routes.push(RouteLoad {
            path: label.into(),
            requests: times.len(),
            req_per_sec: times.len() as f64 / elapsed,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            client: "in-process".into(),
        });
    }
    stop.cancel();
    Ok(ReadsReport {
        graphs,
        connections,
        secs,
        routes,
    })
}

/// The figures of `smo bench deploy`: graphs deployed through the API by worker processes.
#[derive(Debug, Serialize)]
pub struct DeployReport {
    /// Graphs submitted.
    pub graphs: usize,
    /// Services per graph.
    pub services_per_graph: usize,
    /// Worker processes.
    pub workers: usize,
    /// Graphs offered per second (`None`: a burst, as fast as the clients could submit).
    pub offered_rate: Option<f64>,
    /// Seconds from the first submission to the last graph Running.
    pub total_secs: f64,
    /// Graphs Running per second over `total_secs`.
    pub graphs_per_sec: f64,
    /// Submission (202) to Running, per graph: median and 99th percentile, in seconds.
    pub p50_secs: f64,
    pub p99_secs: f64,
    /// Deploy jobs that needed more than one attempt (the target is none).
    pub retried_jobs: i64,
    /// CPU seconds each part used from the first submission to the last graph Running (Linux
    /// `/proc`; `None` where it cannot be read).
    pub cpu: DeployCpu,
    /// The ceiling measured in the same run: seconds to apply the same objects straight from
    /// one client (no queue, lock, solve or record) and read each graph's Deployments back.
    pub ceiling_secs: f64,
}

/// Where a deploy benchmark's CPU went, in seconds.
#[derive(Debug, Default, Serialize)]
pub struct DeployCpu {
    /// This process but the sim: the API and the submitting clients.
    pub api_and_clients: Option<f64>,
    /// The sim's threads (named `smo-sim`), when it runs in this process.
    pub sim: Option<f64>,
    /// The worker processes together.
    pub workers: Option<f64>,
    /// Every PostgreSQL process on the machine.
    pub postgres: Option<f64>,
}

/// CPU seconds (user + system) of `/proc/<path>/stat`: its 14th and 15th fields, in clock ticks
/// of 1/100 s (Linux's USER_HZ).
fn cpu_of(stat_path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    let rest = text.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The command name of `/proc/<path>/stat`.
fn comm_of(stat_path: &str) -> Option<String> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    let (_, after) = text.split_once(" (")?;
    Some(after.rsplit_once(") ")?.0.to_string())
}

/// CPU seconds of this process's threads named `name`.
fn threads_cpu(name: &str) -> Option<f64> {
    let mut total = None;
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let stat = format!("{}/stat", e.path().display());
        if comm_of(&stat).as_deref() == Some(name) {
            *total.get_or_insert(0.0) += cpu_of(&stat).unwrap_or(0.0);
        }
    }
    total
}

/// CPU seconds of every process named `name`.
fn processes_cpu(name: &str) -> Option<f64> {
    let mut total = None;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let stat = format!("{}/stat", e.path().display());
        if comm_of(&stat).as_deref() == Some(name) {
            *total.get_or_insert(0.0) += cpu_of(&stat).unwrap_or(0.0);
        }
    }
    total
}

/// A snapshot of the deploy benchmark's CPU counters.
fn deploy_cpu(workers: &[Option<u32>]) -> DeployCpu {
    let sim = threads_cpu("smo-sim");
    let this = cpu_of("/proc/self/stat");
    let workers = workers
        .iter()
        .map(|p| p.and_then(|p| cpu_of(&format!("/proc/{p}/stat"))))
        .sum::<Option<f64>>();
    DeployCpu {
        api_and_clients: this.map(|t| t - sim.unwrap_or(0.0)),
        sim,
        workers,
        postgres: processes_cpu("postgres"),
    }
}

impl DeployCpu {
    /// What was used between two snapshots.
    fn since(&self, start: &DeployCpu) -> DeployCpu {
        let d = |a: Option<f64>, b: Option<f64>| Some(a? - b.unwrap_or(0.0));
        DeployCpu {
            api_and_clients: d(self.api_and_clients, start.api_and_clients),
            sim: d(self.sim, start.sim),
            workers: d(self.workers, start.workers),
            postgres: d(self.postgres, start.postgres),
        }
    }
}

/// How the deploy benchmark reaches the world: the federation's kubeconfig and the `smo` binary
/// whose `run --role worker` processes do the work.
pub struct DeployBench {
    pub database_url: String,
    pub kubeconfig: std::path::PathBuf,
    pub smo_binary: std::path::PathBuf,
    pub graphs: usize,
    pub services: usize,
    pub workers: usize,
    /// Submissions in flight at once.
    pub clients: usize,
    /// Graphs offered per second, spread evenly (open loop: a submission does not wait for the
    /// one before it to run); `None` submits as fast as `clients` allow, a burst whose
    /// latencies are mostly time spent queued.
    pub rate: Option<f64>,
}

fn bench_graph(id: &str, services: usize) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut y = format!("hdaGraph:\n  id: {id}\n  version: \"1.0.0\"\n  services:\n");
    for i in 0..services {
        let _ = write!(
            y,
            "    - id: s{i}\n      deployment:\n        trigger: {{auto: {{dependencies: []}}}}\n        intent:\n          \
             compute: {{cpu: 10m, ram: 16Mi, storage: light, gpu: {{enabled: false}}}}\n      artifact:\n        \
             image: ghcr.io/example/s{i}:1\n"
        );
    }
    y.into_bytes()
}

/// Deploys `graphs` graphs through the REST API (served here, on loopback) with `workers` worker
/// processes against the federation in `kubeconfig`, in the scratch database at `database_url`
/// (its smo tables and queue are emptied first).
pub async fn deploy(b: DeployBench, progress: impl Fn(&str)) -> anyhow::Result<DeployReport> {
    anyhow::ensure!(
        b.graphs > 0 && b.workers > 0 && b.services > 0 && b.clients > 0,
        "graphs, services, workers and clients must be at least 1"
    );
    anyhow::ensure!(
        b.rate.is_none_or(|r| r.is_finite() && r > 0.0),
        "rate must be a positive number of graphs per second"
    );
    // The API's pool as `smo run --role api` sizes it.
    let api_pool = crate::server::pool_plan(&[crate::server::Role::Api], 0, None).size;
    let pool = crate::store::connect(&b.database_url, api_pool).await?;
    crate::server::migrate(&pool).await?;
    sqlx::raw_sql(
        "TRUNCATE smo.graphs, smo.services, smo.clusters, smo.graph_jobs, smo.decisions, smo.projects,
                  smo.graph_locks CASCADE;
         DELETE FROM smo_jobs.jobs; DELETE FROM smo_jobs.workers;",
    )
    .execute(&pool)
    .await?;
    let (api, stop) = spawn_api(&pool).await?;
    progress(&format!("starting {} worker processes…", b.workers));
    let mut children = Vec::new();
    for w in 0..b.workers {
        children.push(
            tokio::process::Command::new(&b.smo_binary)
                .args(["run", "--role", "worker", "--database-url", &b.database_url])
                .arg("--karmada-kubeconfig")
                .arg(&b.kubeconfig)
                .args(["--worker-prefix", &format!("deploy-bench{w}")])
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    let http = reqwest::Client::new();
    // The clusters first, as an operator's first `smo cluster sync` does.
    let listed = http.get(format!("{api}/clusters")).send().await?;
    anyhow::ensure!(
        listed.status().is_success(),
        "GET /clusters: {}",
        listed.status()
    );
    progress(&match b.rate {
        Some(r) => format!(
            "submitting {} graphs of {} services at {r} graphs/s…",
            b.graphs, b.services
        ),
        None => format!(
            "submitting {} graphs of {} services, {} at a time…",
            b.graphs, b.services, b.clients
        ),
    });
    let worker_pids: Vec<Option<u32>> = children.iter().map(|c| c.id()).collect();
    let cpu_at_start = deploy_cpu(&worker_pids);
    let started = Instant::now();
    let submitted = Arc::new(std::sync::Mutex::new(Vec::with_capacity(b.graphs)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..b.clients {
        let (http, api, next, submitted) =
            (http.clone(), api.clone(), next.clone(), submitted.clone());
        let (graphs, services, rate) = (b.graphs, b.services, b.rate);
        let origin = tokio::time::Instant::from_std(started);
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= graphs {
                    return Ok::<_, anyhow::Error>(());
                }
                if let Some(r) = rate {
                    tokio::time::sleep_until(origin + Duration::from_secs_f64(i as f64 / r)).await;
                }
                let name = format!("bench-{i}");
                // Submit→Running counts from the moment the request leaves.
                let at = chrono::Utc::now();
                let r = http
                    .post(format!("{api}/project/bench/graphs"))
                    .body(bench_graph(&name, services))
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 202, "deploy {name}: {}", r.status());
                submitted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((name, at));
            }
        }));
    }
    for c in clients {
        c.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let running: i64 =
            sqlx::query_scalar("SELECT count(*) FROM smo.graphs WHERE status = 'Running'")
                .fetch_one(&pool)
                .await?;
        progress(&format!("{running}/{} Running", b.graphs));
        if running as usize >= b.graphs {
            break;
        }
        let failed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'deploy' AND state = 'dead'",
        )
        .fetch_one(&pool)
        .await?;
        anyhow::ensure!(failed == 0, "{failed} deploy jobs died");
        anyhow::ensure!(
            Instant::now() < deadline,
            "not all graphs Running after an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total_secs = started.elapsed().as_secs_f64();
    let cpu = deploy_cpu(&worker_pids).since(&cpu_at_start);
    // Running since: the graph's last change, written by the deploy job that made it Running.
    let running_at: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
        sqlx::query_as::<_, (String, chrono::DateTime<chrono::Utc>)>(
            "SELECT name, updated_at FROM smo.graphs",
        )
        .fetch_all(&pool)
        .await?
        .into_iter()
        .collect();
    let mut latencies: Vec<f64> = submitted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|(name, at)| {
            running_at
                .get(name)
                .map(|r| (*r - *at).num_milliseconds() as f64 / 1000.0)
        })
        .map(|s| s.max(0.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| quantile(&latencies, q);
    let retried_jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'deploy' AND (attempt > 1 OR lost > 0)",
    )
    .fetch_one(&pool)
    .await?;
    stop.cancel();
    for mut c in children {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    progress("ceiling: the same objects applied straight from one client…");
    let ceiling_secs = deploy_ceiling(&pool, &b.kubeconfig).await?;
    Ok(DeployReport {
        graphs: b.graphs,
        services_per_graph: b.services,
        workers: b.workers,
        offered_rate: b.rate,
        total_secs,
        graphs_per_sec: b.graphs as f64 / total_secs,
        p50_secs: at(0.5),
        p99_secs: at(0.99),
        retried_jobs,
        cpu,
        ceiling_secs,
    })
}

/// The ceiling of a deploy run: the objects smo rendered for every graph (as placed), applied
/// again straight from one client into a project of their own. Returns its seconds.
async fn deploy_ceiling(pool: &PgPool, kubeconfig: &std::path::Path) -> anyhow::Result<f64> {
    const PROJECT: &str = "bench-ceiling";
    let federation = Federation::from_kubeconfig(kubeconfig).await?;
    let rows: Vec<(serde_json::Value, serde_json::Value)> =
        sqlx::query_as("SELECT descriptor, placement FROM smo.graphs ORDER BY name")
            .fetch_all(pool)
            .await?;
    let per_graph = rendered(&rows, PROJECT)?;
    let fence = crate::federation::Fence::unbounded();
    federation.ensure_namespace(PROJECT, &fence).await?;
    from_one_client(&federation, PROJECT, &per_graph).await
}

/// Each graph's objects as smo renders them (`(descriptor, placement)` rows, every placed
/// service at one replica, in `project`), with the names of its Deployments.
pub(crate) fn rendered(
    rows: &[(serde_json::Value, serde_json::Value)],
    project: &str,
) -> anyhow::Result<Vec<(Vec<serde_json::Value>, Vec<String>)>> {
    use crate::federation::manifests;
    rows.iter()
        .map(|(d, p)| {
            let graph: crate::hdag::Graph = serde_json::from_value(d.clone())?;
            let placement: std::collections::BTreeMap<String, String> =
                serde_json::from_value(p.clone())?;
            let objects = manifests::render(&manifests::RenderInput {
                graph: &graph,
                project,
                placement: &placement,
                replicas: &Default::default(),
            });
            let names = graph
                .services
                .iter()
                .map(|s| manifests::object_name(&graph.id, &s.id))
                .collect();
            Ok((objects, names))
        })
        .collect()
}

/// A benchmark's ceiling: graph after graph, from one client, apply its objects and read its
/// Deployments back — what any orchestrator must at least do to know a graph runs, with no
/// queue, lock, solve or record. Returns its seconds.
pub(crate) async fn from_one_client(
    federation: &Federation,
    project: &str,
    per_graph: &[(Vec<serde_json::Value>, Vec<String>)],
) -> anyhow::Result<f64> {
    let fence = crate::federation::Fence::unbounded();
    let t = Instant::now();
    for (objects, names) in per_graph {
        for o in objects {
            federation.apply(o, &fence).await?;
        }
        for n in names {
            federation.deployment_replicas(project, n).await?;
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// The figures of `smo bench descriptor`: the worst descriptor the API accepts, through what a
/// dry run does with it.
#[derive(Debug, Serialize)]
pub struct DescriptorReport {
    /// Services (the limit).
    pub services: usize,
    /// Descriptor size in bytes (near the body limit).
    pub bytes: usize,
    /// Seconds to parse and validate it.
    pub parse_secs: f64,
    /// Seconds to place and render it (the dry run's work).
    pub plan_secs: f64,
    /// Objects rendered.
    pub objects: usize,
    /// Resident memory before, in MiB.
    pub rss_before_mib: f64,
    /// Peak resident memory during parse, place and render, in MiB (Linux `VmHWM`, reset first).
    pub peak_rss_mib: f64,
}

/// The largest graph the API accepts: [`crate::hdag::MAX_SERVICES`] services in block YAML,
/// padded with descriptions up to the body limit, every service with ports and a dependency.
pub fn worst_descriptor() -> Vec<u8> {
    use std::fmt::Write;
    let n = crate::hdag::MAX_SERVICES;
    let budget = crate::hdag::MAX_DESCRIPTOR_BYTES - 64 * 1024;
    let per_service = budget / n;
    let mut y = String::from(
        "hdaGraph:\n  imVersion: 0.4.0\n  id: worst\n  version: \"1.0.0\"\n  services:\n",
    );
    for i in 0..n {
        let start = y.len();
        let deps = if i == 0 {
            " []".to_string()
        } else {
            format!("\n              - s{}", i - 1)
        };
        // Block style throughout: flow collections (`[…]`) are budgeted per byte of document.
        let _ = write!(
            y,
            "    - id: s{i}\n      deployment:\n        trigger:\n          auto:\n            dependencies:{deps}\n        \
             intent:\n          compute:\n            cpu: 10m\n            ram: 16Mi\n            storage: light\n            \
             gpu:\n              enabled: false\n      artifact:\n        image: ghcr.io/example/s{i}:1\n        ports:\n          \
             - port: 8080\n          - port: 9090\n      description: \""
        );
        let used = y.len() - start;
        y.push_str(&"x".repeat(per_service.saturating_sub(used + 2)));
        y.push_str("\"\n");
    }
    y.into_bytes()
}

fn proc_status_kib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parses, places and renders [`worst_descriptor`] on three roomy clusters, measuring time and
/// peak memory (run it in a fresh process: the peak is the process's).
pub fn descriptor() -> anyhow::Result<DescriptorReport> {
    let doc = worst_descriptor();
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_status_kib("VmRSS:").unwrap_or(0.0);
    let started = Instant::now();
    let parsed = crate::hdag::parse(&doc)?;
    let parse_secs = started.elapsed().as_secs_f64();
    let clusters: Vec<crate::store::ClusterRecord> = ["a", "b", "c"]
        .iter()
        .map(|n| crate::store::ClusterRecord {
            name: crate::hdag::ClusterName::parse(format!("bench-{n}")).expect("a label"),
            ready: true,
            cpu_allocatable: 64.0,
            cpu_free: 64.0,
            memory_allocatable: 64 << 30,
            memory_free: 64 << 30,
            gpus: 0,
            labels: serde_json::json!({}),
            message: None,
            synced_at: chrono::Utc::now(),
        })
        .collect();
    let started = Instant::now();
    let (plan, objects) = crate::plan::dry_run(&parsed.graph, &clusters, "bench")?;
    let plan_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(plan.placement.len() == parsed.graph.services.len());
    let peak = proc_status_kib("VmHWM:").unwrap_or(0.0);
    Ok(DescriptorReport {
        services: parsed.graph.services.len(),
        bytes: doc.len(),
        parse_secs,
        plan_secs,
        objects: objects.len(),
        rss_before_mib: rss_before / 1024.0,
        peak_rss_mib: peak / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_descriptor_is_accepted_and_one_more_service_is_refused_naming_services() {
        let doc = worst_descriptor();
        assert!(doc.len() <= crate::hdag::MAX_DESCRIPTOR_BYTES);
        let parsed = crate::hdag::parse(&doc).expect("the worst accepted input is accepted");
        assert_eq!(parsed.graph.services.len(), crate::hdag::MAX_SERVICES);
        // One service more (a small one, so the size limit is not what refuses it).
        let mut more = String::from_utf8(doc).unwrap();
        more.push_str(
            "    - id: extra\n      deployment:\n        trigger:\n          auto:\n            dependencies: []\n        \
             intent:\n          compute:\n            cpu: 10m\n            ram: 16Mi\n            storage: light\n      \
             artifact:\n        image: ghcr.io/example/extra:1\n",
        );
        match crate::hdag::parse(more.as_bytes()) {
            Err(crate::hdag::DescriptorError::Invalid(p)) => {
                assert_eq!(p.len(), 1, "{p:?}");
                assert_eq!(p[0].path, "services");
                assert!(p[0].message.contains("at most 1000 services"), "{p:?}");
            }
            other => panic!("expected the service limit, got {other:?}"),
        }
    }
}
