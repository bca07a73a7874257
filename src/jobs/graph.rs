//! The graph reconciles: load → plan → apply → record. Two jobs of one graph never interleave:
//! each holds the graph's lock row (`smo.graph_locks`) for its run, and a job that finds the graph
//! busy snoozes (runs again shortly, no attempt spent). No transaction is held across a call to
//! the federation or Helm: the job reads what it needs, applies with server-side apply and
//! deterministic names, then records status and decisions in one short transaction.

use std::{collections::BTreeMap, future::Future, time::Duration};

use serde::Serialize;
use serde_json::json;
use smo_jobs::{JobContext, JobError};
use sqlx::PgConnection;

use super::{App, begin_record, db, descriptor_of, load_graph, retryable};
use crate::{
    federation::{
        Fence,
        manifests::{self, RenderInput},
    },
    hdag::{Graph, conditional},
    placement::{self, CurrentPlacement, Problem, Solution},
    store::{self, ClusterRecord, Desired, GraphRecord, ServiceRecord, status},
};

const MIB: f64 = 1024.0 * 1024.0;

/// How long a job waits before it looks at a busy graph again (plus up to as much jitter).
const BUSY_SNOOZE: Duration = Duration::from_millis(1500);

/// Takes the graph's lock for this attempt: its fencing token, or `None` when another running
/// attempt holds it.
async fn try_lock(app: &App, name: &str, ctx: &JobContext) -> Result<Option<i64>, JobError> {
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
pub(super) async fn with_locked_graph<T, F: Future<Output = Result<T, JobError>>>(
    app: &App,
    name: &str,
    ctx: &JobContext,
    body: impl FnOnce(Fence) -> F,
) -> Result<T, JobError> {
    locked(app, name, ctx, body).await?.ok_or_else(|| {
        let jitter = Duration::from_millis(u64::from(rand::random::<u16>()) % 1500);
        JobError::snooze(BUSY_SNOOZE + jitter)
    })
}

/// Runs `body` holding the graph's lock, or skips it when another job holds the graph: for
/// periodic work (scale ticks, drift checks) whose next period comes anyway.
pub(super) async fn unless_busy<F: Future<Output = Result<(), JobError>>>(
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
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), JobError> {
    let job = ctx
        .queue
        .enqueue_in(
            &mut *tx,
            &super::PublishDashboardsJob {
                graph: g.name.clone(),
            },
        )
        .await
        .map_err(|e| JobError::Transient(e.to_string()))?;
    store::record_job(tx, &g.name, job.id, "publish-dashboards", now)
        .await
        .map_err(db)
}

/// The replicas each service's objects are rendered with (at least one).
fn desired_replicas(services: &[ServiceRecord]) -> BTreeMap<String, i32> {
    services
        .iter()
        .map(|s| (s.name.clone(), s.replicas.max(1)))
        .collect()
}

/// Where each service goes, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementPlan {
    /// service → cluster.
    pub placement: BTreeMap<String, String>,
    /// The solver's answer, when it ran (`None` when every service kept its cluster).
    pub solution: Option<Solution>,
}

/// What a dry run shows for a descriptor not stored yet: where its services would go on
/// `clusters` and every object that would be applied (pure: no store, no federation).
pub fn dry_run_plan(
    graph: &Graph,
    clusters: &[ClusterRecord],
    project: &str,
) -> Result<(PlacementPlan, Vec<serde_json::Value>), placement::PlacementError> {
    let services: Vec<ServiceRecord> = store::NewService::of_graph(graph)
        .into_iter()
        .enumerate()
        .map(|(i, s)| ServiceRecord {
            name: s.name,
            position: i as i32,
            status: "Pending".into(),
            cluster: None,
            replicas: s.replicas,
            ready: 0,
            conditional: s.conditional,
            cpu_millis: s.cpu_millis,
            memory_bytes: s.memory_bytes,
            gpu: s.gpu,
        })
        .collect();
    let plan = plan_placement(graph, &services, clusters, &BTreeMap::new(), false)?;
    let replicas = services
        .iter()
        .map(|s| (s.name.clone(), s.replicas))
        .collect();
    let objects = manifests::render(&RenderInput {
        graph,
        project,
        placement: &plan.placement,
        replicas: &replicas,
    });
    Ok((plan, objects))
}

/// Builds the placement problem of SPEC §2 from the stored clusters and services and solves it.
/// Services keep their current cluster when it is still usable and nothing else needs placing;
/// `force` re-optimises everything (re-placement), with the graph's own usage added back.
pub fn plan_placement(
    graph: &Graph,
    services: &[ServiceRecord],
    clusters: &[ClusterRecord],
    current: &BTreeMap<String, String>,
    force: bool,
) -> Result<PlacementPlan, placement::PlacementError> {
    plan_placement_with(graph, services, clusters, current, force, None)
}

/// [`plan_placement`], also placing the conditional service `trigger` (its event fired).
fn plan_placement_with(
    graph: &Graph,
    services: &[ServiceRecord],
    clusters: &[ClusterRecord],
    current: &BTreeMap<String, String>,
    force: bool,
    trigger: Option<&str>,
) -> Result<PlacementPlan, placement::PlacementError> {
    let wanted: Vec<&ServiceRecord> = services
        .iter()
        .filter(|s| !s.conditional || s.status != "Pending" || Some(s.name.as_str()) == trigger)
        .collect();
    let usable = |c: &str| clusters.iter().any(|k| k.name == c && k.ready);
    let all_kept = wanted
        .iter()
        .all(|s| current.get(&s.name).is_some_and(|c| usable(c)));
    if all_kept && !force {
        let placement = wanted
            .iter()
            .map(|s| (s.name.clone(), current[&s.name].clone()))
            .collect();
        return Ok(PlacementPlan {
            placement,
            solution: None,
        });
    }
    let problem = Problem {
        clusters: clusters
            .iter()
            .map(|c| placement::Cluster {
                name: c.name.clone(),
                cpu: c.cpu_free.max(0.0),
                memory: (c.memory_free.max(0) as f64) / MIB,
                gpus: c.gpus.max(0) as u32,
                accelerator: None,
                cost: 0.0,
                carbon: 0.0,
                ready: c.ready,
                labels: serde_json::from_value(c.labels.clone()).unwrap_or_default(),
            })
            .collect(),
        services: wanted
            .iter()
            .map(|s| placement::Service {
                name: s.name.clone(),
                cpu: s.cpu_millis as f64 / 1000.0,
                memory: s.memory_bytes as f64 / MIB,
                gpu: s.gpu,
                replicas: s.replicas.max(1) as u32,
                allowed_clusters: None,
                excluded_clusters: Vec::new(),
                co_locate_with: graph
                    .service(&s.name)
                    .map(|sv| {
                        sv.co_located_with()
                            .into_iter()
                            .filter(|o| wanted.iter().any(|w| w.name == *o))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                ha: false,
            })
            .collect(),
        current: current
            .iter()
            .filter(|(s, c)| {
                wanted.iter().any(|w| &w.name == *s) && clusters.iter().any(|k| &k.name == *c)
            })
            .map(|(s, c)| (s.clone(), CurrentPlacement::One(c.clone())))
            .collect(),
        weights: Default::default(),
        time_limit_secs: Some(10.0),
        mip_gap: None,
    };
    // Services already running count against their clusters' free capacity; add that back so the
    // graph is not charged twice for itself (the reference was).
    let solution = if problem.current.is_empty() {
        crate::metrics::timed_solve("placement", || placement::solve_problem(&problem))?
    } else {
        let usage = placement::own_usage_from_current(&problem);
        crate::metrics::timed_solve("re-placement", || placement::replan(&problem, &usage))?
            .solution
    };
    let placement = wanted
        .iter()
        .filter_map(|s| {
            solution
                .cluster_of(&s.name)
                .map(|c| (s.name.clone(), c.to_string()))
        })
        .collect();
    Ok(PlacementPlan {
        placement,
        solution: Some(solution),
    })
}

async fn decision(
    conn: &mut PgConnection,
    g: &GraphRecord,
    kind: &str,
    ctx: &JobContext,
    message: &str,
    inputs: serde_json::Value,
    outcome: serde_json::Value,
) -> Result<(), JobError> {
    store::add_decision(
        conn,
        &g.name,
        &g.project,
        kind,
        Some(ctx.id),
        message,
        inputs,
        outcome,
        ctx.queue.now(),
    )
    .await
    .map_err(db)
}

/// Refreshes the cluster table from Karmada.
pub async fn cluster_sync(app: &App, ctx: &JobContext) -> Result<Vec<ClusterRecord>, JobError> {
    let clusters = app
        .federation()?
        .clusters(ctx.queue.now())
        .await
        .map_err(retryable)?;
    let mut conn = app.pool.acquire().await.map_err(db)?;
    store::replace_clusters(&mut conn, &clusters)
        .await
        .map_err(db)?;
    Ok(clusters)
}

/// Deploy/start: place, apply every non-conditional service, record status.
pub async fn deploy(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    with_locked_graph(app, name, ctx, |fence| {
        reconcile_running(app, name, ctx, fence, false)
    })
    .await
}

/// Re-placement: recompute with the current placement as the baseline; apply what moved.
pub async fn re_place(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    with_locked_graph(app, name, ctx, |fence| {
        reconcile_running(app, name, ctx, fence, true)
    })
    .await
}

async fn reconcile_running(
    app: &App,
    name: &str,
    ctx: &JobContext,
    fence: Fence,
    force: bool,
) -> Result<(), JobError> {
    let Some(g) = load_graph(app, name).await? else {
        return Ok(()); // removed meanwhile: nothing to deploy
    };
    if g.desired != Desired::Running.as_str() {
        return Ok(());
    }
    let result = deploy_locked(app, &g, ctx, &fence, force).await;
    finish(app, &g, ctx, result).await
}

/// On a permanent failure (or the last attempt) records it on the graph.
async fn finish(
    app: &App,
    g: &GraphRecord,
    ctx: &JobContext,
    result: Result<(), JobError>,
) -> Result<(), JobError> {
    let Err(e) = result else { return Ok(()) };
    if !e.is_fenced() && (e.is_permanent() || ctx.attempt >= ctx.max_attempts) {
        let mut tx = begin_record(app, ctx).await?;
        store::set_status(
            &mut tx,
            g.id,
            status::FAILED,
            Some(&e.to_string()),
            ctx.queue.now(),
        )
        .await
        .map_err(db)?;
        decision(
            &mut tx,
            g,
            "deploy",
            ctx,
            &format!("failed: {e}"),
            json!({}),
            json!({"error": e.to_string()}),
        )
        .await?;
        tx.commit().await.map_err(db)?;
    }
    Err(e)
}

/// What the federation reports for a native service, as a service status.
fn observed_status(observed: Option<(i32, i32)>) -> &'static str {
    match observed {
        Some((want, ready)) if ready >= want => "Running",
        Some(_) => "Deployed",
        None => "Pending",
    }
}

async fn deploy_locked(
    app: &App,
    g: &GraphRecord,
    ctx: &JobContext,
    fence: &Fence,
    force: bool,
) -> Result<(), JobError> {
    let now = ctx.queue.now();
    let federation = app.federation()?;
    let services = {
        let mut tx = begin_record(app, ctx).await?;
        store::set_status(&mut tx, g.id, status::DEPLOYING, None, now)
            .await
            .map_err(db)?;
        let services = store::services(&mut tx, g.id).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        services
    };
    let graph = descriptor_of(g)?;
    // Fresh capacities for every decision: placement on stale numbers is how clusters overflow.
    let clusters = cluster_sync(app, ctx).await?;
    let current: BTreeMap<String, String> =
        serde_json::from_value(g.placement.clone()).unwrap_or_default();

    let plan = plan_placement(&graph, &services, &clusters, &current, force)
        .map_err(|e| JobError::Permanent(format!("placement: {e}")))?;

    // Apply. Services that moved away from a cluster are re-applied with their new cluster (same
    // object names), so Karmada moves them; nothing is duplicated.
    let replicas = desired_replicas(&services);
    let input = RenderInput {
        graph: &graph,
        project: &g.project,
        placement: &plan.placement,
        replicas: &replicas,
    };
    let mut applied = 0;
    let mut skipped = Vec::new();
    let mut helm_installed = Vec::new();
    federation
        .ensure_namespace(&g.project, fence)
        .await
        .map_err(retryable)?;
    for service in graph.deploy_order() {
        let Some(cluster) = plan.placement.get(&service.id) else {
            continue;
        };
        if force && current.get(&service.id) == Some(cluster) {
            continue; // re-placement applies only what moved
        }
        if !manifests::is_native(service) {
            match &app.helm {
                Some(helm) => {
                    helm_install(helm, &graph, &g.project, service, &plan.placement, fence).await?;
                    helm_installed.push(service.id.clone());
                }
                None => skipped.push(service.id.clone()),
            }
            continue;
        }
        for obj in manifests::render_service(&input, service, cluster) {
            federation.apply(&obj, fence).await.map_err(retryable)?;
            applied += 1;
        }
    }
    let mut statuses = Vec::new();
    for service in graph.services.iter() {
        if !plan.placement.contains_key(&service.id) {
            continue;
        }
        if manifests::is_native(service) {
            let name = manifests::object_name(&graph.id, &service.id);
            let observed = federation
                .deployment_replicas(&g.project, &name)
                .await
                .map_err(retryable)?;
            statuses.push((service.id.clone(), observed_status(observed), observed));
        } else if helm_installed.contains(&service.id) {
            statuses.push((service.id.clone(), "Deployed", None));
        }
    }

    // Record, in one short transaction.
    let mut tx = begin_record(app, ctx).await?;
    if let Some(sol) = &plan.solution {
        let moved = plan
            .placement
            .iter()
            .filter(|(s, c)| current.get(*s).is_some_and(|old| old != *c))
            .count();
        let new = plan
            .placement
            .keys()
            .filter(|s| !current.contains_key(*s))
            .count();
        decision(
            &mut tx,
            g,
            "placement",
            ctx,
            &format!(
                "placed {} services ({new} new, {moved} moved), {}",
                plan.placement.len(),
                if sol.status.is_optimal() {
                    "proven optimal"
                } else {
                    "not proven optimal"
                }
            ),
            json!({ "current": current, "clusters": clusters, "force": force }),
            serde_json::to_value(sol).unwrap_or_default(),
        )
        .await?;
    }
    for (service, st, observed) in &statuses {
        store::set_service_status(&mut tx, g.id, service, st, *observed, now)
            .await
            .map_err(db)?;
    }
    store::set_placement(&mut tx, g.id, &plan.placement, now)
        .await
        .map_err(db)?;
    let message = if skipped.is_empty() {
        format!(
            "applied {applied} objects and {} Helm releases for {} services",
            helm_installed.len(),
            plan.placement.len()
        )
    } else {
        format!(
            "applied {applied} objects; Helm-chart services {} wait for the Helm runner",
            skipped.join(", ")
        )
    };
    store::set_status(
        &mut tx,
        g.id,
        status::RUNNING,
        (!skipped.is_empty()).then_some(message.as_str()),
        now,
    )
    .await
    .map_err(db)?;
    decision(
        &mut tx,
        g,
        if force { "re-place" } else { "deploy" },
        ctx,
        &message,
        json!({ "placement": plan.placement }),
        json!({ "applied": applied }),
    )
    .await?;
    if !force {
        enqueue_publish(&mut tx, g, ctx, now).await?;
    }
    tx.commit().await.map_err(db)
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
    with_locked_graph(app, name, ctx, |fence| {
        deploy_conditional_locked(app, name, service, alert, ctx, fence)
    })
    .await
}

async fn deploy_conditional_locked(
    app: &App,
    name: &str,
    service: &str,
    alert: &str,
    ctx: &JobContext,
    fence: Fence,
) -> Result<(), JobError> {
    let Some(g) = load_graph(app, name).await? else {
        return Ok(());
    };
    if g.desired != Desired::Running.as_str() {
        return Ok(());
    }
    let (services, firing) = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        let services = store::services(&mut conn, g.id).await.map_err(db)?;
        let firing = store::firing_events(&mut conn, g.id, service)
            .await
            .map_err(db)?;
        (services, firing)
    };
    let Some(record) = services.iter().find(|s| s.name == service) else {
        return Err(JobError::Permanent(format!(
            "graph {name} has no service {service}"
        )));
    };
    if !record.conditional || record.status != "Pending" {
        return Ok(()); // already deployed (or not conditional): exactly once
    }
    let now = ctx.queue.now();
    let federation = app.federation()?;
    let graph = descriptor_of(&g)?;
    // `condition: ALL`: an event may have resolved since the webhook enqueued this job.
    let missing = graph
        .service(service)
        .map(|s| conditional::missing(s, &firing))
        .unwrap_or_default();
    if !missing.is_empty() {
        let mut tx = begin_record(app, ctx).await?;
        decision(
            &mut tx,
            &g,
            "deploy-conditional",
            ctx,
            &format!(
                "{service} waits: condition ALL and {} not firing any more",
                missing.join(", ")
            ),
            json!({ "alert": alert, "firing": firing }),
            json!({ "deployed": false, "missing": missing }),
        )
        .await?;
        return tx.commit().await.map_err(db);
    }
    let clusters = cluster_sync(app, ctx).await?;
    let current: BTreeMap<String, String> =
        serde_json::from_value(g.placement.clone()).unwrap_or_default();
    let plan = plan_placement_with(&graph, &services, &clusters, &current, false, Some(service))
        .map_err(|e| JobError::Permanent(format!("placement: {e}")))?;
    let Some(cluster) = plan.placement.get(service).cloned() else {
        return Err(JobError::Permanent(format!(
            "placement left {service} unplaced"
        )));
    };
    let svc = graph
        .service(service)
        .ok_or_else(|| JobError::Permanent(format!("no service {service}")))?;
    let mut applied = 0;
    if !manifests::is_native(svc)
        && let Some(helm) = &app.helm
    {
        helm_install(helm, &graph, &g.project, svc, &plan.placement, &fence).await?;
        applied += 1;
    }
    if manifests::is_native(svc) {
        let replicas = desired_replicas(&services);
        let input = RenderInput {
            graph: &graph,
            project: &g.project,
            placement: &plan.placement,
            replicas: &replicas,
        };
        federation
            .ensure_namespace(&g.project, &fence)
            .await
            .map_err(retryable)?;
        for obj in manifests::render_service(&input, svc, &cluster) {
            federation.apply(&obj, &fence).await.map_err(retryable)?;
            applied += 1;
        }
    }
    let observed = federation
        .deployment_replicas(&g.project, &manifests::object_name(&graph.id, service))
        .await
        .map_err(retryable)?;
    let st = match observed_status(observed) {
        "Pending" => "Deployed",
        s => s,
    };
    let mut tx = begin_record(app, ctx).await?;
    store::set_service_status(&mut tx, g.id, service, st, observed, now)
        .await
        .map_err(db)?;
    store::clear_events(&mut tx, g.id, service)
        .await
        .map_err(db)?;
    store::set_placement(&mut tx, g.id, &plan.placement, now)
        .await
        .map_err(db)?;
    decision(
        &mut tx,
        &g,
        "deploy-conditional",
        ctx,
        &format!("alert {alert} fired: deployed {service} on {cluster} ({applied} objects)"),
        json!({ "alert": alert }),
        json!({ "cluster": cluster, "applied": applied }),
    )
    .await?;
    tx.commit().await.map_err(db)
}

/// Stop: delete the workloads, keep the graph.
pub async fn stop(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    with_locked_graph(app, name, ctx, |fence| stop_locked(app, name, ctx, fence)).await
}

async fn stop_locked(
    app: &App,
    name: &str,
    ctx: &JobContext,
    fence: Fence,
) -> Result<(), JobError> {
    let Some(g) = load_graph(app, name).await? else {
        return Ok(());
    };
    if g.desired != Desired::Stopped.as_str() {
        return Ok(());
    }
    let now = ctx.queue.now();
    let services = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::services(&mut conn, g.id).await.map_err(db)?
    };
    let deleted = app
        .federation()?
        .delete_labelled(&g.project, &g.name, None, &fence)
        .await
        .map_err(retryable)?;
    // A conditional service whose event never fired was never installed: it has nothing to
    // uninstall, and it stays Pending so that start does not install it either.
    let never_deployed = |s: &store::ServiceRecord| s.conditional && s.status == "Pending";
    if let Ok(graph) = descriptor_of(&g) {
        let installed: std::collections::HashSet<&str> = services
            .iter()
            .filter(|s| !never_deployed(s))
            .map(|s| s.name.as_str())
            .collect();
        helm_uninstall(app, &graph, &g.project, &fence, |id| installed.contains(id)).await?;
        super::monitor::unpublish(app, &g.project, &graph, false, &fence).await?;
    }
    let mut tx = begin_record(app, ctx).await?;
    for s in services.iter().filter(|s| !never_deployed(s)) {
        store::set_service_status(
            &mut tx,
            g.id,
            &s.name,
            "Stopped",
            Some((s.replicas, 0)),
            now,
        )
        .await
        .map_err(db)?;
    }
    store::set_status(&mut tx, g.id, status::STOPPED, None, now)
        .await
        .map_err(db)?;
    decision(
        &mut tx,
        &g,
        "stop",
        ctx,
        &format!("deleted {deleted} objects"),
        json!({}),
        json!({"deleted": deleted}),
    )
    .await?;
    tx.commit().await.map_err(db)
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
        && g.desired != Desired::Removed.as_str()
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
        if let Err(e) = helm_uninstall_all(app, &graph, project, &fence).await {
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
        if current.desired != Desired::Removed.as_str() {
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
    let mut message = format!("removed: deleted {deleted} objects");
    if namespace_deleted {
        message.push_str(&format!(" and namespace {project}"));
    }
    if !left_behind.is_empty() {
        message.push_str(&format!(
            "; Helm could not uninstall (left behind, remove by hand with helm uninstall): {}",
            left_behind.join("; ")
        ));
    }
    let mut tx = begin_record(app, ctx).await?;
    store::add_decision(
        &mut tx,
        name,
        project,
        "remove",
        Some(ctx.id),
        &message,
        json!({}),
        json!({"deleted": deleted, "namespace_deleted": namespace_deleted, "helm_left_behind": left_behind}),
        ctx.queue.now(),
    )
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
    unless_busy(app, name, ctx, |fence| {
        repair_drift_locked(app, name, ctx, fence)
    })
    .await
}

async fn repair_drift_locked(
    app: &App,
    name: &str,
    ctx: &JobContext,
    fence: Fence,
) -> Result<(), JobError> {
    let Some(g) = load_graph(app, name).await? else {
        return Ok(());
    };
    if g.desired != Desired::Running.as_str() || g.status != status::RUNNING {
        return Ok(());
    }
    let graph = descriptor_of(&g)?;
    let services = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::services(&mut conn, g.id).await.map_err(db)?
    };
    let placement: BTreeMap<String, String> =
        serde_json::from_value(g.placement.clone()).unwrap_or_default();
    let replicas = desired_replicas(&services);
    let input = RenderInput {
        graph: &graph,
        project: &g.project,
        placement: &placement,
        replicas: &replicas,
    };
    let federation = app.federation()?;
    federation
        .ensure_namespace(&g.project, &fence)
        .await
        .map_err(retryable)?;
    let (mut missing, mut changed) = (Vec::new(), Vec::new());
    for service in graph.deploy_order() {
        let deployed = services
            .iter()
            .any(|s| s.name == service.id && s.status != "Pending" && s.status != "Stopped");
        let Some(cluster) = placement.get(&service.id).filter(|_| deployed) else {
            continue;
        };
        if !manifests::is_native(service) {
            continue; // a Helm release's objects are Helm's: see ARCHITECTURE.md
        }
        for obj in manifests::render_service(&input, service, cluster) {
            let what = format!(
                "{} {}",
                obj["kind"].as_str().unwrap_or_default(),
                obj["metadata"]["name"].as_str().unwrap_or_default()
            );
            let live = federation.get(&obj).await.map_err(retryable)?;
            match live {
                None => missing.push(what),
                Some(l) if manifests::drifted(&obj, &l) => changed.push(what),
                Some(_) => continue,
            }
            federation.apply(&obj, &fence).await.map_err(retryable)?;
        }
    }
    let republish = super::monitor::missing_publications(app, &g.project, &graph).await?;
    if missing.is_empty() && changed.is_empty() && republish.is_empty() {
        return Ok(());
    }
    let now = ctx.queue.now();
    let mut tx = begin_record(app, ctx).await?;
    if !republish.is_empty() {
        enqueue_publish(&mut tx, &g, ctx, now).await?;
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("re-created {} missing objects", missing.len()));
    }
    if !changed.is_empty() {
        parts.push(format!("restored {} changed objects", changed.len()));
    }
    if !republish.is_empty() {
        parts.push(format!("re-publishing {}", republish.join(", ")));
    }
    decision(
        &mut tx,
        &g,
        "drift",
        ctx,
        &format!("drift repaired: {}", parts.join("; ")),
        json!({ "placement": placement }),
        json!({ "missing": missing, "changed": changed, "republished": republish }),
    )
    .await?;
    tx.commit().await.map_err(db)
}

/// Installs (or upgrades) one Helm-chart service as release `<graph>-<service>` in the project's
/// namespace, with its placement and its callers' clusters injected into the values.
async fn helm_install(
    helm: &crate::federation::helm::HelmRunner,
    graph: &Graph,
    project: &str,
    service: &crate::hdag::Service,
    placement: &BTreeMap<String, String>,
    fence: &Fence,
) -> Result<(), JobError> {
    let Some(cluster) = placement.get(&service.id) else {
        return Ok(());
    };
    let chart = service.artifact.oci_image.clone().unwrap_or_default();
    let mut importers: Vec<String> = graph
        .callers_of(&service.id)
        .iter()
        .filter_map(|c| placement.get(&c.id))
        .cloned()
        .collect();
    importers.sort();
    importers.dedup();
    let values = crate::federation::helm::values_for(
        service,
        cluster,
        &importers,
        graph.hda_graph_intent.use_static_placement,
    );
    let release = manifests::release_name(&graph.id, service);
    fence
        .bounded(helm.install(&release, &chart, project, &values))
        .await?
        .map_err(retryable)
}

/// Uninstalls every Helm-chart service of a graph (absent releases are fine).
async fn helm_uninstall_all(
    app: &App,
    graph: &Graph,
    project: &str,
    fence: &Fence,
) -> Result<(), JobError> {
    helm_uninstall(app, graph, project, fence, |_| true).await
}

/// Uninstalls the Helm releases of the graph's chart services that `which` selects (by id).
async fn helm_uninstall(
    app: &App,
    graph: &Graph,
    project: &str,
    fence: &Fence,
    which: impl Fn(&str) -> bool,
) -> Result<(), JobError> {
    let Some(helm) = &app.helm else { return Ok(()) };
    for s in graph
        .services
        .iter()
        .filter(|s| !manifests::is_native(s) && which(&s.id))
    {
        fence
            .bounded(helm.uninstall(&manifests::release_name(&graph.id, s), project))
            .await?
            .map_err(retryable)?;
    }
    Ok(())
}
