//! `http`: the REST API (poem-openapi). It validates, records and enqueues — it never talks to
//! Karmada. Mutations store and enqueue in one transaction and answer 202 with the job.
//! Routes keep the reference SMO's paths so its clients work; errors are RFC 7807 documents.
//!
//! - `mod.rs`       [`SmoApi`], the state every route shares, and the operations behind them
//!   (validate, store, enqueue); the OpenAPI document
//! - `graphs.rs`, `clusters.rs`, `alerts.rs`, `jobs.rs`, `health.rs`: the routes, one type per
//!   resource, each a thin handler over those operations
//! - `views.rs`     the response bodies
//! - `middleware.rs` the route table (each operation's grant), body limits, problem documents
//!   for routing errors, the nested app
//! - `guard.rs`     who is calling (token or console session), the grant checked, the audit row
//! - `audit.rs`     `/whoami` and `/audit`
//! - `problem.rs`   the error type and its problem documents; `serve.rs` the connection loop
//! - `compat.rs`    the reference SMO's field names; `console/` the server-rendered console

/// A resource's route type: the shared [`SmoApi`], so its handlers read `self.pool` and call the
/// shared operations as if they were its own.
macro_rules! route_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(pub SmoApi);

        impl std::ops::Deref for $name {
            type Target = SmoApi;
            fn deref(&self) -> &SmoApi {
                &self.0
            }
        }
    };
}

mod alerts;
mod audit;
mod cache;
mod clusters;
mod compat;
pub mod console;
mod graphs;
mod guard;
mod health;
mod jobs;
mod middleware;
mod problem;
mod serve;
mod views;

use smo_core::model::ProblemKind;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, http::StatusCode};
use poem_openapi::{
    ApiResponse, Object, OpenApi, OpenApiService,
    param::{Path, Query},
    payload::{Binary, Json, PlainText},
};
use smo_jobs::{JobArgs, Queue};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use uuid::Uuid;

use self::middleware::*;
pub use self::{
    alerts::AlertsApi, audit::AuditApi, audit::AuditEntry, audit::WhoAmI, clusters::ClustersApi,
    graphs::GraphsApi, health::HealthApi, jobs::JobsApi, middleware::app, views::*,
};
pub use problem::{ApiError, Problem, ProblemItem};
pub use serve::{HttpLimits, serve};

use crate::{
    federation::manifests,
    hdag::{self, DescriptorError, Graph, conditional},
    reconcile::{self, ClusterSyncJob, DeployJob, RePlaceJob, RemoveJob, StartJob, StopJob},
    store::{self, Desired, NewService, ServiceStatus},
};

/// How long `GET /clusters` waits for the first sync of a fresh install.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(5);

/// Largest body probed for a by-reference deploy (`{"artifact": "oci://…"}`).
const MAX_REFERENCE_BODY: usize = 16 * 1024;

/// Largest request body accepted at all; the descriptor limit inside is checked by `hdag`.
pub const MAX_BODY_BYTES: usize = hdag::MAX_DESCRIPTOR_BYTES + 64 * 1024;

type ApiResult<T> = Result<T, ApiError>;

/// The API's state. Clones share it (the parse slots and the graph-detail cache), so the REST
/// routes and the console are bound and served by one.
#[derive(Clone)]
pub struct SmoApi {
    pool: PgPool,
    registry: crate::settings::RegistrySettings,
    queue: Queue,
    /// Parsing a large YAML descriptor is CPU and memory heavy: at most two at once.
    parse_slots: Arc<Semaphore>,
    /// Rendered `GET /graphs/{name}` bodies by graph, with the version stamp they were rendered
    /// at ([`store::graph_stamp`]): a read whose stamp matches costs one small query instead of
    /// two reads, a YAML parse, rendering the dashboards and rules the reference's fields need
    /// and serialising the answer.
    details: Arc<cache::StampCache<RawJson<GraphDetail>>>,
    /// Graph list pages (with `limit`) by query and caller's scope, with the stamp of the rows they cover
    /// ([`store::graph_page_stamp`]): a hit costs an index scan of the page's rows and no JSON.
    pages: Arc<cache::StampCache<PageBody>>,
}

/// A page of graphs as sent: the body and its `Link` to the next page.
type PageBody = (RawJson<Vec<GraphSummary>>, Option<String>);

/// Most graphs whose rendered detail the API keeps, and most pages.
const DETAIL_CACHE: usize = 4096;
const PAGE_CACHE: usize = 1024;

impl SmoApi {
    /// An API over `pool`.
    pub fn new(pool: PgPool, registry: crate::settings::RegistrySettings) -> Self {
        Self {
            queue: Queue::new(pool.clone()),
            pool,
            registry,
            parse_slots: Arc::new(Semaphore::new(2)),
            details: Arc::new(cache::StampCache::new(DETAIL_CACHE)),
            pages: Arc::new(cache::StampCache::new(PAGE_CACHE)),
        }
    }
}

impl SmoApi {
    /// One page of graphs (all of them without `limit`), with the link to the next. The bounds
    /// of `limit` and the shape of `after` (`project/name`) are checked by the schema: 400
    /// naming the parameter otherwise.
    async fn graph_page(
        &self,
        caller: &crate::access::Caller,
        project: Option<&str>,
        base: &str,
        limit: Option<i64>,
        after: Option<&str>,
    ) -> ApiResult<GraphPage> {
        let page = store::Page {
            after: after.and_then(|a| a.split_once('/')),
            limit,
            within: caller.projects.list().filter(|_| !caller.sees_all()),
        };
        // Only pages (`limit` ≤ 1,000) are kept: an unpaged list can hold every graph, and
        // keeping it would cost a second scan on each miss and unbounded memory.
        let kept = match limit {
            Some(_) => {
                let key = format!("{project:?} {after:?} {limit:?} {:?}", page.within);
                let stamp = store::graph_page_stamp(&self.pool, project, page).await?;
                if let Some((body, next)) = self.pages.get(&key, &stamp) {
                    return Ok(GraphPage::Ok(body, next));
                }
                Some((key, stamp))
            }
            None => None,
        };
        let list = store::list_graphs(&self.pool, project, page).await?;
        let next = match (limit, &list.last) {
            (Some(l), Some(last)) if list.count == l => Some(next_link(base, l, last)),
            _ => None,
        };
        let body = RawJson(list.json.into(), std::marker::PhantomData);
        if let Some((key, stamp)) = kept {
            self.pages.put(key, stamp, (body.clone(), next.clone()));
        }
        Ok(GraphPage::Ok(body, next))
    }
}

fn problems_of(e: &DescriptorError) -> Vec<ProblemItem> {
    e.problems()
        .into_iter()
        .map(|p| ProblemItem {
            path: p.path,
            message: p.message,
        })
        .collect()
}

fn valid_name(field: &str, v: &str) -> ApiResult<hdag::ProjectName> {
    hdag::ProjectName::parse(v).map_err(|e| {
        ApiError::invalid(
            format!("{field} {v:?} is not a DNS-1123 label"),
            vec![ProblemItem {
                path: field.into(),
                message: e.to_string(),
            }],
        )
        .kind(ProblemKind::InvalidName)
    })
}

impl SmoApi {
    /// `GET /graphs/{name}` rendered from the store.
    async fn render_graph(&self, name: &str) -> ApiResult<GraphDetail> {
        let mut conn = self.pool.acquire().await?;
        let g = store::get_graph(&mut conn, name).await?;
        let services = store::services(&mut conn, g.id).await?;
        let graph = Some(g.graph()?);
        let placement = g.placement_map();
        let dashboards: BTreeMap<String, String> =
            serde_json::from_value(g.dashboards).unwrap_or_default();
        let reference = graph
            .as_ref()
            .map(|gr| compat::GraphCompat::new(g.project.as_str(), gr, &placement, &dashboards));
        let view = |s: store::ServiceRecord| {
            let spec = graph.as_ref().and_then(|gr| gr.service(&s.name));
            let c = reference
                .as_ref()
                .map(|r| r.service(&s.name))
                .unwrap_or_default();
            ServiceView {
                artifact: artifact_kind(spec).into(),
                artifact_ref: c.artifact_ref,
                cluster_affinity: c.cluster_affinity,
                cpu: c.cpu,
                memory: c.memory,
                storage: c.storage,
                values_overwrite: c.values_overwrite,
                alert: c.alert,
                artifact_type: c.artifact_type,
                artifact_implementer: c.artifact_implementer,
                grafana: c.grafana,
                name: s.name,
                status: s.status.to_string(),
                cluster: s.cluster,
                replicas: s.replicas,
                ready: s.ready,
                conditional: s.conditional,
                cpu_millis: s.cpu_millis,
                memory_bytes: s.memory_bytes,
                gpu: s.gpu,
            }
        };
        Ok(GraphDetail {
            services: services.into_iter().map(view).collect(),
            designer: graph.as_ref().and_then(|g| g.designer.clone()),
            description: graph.as_ref().and_then(|g| g.description.clone()),
            hda_graph: compat::hda_graph(&g.source, &g.descriptor),
            grafana: reference.as_ref().and_then(|r| r.grafana.clone()),
            placement,
            dashboards,
            name: g.name.into(),
            project: g.project.into(),
            version: g.version,
            revision: g.revision,
            status: g.status.to_string(),
            status_message: g.status_message,
            desired: g.desired.to_string(),
            created_at: g.created_at,
            updated_at: g.updated_at,
        })
    }

    async fn parse_descriptor(&self, body: Vec<u8>) -> ApiResult<hdag::Parsed> {
        let _slot = self
            .parse_slots
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("shutting down"))?;
        let parsed = tokio::task::spawn_blocking(move || hdag::parse(&body))
            .await
            .map_err(|e| ApiError::bad_request(format!("descriptor parser failed: {e}")))?;
        parsed.map_err(|e| match e {
            DescriptorError::TooLarge { .. } => ApiError::too_large(e.to_string()),
            _ => ApiError::invalid(
                format!("the descriptor is invalid: {}", first_line(&e.to_string())),
                problems_of(&e),
            ),
        })
    }

    /// Pulls a packaged descriptor. Registries on loopback are reached over plain HTTP (as Docker
    /// does); others need `registry_plain_http`.
    async fn fetch_artifact(&self, reference: &str) -> ApiResult<Vec<u8>> {
        let source = crate::oci::parse_source(reference)?;
        let host = match &source {
            crate::oci::Source::Oci(r) => Some(r.registry.as_str()),
            crate::oci::Source::Url(_) => None,
        };
        Ok(self.registry.client_for(host).fetch_source(&source).await?)
    }

    async fn accept<A: JobArgs>(
        &self,
        graph: &str,
        args: A,
        warnings: Vec<ProblemItem>,
        tx: &mut sqlx::PgConnection,
    ) -> ApiResult<JobAccepted> {
        let e = reconcile::enqueue_for_graph(tx, &self.queue, graph, &args).await?;
        guard::note_job(graph, None, e.id);
        Ok(JobAccepted {
            job_id: e.id,
            kind: A::KIND.into(),
            graph: graph.into(),
            status_url: format!("/jobs/{}", e.id),
            created: e.created,
            warnings,
        })
    }

    async fn change(&self, name: &str, desired: Desired) -> ApiResult<Accepted> {
        let mut tx = self.pool.begin().await?;
        let g = store::set_desired(&mut tx, name, desired, self.queue.now()).await?;
        if let Some(status) = crate::plan::requested(desired) {
            store::set_status(&mut tx, g.id, status, None, self.queue.now()).await?;
        }
        let graph = g.name.clone();
        let accepted = match desired {
            Desired::Running => {
                self.accept(name, StartJob { graph }, vec![], &mut tx)
                    .await?
            }
            Desired::Stopped => {
                self.accept(name, StopJob { graph }, vec![], &mut tx)
                    .await?
            }
            Desired::Removed => {
                let project = g.project.clone();
                self.accept(name, RemoveJob { graph, project }, vec![], &mut tx)
                    .await?
            }
        };
        tx.commit().await?;
        Ok(Accepted::Accepted(Json(accepted)))
    }

    async fn dry_run(&self, parsed: hdag::Parsed, project: &str) -> ApiResult<DryRun> {
        let graph = parsed.graph;
        let clusters = store::list_clusters(&self.pool).await?;
        // Placement and rendering are CPU work: off the async threads, so health checks and
        // other requests are not held up behind a big dry run.
        let project = project.to_string();
        let (graph, planned) = tokio::task::spawn_blocking(move || {
            let planned = crate::plan::dry_run(&graph, &clusters, &project);
            (graph, planned)
        })
        .await
        .map_err(|e| ApiError::internal(format!("dry run failed: {e}")))?;
        let (plan, objects) = planned.map_err(|e| {
            ApiError::invalid(
                format!("placement: {e}"),
                vec![ProblemItem {
                    path: "placement".into(),
                    message: e.to_string(),
                }],
            )
            .kind(ProblemKind::PlacementInfeasible)
        })?;
        Ok(DryRun {
            graph: graph.id.clone(),
            placement: plan.placement,
            solution: serde_json::to_value(&plan.solution).unwrap_or_default(),
            objects,
            helm_services: graph
                .services
                .iter()
                .filter(|s| !manifests::is_native(s))
                .map(|s| s.id.clone())
                .collect(),
            warnings: parsed
                .warnings
                .into_iter()
                .map(|p| ProblemItem {
                    path: p.path,
                    message: p.message,
                })
                .collect(),
        })
    }
}

/// How a service is deployed: `image` (smo renders its objects) or `helm` (a chart);
/// `unknown` when the stored descriptor no longer has it.
fn artifact_kind(spec: Option<&hdag::Service>) -> &'static str {
    match spec {
        Some(sv) if manifests::is_native(sv) => "image",
        Some(_) => "helm",
        None => "unknown",
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The OpenAPI service.
pub fn api_service(
    pool: PgPool,
    registry: crate::settings::RegistrySettings,
) -> OpenApiService<Routes, ()> {
    service_of(SmoApi::new(pool, registry))
}

/// Every route of the API, one type per resource.
pub type Routes = (
    HealthApi,
    AuditApi,
    ClustersApi,
    GraphsApi,
    AlertsApi,
    JobsApi,
);

fn service_of(api: SmoApi) -> OpenApiService<Routes, ()> {
    let routes = (
        HealthApi(api.clone()),
        AuditApi(api.clone()),
        ClustersApi(api.clone()),
        GraphsApi(api.clone()),
        AlertsApi(api.clone()),
        JobsApi(api),
    );
    OpenApiService::new(routes, "smo", env!("CARGO_PKG_VERSION"))
        .description(
            "smo deploys application graphs (HDAGs) onto a Karmada federation. Mutations are recorded and \
             enqueued as jobs (202 + job id; follow GET /jobs/{id}). Errors are RFC 7807 problem documents. \
             When the server has an `api_token`, every route but /healthz and /readyz needs `Authorization: Bearer <token>`: \
             the `api_token` itself (the bootstrap admin) or a token made with `smo-admin tokens create`, whose role \
             (viewer, deployer, admin, alerts, metrics) and projects each operation checks (`x-smo-grant`; 403 names the missing grant).",
        )
        .server("/")
}

/// The OpenAPI document as YAML (what `api/openapi.yaml` holds). Needs a Tokio runtime.
pub fn openapi_yaml() -> String {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://localhost/unused")
        .expect("a lazy pool never connects");
    document_yaml(&api_service(pool, Default::default()))
}

/// poem-openapi's document plus what it cannot say: the bearer token, declared as a security
/// scheme that every route but the open ones accepts (and needs, when a token is configured:
/// hence the empty alternative, for a server run without one), and the grant each operation
/// needs, from the route table (`x-smo-grant`, the roles that hold it in `x-smo-roles`).
fn document_yaml(api: &OpenApiService<Routes, ()>) -> String {
    let mut doc: serde_json::Value =
        serde_json::from_str(&api.spec()).expect("poem-openapi writes JSON");
    doc["components"]["securitySchemes"]["bearerAuth"] = serde_json::json!({
        "type": "http",
        "scheme": "bearer",
        "description": "The API token (`api_token`, the bootstrap admin) or a token from `smo-admin tokens create`; required on every route but the health checks when the server has an `api_token`.",
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, ops) in paths.iter_mut() {
            for (method, op) in ops.as_object_mut().into_iter().flat_map(|o| o.iter_mut()) {
                let need = guard::need_of(&method.to_ascii_uppercase(), path);
                if need == crate::access::Need::Open {
                    continue;
                }
                op["security"] = serde_json::json!([{ "bearerAuth": [] }, {}]);
                let (grant, roles) = match need.role() {
                    Some(r) => (r.as_str(), need.roles()),
                    None => ("token", crate::access::Role::ALL.to_vec()),
                };
                op["x-smo-grant"] = grant.into();
                op["x-smo-roles"] = roles.iter().map(|r| r.as_str()).collect();
            }
        }
    }
    serde_norway::to_string(&doc).expect("a JSON document is YAML")
}
