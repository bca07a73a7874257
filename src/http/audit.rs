//! `/whoami` and `/audit`: who a token acts as, and who changed what.

use super::*;
use crate::access::Caller;

route_type!(
    /// `/whoami`, `/audit` routes.
    AuditApi
);

/// The caller the request's token acts as (authentication off: the anonymous admin).
pub(super) fn caller_of(req: &poem::Request) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(|| Caller::admin(crate::access::ANONYMOUS))
}

#[OpenApi]
impl AuditApi {
    /// The token this request is made with: its name, role and projects (`["*"]`: every project).
    #[oai(path = "/whoami", method = "get", operation_id = "whoami")]
    async fn whoami(&self, req: &poem::Request) -> Json<WhoAmI> {
        let c = caller_of(req);
        Json(WhoAmI {
            name: c.name,
            role: c.role.to_string(),
            projects: c
                .projects
                .list()
                .map_or_else(|| vec!["*".to_string()], <[String]>::to_vec),
        })
    }

    /// The audit log, newest first: one entry per change made through the API, the console, the
    /// Alertmanager webhook or smo-admin. `before` (an entry's id) pages; `since`/`until` bound the
    /// time (RFC 3339).
    #[oai(path = "/audit", method = "get", operation_id = "auditLog")]
    async fn audit(
        &self,
        project: Query<Option<String>>,
        token: Query<Option<String>>,
        since: Query<Option<DateTime<Utc>>>,
        until: Query<Option<DateTime<Utc>>>,
        #[oai(validator(minimum(value = "1")))] before: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<AuditEntry>>> {
        // A name no project or token can have (PostgreSQL text holds no NUL) has no entries.
        if [&project.0, &token.0]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| v.contains('\0')))
        {
            return Ok(Json(Vec::new()));
        }
        let rows = store::audit_log(
            &self.pool,
            &store::AuditFilter {
                project: project.0,
                token: token.0,
                since: since.0,
                until: until.0,
                before: before.0,
                limit: limit.0.unwrap_or(100),
            },
        )
        .await?;
        Ok(Json(rows.into_iter().map(AuditEntry::from).collect()))
    }
}

/// Who a token acts as.
#[derive(Debug, Object)]
pub struct WhoAmI {
    /// The token's name (`api_token`: the configured bootstrap token; `anonymous`: the server has
    /// no token).
    pub name: String,
    /// viewer | deployer | admin | alerts | metrics.
    pub role: String,
    /// The projects it acts in; `["*"]` for every project.
    pub projects: Vec<String>,
}

/// One change, as the audit log keeps it.
#[derive(Debug, Object)]
pub struct AuditEntry {
    /// Entry id (increasing; `before` pages by it).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The token's name.
    pub token: String,
    /// api | console | webhook | admin.
    pub source: String,
    /// `METHOD /route/{template}`, or the smo-admin command.
    pub operation: String,
    /// The project acted in, when known.
    #[oai(skip_serializing_if_is_none)]
    pub project: Option<String>,
    /// The graph acted on, when known.
    #[oai(skip_serializing_if_is_none)]
    pub graph: Option<String>,
    /// The request's id (its `x-request-id`).
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
    /// The HTTP status answered (smo-admin: 0 done, 1 failed).
    pub status: i32,
    /// The job it enqueued or acted on.
    #[oai(skip_serializing_if_is_none)]
    pub job_id: Option<Uuid>,
    /// More, when there is more to say.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

impl From<store::AuditRecord> for AuditEntry {
    fn from(r: store::AuditRecord) -> Self {
        Self {
            id: r.id,
            at: r.at,
            token: r.token,
            source: r.source,
            operation: r.operation,
            project: r.project,
            graph: r.graph,
            request_id: r.request_id,
            status: r.status,
            job_id: r.job_id,
            detail: r.detail,
        }
    }
}
