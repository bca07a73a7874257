//! The console's reads: graph overviews with their latest decision, projects, change stamps.

use super::*;

/// A graph as the console's list shows it: its listing, how many services run, and its latest
/// decision (one round trip for the whole page).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GraphOverview {
    /// Name.
    pub name: String,
    /// Project.
    pub project: String,
    /// Current status.
    #[sqlx(try_from = "String")]
    pub status: GraphStatus,
    /// What was asked.
    #[sqlx(try_from = "String")]
    pub desired: Desired,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Services in the descriptor.
    pub services: i64,
    /// Services whose status is Running.
    pub running: i64,
    /// Kind of the latest decision.
    pub decision_kind: Option<String>,
    /// Its message.
    pub decision_message: Option<String>,
    /// When it was taken.
    pub decision_at: Option<DateTime<Utc>>,
}

/// Graphs with service counts and their latest decision, filtered by project and status, by name.
pub async fn graph_overviews(
    pool: &PgPool,
    project: Option<&str>,
    status: Option<GraphStatus>,
    within: Option<&[String]>,
    limit: i64,
) -> Result<Vec<GraphOverview>, StoreError> {
    Ok(sqlx::query_as::<_, GraphOverview>(
        "SELECT g.name, g.project, g.status, g.desired, g.updated_at,
                (SELECT count(*) FROM smo.services s WHERE s.graph_id = g.id) AS services,
                (SELECT count(*) FROM smo.services s WHERE s.graph_id = g.id AND s.status = 'Running') AS running,
                d.kind AS decision_kind, d.message AS decision_message, d.at AS decision_at
           FROM smo.graphs g
           LEFT JOIN LATERAL (SELECT kind, message, at FROM smo.decisions
                               WHERE graph = g.name ORDER BY id DESC LIMIT 1) d ON true
          WHERE ($1::text IS NULL OR g.project = $1) AND ($2::text IS NULL OR g.status = $2)
            AND ($4::text[] IS NULL OR g.project = ANY($4))
          ORDER BY g.project, g.name LIMIT $3",
    )
    .bind(project)
    .bind(status.map(GraphStatus::as_str))
    .bind(limit)
    .bind(within)
    .fetch_all(pool)
    .await?)
}

/// Project names, sorted.
pub async fn project_names(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT project FROM smo.graphs ORDER BY project")
            .fetch_all(pool)
            .await?,
    )
}

/// A version stamp of a graph and its services: the row versions (`xmin`) PostgreSQL gives every
/// update, so any write to the graph or one of its services changes it, whatever clock the writer
/// used. `None` when there is no such graph. One round trip; lets readers cache renderings.
pub async fn graph_stamp(pool: &PgPool, name: &str) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT g.xmin::text || ':' || coalesce(
                    (SELECT string_agg(s.xmin::text, ',' ORDER BY s.position)
                       FROM smo.services s WHERE s.graph_id = g.id), '')
           FROM smo.graphs g WHERE g.name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?)
}
