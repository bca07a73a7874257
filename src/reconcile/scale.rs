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
use crate::plan::{Decision, DecisionKind};
use crate::{
    federation::{FederationError, Fence, manifests},
    hdag::Scaling,
    monitoring,
    scaling::{self, GraphPlan, RoundCluster, RoundService, ScaleService, SolveOptions},
    store::{self, NewDecision},
};

/// Graphs per shard: a shard's federation calls and its one recording transaction stay short.
pub const SHARD_GRAPHS: usize = 200;
/// Federation calls one shard has in flight.
const SHARD_CONCURRENCY: usize = 16;
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

    // Rates: the default metric for every service in one query, templates one by one. A failed
    // query fails the round (retried): never scale on a guess.
    let t = Instant::now();
    let mut inputs = Vec::with_capacity(rows.len());
    let mut skipped = Vec::new();
    for mut row in rows {
        let deployment = manifests::object_name(&row.graph_id, &row.service);
        let intent = match row
            .scaling
            .take()
            .map(serde_json::from_value::<Scaling>)
            .transpose()
        {
            Ok(s) => s,
            Err(e) => {
                skipped.push(format!(
                    "{}/{}: scaling intent: {e}",
                    row.graph, row.service
                ));
                continue;
            }
        };
        let query = monitoring::rate_query(
            intent.as_ref().and_then(|s| s.metric.as_deref()),
            &row.project,
            &deployment,
            &row.service,
            window,
        );
        inputs.push((row, deployment, intent, query));
    }
    let fleet = if inputs.iter().any(|i| custom_metric(&i.2).is_none()) {
        prometheus.fleet_rates(window).await.map_err(retryable)?
    } else {
        HashMap::new()
    };
    let templated: Vec<(usize, String)> = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| custom_metric(&i.2).is_some())
        .map(|(k, i)| (k, i.3.clone()))
        .collect();
    let custom: HashMap<usize, f64> = futures::stream::iter(templated)
        .map(|(k, q)| {
            let p = prometheus.clone();
            async move { p.query(&q).await.map(|r| (k, r)) }.boxed()
        })
        .buffer_unordered(QUERY_CONCURRENCY)
        .try_collect()
        .await
        .map_err(retryable)?;
    report.query_ms = t.elapsed().as_millis() as u64;

    let mut services = Vec::with_capacity(inputs.len());
    for (k, (row, deployment, intent, query)) in inputs.into_iter().enumerate() {
        let rate = match custom_metric(&intent) {
            Some(_) => custom[&k],
            None => match fleet.get(&(row.project.clone(), deployment)) {
                Some(Some(r)) => *r,
                // An infinite rate: a broken series. The service keeps its replicas.
                Some(None) => {
                    skipped.push(format!("{}/{}: rate is infinite", row.graph, row.service));
                    continue;
                }
                // No series: no traffic (SPEC §3: empty → 0).
                None => 0.0,
            },
        };
        let cpu = row.cpu_millis as f64 / 1000.0;
        let (alpha, beta, min, max) = match &intent {
            Some(s) => (s.alpha, s.beta, s.min_replicas, s.max_replicas),
            None => scaling::defaults_for(cpu),
        };
        services.push(RoundService {
            graph: row.graph,
            project: row.project,
            cluster: row.cluster,
            query,
            service: ScaleService {
                name: row.service,
                rate,
                current: row.replicas.max(0) as u32,
                cpu,
                alpha,
                beta,
                min,
                max,
                gpu: row.gpu,
            },
        });
    }
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
    let count = |m: scaling::Method| {
        plan.cluster_solves
            .iter()
            .filter(|c| c.method == Some(m))
            .count()
    };
    report.milp_solves = count(scaling::Method::Milp);
    report.closed_form_solves = count(scaling::Method::ClosedForm);
    report.greedy_solves = count(scaling::Method::Greedy);
    let mut ms: Vec<f64> = plan
        .cluster_solves
        .iter()
        .map(|c| c.micros as f64 / 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    if let Some(max) = ms.last() {
        report.cluster_solve_max_ms = *max;
        report.cluster_solve_p99_ms = ms[((ms.len() - 1) as f64 * 0.99).round() as usize];
    }
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

    // Shards.
    let t = Instant::now();
    let shards: Vec<NewJob> = plan
        .graphs
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
    report.shards = shards.len();
    for chunk in shards.chunks(500) {
        ctx.queue
            .enqueue_many(chunk)
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
    }
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

fn custom_metric(intent: &Option<Scaling>) -> Option<&str> {
    intent
        .as_ref()
        .and_then(|s| s.metric.as_deref())
        .filter(|m| !m.trim().is_empty())
}

/// Applies one shard: lock, check, patch, record, unlock.
pub async fn shard(app: &App, job: &ScaleShardJob, ctx: &JobContext) -> Result<(), JobError> {
    let names: Vec<String> = job.graphs.iter().map(|g| g.graph.clone()).collect();
    let locked: HashMap<String, i64> = {
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

type CallResult = Result<Applied, FederationError>;

/// One planned change's result.
enum Applied {
    /// Set: the replicas the federation reports ready now.
    Set { ready: i32 },
    /// The Deployment is not there (a chart that names it otherwise).
    Missing(String),
}

async fn apply_shard(
    app: &App,
    job: &ScaleShardJob,
    ctx: &JobContext,
    locked: &HashMap<String, i64>,
) -> Result<(), JobError> {
    let mine: Vec<String> = job
        .graphs
        .iter()
        .filter(|g| locked.contains_key(&g.graph))
        .map(|g| g.graph.clone())
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let now_rows = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::services_now(&mut conn, &mine, ctx.id)
            .await
            .map_err(db)?
    };
    // graph → (row id, object graph id, running and not yet recorded by this job,
    // service → (cluster, replicas))
    type Now = (Uuid, String, bool, HashMap<String, (Option<String>, i32)>);
    let mut now: HashMap<String, Now> = HashMap::new();
    for r in now_rows {
        now.entry(r.graph)
            .or_insert_with(|| {
                let open = r.running && !r.decided;
                (r.graph_uuid, r.graph_id, open, HashMap::new())
            })
            .3
            .insert(r.service, (r.cluster, r.replicas));
    }
    // Plans that still describe their graph: held by this shard, running, not yet recorded by an
    // earlier attempt of this shard, every changed service where and at the count the round saw.
    // Another job (a deploy, a re-place, a stop) that ran in between decided otherwise; the next
    // round starts from what it left.
    let current: Vec<&GraphPlan> = job
        .graphs
        .iter()
        .filter(|g| {
            now.get(&g.graph).is_some_and(|(_, _, running, services)| {
                *running
                    && g.changes.iter().all(|c| {
                        services.get(&c.service).is_some_and(|(cluster, replicas)| {
                            cluster.as_deref() == Some(c.cluster.as_str())
                                && *replicas == c.from as i32
                        })
                    })
            })
        })
        .collect();

    // Patch the federation, SHARD_CONCURRENCY calls at a time; then read what it reports (a
    // member may not fit every new replica). Reads come after all the writes, so a control plane
    // that settles its statuses once per burst of writes settles them once per shard.
    let calls: Vec<(usize, usize)> = current
        .iter()
        .enumerate()
        .flat_map(|(gi, g)| (0..g.changes.len()).map(move |ci| (gi, ci)))
        .collect();
    let target = |gi: usize, ci: usize| {
        let g = current[gi];
        let c = &g.changes[ci];
        (g, c, manifests::object_name(&now[&g.graph].1, &c.service))
    };
    let mut results: Vec<((usize, usize), CallResult)> = Vec::with_capacity(calls.len());
    if !calls.is_empty() {
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
                    results.push((
                        (gi, ci),
                        Ok(Applied::Missing(format!(
                            "{}: no Deployment {deployment} to scale",
                            c.service
                        ))),
                    ));
                }
                Err(e) => results.push(((gi, ci), Err(e))),
            }
        }
        let read: Vec<((usize, usize), CallResult)> = futures::stream::iter(reads)
            .map(|(gi, ci)| {
                let (g, _, deployment) = target(gi, ci);
                async move {
                    let r = federation
                        .deployment_replicas(&g.project, &deployment)
                        .await
                        .map(|d| Applied::Set {
                            ready: d.map_or(0, |(_, ready)| ready),
                        });
                    ((gi, ci), r)
                }
                .boxed()
            })
            .buffer_unordered(SHARD_CONCURRENCY)
            .collect()
            .await;
        results.extend(read);
    }
    let mut per_graph: BTreeMap<usize, Vec<(usize, CallResult)>> = BTreeMap::new();
    for ((gi, ci), r) in results {
        per_graph.entry(gi).or_default().push((ci, r));
    }

    // Record, all or nothing per graph: a graph with a failed call is left for the retry.
    let mut first_error = None;
    let mut replicas = Vec::new();
    let mut decisions = Vec::new();
    let mut re_place = Vec::new();
    for (gi, g) in current.iter().enumerate() {
        let mut results = per_graph.remove(&gi).unwrap_or_default();
        results.sort_by_key(|(ci, _)| *ci);
        if let Some(pos) = results.iter().position(|(_, r)| r.is_err()) {
            let (_, e) = results.swap_remove(pos);
            if first_error.is_none() {
                first_error = e.err();
            }
            continue;
        }
        let mut applied = (*g).clone();
        applied.changes.clear();
        for (ci, r) in results {
            let c = &g.changes[ci];
            match r {
                Ok(Applied::Set { ready }) => {
                    replicas.push((now[&g.graph].0, c.service.clone(), c.to as i32, ready));
                    applied.changes.push(c.clone());
                }
                Ok(Applied::Missing(why)) => applied.notes.push(why),
                Err(_) => unreachable!("errors were handled above"),
            }
        }
        if applied.changes.is_empty() && applied.infeasible.is_empty() {
            continue;
        }
        if !applied.infeasible.is_empty() {
            re_place.push(g.graph.clone());
        }
        decisions.push(NewDecision {
            graph: g.graph.clone(),
            project: g.project.clone(),
            job_id: Some(ctx.id),
            decision: Decision::new(
                DecisionKind::Scaling,
                applied.message(),
                g.inputs.clone(),
                serde_json::to_value(&g.outcome).unwrap_or_default(),
            ),
        });
    }
    let at = ctx.queue.now();
    let mut tx = begin_record(app, ctx).await?;
    store::set_replicas_many(&mut tx, &replicas, at)
        .await
        .map_err(db)?;
    for graph in re_place {
        let args = RePlaceJob {
            graph: crate::hdag::GraphName::parse(graph.as_str())
                .map_err(|e| JobError::Permanent(e.to_string()))?,
        };
        super::enqueue_for_graph(&mut tx, &ctx.queue, &graph, &args)
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
    }
    store::add_decisions(&mut tx, &decisions, at)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    match first_error {
        Some(e) => Err(retryable(e)),
        None => Ok(()),
    }
}
