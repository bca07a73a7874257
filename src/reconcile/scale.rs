//! The scaling round (SPEC §3 over the whole fleet): one `scale-fanout` job per interval loads
//! every running service, asks Prometheus for all their rates in one query, solves each cluster
//! over every graph placed there ([`scaling::plan_round`]) and enqueues the graphs whose replicas
//! change as `scale-shard` jobs of at most [`SHARD_GRAPHS`] graphs. Any worker runs a shard: it
//! locks its graphs in one statement, skips those that moved since the plan, patches the
//! federation, and records replicas, decisions and re-placements in one transaction. A shard
//! that fails is retried alone; a graph it already recorded no longer matches its plan and is
//! skipped on the retry.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use futures::{FutureExt, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use smo_jobs::{JobArgs, JobContext, JobError, NewJob};
use uuid::Uuid;

use super::{App, RePlaceJob, begin_record, db, retryable};
use crate::{
    federation::{FederationError, Fence, manifests},
    monitoring,
    scaling::{
        self, GraphPlan, RoundCluster, SolveOptions,
        shard::{self, Applied, GraphNow},
    },
    store::{self, NewDecision},
};

/// Graphs per shard: a shard's federation calls and its one recording transaction stay short.
pub const SHARD_GRAPHS: usize = 200;
/// Federation calls one shard has in flight.
pub const SHARD_CONCURRENCY: usize = 16;
/// Template (per-service) rate queries in flight.
const QUERY_CONCURRENCY: usize = 16;

/// Apply one shard of a scaling round (enqueued by `scale-fanout`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleShardJob {
    /// The round (its `scale-fanout` job).
    pub round: Uuid,
    /// Shard number within the round.
    pub index: usize,
    /// The graphs whose replicas change or that must be re-placed, with their decisions.
    pub graphs: Vec<GraphPlan>,
}

impl JobArgs for ScaleShardJob {
    const KIND: &'static str = "scale-shard";
    const MAX_ATTEMPTS: u32 = 5;
    /// A retried round enqueues its shards once.
    fn unique_key(&self) -> Option<String> {
        Some(format!("{}/{}", self.round, self.index))
    }
}

/// What a round did, for its log line and the bench.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundReport {
    /// Services counted.
    pub services: usize,
    /// Graphs with changes or a re-placement.
    pub graphs_acted_on: usize,
    /// Replica changes planned.
    pub changes: usize,
    /// Shards enqueued.
    pub shards: usize,
    /// Milliseconds reading services and clusters.
    pub load_ms: u64,
    /// Milliseconds asking Prometheus.
    pub query_ms: u64,
    /// Milliseconds solving every cluster.
    pub solve_ms: u64,
    /// Milliseconds enqueueing the shards.
    pub enqueue_ms: u64,
    /// Clusters solved, by how: HiGHS ran (a MILP), the closed form fitted, the greedy fit.
    pub milp_solves: usize,
    pub closed_form_solves: usize,
    pub greedy_solves: usize,
    /// The slowest cluster solves: p99 and max over the clusters, in milliseconds.
    pub cluster_solve_p99_ms: f64,
    pub cluster_solve_max_ms: f64,
}

impl RoundReport {
    /// How the round's cluster solves went: by method, and the slowest (p99, max).
    fn count_solves(&mut self, plan: &scaling::RoundPlan) {
        let count = |m: scaling::Method| {
            plan.cluster_solves
                .iter()
                .filter(|c| c.method == Some(m))
                .count()
        };
        self.milp_solves = count(scaling::Method::Milp);
        self.closed_form_solves = count(scaling::Method::ClosedForm);
        self.greedy_solves = count(scaling::Method::Greedy);
        let mut ms: Vec<f64> = plan
            .cluster_solves
            .iter()
            .map(|c| c.micros as f64 / 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        if let Some(max) = ms.last() {
            self.cluster_solve_max_ms = *max;
            self.cluster_solve_p99_ms = ms[((ms.len() - 1) as f64 * 0.99).round() as usize];
        }
    }
}

/// Plans one round and enqueues its shards.
pub async fn round(app: &App, ctx: &JobContext) -> Result<RoundReport, JobError> {
    let Some(prometheus) = app.monitoring.prometheus.as_ref() else {
        tracing::debug!("no prometheus_url configured: no scaling round");
        return Ok(RoundReport::default());
    };
    let window = if app.monitoring.rate_window.is_empty() {
        monitoring::DEFAULT_WINDOW
    } else {
        &app.monitoring.rate_window
    };
    let mut report = RoundReport::default();

    // Load.
    let t = Instant::now();
    let rows = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::scaling_rows(&mut conn).await.map_err(db)?
    };
    let clusters = store::list_clusters(&app.pool).await.map_err(db)?;
    report.load_ms = t.elapsed().as_millis() as u64;
    if rows.is_empty() {
        return Ok(report);
    }

    // Rates (I/O), then the round's services from them (pure).
    let t = Instant::now();
    let mut skipped = Vec::new();
    let inputs = scaling::inputs::rate_inputs(rows, window, &mut skipped);
    let (fleet, custom) = rates(prometheus, window, &inputs).await?;
    report.query_ms = t.elapsed().as_millis() as u64;
    let services = scaling::inputs::round_services(inputs, &fleet, &custom, &mut skipped);
    let clusters: Vec<RoundCluster> = clusters
        .into_iter()
        .map(|c| RoundCluster {
            name: c.name.into(),
            cpu_free: c.cpu_free,
            accelerator: c.gpus > 0,
        })
        .collect();

    // Plan (CPU-bound: off the async threads).
    let t = Instant::now();
    let plan = tokio::task::spawn_blocking(move || {
        crate::metrics::timed_solve("scaling", || {
            Ok::<_, std::convert::Infallible>(scaling::plan_round(
                services,
                &clusters,
                &SolveOptions::default(),
            ))
        })
    })
    .await
    .map(|r| r.unwrap_or_else(|never| match never {}))
    .map_err(|e| JobError::Transient(format!("scaling round: {e}")))?;
    report.solve_ms = t.elapsed().as_millis() as u64;
    report.count_solves(&plan);
    report.services = plan.services;
    report.graphs_acted_on = plan.graphs.len();
    report.changes = plan.graphs.iter().map(|g| g.changes.len()).sum();
    for why in plan.invalid.iter().chain(&skipped).take(20) {
        tracing::warn!("scaling round left a service alone: {why}");
    }
    if plan.unknown_cluster > 0 {
        tracing::warn!(
            services = plan.unknown_cluster,
            "scaling round: services on clusters not synced yet were left alone"
        );
    }

    // Apply: the shards.
    let t = Instant::now();
    report.shards = enqueue_shards(ctx, &plan.graphs).await?;
    report.enqueue_ms = t.elapsed().as_millis() as u64;
    tracing::info!(
        services = report.services,
        graphs = report.graphs_acted_on,
        changes = report.changes,
        shards = report.shards,
        load_ms = report.load_ms,
        query_ms = report.query_ms,
        solve_ms = report.solve_ms,
        milp_solves = report.milp_solves,
        "scaling round planned"
    );
    Ok(report)
}

/// The default metric's rate of every service in one query, each template's in a query of its
/// own. A failed query fails the round (retried): never scale on a guess.
async fn rates(
    prometheus: &monitoring::io::Prometheus,
    window: &str,
    inputs: &[scaling::inputs::RateInput],
) -> Result<(HashMap<(String, String), Option<f64>>, HashMap<usize, f64>), JobError> {
    let fleet = if inputs.iter().any(|i| !i.custom()) {
        prometheus.fleet_rates(window).await.map_err(retryable)?
    } else {
        HashMap::new()
    };
    let templated: Vec<(usize, String)> = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.custom())
        .map(|(k, i)| (k, i.query.clone()))
        .collect();
    let custom = futures::stream::iter(templated)
        .map(|(k, q)| {
            let p = prometheus.clone();
            async move { p.query(&q).await.map(|r| (k, r)) }.boxed()
        })
        .buffer_unordered(QUERY_CONCURRENCY)
        .try_collect()
        .await
        .map_err(retryable)?;
    Ok((fleet, custom))
}

/// The graphs to act on as `scale-shard` jobs of [`SHARD_GRAPHS`], unique per (round, index).
async fn enqueue_shards(ctx: &JobContext, graphs: &[GraphPlan]) -> Result<usize, JobError> {
    let shards: Vec<NewJob> = graphs
        .chunks(SHARD_GRAPHS)
        .enumerate()
        .map(|(index, chunk)| {
            NewJob::from_args(&ScaleShardJob {
                round: ctx.id,
                index,
                graphs: chunk.to_vec(),
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    for chunk in shards.chunks(500) {
        ctx.queue
            .enqueue_many(chunk)
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
    }
    Ok(shards.len())
}

/// Applies one shard: lock, check, patch, record, unlock.
pub async fn shard(app: &App, job: &ScaleShardJob, ctx: &JobContext) -> Result<(), JobError> {
    let names: Vec<String> = job.graphs.iter().map(|g| g.graph.clone()).collect();
    let locked: HashMap<String, store::FenceToken> = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::try_lock_graphs(&mut conn, &names, ctx.id, ctx.epoch, ctx.queue.now())
            .await
            .map_err(db)?
            .into_iter()
            .collect()
    };
    let result = apply_shard(app, job, ctx, &locked).await;
    let held: Vec<String> = locked.into_keys().collect();
    let unlocked = match app.pool.acquire().await {
        Ok(mut conn) => store::unlock_graphs(&mut conn, &held, ctx.id, ctx.epoch)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = unlocked {
        tracing::warn!(error = %e, "could not release a shard's graph locks; they free when the job ends");
    }
    result
}

/// Load → plan → apply → record for the graphs this shard holds (`locked`, with their tokens).
async fn apply_shard(
    app: &App,
    job: &ScaleShardJob,
    ctx: &JobContext,
    locked: &HashMap<String, store::FenceToken>,
) -> Result<(), JobError> {
    // Load: where the held graphs' services are now.
    let mine: Vec<String> = job
        .graphs
        .iter()
        .filter(|g| locked.contains_key(&g.graph))
        .map(|g| g.graph.clone())
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let mut now: HashMap<String, GraphNow> = HashMap::new();
    let mut conn = app.pool.acquire().await.map_err(db)?;
    for r in store::services_now(&mut conn, &mine, ctx.id)
        .await
        .map_err(db)?
    {
        now.entry(r.graph)
            .or_insert_with(|| GraphNow {
                row: r.graph_uuid,
                object_graph: r.graph_id,
                open: r.running && !r.decided,
                services: HashMap::new(),
            })
            .services
            .insert(r.service, (r.cluster, r.replicas));
    }
    drop(conn);
    // Plan: the round's plans that still describe their graph.
    let current = shard::still_current(&job.graphs, &now);
    // Apply: every change through the fence, then what the federation reports.
    let (results, first_error) = scale_all(app, ctx, locked, &current, &now).await?;
    // Record, all or nothing per graph: a graph with a failed call is left for the retry.
    let record = shard::record(&current, &now, &results);
    let at = ctx.queue.now();
    let mut tx = begin_record(app, ctx).await?;
    store::set_replicas_many(&mut tx, &record.replicas, at)
        .await
        .map_err(db)?;
    for graph in &record.re_place {
        let args = RePlaceJob {
            graph: crate::hdag::GraphName::parse(graph.as_str())
                .map_err(|e| JobError::Permanent(e.to_string()))?,
        };
        super::enqueue_for_graph(&mut tx, &ctx.queue, graph, &args)
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
    }
    let decisions: Vec<NewDecision> = record
        .decisions
        .into_iter()
        .map(|(graph, project, decision)| NewDecision {
            graph,
            project,
            job_id: Some(ctx.id),
            decision,
        })
        .collect();
    store::add_decisions(&mut tx, &decisions, at)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    match first_error {
        Some(e) => Err(retryable(e)),
        None => Ok(()),
    }
}

/// Patches every planned change, [`SHARD_CONCURRENCY`] calls at a time, then reads what the
/// federation reports (a member may not fit every new replica). Reads come after all the
/// writes, so a control plane that settles its statuses once per burst of writes settles them
/// once per shard. Returns each change's answer, keyed (graph, change), and the first error.
async fn scale_all(
    app: &App,
    ctx: &JobContext,
    locked: &HashMap<String, store::FenceToken>,
    current: &[&GraphPlan],
    now: &HashMap<String, GraphNow>,
) -> Result<(BTreeMap<(usize, usize), Applied>, Option<FederationError>), JobError> {
    let mut results = BTreeMap::new();
    let mut first_error = None;
    let calls: Vec<(usize, usize)> = current
        .iter()
        .enumerate()
        .flat_map(|(gi, g)| (0..g.changes.len()).map(move |ci| (gi, ci)))
        .collect();
    if calls.is_empty() {
        return Ok((results, first_error));
    }
    let target = |gi: usize, ci: usize| {
        let g = current[gi];
        let c = &g.changes[ci];
        (
            g,
            c,
            manifests::object_name(&now[&g.graph].object_graph, &c.service),
        )
    };
    let federation = app.federation()?;
    let patched: Vec<((usize, usize), Result<bool, FederationError>)> =
        futures::stream::iter(calls)
            .map(|(gi, ci)| {
                let (g, c, deployment) = target(gi, ci);
                let fence = Fence::new(ctx.lease.clone(), Some(locked[&g.graph]));
                async move {
                    let r = match federation
                        .scale(&g.project, &deployment, c.to as i32, &fence)
                        .await
                    {
                        Ok(()) => Ok(true),
                        Err(FederationError::Kube(kube::Error::Api(e))) if e.code == 404 => {
                            Ok(false)
                        }
                        Err(e) => Err(e),
                    };
                    ((gi, ci), r)
                }
                .boxed()
            })
            .buffer_unordered(SHARD_CONCURRENCY)
            .collect()
            .await;
    let mut reads = Vec::new();
    for ((gi, ci), r) in patched {
        match r {
            Ok(true) => reads.push((gi, ci)),
            Ok(false) => {
                let (_, c, deployment) = target(gi, ci);
                let why = format!("{}: no Deployment {deployment} to scale", c.service);
                results.insert((gi, ci), Applied::Missing(why));
            }
            Err(e) => {
                results.insert((gi, ci), Applied::Failed);
                first_error.get_or_insert(e);
            }
        }
    }
    type Read = ((usize, usize), Result<Option<(i32, i32)>, FederationError>);
    let read: Vec<Read> = futures::stream::iter(reads)
        .map(|(gi, ci)| {
            let (g, _, deployment) = target(gi, ci);
            async move {
                let r = federation
                    .deployment_replicas(&g.project, &deployment)
                    .await;
                ((gi, ci), r)
            }
            .boxed()
        })
        .buffer_unordered(SHARD_CONCURRENCY)
        .collect()
        .await;
    for (key, r) in read {
        match r {
            Ok(d) => {
                let ready = d.map_or(0, |(_, ready)| ready);
                results.insert(key, Applied::Set { ready });
            }
            Err(e) => {
                results.insert(key, Applied::Failed);
                first_error.get_or_insert(e);
            }
        }
    }
    Ok((results, first_error))
}
