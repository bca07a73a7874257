//! RFC 7807 problem documents: every error the API returns, with a stable `type` per error kind.

use poem_openapi::{ApiResponse, Object, payload::Json};

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
    /// No such graph or job.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the current state (name taken, graph being removed).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
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
    /// The database failed.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

fn doc(
    kind: &str,
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
    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(doc("bad-request", "Bad request", 400, detail.into(), None))
    }
    /// 401.
    pub fn unauthorized() -> Self {
        Self::Unauthorized(doc(
            "unauthorized",
            "Unauthorized",
            401,
            "a valid bearer token is required (Authorization: Bearer <token>)".into(),
            None,
        ))
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(doc("not-found", "Not found", 404, detail.into(), None))
    }
    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(doc("conflict", "Conflict", 409, detail.into(), None))
    }
    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::TooLarge(doc(
            "too-large",
            "Payload too large",
            413,
            detail.into(),
            None,
        ))
    }
    /// 422 with every problem.
    pub fn invalid(detail: impl Into<String>, problems: Vec<ProblemItem>) -> Self {
        Self::Invalid(doc(
            "invalid-descriptor",
            "Invalid input",
            422,
            detail.into(),
            Some(problems),
        ))
    }
    /// 502.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::BadGateway(doc("bad-gateway", "Bad gateway", 502, detail.into(), None))
    }
    /// 501.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::NotImplemented(doc(
            "not-implemented",
            "Not implemented",
            501,
            detail.into(),
            None,
        ))
    }
    /// 503.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable(doc(
            "unavailable",
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
            E::NameTaken { .. } | E::Removing(_) => Self::conflict(e.to_string()),
            E::Db(d) => {
                tracing::error!(error = %d, "database error");
                Self::unavailable("the database is unavailable; retry shortly")
            }
        }
    }
}

impl From<smo_jobs::Error> for ApiError {
    fn from(e: smo_jobs::Error) -> Self {
        match e {
            smo_jobs::Error::NotFound(_) => Self::not_found(e.to_string()),
            smo_jobs::Error::InvalidState { .. } => Self::conflict(e.to_string()),
            other => {
                tracing::error!(error = %other, "job queue error");
                Self::unavailable("the job queue is unavailable; retry shortly")
            }
        }
    }
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
            E::InvalidReference { .. } => Self::invalid(format!("artifact: {e}"), item("artifact")),
            _ => Self::invalid(format!("artifact: {e}"), item("artifact")),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::store::StoreError::Db(e).into()
    }
}
