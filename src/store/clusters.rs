//! The clusters table (what the last sync read from the federation) and the reads that join it
//! with placed services.

use super::*;

/// Replaces the cluster table with what Karmada reported, in one statement.
///
/// A row whose readiness, allocatable resources, labels or message changed is always rewritten.
/// One that differs only in free capacity (or not at all) is rewritten once its stored sync is
/// `settle` old: every deploy syncs before it places (on what it just read), and in a burst
/// hundreds of them a second would otherwise rewrite the same few rows, each waiting on the
/// row lock of the one before it. Readers of the table (the console, `GET /clusters`, the scaling
/// round) then see free capacity at most `settle` old; explicit syncs pass `Duration::ZERO`.
pub async fn replace_clusters(
    conn: &mut PgConnection,
    clusters: &[ClusterRecord],
    settle: std::time::Duration,
) -> Result<(), StoreError> {
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    let ready: Vec<bool> = clusters.iter().map(|c| c.ready).collect();
    let cpu_allocatable: Vec<f64> = clusters.iter().map(|c| c.cpu_allocatable).collect();
    let cpu_free: Vec<f64> = clusters.iter().map(|c| c.cpu_free).collect();
    let memory_allocatable: Vec<i64> = clusters.iter().map(|c| c.memory_allocatable).collect();
    let memory_free: Vec<i64> = clusters.iter().map(|c| c.memory_free).collect();
    let gpus: Vec<i32> = clusters.iter().map(|c| c.gpus).collect();
    let labels: Vec<&serde_json::Value> = clusters.iter().map(|c| &c.labels).collect();
    let message: Vec<Option<&str>> = clusters.iter().map(|c| c.message.as_deref()).collect();
    let synced_at: Vec<DateTime<Utc>> = clusters.iter().map(|c| c.synced_at).collect();
    // The UPDATE's WHERE leaves unchanged rows unlocked (an upsert would lock every row it
    // meets); the INSERT adds clusters that are new, and DO NOTHING lets a racing sync win.
    sqlx::query(
        "WITH incoming AS (
             SELECT * FROM unnest($1::text[], $2::bool[], $3::float8[], $4::float8[], $5::int8[],
                                  $6::int8[], $7::int4[], $8::jsonb[], $9::text[], $10::timestamptz[])
                 AS u(name, ready, cpu_allocatable, cpu_free, memory_allocatable, memory_free, gpus,
                      labels, message, synced_at)
         ), gone AS (
             DELETE FROM smo.clusters c WHERE NOT (c.name = ANY($1))
         ), changed AS (
             UPDATE smo.clusters c
                SET ready = u.ready, cpu_allocatable = u.cpu_allocatable, cpu_free = u.cpu_free,
                    memory_allocatable = u.memory_allocatable, memory_free = u.memory_free,
                    gpus = u.gpus, labels = u.labels, message = u.message, synced_at = u.synced_at
               FROM incoming u
              WHERE c.name = u.name
                AND ((c.ready, c.cpu_allocatable, c.memory_allocatable, c.gpus, c.labels, c.message)
                         IS DISTINCT FROM
                     (u.ready, u.cpu_allocatable, u.memory_allocatable, u.gpus, u.labels, u.message)
                     OR $11 = 0 OR c.synced_at <= u.synced_at - $11 * interval '1 second')
         )
         INSERT INTO smo.clusters (name, ready, cpu_allocatable, cpu_free, memory_allocatable,
                                   memory_free, gpus, labels, message, synced_at)
         SELECT u.* FROM incoming u
          WHERE NOT EXISTS (SELECT 1 FROM smo.clusters c WHERE c.name = u.name)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&names)
    .bind(&ready)
    .bind(&cpu_allocatable)
    .bind(&cpu_free)
    .bind(&memory_allocatable)
    .bind(&memory_free)
    .bind(&gpus)
    .bind(&labels)
    .bind(&message)
    .bind(&synced_at)
    .bind(settle.as_secs_f64())
    .execute(&mut *conn)
    .await?;
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
