//! The graph reconciles. Each takes a per-graph advisory lock for its whole run (two jobs of one
//! graph never interleave; a busy graph is a transient error, retried after a backoff), reads the
//! desired state, applies it with server-side apply and deterministic names, then records status
//! and decisions in the same transaction.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use smo_jobs::{JobContext, JobError};
use sqlx::{PgConnection, Postgres, Transaction};

use super::{App, db, retryable};
use crate::{
    federation::manifests::{self, RenderInput},
    hdag::Graph,
    placement::{self, CurrentPlacement, Problem, Solution},
    store::{self, ClusterRecord, Desired, GraphRecord, ServiceRecord, status},
};

const MIB: f64 = 1024.0 * 1024.0;

pub(super) async fn lock_graph(
    app: &App,
    name: &str,
) -> Result<Transaction<'static, Postgres>, JobError> {
    let mut tx = app.pool.begin().await.map_err(db)?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('smo.graph'), hashtext($1))")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    if !locked {
        return Err(JobError::Transient(format!(
            "graph {name} is busy with another job"
        )));
    }
    Ok(tx)
}

/// Where each service goes, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementPlan {
    /// service → cluster.
    pub placement: BTreeMap<String, String>,
    /// The solver's answer, when it ran (`None` when every service kept its cluster).
    pub solution: Option<Solution>,
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

/// Deploy/start: place, apply every non-conditional image-based service, record status.
pub async fn deploy(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    let mut tx = lock_graph(app, name).await?;
    let Some(g) = store::find_graph(&mut tx, name).await.map_err(db)? else {
        return Ok(()); // removed meanwhile: nothing to deploy
    };
    if g.desired != Desired::Running.as_str() {
        return Ok(());
    }
    let result = deploy_locked(app, &mut tx, &g, ctx, false).await;
    finish(app, tx, &g, ctx, result).await
}

/// Re-placement: recompute with the current placement as the baseline; apply what moved.
pub async fn re_place(app: &App, name: &str, ctx: &JobContext) -> Result<(), JobError> {
    let mut tx = lock_graph(app, name).await?;
    let Some(g) = store::find_graph(&mut tx, name).await.map_err(db)? else {
        return Ok(());
    };
    if g.desired != Desired::Running.as_str() {
        return Ok(());
    }
    let result = deploy_locked(app, &mut tx, &g, ctx, true).await;
    finish(app, tx, &g, ctx, result).await
}

/// Commits a successful reconcile; on a permanent failure records it on the graph and commits that.
async fn finish(
    app: &App,
    tx: Transaction<'static, Postgres>,
    g: &GraphRecord,
    ctx: &JobContext,
    result: Result<(), JobError>,
) -> Result<(), JobError> {
    match result {
        Ok(()) => tx.commit().await.map_err(db),
        Err(e) => {
            drop(tx);
            let last = ctx.attempt >= ctx.max_attempts;
            if e.is_permanent() || last {
                let mut conn = app.pool.acquire().await.map_err(db)?;
                store::set_status(
                    &mut conn,
                    g.id,
                    status::FAILED,
                    Some(&e.to_string()),
                    ctx.queue.now(),
                )
                .await
                .map_err(db)?;
                decision(
                    &mut conn,
                    g,
                    "deploy",
                    ctx,
                    &format!("failed: {e}"),
                    json!({}),
                    json!({"error": e.to_string()}),
                )
                .await?;
            }
            Err(e)
        }
    }
}

async fn deploy_locked(
    app: &App,
    tx: &mut Transaction<'static, Postgres>,
    g: &GraphRecord,
    ctx: &JobContext,
    force: bool,
) -> Result<(), JobError> {
    let now = ctx.queue.now();
    let federation = app.federation()?;
    {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::set_status(&mut conn, g.id, status::DEPLOYING, None, now)
            .await
            .map_err(db)?;
    }
    let graph: Graph = serde_json::from_value(g.descriptor.clone()).map_err(|e| {
        JobError::Permanent(format!(
            "stored descriptor of {} does not load: {e}",
            g.name
        ))
    })?;
    // Fresh capacities for every decision: placement on stale numbers is how clusters overflow.
    let clusters = cluster_sync(app, ctx).await?;
    let services = store::services(tx, g.id).await.map_err(db)?;
    let current: BTreeMap<String, String> =
        serde_json::from_value(g.placement.clone()).unwrap_or_default();

    let plan = plan_placement(&graph, &services, &clusters, &current, force)
        .map_err(|e| JobError::Permanent(format!("placement: {e}")))?;
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
            tx,
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

    // Services that moved away from a cluster are re-applied below with their new cluster (same
    // object names), so Karmada moves them; nothing is duplicated.
    let replicas: BTreeMap<String, i32> = services
        .iter()
        .map(|s| (s.name.clone(), s.replicas.max(1)))
        .collect();
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
        .ensure_namespace(&g.project)
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
                    helm_install(helm, &graph, &g.project, service, &plan.placement).await?;
                    helm_installed.push(service.id.clone());
                }
                None => skipped.push(service.id.clone()),
            }
            continue;
        }
        for obj in manifests::render_service(&input, service, cluster) {
            federation.apply(&obj).await.map_err(retryable)?;
            applied += 1;
        }
    }
    for service in graph.services.iter() {
        let Some(_) = plan.placement.get(&service.id) else {
            continue;
        };
        if manifests::is_native(service) {
            let name = manifests::object_name(&graph.id, &service.id);
            let observed = federation
                .deployment_replicas(&g.project, &name)
                .await
                .map_err(retryable)?;
            let st = match observed {
                Some((want, ready)) if ready >= want => "Running",
                Some(_) => "Deployed",
                None => "Pending",
            };
            store::set_service_status(tx, g.id, &service.id, st, observed, now)
                .await
                .map_err(db)?;
        } else if helm_installed.contains(&service.id) {
            store::set_service_status(tx, g.id, &service.id, "Deployed", None, now)
                .await
                .map_err(db)?;
        }
    }
    store::set_placement(tx, g.id, &plan.placement, now)
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
        tx,
        g.id,
        status::RUNNING,
        (!skipped.is_empty()).then_some(message.as_str()),
        now,
    )
    .await
    .map_err(db)?;
    decision(
        tx,
        g,
        if force { "re-place" } else { "deploy" },
        ctx,
        &message,
        json!({ "placement": plan.placement }),
        json!({ "applied": applied }),
    )
    .await?;
    if !force {
        let job = ctx
            .queue
            .enqueue_in(
                tx,
                &super::PublishDashboardsJob {
                    graph: g.name.clone(),
                },
            )
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
        store::record_job(tx, &g.name, job.id, "publish-dashboards", now)
            .await
            .map_err(db)?;
    }
    Ok(())
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
    let mut tx = lock_graph(app, name).await?;
    let Some(g) = store::find_graph(&mut tx, name).await.map_err(db)? else {
        return Ok(());
    };
    if g.desired != Desired::Running.as_str() {
        return Ok(());
    }
    let services = store::services(&mut tx, g.id).await.map_err(db)?;
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
    let graph: Graph = serde_json::from_value(g.descriptor.clone()).map_err(|e| {
        JobError::Permanent(format!("stored descriptor of {name} does not load: {e}"))
    })?;
    // `condition: ALL`: an event may have resolved since the webhook enqueued this job.
    let together = graph
        .service(service)
        .map(|s| s.events_required_together())
        .unwrap_or_default();
    if !together.is_empty() {
        let firing = store::firing_events(&mut tx, g.id, service)
            .await
            .map_err(db)?;
        let missing: Vec<&str> = together
            .iter()
            .copied()
            .filter(|e| !firing.contains(*e))
            .collect();
        if !missing.is_empty() {
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
        helm_install(helm, &graph, &g.project, svc, &plan.placement).await?;
        applied += 1;
    }
    if manifests::is_native(svc) {
        let replicas: BTreeMap<String, i32> = services
            .iter()
            .map(|s| (s.name.clone(), s.replicas.max(1)))
            .collect();
        let input = RenderInput {
            graph: &graph,
            project: &g.project,
            placement: &plan.placement,
            replicas: &replicas,
        };
        federation
            .ensure_namespace(&g.project)
            .await
            .map_err(retryable)?;
        for obj in manifests::render_service(&input, svc, &cluster) {
            federation.apply(&obj).await.map_err(retryable)?;
            applied += 1;
        }
    }
    let observed = federation
        .deployment_replicas(&g.project, &manifests::object_name(&graph.id, service))
        .await
        .map_err(retryable)?;
    let st = match observed {
        Some((want, ready)) if ready >= want => "Running",
        _ => "Deployed",
    };
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
    let mut tx = lock_graph(app, name).await?;
    let Some(g) = store::find_graph(&mut tx, name).await.map_err(db)? else {
        return Ok(());
    };
    if g.desired != Desired::Stopped.as_str() {
        return Ok(());
    }
    let now = ctx.queue.now();
    let deleted = app
        .federation()?
        .delete_labelled(&g.project, &g.name, None)
        .await
        .map_err(retryable)?;
    if let Ok(graph) = serde_json::from_value::<Graph>(g.descriptor.clone()) {
        helm_uninstall_all(app, &graph, &g.project).await?;
        super::monitor::unpublish(app, &g.project, &graph, false).await?;
    }
    for s in store::services(&mut tx, g.id).await.map_err(db)? {
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

/// Remove: delete every object of the graph, then its records (decisions stay as history).
pub async fn remove(
    app: &App,
    name: &str,
    project: &str,
    ctx: &JobContext,
) -> Result<(), JobError> {
    let mut tx = lock_graph(app, name).await?;
    let g = store::find_graph(&mut tx, name).await.map_err(db)?;
    if let Some(g) = &g
        && g.desired != Desired::Removed.as_str()
    {
        return Ok(()); // re-uploaded after the removal was asked: the newer intent wins
    }
    let deleted = app
        .federation()?
        .delete_labelled(project, name, None)
        .await
        .map_err(retryable)?;
    if let Some(graph) = g
        .as_ref()
        .and_then(|g| serde_json::from_value::<Graph>(g.descriptor.clone()).ok())
    {
        helm_uninstall_all(app, &graph, project).await?;
        super::monitor::unpublish(app, project, &graph, true).await?;
    }
    if let Some(g) = g {
        store::delete_graph(&mut tx, g.id).await.map_err(db)?;
    }
    store::add_decision(
        &mut tx,
        name,
        project,
        "remove",
        Some(ctx.id),
        &format!("removed: deleted {deleted} objects"),
        json!({}),
        json!({"deleted": deleted}),
        ctx.queue.now(),
    )
    .await
    .map_err(db)?;
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
    let values = crate::federation::helm::values_for(service, cluster, &importers);
    let release = manifests::object_name(&graph.id, &service.id);
    helm.install(&release, &chart, project, &values)
        .await
        .map_err(retryable)
}

/// Uninstalls every Helm-chart service of a graph (absent releases are fine).
async fn helm_uninstall_all(app: &App, graph: &Graph, project: &str) -> Result<(), JobError> {
    let Some(helm) = &app.helm else { return Ok(()) };
    for s in graph.services.iter().filter(|s| !manifests::is_native(s)) {
        helm.uninstall(&manifests::object_name(&graph.id, &s.id), project)
            .await
            .map_err(retryable)?;
    }
    Ok(())
}
