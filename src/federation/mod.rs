//! `federation`: everything smo knows about Karmada. [`manifests`] is pure; [`Federation`] is the
//! one kube-rs client that reads `Cluster` objects and server-side-applies (field manager `smo`)
//! and deletes the generated objects — against a real Karmada API server or `smo sim`, through the
//! same code.

pub mod fence;
pub mod helm;
/// Generated Karmada objects (pure; they live in smo-core).
pub use smo_core::manifests;

use std::{collections::BTreeMap, path::Path};

use chrono::{DateTime, Utc};
use kube::{
    Api, Client,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    },
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::Value;

use crate::{hdag, store::ClusterRecord};

pub use fence::{FENCE_ANNOTATION, Fence, Fenced};

/// The label that marks a namespace smo created (and may delete once it is empty).
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The field manager of every server-side apply smo makes.
pub const FIELD_MANAGER: &str = "smo";

/// Federation errors, split by whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// Could not build a client (bad kubeconfig).
    #[error("karmada client: {0}")]
    Config(String),
    /// The API server answered with an error or could not be reached.
    #[error("karmada API: {0}")]
    Kube(#[from] kube::Error),
    /// An object smo generated is malformed (a bug, never retried).
    #[error("object: {0}")]
    Object(String),
    /// The attempt may no longer write: its lease lapsed, or the federation refused its fencing
    /// token because a newer attempt wrote the object.
    #[error("fenced: {0}")]
    Fenced(String),
}

impl From<Fenced> for FederationError {
    fn from(f: Fenced) -> Self {
        Self::Fenced(f.0)
    }
}

/// A refusal by the fence admission policy (see [`fence`]) becomes [`FederationError::Fenced`].
fn fenced_or(e: kube::Error) -> FederationError {
    match &e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains(fence::FENCE_POLICY) => {
            FederationError::Fenced(s.message.clone())
        }
        _ => FederationError::Kube(e),
    }
}

impl FederationError {
    /// Network errors, 5xx, 409 and 429 are worth retrying; the rest are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(s)) => s.code >= 500 || s.code == 409 || s.code == 429,
            Self::Kube(_) => true,
            Self::Config(_) | Self::Object(_) | Self::Fenced(_) => false,
        }
    }
}

/// (apiVersion, kind) → resource, for every kind smo writes; also the removal order.
const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    // group, version, kind, plural, namespaced
    (
        "policy.karmada.io",
        "v1alpha1",
        "PropagationPolicy",
        "propagationpolicies",
        true,
    ),
    (
        "multicluster.x-k8s.io",
        "v1alpha1",
        "ServiceImport",
        "serviceimports",
        true,
    ),
    (
        "multicluster.x-k8s.io",
        "v1alpha1",
        "ServiceExport",
        "serviceexports",
        true,
    ),
    ("apps", "v1", "Deployment", "deployments", true),
    ("", "v1", "Service", "services", true),
    (
        "monitoring.coreos.com",
        "v1",
        "PrometheusRule",
        "prometheusrules",
        true,
    ),
];

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn resource_for(api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    KINDS
        .iter()
        .find(|(g, v, k, _, _)| *g == group && *v == version && *k == kind)
        .map(|(g, v, k, p, ns)| (resource(g, v, k, p), *ns))
}

fn cluster_resource() -> ApiResource {
    resource("cluster.karmada.io", "v1alpha1", "Cluster", "clusters")
}

/// A client of the Karmada API server.
#[derive(Clone)]
pub struct Federation {
    client: Client,
}

impl Federation {
    /// A client from a kubeconfig file (Karmada's, or the one `smo sim` writes).
    pub async fn from_kubeconfig(path: &Path) -> Result<Self, FederationError> {
        Self::from_kubeconfig_as(path, None).await
    }

    /// Like [`Self::from_kubeconfig`], naming the process in every request's User-Agent
    /// (`smo/<version> (<agent>)`), so the API server's audit log tells workers apart.
    pub async fn from_kubeconfig_as(
        path: &Path,
        agent: Option<&str>,
    ) -> Result<Self, FederationError> {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| FederationError::Config(format!("{}: {e}", path.display())))?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| FederationError::Config(format!("{}: {e}", path.display())))?;
        let ua = match agent {
            Some(a) => format!("{FIELD_MANAGER}/{} ({a})", env!("CARGO_PKG_VERSION")),
            None => format!("{FIELD_MANAGER}/{}", env!("CARGO_PKG_VERSION")),
        };
        let ua = poem::http::HeaderValue::from_str(&ua)
            .map_err(|e| FederationError::Config(format!("user agent {ua:?}: {e}")))?;
        config.headers.push((poem::http::header::USER_AGENT, ua));
        let client =
            Client::try_from(config).map_err(|e| FederationError::Config(e.to_string()))?;
        Ok(Self { client })
    }

    /// A client from an existing kube client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Reads the member clusters: capacity = allocatable − allocated from
    /// `status.resourceSummary`, readiness from the `Ready` condition, accelerators from
    /// `nvidia.com/gpu`-style allocatable resources or the `smo.io/accelerator` label.
    pub async fn clusters(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClusterRecord>, FederationError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &cluster_resource());
        let list = api.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .filter_map(|c| cluster_record(c, now))
            .collect())
    }

    /// Server-side-applies one generated object (field manager `smo`, forced: smo owns what it
    /// writes), stamped with the fence's token, if the fence still allows writing.
    pub async fn apply(&self, obj: &Value, fence: &Fence) -> Result<(), FederationError> {
        let (api, name) = self.api_for(obj)?;
        fence.check()?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(fence.stamp(obj)),
        )
        .await
        .map_err(fenced_or)?;
        Ok(())
    }

    /// Creates the project's namespace if it does not exist, labelled as smo's. An existing
    /// namespace is left as it is: the label means "smo created it", which removal relies on.
    pub async fn ensure_namespace(
        &self,
        namespace: &str,
        fence: &Fence,
    ) -> Result<(), FederationError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        if api.get_opt(namespace).await?.is_some() {
            return Ok(());
        }
        let ns = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace, "labels": { MANAGED_BY: "smo" } },
        });
        fence.check()?;
        api.patch(
            namespace,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&ns),
        )
        .await?;
        Ok(())
    }

    /// Deletes a namespace smo created once nothing lives in it any more: no object of the kinds
    /// smo writes, no workload or pod of anyone else, no Helm release. Returns whether it deleted.
    pub async fn delete_namespace_if_unused(
        &self,
        namespace: &str,
        fence: &Fence,
    ) -> Result<bool, FederationError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let Some(ns) = api.get_opt(namespace).await? else {
            return Ok(false);
        };
        let ours = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .is_some_and(|v| v == "smo");
        if !ours {
            return Ok(false);
        }
        let others: &[(&str, &str, &str, &str, &str)] = &[
            ("apps", "v1", "StatefulSet", "statefulsets", ""),
            ("apps", "v1", "DaemonSet", "daemonsets", ""),
            ("batch", "v1", "Job", "jobs", ""),
            ("", "v1", "Pod", "pods", ""),
            ("", "v1", "Secret", "secrets", "owner=helm"),
        ];
        let kinds = KINDS
            .iter()
            .map(|(g, v, k, p, _)| (*g, *v, *k, *p, ""))
            .chain(others.iter().copied());
        for (g, v, k, p, selector) in kinds {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &resource(g, v, k, p));
            match api
                .list(&ListParams::default().labels(selector).limit(1))
                .await
            {
                Ok(l) if !l.items.is_empty() => return Ok(false),
                Ok(_) => {}
                // A kind this API server does not serve has no objects.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        fence.check()?;
        match api.delete(namespace, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the live counterpart of a generated object, if it exists.
    pub async fn get(&self, obj: &Value) -> Result<Option<Value>, FederationError> {
        let (api, name) = self.api_for(obj)?;
        let live = api.get_opt(&name).await?;
        live.map(|o| serde_json::to_value(o).map_err(|e| FederationError::Object(e.to_string())))
            .transpose()
    }

    /// Deletes one generated object; a missing object is fine.
    pub async fn delete(&self, obj: &Value, fence: &Fence) -> Result<bool, FederationError> {
        let (api, name) = self.api_for(obj)?;
        fence.check()?;
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object smo wrote for a graph (or one of its services) in a namespace, found
    /// by label; returns how many were deleted. Safe to repeat.
    pub async fn delete_labelled(
        &self,
        namespace: &str,
        graph: &str,
        service: Option<&str>,
        fence: &Fence,
    ) -> Result<usize, FederationError> {
        let mut selector = format!("{}={graph}", manifests::LABEL_GRAPH);
        if let Some(s) = service {
            selector.push_str(&format!(",{}={s}", manifests::LABEL_SERVICE));
        }
        let mut deleted = 0;
        for (g, v, k, p, _) in KINDS {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &resource(g, v, k, p));
            let list = match api.list(&ListParams::default().labels(&selector)).await {
                Ok(l) => l,
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(e.into()),
            };
            for obj in list.items {
                let Some(name) = obj.metadata.name else {
                    continue;
                };
                fence.check()?;
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => deleted += 1,
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(deleted)
    }

    /// Sets a Deployment's replicas through its `scale` subresource (so the field stays owned by
    /// the scaler and the next apply of the whole object carries the stored count).
    pub async fn scale(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
        fence: &Fence,
    ) -> Result<(), FederationError> {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        fence.check()?;
        api.patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Desired and ready replicas of a Deployment, if it exists.
    pub async fn deployment_replicas(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<(i32, i32)>, FederationError> {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await? {
            None => Ok(None),
            Some(d) => {
                let desired = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                Ok(Some((desired, ready)))
            }
        }
    }

    /// Names of objects of a kind carrying the graph label (tests and `describe`).
    pub async fn list_labelled(
        &self,
        namespace: &str,
        graph: &str,
    ) -> Result<Vec<(String, String)>, FederationError> {
        let selector = format!("{}={graph}", manifests::LABEL_GRAPH);
        let mut out = Vec::new();
        for (g, v, k, p, _) in KINDS {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &resource(g, v, k, p));
            match api.list(&ListParams::default().labels(&selector)).await {
                Ok(l) => out.extend(
                    l.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .map(|n| (k.to_string(), n)),
                ),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        out.sort();
        Ok(out)
    }

    fn api_for(&self, obj: &Value) -> Result<(Api<DynamicObject>, String), FederationError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"]
            .as_str()
            .ok_or_else(|| FederationError::Object(format!("{kind} without metadata.name")))?;
        let (ar, namespaced) = resource_for(api_version, kind).ok_or_else(|| {
            FederationError::Object(format!("smo does not write {api_version} {kind}"))
        })?;
        let api = if namespaced {
            let ns = obj["metadata"]["namespace"].as_str().ok_or_else(|| {
                FederationError::Object(format!("{kind} {name} without namespace"))
            })?;
            Api::namespaced_with(self.client.clone(), ns, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        };
        Ok((api, name.to_string()))
    }
}

fn quantity(map: &Value, key: &str, parse: fn(&str) -> Result<u64, hdag::QuantityError>) -> u64 {
    match &map[key] {
        Value::String(s) => parse(s).unwrap_or(0),
        Value::Number(n) => n
            .as_f64()
            .map(|f| parse(&f.to_string()).unwrap_or(0))
            .unwrap_or(0),
        _ => 0,
    }
}

/// Turns a Karmada `Cluster` into what placement needs.
pub fn cluster_record(c: &DynamicObject, now: DateTime<Utc>) -> Option<ClusterRecord> {
    // Karmada admits only DNS-1123 labels as cluster names; anything else is not a member smo
    // can place on.
    let name = match crate::hdag::ClusterName::parse(c.metadata.name.clone().unwrap_or_default()) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "a Karmada cluster with an unusable name is ignored");
            return None;
        }
    };
    let status = &c.data["status"];
    let summary = &status["resourceSummary"];
    let (alloc, used) = (&summary["allocatable"], &summary["allocated"]);
    let cpu_alloc = quantity(alloc, "cpu", hdag::cpu_millis);
    let cpu_used = quantity(used, "cpu", hdag::cpu_millis);
    let mem_alloc = quantity(alloc, "memory", hdag::quantity_bytes);
    let mem_used = quantity(used, "memory", hdag::quantity_bytes);
    let mut gpus: u64 = 0;
    if let Some(m) = alloc.as_object() {
        for (k, _) in m.iter().filter(|(k, _)| k.ends_with("/gpu")) {
            gpus += quantity(alloc, k, |s| hdag::cpu_millis(s).map(|m| m / 1000));
        }
    }
    let labels: BTreeMap<String, String> = c.metadata.labels.clone().unwrap_or_default();
    if gpus == 0
        && labels
            .get("smo.io/accelerator")
            .is_some_and(|v| v == "true")
    {
        gpus = 1;
    }
    let ready_cond = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let ready = ready_cond.is_some_and(|c| c["status"] == "True");
    let message = ready_cond
        .and_then(|c| c["message"].as_str())
        .map(str::to_string);
    Some(ClusterRecord {
        name,
        ready,
        cpu_allocatable: cpu_alloc as f64 / 1000.0,
        cpu_free: cpu_alloc.saturating_sub(cpu_used) as f64 / 1000.0,
        memory_allocatable: mem_alloc.min(i64::MAX as u64) as i64,
        memory_free: mem_alloc.saturating_sub(mem_used).min(i64::MAX as u64) as i64,
        gpus: gpus.min(i32::MAX as u64) as i32,
        labels: serde_json::to_value(labels).unwrap_or_default(),
        message,
        synced_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_capacity_is_allocatable_minus_allocated() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.karmada.io/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "edge-a", "labels": {"zone": "eu"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "message": "cluster is healthy"}],
                "resourceSummary": {
                    "allocatable": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "2"},
                    "allocated": {"cpu": "2500m", "memory": "4Gi"}
                }
            }
        }))
        .unwrap();
        let r = cluster_record(&obj, Utc::now()).expect("a valid name");
        assert!(r.ready);
        assert_eq!((r.cpu_allocatable, r.cpu_free), (8.0, 5.5));
        assert_eq!(r.memory_free, 12 * 1024 * 1024 * 1024);
        assert_eq!(r.gpus, 2);
        assert_eq!(r.labels["zone"], "eu");
    }

    #[test]
    fn a_cluster_without_ready_condition_is_not_ready() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "x"}
        }))
        .unwrap();
        let r = cluster_record(&obj, Utc::now()).expect("a valid name");
        assert!(!r.ready);
        assert_eq!(r.cpu_free, 0.0);
    }

    #[test]
    fn kube_errors_are_classified() {
        let api = |code| {
            FederationError::Kube(kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            })))
        };
        assert!(api(503).is_transient());
        assert!(api(409).is_transient());
        assert!(!api(422).is_transient());
        assert!(!FederationError::Object("x".into()).is_transient());
    }
}
