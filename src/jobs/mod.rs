//! smo's job kinds: thin reconciles over `store`, `placement` and `federation`. Arguments carry
//! graph names, never documents: a job re-reads the graph when it runs, so a retried or re-run job
//! always works from the latest state. Running any of them twice changes nothing more.

mod graph;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smo_jobs::{Enqueued, JobArgs, JobContext, JobError, Queue, Registry};
use sqlx::{PgConnection, PgPool};

use crate::{federation::Federation, store};

pub use graph::{PlacementPlan, plan_placement};

/// What every handler needs: the database and, when configured, the federation.
#[derive(Clone)]
pub struct App {
    /// smo's database.
    pub pool: PgPool,
    /// The Karmada client; `None` when no kubeconfig is configured.
    pub federation: Option<Federation>,
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
            /// Graph name.
            pub graph: String,
        }
        impl JobArgs for $name {
            const KIND: &'static str = $kind;
            const MAX_ATTEMPTS: u32 = 8;
            fn unique_key(&self) -> Option<String> {
                Some(self.graph.clone())
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
    pub graph: String,
    /// Its project (= namespace), kept in the job so removal works even if the row is gone.
    pub project: String,
}

impl JobArgs for RemoveJob {
    const KIND: &'static str = "remove";
    const MAX_ATTEMPTS: u32 = 12;
    fn unique_key(&self) -> Option<String> {
        Some(self.graph.clone())
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
    let (a1, a2, a3, a4, a5, a6) = (
        app.clone(),
        app.clone(),
        app.clone(),
        app.clone(),
        app.clone(),
        app,
    );
    Registry::new()
        .register(move |j: DeployJob, ctx: JobContext| {
            let app = a1.clone();
            async move { graph::deploy(&app, &j.graph, &ctx).await }
        })
        .register(move |j: StartJob, ctx: JobContext| {
            let app = a2.clone();
            async move { graph::deploy(&app, &j.graph, &ctx).await }
        })
        .register(move |j: StopJob, ctx: JobContext| {
            let app = a3.clone();
            async move { graph::stop(&app, &j.graph, &ctx).await }
        })
        .register(move |j: RemoveJob, ctx: JobContext| {
            let app = a4.clone();
            async move { graph::remove(&app, &j.graph, &j.project, &ctx).await }
        })
        .register(move |j: RePlaceJob, ctx: JobContext| {
            let app = a5.clone();
            async move { graph::re_place(&app, &j.graph, &ctx).await }
        })
        .register(move |_: ClusterSyncJob, ctx: JobContext| {
            let app = a6.clone();
            async move { graph::cluster_sync(&app, &ctx).await.map(|_| ()) }
        })
}

pub(crate) fn db(e: impl std::fmt::Display) -> JobError {
    JobError::Transient(format!("database: {e}"))
}
