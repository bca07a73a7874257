//! `http`: the REST API (poem-openapi). It validates, records and enqueues — it never talks to
//! Karmada. Mutations store and enqueue in one transaction and answer 202 with the job.
//! Routes keep the reference SMO's paths so its clients work; errors are RFC 7807 documents.

mod compat;
pub mod console;
mod problem;
mod serve;

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
    /// Rendered `GET /graphs/{name}` answers by graph, with the version stamp they were rendered
    /// at ([`store::graph_stamp`]): a read whose stamp matches costs one small query instead of
    /// two reads, a YAML parse and rendering the dashboards and rules the reference's fields need.
    details: Arc<std::sync::Mutex<std::collections::HashMap<String, (String, GraphDetail)>>>,
}

/// Most graphs whose rendered detail the API keeps (any is dropped when full).
const DETAIL_CACHE: usize = 4096;

impl SmoApi {
    /// An API over `pool`.
    pub fn new(pool: PgPool, registry: crate::settings::RegistrySettings) -> Self {
        Self {
            queue: Queue::new(pool.clone()),
            pool,
            registry,
            parse_slots: Arc::new(Semaphore::new(2)),
            details: Default::default(),
        }
    }
}

/// A job accepted for a graph.
#[derive(Debug, Object)]
pub struct JobAccepted {
    /// The job to follow at `status_url`.
    pub job_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// The graph.
    pub graph: String,
    /// Where to follow it.
    pub status_url: String,
    /// False when an identical job was already queued or running (its id is returned).
    pub created: bool,
    /// Descriptor warnings (unknown keys, unknown versions).
    pub warnings: Vec<ProblemItem>,
}

/// A graph in lists.
#[derive(Debug, Object)]
pub struct GraphSummary {
    /// Name.
    pub name: String,
    /// Project.
    pub project: String,
    /// Descriptor version.
    pub version: String,
    /// Upload count.
    pub revision: i32,
    /// Current status.
    pub status: String,
    /// What was asked.
    pub desired: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A service of a graph.
#[derive(Debug, Clone, Object)]
pub struct ServiceView {
    /// Service id.
    pub name: String,
    /// Pending | Deployed | Running | Stopped | Failed.
    pub status: String,
    /// Where it runs.
    #[oai(skip_serializing_if_is_none)]
    pub cluster: Option<String>,
    /// Desired replicas.
    pub replicas: i32,
    /// Ready replicas when last observed.
    pub ready: i32,
    /// Deployed when its alert fires.
    pub conditional: bool,
    /// CPU per replica in milli-cores.
    pub cpu_millis: i64,
    /// Memory per replica in bytes.
    pub memory_bytes: i64,
    /// Needs an accelerator.
    pub gpu: bool,
    /// `image` (smo generates the objects) or `helm`.
    pub artifact: String,
    /// Compatibility (reference SMO): the chart (`ociImage`) or image.
    #[oai(skip_serializing_if_is_none)]
    pub artifact_ref: Option<String>,
    /// Compatibility (reference SMO): the cluster it is placed on (`cluster`).
    #[oai(skip_serializing_if_is_none)]
    pub cluster_affinity: Option<String>,
    /// Compatibility (reference SMO): `intent.compute.cpu` as written.
    #[oai(skip_serializing_if_is_none)]
    pub cpu: Option<String>,
    /// Compatibility (reference SMO): `intent.compute.ram` as written.
    #[oai(skip_serializing_if_is_none)]
    pub memory: Option<String>,
    /// Compatibility (reference SMO): `intent.compute.storage` as written.
    #[oai(skip_serializing_if_is_none)]
    pub storage: Option<String>,
    /// Compatibility (reference SMO): the chart's `valuesOverwrite`.
    pub values_overwrite: serde_json::Value,
    /// Compatibility (reference SMO): the alert rule (or rules) that deploy this conditional
    /// service; absent for others.
    #[oai(skip_serializing_if_is_none)]
    pub alert: Option<serde_json::Value>,
    /// Compatibility (reference SMO): `ociConfig.type`.
    #[oai(skip_serializing_if_is_none)]
    pub artifact_type: Option<String>,
    /// Compatibility (reference SMO): `ociConfig.implementer` (`HELM`, `WOT`).
    #[oai(skip_serializing_if_is_none)]
    pub artifact_implementer: Option<String>,
    /// Compatibility (reference SMO): the service's dashboard URL, when published.
    #[oai(skip_serializing_if_is_none)]
    pub grafana: Option<String>,
}

/// A graph in detail.
#[derive(Debug, Clone, Object)]
pub struct GraphDetail {
    /// Name.
    pub name: String,
    /// Project (= namespace).
    pub project: String,
    /// Descriptor version.
    pub version: String,
    /// Upload count.
    pub revision: i32,
    /// Current status.
    pub status: String,
    /// Why, when failed or partial.
    #[oai(skip_serializing_if_is_none)]
    pub status_message: Option<String>,
    /// What was asked.
    pub desired: String,
    /// Descriptor designer.
    #[oai(skip_serializing_if_is_none)]
    pub designer: Option<String>,
    /// Descriptor description.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// service → cluster.
    pub placement: BTreeMap<String, String>,
    /// The services, in descriptor order.
    pub services: Vec<ServiceView>,
    /// Dashboard name → URL.
    pub dashboards: BTreeMap<String, String>,
    /// Compatibility (reference SMO): the descriptor as submitted (its `hdaGraph`).
    #[oai(rename = "hdaGraph")]
    pub hda_graph: serde_json::Value,
    /// Compatibility (reference SMO): the graph dashboard's URL, when published.
    #[oai(skip_serializing_if_is_none)]
    pub grafana: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A member cluster.
#[derive(Debug, Object)]
pub struct ClusterView {
    /// Name.
    pub name: String,
    /// Ready condition.
    pub ready: bool,
    /// Allocatable cores.
    pub cpu_allocatable: f64,
    /// Free cores.
    pub cpu_free: f64,
    /// Allocatable bytes.
    pub memory_allocatable: i64,
    /// Free bytes.
    pub memory_free: i64,
    /// Accelerators.
    pub gpus: i32,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Readiness message.
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
    /// When read from Karmada.
    pub synced_at: DateTime<Utc>,
    /// Compatibility (reference SMO): a number per cluster, 1-based in name order.
    pub id: i64,
    /// Compatibility (reference SMO): the region or location label.
    #[oai(skip_serializing_if_is_none)]
    pub location: Option<String>,
    /// Compatibility (reference SMO): free cores (`cpu_free`).
    pub available_cpu: f64,
    /// Compatibility (reference SMO): free memory as a quantity (`memory_free`).
    pub available_ram: String,
    /// Compatibility (reference SMO): Ready (`ready`).
    pub availability: bool,
    /// Compatibility (reference SMO): has accelerators (`gpus > 0`).
    pub acceleration: bool,
}

/// A job.
#[derive(Debug, Object)]
pub struct JobView {
    /// Id.
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// queued | retrying | running | succeeded | dead | cancelled.
    pub state: String,
    /// Attempts started.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Arguments.
    pub args: serde_json::Value,
    /// Enqueued.
    pub created_at: DateTime<Utc>,
    /// Next run (for retrying jobs).
    pub run_at: DateTime<Utc>,
    /// First start.
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Latest error.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    /// Every error: `[{attempt, at, error, permanent, worker}]`.
    pub errors: serde_json::Value,
}

impl From<smo_jobs::JobRow> for JobView {
    fn from(r: smo_jobs::JobRow) -> Self {
        Self {
            last_error: r.last_error(),
            id: r.id,
            kind: r.kind,
            state: r.state,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            args: r.args,
            created_at: r.created_at,
            run_at: r.run_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            errors: r.errors,
        }
    }
}

/// One decision of a graph.
#[derive(Debug, Object)]
pub struct DecisionView {
    /// Sequence number.
    pub id: i64,
    /// placement | deploy | re-place | stop | remove | scaling …
    pub kind: String,
    /// The job that took it.
    #[oai(skip_serializing_if_is_none)]
    pub job_id: Option<Uuid>,
    /// One line.
    pub message: String,
    /// Inputs.
    pub inputs: serde_json::Value,
    /// Outcome.
    pub outcome: serde_json::Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a dry run would do: the placement and the objects that would be applied.
#[derive(Debug, Object)]
pub struct DryRun {
    /// Graph name.
    pub graph: String,
    /// service → cluster.
    pub placement: BTreeMap<String, String>,
    /// The solver's result with explanations (null when nothing needed placing).
    pub solution: serde_json::Value,
    /// The Kubernetes/Karmada objects that would be server-side-applied.
    pub objects: Vec<serde_json::Value>,
    /// Helm-chart services (applied by the Helm runner, not as objects).
    pub helm_services: Vec<String>,
    /// Descriptor warnings.
    pub warnings: Vec<ProblemItem>,
}

/// What `POST /alerts` did.
#[derive(Debug, Object)]
pub struct AlertsAccepted {
    /// Firing alerts in the payload.
    pub firing: usize,
    /// Resolved alerts in the payload (they matter to `condition: ALL` services).
    pub resolved: usize,
    /// Alerts that name no pending conditional service (or no event of it).
    pub ignored: usize,
    /// Firing events recorded for `condition: ALL` services whose other events are not firing yet,
    /// as `graph/service: event` lines.
    pub waiting: Vec<String>,
    /// `deploy-conditional` jobs (existing ones when Alertmanager repeats).
    pub jobs: Vec<JobAccepted>,
    /// Alerts without a `graph` label (as the reference's rules send) whose event several graphs
    /// wait for: nothing was deployed for them; add a `graph` label to the rule. One line each.
    pub ambiguous: Vec<String>,
}

#[derive(ApiResponse)]
enum Accepted {
    /// The request is recorded and its job enqueued.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>),
}

#[derive(ApiResponse)]
enum GraphPage {
    /// The graphs; with `limit`, a `Link` header to the next page while there may be more.
    #[oai(status = 200)]
    Ok(
        RawJson<Vec<GraphSummary>>,
        #[oai(header = "Link")] Option<String>,
    ),
}

/// A JSON body serialised elsewhere (by PostgreSQL), documented as `T`: lists go out as the
/// database wrote them, without a value tree per row.
pub struct RawJson<T>(String, std::marker::PhantomData<fn() -> T>);

impl<T: poem_openapi::types::Type> poem_openapi::payload::Payload for RawJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }
}

impl<T> poem::IntoResponse for RawJson<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.0)
    }
}

/// The `Link` header of a full page: the same list after its last graph (`project/name`).
fn next_link(base: &str, limit: i64, last: &str) -> String {
    format!(
        "<{base}?limit={limit}&after={}>; rel=\"next\"",
        console::view::url_enc(last)
    )
}

#[derive(ApiResponse)]
enum DeployResponse {
    /// The graph is stored and its deploy job enqueued.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>),
    /// Dry run: nothing stored, nothing enqueued.
    #[oai(status = 200)]
    DryRun(Json<DryRun>),
}

#[derive(ApiResponse)]
enum Ready {
    /// The database answers.
    #[oai(status = 200)]
    Ok(PlainText<String>),
    /// The database does not answer.
    #[oai(status = 503)]
    Unavailable(PlainText<String>),
}

impl SmoApi {
    /// One page of graphs (all of them without `limit`), with the link to the next. The bounds
    /// of `limit` and the shape of `after` (`project/name`) are checked by the schema: 400
    /// naming the parameter otherwise.
    async fn graph_page(
        &self,
        project: Option<&str>,
        base: &str,
        limit: Option<i64>,
        after: Option<&str>,
    ) -> ApiResult<GraphPage> {
        let page = store::Page {
            after: after.and_then(|a| a.split_once('/')),
            limit,
        };
        let list = store::list_graphs(&self.pool, project, page).await?;
        let next = match (limit, &list.last) {
            (Some(l), Some(last)) if list.count == l => Some(next_link(base, l, last)),
            _ => None,
        };
        Ok(GraphPage::Ok(
            RawJson(list.json, std::marker::PhantomData),
            next,
        ))
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

fn valid_name(field: &str, v: &str) -> ApiResult<()> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            format!("{field} {v:?} is not a DNS-1123 label"),
            vec![ProblemItem {
                path: field.into(),
                message: "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
                    .into(),
            }],
        )
        .kind("invalid-name"))
    }
}

impl SmoApi {
    /// `GET /graphs/{name}` rendered from the store.
    async fn render_graph(&self, name: &str) -> ApiResult<GraphDetail> {
        let mut conn = self.pool.acquire().await?;
        let g = store::get_graph(&mut conn, name).await?;
        let services = store::services(&mut conn, g.id).await?;
        let graph: Option<Graph> = serde_json::from_value(g.descriptor.clone()).ok();
        let placement: BTreeMap<String, String> =
            serde_json::from_value(g.placement).unwrap_or_default();
        let dashboards: BTreeMap<String, String> =
            serde_json::from_value(g.dashboards).unwrap_or_default();
        let reference = graph
            .as_ref()
            .map(|gr| compat::GraphCompat::new(&g.project, gr, &placement, &dashboards));
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
            name: g.name,
            project: g.project,
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
        let accepted = match desired {
            Desired::Running => {
                self.accept(name, StartJob { graph: name.into() }, vec![], &mut tx)
                    .await?
            }
            Desired::Stopped => {
                store::set_status(
                    &mut tx,
                    g.id,
                    store::GraphStatus::Stopping,
                    None,
                    self.queue.now(),
                )
                .await?;
                self.accept(name, StopJob { graph: name.into() }, vec![], &mut tx)
                    .await?
            }
            Desired::Removed => {
                store::set_status(
                    &mut tx,
                    g.id,
                    store::GraphStatus::Removing,
                    None,
                    self.queue.now(),
                )
                .await?;
                self.accept(
                    name,
                    RemoveJob {
                        graph: name.into(),
                        project: g.project.clone(),
                    },
                    vec![],
                    &mut tx,
                )
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
            .kind("placement-infeasible")
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

#[OpenApi]
impl SmoApi {
    /// Liveness: the process serves HTTP.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness: the database answers within a second.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Ready {
        match tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        {
            Ok(Ok(_)) => Ready::Ok(PlainText("ready".into())),
            Ok(Err(e)) => Ready::Unavailable(PlainText(format!("database: {e}"))),
            Err(_) => Ready::Unavailable(PlainText("database: timed out".into())),
        }
    }

    /// smo's own metrics (Prometheus exposition): queue depth and oldest queued age per kind, jobs
    /// per kind × state and live workers (read from the database), plus this process's job
    /// counters (enqueued/started/succeeded/failed/dead), job duration, request latency by route
    /// and status, and placement/scaling solve-time histograms.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> ApiResult<PlainText<String>> {
        let mut out = crate::metrics::render_queue(&self.queue).await?;
        out.push_str(&crate::metrics::render_process());
        Ok(PlainText(out))
    }

    /// Member clusters as last synced from Karmada.
    #[oai(path = "/clusters", method = "get", operation_id = "listClusters")]
    async fn clusters(&self) -> ApiResult<Json<Vec<ClusterView>>> {
        let mut rows = store::list_clusters(&self.pool).await?;
        if rows.is_empty() {
            // Nothing synced yet (a fresh install): the reference reads Karmada on every call,
            // so ask a worker for a sync and wait for it a little rather than answer `[]`.
            let e = self.queue.enqueue(&ClusterSyncJob {}).await?;
            let deadline = tokio::time::Instant::now() + FIRST_SYNC_WAIT;
            while tokio::time::Instant::now() < deadline {
                let state = self.queue.get(e.id).await?.state;
                if matches!(state.as_str(), "succeeded" | "dead" | "cancelled") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            rows = store::list_clusters(&self.pool).await?;
        }
        Ok(Json(
            rows.into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let labels: BTreeMap<String, String> =
                        serde_json::from_value(c.labels).unwrap_or_default();
                    ClusterView {
                        id: i as i64 + 1,
                        location: compat::location(&labels),
                        available_cpu: c.cpu_free,
                        available_ram: compat::ram(c.memory_free),
                        availability: c.ready,
                        acceleration: c.gpus > 0,
                        name: c.name,
                        ready: c.ready,
                        cpu_allocatable: c.cpu_allocatable,
                        cpu_free: c.cpu_free,
                        memory_allocatable: c.memory_allocatable,
                        memory_free: c.memory_free,
                        gpus: c.gpus,
                        labels,
                        message: c.message,
                        synced_at: c.synced_at,
                    }
                })
                .collect(),
        ))
    }

    /// Refresh the clusters from Karmada (enqueues `cluster-sync`).
    #[oai(
        path = "/clusters/sync",
        method = "post",
        operation_id = "syncClusters"
    )]
    async fn cluster_sync(&self) -> ApiResult<Accepted> {
        let e = self.queue.enqueue(&ClusterSyncJob {}).await?;
        Ok(Accepted::Accepted(Json(JobAccepted {
            job_id: e.id,
            kind: ClusterSyncJob::KIND.into(),
            graph: String::new(),
            status_url: format!("/jobs/{}", e.id),
            created: e.created,
            warnings: vec![],
        })))
    }

    /// The graphs of a project, by name. `limit` (1–1000) pages the list: a `Link: <…>;
    /// rel="next"` header then points at the next page (`after` = the last graph's
    /// `project/name`) while there may be more. Without `limit`, every graph.
    #[oai(
        path = "/project/:project/graphs",
        method = "get",
        operation_id = "listProjectGraphs"
    )]
    async fn list_graphs(
        &self,
        project: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
        #[oai(validator(pattern = r"^[^/\x00]+/[^/\x00]+$"))] after: Query<Option<String>>,
    ) -> ApiResult<GraphPage> {
        let base = format!("/project/{}/graphs", project.0);
        self.graph_page(Some(&project.0), &base, limit.0, after.0.as_deref())
            .await
    }

    /// Every graph, by project and name; paged as the graphs of a project are.
    #[oai(path = "/graphs", method = "get", operation_id = "listGraphs")]
    async fn all_graphs(
        &self,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
        #[oai(validator(pattern = r"^[^/\x00]+/[^/\x00]+$"))] after: Query<Option<String>>,
    ) -> ApiResult<GraphPage> {
        self.graph_page(None, "/graphs", limit.0, after.0.as_deref())
            .await
    }

    /// Deploy a graph: the body is an HDAG descriptor in YAML or JSON (any content type). It is
    /// validated (422 lists every problem), stored and its `deploy` job enqueued in one
    /// transaction (202). Re-posting a graph is an upgrade. `?dry_run=true` returns the placement
    /// and the objects that would be applied, storing nothing.
    #[oai(
        path = "/project/:project/graphs",
        method = "post",
        operation_id = "deployGraph"
    )]
    async fn deploy(
        &self,
        project: Path<String>,
        dry_run: Query<Option<bool>>,
        body: Binary<Vec<u8>>,
    ) -> ApiResult<DeployResponse> {
        valid_name("project", &project.0)?;
        if let Some(why) = manifests::reserved_namespace(&project.0) {
            return Err(ApiError::invalid(
                format!("project {:?} is reserved", project.0),
                vec![ProblemItem {
                    path: "project".into(),
                    message: why.into(),
                }],
            )
            .kind("reserved-name"));
        }
        // Deploy by reference: {"artifact": "oci://host/repo/name:tag" | "https://…/x.tar.gz"}.
        let mut bytes = body.0;
        let mut source = None;
        // A reference is a tiny JSON object: only small bodies are probed for one, so a large
        // descriptor is parsed once, off the async threads, and never here.
        if bytes.len() <= MAX_REFERENCE_BODY
            && let Ok(serde_json::Value::Object(m)) =
                serde_json::from_slice::<serde_json::Value>(&bytes)
            && !m.contains_key("hdaGraph")
            && let Some(r) = m.get("artifact")
        {
            let reference = r.as_str().ok_or_else(|| {
                ApiError::invalid(
                    "artifact must be a string",
                    vec![ProblemItem {
                        path: "artifact".into(),
                        message: "expected an oci:// or http(s):// reference".into(),
                    }],
                )
            })?;
            bytes = self.fetch_artifact(reference).await?;
            source = Some(reference.to_string());
        }
        // Older clients of the reference post the YAML as a JSON string: read what it holds.
        if bytes.first() == Some(&b'"')
            && let Ok(serde_json::Value::String(inner)) =
                serde_json::from_slice::<serde_json::Value>(&bytes)
        {
            bytes = inner.into_bytes();
        }
        if bytes.contains(&0) {
            return Err(ApiError::invalid(
                "the descriptor contains a NUL byte",
                vec![ProblemItem {
                    path: "body".into(),
                    message: "NUL characters cannot be stored".into(),
                }],
            )
            .kind("unstorable-value"));
        }
        let source = source.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        let parsed = self.parse_descriptor(bytes).await?;
        if dry_run.0.unwrap_or(false) {
            return Ok(DeployResponse::DryRun(Json(
                self.dry_run(parsed, &project.0).await?,
            )));
        }
        let graph = &parsed.graph;
        let warnings: Vec<ProblemItem> = parsed
            .warnings
            .iter()
            .map(|p| ProblemItem {
                path: p.path.clone(),
                message: p.message.clone(),
            })
            .collect();
        let descriptor =
            serde_json::to_value(graph).map_err(|e| ApiError::bad_request(e.to_string()))?;
        problem::no_nul_in(&serde_json::json!({ "hdaGraph": &descriptor }))?;
        let mut tx = self.pool.begin().await?;
        store::upsert_graph(
            &mut tx,
            &project.0,
            &graph.id,
            &graph.version,
            &descriptor,
            &source,
            &NewService::of_graph(graph),
            self.queue.now(),
        )
        .await?;
        let accepted = self
            .accept(
                &graph.id,
                DeployJob {
                    graph: graph.id.clone(),
                },
                warnings,
                &mut tx,
            )
            .await?;
        tx.commit().await?;
        Ok(DeployResponse::Accepted(Json(accepted)))
    }

    /// One graph: services, clusters, status, placement.
    #[oai(path = "/graphs/:name", method = "get", operation_id = "getGraph")]
    async fn get_graph(&self, name: Path<String>) -> ApiResult<Json<GraphDetail>> {
        let Some(stamp) = store::graph_stamp(&self.pool, &name.0).await? else {
            return Err(store::StoreError::GraphNotFound(name.0.clone()).into());
        };
        let cached = self
            .details
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&name.0)
            .filter(|(at, _)| *at == stamp)
            .map(|(_, d)| d.clone());
        if let Some(d) = cached {
            return Ok(Json(d));
        }
        let detail = self.render_graph(&name.0).await?;
        // Cached under the stamp read first: a write in between only makes the next read render again.
        let mut cache = self
            .details
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= DETAIL_CACHE {
            cache.clear();
        }
        cache.insert(name.0, (stamp, detail.clone()));
        Ok(Json(detail))
    }

    /// Remove a graph: its objects, dashboards and records (enqueues `remove`).
    #[oai(
        path = "/graphs/:name",
        method = "delete",
        operation_id = "removeGraph"
    )]
    async fn remove(&self, name: Path<String>) -> ApiResult<Accepted> {
        self.change(&name.0, Desired::Removed).await
    }

    /// Start a stopped graph (enqueues `start`).
    #[oai(
        path = "/graphs/:name/start",
        method = "post",
        operation_id = "startGraph"
    )]
    async fn start(&self, name: Path<String>) -> ApiResult<Accepted> {
        self.change(&name.0, Desired::Running).await
    }

    /// Stop a graph: its workloads are deleted, the graph is kept (enqueues `stop`).
    #[oai(
        path = "/graphs/:name/stop",
        method = "post",
        operation_id = "stopGraph"
    )]
    async fn stop(&self, name: Path<String>) -> ApiResult<Accepted> {
        self.change(&name.0, Desired::Stopped).await
    }

    /// Re-place a graph with its current placement as the baseline (enqueues `re-place`).
    #[oai(
        path = "/graphs/:name/placement",
        method = "post",
        operation_id = "replaceGraph"
    )]
    async fn re_place(&self, name: Path<String>) -> ApiResult<Accepted> {
        let mut tx = self.pool.begin().await?;
        let g = store::get_graph(&mut tx, &name.0).await?;
        if g.desired != Desired::Running {
            return Err(ApiError::conflict(format!(
                "graph {} is {}; only running graphs are re-placed",
                g.name, g.desired
            ))
            .kind("graph-not-running"));
        }
        let a = self
            .accept(
                &g.name,
                RePlaceJob {
                    graph: g.name.clone(),
                },
                vec![],
                &mut tx,
            )
            .await?;
        tx.commit().await?;
        Ok(Accepted::Accepted(Json(a)))
    }

    /// The jobs of a graph, newest first.
    #[oai(
        path = "/graphs/:name/jobs",
        method = "get",
        operation_id = "listGraphJobs"
    )]
    async fn graph_jobs(
        &self,
        name: Path<String>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<JobView>>> {
        let ids =
            store::graph_job_ids(&self.pool, &name.0, limit.0.unwrap_or(20).clamp(1, 1000)).await?;
        if ids.is_empty() {
            let mut conn = self.pool.acquire().await?;
            store::get_graph(&mut conn, &name.0).await?;
        }
        Ok(Json(
            self.queue
                .get_many(&ids)
                .await?
                .into_iter()
                .map(JobView::from)
                .collect(),
        ))
    }

    /// The decision log of a graph (placement, deploy, scaling …), newest first. Kept after removal.
    #[oai(
        path = "/graphs/:name/history",
        method = "get",
        operation_id = "graphHistory"
    )]
    async fn history(
        &self,
        name: Path<String>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<DecisionView>>> {
        let rows =
            store::decisions(&self.pool, &name.0, limit.0.unwrap_or(50).clamp(1, 10_000)).await?;
        if rows.is_empty() {
            let mut conn = self.pool.acquire().await?;
            store::get_graph(&mut conn, &name.0).await?;
        }
        Ok(Json(
            rows.into_iter()
                .map(|d| DecisionView {
                    id: d.id,
                    kind: d.kind,
                    job_id: d.job_id,
                    message: d.message,
                    inputs: d.inputs,
                    outcome: d.outcome,
                    at: d.at,
                })
                .collect(),
        ))
    }

    /// Alertmanager webhook: a firing alert whose labels name a graph and one of its pending
    /// conditional services enqueues `deploy-conditional` for it (once: repeats find the job or
    /// the service already deployed). For a `condition: ALL` service each event's firing and
    /// resolved notifications are recorded, and the job is enqueued only once every event is
    /// firing (configure Alertmanager with `send_resolved: true`). Other alerts are ignored and
    /// counted.
    #[oai(path = "/alerts", method = "post", operation_id = "postAlerts")]
    async fn alerts(&self, body: Binary<Vec<u8>>) -> ApiResult<Json<AlertsAccepted>> {
        let alerts = crate::monitoring::parse_alertmanager(&body.0).map_err(|e| {
            ApiError::invalid(
                format!("not an Alertmanager webhook: {e}"),
                vec![ProblemItem {
                    path: "body".into(),
                    message: e.to_string(),
                }],
            )
            .kind("invalid-webhook")
        })?;
        // Parsed (and size-checked) above; NUL cannot reach a label column.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body.0) {
            problem::no_nul_in(&v)?;
        }
        let mut jobs = Vec::new();
        let (mut ignored, mut waiting) = (0, Vec::new());
        let mut tx = self.pool.begin().await?;
        let now = self.queue.now();
        let mut ambiguous = Vec::new();
        for a in &alerts {
            let Some(service) = &a.service else {
                ignored += 1;
                continue;
            };
            let graph = match &a.graph {
                Some(g) => g.clone(),
                // The reference's rules label only the service (`alertname` = the event id):
                // the graph is the one whose pending service waits for that event.
                None => {
                    let owners: Vec<String> = store::graphs_awaiting(&mut tx, service)
                        .await?
                        .into_iter()
                        .filter(|g| {
                            serde_json::from_value::<Graph>(g.descriptor.clone())
                                .ok()
                                .and_then(|d| {
                                    d.service(service).map(|s| s.is_triggered_by(&a.alertname))
                                })
                                .unwrap_or(false)
                        })
                        .map(|g| g.name)
                        .collect();
                    match owners.as_slice() {
                        [] => {
                            ignored += 1;
                            continue;
                        }
                        [one] => one.clone(),
                        many => {
                            ambiguous.push(format!(
                                "{service}: event {} is awaited by graphs {}; add a graph label to the rule",
                                a.alertname,
                                many.join(", ")
                            ));
                            continue;
                        }
                    }
                }
            };
            let graph = &graph;
            let Some(g) = store::find_graph(&mut tx, graph).await? else {
                ignored += 1;
                continue;
            };
            let services = store::services(&mut tx, g.id).await?;
            if !services
                .iter()
                .any(|s| &s.name == service && s.conditional && s.status == ServiceStatus::Pending)
            {
                ignored += 1;
                continue;
            }
            // ANY / ALL: `hdag::conditional` decides.
            let descriptor: Option<Graph> = serde_json::from_value(g.descriptor.clone()).ok();
            let Some(spec) = descriptor.as_ref().and_then(|d| d.service(service)) else {
                ignored += 1;
                continue;
            };
            match conditional::on_alert(spec, &a.alertname, a.firing) {
                conditional::OnAlert::Ignore => {
                    ignored += 1;
                    continue;
                }
                conditional::OnAlert::Resolved => continue,
                conditional::OnAlert::Deploy => {}
                conditional::OnAlert::Record => {
                    let firing =
                        store::note_event(&mut tx, g.id, service, &a.alertname, a.firing, now)
                            .await?;
                    if !a.firing {
                        continue;
                    }
                    if !conditional::missing(spec, &firing).is_empty() {
                        waiting.push(format!("{graph}/{service}: {}", a.alertname));
                        continue;
                    }
                }
            }
            let args = reconcile::DeployConditionalJob {
                graph: graph.clone(),
                service: service.clone(),
                alert: a.alertname.clone(),
            };
            jobs.push(self.accept(graph, args, vec![], &mut tx).await?);
        }
        tx.commit().await?;
        let firing = alerts.iter().filter(|a| a.firing).count();
        Ok(Json(AlertsAccepted {
            firing,
            resolved: alerts.len() - firing,
            ignored,
            waiting,
            jobs,
            ambiguous,
        }))
    }

    /// A job: state, attempts, errors, timings.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "getJob")]
    async fn job(&self, id: Path<Uuid>) -> ApiResult<Json<JobView>> {
        Ok(Json(self.queue.get(id.0).await?.into()))
    }
}

/// The OpenAPI service.
pub fn api_service(
    pool: PgPool,
    registry: crate::settings::RegistrySettings,
) -> OpenApiService<SmoApi, ()> {
    service_of(SmoApi::new(pool, registry))
}

fn service_of(api: SmoApi) -> OpenApiService<SmoApi, ()> {
    OpenApiService::new(api, "smo", env!("CARGO_PKG_VERSION"))
        .description(
            "smo deploys application graphs (HDAGs) onto a Karmada federation. Mutations are recorded and \
             enqueued as jobs (202 + job id; follow GET /jobs/{id}). Errors are RFC 7807 problem documents. \
             When a token is configured, every route except /healthz, /readyz and /metrics needs `Authorization: Bearer <token>`.",
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

/// Routes open without a token (health checks and metrics scrapes).
const OPEN_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// poem-openapi's document plus what it cannot say: the bearer token, declared as a security
/// scheme that every route but the open ones accepts (and needs, when a token is configured:
/// hence the empty alternative, for a server run without one).
fn document_yaml(api: &OpenApiService<SmoApi, ()>) -> String {
    let mut doc: serde_json::Value =
        serde_json::from_str(&api.spec()).expect("poem-openapi writes JSON");
    doc["components"]["securitySchemes"]["bearerAuth"] = serde_json::json!({
        "type": "http",
        "scheme": "bearer",
        "description": "The API token (`api_token`); required on every route but the health checks and /metrics when the server has one.",
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, ops) in paths.iter_mut() {
            if OPEN_ROUTES.contains(&path.as_str()) {
                continue;
            }
            for op in ops.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                op["security"] = serde_json::json!([{ "bearerAuth": [] }, {}]);
            }
        }
    }
    serde_norway::to_string(&doc).expect("a JSON document is YAML")
}

fn too_large() -> ApiError {
    ApiError::too_large(format!("the request body exceeds {MAX_BODY_BYTES} bytes"))
}

/// Every route the API serves, as templates with their methods (kept equal to the OpenAPI
/// document by a test): metric labels, and the `Allow` header of a 405.
const ROUTES: &[(&str, &str)] = &[
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/metrics", "GET"),
    ("/clusters", "GET"),
    ("/clusters/sync", "POST"),
    ("/project/{project}/graphs", "GET, POST"),
    ("/graphs", "GET"),
    ("/graphs/{name}", "GET, DELETE"),
    ("/graphs/{name}/start", "POST"),
    ("/graphs/{name}/stop", "POST"),
    ("/graphs/{name}/placement", "POST"),
    ("/graphs/{name}/jobs", "GET"),
    ("/graphs/{name}/history", "GET"),
    ("/alerts", "POST"),
    ("/jobs/{id}", "GET"),
];

/// The label of paths no route serves: one series for every 404 of an unknown path, so a
/// scanner cannot grow /metrics without bound.
const UNMATCHED: &str = "unmatched";

/// The route template of a path, so metrics do not get one series per graph or job, and never a
/// label from an unknown path.
fn route_of(path: &str) -> &'static str {
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
        .find(|(r, _)| *r == templ)
        .map_or(UNMATCHED, |(r, _)| *r)
}

/// True for the console's paths (`/console` and below).
fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// True when the client prefers HTML (a browser's navigation), not an API client.
fn accepts_html(req: &Request) -> bool {
    req.method() == poem::http::Method::GET
        && req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The method label: the standard methods by name, any other (clients may send any token) as one.
fn method_of(method: &poem::http::Method) -> &'static str {
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
fn nul_path_parameter(path: &str, route: &str) -> Option<&'static str> {
    if !path.contains("%00") {
        return None;
    }
    let templates: Vec<&'static str> = ROUTES
        .iter()
        .find(|(r, _)| *r == route)
        .map(|(r, _)| r.trim_matches('/').split('/').collect())
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
fn problem_response(status: StatusCode, kind: &str, title: &str, detail: String) -> Response {
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
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "Payload too large"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        s if s.is_server_error() => ("internal", "Internal error"),
        _ => ("bad-request", "Bad request"),
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
    let shared = SmoApi::new(pool, registry);
    let console = console::routes(shared.clone(), token.as_deref(), console);
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
    let token = token.filter(|t| !t.is_empty()).map(Arc::new);
    Route::new()
        .nest("/", api)
        .nest("/ui", ui)
        .nest("/docs", docs)
        .nest("/console", console)
        .at("/openapi.yaml", spec)
        .around(move |ep, mut req: Request| {
            let token = token.clone();
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
                if let Some(t) = token {
                    // The console signs browsers in with a session cookie of its own.
                    let open =
                        OPEN_ROUTES.contains(&req.uri().path()) || is_console(req.uri().path());
                    let given = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().split_once(' '))
                        // RFC 9110: the scheme is case-insensitive.
                        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                        .map(|(_, token)| token.trim());
                    if !open && given != Some(t.as_str()) {
                        let mut r = ApiError::unauthorized().into_response();
                        r.headers_mut().insert(
                            "www-authenticate",
                            poem::http::HeaderValue::from_static("Bearer realm=\"smo\""),
                        );
                        return Ok(r);
                    }
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
                let resp = ep.call(req).await.map(IntoResponse::into_response);
                // RFC 9110: a 405 lists the methods the route has.
                let mut resp = match resp {
                    Ok(r) => r,
                    Err(e) => problem_for(e).await,
                };
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some((_, methods)) = ROUTES.iter().find(|(p, _)| *p == route)
                {
                    // The reference's Flask-era clients GET what is now a POST: name the route.
                    resp = problem_response(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method-not-allowed",
                        "Method not allowed",
                        format!("{asked} {path} is not served; use {methods} {path}"),
                    );
                    resp.headers_mut()
                        .insert("allow", poem::http::HeaderValue::from_static(methods));
                } else if resp.status() == StatusCode::NOT_FOUND
                    && path.len() > 1
                    && path.ends_with('/')
                    && route != UNMATCHED
                {
                    let trimmed = path.trim_end_matches('/');
                    resp = problem_response(
                        StatusCode::NOT_FOUND,
                        "not-found",
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
            .map(|(r, m)| (r.to_string(), m.to_string()))
            .collect();
        paths.sort_unstable();
        routes.sort_unstable();
        assert_eq!(routes, paths);
    }
}
