//! The smo console: server-rendered pages under `/console` for graphs, their topology, placement
//! and decisions, deploys with a dry run, clusters and the job queue.
//!
//! Thin handlers: each loads through the same [`SmoApi`] operations (or store queries) the REST API
//! uses and hands data to the pure renderers in [`view`]; actions go through the same operations,
//! so the console can do nothing the API cannot. With an API token configured, the sign-in form
//! takes any token (the `api_token` or one from `smo-admin tokens create`) and sets an HttpOnly,
//! SameSite=Strict session cookie that holds no token (see [`crate::access::session_cookie`]);
//! every route declares the grant it needs in [`table`], checked by the server's guard, and pages
//! offer only what the caller's role may do. Assets are compiled into the binary.

pub mod view;

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;
use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, RouteMethod, handler,
    http::{Method, StatusCode, header},
    web::{Data, Form, Path, Query},
};
use poem_openapi::param::{Path as OPath, Query as OQuery};
use poem_openapi::payload::Binary;
use serde::Deserialize;
use uuid::Uuid;

use self::view::{DeployOutcome, FormProblem, GraphFilter, Nav, ServiceNode};
use super::{ApiError, DeployResponse, SmoApi, guard::Guard};
use crate::{
    access::{Caller, Need},
    store,
};

/// The console's stylesheet and script, compiled in.
const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// Bytes of the stylesheet and script (the console's share of the binary, beside its code).
pub const ASSET_BYTES: usize = CSS.len() + JS.len();

/// The session cookie's name.
const COOKIE: &str = "smo_console";

/// Most graphs one list page shows.
const LIST_LIMIT: i64 = 5000;

/// What the console links to or reads besides smo's own API.
#[derive(Clone, Default)]
pub struct ConsoleSettings {
    /// Where replica history comes from, when configured (the scaler's Prometheus).
    pub prometheus: Option<crate::monitoring::io::Prometheus>,
    /// apalis-board (`smo-admin board`), linked from the queue page.
    pub board_url: Option<String>,
}

impl From<Option<crate::monitoring::io::Prometheus>> for ConsoleSettings {
    fn from(prometheus: Option<crate::monitoring::io::Prometheus>) -> Self {
        Self {
            prometheus,
            board_url: None,
        }
    }
}

struct Console {
    api: SmoApi,
    /// Where replica history comes from, when configured (the scaler's Prometheus).
    prometheus: Option<crate::monitoring::io::Prometheus>,
    /// apalis-board, when its address is configured.
    board_url: Option<String>,
    /// Resolves sign-ins to session cookies.
    guard: Arc<Guard>,
}

pub(super) fn cookie_of(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

type Handler = poem::endpoint::BoxEndpoint<'static, Response>;

/// Every console route: method, path under `/console`, the grant it needs, handler. The router
/// is built from this table, the server's guard checks each route's grant from it (the graph
/// routes in the graph's project), and `tests/it/auth.rs` and `tests/it/teams.rs` walk
/// [`route_table`], so no route escapes them.
fn table() -> Vec<(Method, &'static str, Need, Handler)> {
    vec![
        (Method::GET, "/", Need::Read, graphs.boxed()),
        (Method::GET, "/login", Need::Open, login_page.boxed()),
        (Method::POST, "/login", Need::Open, login.boxed()),
        (Method::POST, "/logout", Need::Open, logout.boxed()),
        (Method::GET, "/assets/console.css", Need::Open, css.boxed()),
        (Method::GET, "/assets/console.js", Need::Open, js.boxed()),
        (Method::GET, "/graphs/:name", Need::Read, graph.boxed()),
        (
            Method::GET,
            "/graphs/:name/confirm/:action",
            Need::Deploy,
            confirm.boxed(),
        ),
        (
            Method::POST,
            "/graphs/:name/:action",
            Need::Deploy,
            act.boxed(),
        ),
        (Method::GET, "/deploy", Need::Deploy, deploy_page.boxed()),
        (Method::POST, "/deploy", Need::Deploy, deploy.boxed()),
        (Method::GET, "/clusters", Need::Read, clusters.boxed()),
        (Method::GET, "/queue", Need::Admin, queue.boxed()),
        (
            Method::POST,
            "/jobs/:id/:action",
            Need::Admin,
            job_action.boxed(),
        ),
    ]
}

/// The console's routes as `(method, full path template, grant)`, e.g. `("POST",
/// "/console/graphs/:name/:action", Need::Deploy)`.
pub fn route_table() -> Vec<(&'static str, String, Need)> {
    table()
        .into_iter()
        .map(|(m, p, need, _)| {
            let m = match m {
                Method::POST => "POST",
                _ => "GET",
            };
            (m, format!("/console{}", p.trim_end_matches('/')), need)
        })
        .collect()
}

/// The console route `method path` (a path as the client sent it) matches, with its grant:
/// `None` when no route does.
pub(super) fn template_of(method: &str, path: &str) -> Option<(String, Need)> {
    let method = if method == "HEAD" { "GET" } else { method };
    // Built once: the table holds the handlers, and this runs on every console request.
    static TEMPLATES: std::sync::OnceLock<Vec<(&'static str, String, Need)>> =
        std::sync::OnceLock::new();
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    TEMPLATES
        .get_or_init(route_table)
        .iter()
        .find_map(|(m, t, need)| {
            let templ: Vec<&str> = t.split('/').collect();
            (*m == method
                && templ.len() == parts.len()
                && templ
                    .iter()
                    .zip(&parts)
                    .all(|(t, p)| t.starts_with(':') || t == p))
            .then(|| (t.clone(), *need))
        })
}

/// The console's routes (nested at `/console` by [`super::app`]). Who may reach each is the
/// server's guard's business; here, only that forms post from the console's own pages.
pub(super) fn routes(
    api: SmoApi,
    guard: Arc<Guard>,
    settings: ConsoleSettings,
) -> impl Endpoint + use<> {
    let console = Arc::new(Console {
        api,
        prometheus: settings.prometheus,
        board_url: settings.board_url,
        guard,
    });
    let mut by_path: Vec<(&str, RouteMethod)> = Vec::new();
    for (method, path, _, ep) in table() {
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, m)) => *m = std::mem::take(m).method(method, ep),
            None => by_path.push((path, RouteMethod::new().method(method, ep))),
        }
    }
    by_path
        .into_iter()
        .fold(Route::new(), |r, (path, m)| r.at(path, m))
        .data(console)
        .around(move |ep, req: Request| async move {
            // Forms post from the console's own pages only: a cross-site form cannot act
            // (the cookie is SameSite=Strict too; without a token this is the only guard).
            if req.method() == poem::http::Method::POST && !same_origin(&req) {
                return Ok(page_error(
                    StatusCode::FORBIDDEN,
                    "This form was posted from another site.",
                ));
            }
            ep.call(req).await.map(IntoResponse::into_response)
        })
}

/// Where a browser without a session goes.
pub(super) fn sign_in_first() -> Response {
    see_other("/console/login")
}

/// The page for a request the guard refused (403: it names the missing grant).
pub(super) fn refused(e: ApiError) -> Response {
    api_error(e)
}

/// The signed-in caller (the anonymous admin when the server has no token).
fn caller(req: &Request) -> Caller {
    super::audit::caller_of(req)
}

/// True unless the request names an `Origin` other than its own host.
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

fn see_other(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

fn html(body: String) -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
}

/// A whole page, or only `<main>`'s content when the console's script asks (live refresh).
fn page(
    req: &Request,
    console: &Console,
    title: &str,
    nav: Nav,
    main: String,
    live: bool,
) -> Response {
    if req.headers().contains_key("x-console-partial") {
        return html(main);
    }
    let who = caller(req);
    let who = console.guard.on().then_some(&who);
    html(view::layout(title, nav, &main, live, who))
}

fn page_error(status: StatusCode, message: &str) -> Response {
    let main = format!(
        "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/console\">Back to the graphs</a></p>",
        status.canonical_reason().unwrap_or("Error"),
        view::esc(message)
    );
    let mut r = html(view::layout("Error", Nav::None, &main, false, None));
    r.set_status(status);
    r
}

fn api_error(mut e: ApiError) -> Response {
    let p = e.problem_mut();
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    page_error(status, &p.detail)
}

fn store_error(e: store::StoreError) -> Response {
    api_error(e.into())
}

/// A compiled-in asset, cacheable for a few minutes.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "max-age=300")
        .body(body)
}

#[handler]
fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

#[handler]
fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

#[handler]
fn login_page(console: Data<&Arc<Console>>) -> Response {
    if !console.guard.on() {
        return see_other("/console");
    }
    html(view::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

#[handler]
async fn login(console: Data<&Arc<Console>>, form: Form<LoginForm>) -> Response {
    if !console.guard.on() {
        return see_other("/console");
    }
    let refuse = |message: &str| {
        let mut r = html(view::login(Some(message)));
        r.set_status(StatusCode::UNAUTHORIZED);
        r
    };
    let (caller, cookie) = match console.guard.sign_in(form.token.trim()).await {
        Ok(Some(signed)) => signed,
        Ok(None) => return refuse("That token is not valid here (unknown, revoked or expired)."),
        Err(e) => return api_error(e),
    };
    if !caller.role.grants(Need::Read) {
        return refuse(&format!(
            "A token with the role {} has no console pages; sign in with a viewer, deployer or admin token.",
            caller.role
        ));
    }
    // No Max-Age: a session cookie, gone when the browser session ends.
    let mut r = see_other("/console");
    r.headers_mut().insert(
        header::SET_COOKIE,
        format!("{COOKIE}={cookie}; Path=/console; HttpOnly; SameSite=Strict")
            .parse()
            .expect("a valid header"),
    );
    r
}

#[handler]
fn logout() -> Response {
    let mut r = see_other("/console/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
            .parse()
            .expect("a valid header"),
    );
    r
}

#[derive(Deserialize, Default)]
struct ListQuery {
    project: Option<String>,
    status: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[handler]
async fn graphs(req: &Request, console: Data<&Arc<Console>>, q: Query<ListQuery>) -> Response {
    let filter = GraphFilter {
        project: non_empty(&q.project),
        // An unknown status filters nothing out (the select offers only known ones).
        status: non_empty(&q.status).and_then(|s| s.parse().ok()),
    };
    let pool = &console.api.pool;
    let who = caller(req);
    let within = who.projects.list().filter(|_| !who.sees_all());
    let rows = match store::graph_overviews(
        pool,
        filter.project.as_deref(),
        filter.status,
        within,
        LIST_LIMIT,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let projects = match store::project_names(pool).await {
        Ok(p) => p
            .into_iter()
            .filter(|p| within.is_none_or(|w| w.contains(p)))
            .collect::<Vec<_>>(),
        Err(e) => return store_error(e),
    };
    let main = view::graphs(&rows, &projects, &filter, Utc::now());
    page(req, &console, "Graphs", Nav::Graphs, main, true)
}

#[handler]
async fn graph(req: &Request, console: Data<&Arc<Console>>, name: Path<String>) -> Response {
    match load_graph(&console, &name.0).await {
        Ok(p) => {
            let may_act = caller(req).allows(Need::Deploy, Some(&p.project)).is_ok();
            page(
                req,
                &console,
                &p.name.clone(),
                Nav::Graphs,
                view::graph(&p, Utc::now(), may_act),
                true,
            )
        }
        Err(r) => r,
    }
}

/// Everything the graph page shows, read from the store (one connection for the graph's own rows).
async fn load_graph(console: &Console, name: &str) -> Result<view::GraphPage, Response> {
    let api = &console.api;
    let pool = &api.pool;
    let (g, services) = {
        let mut conn = pool.acquire().await.map_err(|e| api_error(e.into()))?;
        let g = store::get_graph(&mut conn, name)
            .await
            .map_err(store_error)?;
        let services = store::services(&mut conn, g.id)
            .await
            .map_err(store_error)?;
        (g, services)
    };
    let descriptor = Some(g.graph().map_err(store_error)?);
    let explanations = store::latest_decision(pool, name, "placement")
        .await
        .map_err(store_error)?
        .map(|d| summaries(d.outcome))
        .unwrap_or_default();
    let services = services
        .into_iter()
        .map(|s| {
            let spec = descriptor.as_ref().and_then(|d| d.service(&s.name));
            ServiceNode {
                calls: spec
                    .map(|sv| {
                        sv.connection_points()
                            .into_iter()
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
                artifact: super::artifact_kind(spec).into(),
                explanation: explanations.get(&s.name).cloned(),
                service: s,
            }
        })
        .collect();
    let job_ids = store::graph_job_ids(pool, name, 20)
        .await
        .map_err(store_error)?;
    let jobs = api
        .queue
        .get_many(&job_ids)
        .await
        .map_err(|e| api_error(e.into()))?;
    let replicas = replica_history(console, g.project.as_str(), g.name.as_str()).await;
    Ok(view::GraphPage {
        replicas,
        description: descriptor.as_ref().and_then(|d| d.description.clone()),
        name: g.name.into(),
        project: g.project.into(),
        status: g.status,
        status_message: g.status_message,
        desired: g.desired,
        revision: g.revision,
        version: g.version,
        services,
        clusters: store::list_clusters(pool).await.map_err(store_error)?,
        usage: store::cluster_usage(pool, name)
            .await
            .map_err(store_error)?,
        decisions: store::decisions(pool, name, 200)
            .await
            .map_err(store_error)?,
        jobs,
        dashboards: serde_json::from_value(g.dashboards).unwrap_or_default(),
    })
}

/// How long the replica chart looks back, and its resolution.
const HISTORY_SECS: f64 = 3600.0;
const HISTORY_STEP_SECS: f64 = 30.0;

/// Desired replicas per service over the last hour from Prometheus
/// (`kube_deployment_spec_replicas`, as kube-state-metrics exports it), or why not.
async fn replica_history(
    console: &Console,
    project: &str,
    graph_name: &str,
) -> view::ReplicaSource {
    use crate::monitoring::{promql_string, regex_escape};
    let Some(prom) = &console.prometheus else {
        return view::ReplicaSource::DecisionLog(
            "Prometheus is not configured (prometheus_url)".into(),
        );
    };
    let prefix = format!("{graph_name}-");
    let query = format!(
        "kube_deployment_spec_replicas{{namespace={}, deployment=~{}}}",
        promql_string(project),
        promql_string(&format!("{}.*", regex_escape(&prefix)))
    );
    let end = Utc::now().timestamp() as f64;
    match prom
        .query_range(&query, end - HISTORY_SECS, end, HISTORY_STEP_SECS)
        .await
    {
        Ok(series) => view::ReplicaSource::Prometheus(view::series_by_service(&series, &prefix)),
        Err(e) => view::ReplicaSource::DecisionLog(format!("Prometheus did not answer: {e}")),
    }
}

/// The one-line reason of each service's placement, from a stored or dry-run solution (empty
/// when there is none, e.g. every service kept its cluster).
fn summaries(solution: serde_json::Value) -> BTreeMap<String, String> {
    serde_json::from_value::<crate::placement::Solution>(solution)
        .map(|s| {
            s.explanations
                .into_iter()
                .map(|e| (e.service, e.summary))
                .collect()
        })
        .unwrap_or_default()
}

/// The graph actions, as the API names them.
const ACTIONS: &[&str] = &["start", "stop", "re-place", "remove"];

#[handler]
fn confirm(req: &Request, console: Data<&Arc<Console>>, p: Path<(String, String)>) -> Response {
    let (name, action) = p.0;
    if !ACTIONS.contains(&action.as_str()) {
        return page_error(StatusCode::NOT_FOUND, &format!("no action {action:?}"));
    }
    page(
        req,
        &console,
        &format!("{action} {name}"),
        Nav::Graphs,
        view::confirm(&name, &action),
        false,
    )
}

#[handler]
async fn act(console: Data<&Arc<Console>>, p: Path<(String, String)>) -> Response {
    let (name, action) = p.0;
    let api = super::GraphsApi(console.api.clone());
    let n = OPath(name.clone());
    let done = match action.as_str() {
        "start" => api.start(n).await,
        "stop" => api.stop(n).await,
        "re-place" => api.re_place(n).await,
        "remove" => api.remove(n).await,
        _ => return page_error(StatusCode::NOT_FOUND, &format!("no action {action:?}")),
    };
    match done {
        Ok(_) => see_other(&format!("/console/graphs/{}", view::url_enc(&name))),
        Err(e) => api_error(e),
    }
}

#[handler]
fn deploy_page(req: &Request, console: Data<&Arc<Console>>) -> Response {
    page(
        req,
        &console,
        "Deploy",
        Nav::Deploy,
        view::deploy("default", "", &DeployOutcome::Nothing),
        false,
    )
}

#[derive(Deserialize)]
struct DeployForm {
    project: String,
    descriptor: String,
    action: Option<String>,
}

#[handler]
async fn deploy(req: &Request, console: Data<&Arc<Console>>, form: Form<DeployForm>) -> Response {
    let form = form.0;
    // The guard checked the role; the project comes with the form.
    if let Err(d) = caller(req).allows(Need::Deploy, Some(form.project.trim())) {
        return api_error(ApiError::forbidden(&d));
    }
    let dry = form.action.as_deref() != Some("deploy");
    let answer = super::GraphsApi(console.api.clone())
        .deploy(
            OPath(form.project.trim().to_string()),
            OQuery(Some(dry)),
            Binary(form.descriptor.clone().into_bytes()),
        )
        .await;
    let outcome = match answer {
        Ok(DeployResponse::Accepted(a)) => {
            return see_other(&format!("/console/graphs/{}", view::url_enc(&a.0.graph)));
        }
        Ok(DeployResponse::DryRun(d)) => {
            let d = d.0;
            DeployOutcome::DryRun {
                explanations: summaries(d.solution),
                graph: d.graph,
                placement: d.placement,
                objects: d.objects,
                helm_services: d.helm_services,
                warnings: d
                    .warnings
                    .into_iter()
                    .map(|w| FormProblem {
                        path: w.path,
                        message: w.message,
                    })
                    .collect(),
            }
        }
        Err(mut e) => {
            let p = e.problem_mut();
            if p.status >= 500 {
                return api_error(e);
            }
            DeployOutcome::Problems {
                detail: p.detail.clone(),
                problems: p
                    .problems
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| FormProblem {
                        path: i.path,
                        message: i.message,
                    })
                    .collect(),
            }
        }
    };
    let mut r = page(
        req,
        &console,
        "Deploy",
        Nav::Deploy,
        view::deploy(form.project.trim(), &form.descriptor, &outcome),
        false,
    );
    if matches!(outcome, DeployOutcome::Problems { .. }) {
        r.set_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    r
}

#[handler]
async fn clusters(req: &Request, console: Data<&Arc<Console>>) -> Response {
    let pool = &console.api.pool;
    let history = async {
        let mut conn = pool.acquire().await?;
        store::cluster_events(&mut conn, None, 30).await
    };
    let (clusters, placed, history) = match (
        store::list_clusters(pool).await,
        store::placed_services(pool).await,
        history.await,
    ) {
        (Ok(c), Ok(p), Ok(h)) => (c, p, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return store_error(e),
    };
    let mut main = view::clusters(&clusters, &placed, Utc::now());
    main.push_str(&view::cluster_history(&history));
    page(req, &console, "Clusters", Nav::Clusters, main, true)
}

#[handler]
async fn queue(req: &Request, console: Data<&Arc<Console>>) -> Response {
    let q = &console.api.queue;
    let loaded = async {
        let stats = q.stats().await?;
        let workers = q.workers(false).await?;
        let mut attention = Vec::new();
        for state in [smo_jobs::JobState::Dead, smo_jobs::JobState::Retrying] {
            attention.extend(
                q.list(&smo_jobs::JobFilter {
                    state: Some(state),
                    limit: Some(50),
                    ..Default::default()
                })
                .await?,
            );
        }
        Ok::<_, smo_jobs::Error>((stats, workers, attention))
    }
    .await;
    match loaded {
        Ok((stats, workers, attention)) => page(
            req,
            &console,
            "Queue",
            Nav::Queue,
            view::queue(
                &stats,
                &workers,
                &attention,
                console.board_url.as_deref(),
                Utc::now(),
            ),
            true,
        ),
        Err(e) => api_error(e.into()),
    }
}

#[handler]
async fn job_action(console: Data<&Arc<Console>>, p: Path<(String, String)>) -> Response {
    let (id, action) = p.0;
    let Ok(id) = id.parse::<Uuid>() else {
        return page_error(StatusCode::NOT_FOUND, "not a job id");
    };
    let q = &console.api.queue;
    super::guard::note_job("", None, id);
    let done = match action.as_str() {
        "retry" => q.retry(id).await,
        "cancel" => q.cancel(id).await,
        _ => return page_error(StatusCode::NOT_FOUND, &format!("no action {action:?}")),
    };
    match done {
        Ok(_) => see_other("/console/queue"),
        Err(e) => api_error(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_console_route_and_grant() {
        assert_eq!(
            template_of("POST", "/console/graphs/login/stop"),
            Some(("/console/graphs/:name/:action".into(), Need::Deploy))
        );
        assert_eq!(
            template_of("GET", "/console/login"),
            Some(("/console/login".into(), Need::Open))
        );
        assert_eq!(
            template_of("GET", "/console"),
            Some(("/console".into(), Need::Read))
        );
        assert_eq!(
            template_of("GET", "/console/queue"),
            Some(("/console/queue".into(), Need::Admin))
        );
        assert_eq!(template_of("GET", "/console/graphs/a/b/c/d"), None);
        assert_eq!(template_of("DELETE", "/console/queue"), None);
    }
}
