//! `smo bench scale-round`: scaling rounds over many running graphs on the real engine and round
//! code, against a stub Prometheus that answers the fleet query as a real one does and the sim.

use super::*;

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
    /// The ceiling, measured after the rounds: the first round's replica changes made again on a
    /// second simulated federation seeded as the first was, straight from one client with the
    /// shards' concurrency in all, each read back as the shards read it — no queue, lock, plan,
    /// solve or record.
    pub ceiling: Ceiling,
}

/// The federation's own cost of a round's replica changes.
#[derive(Debug, Serialize)]
pub struct Ceiling {
    /// Deployments patched and read back.
    pub patches: usize,
    pub secs: f64,
    /// The first round's time ÷ this.
    pub ratio: f64,
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
    let (addr, handle) = sim.spawn_apart("127.0.0.1:0")?;
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
        queue.enqueue(&ScaleFanoutJob {}).await?;
        // The round's job enqueues its shards before it is acknowledged: none of either kind
        // live means the round is over. Each count reads one of the queue's partial indexes (a
        // predicate like `state NOT IN (…)` scans the whole table, which a queue that ran
        // millions of jobs leaves hundreds of megabytes long: 100 such scans a second took a
        // core from the round).
        loop {
            let live: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM smo_jobs.jobs
                          WHERE kind IN ('scale-shard', 'scale-fanout') AND state IN ('queued', 'retrying'))
                      + (SELECT count(*) FROM smo_jobs.jobs
                          WHERE kind IN ('scale-shard', 'scale-fanout') AND state = 'running')",
            )
            .fetch_one(&pool)
            .await?;
            if live == 0 {
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
    progress("ceiling: the same replica changes on a fresh federation, from one client…");
    let (client, _sim2, _dir2) = seeded_sim(&hot, &cooling, &seeded).await?;
    let ceiling = redo_changes(&pool, &client, &cooled, workers * concurrency).await?;
    let ceiling = Ceiling {
        ratio: round.secs / ceiling.1,
        patches: ceiling.0,
        secs: ceiling.1,
    };
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
        ceiling,
    })
}

/// Sets every Deployment the round changed (from its seeded count: 1 replica for a hot graph's
/// service, 3 for a cooled one's) to the count the round recorded, on a federation seeded as the
/// round's was, and reads it back, `slots` × the shards' concurrency at once: (patches, seconds).
async fn redo_changes(
    pool: &PgPool,
    federation: &Federation,
    cooled: &[String],
    slots: usize,
) -> anyhow::Result<(usize, f64)> {
    use futures::StreamExt as _;
    let changed: Vec<(String, i32)> = sqlx::query_as(
        "SELECT g.name || '-' || s.name, s.replicas
           FROM smo.services s JOIN smo.graphs g ON g.id = s.graph_id
          WHERE s.replicas <> CASE WHEN g.name = ANY($1) THEN 3 ELSE 1 END",
    )
    .bind(cooled)
    .fetch_all(pool)
    .await?;
    let fence = crate::federation::Fence::unbounded();
    let started = Instant::now();
    let in_flight = slots * reconcile::SHARD_CONCURRENCY;
    // All patches, then all reads, as a shard does (the sim settles its workloads when a read
    // follows writes: interleaved, every read would settle again).
    let patched: Vec<Result<(), crate::federation::FederationError>> =
        futures::stream::iter(&changed)
            .map(|(name, replicas)| federation.scale("bench", name, *replicas, &fence))
            .buffer_unordered(in_flight)
            .collect()
            .await;
    patched.into_iter().collect::<Result<Vec<()>, _>>()?;
    let read: Vec<Result<Option<(i32, i32)>, crate::federation::FederationError>> =
        futures::stream::iter(&changed)
            .map(|(name, _)| federation.deployment_replicas("bench", name))
            .buffer_unordered(in_flight)
            .collect()
            .await;
    let secs = started.elapsed().as_secs_f64();
    read.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((changed.len(), secs))
}

/// A cluster as seeded: its allocatable and free cores.
pub(super) struct SeededCluster {
    name: String,
    allocatable: f64,
    free: f64,
}

/// Empties smo's tables in the scratch database `pool` and fills them with `graphs` running graphs
/// of three services each (0.1 core, one replica) spread round-robin over `fleet.clusters`
/// clusters sized to `fleet.utilisation` (set-based inserts: seconds for 100,000 graphs).
pub(super) async fn seed_running_graphs(
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
