//! The clusters table (what the last sync read from the federation) and the reads that join it
//! with placed services.

use super::*;

/// Replaces the cluster table with what Karmada reported.
pub async fn replace_clusters(
    conn: &mut PgConnection,
    clusters: &[ClusterRecord],
) -> Result<(), StoreError> {
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    sqlx::query("DELETE FROM smo.clusters WHERE NOT (name = ANY($1))")
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    for c in clusters {
        sqlx::query(
            "INSERT INTO smo.clusters (name, ready, cpu_allocatable, cpu_free, memory_allocatable, memory_free,
                                       gpus, labels, message, synced_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (name) DO UPDATE SET ready = $2, cpu_allocatable = $3, cpu_free = $4,
                 memory_allocatable = $5, memory_free = $6, gpus = $7, labels = $8, message = $9, synced_at = $10",
        )
        .bind(c.name.as_str())
        .bind(c.ready)
        .bind(c.cpu_allocatable)
        .bind(c.cpu_free)
        .bind(c.memory_allocatable)
        .bind(c.memory_free)
        .bind(c.gpus)
        .bind(&c.labels)
        .bind(&c.message)
        .bind(c.synced_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Clusters by name.
pub async fn list_clusters(pool: &PgPool) -> Result<Vec<ClusterRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, ready, cpu_allocatable, cpu_free, memory_allocatable, memory_free, gpus, labels, message,
                synced_at FROM smo.clusters ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(cluster_of).collect()
}

/// A `smo.clusters` row as smo-core's [`ClusterRecord`] (its name checked on the way out).
fn cluster_of(row: &sqlx::postgres::PgRow) -> Result<ClusterRecord, StoreError> {
    use sqlx::Row as _;
    let name: String = row.try_get("name")?;
    Ok(ClusterRecord {
        name: crate::hdag::ClusterName::parse(name)
            .map_err(|e| sqlx::Error::Decode(e.to_string().into()))?,
        ready: row.try_get("ready")?,
        cpu_allocatable: row.try_get("cpu_allocatable")?,
        cpu_free: row.try_get("cpu_free")?,
        memory_allocatable: row.try_get("memory_allocatable")?,
        memory_free: row.try_get("memory_free")?,
        gpus: row.try_get("gpus")?,
        labels: row.try_get("labels")?,
        message: row.try_get("message")?,
        synced_at: row.try_get("synced_at")?,
    })
}

/// A placed service of any graph: what runs where.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlacedService {
    /// Its graph.
    pub graph: String,
    /// Its project.
    pub project: String,
    /// Service name.
    pub service: String,
    /// Its cluster.
    pub cluster: String,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: ServiceStatus,
    /// Desired replicas.
    pub replicas: i32,
    /// CPU per replica in milli-cores.
    pub cpu_millis: i64,
    /// Memory per replica in bytes.
    pub memory_bytes: i64,
    /// Needs an accelerator.
    pub gpu: bool,
}

/// Every service that has a cluster, by cluster, graph and position.
pub async fn placed_services(pool: &PgPool) -> Result<Vec<PlacedService>, StoreError> {
    Ok(sqlx::query_as::<_, PlacedService>(
        "SELECT g.name AS graph, g.project, s.name AS service, s.cluster, s.status, s.replicas,
                s.cpu_millis, s.memory_bytes, s.gpu
           FROM smo.services s JOIN smo.graphs g ON g.id = s.graph_id
          WHERE s.cluster IS NOT NULL
          ORDER BY s.cluster, g.name, s.position",
    )
    .fetch_all(pool)
    .await?)
}

/// What the graphs placed on a cluster request in all, split into one graph's and the others'.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClusterUsage {
    /// Cluster name.
    pub cluster: String,
    /// True for the requests of the graph asked about, false for every other graph's.
    pub mine: bool,
    /// Milli-cores (per-replica requests × replicas).
    pub cpu_millis: i64,
    /// Bytes (per-replica requests × replicas).
    pub memory_bytes: i64,
    /// GPUs (one per replica of a GPU service).
    pub gpus: i64,
}

/// Requests per cluster, summed in the database: `graph`'s own and everybody else's.
pub async fn cluster_usage(pool: &PgPool, graph: &str) -> Result<Vec<ClusterUsage>, StoreError> {
    Ok(sqlx::query_as::<_, ClusterUsage>(
        "SELECT s.cluster, g.name = $1 AS mine,
                sum(s.cpu_millis * s.replicas)::bigint AS cpu_millis,
                sum(s.memory_bytes * s.replicas)::bigint AS memory_bytes,
                sum(CASE WHEN s.gpu THEN s.replicas ELSE 0 END)::bigint AS gpus
           FROM smo.services s JOIN smo.graphs g ON g.id = s.graph_id
          WHERE s.cluster IS NOT NULL
          GROUP BY s.cluster, g.name = $1",
    )
    .bind(graph)
    .fetch_all(pool)
    .await?)
}
