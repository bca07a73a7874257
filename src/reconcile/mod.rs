//! smo's job kinds: thin reconciles over `store`, `placement` and `federation`. Arguments carry
//! graph names, never documents: a job re-reads the graph when it runs, so a retried or re-run job
//! always works from the latest state. Running any of them twice changes nothing more.

mod failover;
mod graph;
mod monitor;
mod scale;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smo_jobs::{Enqueued, JobArgs, JobContext, JobError, Queue, Registry};
use sqlx::{PgConnection, PgPool};

use crate::{
    federation::Federation,
    hdag::{GraphName, ProjectName},
    store,
};

pub use failover::{
    ClusterHealthJob, FailbackJob, FailoverJob, HealthStep, MoveGraphJob, health_step,
};
pub use monitor::{Monitoring, RulesTarget, cron_schedule_for};
pub use scale::{
    RoundReport, SHARD_CONCURRENCY, SHARD_GRAPHS, ScaleShardJob, round as scaling_round,
};

/// What every handler needs: the database and, when configured, the federation and the
/// monitoring stack.
#[derive(Clone)]
pub struct App {
    /// smo's database.
    pub pool: PgPool,
    /// The Karmada client; `None` when no kubeconfig is configured.
    pub federation: Option<Federation>,
    /// Prometheus, Grafana and where alert rules go.
    pub monitoring: Monitoring,
    /// The Helm runner for Helm-chart services; `None` leaves them Pending.
    pub helm: Option<crate::federation::helm::HelmRunner>,
    /// When a cluster counts as lost or back, and fail-back's budget.
    pub failover: crate::settings::FailoverSettings,
}

impl App {
    /// The federation, or a permanent error saying how to configure it.
    pub fn federation(&self) -> Result<&Federation, JobError> {
        self.federation.as_ref().ok_or_else(|| {
            JobError::Permanent(
                "no Karmada kubeconfig configured: set karmada_kubeconfig in ~/.smo/config.yaml or \
                 SMO_KARMADA_KUBECONFIG (smo sim writes one)"
                    .into(),
            )
        })
    }
}

macro_rules! graph_job {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub struct $name {
            /// Graph name (checked again when the job is read back).
            pub graph: GraphName,
        }
        impl JobArgs for $name {
            const KIND: &'static str = $kind;
            const MAX_ATTEMPTS: u32 = 8;
            fn unique_key(&self) -> Option<String> {
                Some(self.graph.to_string())
            }
        }
    };
}

graph_job!(
    /// Place and apply every non-conditional service; status Running.
    DeployJob,
    "deploy"
);
graph_job!(
    /// Like deploy, after `POST /graphs/{name}/start`.
    StartJob,
    "start"
);
graph_job!(
    /// Delete the graph's workloads from the federation, keep the graph.
    StopJob,
    "stop"
);
graph_job!(
    /// Recompute the placement with the current one as the baseline; apply only what moved.
    RePlaceJob,
    "re-place"
);

/// Delete everything of a graph, then the graph itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveJob {
    /// Graph name.
    pub graph: GraphName,
    /// Its project (= namespace), kept in the job so removal works even if the row is gone.
    pub project: ProjectName,
}

impl JobArgs for RemoveJob {
    const KIND: &'static str = "remove";
    const MAX_ATTEMPTS: u32 = 12;
    fn unique_key(&self) -> Option<String> {
        Some(self.graph.to_string())
    }
}

/// Publish a graph's Grafana dashboards and alert rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishDashboardsJob {
    /// Graph name.
    pub graph: GraphName,
}

impl JobArgs for PublishDashboardsJob {
    const KIND: &'static str = "publish-dashboards";
    const MAX_ATTEMPTS: u32 = 8;
    fn unique_key(&self) -> Option<String> {
        Some(self.graph.to_string())
    }
}

/// Run one scaling round over every running graph (the cron entry): plan, then enqueue
/// `scale-shard` jobs for the graphs whose replicas change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScaleFanoutJob {}

impl JobArgs for ScaleFanoutJob {
    const KIND: &'static str = "scale-fanout";
    const MAX_ATTEMPTS: u32 = 3;
    fn unique_key(&self) -> Option<String> {
        Some("all".into())
    }
}

/// Deploy a conditional service once its alert fired (from `POST /alerts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployConditionalJob {
    /// Graph name.
    pub graph: GraphName,
    /// The conditional service.
    pub service: String,
    /// The alert that fired.
    pub alert: String,
}

impl JobArgs for DeployConditionalJob {
    const KIND: &'static str = "deploy-conditional";
    const MAX_ATTEMPTS: u32 = 8;
    fn unique_key(&self) -> Option<String> {
        Some(format!("{}/{}", self.graph, self.service))
    }
}

/// Enqueue one `repair-drift` per running graph (the cron entry).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DriftFanoutJob {}

impl JobArgs for DriftFanoutJob {
    const KIND: &'static str = "drift-fanout";
    const MAX_ATTEMPTS: u32 = 3;
    fn unique_key(&self) -> Option<String> {
        Some("all".into())
    }
}

/// Compare what a running graph should have in the federation (objects, dashboards, alert
/// rules) with what is there, and re-apply what is missing or changed. At most one per graph
/// queued or running.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepairDriftJob {
    /// Graph name.
    pub graph: GraphName,
}

impl JobArgs for RepairDriftJob {
    const KIND: &'static str = "repair-drift";
    const MAX_ATTEMPTS: u32 = 3;
    fn unique_key(&self) -> Option<String> {
        Some(self.graph.to_string())
    }
}

/// Refresh the cluster table from Karmada.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterSyncJob {}

impl JobArgs for ClusterSyncJob {
    const KIND: &'static str = "cluster-sync";
    const MAX_ATTEMPTS: u32 = 5;
    fn unique_key(&self) -> Option<String> {
        Some("all".into())
    }
}

/// Retention, smo's way: the engine's `jobs.prune` kind (finished jobs older than
/// `retention_secs`), which in smo also prunes the audit log after its own period. The engine's
/// built-in handler of the kind is replaced, so one job keeps both tables bounded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetentionJob {
    /// Finished jobs older than this many seconds are deleted.
    pub retention_secs: u64,
    /// Audit rows older than this many seconds are deleted (none: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_retention_secs: Option<u64>,
}

impl JobArgs for RetentionJob {
    const KIND: &'static str = smo_jobs::PRUNE_KIND;
    const MAX_ATTEMPTS: u32 = 3;
    fn unique_key(&self) -> Option<String> {
        Some("prune".into())
    }
}

async fn retention(app: &App, job: &RetentionJob, ctx: &JobContext) -> Result<(), JobError> {
    let days = |secs: u64| chrono::Duration::seconds(secs.min(i64::MAX as u64 / 2) as i64);
    let jobs = ctx
        .queue
        .prune(days(job.retention_secs))
        .await
        .map_err(JobError::transient)?;
    let audit = match job.audit_retention_secs {
        Some(secs) => store::prune_audit(&app.pool, ctx.queue.now() - days(secs))
            .await
            .map_err(JobError::transient)?,
        None => 0,
    };
    tracing::info!(jobs, audit, "pruned finished jobs and old audit rows");
    Ok(())
}

/// Enqueues a graph's job and links it to the graph, on the caller's transaction.
pub async fn enqueue_for_graph<A: JobArgs>(
    conn: &mut PgConnection,
    queue: &Queue,
    graph: &str,
    args: &A,
) -> Result<Enqueued, smo_jobs::Error> {
    let e = queue.enqueue_in(&mut *conn, args).await?;
    store::record_job(conn, graph, e.id, A::KIND, queue.now())
        .await
        .map_err(|e| smo_jobs::Error::Config(e.to_string()))?;
    Ok(e)
}

/// The registry of smo's kinds, bound to `app`.
pub fn registry(app: App) -> Registry {
    let app = Arc::new(app);
    // Each handler gets its own handle on the shared App.
    macro_rules! bind {
        ($args:ty, |$app:ident, $j:ident, $ctx:ident| $body:expr) => {{
            let shared = app.clone();
            move |$j: $args, $ctx: JobContext| {
                let $app = shared.clone();
                async move { $body }
            }
        }};
    }
    Registry::new()
        .register(bind!(DeployJob, |app, j, ctx| graph::deploy(
            &app,
            j.graph.as_str(),
            &ctx
        )
        .await))
        .register(bind!(StartJob, |app, j, ctx| graph::deploy(
            &app,
            j.graph.as_str(),
            &ctx
        )
        .await))
        .register(bind!(StopJob, |app, j, ctx| graph::stop(
            &app,
            j.graph.as_str(),
            &ctx
        )
        .await))
        .register(bind!(RemoveJob, |app, j, ctx| graph::remove(
            &app,
            j.graph.as_str(),
            j.project.as_str(),
            &ctx
        )
        .await))
        .register(bind!(RePlaceJob, |app, j, ctx| graph::re_place(
            &app,
            j.graph.as_str(),
            &ctx
        )
        .await))
        .register(bind!(ClusterSyncJob, |app, _j, ctx| graph::cluster_sync(
            &app,
            &ctx,
            std::time::Duration::ZERO
        )
        .await
        .map(|_| ())))
        .register(bind!(PublishDashboardsJob, |app, j, ctx| monitor::publish(
            &app,
            j.graph.as_str(),
            &ctx
        )
        .await))
        .register(bind!(ScaleFanoutJob, |app, _j, ctx| scale::round(
            &app, &ctx
        )
        .await
        .map(|_| ())))
        .register(bind!(ScaleShardJob, |app, j, ctx| scale::shard(
            &app, &j, &ctx
        )
        .await))
        .register(bind!(DriftFanoutJob, |app, _j, ctx| monitor::drift_fanout(
            &app, &ctx
        )
        .await))
        .register(bind!(RepairDriftJob, |app, j, ctx| graph::repair_drift(
            &app,
            j.graph.as_str(),
            &ctx
        )
        .await))
        .register(bind!(ClusterHealthJob, |app, _j, ctx| failover::health(
            &app, &ctx
        )
        .await))
        .register(bind!(FailoverJob, |app, j, ctx| failover::failover(
            &app, &j.cluster, &ctx
        )
        .await))
        .register(bind!(FailbackJob, |app, j, ctx| failover::failback(
            &app, &j.cluster, &ctx
        )
        .await))
        .register(bind!(MoveGraphJob, |app, j, ctx| failover::move_graph(
            &app, &j, &ctx
        )
        .await))
        .register(bind!(RetentionJob, |app, j, ctx| retention(&app, &j, &ctx).await))
        .register(bind!(DeployConditionalJob, |app, j, ctx| {
            graph::deploy_conditional(&app, j.graph.as_str(), &j.service, &j.alert, &ctx).await
        }))
}

/// Errors that know whether a retry can help.
pub(crate) trait Retryable: std::fmt::Display {
    fn is_transient(&self) -> bool;
    /// Why the attempt may no longer write, when that is the error.
    fn fenced(&self) -> Option<String> {
        None
    }
}

impl Retryable for crate::federation::FederationError {
    fn is_transient(&self) -> bool {
        crate::federation::FederationError::is_transient(self)
    }
    fn fenced(&self) -> Option<String> {
        match self {
            Self::Fenced(why) => Some(why.clone()),
            _ => None,
        }
    }
}

impl Retryable for crate::federation::helm::HelmError {
    fn is_transient(&self) -> bool {
        crate::federation::helm::HelmError::is_transient(self)
    }
}

impl Retryable for crate::monitoring::io::IoError {
    fn is_transient(&self) -> bool {
        crate::monitoring::io::IoError::is_transient(self)
    }
}

/// A job error that is retried exactly when the cause says a retry can help.
pub(crate) fn retryable(e: impl Retryable) -> JobError {
    if let Some(why) = e.fenced() {
        JobError::Fenced(why)
    } else if e.is_transient() {
        JobError::Transient(e.to_string())
    } else {
        JobError::Permanent(e.to_string())
    }
}

/// The graph's record, read on a short-lived connection.
pub(crate) async fn load_graph(
    app: &App,
    name: &str,
) -> Result<Option<crate::store::GraphRecord>, JobError> {
    let mut conn = app.pool.acquire().await.map_err(db)?;
    crate::store::find_graph(&mut conn, name).await.map_err(db)
}

/// The stored descriptor as a graph.
pub(crate) fn descriptor_of(g: &crate::store::GraphRecord) -> Result<crate::hdag::Graph, JobError> {
    g.graph().map_err(|e| JobError::Permanent(e.to_string()))
}

/// Opens the transaction that records an attempt's outcome, after `JobContext::fence` proved the
/// attempt still owns its job: a superseded attempt records nothing.
pub(crate) async fn begin_record(
    app: &App,
    ctx: &JobContext,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, JobError> {
    let mut tx = app.pool.begin().await.map_err(db)?;
    ctx.fence(&mut tx).await?;
    Ok(tx)
}

pub(crate) fn db(e: impl std::fmt::Display) -> JobError {
    JobError::Transient(format!("database: {e}"))
}

/// Runs CPU-bound planning (a placement MILP, up to its 10 s limit) off the runtime's async
/// threads, so a worker's heartbeat and its other jobs keep running meanwhile: on a multi-thread
/// runtime, `block_in_place` hands this thread's other tasks to another worker thread for the
/// duration. (A current-thread runtime, as in some tests, has nowhere to hand them: it runs
/// inline.) Borrowed inputs stay borrowed, unlike `spawn_blocking`.
pub(crate) fn off_runtime<T>(plan: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(plan)
        }
        _ => plan(),
    }
}

#[cfg(test)]
mod off_runtime_tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    /// One runtime thread, as a busy worker might have free: a heartbeat-like ticker must keep
    /// ticking while a job task runs a real placement solve (inline, it cannot run at all).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_placement_solve_leaves_the_runtime_to_the_heartbeat() {
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        while ticks.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        // The solve runs in a task, as a job does, competing for the one runtime thread.
        let problem = crate::placement::instances::reference_family(7, 120, 30, 1.05);
        let seen = ticks.clone();
        let job = tokio::spawn(async move {
            super::off_runtime(|| {
                let before = seen.load(Ordering::Relaxed);
                let solved = crate::placement::solve_problem(&problem);
                // Wait (bounded) for the ticker to tick once more: it can only if this thread
                // handed it over.
                let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while seen.load(Ordering::Relaxed) == before && std::time::Instant::now() < until {
                    std::thread::yield_now();
                }
                (solved, seen.load(Ordering::Relaxed) - before)
            })
        });
        let (solved, during) = job.await.unwrap();
        ticker.abort();
        assert!(solved.is_ok(), "{solved:?}");
        assert!(during > 0, "the ticker never ran during the solve");
    }
}
