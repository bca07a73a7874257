//! `/graphs`, `/projects/{project}/graphs`: upload (or dry-run), read, start, stop, re-place and remove application graphs, their jobs and decision history.

use super::*;
use smo_core::model::ProblemKind;

route_type!(
    /// `/graphs`, `/projects/{project}/graphs` routes.
    GraphsApi
);

#[OpenApi]
impl GraphsApi {
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
        req: &poem::Request,
        project: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
        #[oai(validator(pattern = r"^[^/\x00]+/[^/\x00]+$"))] after: Query<Option<String>>,
    ) -> ApiResult<GraphPage> {
        let base = format!("/project/{}/graphs", project.0);
        let caller = super::audit::caller_of(req);
        self.graph_page(
            &caller,
            Some(&project.0),
            &base,
            limit.0,
            after.0.as_deref(),
        )
        .await
    }

    /// Every graph, by project and name; paged as the graphs of a project are.
    #[oai(path = "/graphs", method = "get", operation_id = "listGraphs")]
    async fn all_graphs(
        &self,
        req: &poem::Request,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
        #[oai(validator(pattern = r"^[^/\x00]+/[^/\x00]+$"))] after: Query<Option<String>>,
    ) -> ApiResult<GraphPage> {
        let caller = super::audit::caller_of(req);
        self.graph_page(&caller, None, "/graphs", limit.0, after.0.as_deref())
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
    pub(super) async fn deploy(
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
            .kind(ProblemKind::ReservedName));
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
            .kind(ProblemKind::UnstorableValue));
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
                    // The validator checked the id with the same rule: failing here is smo's bug.
                    graph: hdag::GraphName::parse(graph.id.as_str())
                        .map_err(|e| ApiError::internal(e.to_string()))?,
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
    async fn get_graph(&self, name: Path<String>) -> ApiResult<RawJson<GraphDetail>> {
        let Some(stamp) = store::graph_stamp(&self.pool, &name.0).await? else {
            return Err(store::StoreError::GraphNotFound(name.0.clone()).into());
        };
        if let Some(d) = self.details.get(&name.0, &stamp) {
            return Ok(d);
        }
        let detail = RawJson::of(&self.render_graph(&name.0).await?);
        // Kept under the stamp read first: a write in between only makes the next read render again.
        self.details.put(name.0, stamp, detail.clone());
        Ok(detail)
    }

    /// Remove a graph: its objects, dashboards and records (enqueues `remove`).
    #[oai(
        path = "/graphs/:name",
        method = "delete",
        operation_id = "removeGraph"
    )]
    pub(super) async fn remove(&self, name: Path<String>) -> ApiResult<Accepted> {
        self.change(&name.0, Desired::Removed).await
    }

    /// Start a stopped graph (enqueues `start`).
    #[oai(
        path = "/graphs/:name/start",
        method = "post",
        operation_id = "startGraph"
    )]
    pub(super) async fn start(&self, name: Path<String>) -> ApiResult<Accepted> {
        self.change(&name.0, Desired::Running).await
    }

    /// Stop a graph: its workloads are deleted, the graph is kept (enqueues `stop`).
    #[oai(
        path = "/graphs/:name/stop",
        method = "post",
        operation_id = "stopGraph"
    )]
    pub(super) async fn stop(&self, name: Path<String>) -> ApiResult<Accepted> {
        self.change(&name.0, Desired::Stopped).await
    }

    /// Re-place a graph with its current placement as the baseline (enqueues `re-place`).
    #[oai(
        path = "/graphs/:name/placement",
        method = "post",
        operation_id = "replaceGraph"
    )]
    pub(super) async fn re_place(&self, name: Path<String>) -> ApiResult<Accepted> {
        let mut tx = self.pool.begin().await?;
        let g = store::get_graph(&mut tx, &name.0).await?;
        if g.desired != Desired::Running {
            return Err(ApiError::conflict(format!(
                "graph {} is {}; only running graphs are re-placed",
                g.name, g.desired
            ))
            .kind(ProblemKind::GraphNotRunning));
        }
        let a = self
            .accept(
                g.name.as_str(),
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
                    kind: d.kind.to_string(),
                    job_id: d.job_id,
                    message: d.message,
                    inputs: d.inputs,
                    outcome: d.outcome,
                    at: d.at,
                })
                .collect(),
        ))
    }
}
