//! What the scaling round reads and its shards write, set-based: one statement per step however
//! many graphs a round or a shard covers.

use chrono::{DateTime, Utc};
use smo_core::scaling::inputs::RoundRow;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// Every placed, non-stopped service of every graph that should be and is running, in graph then
/// descriptor order, as the round's pure inputs take them. The descriptor is read only for the one
/// field scaling needs.
pub async fn scaling_rows(conn: &mut PgConnection) -> Result<Vec<RoundRow>, StoreError> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        i32,
        i64,
        bool,
        Option<serde_json::Value>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT g.name AS graph, g.project, g.name AS graph_id,
                s.name AS service, s.cluster, s.replicas, s.cpu_millis, s.gpu,
                (SELECT x->'deployment'->'intent'->'scaling'
                   FROM jsonb_array_elements(g.descriptor->'services') x
                  WHERE x->>'id' = s.name LIMIT 1) AS scaling
           FROM smo.graphs g JOIN smo.services s ON s.graph_id = g.id
          WHERE g.desired = 'running' AND g.status = 'Running'
            AND s.status NOT IN ('Pending', 'Stopped') AND s.cluster IS NOT NULL
          ORDER BY g.name, s.position",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(graph, project, graph_id, service, cluster, replicas, cpu_millis, gpu, scaling)| {
                RoundRow {
                    graph,
                    project,
                    graph_id,
                    service,
                    cluster,
                    replicas,
                    cpu_millis,
                    gpu,
                    scaling,
                }
            },
        )
        .collect())
}

/// A service of a graph as it stands now, for a shard to check its plan is still current.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceNow {
    /// Graph name.
    pub graph: String,
    /// Graph row id.
    pub graph_uuid: Uuid,
    /// The descriptor's graph id (object names).
    pub graph_id: String,
    /// Whether the graph should be and is running.
    pub running: bool,
    /// Whether the job asking has already recorded a decision for the graph (an earlier
    /// attempt of the same shard did its work).
    pub decided: bool,
    /// Service id.
    pub service: String,
    /// Where it runs.
    pub cluster: Option<String>,
    /// Replicas set now.
    pub replicas: i32,
}

/// The services of `graphs` as they stand now, as `job` sees them.
pub async fn services_now(
    conn: &mut PgConnection,
    graphs: &[String],
    job: Uuid,
) -> Result<Vec<ServiceNow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT g.name AS graph, g.id AS graph_uuid, g.name AS graph_id,
                (g.desired = 'running' AND g.status = 'Running') AS running,
                EXISTS (SELECT 1 FROM smo.decisions d WHERE d.graph = g.name AND d.job_id = $2) AS decided,
                s.name AS service, s.cluster, s.replicas
           FROM smo.graphs g JOIN smo.services s ON s.graph_id = g.id
          WHERE g.name = ANY($1)",
    )
    .bind(graphs)
    .bind(job)
    .fetch_all(&mut *conn)
    .await?)
}

/// Sets desired and ready replicas of many services at once: `(graph row id, service, replicas,
/// ready)`.
pub async fn set_replicas_many(
    conn: &mut PgConnection,
    rows: &[(Uuid, String, i32, i32)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let replicas: Vec<i32> = rows.iter().map(|r| r.2).collect();
    let ready: Vec<i32> = rows.iter().map(|r| r.3).collect();
    sqlx::query(
        "UPDATE smo.services s SET replicas = v.replicas, ready = v.ready, updated_at = $5
           FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::int4[]) AS v(graph_id, name, replicas, ready)
          WHERE s.graph_id = v.graph_id AND s.name = v.name",
    )
    .bind(ids)
    .bind(names)
    .bind(replicas)
    .bind(ready)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
