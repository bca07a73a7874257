//! `store`: smo's own tables (schema `smo`) — projects, graphs, services, clusters, the jobs of a
//! graph and the append-only decision log. Plain sqlx; every function takes the connection it runs
//! on so callers choose the transaction (the API stores a graph and enqueues its job in one).

use chrono::{DateTime, Utc};
use serde::Serialize;
pub use smo_core::model::{ClusterRecord, NewService, ServiceRecord};
use smo_core::model::{DecisionKind, Outcome};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

mod access;
mod clusters;
mod connect;
mod decisions;
mod events;
mod failover;
mod locks;
mod overview;
mod scaling;
mod state;

pub use self::access::{
    AuditFilter, AuditRecord, NewToken, TokenAuth, TokenRecord, audit, audit_log, create_token,
    graph_of_job, list_tokens, project_of_graph, prune_audit, revoke_token, token_by_prefix,
    touch_token,
};
pub use self::clusters::*;
pub use self::connect::{Unreachable, connect};
pub use self::decisions::*;
pub use self::events::*;
pub use self::failover::{
    ClusterEvent, ClusterHealth, FleetService, MovedService, add_event, add_event_with,
    clear_moves, cluster_events, cluster_health, fleet_services, graph_keys, graphs_named,
    moved_from, moves_of, observe_health, record_moves, set_lost,
};
pub use self::locks::*;
pub use self::overview::*;
pub use self::scaling::{ServiceNow, scaling_rows, services_now, set_replicas_many};
pub use self::state::{Desired, GraphStatus, ServiceStatus};

/// Storage errors, worded for the API's problem documents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The query failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// No such graph.
    #[error("graph {0:?} not found")]
    GraphNotFound(String),
    /// A graph of that name belongs to another project.
    #[error(
        "graph {name:?} already exists in project {project:?}; graph names are unique across projects"
    )]
    NameTaken {
        /// Graph name.
        name: String,
        /// Its project.
        project: String,
    },
    /// A token of that name exists (revoked ones keep their names).
    #[error("a token named {0:?} exists; token names are never reused")]
    TokenNameTaken(String),
    /// The graph is being removed; it cannot be changed meanwhile.
    #[error("graph {0:?} is being removed")]
    Removing(String),
    /// A stored descriptor that no longer loads as a [`crate::hdag::Graph`]: a fault of smo (every
    /// stored descriptor was validated), never the user's.
    #[error("the stored descriptor of graph {graph:?} does not load: {error}")]
    Descriptor {
        /// Graph name.
        graph: String,
        /// Why.
        error: String,
    },
}

/// A graph row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct GraphRecord {
    /// Id.
    pub id: Uuid,
    /// Project (= namespace).
    #[sqlx(try_from = "String")]
    pub project: crate::hdag::ProjectName,
    /// Name (the descriptor's id).
    #[sqlx(try_from = "String")]
    pub name: crate::hdag::GraphName,
    /// Descriptor version.
    pub version: String,
    /// Bumped on every upload.
    pub revision: i32,
    /// The validated graph.
    pub descriptor: serde_json::Value,
    /// The descriptor as uploaded.
    pub source: String,
    /// What the user asked for.
    #[sqlx(try_from = "String")]
    pub desired: Desired,
    /// What the last job achieved.
    #[sqlx(try_from = "String")]
    pub status: GraphStatus,
    /// Why, when it failed.
    pub status_message: Option<String>,
    /// service → cluster.
    pub placement: serde_json::Value,
    /// dashboard name → URL.
    pub dashboards: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl GraphRecord {
    /// The stored descriptor, typed: the one place it is decoded (was six `from_value` calls).
    pub fn graph(&self) -> Result<crate::hdag::Graph, StoreError> {
        serde_json::from_value(self.descriptor.clone()).map_err(|e| StoreError::Descriptor {
            graph: self.name.to_string(),
            error: e.to_string(),
        })
    }

    /// The recorded placement, service → cluster (`set_placement` writes exactly this shape).
    pub fn placement_map(&self) -> std::collections::BTreeMap<String, String> {
        serde_json::from_value(self.placement.clone()).unwrap_or_default()
    }
}

const GRAPH_COLUMNS: &str = "id, project, name, version, revision, descriptor, source, desired, status, \
     status_message, placement, dashboards, created_at, updated_at";

/// Stores a new graph or a new revision of an existing one (an upgrade), with its services, in the
/// caller's transaction. Returns the row and whether it was created.
#[allow(clippy::too_many_arguments)]
pub async fn upsert_graph(
    conn: &mut PgConnection,
    project: &str,
    name: &str,
    version: &str,
    descriptor: &serde_json::Value,
    source: &str,
    services: &[NewService],
    now: DateTime<Utc>,
) -> Result<(GraphRecord, bool), StoreError> {
    // Concurrent uploads of one name queue here (until the caller's transaction ends) instead of
    // racing to insert it: the first creates the graph, the next find it and upgrade it. Without
    // this, simultaneous creates hit the unique key or deadlock and surface as errors.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('smo.graph-name'), hashtext($1))")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO smo.projects (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(project)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let existing: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, project, desired FROM smo.graphs WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    let (id, created) = match existing {
        Some((_, p, _)) if p != project => {
            return Err(StoreError::NameTaken {
                name: name.into(),
                project: p,
            });
        }
        Some((_, _, d)) if d == Desired::Removed.as_str() => {
            return Err(StoreError::Removing(name.into()));
        }
        Some((id, _, _)) => {
            sqlx::query(
                "UPDATE smo.graphs SET version = $2, revision = revision + 1, descriptor = $3, source = $4,
                        desired = 'running', status = 'Pending', status_message = NULL, updated_at = $5
                  WHERE id = $1",
            )
            .bind(id)
            .bind(version)
            .bind(descriptor)
            .bind(source)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            (id, false)
        }
        None => {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO smo.graphs (id, project, name, version, descriptor, source, desired, status,
                                         created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'running', 'Pending', $7, $7)",
            )
            .bind(id)
            .bind(project)
            .bind(name)
            .bind(version)
            .bind(descriptor)
            .bind(source)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            (id, true)
        }
    };
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    sqlx::query("DELETE FROM smo.services WHERE graph_id = $1 AND NOT (name = ANY($2))")
        .bind(id)
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    for (i, s) in services.iter().enumerate() {
        sqlx::query(
            "INSERT INTO smo.services (graph_id, name, position, status, replicas, conditional, cpu_millis,
                                       memory_bytes, gpu, updated_at)
             VALUES ($1, $2, $3, 'Pending', $4, $5, $6, $7, $8, $9)
             ON CONFLICT (graph_id, name) DO UPDATE SET position = $3, conditional = $5, cpu_millis = $6,
                 memory_bytes = $7, gpu = $8, updated_at = $9",
        )
        .bind(id)
        .bind(&s.name)
        .bind(i as i32)
        .bind(s.replicas)
        .bind(s.conditional)
        .bind(s.cpu_millis)
        .bind(s.memory_bytes)
        .bind(s.gpu)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok((get_graph(&mut *conn, name).await?, created))
}

/// A round trip to the database (readiness).
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// One graph by name.
pub async fn get_graph(conn: &mut PgConnection, name: &str) -> Result<GraphRecord, StoreError> {
    find_graph(conn, name)
        .await?
        .ok_or_else(|| StoreError::GraphNotFound(name.into()))
}

/// One graph by name, if it exists.
pub async fn find_graph(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<GraphRecord>, StoreError> {
    Ok(
        sqlx::query_as::<_, GraphRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {GRAPH_COLUMNS} FROM smo.graphs WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?,
    )
}

/// The rows of a page of graphs: `$1` project (or all), after `($2, $3)`, at most `$4`, only
/// the projects `$5` (or all).
/// (A macro, so that each statement is one `&'static str`.)
macro_rules! page_of_graphs {
    () => {
        "FROM smo.graphs
          WHERE ($1::text IS NULL OR project = $1) AND (project, name) > ($2, $3)
            AND ($5::text[] IS NULL OR project = ANY($5))
          ORDER BY project, name LIMIT $4"
    };
}

/// Graphs, optionally of one project, by project and name, as the API's JSON array built by
/// PostgreSQL itself (only the listed columns are read; nothing is decoded row by row here).
pub async fn list_graphs(
    pool: &PgPool,
    project: Option<&str>,
    page: Page<'_>,
) -> Result<GraphList, StoreError> {
    // json_agg over whole rows: PostgreSQL's own row-to-JSON, the cheapest it has. Timestamps
    // come out in the session's time zone, which `cli::connect` sets to UTC.
    Ok(page_query(
        concat!(
            "SELECT coalesce(json_agg(g), '[]')::text AS json, count(*) AS count,
                    array_to_string(max(ARRAY[project, name]), '/') AS last
               FROM (SELECT name, project, version, revision, status, desired, updated_at ",
            page_of_graphs!(),
            ") g"
        ),
        project,
        page,
    )
    .fetch_one(pool)
    .await?)
}

/// `sql`, a statement over [`page_of_graphs`], with the page's five parameters bound.
fn page_query<'a, O>(
    sql: &'static str,
    project: Option<&'a str>,
    page: Page<'a>,
) -> sqlx::query::QueryAs<'a, sqlx::Postgres, O, sqlx::postgres::PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let (after_project, after_name) = page.after.unwrap_or(("", ""));
    sqlx::query_as(sql)
        .bind(project)
        .bind(after_project)
        .bind(after_name)
        .bind(page.limit)
        .bind(page.within)
}

/// The version stamp of what [`list_graphs`] would answer for `page`: the `xmin` of each of its
/// rows in order, so it changes when one of them is written or a row enters or leaves the page.
/// No JSON is built: most of a page's cost in the database is `json_agg`.
pub async fn graph_page_stamp(
    pool: &PgPool,
    project: Option<&str>,
    page: Page<'_>,
) -> Result<String, StoreError> {
    let (stamp,): (String,) = page_query(
        concat!(
            "SELECT coalesce(string_agg(x, ','), '') FROM (SELECT xmin::text AS x ",
            page_of_graphs!(),
            ") g"
        ),
        project,
        page,
    )
    .fetch_one(pool)
    .await?;
    Ok(stamp)
}

/// A list of graphs as JSON, with what paging needs.
#[derive(Debug, sqlx::FromRow)]
pub struct GraphList {
    /// `[{name, project, version, revision, status, desired, updated_at}, …]`.
    pub json: String,
    /// Graphs in it.
    pub count: i64,
    /// `project/name` of the last one.
    pub last: Option<String>,
}

/// One page of a list ordered by (project, name): at most `limit` rows (all without one) after
/// the row `after` = (project, name). Keyset, not offset: a page costs the same wherever it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page<'a> {
    pub after: Option<(&'a str, &'a str)>,
    pub limit: Option<i64>,
    /// Only these projects (a caller's); `None`: every project.
    pub within: Option<&'a [String]>,
}

/// The services of a graph in descriptor order.
pub async fn services(
    conn: &mut PgConnection,
    graph_id: Uuid,
) -> Result<Vec<ServiceRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, position, status, cluster, replicas, ready, conditional, cpu_millis, memory_bytes, gpu
           FROM smo.services WHERE graph_id = $1 ORDER BY position",
    )
    .bind(graph_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(service_of).collect()
}

/// A `smo.services` row as smo-core's [`ServiceRecord`] (its status checked on the way out).
fn service_of(row: &sqlx::postgres::PgRow) -> Result<ServiceRecord, StoreError> {
    use sqlx::Row as _;
    let status: String = row.try_get("status")?;
    Ok(ServiceRecord {
        name: row.try_get("name")?,
        position: row.try_get("position")?,
        status: status
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        cluster: row.try_get("cluster")?,
        replicas: row.try_get("replicas")?,
        ready: row.try_get("ready")?,
        conditional: row.try_get("conditional")?,
        cpu_millis: row.try_get("cpu_millis")?,
        memory_bytes: row.try_get("memory_bytes")?,
        gpu: row.try_get("gpu")?,
    })
}

/// Records what the user asked for; refuses once removal was asked.
pub async fn set_desired(
    conn: &mut PgConnection,
    name: &str,
    desired: Desired,
    now: DateTime<Utc>,
) -> Result<GraphRecord, StoreError> {
    let g = get_graph(&mut *conn, name).await?;
    if g.desired == Desired::Removed && desired != Desired::Removed {
        return Err(StoreError::Removing(name.into()));
    }
    sqlx::query("UPDATE smo.graphs SET desired = $2, updated_at = $3 WHERE id = $1")
        .bind(g.id)
        .bind(desired.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    get_graph(conn, name).await
}

/// Sets a graph's status and message.
pub async fn set_status(
    conn: &mut PgConnection,
    graph_id: Uuid,
    status: GraphStatus,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE smo.graphs SET status = $2, status_message = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(graph_id)
    .bind(status.as_str())
    .bind(message)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records what a graph job's plan says to record (see [`Outcome`]), in the caller's
/// transaction: statuses, placement, spent events, dashboards, decisions. Every graph job ends
/// here; fleet jobs (scaling, failover) write their many graphs' decisions through
/// [`add_decisions`], the one decision writer.
pub async fn record_outcome(
    conn: &mut PgConnection,
    g: &GraphRecord,
    job: Uuid,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let graph_id = g.id;
    // One statement for the graph and one for its services, however many services changed:
    // a deploy records on every graph, and per-service statements were most of its round trips.
    let placement = outcome
        .placement
        .as_ref()
        .map(|p| serde_json::to_value(p).unwrap_or_default());
    if outcome.status.is_some() || placement.is_some() {
        let (status, message) = match &outcome.status {
            Some((s, m)) => (Some(s.as_str()), m.as_deref()),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE smo.graphs
                SET status = coalesce($2, status),
                    status_message = CASE WHEN $2::text IS NULL THEN status_message ELSE $3 END,
                    placement = coalesce($4, placement), updated_at = $5
              WHERE id = $1",
        )
        .bind(graph_id)
        .bind(status)
        .bind(message)
        .bind(&placement)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    // Per service: (status, observed replicas, cluster), each part `None` where it is kept.
    type Change<'a> = (
        Option<ServiceStatus>,
        smo_core::model::Observed,
        Option<&'a str>,
    );
    let mut changes: std::collections::BTreeMap<&str, Change<'_>> = Default::default();
    for (service, status, observed) in &outcome.services {
        let c = changes.entry(service).or_default();
        (c.0, c.1) = (Some(*status), *observed);
    }
    for (service, cluster) in outcome.placement.iter().flatten() {
        changes.entry(service).or_default().2 = Some(cluster);
    }
    if !changes.is_empty() {
        let names: Vec<&str> = changes.keys().copied().collect();
        let statuses: Vec<Option<&str>> =
            changes.values().map(|c| c.0.map(|s| s.as_str())).collect();
        let replicas: Vec<Option<i32>> = changes.values().map(|c| c.1.map(|r| r.0)).collect();
        let ready: Vec<Option<i32>> = changes.values().map(|c| c.1.map(|r| r.1)).collect();
        let clusters: Vec<Option<&str>> = changes.values().map(|c| c.2).collect();
        sqlx::query(
            "UPDATE smo.services s
                SET status = coalesce(u.status, s.status), replicas = coalesce(u.replicas, s.replicas),
                    ready = coalesce(u.ready, s.ready), cluster = coalesce(u.cluster, s.cluster),
                    updated_at = $7
               FROM unnest($2::text[], $3::text[], $4::int4[], $5::int4[], $6::text[])
                    AS u(name, status, replicas, ready, cluster)
              WHERE s.graph_id = $1 AND s.name = u.name",
        )
        .bind(graph_id)
        .bind(&names)
        .bind(&statuses)
        .bind(&replicas)
        .bind(&ready)
        .bind(&clusters)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(service) = &outcome.clear_events {
        clear_events(conn, graph_id, service).await?;
    }
    if let Some(urls) = &outcome.dashboards {
        set_dashboards(conn, graph_id, urls).await?;
    }
    let decisions: Vec<NewDecision> = outcome
        .decisions
        .iter()
        .map(|d| NewDecision {
            graph: g.name.to_string(),
            project: g.project.to_string(),
            job_id: Some(job),
            decision: d.clone(),
        })
        .collect();
    add_decisions(conn, &decisions, now).await
}

/// Stores the URLs of a graph's published dashboards (title → URL).
pub async fn set_dashboards(
    conn: &mut PgConnection,
    graph_id: Uuid,
    urls: &std::collections::BTreeMap<String, String>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE smo.graphs SET dashboards = $2 WHERE id = $1")
        .bind(graph_id)
        .bind(serde_json::to_value(urls).unwrap_or_default())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Graphs (with descriptors) that have a conditional service `service` still Pending: where an
/// alert without a `graph` label (as the reference's rules send) may belong.
pub async fn graphs_awaiting(
    conn: &mut PgConnection,
    service: &str,
) -> Result<Vec<GraphRecord>, StoreError> {
    Ok(sqlx::query_as::<_, GraphRecord>(sqlx::AssertSqlSafe(format!(
        "SELECT {GRAPH_COLUMNS} FROM smo.graphs WHERE id IN (
             SELECT graph_id FROM smo.services WHERE name = $1 AND conditional AND status = 'Pending')
          ORDER BY name"
    )))
    .bind(service)
    .fetch_all(&mut *conn)
    .await?)
}

/// The graph's row locked for the rest of the transaction, if it still exists: the point where a
/// job re-checks the desired state before it records an outcome.
pub async fn find_graph_for_update(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<GraphRecord>, StoreError> {
    Ok(
        sqlx::query_as::<_, GraphRecord>(sqlx::AssertSqlSafe(format!(
            "SELECT {GRAPH_COLUMNS} FROM smo.graphs WHERE name = $1 FOR UPDATE"
        )))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?,
    )
}

/// Records a scale tick's new replica count and what the federation reports ready.
pub async fn set_service_replicas(
    conn: &mut PgConnection,
    graph_id: Uuid,
    service: &str,
    replicas: i32,
    ready: i32,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE smo.services SET replicas = $3, ready = $5, updated_at = $4 WHERE graph_id = $1 AND name = $2",
    )
    .bind(graph_id)
    .bind(service)
    .bind(replicas)
    .bind(now)
    .bind(ready)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Names of the graphs that should be and are running (scale ticks, drift repair).
pub async fn running_graph_names(
    conn: &mut PgConnection,
) -> Result<Vec<crate::hdag::GraphName>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM smo.graphs WHERE desired = 'running' AND status = 'Running' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    names
        .into_iter()
        .map(|n| {
            crate::hdag::GraphName::parse(n).map_err(|e| sqlx::Error::Decode(Box::new(e)).into())
        })
        .collect()
}

/// True when another graph than `except` lives in `project`.
pub async fn project_has_other_graphs(
    conn: &mut PgConnection,
    project: &str,
    except: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM smo.graphs WHERE project = $1 AND name <> $2)",
    )
    .bind(project)
    .bind(except)
    .fetch_one(&mut *conn)
    .await?)
}

/// Deletes a graph and its services (decisions and job links stay: they are history).
pub async fn delete_graph(conn: &mut PgConnection, graph_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM smo.graphs WHERE id = $1")
        .bind(graph_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Links a job to a graph (same transaction as the enqueue).
pub async fn record_job(
    conn: &mut PgConnection,
    graph: &str,
    job_id: Uuid,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO smo.graph_jobs (graph, job_id, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(graph)
    .bind(job_id)
    .bind(kind)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ids of a graph's jobs, newest first.
pub async fn graph_job_ids(
    pool: &PgPool,
    graph: &str,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT job_id FROM smo.graph_jobs WHERE graph = $1 ORDER BY created_at DESC, job_id DESC LIMIT $2",
    )
    .bind(graph)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
