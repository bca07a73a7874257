//! API tokens (digests only) and the audit log.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::access::{Caller, Presented, Projects, Role};

/// A token as listed: never its digest.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRecord {
    pub name: String,
    pub prefix: String,
    pub role: String,
    /// `None`: every project.
    pub projects: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a request needs to know of the token it presented.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenAuth {
    pub name: String,
    pub digest: Vec<u8>,
    pub role: String,
    pub projects: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenAuth {
    /// The caller this token acts as, when it is live at `now`.
    pub fn caller(&self, now: DateTime<Utc>) -> Option<Caller> {
        if self.revoked_at.is_some() || self.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        let role = Role::parse(&self.role).ok()?;
        Some(Caller {
            name: self.name.clone(),
            role,
            projects: match (&self.projects, role.is_scoped()) {
                (Some(ps), true) => Projects::Only(ps.clone()),
                _ => Projects::All,
            },
        })
    }
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub presented: &'a Presented,
    pub role: Role,
    pub projects: Option<&'a [String]>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a new token; a taken name is [`StoreError::TokenNameTaken`].
pub async fn create_token(
    conn: &mut PgConnection,
    t: &NewToken<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let r = sqlx::query(
        "INSERT INTO smo.api_tokens (name, prefix, digest, role, projects, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.name)
    .bind(&t.presented.prefix)
    .bind(&t.presented.digest[..])
    .bind(t.role.as_str())
    .bind(t.projects)
    .bind(t.expires_at)
    .bind(now)
    .execute(&mut *conn)
    .await;
    match r {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::TokenNameTaken(t.name.to_string()))
        }
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Every token, by name (revoked ones too: they say when).
pub async fn list_tokens(pool: &PgPool) -> Result<Vec<TokenRecord>, StoreError> {
    Ok(sqlx::query_as::<_, TokenRecord>(
        "SELECT name, prefix, role, projects, expires_at, created_at, last_used_at, revoked_at
           FROM smo.api_tokens ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes a token by name: true when a live one was revoked.
pub async fn revoke_token(
    conn: &mut PgConnection,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE smo.api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

/// The token with this prefix, for checking a presented token.
pub async fn token_by_prefix(pool: &PgPool, prefix: &str) -> Result<Option<TokenAuth>, StoreError> {
    Ok(sqlx::query_as::<_, TokenAuth>(
        "SELECT name, digest, role, projects, expires_at, revoked_at, last_used_at
           FROM smo.api_tokens WHERE prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await?)
}

/// Notes that a token was used (callers do it at most once a minute per token).
pub async fn touch_token(pool: &PgPool, name: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("UPDATE smo.api_tokens SET last_used_at = $2 WHERE name = $1")
        .bind(name)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// One change, as the audit log keeps it.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The token's name.
    pub token: String,
    /// `api`, `console`, `webhook` or `admin`.
    pub source: String,
    pub operation: String,
    pub project: Option<String>,
    pub graph: Option<String>,
    pub request_id: Option<String>,
    pub status: i32,
    pub job_id: Option<Uuid>,
    pub detail: Option<String>,
}

/// Appends one row to the audit log (`id` is assigned).
pub async fn audit(conn: &mut PgConnection, r: &AuditRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO smo.audit_log (at, token, source, operation, project, graph, request_id, status, job_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(r.at)
    .bind(&r.token)
    .bind(&r.source)
    .bind(&r.operation)
    .bind(&r.project)
    .bind(&r.graph)
    .bind(&r.request_id)
    .bind(r.status)
    .bind(r.job_id)
    .bind(&r.detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Which audit rows to read: newest first, before `before` (an id) when paging.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub project: Option<String>,
    pub token: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// A page of the audit log, newest first.
pub async fn audit_log(pool: &PgPool, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
    Ok(sqlx::query_as::<_, AuditRecord>(
        "SELECT id, at, token, source, operation, project, graph, request_id, status, job_id, detail
           FROM smo.audit_log
          WHERE ($1::text IS NULL OR project = $1) AND ($2::text IS NULL OR token = $2)
            AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
            AND ($5::bigint IS NULL OR id < $5)
          ORDER BY id DESC LIMIT $6",
    )
    .bind(&f.project)
    .bind(&f.token)
    .bind(f.since)
    .bind(f.until)
    .bind(f.before)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

/// Deletes audit rows older than `before`; how many went.
pub async fn prune_audit(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM smo.audit_log WHERE at < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected())
}

/// The project of a graph, if the graph exists.
pub async fn project_of_graph(pool: &PgPool, graph: &str) -> Result<Option<String>, StoreError> {
    // A removed graph's decisions are kept, and say which project it was in.
    Ok(sqlx::query_scalar(
        "SELECT coalesce((SELECT project FROM smo.graphs WHERE name = $1),
                         (SELECT project FROM smo.decisions WHERE graph = $1 ORDER BY id DESC LIMIT 1))",
    )
    .bind(graph)
    .fetch_one(pool)
    .await?)
}

/// The graph and project a job belongs to (through `smo.graph_jobs`), if it belongs to one.
pub async fn graph_of_job(
    pool: &PgPool,
    job: Uuid,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    Ok(sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT j.graph, coalesce(g.project,
                (SELECT d.project FROM smo.decisions d WHERE d.graph = j.graph ORDER BY d.id DESC LIMIT 1))
           FROM smo.graph_jobs j LEFT JOIN smo.graphs g ON g.name = j.graph
          WHERE j.job_id = $1 LIMIT 1",
    )
    .bind(job)
    .fetch_optional(pool)
    .await?)
}
