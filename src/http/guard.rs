//! Who is calling, and may they. A bearer token (or, under `/console`, the session cookie) is
//! resolved to a [`Caller`] and put in the request's extensions; the grant the route table
//! declares is checked against it, with the project taken from the path or from the graph's (or
//! job's) row; and every change — any request but a read — leaves one row in the audit log.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use poem::{Endpoint, IntoResponse, Request, Response};
use sqlx::PgPool;
use uuid::Uuid;

use super::{ApiError, ROUTES, UNMATCHED, console};
use crate::{
    access::{self, ANONYMOUS, BOOTSTRAP, Caller, Need},
    store,
};

/// The session prefix of the bootstrap token (not hex, so no token's prefix can equal it).
const BOOTSTRAP_SESSION: &str = "bootstrap";

/// How often a token's `last_used_at` is written at most (a read must not write every time).
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Resolves tokens and sessions; one per server.
pub struct Guard {
    pool: PgPool,
    /// SHA-256 of the configured `api_token`; `None`: authentication is off, everyone is admin.
    bootstrap: Option<[u8; 32]>,
}

impl Guard {
    /// A guard for `token` (the bootstrap admin; none or empty turns authentication off).
    pub fn new(pool: PgPool, token: Option<&str>) -> Arc<Guard> {
        Arc::new(Guard {
            pool,
            bootstrap: token.filter(|t| !t.is_empty()).map(access::digest),
        })
    }

    /// True when requests need a token.
    pub fn on(&self) -> bool {
        self.bootstrap.is_some()
    }

    /// The caller a bearer token acts as; `None` for an unknown, revoked or expired token.
    pub async fn bearer(&self, token: &str) -> Result<Option<Caller>, ApiError> {
        let Some(bootstrap) = &self.bootstrap else {
            return Ok(Some(Caller::admin(ANONYMOUS)));
        };
        if access::same(&access::digest(token), bootstrap) {
            return Ok(Some(Caller::admin(BOOTSTRAP)));
        }
        let Some(p) = access::presented(token) else {
            return Ok(None);
        };
        let Some(row) = store::token_by_prefix(&self.pool, &p.prefix).await? else {
            return Ok(None);
        };
        if !access::same(&row.digest, &p.digest) {
            return Ok(None);
        }
        let now = Utc::now();
        let caller = row.caller(now);
        if caller.is_some() && row.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY) {
            let (pool, name) = (self.pool.clone(), row.name.clone());
            tokio::spawn(async move {
                if let Err(e) = store::touch_token(&pool, &name, now).await {
                    tracing::warn!(error = %e, "could not note a token's last use");
                }
            });
        }
        Ok(caller)
    }

    /// The session cookie for a token that signs in to the console, with its caller.
    pub async fn sign_in(&self, token: &str) -> Result<Option<(Caller, String)>, ApiError> {
        let Some(caller) = self.bearer(token).await? else {
            return Ok(None);
        };
        let cookie = match access::presented(token) {
            Some(p) if caller.name != BOOTSTRAP => access::session_cookie(&p.prefix, &p.digest),
            _ => access::session_cookie(BOOTSTRAP_SESSION, &access::digest(token)),
        };
        Ok(Some((caller, cookie)))
    }

    /// The caller a console session cookie acts as; `None` when it is forged, or its token was
    /// revoked, has expired or (the bootstrap one) was changed.
    pub async fn session(&self, cookie: &str) -> Result<Option<Caller>, ApiError> {
        let Some(bootstrap) = &self.bootstrap else {
            return Ok(Some(Caller::admin(ANONYMOUS)));
        };
        let Some((prefix, _)) = access::session_parts(cookie) else {
            return Ok(None);
        };
        let (digest, caller) = if prefix == BOOTSTRAP_SESSION {
            (bootstrap.to_vec(), Caller::admin(BOOTSTRAP))
        } else {
            let Some(row) = store::token_by_prefix(&self.pool, prefix).await? else {
                return Ok(None);
            };
            let Some(caller) = row.caller(Utc::now()) else {
                return Ok(None);
            };
            (row.digest, caller)
        };
        let want = access::session_cookie(prefix, &digest);
        Ok(access::same(want.as_bytes(), cookie.as_bytes()).then_some(caller))
    }

    /// The project a request acts in, when its route has one: the path's `{project}`, else the
    /// project of the graph (`{name}`) or of the job's graph (`{id}`). `None` when the route has
    /// none, or the graph or job does not exist.
    async fn project_of(&self, route: &str, path: &str) -> Result<Option<String>, ApiError> {
        let templ: Vec<&str> = route.trim_matches('/').split('/').collect();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (t, v) in templ.iter().zip(&parts) {
            let v = percent_decode(v);
            match *t {
                "{project}" => return Ok(Some(v)),
                "{name}" => return Ok(store::project_of_graph(&self.pool, &v).await?),
                "{id}" => {
                    let Ok(id) = Uuid::parse_str(&v) else {
                        return Ok(None);
                    };
                    return Ok(store::graph_of_job(&self.pool, id)
                        .await?
                        .and_then(|(_, p)| p));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// May `caller` call `route`? `Ok(project)` (the project the request acts in, when known)
    /// or the 403.
    pub async fn authorize(
        &self,
        caller: &Caller,
        need: Need,
        route: &str,
        path: &str,
        change: bool,
    ) -> Result<Option<String>, ApiError> {
        caller
            .allows(need, None)
            .map_err(|d| ApiError::forbidden(&d))?;
        // A caller of every project needs no lookup to read; changes look the project up for
        // the audit log.
        if caller.sees_all() && !change {
            return Ok(None);
        }
        let project = self.project_of(route, path).await?;
        let has_scope =
            route.contains("{name}") || route.contains("{project}") || route.contains("{id}");
        match (&project, has_scope) {
            (Some(p), _) => caller
                .allows(need, Some(p))
                .map_err(|d| ApiError::forbidden(&d))?,
            // A graph or job that does not exist: the handler answers 404. A job of no graph
            // (cluster-sync) is for callers of every project.
            (None, true) if route.contains("{id}") && !caller.sees_all() => {
                return Err(ApiError::forbidden(&access::Denied {
                    needs: None,
                    project: Some("*".into()),
                    caller: caller.describe(),
                }));
            }
            _ => {}
        }
        Ok(project)
    }

    /// Appends one audit row; a failure is logged, never the request's.
    pub async fn audit(&self, row: store::AuditRecord) {
        let res = async {
            let mut conn = self.pool.acquire().await?;
            store::audit(&mut conn, &row).await
        }
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, operation = %row.operation, "could not write the audit row");
        }
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// What the handler of a change noted for its audit row: the graph and the job it enqueued.
#[derive(Debug, Default, Clone)]
pub(super) struct Note {
    graph: Option<String>,
    project: Option<String>,
    job: Option<Uuid>,
    jobs: usize,
}

tokio::task_local! {
    static NOTE: Arc<Mutex<Note>>;
}

/// Notes the job a change enqueued (and its graph), for the request's audit row. Outside a
/// request (a worker, a test) it does nothing.
pub(super) fn note_job(graph: &str, project: Option<&str>, job: Uuid) {
    let _ = NOTE.try_with(|n| {
        let mut n = n.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        n.jobs += 1;
        n.job.get_or_insert(job);
        if !graph.is_empty() {
            n.graph.get_or_insert_with(|| graph.to_string());
        }
        if let Some(p) = project {
            n.project.get_or_insert_with(|| p.to_string());
        }
    });
}

/// The request id: the client's `x-request-id` when it is a sane token, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_string)
}

fn bearer_of(req: &Request) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // RFC 9110: the scheme is case-insensitive.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The grant `method route` needs: the route table's, any token for the document and Swagger
/// UI, and any token for paths no route serves (so a 404 tells nothing without one).
pub(super) fn need_of(method: &str, route: &str) -> Need {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .find(|(r, m, _)| *r == route && *m == method)
        .map_or(Need::Token, |(_, _, n)| *n)
}

/// Authenticates, authorizes and audits one request (console paths are authorized by the
/// console's own guard, from the caller put here).
pub(super) async fn call<E: Endpoint>(
    guard: &Guard,
    ep: &E,
    mut req: Request,
    route: &'static str,
) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let id = request_id(&req);
    let is_console = super::is_console(&path);
    let console_route = is_console.then(|| console::template_of(&method, &path));
    let need = match &console_route {
        Some(c) => c.as_ref().map_or(Need::Token, |(_, need)| *need),
        None => need_of(&method, route),
    };
    let caller = match bearer_of(&req) {
        Some(t) => guard.bearer(t).await?,
        None if is_console => match console::cookie_of(&req) {
            Some(c) => guard.session(&c).await?,
            None if !guard.on() => Some(Caller::admin(ANONYMOUS)),
            None => None,
        },
        None if !guard.on() => Some(Caller::admin(ANONYMOUS)),
        None => None,
    };
    let change = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS")
        && need != Need::Open
        && (route != UNMATCHED || console_route.as_ref().is_some_and(Option::is_some));
    let operation = match &console_route {
        Some(Some((t, _))) => format!("{method} {t}"),
        _ => format!("{method} {route}"),
    };
    let source = match (is_console, route) {
        (true, _) => "console",
        (_, "/alerts") => "webhook",
        _ => "api",
    };
    let mut project = None;
    if let Some(c) = &caller {
        req.extensions_mut().insert(c.clone());
    }
    // The console's graph and job paths act on the same records as the API's.
    let scope_route = if is_console {
        console_api_route(&path)
    } else {
        route
    };
    let graph = graph_in(scope_route, &path);
    if need != Need::Open {
        let Some(c) = &caller else {
            if is_console {
                return Ok(with_id(console::sign_in_first(), &id));
            }
            let e = match bearer_of(&req) {
                Some(_) => ApiError::refused_token(),
                None => ApiError::unauthorized(),
            };
            let mut r = e.into_response();
            r.headers_mut().insert(
                "www-authenticate",
                poem::http::HeaderValue::from_static("Bearer realm=\"smo\""),
            );
            return Ok(with_id(r, &id));
        };
        match guard.authorize(c, need, scope_route, &path, change).await {
            Ok(p) => project = p,
            Err(e) => {
                let r = if is_console {
                    console::refused(e)
                } else {
                    e.into_response()
                };
                if change {
                    let project = guard.project_of(scope_route, &path).await.ok().flatten();
                    let note = Note::default();
                    guard
                        .audit(row(
                            c,
                            source,
                            &operation,
                            project,
                            graph,
                            &id,
                            r.status(),
                            &note,
                        ))
                        .await;
                }
                return Ok(with_id(r, &id));
            }
        }
    }
    let note = Arc::new(Mutex::new(Note::default()));
    let resp = NOTE
        .scope(note.clone(), async {
            ep.call(req).await.map(IntoResponse::into_response)
        })
        .await;
    if change && let Some(c) = &caller {
        let note = note
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let status = match &resp {
            Ok(r) => r.status(),
            Err(e) => e.status(),
        };
        let is_session_change = console_route
            .as_ref()
            .and_then(Option::as_ref)
            .is_some_and(|(t, _)| matches!(t.as_str(), "/console/login" | "/console/logout"));
        if !is_session_change {
            guard
                .audit(row(
                    c, source, &operation, project, graph, &id, status, &note,
                ))
                .await;
        }
    }
    resp.map(|r| with_id(r, &id))
}

/// The graph a path names, for routes with a `{name}`.
fn graph_in(route: &str, path: &str) -> Option<String> {
    let at = route
        .trim_matches('/')
        .split('/')
        .position(|t| t == "{name}")?;
    path.trim_matches('/')
        .split('/')
        .nth(at)
        .map(percent_decode)
}

/// The API route whose path parameters a console path shares (`/console/graphs/:name/…`).
fn console_api_route(path: &str) -> &'static str {
    if path.starts_with("/console/graphs/") {
        "/console/graphs/{name}"
    } else if path.starts_with("/console/jobs/") {
        "/console/jobs/{id}"
    } else {
        UNMATCHED
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    c: &Caller,
    source: &str,
    operation: &str,
    project: Option<String>,
    graph: Option<String>,
    id: &str,
    status: poem::http::StatusCode,
    note: &Note,
) -> store::AuditRecord {
    store::AuditRecord {
        id: 0,
        at: Utc::now(),
        token: c.name.clone(),
        source: source.into(),
        operation: operation.into(),
        project: project.or_else(|| note.project.clone()),
        graph: graph.or_else(|| note.graph.clone()),
        request_id: Some(id.into()),
        status: i32::from(status.as_u16()),
        job_id: note.job,
        detail: (note.jobs > 1).then(|| format!("{} jobs", note.jobs)),
    }
}

fn with_id(mut r: Response, id: &str) -> Response {
    if let Ok(v) = poem::http::HeaderValue::from_str(id) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}
