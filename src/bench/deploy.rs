//! `smo bench deploy`: graphs submitted through the API, deployed by worker processes into the sim,
//! timed submit→Running, with each process's CPU and the in-run ceiling (the same objects applied
//! from one client).

use super::*;

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
