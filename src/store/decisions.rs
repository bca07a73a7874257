//! The append-only decision log: one writer ([`add_decisions`]) and its readers.

use super::*;

/// One entry of the decision log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Decision {
    /// Sequence number.
    pub id: i64,
    /// Graph name.
    pub graph: String,
    /// Project.
    pub project: String,
    /// What it is about.
    #[sqlx(try_from = "String")]
    pub kind: DecisionKind,
    /// The job that took it.
    pub job_id: Option<Uuid>,
    /// One line for people.
    pub message: String,
    /// What it was based on.
    pub inputs: serde_json::Value,
    /// What it decided.
    pub outcome: serde_json::Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// A graph's decisions, newest first.
pub async fn decisions(
    pool: &PgPool,
    graph: &str,
    limit: i64,
) -> Result<Vec<Decision>, StoreError> {
    Ok(sqlx::query_as::<_, Decision>(
        "SELECT id, graph, project, kind, job_id, message, inputs, outcome, at
           FROM smo.decisions WHERE graph = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(graph)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// A graph's latest decision of `kind`.
pub async fn latest_decision(
    pool: &PgPool,
    graph: &str,
    kind: &str,
) -> Result<Option<Decision>, StoreError> {
    Ok(sqlx::query_as::<_, Decision>(
        "SELECT id, graph, project, kind, job_id, message, inputs, outcome, at
           FROM smo.decisions WHERE graph = $1 AND kind = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(graph)
    .bind(kind)
    .fetch_optional(pool)
    .await?)
}

/// A decision to append, for [`add_decisions`].
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// Graph name.
    pub graph: String,
    /// Its project.
    pub project: String,
    /// Job that took it.
    pub job_id: Option<Uuid>,
    /// What was decided, and why.
    pub decision: smo_core::model::Decision,
}

/// Appends many decisions in one statement, in the given order.
pub async fn add_decisions(
    conn: &mut PgConnection,
    decisions: &[NewDecision],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if decisions.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&NewDecision) -> String| decisions.iter().map(f).collect::<Vec<String>>();
    let jobs: Vec<Option<Uuid>> = decisions.iter().map(|d| d.job_id).collect();
    let json = |f: fn(&NewDecision) -> &serde_json::Value| {
        decisions.iter().map(|d| f(d).clone()).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO smo.decisions (graph, project, kind, job_id, message, inputs, outcome, at)
         SELECT graph, project, kind, job_id, message, inputs, outcome, $8
           FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])
                WITH ORDINALITY AS v(graph, project, kind, job_id, message, inputs, outcome, n)
          ORDER BY n",
    )
    .bind(col(|d| d.graph.clone()))
    .bind(col(|d| d.project.clone()))
    .bind(col(|d| d.decision.kind.to_string()))
    .bind(jobs)
    .bind(col(|d| d.decision.message.clone()))
    .bind(json(|d| &d.decision.inputs))
    .bind(json(|d| &d.decision.outcome))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
