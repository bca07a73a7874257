//! `smo bench failover`: a fleet of running graphs (services of unequal sizes) spread over
//! simulated clusters, the busiest
//! cluster lost, and everything that follows timed on the real code paths — `cluster-health`,
//! the joint `failover` solve, one `move-graph` per graph on the real engine, the sim as the
//! federation — then the cluster back and the fail-back. The ceiling printed beside the figure is
//! the same objects applied straight from one client with no queue, no lock and no solve: what
//! any orchestrator pays against this federation.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use smo_jobs::{Queue, Worker, WorkerConfig, worker_name};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    federation::{Federation, manifests},
    reconcile::{self, App, ClusterHealthJob},
    settings::FailoverSettings,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct FailoverBench {
    /// Running graphs (two services each).
    pub graphs: usize,
    /// Member clusters.
    pub clusters: usize,
    /// In-process workers, and jobs each runs at once.
    pub workers: usize,
    /// Jobs per worker at once.
    pub concurrency: usize,
    /// NotReady this long and a cluster is lost (the default 30 s would only add waiting).
    pub threshold: Duration,
    /// Graphs moved back per fail-back round.
    pub failback_max_moves: usize,
    /// How full the clusters are before the loss (0.6: the survivors take the lost one's graphs
    /// with room to spare; 0.85: they must be packed).
    pub utilisation: f64,
}

/// The figures.
#[derive(Debug, Serialize)]
pub struct FailoverReport {
    /// Running graphs.
    pub graphs: usize,
    /// Member clusters.
    pub clusters: usize,
    /// The cluster lost.
    pub lost: String,
    /// Graphs with a service on it.
    pub affected: usize,
    /// NotReady → lost (the threshold plus at most one health round of 1 s).
    pub detection_secs: f64,
    /// The joint solve.
    pub solve_secs: f64,
    /// Whether the solve was proven optimal.
    pub optimal: bool,
    /// Services moved.
    pub moves: u64,
    /// Graphs that did not fit.
    pub stranded: u64,
    /// Lost → every affected service ready on another cluster.
    pub running_elsewhere_secs: f64,
    /// The same moves straight from one client, graph after graph: apply, read the Deployments
    /// back (no queue, lock, solve or record).
    pub ceiling_apply_secs: f64,
    /// Ready clusters over their allocatable CPU or memory afterwards.
    pub over_capacity: usize,
    /// Cluster back → every service home.
    pub failback_secs: f64,
    /// Fail-back rounds it took (the move budget per round).
    pub failback_rounds: usize,
}

const MIB: u64 = 1024 * 1024;

/// Graph `i`'s two services: (name, milli-cores, MiB) — sizes vary from graph to graph, so the
/// joint solve packs unequal items (a quarter of a core to a core and a half).
fn sizes(i: usize) -> [(&'static str, i64, i64); 2] {
    [
        (
            "front",
            250 * (1 + (i * 7 % 6) as i64),
            128 * (1 + (i % 4) as i64),
        ),
        (
            "back",
            100 * (1 + (i * 3 % 5) as i64),
            64 * (1 + (i % 3) as i64),
        ),
    ]
}

/// Graph `i`'s descriptor: two image services of [`sizes`].
fn descriptor(i: usize) -> Value {
    let [(_, fc, fm), (_, bc, bm)] = sizes(i);
    json!({
        "id": format!("f{i}"), "version": "1.0.0",
        "services": [
            {"id": "front", "deployment": {"trigger": {"auto": {"dependencies": []}},
              "intent": {"compute": {"cpu": format!("{fc}m"), "ram": format!("{fm}Mi"), "storage": "light", "gpu": {"enabled": false}}}},
             "artifact": {"image": "example/front:1", "ports": [{"port": 80}]}},
            {"id": "back", "deployment": {"trigger": {"auto": {"dependencies": []}},
              "intent": {"compute": {"cpu": format!("{bc}m"), "ram": format!("{bm}Mi"), "storage": "light", "gpu": {"enabled": false}}}},
             "artifact": {"image": "example/back:1"}}
        ]
    })
}

/// Runs the whole scenario in the scratch database `pool`.
pub async fn failover(
    pool: PgPool,
    b: FailoverBench,
    progress: impl Fn(&str),
) -> anyhow::Result<FailoverReport> {
    anyhow::ensure!(b.graphs > 0, "--graphs must be at least 1");
    anyhow::ensure!(b.clusters >= 2, "--clusters must be at least 2");
    let (n, m) = (b.graphs, b.clusters);
    // Graph i runs on cluster i % m; each cluster is `utilisation` full before the loss (sized
    // to what runs on it), and the first, which runs at least as much as any other, is lost.
    let home = |i: usize| i % m;
    let mut per_cluster = vec![0u64; m];
    let (mut cpu_on, mut mem_on) = (vec![0i64; m], vec![0i64; m]);
    for i in 0..n {
        per_cluster[home(i)] += 1;
        for (_, c, mem) in sizes(i) {
            cpu_on[home(i)] += c;
            mem_on[home(i)] += mem;
        }
    }
    let busiest = per_cluster.iter().copied().max().unwrap_or(1);
    anyhow::ensure!(
        b.utilisation > 0.0 && b.utilisation <= 1.0,
        "--utilisation must be in (0, 1]"
    );
    let cluster_cpu: Vec<f64> = cpu_on
        .iter()
        .map(|c| (*c).max(1) as f64 / 1000.0 / b.utilisation)
        .collect();
    let cluster_mem: Vec<f64> = mem_on
        .iter()
        .map(|m| (*m).max(1) as f64 * MIB as f64 / b.utilisation)
        .collect();
    progress(&format!(
        "seeding {n} running graphs (2 services) on {m} clusters, {:.0}% full…",
        b.utilisation * 100.0
    ));
    crate::server::migrate(&pool).await?;
    sqlx::raw_sql(
        "TRUNCATE smo.graphs, smo.services, smo.clusters, smo.graph_jobs, smo.decisions, smo.projects,
                  smo.cluster_health, smo.cluster_events CASCADE;
         DELETE FROM smo_jobs.jobs;",
    )
    .execute(&pool)
    .await?;
    let now = chrono::Utc::now();
    sqlx::query("INSERT INTO smo.projects (name, created_at) VALUES ('bench', $1)")
        .bind(now)
        .execute(&pool)
        .await?;
    let mut objects = vec![json!({"seq": 1, "object": {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}})];
    let replicas = [("front".to_string(), 1), ("back".to_string(), 1)].into();
    for i in 0..n {
        let cluster = format!("c{}", home(i));
        let d = descriptor(i);
        let graph: crate::hdag::Graph = serde_json::from_value(d.clone())?;
        let placement = [
            ("front".to_string(), cluster.clone()),
            ("back".to_string(), cluster.clone()),
        ]
        .into();
        let input = manifests::RenderInput {
            graph: &graph,
            project: "bench",
            placement: &placement,
            replicas: &replicas,
        };
        for s in &graph.services {
            for o in manifests::render_service(&input, s, &cluster) {
                objects.push(json!({"seq": objects.len() + 1, "object": o}));
            }
        }
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO smo.graphs (id, project, name, version, descriptor, source, desired, status, placement,
                                     created_at, updated_at)
             VALUES ($1, 'bench', $2, '1.0.0', $3, '', 'running', 'Running', $4, $5, $5)",
        )
        .bind(id)
        .bind(format!("f{i}"))
        .bind(&d)
        .bind(serde_json::to_value(&placement)?)
        .bind(now)
        .execute(&pool)
        .await?;
        for (k, (svc, cpu, mem)) in sizes(i).iter().enumerate() {
            sqlx::query(
                "INSERT INTO smo.services (graph_id, name, position, status, cluster, replicas, ready, conditional,
                                           cpu_millis, memory_bytes, gpu, updated_at)
                 VALUES ($1, $2, $3, 'Running', $4, 1, 1, false, $5, $6, false, $7)",
            )
            .bind(id)
            .bind(svc)
            .bind(k as i32)
            .bind(&cluster)
            .bind(cpu)
            .bind(mem * MIB as i64)
            .bind(now)
            .execute(&pool)
            .await?;
        }
    }
    let pods = busiest * 2 * 2;
    let config = smo_sim::SimConfig {
        clusters: (0..m)
            .map(|c| smo_sim::SimCluster {
                name: format!("c{c}"),
                cpu: cluster_cpu[c],
                memory: format!("{}", cluster_mem[c] as u64),
                gpus: 0,
                labels: Default::default(),
                ready: true,
                nodes: u32::try_from(pods / 110 + 2).unwrap_or(u32::MAX),
            })
            .collect(),
        ..smo_sim::SimConfig::default()
    };
    let sim = smo_sim::Sim::new(config);
    sim.load_objects(&json!({"resourceVersion": objects.len() + 1, "objects": objects}));
    let (addr, _sim) = sim.spawn_apart("127.0.0.1:0")?;
    let sim_url = format!("http://{addr}");
    let kubeconfig =
        std::env::temp_dir().join(format!("smo-failover-bench-{}.kubeconfig", addr.port()));
    std::fs::write(&kubeconfig, smo_sim::kubeconfig_yaml(&sim_url))?;
    let federation = Federation::from_kubeconfig(&kubeconfig).await?;
    let _ = std::fs::remove_file(&kubeconfig);

    let app = App {
        pool: pool.clone(),
        federation: Some(federation.clone()),
        monitoring: Default::default(),
        helm: None,
        failover: FailoverSettings {
            failure_threshold: b.threshold,
            failback_after: b.threshold,
            failback_max_moves: b.failback_max_moves,
            ..FailoverSettings::default()
        },
    };
    let queue = Queue::new(pool.clone());
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for w in 0..b.workers.max(1) {
        let cfg = WorkerConfig {
            name: worker_name(&format!("failover-bench{w}")),
            concurrency: b.concurrency.max(1),
            batch_size: b.concurrency.max(1),
            ..WorkerConfig::default()
        };
        handles.push(tokio::spawn(
            Worker::new(queue.clone(), reconcile::registry(app.clone()), cfg).run(stop.clone()),
        ));
    }
    let http = reqwest::Client::new();
    let health = || async {
        let id = queue.enqueue(&ClusterHealthJob {}).await?.id;
        loop {
            let state: String = sqlx::query_scalar("SELECT state FROM smo_jobs.jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await?;
            match state.as_str() {
                "succeeded" => return anyhow::Ok(()),
                "dead" | "cancelled" => anyhow::bail!("cluster-health ended {state}"),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    health().await?;
    let lost = "c0".to_string();
    let affected = per_cluster[0] as usize;

    progress(&format!("losing {lost} ({affected} graphs)…"));
    let t0 = Instant::now();
    set_ready(&http, &sim_url, &lost, false).await?;
    loop {
        health().await?;
        if lost_at(&pool, &lost).await?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let detection_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    wait_converged(&http, &sim_url, &pool, Some(&lost)).await?;
    let running_elsewhere_secs = t1.elapsed().as_secs_f64();
    let figures: Value = sqlx::query_scalar(
        "SELECT data FROM smo.cluster_events WHERE cluster = $1 AND event = 'failover' ORDER BY id DESC LIMIT 1",
    )
    .bind(&lost)
    .fetch_one(&pool)
    .await?;
    let over_capacity = over_capacity(&http, &sim_url).await?;

    // Where failover sent each moved graph, for the ceiling below.
    let targets: Vec<(Value, Value)> = sqlx::query_as(
        "SELECT g.descriptor, g.placement FROM smo.graphs g
          WHERE EXISTS (SELECT 1 FROM smo.failover_moves m WHERE m.graph_id = g.id)",
    )
    .fetch_all(&pool)
    .await?;

    progress(&format!("{lost} back: failing back…"));
    let t2 = Instant::now();
    set_ready(&http, &sim_url, &lost, true).await?;
    loop {
        health().await?;
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM smo.failover_moves")
            .fetch_one(&pool)
            .await?;
        if left == 0 && lost_at(&pool, &lost).await?.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_converged(&http, &sim_url, &pool, None).await?;
    let failback_secs = t2.elapsed().as_secs_f64();
    // The ceiling: the same moves again (home → failover's targets) straight from one client,
    // graph after graph: apply its objects, read its Deployments back (what any orchestrator
    // must do to know a graph runs) — no queue, lock, solve or record.
    progress("ceiling: the same moves applied straight from one client…");
    let per_graph = super::rendered(&targets, "bench")?;
    let ceiling_apply_secs = super::from_one_client(&federation, "bench", &per_graph).await?;
    let failback_rounds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo.cluster_events WHERE cluster = $1 AND event IN ('failback', 'recovered')",
    )
    .bind(&lost)
    .fetch_one(&pool)
    .await?;
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM smo_jobs.jobs WHERE state = 'dead'")
        .fetch_one(&pool)
        .await?;
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    anyhow::ensure!(dead == 0, "{dead} jobs died");
    Ok(FailoverReport {
        graphs: n,
        clusters: m,
        lost,
        affected,
        detection_secs,
        solve_secs: figures["solve_seconds"].as_f64().unwrap_or_default(),
        optimal: figures["optimal"].as_bool().unwrap_or_default(),
        moves: figures["moves"].as_u64().unwrap_or_default(),
        stranded: figures["stranded"].as_u64().unwrap_or_default(),
        running_elsewhere_secs,
        ceiling_apply_secs,
        over_capacity,
        failback_secs,
        failback_rounds: failback_rounds as usize,
    })
}

async fn set_ready(
    http: &reqwest::Client,
    sim: &str,
    cluster: &str,
    ready: bool,
) -> anyhow::Result<()> {
    let r = http
        .post(format!("{sim}/sim/clusters/{cluster}/ready"))
        .json(&json!({ "ready": ready }))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "the sim refused: {}", r.status());
    Ok(())
}

async fn lost_at(
    pool: &PgPool,
    cluster: &str,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    Ok(
        sqlx::query_scalar("SELECT lost_at FROM smo.cluster_health WHERE cluster = $1")
            .bind(cluster)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}

/// Until no move is queued or running and every Deployment of the sim runs all its replicas on
/// one ready cluster other than `lost`.
async fn wait_converged(
    http: &reqwest::Client,
    sim: &str,
    pool: &PgPool,
    lost: Option<&str>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM smo_jobs.jobs
              WHERE kind IN ('failover', 'failback', 'move-graph') AND state IN ('queued', 'running', 'retrying')",
        )
        .fetch_one(pool)
        .await?;
        if busy == 0 {
            let state: Value = http
                .get(format!("{sim}/sim/state"))
                .send()
                .await?
                .json()
                .await?;
            let done = state["deployments"].as_array().is_some_and(|ds| {
                ds.iter().all(|d| {
                    let on: Vec<&str> = d["clusters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| c["desired"].as_u64() > Some(0))
                        .filter_map(|c| c["cluster"].as_str())
                        .collect();
                    on.len() == 1 && Some(on[0]) != lost && d["ready"] == d["replicas"]
                })
            });
            if done {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no convergence within 600 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ready clusters whose allocated CPU or memory exceeds their allocatable.
async fn over_capacity(http: &reqwest::Client, sim: &str) -> anyhow::Result<usize> {
    let state: Value = http
        .get(format!("{sim}/sim/state"))
        .send()
        .await?
        .json()
        .await?;
    Ok(state["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ready"] == true)
        .filter(|c| {
            ["cpu_milli", "memory"]
                .iter()
                .any(|r| c["allocated"][r].as_u64() > c["allocatable"][r].as_u64())
        })
        .count())
}
