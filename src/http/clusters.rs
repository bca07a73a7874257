//! `/clusters`: the member clusters as last synced, and a sync on demand.

use super::*;
use smo_jobs::JobState;

route_type!(
    /// `/clusters` routes.
    ClustersApi
);

#[OpenApi]
impl ClustersApi {
    /// Member clusters as last synced from Karmada.
    #[oai(path = "/clusters", method = "get", operation_id = "listClusters")]
    async fn clusters(&self) -> ApiResult<Json<Vec<ClusterView>>> {
        let mut rows = store::list_clusters(&self.pool).await?;
        if rows.is_empty() {
            // Nothing synced yet (a fresh install): the reference reads Karmada on every call,
            // so ask a worker for a sync and wait for it a little rather than answer `[]`.
            let e = self.queue.enqueue(&ClusterSyncJob {}).await?;
            let deadline = tokio::time::Instant::now() + FIRST_SYNC_WAIT;
            while tokio::time::Instant::now() < deadline {
                let state = self.queue.get(e.id).await?.state;
                if state.parse::<JobState>().is_ok_and(JobState::is_final) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            rows = store::list_clusters(&self.pool).await?;
        }
        Ok(Json(
            rows.into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let labels: BTreeMap<String, String> =
                        serde_json::from_value(c.labels).unwrap_or_default();
                    ClusterView {
                        id: i as i64 + 1,
                        location: compat::location(&labels),
                        available_cpu: c.cpu_free,
                        available_ram: compat::ram(c.memory_free),
                        availability: c.ready,
                        acceleration: c.gpus > 0,
                        name: c.name.into(),
                        ready: c.ready,
                        cpu_allocatable: c.cpu_allocatable,
                        cpu_free: c.cpu_free,
                        memory_allocatable: c.memory_allocatable,
                        memory_free: c.memory_free,
                        gpus: c.gpus,
                        labels,
                        message: c.message,
                        synced_at: c.synced_at,
                    }
                })
                .collect(),
        ))
    }

    /// The clusters' health history, newest first: Ready transitions, a cluster lost (and the
    /// failover that moved its graphs), back (and the fail-back). `cluster` keeps one cluster's.
    #[oai(
        path = "/clusters/history",
        method = "get",
        operation_id = "clusterHistory"
    )]
    async fn history(
        &self,
        cluster: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<ClusterEventView>>> {
        // A name no cluster can have (Karmada admits DNS-1123 labels only) has no history.
        if cluster
            .0
            .as_deref()
            .is_some_and(|c| crate::hdag::ClusterName::parse(c.to_string()).is_err())
        {
            return Ok(Json(Vec::new()));
        }
        let mut conn = self.pool.acquire().await?;
        let rows =
            store::cluster_events(&mut conn, cluster.0.as_deref(), limit.0.unwrap_or(50)).await?;
        Ok(Json(
            rows.into_iter()
                .map(|e| ClusterEventView {
                    cluster: e.cluster,
                    at: e.at,
                    event: e.event,
                    message: e.message,
                    data: e.data,
                })
                .collect(),
        ))
    }

    /// Refresh the clusters from Karmada (enqueues `cluster-sync`).
    #[oai(
        path = "/clusters/sync",
        method = "post",
        operation_id = "syncClusters"
    )]
    async fn cluster_sync(&self) -> ApiResult<Accepted> {
        let e = self.queue.enqueue(&ClusterSyncJob {}).await?;
        guard::note_job("", None, e.id);
        Ok(Accepted::Accepted(Json(JobAccepted {
            job_id: e.id,
            kind: ClusterSyncJob::KIND.into(),
            graph: String::new(),
            status_url: format!("/jobs/{}", e.id),
            created: e.created,
            warnings: vec![],
        })))
    }
}
