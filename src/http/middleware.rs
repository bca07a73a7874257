//! Around every route: body limits and timeouts, the route table with each operation's grant
//! (who may call it is `guard`'s business), problem documents for routing errors (404/405, NUL
//! bytes in paths), and the application that nests API, Swagger UI, spec and console.

use super::*;
use crate::access::Need;
use smo_core::model::ProblemKind;

pub(super) fn too_large() -> ApiError {
    ApiError::too_large(format!("the request body exceeds {MAX_BODY_BYTES} bytes"))
}

/// Every operation the API serves: route template, method, and the grant it needs (see
/// [`crate::access`]). Kept equal to the OpenAPI document by a test; the document states each
/// operation's grant from here; metric labels and a 405's `Allow` come from it too.
/// `tests/it/teams.rs` walks every route with every role and checks the answer against this.
pub(super) const ROUTES: &[(&str, &str, Need)] = &[
    ("/healthz", "GET", Need::Open),
    ("/readyz", "GET", Need::Open),
    ("/metrics", "GET", Need::Metrics),
    ("/whoami", "GET", Need::Token),
    ("/audit", "GET", Need::Admin),
    ("/clusters", "GET", Need::Read),
    ("/clusters/sync", "POST", Need::Admin),
    ("/clusters/history", "GET", Need::Read),
    ("/project/{project}/graphs", "GET", Need::Read),
    ("/project/{project}/graphs", "POST", Need::Deploy),
    ("/graphs", "GET", Need::Read),
    ("/graphs/{name}", "GET", Need::Read),
    ("/graphs/{name}", "DELETE", Need::Deploy),
    ("/graphs/{name}/start", "POST", Need::Deploy),
    ("/graphs/{name}/stop", "POST", Need::Deploy),
    ("/graphs/{name}/placement", "POST", Need::Deploy),
    ("/graphs/{name}/jobs", "GET", Need::Read),
    ("/graphs/{name}/history", "GET", Need::Read),
    ("/alerts", "POST", Need::Alerts),
    ("/jobs/{id}", "GET", Need::Read),
];

/// The methods `route` serves, as a 405's `Allow` lists them.
pub(super) fn methods_of(route: &str) -> Option<String> {
    let methods: Vec<&str> = ROUTES
        .iter()
        .filter(|(r, _, _)| *r == route)
        .map(|(_, m, _)| *m)
        .collect();
    (!methods.is_empty()).then(|| methods.join(", "))
}

/// The label of paths no route serves: one series for every 404 of an unknown path, so a
/// scanner cannot grow /metrics without bound.
pub(super) const UNMATCHED: &str = "unmatched";

/// The route template of a path, so metrics do not get one series per graph or job, and never a
/// label from an unknown path.
pub(super) fn route_of(path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let templ: Vec<&str> = match parts.as_slice() {
        ["ui" | "docs", ..] => return "ui",
        ["console", ..] => return "console",
        ["openapi.yaml"] => return "/openapi.yaml",
        ["graphs", _, rest @ ..] => [&["graphs", "{name}"][..], rest].concat(),
        ["jobs", _] => vec!["jobs", "{id}"],
        ["project", _, rest @ ..] => [&["project", "{project}"][..], rest].concat(),
        other => other.to_vec(),
    };
    let templ = format!("/{}", templ.join("/"));
    ROUTES
        .iter()
        .find(|(r, _, _)| *r == templ)
        .map_or(UNMATCHED, |(r, _, _)| *r)
}

/// True for the console's paths (`/console` and below).
pub(super) fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// True when the client prefers HTML (a browser's navigation), not an API client.
pub(super) fn accepts_html(req: &Request) -> bool {
    req.method() == poem::http::Method::GET
        && req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The method label: the standard methods by name, any other (clients may send any token) as one.
pub(super) fn method_of(method: &poem::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// The name of the path parameter that holds a (percent-encoded) NUL character, if one does:
/// PostgreSQL text cannot hold NUL, so such a request is the client's mistake (422), never a
/// database failure.
pub(super) fn nul_path_parameter(path: &str, route: &str) -> Option<&'static str> {
    if !path.contains("%00") {
        return None;
    }
    let templates: Vec<&'static str> = ROUTES
        .iter()
        .find(|(r, _, _)| *r == route)
        .map(|(r, _, _)| r.trim_matches('/').split('/').collect())
        .unwrap_or_default();
    let at = path
        .trim_matches('/')
        .split('/')
        .position(|seg| seg.contains("%00"))?;
    Some(
        templates
            .get(at)
            .and_then(|t| t.strip_prefix('{'))
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or("path"),
    )
}

/// A problem document built outside poem-openapi (errors of routing and of poem itself).
pub(super) fn problem_response(
    status: StatusCode,
    kind: ProblemKind,
    title: &str,
    detail: String,
) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:smo:problem:{kind}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(body.to_string())
}

/// Turns any poem error (unparsable path parameter, unknown route, body too large) into a problem
/// document with the same status.
async fn problem_for(err: poem::Error) -> Response {
    let status = err.status();
    let detail = err.to_string();
    // A path or query parameter the schema refuses: name it, as validation problems do.
    let param = err
        .downcast_ref::<poem_openapi::error::ParseParamError>()
        .map(|p| (p.name, p.reason.clone()));
    // Our own errors already are problem documents: keep them as they are.
    let original = err.into_response();
    if original
        .content_type()
        .is_some_and(|c| c.starts_with("application/problem+json"))
    {
        return original;
    }
    let (kind, title) = match status {
        StatusCode::NOT_FOUND => (ProblemKind::NotFound, "Not found"),
        StatusCode::PAYLOAD_TOO_LARGE => (ProblemKind::TooLarge, "Payload too large"),
        StatusCode::METHOD_NOT_ALLOWED => (ProblemKind::MethodNotAllowed, "Method not allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (ProblemKind::UnsupportedMediaType, "Unsupported media type")
        }
        s if s.is_server_error() => (ProblemKind::Internal, "Internal error"),
        _ => (ProblemKind::BadRequest, "Bad request"),
    };
    let mut resp = problem_response(status, kind, title, detail.clone());
    if let Some((name, reason)) = param {
        let body = serde_json::json!({
            "type": format!("urn:smo:problem:{kind}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
            "problems": [{"path": name, "message": reason}],
        });
        resp.set_body(body.to_string());
    }
    resp
}

/// The whole HTTP application: API, Swagger UI at /ui and /docs, the spec at /openapi.yaml, the
/// console at /console (its replica charts from `prometheus` when given), optional bearer-token
/// auth, a body-size guard and problem documents for every error.
pub fn app(
    pool: PgPool,
    token: Option<String>,
    registry: crate::settings::RegistrySettings,
    body_read_timeout: Duration,
    console: console::ConsoleSettings,
) -> impl Endpoint {
    let guard = guard::Guard::new(pool.clone(), token.as_deref());
    let shared = SmoApi::new(pool, registry);
    let console = console::routes(shared.clone(), guard.clone(), console);
    let api = service_of(shared);
    let ui = api.swagger_ui();
    let docs = api.swagger_ui();
    let spec = {
        let yaml = Arc::new(document_yaml(&api));
        poem::endpoint::make_sync(move |_| {
            Response::builder()
                .content_type("application/yaml")
                .body(yaml.as_str().to_string())
        })
    };
    Route::new()
        .nest("/", api)
        .nest("/ui", ui)
        .nest("/docs", docs)
        .nest("/console", console)
        .at("/openapi.yaml", spec)
        .around(move |ep, mut req: Request| {
            let guard = guard.clone();
            async move {
                // Bound every body: by its declared length, then by reading at most the limit
                // within the body timeout (a body that trickles in holds a connection and a
                // parse slot's worth of memory).
                let declared = req
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<usize>().ok());
                if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
                    return Ok(too_large().into_response());
                }
                if declared != Some(0) {
                    let body = req.take_body();
                    let read = body.into_bytes_limit(MAX_BODY_BYTES);
                    match tokio::time::timeout(body_read_timeout, read).await {
                        Ok(Ok(b)) => req.set_body(b),
                        Ok(Err(_)) => return Ok(too_large().into_response()),
                        Err(_) => {
                            return Ok(ApiError::body_timeout(body_read_timeout).into_response());
                        }
                    }
                }
                // A browser asking for the root gets the console.
                if req.uri().path() == "/" && accepts_html(&req) {
                    return Ok(Response::builder()
                        .status(StatusCode::SEE_OTHER)
                        .header("location", "/console")
                        .finish());
                }
                let (method, route) = (method_of(req.method()), route_of(req.uri().path()));
                if let Some(field) = nul_path_parameter(req.uri().path(), route) {
                    return Ok(problem::no_nul(field, "\0").unwrap_err().into_response());
                }
                // The descriptor and webhook bodies are read whatever their type: a client that
                // sends none gets the same answer as one that says octet-stream.
                if !req.headers().contains_key("content-type")
                    && matches!(req.method().as_str(), "POST" | "PUT" | "PATCH")
                {
                    req.headers_mut().insert(
                        "content-type",
                        poem::http::HeaderValue::from_static("application/octet-stream"),
                    );
                }
                let (asked, path) = (req.method().to_string(), req.uri().path().to_string());
                let started = std::time::Instant::now();
                let resp = guard::call(&guard, &ep, req, route).await;
                // RFC 9110: a 405 lists the methods the route has.
                let mut resp = match resp {
                    Ok(r) => r,
                    Err(e) => problem_for(e).await,
                };
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(methods) = methods_of(route)
                {
                    // The reference's Flask-era clients GET what is now a POST: name the route.
                    resp = problem_response(
                        StatusCode::METHOD_NOT_ALLOWED,
                        ProblemKind::MethodNotAllowed,
                        "Method not allowed",
                        format!("{asked} {path} is not served; use {methods} {path}"),
                    );
                    if let Ok(v) = poem::http::HeaderValue::from_str(&methods) {
                        resp.headers_mut().insert("allow", v);
                    }
                } else if resp.status() == StatusCode::NOT_FOUND
                    && path.len() > 1
                    && path.ends_with('/')
                    && route != UNMATCHED
                {
                    let trimmed = path.trim_end_matches('/');
                    resp = problem_response(
                        StatusCode::NOT_FOUND,
                        ProblemKind::NotFound,
                        "Not found",
                        format!("no route {path}; use {trimmed} (without the trailing slash)"),
                    );
                }
                crate::metrics::HTTP_REQUESTS.observe(
                    &[method, route, &resp.status().as_u16().to_string()],
                    started.elapsed().as_secs_f64(),
                );
                Ok::<_, poem::Error>(resp)
            }
        })
        .catch_all_error(problem_for)
        .with(poem::middleware::Tracing)
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn metric_labels_are_route_templates_and_unknown_paths_share_one() {
        assert_eq!(route_of("/graphs/demo"), "/graphs/{name}");
        assert_eq!(route_of("/graphs/demo/history"), "/graphs/{name}/history");
        assert_eq!(route_of("/project/p/graphs"), "/project/{project}/graphs");
        assert_eq!(route_of("/jobs/0190-x"), "/jobs/{id}");
        assert_eq!(route_of("/ui/index.html"), "ui");
        for junk in [
            "/wp-admin.php",
            "/graphs/a/b/c/d",
            "/x/y",
            "/.env",
            "/jobs/a/b",
        ] {
            assert_eq!(route_of(junk), UNMATCHED, "{junk}");
        }
        assert_eq!(
            nul_path_parameter("/graphs/a%00b/jobs", "/graphs/{name}/jobs"),
            Some("name")
        );
        assert_eq!(
            nul_path_parameter("/project/p%00/graphs", "/project/{project}/graphs"),
            Some("project")
        );
        assert_eq!(nul_path_parameter("/graphs/ab", "/graphs/{name}"), None);
        assert_eq!(method_of(&poem::http::Method::GET), "GET");
        let odd = poem::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_of(&odd), "OTHER");
    }

    /// The console gets a clone of the REST API's state: one bound of two descriptor parses at
    /// once and one graph-detail cache for both, not one each.
    #[tokio::test]
    async fn clones_of_the_api_share_their_parse_slots_and_cache() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://localhost/unused")
            .expect("a lazy pool never connects");
        let a = SmoApi::new(pool, Default::default());
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.parse_slots, &b.parse_slots));
        assert!(Arc::ptr_eq(&a.details, &b.details));
        let _held = a.parse_slots.acquire_many(2).await.unwrap();
        assert_eq!(b.parse_slots.available_permits(), 0);
    }

    #[test]
    fn the_route_list_is_the_openapi_documents_paths() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let yaml = rt.block_on(async { openapi_yaml() });
        let doc: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        let mut paths: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, ops)| {
                let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
                    .iter()
                    .filter(|m| ops.get(**m).is_some())
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                (p.clone(), methods.join(", "))
            })
            .collect();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .filter_map(|(r, _, _)| Some((r.to_string(), methods_of(r)?)))
            .collect();
        routes.dedup();
        paths.sort_unstable();
        routes.sort_unstable();
        assert_eq!(routes, paths);
    }
}
