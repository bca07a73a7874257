//! What the API answers: the response bodies and their status variants (poem-openapi objects).

use super::*;

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
    #[oai(nullable)]
    pub artifact_ref: Option<String>,
    /// Compatibility (reference SMO): the cluster it is placed on (`cluster`).
    #[oai(nullable)]
    pub cluster_affinity: Option<String>,
    /// Compatibility (reference SMO): `intent.compute.cpu` as written.
    #[oai(nullable)]
    pub cpu: Option<String>,
    /// Compatibility (reference SMO): `intent.compute.ram` as written.
    #[oai(nullable)]
    pub memory: Option<String>,
    /// Compatibility (reference SMO): `intent.compute.storage` as written.
    #[oai(nullable)]
    pub storage: Option<String>,
    /// Compatibility (reference SMO): the chart's `valuesOverwrite`.
    pub values_overwrite: serde_json::Value,
    /// Compatibility (reference SMO): the alert rule (or rules) that deploy this conditional
    /// service; null for others.
    #[oai(nullable)]
    pub alert: Option<serde_json::Value>,
    /// Compatibility (reference SMO): `ociConfig.type`.
    #[oai(nullable)]
    pub artifact_type: Option<String>,
    /// Compatibility (reference SMO): `ociConfig.implementer` (`HELM`, `WOT`).
    #[oai(nullable)]
    pub artifact_implementer: Option<String>,
    /// Compatibility (reference SMO): the service's dashboard URL, when published.
    #[oai(nullable)]
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
    #[oai(nullable)]
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
    #[oai(nullable)]
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

/// One entry of a member cluster's health history.
#[derive(Debug, Object)]
pub struct ClusterEventView {
    /// The cluster.
    pub cluster: String,
    /// When.
    pub at: DateTime<Utc>,
    /// ready | not-ready | lost | failover | recovered | failback.
    pub event: String,
    /// What was seen or done.
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
    /// Figures (a failover's solve time, moves, graphs that did not fit …).
    pub data: serde_json::Value,
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
pub(super) enum Accepted {
    /// The request is recorded and its job enqueued.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>),
}

#[derive(ApiResponse)]
pub(super) enum GraphPage {
    /// The graphs; with `limit`, a `Link` header to the next page while there may be more.
    #[oai(status = 200)]
    Ok(
        RawJson<Vec<GraphSummary>>,
        #[oai(header = "Link")] Option<String>,
    ),
}

/// A JSON body serialised once, documented as `T`: lists go out as PostgreSQL wrote them, a
/// graph's detail as it was rendered into the API's cache. `Bytes`, so that serving a cached body
/// shares it rather than copying it.
pub struct RawJson<T>(
    pub(super) bytes::Bytes,
    pub(super) std::marker::PhantomData<fn() -> T>,
);

impl<T: poem_openapi::types::ToJSON> RawJson<T> {
    /// `value` serialised as [`poem_openapi::payload::Json`] would have sent it.
    pub(super) fn of(value: &T) -> Self {
        Self(value.to_json_string().into(), std::marker::PhantomData)
    }
}

impl<T> Clone for RawJson<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), std::marker::PhantomData)
    }
}

impl<T: poem_openapi::types::Type> poem_openapi::ApiResponse for RawJson<T> {
    fn meta() -> poem_openapi::registry::MetaResponses {
        use poem_openapi::payload::Payload as _;
        poem_openapi::registry::MetaResponses {
            responses: vec![poem_openapi::registry::MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![poem_openapi::registry::MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }
}

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
pub(super) fn next_link(base: &str, limit: i64, last: &str) -> String {
    format!(
        "<{base}?limit={limit}&after={}>; rel=\"next\"",
        console::view::url_enc(last)
    )
}

#[derive(ApiResponse)]
pub(super) enum DeployResponse {
    /// The graph is stored and its deploy job enqueued.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>),
    /// Dry run: nothing stored, nothing enqueued.
    #[oai(status = 200)]
    DryRun(Json<DryRun>),
}

#[derive(ApiResponse)]
pub(super) enum Ready {
    /// The database answers.
    #[oai(status = 200)]
    Ok(PlainText<String>),
    /// The database does not answer.
    #[oai(status = 503)]
    Unavailable(PlainText<String>),
}
