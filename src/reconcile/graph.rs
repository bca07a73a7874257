//! The graph reconciles: load → plan → apply → record. What to do is decided by [`crate::plan`]
//! (pure); this file only loads, applies and records. Two jobs of one graph never interleave:
//! each holds the graph's lock row (`smo.graph_locks`) for its run, and a job that finds the graph
//! busy snoozes (runs again shortly, no attempt spent). No transaction is held across a call to
//! the federation or Helm: the job reads what it needs, applies with server-side apply and
//! deterministic names, then records status and decisions in one short transaction.

use std::{collections::BTreeMap, future::Future, time::Duration};

use smo_jobs::{JobContext, JobError};
use sqlx::PgConnection;

use super::{App, begin_record, db, descriptor_of, load_graph, retryable};
use crate::{
    federation::{Fence, manifests},
    hdag::Graph,
    plan::{self, Deploy, Gate, Outcome, Snapshot, Trigger, Work},
    store::{self, ClusterRecord, Desired, GraphRecord, GraphStatus},
};

/// How long a job waits before it looks at a busy graph again (plus up to as much jitter).
const BUSY_SNOOZE: Duration = Duration::from_millis(1500);

/// Takes the graph's lock for this attempt: its fencing token, or `None` when another running
/// attempt holds it.
async fn try_lock(
    app: &App,
    name: &str,
    ctx: &JobContext,
) -> Result<Option<store::FenceToken>, JobError> {
    let mut conn = app.pool.acquire().await.map_err(db)?;
    store::try_lock_graph(&mut conn, name, ctx.id, ctx.epoch, ctx.queue.now())
        .await
        .map_err(db)
}

/// Releases the graph's lock (best effort: a lock whose job is not running is free anyway).
async fn unlock(app: &App, name: &str, ctx: &JobContext) {
    let res = match app.pool.acquire().await {
        Ok(mut conn) => store::unlock_graph(&mut conn, name, ctx.id, ctx.epoch)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = res {
        tracing::warn!(graph = name, error = %e, "could not release the graph lock; it frees when the job ends");
    }
}

/// Runs `body` holding the graph's lock, with the fence every write of the body goes through;
/// `None` (without running it) when another running job holds the lock.
async fn locked<T, F: Future<Output = Result<T, JobError>>>(
    app: &App,
    name: &str,
    ctx: &JobContext,
    body: impl FnOnce(Fence) -> F,
) -> Result<Option<T>, JobError> {
    let Some(token) = try_lock(app, name, ctx).await? else {
        return Ok(None);
    };
    let result = body(Fence::new(ctx.lease.clone(), Some(token))).await;
    unlock(app, name, ctx).await;
    result.map(Some)
}

/// Runs `body` holding the graph's lock. A busy graph snoozes the job: waiting for another job
/// of the same graph is not a failure and must not spend the attempts meant for real errors.
async fn with_locked_graph<T, F: Future<Output = Result<T, JobError>>>(
    app: &App,
    name: &str,
    ctx: &JobContext,
    body: impl FnOnce(Fence) -> F,
) -> Result<T, JobError> {
    locked(app, name, ctx, body).await?.ok_or_else(busy)
}

fn busy() -> JobError {
    let jitter = Duration::from_millis(u64::from(rand::random::<u16>()) % 1500);
    JobError::snooze(BUSY_SNOOZE + jitter)
}

/// [`with_locked_graph`] for a job that another job of the graph enqueues while it holds the
/// lock (it lets go right after its record commits): looks again for up to `patience` before it
/// snoozes, so the follow-up usually runs at once.
pub(super) async fn with_locked_graph_after<T, F: Future<Output = Result<T, JobError>>>(
    app: &App,
    name: &str,
    ctx: &JobContext,
    patience: Duration,
    body: impl FnOnce(Fence) -> F,
) -> Result<T, JobError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(token) = try_lock(app, name, ctx).await? {
            let result = body(Fence::new(ctx.lease.clone(), Some(token))).await;
            unlock(app, name, ctx).await;
            return result;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(busy());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `body` holding the graph's lock, or skips it when another job holds the graph: for
/// periodic work (scale ticks, drift checks) whose next period comes anyway.
async fn unless_busy<F: Future<Output = Result<(), JobError>>>(
    app: &App,
    name: &str,
    ctx: &JobContext,
    body: impl FnOnce(Fence) -> F,
) -> Result<(), JobError> {
    locked(app, name, ctx, body).await?;
    Ok(())
}

/// Enqueues `publish-dashboards` for the graph in the caller's transaction, linked to the graph.
async fn enqueue_publish(
    tx: &mut PgConnection,
    g: &GraphRecord,
    ctx: &JobContext,
) -> Result<(), JobError> {
    let args = super::PublishDashboardsJob {
        graph: g.name.clone(),
    };
    super::enqueue_for_graph(tx, &ctx.queue, g.name.as_str(), &args)
        .await
        .map(drop)
        .map_err(|e| JobError::Transient(e.to_string()))
}

/// How old a cluster row's free capacity may grow before a deploy's sync rewrites it (see
/// [`store::replace_clusters`]): the deploy places on what it read itself either way.
const DEPLOY_SYNC_SETTLE: Duration = Duration::from_secs(1);

/// Reads the clusters from Karmada and refreshes the cluster table (rows differing only in free
/// capacity once they are `settle` old; `Duration::ZERO` rewrites them all).
pub async fn cluster_sync(
    app: &App,
    ctx: &JobContext,
    settle: Duration,
) -> Result<Vec<ClusterRecord>, JobError> {
    let clusters = app
        .federation()?
        .clusters(ctx.queue.now())
        .await
        .map_err(retryable)?;
    let mut conn = app.pool.acquire().await.map_err(db)?;
    store::replace_clusters(&mut conn, &clusters, settle)
        .await
        .map_err(db)?;
    Ok(clusters)
}

/// The lock / load / check-desired preamble of every graph job: runs `body` on the graph's record
/// under its lock when the graph still exists and the user still wants `want` (a graph removed
/// or re-targeted meanwhile leaves nothing to do). `skip_busy`: periodic work skips a busy graph
/// instead of snoozing.
pub(super) async fn reconcile<F, Fut>(
    app: &App,
    name: &str,
    ctx: &JobContext,
    want: Desired,
    skip_busy: bool,
    body: F,
) -> Result<(), JobError>
where
    F: FnOnce(GraphRecord, Fence) -> Fut,
    Fut: Future<Output = Result<(), JobError>>,
{
    let run = |fence: Fence| async move {
        match load_graph(app, name).await? {
            Some(g) if g.desired == want => body(g, fence).await,
            _ => Ok(()),
        }
    };
    if skip_busy {
        unless_busy(app, name, ctx, run).await
    } else {
        with_locked_graph(app, name, ctx, run).await
    }
}

/// Records an outcome in one short transaction, after proving the attempt still owns its job.
async fn record(
    app: &App,
    ctx: &JobContext,
    g: &GraphRecord,
    outcome: &Outcome,
) -> Result<(), JobError> {
    let now = ctx.queue.now();
    let mut tx = begin_record(app, ctx).await?;
    store::record_outcome(&mut tx, g, ctx.id, outcome, now)
        .await
        .map_err(db)?;
    if outcome.publish {
        enqueue_publish(&mut tx, g, ctx).await?;
    }
    tx.commit().await.map_err(db)
}

/// Applies a plan's work in order: the namespace, then each service's objects or Helm release.
pub(super) async fn apply(
    app: &App,
    project: &str,
    work: &[Work],
    fence: &Fence,
) -> Result<(), JobError> {
    let federation = app.federation()?;
    federation
        .ensure_namespace(project, fence)
        .await
        .map_err(retryable)?;
    for w in work {
        match w {
            Work::Apply { objects, .. } => {
                for obj in objects {
                    federation.apply(obj, fence).await.map_err(retryable)?;
                }
            }
            Work::Helm(r) => {
                let helm = app.helm.as_ref().ok_or_else(|| {
                    JobError::Permanent(format!("no Helm runner to install {}", r.release))
                })?;
                fence
                    .bounded(helm.install(&r.release, &r.chart, project, &r.values))
                    .await?
                    .map_err(retryable)?;
            }
        }
    }
    Ok(())
}

/// Reads back (desired, ready) replicas of the plan's observed services.
pub(super) async fn observe(
    app: &App,
    project: &str,
    graph: &Graph,
    plan: &Deploy,
) -> Result<BTreeMap<String, plan::Observed>, JobError> {
    let federation = app.federation()?;
    let mut out = BTreeMap::new();
    for service in &plan.observe {
        let name = manifests::object_name(&graph.id, service);
        let seen = federation
            .deployment_replicas(project, &name)
            .await
            .map_err(retryable)?;
        out.insert(service.clone(), seen);
    }
    Ok(out)
}

/// Deploy/start: place, apply every non-conditional service, record status.
pub async fn deploy(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    reconcile(app, name, ctx, Desired::Running, false, |g, fence| {
        deploy_running(app, g, ctx, fence, false)
    })
    .await
}

/// Re-placement: recompute with the current placement as the baseline; apply what moved.
pub async fn re_place(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    reconcile(app, name, ctx, Desired::Running, false, |g, fence| {
        deploy_running(app, g, ctx, fence, true)
    })
    .await
}

/// Deploy or re-place, recording a permanent failure (or the last attempt's) on the graph.
async fn deploy_running(
    app: &App,
    g: GraphRecord,
    ctx: &JobContext,
    fence: Fence,
    force: bool,
) -> Result<(), JobError> {
    let Err(e) = deploy_placed(app, &g, ctx, &fence, force).await else {
        return Ok(());
    };
    if !e.is_fenced() && (e.is_permanent() || ctx.attempt >= ctx.max_attempts) {
        let outcome = if force {
            // A re-placement that cannot be made leaves the graph running where it is.
            plan::replace_failed(&e.to_string())
        } else {
            // A deploy that ends for good leaves nothing behind: what its attempts applied would
            // hold capacity (and make other placements fail) for a graph that does not run.
            let cleaned = clean_up(app, &g, &fence).await;
            plan::failed(&e.to_string(), cleaned)
        };
        record(app, ctx, &g, &outcome).await?;
    }
    Err(e)
}

/// Removes what a failed deploy applied: its objects (by label) and its Helm releases. Best
/// effort — what cannot be removed now is named, and drift repair or a stop removes it later.
async fn clean_up(app: &App, g: &GraphRecord, fence: &Fence) -> plan::Cleanup {
    let mut cleanup = plan::Cleanup::default();
    match app.federation() {
        Ok(f) => match f
            .delete_labelled(g.project.as_str(), g.name.as_str(), None, fence)
            .await
        {
            Ok(n) => cleanup.objects = n,
            Err(e) => cleanup.left.push(format!("objects: {e}")),
        },
        Err(e) => cleanup.left.push(format!("objects: {e}")),
    }
    if let Ok(graph) = descriptor_of(g) {
        let releases = plan::helm_releases(&graph);
        match helm_uninstall(app, g.project.as_str(), &releases, fence).await {
            Ok(()) => cleanup.releases = releases.len(),
            Err(e) => cleanup.left.push(format!("Helm releases: {e}")),
        }
    }
    cleanup
}

async fn deploy_placed(
    app: &App,
    g: &GraphRecord,
    ctx: &JobContext,
    fence: &Fence,
    force: bool,
) -> Result<(), JobError> {
    // Load.
    let services = {
        let mut tx = begin_record(app, ctx).await?;
        store::set_status(&mut tx, g.id, GraphStatus::Deploying, None, ctx.queue.now())
            .await
            .map_err(db)?;
        let services = store::services(&mut tx, g.id).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        services
    };
    let graph = descriptor_of(g)?;
    // Services that moved are re-applied with their new cluster (same object names), so Karmada
    // moves them; nothing is duplicated.
    let helm = app.helm.is_some();
    place_and_apply(app, ctx, g, &graph, &services, fence, |s| {
        plan::deploy(s, force, helm)
    })
    .await
}

/// The shared tail of a deploy and a conditional deploy: sync the clusters (placement on stale
/// capacities is how clusters overflow), plan on the snapshot, apply, read readiness, record.
async fn place_and_apply(
    app: &App,
    ctx: &JobContext,
    g: &GraphRecord,
    graph: &Graph,
    services: &[store::ServiceRecord],
    fence: &Fence,
    decide: impl FnOnce(&Snapshot<'_>) -> Result<Deploy, plan::PlanError>,
) -> Result<(), JobError> {
    let clusters = cluster_sync(app, ctx, DEPLOY_SYNC_SETTLE).await?;
    let current = g.placement_map();
    // The placement MILP runs off the async threads: the heartbeat must not wait on it.
    let plan = super::off_runtime(|| {
        let started = std::time::Instant::now();
        let plan = decide(&Snapshot {
            graph,
            project: g.project.as_str(),
            services,
            clusters: &clusters,
            current: &current,
        });
        crate::metrics::observe_plan(&plan, started.elapsed());
        plan
    })
    .map_err(permanent)?;
    apply(app, g.project.as_str(), &plan.work, fence).await?;
    let observed = observe(app, g.project.as_str(), graph, &plan).await?;
    let mut outcome = plan.outcome(&observed);
    // Decided here, where the graph is parsed: drift re-publishes only what is missing, so only
    // a deploy can ask for a publish job that has nowhere to publish.
    outcome.publish &= app.monitoring.publishes(g.project.as_str(), graph);
    record(app, ctx, g, &outcome).await
}

fn permanent(e: plan::PlanError) -> JobError {
    JobError::Permanent(e.to_string())
}

/// Deploys a conditional service once: a second alert (Alertmanager repeats) finds it deployed
/// and changes nothing.
pub async fn deploy_conditional(
    app: &App,
    name: &str,
    service: &str,
    alert: &str,
    ctx: &JobContext,
) -> Result<(), JobError> {
    reconcile(
        app,
        name,
        ctx,
        Desired::Running,
        false,
        |g, fence| async move {
            let (services, firing) = {
                let mut conn = app.pool.acquire().await.map_err(db)?;
                let services = store::services(&mut conn, g.id).await.map_err(db)?;
                let firing = store::firing_events(&mut conn, g.id, service)
                    .await
                    .map_err(db)?;
                (services, firing)
            };
            let graph = descriptor_of(&g)?;
            // `condition: ALL`: an event may have resolved since the webhook enqueued this job.
            match plan::conditional_gate(&graph, &services, service, alert, &firing)
                .map_err(permanent)?
            {
                Gate::Done => return Ok(()),
                Gate::Waits(outcome) => return record(app, ctx, &g, &outcome).await,
                Gate::Go => {}
            }
            let trigger = Trigger {
                service: service.into(),
                alert: alert.into(),
            };
            let helm = app.helm.is_some();
            place_and_apply(app, ctx, &g, &graph, &services, &fence, |s| {
                plan::conditional(s, trigger, helm)
            })
            .await
        },
    )
    .await
}

/// Stop: delete the workloads, keep the graph.
pub async fn stop(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    reconcile(
        app,
        name,
        ctx,
        Desired::Stopped,
        false,
        |g, fence| async move {
            let services = {
                let mut conn = app.pool.acquire().await.map_err(db)?;
                store::services(&mut conn, g.id).await.map_err(db)?
            };
            let graph = descriptor_of(&g).ok();
            let plan = plan::stop(graph.as_ref(), &services);
            let deleted = app
                .federation()?
                .delete_labelled(g.project.as_str(), g.name.as_str(), None, &fence)
                .await
                .map_err(retryable)?;
            if let Some(graph) = &graph {
                helm_uninstall(app, g.project.as_str(), &plan.uninstall, &fence).await?;
                super::monitor::unpublish(app, g.project.as_str(), graph, false, &fence).await?;
            }
            record(app, ctx, &g, &plan.outcome(deleted)).await
        },
    )
    .await
}

/// After this many attempts a removal stops waiting for Helm: it deletes the graph and records
/// the releases Helm could not uninstall, so removal always converges.
const REMOVE_HELM_PATIENCE: u32 = 3;

/// Remove: delete every object of the graph, then its records (decisions stay as history), then
/// the project's namespace when smo created it and nothing else lives there.
pub async fn remove(
    app: &App,
    name: &str,
    project: &str,
    ctx: &JobContext,
) -> Result<(), JobError> {
    with_locked_graph(app, name, ctx, |fence| {
        remove_locked(app, name, project, ctx, fence)
    })
    .await
}

async fn remove_locked(
    app: &App,
    name: &str,
    project: &str,
    ctx: &JobContext,
    fence: Fence,
) -> Result<(), JobError> {
    let g = load_graph(app, name).await?;
    if let Some(g) = &g
        && g.desired != Desired::Removed
    {
        return Ok(()); // re-uploaded after the removal was asked: the newer intent wins
    }
    let federation = app.federation()?;
    let deleted = federation
        .delete_labelled(project, name, None, &fence)
        .await
        .map_err(retryable)?;
    let mut left_behind = Vec::new();
    if let Some(graph) = g.as_ref().and_then(|g| descriptor_of(g).ok()) {
        if let Err(e) = helm_uninstall(app, project, &plan::helm_releases(&graph), &fence).await {
            // Helm may keep failing (a broken release, a chart it cannot render): give it a few
            // attempts, then remove the graph anyway and say which releases were left.
            if e.is_fenced()
                || !e.is_permanent() && ctx.attempt < REMOVE_HELM_PATIENCE.min(ctx.max_attempts)
            {
                return Err(e);
            }
            left_behind.push(e.to_string());
        }
        super::monitor::unpublish(app, project, &graph, true, &fence).await?;
    }
    let mut tx = begin_record(app, ctx).await?;
    if let Some(current) = store::find_graph_for_update(&mut tx, name)
        .await
        .map_err(db)?
    {
        if current.desired != Desired::Removed {
            return Ok(()); // re-uploaded while we deleted: the next deploy re-applies it
        }
        store::delete_graph(&mut tx, current.id).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    let mut conn = app.pool.acquire().await.map_err(db)?;
    let others = store::project_has_other_graphs(&mut conn, project, name)
        .await
        .map_err(db)?;
    drop(conn);
    // A deploy racing into this project re-creates the namespace before it applies anything.
    let namespace_deleted = !others
        && federation
            .delete_namespace_if_unused(project, &fence)
            .await
            .map_err(retryable)?;
    let decision = plan::removed(deleted, namespace_deleted.then_some(project), &left_behind);
    let mut tx = begin_record(app, ctx).await?;
    let entry = store::NewDecision {
        graph: name.to_string(),
        project: project.to_string(),
        job_id: Some(ctx.id),
        decision,
    };
    store::add_decisions(&mut tx, &[entry], ctx.queue.now())
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Drift repair: compares what a running graph should have in the federation with what is there
/// and re-applies what is missing or changed (server-side apply: the same objects, idempotent);
/// missing dashboards or alert rules are re-published. Records a decision only when it repaired
/// something, so `describe` shows drift without a line per check.
pub async fn repair_drift(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    // Another job reconciling the graph right now is as good as a repair.
    reconcile(
        app,
        name,
        ctx,
        Desired::Running,
        true,
        |g, fence| async move {
            if g.status != GraphStatus::Running {
                return Ok(());
            }
            let graph = descriptor_of(&g)?;
            let services = {
                let mut conn = app.pool.acquire().await.map_err(db)?;
                store::services(&mut conn, g.id).await.map_err(db)?
            };
            let placement = g.placement_map();
            let expected = plan::expected_objects(&Snapshot {
                graph: &graph,
                project: g.project.as_str(),
                services: &services,
                clusters: &[],
                current: &placement,
            });
            let federation = app.federation()?;
            federation
                .ensure_namespace(g.project.as_str(), &fence)
                .await
                .map_err(retryable)?;
            let (mut missing, mut changed) = (Vec::new(), Vec::new());
            for (what, obj) in expected {
                match federation.get(&obj).await.map_err(retryable)? {
                    None => missing.push(what),
                    Some(live) if manifests::drifted(&obj, &live) => changed.push(what),
                    Some(_) => continue,
                }
                federation.apply(&obj, &fence).await.map_err(retryable)?;
            }
            let republish =
                super::monitor::missing_publications(app, g.project.as_str(), &graph).await?;
            match plan::drift(&placement, &missing, &changed, &republish) {
                Some(outcome) => record(app, ctx, &g, &outcome).await,
                None => Ok(()),
            }
        },
    )
    .await
}

/// Uninstalls Helm releases (absent ones are fine).
async fn helm_uninstall(
    app: &App,
    project: &str,
    releases: &[String],
    fence: &Fence,
) -> Result<(), JobError> {
    let Some(helm) = &app.helm else { return Ok(()) };
    for release in releases {
        fence
            .bounded(helm.uninstall(release, project))
            .await?
            .map_err(retryable)?;
    }
    Ok(())
}
