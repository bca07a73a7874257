//! Cluster health and failover bookkeeping: each cluster's Ready condition with the time it last
//! changed, its history, and the services failover moved (so fail-back can bring them home).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ClusterRecord, StoreError};

/// A cluster's health as smo last recorded it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClusterHealth {
    /// Cluster name.
    pub cluster: String,
    /// Its Ready condition.
    pub ready: bool,
    /// When `ready` last changed (as smo first saw it).
    pub since: DateTime<Utc>,
    /// The condition's message.
    pub reason: Option<String>,
    /// When failover ran for it, until it is back and failed back.
    pub lost_at: Option<DateTime<Utc>>,
}

/// One entry of a cluster's health history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct ClusterEvent {
    /// Cluster name.
    pub cluster: String,
    /// When.
    pub at: DateTime<Utc>,
    /// `ready`, `not-ready`, `lost`, `failover`, `recovered` or `failback`.
    pub event: String,
    /// What was seen or done.
    pub message: Option<String>,
    /// Figures (a failover's solve time, moves, …).
    pub data: serde_json::Value,
}

/// Every cluster's recorded health, by name.
pub async fn cluster_health(conn: &mut PgConnection) -> Result<Vec<ClusterHealth>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT cluster, ready, since, reason, lost_at FROM smo.cluster_health ORDER BY cluster",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Records what Karmada reports now: a cluster seen for the first time or whose Ready condition
/// changed gets `since = now` and a history entry; others keep their `since`. Returns the
/// health of every reported cluster after the update.
pub async fn observe_health(
    conn: &mut PgConnection,
    clusters: &[ClusterRecord],
    now: DateTime<Utc>,
) -> Result<Vec<ClusterHealth>, StoreError> {
    let before: BTreeMap<String, ClusterHealth> = cluster_health(conn)
        .await?
        .into_iter()
        .map(|h| (h.cluster.clone(), h))
        .collect();
    let mut out = Vec::with_capacity(clusters.len());
    for c in clusters {
        let name = c.name.to_string();
        let changed = before.get(&name).is_none_or(|h| h.ready != c.ready);
        if changed {
            sqlx::query(
                "INSERT INTO smo.cluster_health (cluster, ready, since, reason)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (cluster) DO UPDATE SET ready = $2, since = $3, reason = $4",
            )
            .bind(&name)
            .bind(c.ready)
            .bind(now)
            .bind(&c.message)
            .execute(&mut *conn)
            .await?;
            let event = if c.ready { "ready" } else { "not-ready" };
            add_event(conn, &name, event, c.message.as_deref(), now).await?;
        }
        out.push(ClusterHealth {
            cluster: name.clone(),
            ready: c.ready,
            since: if changed { now } else { before[&name].since },
            reason: c.message.clone(),
            lost_at: before.get(&name).and_then(|h| h.lost_at),
        });
    }
    Ok(out)
}

/// Appends to a cluster's history.
pub async fn add_event(
    conn: &mut PgConnection,
    cluster: &str,
    event: &str,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    add_event_with(conn, cluster, event, message, serde_json::json!({}), now).await
}

/// [`add_event`] with figures.
pub async fn add_event_with(
    conn: &mut PgConnection,
    cluster: &str,
    event: &str,
    message: Option<&str>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO smo.cluster_events (cluster, at, event, message, data) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(cluster)
    .bind(now)
    .bind(event)
    .bind(message)
    .bind(data)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a cluster lost (failover runs for it) or, with `None`, back.
pub async fn set_lost(
    conn: &mut PgConnection,
    cluster: &str,
    lost_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE smo.cluster_health SET lost_at = $2 WHERE cluster = $1")
        .bind(cluster)
        .bind(lost_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A cluster's history, newest first (every cluster's with `None`).
pub async fn cluster_events(
    conn: &mut PgConnection,
    cluster: Option<&str>,
    limit: i64,
) -> Result<Vec<ClusterEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT cluster, at, event, message, data FROM smo.cluster_events
          WHERE ($1::text IS NULL OR cluster = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(cluster)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Remembers where failover moved a graph's services from (a service moved again keeps its
/// first home).
pub async fn record_moves(
    conn: &mut PgConnection,
    graph_id: Uuid,
    moves: &[(String, String, String)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for (service, home, target) in moves {
        sqlx::query(
            "INSERT INTO smo.failover_moves (graph_id, service, home, target, at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (graph_id, service) DO UPDATE SET target = $4, at = $5",
        )
        .bind(graph_id)
        .bind(service)
        .bind(home)
        .bind(target)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Forgets a graph's moved services (they are home again, or the graph was re-placed).
pub async fn clear_moves(
    conn: &mut PgConnection,
    graph_id: Uuid,
    services: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM smo.failover_moves WHERE graph_id = $1 AND service = ANY($2)")
        .bind(graph_id)
        .bind(services)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A service failover moved away from `home`, with what fail-back needs to decide.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MovedService {
    /// Graph name.
    pub graph: String,
    /// Graph row id.
    pub graph_id: Uuid,
    /// Service id.
    pub service: String,
    /// Where it ran before the loss.
    pub home: String,
    /// Where failover sent it.
    pub target: String,
    /// Where it runs now.
    pub cluster: Option<String>,
    /// Replicas × CPU per replica, in milli-cores.
    pub cpu_millis: i64,
    /// Replicas × memory per replica, in bytes.
    pub memory_bytes: i64,
    /// The graph's `hdaGraphIntent.failback` (`manual` opts out).
    pub failback: Option<String>,
}

/// Services of running graphs that failover moved away from `home`, by graph name.
pub async fn moved_from(
    conn: &mut PgConnection,
    home: &str,
) -> Result<Vec<MovedService>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT g.name AS graph, g.id AS graph_id, m.service, m.home, m.target, s.cluster,
                (s.replicas::bigint * s.cpu_millis) AS cpu_millis,
                (s.replicas::bigint * s.memory_bytes) AS memory_bytes,
                g.descriptor->'hdaGraphIntent'->>'failback' AS failback
           FROM smo.failover_moves m
           JOIN smo.graphs g ON g.id = m.graph_id
           JOIN smo.services s ON s.graph_id = m.graph_id AND s.name = m.service
          WHERE m.home = $1 AND g.desired = 'running'
          ORDER BY g.name, s.position",
    )
    .bind(home)
    .fetch_all(&mut *conn)
    .await?)
}

/// A placed service of a graph that should be running: the fleet failover solves over.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FleetService {
    /// Graph name.
    pub graph: String,
    /// Service id.
    pub service: String,
    /// Where it runs.
    pub cluster: String,
    /// Desired replicas.
    pub replicas: i32,
    /// CPU per replica, milli-cores.
    pub cpu_millis: i64,
    /// Memory per replica, bytes.
    pub memory_bytes: i64,
    /// Needs an accelerator.
    pub gpu: bool,
}

/// Every placed service of every graph that should be running, by graph and position.
pub async fn fleet_services(conn: &mut PgConnection) -> Result<Vec<FleetService>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT g.name AS graph, s.name AS service, s.cluster, s.replicas, s.cpu_millis,
                s.memory_bytes, s.gpu
           FROM smo.graphs g JOIN smo.services s ON s.graph_id = g.id
          WHERE g.desired = 'running' AND g.status = 'Running' AND s.cluster IS NOT NULL
            AND s.status <> 'Stopped'
          ORDER BY g.name, s.position",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Graphs by name, in one statement.
pub async fn graphs_named(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<Vec<super::GraphRecord>, StoreError> {
    Ok(
        sqlx::query_as::<_, super::GraphRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM smo.graphs WHERE name = ANY($1) ORDER BY name",
            super::GRAPH_COLUMNS
        )))
        .bind(names)
        .fetch_all(&mut *conn)
        .await?,
    )
}

/// Graphs by name: (name, row id, project) only, in one statement — for recording about many
/// graphs without reading their descriptors.
pub async fn graph_keys(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<Vec<(String, Uuid, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT name, id, project FROM smo.graphs WHERE name = ANY($1)")
            .bind(names)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Where failover sent a graph's services (service → target).
pub async fn moves_of(
    conn: &mut PgConnection,
    graph_id: Uuid,
) -> Result<Vec<(String, String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT service, home, target FROM smo.failover_moves WHERE graph_id = $1 ORDER BY service",
    )
    .bind(graph_id)
    .fetch_all(&mut *conn)
    .await?)
}
