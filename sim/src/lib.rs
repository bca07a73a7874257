//! `smo-sim` (`smo sim`): a simulated Karmada federation that speaks the Kubernetes REST API, so
//! smo and its tests reach it through exactly the code paths they use against a real Karmada (a
//! `kube::Client` on `http://127.0.0.1:PORT`, no auth), and real clients (kubectl, Helm's engine)
//! work against it; plus `/metrics` for Prometheus and the slice of Grafana's API smo uses. A test
//! and demo tool in its own crate: it knows nothing of smo.
//!
//! What it serves:
//! - Kubernetes: `/version`, `/healthz`, discovery (`/api`, `/apis`, `/api/v1`, `/apis/{g}[/{v}]`);
//!   `namespaces`, `services` (core v1); `deployments` (+`/scale`, `/status`, apps/v1);
//!   `clusters` (cluster.karmada.io/v1alpha1); `propagationpolicies`, `overridepolicies`
//!   (policy.karmada.io/v1alpha1); `serviceexports`, `serviceimports` (multicluster.x-k8s.io/v1alpha1);
//!   `prometheusrules`, `servicemonitors` (monitoring.coreos.com/v1); `resourcebindings`
//!   (work.karmada.io/v1alpha2) and `works` (work.karmada.io/v1alpha1), written by the
//!   simulation; and what Helm charts carry, stored as
//!   given: `configmaps`, `secrets`, `serviceaccounts`, `persistentvolumeclaims`, `statefulsets`,
//!   `daemonsets`, `jobs`, `cronjobs`, `ingresses`, `networkpolicies`, `roles`, `rolebindings`,
//!   `clusterroles`, `clusterrolebindings`, `storageclasses`, `poddisruptionbudgets`,
//!   `horizontalpodautoscalers`; `validatingadmissionpolicies` and
//!   `validatingadmissionpolicybindings` (admissionregistration.k8s.io/v1), enforced. Verbs: list (label and field selectors, also across namespaces),
//!   get, create, replace, patch (apply, merge, strategic-as-merge, JSON patch), delete,
//!   deletecollection, and `/status` for every kind; `dryRun` honoured; watch (below). Bodies in JSON,
//!   YAML (apply) or, for Secrets, ConfigMaps, Namespaces, DeleteOptions and every kind `kubectl
//!   create` makes (Deployments, Services, ServiceAccounts, Roles, ClusterRoles, RoleBindings,
//!   ClusterRoleBindings, Jobs, CronJobs), Kubernetes protobuf (what typed clients such as Helm's
//!   release storage and `kubectl create` send).
//! - OpenAPI v3 (`/openapi/v3`): every kind, with `fieldValidation`; the real schemas of the
//!   custom kinds when given their CRDs ([`crd_schemas`], `smo sim --crds DIR`), and of the
//!   built-in kinds when given Kubernetes' own ([`kubernetes_schemas`], `smo sim
//!   --kubernetes-schemas DIR`), else open objects. Writes are validated against the schemas
//!   given (types, required fields, enums, int-or-string; unknown fields only under
//!   `fieldValidation=Strict`): 422 naming every field, as for a CRD's schema.
//! - Admin: `GET /sim/state`, `GET /sim/placements`, `POST /sim/clusters` (add a [`SimCluster`]),
//!   `POST /sim/clusters/{name}/ready {"ready": bool | "unknown"}`, `POST /sim/load {"service", "namespace", "rate"}`,
//!   `GET /sim/writes`: the write log ([`WriteRecord`]: every write in the order applied, with the
//!   object it named, the writer's fencing token and its [`Effect`]; the last 100,000).
//! - `GET /metrics`; Grafana: `POST /api/dashboards/db`, `GET|DELETE /api/dashboards/uid/{uid}`,
//!   `GET /api/search`.
//!
//! Decisions (where a real Karmada is more complicated):
//! - Server-side apply merges the applied object over the live one (objects recursively, lists
//!   replaced, `null` deletes) and records one `managedFields` entry per manager; fields the same
//!   manager applied before and omits now are removed. Applying a field another manager owns
//!   with another value is a 409 naming each conflict (`Apply failed with 1 conflict: conflict
//!   with "kubectl" using apps/v1: .spec.replicas`, causes `FieldManagerConflict`) unless
//!   `force=true`, which takes the fields over; updates (PUT, other patches, `/scale`) take
//!   ownership of what they change under their `fieldManager` or user agent. Lists are owned
//!   whole. A write that changes nothing keeps the resourceVersion.
//! - Namespaced writes into a missing namespace get 404 NotFound for the namespace, as from a real
//!   apiserver (smo must create namespaces); `auto_create_namespaces: true` creates them instead.
//!   Deleting a namespace deletes its objects at once.
//! - Scheduling follows Karmada: without `spec.placement.replicaScheduling` every selected cluster
//!   runs `spec.replicas` (Duplicated); with it, the type defaults to Divided, which spreads
//!   replicas evenly (or by static weights, by `dynamicWeight: AvailableReplicas`, or packed for
//!   `Aggregated`). Only Ready clusters are selected. Replicas that do not fit stay unavailable
//!   and count as `allocating` on their cluster, as pending pods do in Karmada's summary.
//! - Admission: ValidatingAdmissionPolicies are data, as in kube-apiserver. A policy bound with
//!   `validationActions: [Deny]` decides the CREATE, UPDATE and DELETE requests its rules match by
//!   evaluating its CEL `validations` (the `cel` crate) with `object` and `oldObject` bound, and a
//!   false one refuses the write with its `messageExpression` (or `message`) and reason
//!   (`... is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: ...`). Each
//!   policy is compiled once, when written; one that does not compile is refused with 422. The
//!   sim starts with smo's `deploy/fence-policy.yaml` installed (a write may not lower an
//!   object's `smo.io/fence` token); what is not supported is listed in `admission`.
//! - Main-resource writes never change `status`; the simulation owns Deployment, StatefulSet,
//!   DaemonSet and Cluster status and writes a ResourceBinding (`<name>-deployment`,
//!   `<name>-statefulset`, `<name>-daemonset`) per propagated workload with the scheduling result
//!   and each member's status. StatefulSets are scheduled as Deployments are, DaemonSets as a pod
//!   per node of every cluster their policy picks (replica division does not apply; the binding
//!   says 0 replicas); both get an apiserver's defaults, so `kubectl rollout status` works. Jobs
//!   complete as soon as they exist (no pods run). The reconcile is incremental (`module
//!   reconcile`): a write costs what it can affect; `GET /sim/state` reports the work done.
//! - Watch (`?watch=true` on every list path, `module watch`): newline-delimited events from a
//!   change log of the last 8,192 changes; `resourceVersion` resumes, an older one gets an
//!   `ERROR` event with 410 Expired; `sendInitialEvents=true` (the watch-list protocol Helm's
//!   `--wait` and client-go informers use) ends its `ADDED` events with a `BOOKMARK` annotated
//!   `k8s.io/initial-events-end`; `allowWatchBookmarks`, `timeoutSeconds`, label and field
//!   selectors; `as=Table` for `kubectl get -w`. ReplicaSets and Pods are served (none exist: no
//!   controller makes them on a Karmada API server) because status readers list them.
//! - CustomResourceDefinitions (apiextensions.k8s.io/v1) written through the API register their
//!   kinds, as an apiserver does: served at their paths, in discovery and `/openapi/v3` with the
//!   CRD's schema, which writes are validated against; the CRD is marked `Established`; deleting
//!   it deletes its objects. (A chart that ships CRDs installs; the kinds' short names and
//!   printer columns are not served.)
//! - ClusterPropagationPolicies select Deployments across namespaces (a selector's `namespace`
//!   narrows one); a PropagationPolicy that selects a Deployment wins over any of them, as in
//!   Karmada. A cluster set `"unknown"` (`POST /sim/clusters/{name}/ready`) reports Ready=Unknown
//!   (`ClusterStatusUnknown`) and the `cluster.karmada.io/unreachable` taints; one set not ready
//!   reports Ready=False and `cluster.karmada.io/not-ready`, each as NoSchedule and NoExecute
//!   (Karmada with its Failover feature). NoSchedule keeps new scheduling off the cluster and
//!   moves nothing; what runs there stays, not ready, until the NoExecute toleration of its
//!   policy (`placement.clusterTolerations`, else Karmada's default 300 s) runs out (at the first
//!   request after), then is scheduled again without it. A change to the workload or its policy
//!   schedules it again at once.
//! - `spreadConstraints` by `cluster`: at most `maxGroups` clusters (most room first), none when
//!   fewer than `minGroups` are eligible; other `spreadByField`s are not simulated.
//! - What each member cluster is sent is a Work (`work.karmada.io/v1alpha1`) in its execution
//!   namespace `karmada-es-<cluster>`: the resource template with the cluster's share of
//!   replicas (when divided) and the rules of the OverridePolicies that select the workload and
//!   pick the cluster applied (`module overrides`: image, command, args, labels, annotations and
//!   plaintext overriders); a Work goes when its workload leaves the cluster.
//! - Not simulated: ClusterOverridePolicies, `clusterAffinities`, ClusterResourceBindings,
//!   graceful eviction; Works of kinds other than Deployments, StatefulSets and DaemonSets.
//! - `kubectl get` gets Tables (`as=Table`) with the kind's columns for Deployments, StatefulSets,
//!   Services, Namespaces, Secrets, ConfigMaps, Clusters and ResourceBindings; NAME and AGE for
//!   the rest, as for a CRD without printer columns.

mod admission;
mod api;
mod config;
mod grafana;
mod metrics;
mod overrides;
mod proto;
mod reconcile;
mod schemas;
mod simulate;
mod store;
pub use store::{FENCE_ANNOTATION, FENCE_POLICY};
mod table;
#[cfg(test)]
mod tests;
mod watch;
mod writes;

pub use config::*;
pub use writes::*;

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use poem::{Endpoint, Request, Response, http::StatusCode, listener::TcpAcceptor};
use serde::{Deserialize, Deserializer, Serialize};

use self::{
    grafana::Dashboards,
    metrics::Traffic,
    reconcile::reconcile,
    simulate::{ClusterState, Placement, cluster_object},
    store::{ObjKey, Res, Store},
};

/// Everything the simulation holds; one lock, so every request sees a consistent world.
pub(crate) struct State {
    store: Store,
    clusters: BTreeMap<String, ClusterState>,
    placements: BTreeMap<store::ObjKey, Placement>,
    /// What the reconcile keeps between runs, so that a write costs what it touches.
    memo: reconcile::Memo,
    traffic: Traffic,
    dashboards: Dashboards,
    write_latency_ms: u64,
    /// Every write request, newest last (bounded): the audit log of `GET /sim/writes`.
    writes: std::collections::VecDeque<WriteRecord>,
    /// A write changed what the simulation computes since its last reconcile (see `api::handle`).
    stale: bool,
    /// Clusters added at run time (`POST /sim/clusters`), kept by the state file with the
    /// readiness and load set at run time.
    added: BTreeMap<String, SimCluster>,
}

/// Puts back what the state file kept of the run time: clusters added, readiness set, load set.
/// Returns how many clusters were added back.
fn restore_run_time(st: &mut State, saved: &serde_json::Value) -> usize {
    let mut added = 0;
    for c in saved["added_clusters"].as_array().into_iter().flatten() {
        let Ok(c) = serde_json::from_value::<SimCluster>(c.clone()) else {
            continue;
        };
        if c.validate().is_err() || st.clusters.contains_key(&c.name) {
            continue;
        }
        let key = store::ObjKey::new(Res::Cluster, "", &c.name);
        if st.store.get(&key).is_none()
            && st
                .store
                .create(Res::Cluster, "", cluster_object(&c))
                .is_err()
        {
            continue;
        }
        st.clusters
            .insert(c.name.clone(), ClusterState::from_config(&c));
        st.added.insert(c.name.clone(), c);
        added += 1;
    }
    for (name, ready) in saved["ready"].as_object().into_iter().flatten() {
        if let (Some(c), Some(r)) = (st.clusters.get_mut(name), ready.as_bool()) {
            c.ready = r;
        }
    }
    let now = Instant::now();
    for l in saved["loads"].as_array().into_iter().flatten() {
        if let (Some(ns), Some(svc), Some(rate)) = (
            l["namespace"].as_str(),
            l["service"].as_str(),
            l["rate"].as_f64(),
        ) {
            st.traffic.set_rate(ns, svc, rate, now);
        }
    }
    added
}

/// A simulated federation. Cheap to clone: clones share the same state.
#[derive(Clone)]
pub struct Sim {
    state: Arc<Mutex<State>>,
    /// Woken after every write, so watches stream at once.
    changed: Arc<tokio::sync::Notify>,
    /// The state file and whether the store changed since it was last written.
    persist: Option<Arc<Persist>>,
}

struct Persist {
    path: std::path::PathBuf,
    dirty: std::sync::atomic::AtomicBool,
}

impl Sim {
    /// Builds the federation: system namespaces, one `Cluster` per configured cluster, statuses
    /// computed. Invalid clusters are skipped with a warning (call [`SimConfig::validate`] first
    /// to refuse them instead).
    pub fn new(config: SimConfig) -> Self {
        let mut store = Store::default();
        store.auto_create_namespaces = config.auto_create_namespaces;
        store.schemas = config.schemas.clone();
        for ns in [
            "default",
            "kube-system",
            "kube-public",
            "karmada-system",
            "karmada-cluster",
        ] {
            let _ = store.create(
                Res::Namespace,
                "",
                serde_json::json!({"metadata": {"name": ns}}),
            );
        }
        // smo's fencing policy, in force as on a Karmada API server it was applied to.
        for doc in admission::documents(admission::FENCE_POLICY_YAML).unwrap_or_default() {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let created = Res::ALL
                .into_iter()
                .find(|r| r.meta().kind == kind)
                .map(|res| store.create(res, "", doc.clone()));
            if !matches!(created, Some(Ok(_))) {
                tracing::warn!(kind, "deploy/fence-policy.yaml: not installed: {created:?}");
            }
        }
        let mut clusters = BTreeMap::new();
        for c in &config.clusters {
            if let Err(e) = c.validate() {
                tracing::warn!("skipping simulated cluster: {e}");
                continue;
            }
            if store.create(Res::Cluster, "", cluster_object(c)).is_ok() {
                clusters.insert(c.name.clone(), ClusterState::from_config(c));
            }
        }
        let rate = if config.default_rate.is_finite() {
            config.default_rate.max(0.0)
        } else {
            default_rate()
        };
        let mut state = State {
            store,
            clusters,
            placements: BTreeMap::new(),
            memo: Default::default(),
            traffic: Traffic::new(rate),
            dashboards: Dashboards::default(),
            write_latency_ms: config.write_latency_ms,
            writes: Default::default(),
            stale: false,
            added: BTreeMap::new(),
        };
        let persist = config.state_file.as_ref().map(|path| {
            match std::fs::read(path) {
                Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(saved) => {
                        let n = state.store.restore(&saved);
                        let extras = restore_run_time(&mut state, &saved);
                        tracing::info!(objects = n, clusters_added = extras, path = %path.display(), "sim state restored");
                    }
                    Err(e) => tracing::warn!(path = %path.display(), "sim state unreadable, starting empty: {e}"),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %path.display(), "sim state unreadable, starting empty: {e}"),
            }
            Arc::new(Persist {
                path: path.clone(),
                dirty: std::sync::atomic::AtomicBool::new(false),
            })
        });
        reconcile(&mut state, Instant::now());
        Sim {
            state: Arc::new(Mutex::new(state)),
            changed: Arc::new(tokio::sync::Notify::new()),
            persist,
        }
    }

    /// Adds the objects of a saved state (the state file's format: `{"resourceVersion", "objects":
    /// [{"seq", "object"}]}`) without a state file, e.g. a benchmark's thousands of Deployments;
    /// returns how many were loaded.
    pub fn load_objects(&self, saved: &serde_json::Value) -> usize {
        self.with_state(|st| {
            let n = st.store.restore(saved);
            reconcile(st, Instant::now());
            n
        })
    }

    /// Writes the state file now if anything changed (atomically: a temporary file, renamed).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(p) = &self.persist else {
            return Ok(());
        };
        if !p.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let snapshot = self.with_state(|st| {
            let mut s = st.store.snapshot();
            s["added_clusters"] = serde_json::json!(st.added.values().collect::<Vec<_>>());
            s["ready"] = st.clusters.iter().map(|(n, c)| (n.clone(), serde_json::json!(c.ready))).collect();
            s["loads"] = st
                .traffic
                .rates()
                .iter()
                .map(|((ns, svc), r)| serde_json::json!({"namespace": ns, "service": svc, "rate": r}))
                .collect();
            s
        });
        let tmp = p.path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &p.path)
    }

    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// The HTTP endpoint serving every route of the simulation, to mount or serve as-is.
    pub fn router(&self) -> impl Endpoint<Output = Response> + 'static {
        let sim = self.clone();
        poem::endpoint::make(move |req: Request| {
            let sim = sim.clone();
            async move { sim.respond(req).await }
        })
    }

    async fn respond(&self, req: Request) -> Response {
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let content_type = req
            .headers()
            .get(poem::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let header = |name: poem::http::header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let accept = header(poem::http::header::ACCEPT);
        let user_agent = header(poem::http::header::USER_AGENT);
        let received = chrono::Utc::now();
        if method == "GET" && watch::wanted(&api::parse_query(&query)) {
            tracing::debug!(%path, %query, %accept, "sim watch");
            return self.watch(&path, &query, &accept);
        }
        let body = req.into_body().into_vec().await.unwrap_or_default();
        let latency = self.with_state(|st| st.write_latency_ms);
        if latency > 0 && method != "GET" {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let logged = method != "GET" && method != "HEAD" && !path.starts_with("/sim");
        let target = logged.then(|| api::target_of(&path)).flatten();
        let dry_run = logged && api::parse_query(&query).contains_key("dryRun");
        let fence = match (logged, method.as_str()) {
            (true, "POST" | "PUT" | "PATCH") => written_token(&body),
            _ => None,
        };
        let r = self.with_state(|st| {
            let version = |st: &State, key: &ObjKey| {
                st.store
                    .get(key)
                    .map(|o| store::str_at(o, "/metadata/resourceVersion").to_string())
            };
            let named = target.and_then(|(res, ns, name)| name.map(|n| ObjKey::new(res, ns, n)));
            let before = named.as_ref().map(|k| version(st, k));
            let r = api::handle(
                st,
                &api::Req {
                    method: &method,
                    path: &path,
                    query: &query,
                    content_type: &content_type,
                    accept: &accept,
                    user_agent: &user_agent,
                    body: &body,
                },
            );
            if logged {
                // A create by POST names its object in the body: read the name off the answer.
                let named = named.or_else(|| match target {
                    Some((res, ns, None)) if method == "POST" && r.status == 201 => {
                        serde_json::from_slice::<serde_json::Value>(&r.body)
                            .ok()
                            .map(|o| ObjKey::new(res, ns, store::str_at(&o, "/metadata/name")))
                    }
                    _ => None,
                });
                let effect = match (&named, before) {
                    _ if dry_run => None,
                    (Some(key), Some(before)) if r.status < 400 => {
                        Effect::of(before.as_deref(), version(st, key).as_deref())
                    }
                    (Some(_), None) if r.status == 201 => Some(Effect::Created),
                    _ => None,
                };
                if st.writes.len() == WRITE_LOG_LIMIT {
                    st.writes.pop_front();
                }
                st.writes.push_back(WriteRecord {
                    received: received.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    source: user_agent.clone(),
                    method: method.clone(),
                    path: if query.is_empty() {
                        path.clone()
                    } else {
                        format!("{path}?{query}")
                    },
                    status: r.status,
                    kind: target
                        .map(|(res, ..)| res.meta().kind.to_string())
                        .unwrap_or_default(),
                    namespace: target.map(|(_, ns, _)| ns.to_string()).unwrap_or_default(),
                    name: named.map(|k| k.name).unwrap_or_default(),
                    fence,
                    effect,
                });
            }
            r
        });
        if let Some(p) = &self.persist
            && method != "GET"
            && r.status < 400
        {
            p.dirty.store(true, std::sync::atomic::Ordering::Release);
        }
        if method != "GET" && method != "HEAD" {
            self.changed.notify_waiters();
        }
        tracing::debug!(%method, %path, %query, status = r.status, "sim request");
        Response::builder()
            .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .content_type(r.content_type)
            .body(r.body)
    }

    /// A watch: the first events at once, then a task streaming changes into the response body.
    fn watch(&self, path: &str, query: &str, accept: &str) -> Response {
        let error = |e: &store::ApiError| {
            Response::builder()
                .status(StatusCode::from_u16(e.code()).unwrap_or(StatusCode::BAD_REQUEST))
                .content_type("application/json")
                .body(e.status_json().to_string())
        };
        let Some((res, ns, name)) = api::target_of(path) else {
            return error(&store::ApiError::NoRoute);
        };
        let spec = match watch::Spec::parse(res, Some(ns), name, &api::parse_query(query), accept) {
            Ok(s) => s,
            Err(e) => return error(&e),
        };
        let started = self.with_state(|st| watch::start(st, &spec));
        let (reader, writer) = tokio::io::duplex(64 * 1024);
        match started {
            Ok((first, at)) => {
                tokio::spawn(watch::run(
                    self.state.clone(),
                    self.changed.clone(),
                    spec,
                    first,
                    at,
                    writer,
                ));
            }
            Err(gone) => {
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt as _;
                    let mut w = writer;
                    let _ = w.write_all(&gone).await;
                });
            }
        }
        Response::builder()
            .status(StatusCode::OK)
            .content_type("application/json")
            .body(poem::Body::from_async_read(reader))
    }

    /// Serves on `addr` (port 0 for any free port) in a background task of the current Tokio
    /// runtime; returns the bound address and a handle that stops the server when dropped.
    pub fn spawn_on(&self, addr: &str) -> std::io::Result<(SocketAddr, SimHandle)> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let listener = std::net::TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(serve(self.clone(), listener, async move {
            let _ = rx.await;
        }));
        Ok((
            local,
            SimHandle {
                shutdown: Some(tx),
                task: Some(task),
            },
        ))
    }
}

impl Sim {
    /// Serves on `addr` as [`Sim::spawn_on`] does, but on a runtime of its own (two threads, all
    /// named `smo-sim`), as `smo sim` in a process of its own would: the simulation's work,
    /// serialised by its state lock, then never holds up the caller's runtime threads (a
    /// benchmark running smo's workers in the same process measures smo, not smo waiting on a
    /// lock it shares), and its CPU is told apart by thread name.
    pub fn spawn_apart(&self, addr: &str) -> std::io::Result<(SocketAddr, SimHandle)> {
        let host = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let listener = std::net::TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let sim = self.clone();
        std::thread::Builder::new()
            .name("smo-sim".into())
            .spawn(move || {
                let served = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("smo-sim")
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(serve(sim, listener, async move {
                            let _ = rx.await;
                        }))
                    });
                let _ = done_tx.send(served);
            })?;
        let task = host.spawn(async move {
            done_rx
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the sim's thread panicked")))
        });
        Ok((
            local,
            SimHandle {
                shutdown: Some(tx),
                task: Some(task),
            },
        ))
    }
}

/// Serves `sim` on an already bound listener until `shutdown` completes.
pub async fn serve(
    sim: Sim,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let acceptor = TcpAcceptor::from_std(listener)?;
    // With a state file: written within a second of a change, and once more at shutdown.
    let saver = sim.persist.is_some().then(|| {
        let sim = sim.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Err(e) = sim.save() {
                    tracing::warn!("sim state not saved: {e}");
                }
            }
        })
    });
    let served = poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(sim.router(), shutdown, Some(Duration::from_secs(2)))
        .await;
    if let Some(task) = saver {
        task.abort();
    }
    sim.save()?;
    served
}

/// A running simulation server; dropping it stops the server.
pub struct SimHandle {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A kubeconfig for the simulation at `url` (cluster, context and user `karmada-sim`, no
/// credentials), so smo is pointed at the sim exactly as at a real Karmada.
pub fn kubeconfig_yaml(url: &str) -> String {
    let server = serde_json::Value::String(url.to_string());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: karmada-sim\n  cluster:\n    server: {server}\n\
         contexts:\n- name: karmada-sim\n  context:\n    cluster: karmada-sim\n    user: karmada-sim\n    namespace: default\n\
         current-context: karmada-sim\nusers:\n- name: karmada-sim\n  user: {{}}\npreferences: {{}}\n"
    )
}
