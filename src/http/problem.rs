//! RFC 7807 problem documents: every error the API returns, with a stable `type` per error kind.

use poem_openapi::{ApiResponse, Object, payload::Json};
use smo_core::model::ProblemKind;

/// One problem inside a document (a descriptor field, usually).
#[derive(Debug, Clone, Object)]
pub struct ProblemItem {
    /// Where: `services[2].deployment.intent.compute.cpu`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// An `application/problem+json` document.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A stable identifier of the kind of problem, e.g. `urn:smo:problem:invalid-descriptor`.
    #[oai(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// This occurrence, in one line.
    pub detail: String,
    /// Every problem found, when there are several (validation).
    #[oai(skip_serializing_if_is_none)]
    pub problems: Option<Vec<ProblemItem>>,
}

/// The API's errors; each variant is one HTTP status with a problem document.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request (bad path parameter, unreadable body).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing or wrong bearer token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The token is valid but lacks the grant (role, or project) the operation needs; the
    /// problem names the grant.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such graph or job.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the current state (name taken, graph being removed).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The body did not arrive within the body timeout.
    #[oai(status = 408, content_type = "application/problem+json")]
    Timeout(Json<Problem>),
    /// The body is larger than the descriptor limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// The descriptor (or another input) is invalid; every problem is listed.
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    /// The registry holding a referenced artifact failed or hung.
    #[oai(status = 502, content_type = "application/problem+json")]
    BadGateway(Json<Problem>),
    /// A feature this server does not provide.
    #[oai(status = 501, content_type = "application/problem+json")]
    NotImplemented(Json<Problem>),
    /// A fault of smo itself (a query it got wrong, a row it cannot read); logged at ERROR.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// A dependency (the database) is down or unreachable: retry shortly.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

fn doc(
    kind: ProblemKind,
    title: &str,
    status: u16,
    detail: String,
    problems: Option<Vec<ProblemItem>>,
) -> Json<Problem> {
    Json(Problem {
        kind: format!("urn:smo:problem:{kind}"),
        title: title.into(),
        status,
        detail,
        problems,
    })
}

impl ApiError {
    /// The same error with a more specific problem `type` (`urn:smo:problem:<kind>`): the
    /// status says what class of error it is, the type says its cause (see README's table).
    pub fn kind(mut self, kind: ProblemKind) -> Self {
        self.problem_mut().kind = format!("urn:smo:problem:{kind}");
        self
    }

    /// The problem document, whatever the status.
    pub fn problem_mut(&mut self) -> &mut Problem {
        match self {
            Self::BadRequest(d)
            | Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::Timeout(d)
            | Self::TooLarge(d)
            | Self::Invalid(d)
            | Self::BadGateway(d)
            | Self::NotImplemented(d)
            | Self::Internal(d)
            | Self::Unavailable(d) => &mut d.0,
        }
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(doc(
            ProblemKind::BadRequest,
            "Bad request",
            400,
            detail.into(),
            None,
        ))
    }
    /// 401.
    pub fn unauthorized() -> Self {
        Self::Unauthorized(doc(
            ProblemKind::Unauthorized,
            "Unauthorized",
            401,
            "a valid bearer token is required (Authorization: Bearer <token>)".into(),
            None,
        ))
    }
    /// 403 naming the grant the caller lacks.
    pub fn forbidden(denied: &crate::access::Denied) -> Self {
        let mut problems = Vec::new();
        if let Some(role) = denied.needs {
            problems.push(ProblemItem {
                path: "role".into(),
                message: format!("needs {role}"),
            });
        }
        if let Some(p) = &denied.project {
            problems.push(ProblemItem {
                path: "project".into(),
                message: format!("needs a grant on project {p:?}"),
            });
        }
        Self::Forbidden(doc(
            ProblemKind::Forbidden,
            "Forbidden",
            403,
            denied.to_string(),
            Some(problems),
        ))
    }
    /// 401 for a token that was presented and refused.
    pub fn refused_token() -> Self {
        Self::Unauthorized(doc(
            ProblemKind::Unauthorized,
            "Unauthorized",
            401,
            "the bearer token is not valid here (unknown, revoked or expired)".into(),
            None,
        ))
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(doc(
            ProblemKind::NotFound,
            "Not found",
            404,
            detail.into(),
            None,
        ))
    }
    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(doc(
            ProblemKind::Conflict,
            "Conflict",
            409,
            detail.into(),
            None,
        ))
    }
    /// 408.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self::Timeout(doc(
            ProblemKind::BodyTimeout,
            "Request timeout",
            408,
            format!("the request body did not arrive within {limit:?}"),
            None,
        ))
    }
    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::TooLarge(doc(
            ProblemKind::TooLarge,
            "Payload too large",
            413,
            detail.into(),
            None,
        ))
    }
    /// 422 with every problem.
    pub fn invalid(detail: impl Into<String>, problems: Vec<ProblemItem>) -> Self {
        Self::Invalid(doc(
            ProblemKind::InvalidDescriptor,
            "Invalid input",
            422,
            detail.into(),
            Some(problems),
        ))
    }
    /// 502.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::BadGateway(doc(
            ProblemKind::BadGateway,
            "Bad gateway",
            502,
            detail.into(),
            None,
        ))
    }
    /// 501.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::NotImplemented(doc(
            ProblemKind::NotImplemented,
            "Not implemented",
            501,
            detail.into(),
            None,
        ))
    }
    /// 500.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal(doc(
            ProblemKind::Internal,
            "Internal error",
            500,
            detail.into(),
            None,
        ))
    }
    /// 503.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable(doc(
            ProblemKind::Unavailable,
            "Service unavailable",
            503,
            detail.into(),
            None,
        ))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::GraphNotFound(_) => Self::not_found(e.to_string()),
            E::NameTaken { .. } => Self::conflict(e.to_string()).kind(ProblemKind::NameTaken),
            E::Removing(_) => Self::conflict(e.to_string()).kind(ProblemKind::GraphRemoving),
            E::TokenNameTaken(_) => Self::conflict(e.to_string()).kind(ProblemKind::NameTaken),
            E::Descriptor { .. } => {
                tracing::error!(error = %e, "a stored descriptor does not load");
                Self::internal(e.to_string())
            }
            E::Db(d) => from_db(&d, "the database is unavailable; retry shortly"),
        }
    }
}

impl From<smo_jobs::Error> for ApiError {
    fn from(e: smo_jobs::Error) -> Self {
        match e {
            smo_jobs::Error::NotFound(_) => Self::not_found(e.to_string()),
            smo_jobs::Error::InvalidState { .. } => {
                Self::conflict(e.to_string()).kind(ProblemKind::InvalidJobState)
            }
            smo_jobs::Error::Db(d) => from_db(&d, "the job queue is unavailable; retry shortly"),
            other => {
                tracing::error!(error = %other, "job queue error");
                Self::internal(format!("job queue: {other}"))
            }
        }
    }
}

/// Whose fault a database error is: a value PostgreSQL cannot store is the client's (422), a
/// constraint or a lost race with a concurrent request is a conflict (409), only a database that
/// cannot be reached or is shutting down is 503, and anything else is smo's own fault (500).
pub fn from_db(e: &sqlx::Error, unavailable: &str) -> ApiError {
    match db_fault(e) {
        DbFault::Client => ApiError::invalid(
            "the request holds a value the database cannot store (e.g. a NUL character)",
            vec![ProblemItem {
                path: "body".into(),
                message: first_db_line(e),
            }],
        )
        .kind(ProblemKind::UnstorableValue),
        DbFault::Conflict => ApiError::conflict(format!(
            "a concurrent request changed the same record; retry ({})",
            first_db_line(e)
        ))
        .kind(ProblemKind::ConcurrentChange),
        DbFault::Unavailable => {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::unavailable(unavailable)
        }
        DbFault::Ours => {
            tracing::error!(error = %e, "database error");
            ApiError::internal("an internal error occurred; it was logged")
        }
    }
}

/// The classes of [`from_db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFault {
    /// Data the database rejects (SQLSTATE class 22).
    Client,
    /// Integrity constraints (23), serialization failures and deadlocks (40).
    Conflict,
    /// Connections, pool, shutdown, resources (08, 53, 57P0x; I/O, TLS, pool timeouts).
    Unavailable,
    /// Everything else.
    Ours,
}

/// Classifies a database error by SQLSTATE or by how it failed.
pub fn db_fault(e: &sqlx::Error) -> DbFault {
    use sqlx::Error as E;
    match e {
        E::Database(d) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            match code.get(..2) {
                Some("22") => DbFault::Client,
                Some("23" | "40") => DbFault::Conflict,
                Some("08" | "53" | "57") => DbFault::Unavailable,
                _ => DbFault::Ours,
            }
        }
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            DbFault::Unavailable
        }
        E::Protocol(_) => DbFault::Unavailable,
        _ => DbFault::Ours,
    }
}

fn first_db_line(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().lines().next().unwrap_or_default().to_string(),
        other => other.to_string(),
    }
}

/// Refuses a NUL character: PostgreSQL text cannot hold one, and no name or label needs it.
pub fn no_nul(path: &str, v: &str) -> Result<(), ApiError> {
    if v.contains('\0') {
        return Err(ApiError::invalid(
            format!("{path} contains a NUL character"),
            vec![ProblemItem {
                path: path.into(),
                message: "NUL characters cannot be stored".into(),
            }],
        )
        .kind(ProblemKind::UnstorableValue));
    }
    Ok(())
}

/// Every place in a JSON document where a key or string holds a NUL character, as
/// `services[2].id` paths (at most `limit`).
pub fn nul_paths(v: &serde_json::Value, limit: usize) -> Vec<String> {
    fn walk(v: &serde_json::Value, at: &mut String, out: &mut Vec<String>, limit: usize) {
        use serde_json::Value as V;
        if out.len() >= limit {
            return;
        }
        match v {
            V::String(s) if s.contains('\0') => out.push(at.clone()),
            V::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("[{i}]"));
                    walk(x, at, out, limit);
                    at.truncate(len);
                }
            }
            V::Object(m) => {
                for (k, x) in m {
                    let len = at.len();
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(&k.replace('\0', "\\0"));
                    if k.contains('\0') && out.len() < limit {
                        out.push(at.clone());
                    }
                    walk(x, at, out, limit);
                    at.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out, limit);
    out
}

/// 422 naming every field of `v` that holds a NUL character, if any does.
pub fn no_nul_in(v: &serde_json::Value) -> Result<(), ApiError> {
    let paths = nul_paths(v, 20);
    if paths.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        format!("{} contains a NUL character", paths[0]),
        paths
            .into_iter()
            .map(|path| ProblemItem {
                path,
                message: "NUL characters cannot be stored".into(),
            })
            .collect(),
    )
    .kind(ProblemKind::UnstorableValue))
}

impl From<crate::oci::OciError> for ApiError {
    fn from(e: crate::oci::OciError) -> Self {
        use crate::oci::OciError as E;
        let item = |path: &str| {
            vec![ProblemItem {
                path: path.into(),
                message: e.to_string(),
            }]
        };
        match &e {
            E::TooLarge { .. } => Self::too_large(e.to_string()),
            E::Timeout { .. } | E::Unreachable { .. } => Self::bad_gateway(e.to_string()),
            E::InvalidReference { .. } => Self::invalid(format!("artifact: {e}"), item("artifact"))
                .kind(ProblemKind::InvalidReference),
            _ => Self::invalid(format!("artifact: {e}"), item("artifact"))
                .kind(ProblemKind::InvalidArtifact),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::store::StoreError::Db(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_found_by_path() {
        let v = serde_json::json!({"hdaGraph": {"id": "g", "services": [
            {"id": "a"}, {"id": "b\u{0}"}], "description": "x\u{0}y"}});
        assert_eq!(
            nul_paths(&v, 10),
            vec![
                "hdaGraph.description".to_string(),
                "hdaGraph.services[1].id".into()
            ]
        );
        assert!(no_nul_in(&serde_json::json!({"a": ["fine"]})).is_ok());
        assert!(matches!(
            no_nul("name", "a\u{0}"),
            Err(ApiError::Invalid(_))
        ));
    }

    #[test]
    fn the_problem_type_names_the_cause_and_the_status_its_class() {
        let mut e = ApiError::conflict("taken").kind(ProblemKind::NameTaken);
        assert_eq!(e.problem_mut().kind, "urn:smo:problem:name-taken");
        assert!(matches!(e, ApiError::Conflict(_)));
        let mut taken: ApiError = crate::store::StoreError::NameTaken {
            name: "g".into(),
            project: "p".into(),
        }
        .into();
        let mut removing: ApiError = crate::store::StoreError::Removing("g".into()).into();
        assert_ne!(taken.problem_mut().kind, removing.problem_mut().kind);
    }

    #[test]
    fn connectivity_is_unavailable_and_the_rest_is_not() {
        assert_eq!(db_fault(&sqlx::Error::PoolTimedOut), DbFault::Unavailable);
        assert_eq!(db_fault(&sqlx::Error::RowNotFound), DbFault::Ours);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(db_fault(&sqlx::Error::Io(io)), DbFault::Unavailable);
    }
}
