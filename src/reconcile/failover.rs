//! Losing a cluster, and getting it back, without a manual step.
//!
//! - `cluster-health` (cron, every `cluster_health_interval`): one list call to Karmada; records
//!   each cluster's Ready transitions with their time. A cluster NotReady or Unknown for
//!   `cluster_failure_threshold`, continuously, is *lost*: `failover` is enqueued for it. A lost
//!   cluster Ready for `failback_after`, continuously, gets `failback`. A cluster that flaps
//!   restarts its clock at every transition, so it moves nothing back and forth.
//! - `failover {cluster}`: every graph with a service on a lost cluster is re-placed in one joint
//!   solve ([`placement::failover`], on a blocking thread) against the capacity left; the moves
//!   are recorded (home → target) and one `move-graph` job per graph applies them. Graphs that
//!   cannot fit get an `infeasible` decision naming why; the rest still move.
//! - `failback {cluster}`: the services failover moved away from it go home — at most
//!   `failback_max_moves` graphs per round, and only while the cluster has room for them;
//!   `hdaGraphIntent.failback: manual` keeps a graph where failover put it.
//! - `move-graph {graph, cluster, back}`: applies the recorded target (or home) under the graph's
//!   lock through the same path a re-placement takes (same object names, so Karmada moves the
//!   workload and nothing runs twice once the lost cluster is back).
//!
//! Objects are never deleted from an unreachable cluster: Karmada removes a workload from the
//! cluster its policy no longer names when that cluster answers again.

use std::{collections::BTreeMap, time::Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use smo_jobs::{JobArgs, JobContext, JobError};

use super::{App, begin_record, db, descriptor_of, enqueue_for_graph, retryable};
use crate::{
    hdag::{ClusterName, GraphName},
    placement::{self, FleetGraph},
    plan::{self, DecisionKind, Snapshot},
    store::{self, Desired, GraphStatus},
};

const MIB: f64 = 1024.0 * 1024.0;

/// Read the clusters' Ready conditions; start failover or fail-back where due (the cron entry).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterHealthJob {}

impl JobArgs for ClusterHealthJob {
    const KIND: &'static str = "cluster-health";
    const MAX_ATTEMPTS: u32 = 3;
    fn unique_key(&self) -> Option<String> {
        Some("all".into())
    }
}

/// Re-place every graph with a service on a lost cluster, in one solve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverJob {
    /// The cluster that was lost.
    pub cluster: ClusterName,
}

impl JobArgs for FailoverJob {
    const KIND: &'static str = "failover";
    const MAX_ATTEMPTS: u32 = 5;
    fn unique_key(&self) -> Option<String> {
        Some(self.cluster.to_string())
    }
}

/// Move the graphs failover took from a recovered cluster back to it, within the move budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailbackJob {
    /// The cluster that is back.
    pub cluster: ClusterName,
}

impl JobArgs for FailbackJob {
    const KIND: &'static str = "failback";
    const MAX_ATTEMPTS: u32 = 5;
    fn unique_key(&self) -> Option<String> {
        Some(self.cluster.to_string())
    }
}

/// Apply failover's (or fail-back's) placement to one graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveGraphJob {
    /// The graph.
    pub graph: GraphName,
    /// The cluster lost (or back).
    pub cluster: ClusterName,
    /// Fail-back: move the services home to `cluster`; otherwise to failover's targets.
    pub back: bool,
}

impl JobArgs for MoveGraphJob {
    const KIND: &'static str = "move-graph";
    const MAX_ATTEMPTS: u32 = 8;
    fn unique_key(&self) -> Option<String> {
        Some(self.graph.to_string())
    }
}

/// What `cluster-health` decided, per cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStep {
    /// Nothing to do.
    Steady,
    /// Lost: start failover.
    Failover,
    /// Back long enough: start fail-back.
    Failback,
}

/// The pure rule of `cluster-health` for one cluster: lost after `threshold` NotReady, back
/// after `failback_after` Ready, both measured from the last transition.
pub fn health_step(
    h: &store::ClusterHealth,
    now: chrono::DateTime<chrono::Utc>,
    s: &crate::settings::FailoverSettings,
) -> HealthStep {
    let held = (now - h.since).to_std().unwrap_or_default();
    match (h.ready, h.lost_at) {
        (false, None) if held >= s.failure_threshold => HealthStep::Failover,
        (true, Some(_)) if held >= s.failback_after => HealthStep::Failback,
        _ => HealthStep::Steady,
    }
}

/// `cluster-health`: sync the clusters, record transitions, enqueue what is due.
pub async fn health(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    let now = ctx.queue.now();
    let clusters = app.federation()?.clusters(now).await.map_err(retryable)?;
    let mut tx = begin_record(app, ctx).await?;
    store::replace_clusters(&mut tx, &clusters, std::time::Duration::ZERO)
        .await
        .map_err(db)?;
    let health = store::observe_health(&mut tx, &clusters, now)
        .await
        .map_err(db)?;
    for h in &health {
        let cluster = ClusterName::parse(h.cluster.clone())
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        match health_step(h, now, &app.failover) {
            HealthStep::Failover => {
                store::set_lost(&mut tx, &h.cluster, Some(now))
                    .await
                    .map_err(db)?;
                let held = (now - h.since).num_seconds();
                let why = format!(
                    "not ready for {held} s (threshold {} s): {}",
                    app.failover.failure_threshold.as_secs(),
                    h.reason.as_deref().unwrap_or("no reason given")
                );
                store::add_event(&mut tx, &h.cluster, "lost", Some(&why), now)
                    .await
                    .map_err(db)?;
                crate::metrics::FAILOVER.inc(&["lost"]);
                ctx.queue
                    .enqueue_in(&mut tx, &FailoverJob { cluster })
                    .await
                    .map_err(db)?;
            }
            HealthStep::Failback => {
                ctx.queue
                    .enqueue_in(&mut tx, &FailbackJob { cluster })
                    .await
                    .map_err(db)?;
            }
            HealthStep::Steady => {}
        }
    }
    tx.commit().await.map_err(db)
}

/// The fleet as [`placement::failover`] takes it: every running graph's placed services, with
/// the co-location of the graphs that have something on a lost cluster.
async fn load_fleet(
    app: &App,
    lost: &[String],
) -> Result<(Vec<store::ClusterRecord>, Vec<FleetGraph>), JobError> {
    let mut conn = app.pool.acquire().await.map_err(db)?;
    let clusters = store::list_clusters(&app.pool).await.map_err(db)?;
    let rows = store::fleet_services(&mut conn).await.map_err(db)?;
    let mut fleet: Vec<FleetGraph> = Vec::new();
    for r in rows {
        if fleet.last().is_none_or(|g| g.name != r.graph) {
            fleet.push(FleetGraph {
                name: r.graph.clone(),
                services: Vec::new(),
                current: BTreeMap::new(),
            });
        }
        let g = fleet.last_mut().expect("pushed above");
        g.services.push(placement::Service {
            name: r.service.clone(),
            cpu: r.cpu_millis as f64 / 1000.0,
            memory: r.memory_bytes as f64 / MIB,
            gpu: r.gpu,
            replicas: r.replicas.max(1) as u32,
            allowed_clusters: None,
            excluded_clusters: Vec::new(),
            co_locate_with: Vec::new(),
            ha: false,
        });
        g.current.insert(r.service, r.cluster);
    }
    let affected: Vec<String> = fleet
        .iter()
        .filter(|g| g.current.values().any(|c| lost.contains(c)))
        .map(|g| g.name.clone())
        .collect();
    for record in store::graphs_named(&mut conn, &affected)
        .await
        .map_err(db)?
    {
        let graph = descriptor_of(&record)?;
        if let Some(g) = fleet.iter_mut().find(|g| g.name == record.name.as_str()) {
            for s in &mut g.services {
                if let Some(d) = graph.service(&s.name) {
                    s.co_locate_with = d
                        .co_located_with()
                        .into_iter()
                        .filter(|o| g.current.contains_key(*o))
                        .map(str::to_string)
                        .collect();
                }
            }
        }
    }
    Ok((clusters, fleet))
}

/// `failover {cluster}`: one joint solve over every graph on a lost cluster, then a move per graph.
pub async fn failover(app: &App, lost: &ClusterName, ctx: &JobContext) -> Result<(), JobError> {
    let now = ctx.queue.now();
    // Every cluster lost so far counts, not only this one: two losses in a row re-place together.
    let lost_now: Vec<String> = {
        let mut conn = app.pool.acquire().await.map_err(db)?;
        store::cluster_health(&mut conn)
            .await
            .map_err(db)?
            .into_iter()
            .filter(|h| h.lost_at.is_some() && !h.ready)
            .map(|h| h.cluster)
            .collect()
    };
    let (records, fleet) = load_fleet(app, &lost_now).await?;
    let clusters: Vec<placement::Cluster> = records
        .iter()
        .map(|c| placement::Cluster {
            ready: c.ready && !lost_now.contains(&c.name.to_string()),
            ..plan::problem_cluster(c)
        })
        .collect();
    let limit = app.failover.solve_time_limit_secs;
    let started = Instant::now();
    // The solve may take seconds: off the async runtime, so heartbeats keep their deadline.
    let plan = tokio::task::spawn_blocking(move || placement::failover(&clusters, &fleet, limit))
        .await
        .map_err(|e| JobError::Transient(format!("failover solve: {e}")))?
        .map_err(|e| JobError::Permanent(format!("failover solve: {e}")))?;
    let secs = started.elapsed().as_secs_f64();
    crate::metrics::SOLVE.observe(&["failover", "ok"], secs);

    let mut tx = begin_record(app, ctx).await?;
    let moved_services: usize = plan.moved.iter().map(|g| g.moves.len()).sum();
    let summary = format!(
        "{} lost: {} graphs ({} services) re-placed in one solve ({:.2} s, {}), {} do not fit",
        lost,
        plan.moved.len(),
        moved_services,
        secs,
        if plan.status.is_optimal() {
            "proven optimal"
        } else {
            "not proven optimal"
        },
        plan.stranded.len()
    );
    let figures = json!({
        "solve_seconds": secs,
        "optimal": plan.status.is_optimal(),
        "graphs": plan.moved.len(),
        "services": plan.services,
        "moves": moved_services,
        "stranded": plan.stranded.len(),
        "lost": lost_now,
    });
    store::add_event_with(
        &mut tx,
        lost.as_str(),
        "failover",
        Some(&summary),
        figures,
        now,
    )
    .await
    .map_err(db)?;
    // Ids and projects of the graphs decided about, read again inside the recording
    // transaction: a graph removed during the solve is skipped.
    let names: Vec<String> = plan
        .moved
        .iter()
        .map(|g| g.graph.clone())
        .chain(plan.stranded.iter().map(|s| s.graph.clone()))
        .collect();
    let keys: BTreeMap<String, (uuid::Uuid, String)> = store::graph_keys(&mut tx, &names)
        .await
        .map_err(db)?
        .into_iter()
        .map(|(name, id, project)| (name, (id, project)))
        .collect();
    for g in &plan.moved {
        let Some((id, _)) = keys.get(&g.graph) else {
            continue; // removed meanwhile
        };
        store::record_moves(&mut tx, *id, &g.moves, now)
            .await
            .map_err(db)?;
        let job = MoveGraphJob {
            graph: GraphName::parse(g.graph.clone())
                .map_err(|e| JobError::Permanent(e.to_string()))?,
            cluster: lost.clone(),
            back: false,
        };
        enqueue_for_graph(&mut tx, &ctx.queue, &g.graph, &job)
            .await
            .map_err(db)?;
    }
    let mut infeasible = Vec::new();
    for s in &plan.stranded {
        let project = keys
            .get(&s.graph)
            .map(|(_, p)| p.as_str())
            .unwrap_or_default();
        infeasible.push(store::NewDecision {
            graph: s.graph.clone(),
            project: project.to_string(),
            job_id: Some(ctx.id),
            decision: plan::Decision::new(
                DecisionKind::Infeasible,
                format!("cannot move off lost cluster {lost}: {}", s.reason),
                json!({ "lost": lost, "solve_seconds": secs }),
                json!({ "reason": s.reason }),
            ),
        });
    }
    store::add_decisions(&mut tx, &infeasible, now)
        .await
        .map_err(db)?;
    crate::metrics::FAILOVER.inc_by(&["moved"], plan.moved.len() as u64);
    crate::metrics::FAILOVER.inc_by(&["stranded"], plan.stranded.len() as u64);
    tx.commit().await.map_err(db)?;
    tracing::warn!(cluster = %lost, "{summary}");
    Ok(())
}

/// `failback {cluster}`: graphs moved away from `cluster` go home, within the move budget and
/// the cluster's free capacity.
pub async fn failback(app: &App, home: &ClusterName, ctx: &JobContext) -> Result<(), JobError> {
    let now = ctx.queue.now();
    let mut tx = begin_record(app, ctx).await?;
    let moved = store::moved_from(&mut tx, home.as_str())
        .await
        .map_err(db)?;
    let clusters = store::list_clusters(&app.pool).await.map_err(db)?;
    let Some(target) = clusters.iter().find(|c| c.name.as_str() == home.as_str()) else {
        return tx.commit().await.map_err(db);
    };
    let (mut cpu, mut memory) = (target.cpu_free, target.memory_free as f64);
    let mut graphs: BTreeMap<&str, Vec<&store::MovedService>> = BTreeMap::new();
    let mut forget: BTreeMap<uuid::Uuid, Vec<String>> = BTreeMap::new();
    for m in &moved {
        if m.cluster.as_deref() == Some(m.target.as_str()) {
            graphs.entry(m.graph.as_str()).or_default().push(m);
        } else {
            // Moved since (a re-placement, a later failover): the operator's or the optimiser's
            // newer choice stands, and this service has no home to go back to.
            forget
                .entry(m.graph_id)
                .or_default()
                .push(m.service.clone());
        }
    }
    for (graph_id, services) in &forget {
        store::clear_moves(&mut tx, *graph_id, services)
            .await
            .map_err(db)?;
    }
    let (mut sent, mut manual, mut waiting) = (0usize, 0usize, 0usize);
    for (graph, services) in &graphs {
        let graph_id = services[0].graph_id;
        if services[0].failback.as_deref() == Some("manual") {
            // It stays where failover put it: forget its home.
            let names: Vec<String> = services.iter().map(|s| s.service.clone()).collect();
            store::clear_moves(&mut tx, graph_id, &names)
                .await
                .map_err(db)?;
            manual += 1;
            continue;
        }
        let need_cpu: f64 = services.iter().map(|s| s.cpu_millis as f64 / 1000.0).sum();
        let need_mem: f64 = services.iter().map(|s| s.memory_bytes as f64).sum();
        if sent >= app.failover.failback_max_moves || need_cpu > cpu || need_mem > memory {
            waiting += 1;
            continue;
        }
        cpu -= need_cpu;
        memory -= need_mem;
        sent += 1;
        let job = MoveGraphJob {
            graph: GraphName::parse((*graph).to_string())
                .map_err(|e| JobError::Permanent(e.to_string()))?,
            cluster: home.clone(),
            back: true,
        };
        enqueue_for_graph(&mut tx, &ctx.queue, graph, &job)
            .await
            .map_err(db)?;
    }
    if waiting == 0 {
        // Everything is home (or sent home now): the cluster is no longer lost.
        store::set_lost(&mut tx, home.as_str(), None)
            .await
            .map_err(db)?;
        store::add_event_with(
            &mut tx,
            home.as_str(),
            "recovered",
            Some(&format!(
                "ready for {} s: {sent} graphs move back, {manual} stay (failback: manual)",
                app.failover.failback_after.as_secs()
            )),
            json!({ "sent": sent, "waiting": 0, "manual": manual }),
            now,
        )
        .await
        .map_err(db)?;
    } else {
        store::add_event_with(
            &mut tx,
            home.as_str(),
            "failback",
            Some(&format!(
                "{sent} graphs move back this round, {waiting} wait (move budget {} or capacity)",
                app.failover.failback_max_moves
            )),
            json!({ "sent": sent, "waiting": waiting, "manual": manual }),
            now,
        )
        .await
        .map_err(db)?;
    }
    crate::metrics::FAILOVER.inc_by(&["moved-back"], sent as u64);
    tx.commit().await.map_err(db)
}

/// `move-graph`: apply the recorded targets (or homes) to one graph under its lock.
pub async fn move_graph(app: &App, job: &MoveGraphJob, ctx: &JobContext) -> Result<(), JobError> {
    super::graph::reconcile(
        app,
        job.graph.as_str(),
        ctx,
        Desired::Running,
        false,
        |g, fence| async move {
            let now = ctx.queue.now();
            let (services, moves) = {
                let mut tx = begin_record(app, ctx).await?;
                store::set_status(&mut tx, g.id, GraphStatus::Deploying, None, now)
                    .await
                    .map_err(db)?;
                let services = store::services(&mut tx, g.id).await.map_err(db)?;
                let moves = store::moves_of(&mut tx, g.id).await.map_err(db)?;
                tx.commit().await.map_err(db)?;
                (services, moves)
            };
            let pinned: BTreeMap<String, String> = moves
                .iter()
                .filter(|(_, home, _)| !job.back || home == job.cluster.as_str())
                .map(|(s, home, target)| {
                    let to = if job.back { home } else { target };
                    (s.clone(), to.clone())
                })
                .collect();
            let graph = descriptor_of(&g)?;
            let clusters = store::list_clusters(&app.pool).await.map_err(db)?;
            let current = g.placement_map();
            let moving: Vec<String> = pinned
                .iter()
                .filter(|(s, c)| current.get(*s) != Some(*c))
                .map(|(s, c)| format!("{s} → {c}"))
                .collect();
            let why = plan::Decision::new(
                if job.back {
                    DecisionKind::Failback
                } else {
                    DecisionKind::Failover
                },
                if job.back {
                    format!("{} is back: moved {}", job.cluster, list(&moving))
                } else {
                    format!("{} lost: moved {}", job.cluster, list(&moving))
                },
                json!({ "cluster": job.cluster, "current": current }),
                json!({ "placement": pinned, "moves": moving.len() }),
            );
            let deploy = plan::pinned(
                &Snapshot {
                    graph: &graph,
                    project: g.project.as_str(),
                    services: &services,
                    clusters: &clusters,
                    current: &current,
                },
                &pinned,
                why,
                app.helm.is_some(),
            );
            super::graph::apply(app, g.project.as_str(), &deploy.work, &fence).await?;
            let observed = super::graph::observe(app, g.project.as_str(), &graph, &deploy).await?;
            let mut tx = begin_record(app, ctx).await?;
            store::record_outcome(&mut tx, &g, ctx.id, &deploy.outcome(&observed), now)
                .await
                .map_err(db)?;
            if job.back {
                let home: Vec<String> = pinned.keys().cloned().collect();
                store::clear_moves(&mut tx, g.id, &home).await.map_err(db)?;
            }
            tx.commit().await.map_err(db)
        },
    )
    .await
}

fn list(moves: &[String]) -> String {
    if moves.is_empty() {
        "nothing (already there)".into()
    } else {
        moves.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::settings::FailoverSettings;

    fn health(ready: bool, since_secs: i64, lost: bool) -> store::ClusterHealth {
        store::ClusterHealth {
            cluster: "edge-a".into(),
            ready,
            since: Utc.timestamp_opt(1_000 + since_secs, 0).unwrap(),
            reason: None,
            lost_at: lost.then(|| Utc.timestamp_opt(900, 0).unwrap()),
        }
    }

    /// Lost only after the threshold of continuous NotReady, back only after `failback_after`
    /// of continuous Ready; `since` moves at every transition, so a flapping cluster starts over.
    #[test]
    fn a_cluster_is_lost_after_the_threshold_and_fails_back_after_failback_after() {
        let s = FailoverSettings::default(); // 30 s and 60 s
        let at = |secs: i64| Utc.timestamp_opt(1_000 + secs, 0).unwrap();
        assert_eq!(
            health_step(&health(false, 0, false), at(29), &s),
            HealthStep::Steady
        );
        assert_eq!(
            health_step(&health(false, 0, false), at(30), &s),
            HealthStep::Failover
        );
        // Already lost: failover is not started twice.
        assert_eq!(
            health_step(&health(false, 0, true), at(300), &s),
            HealthStep::Steady
        );
        assert_eq!(
            health_step(&health(true, 0, true), at(59), &s),
            HealthStep::Steady
        );
        assert_eq!(
            health_step(&health(true, 0, true), at(60), &s),
            HealthStep::Failback
        );
        // Ready and never lost: nothing to do however long.
        assert_eq!(
            health_step(&health(true, 0, false), at(600), &s),
            HealthStep::Steady
        );
        // A flap: Ready again 20 s ago after a long loss; its clock started at the flap.
        assert_eq!(
            health_step(&health(true, 580, true), at(600), &s),
            HealthStep::Steady
        );
    }
}
