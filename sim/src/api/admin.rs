//! The sim-only admin API (`/sim/...`): cluster readiness and load, and the state the
//! simulation computed.

use serde::Deserialize;
use serde_json::{Value, json};

use std::time::Instant;

use super::{Out, found};
use crate::{
    SimCluster, State,
    reconcile::reconcile,
    simulate::{ClusterState, cluster_object},
    store::{ApiError, ObjKey, Res, now_rfc3339},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadyBody {
    ready: Readiness,
}

/// What `POST /sim/clusters/{name}/ready` sets: `true`, `false` (reported unhealthy), or
/// `"unknown"` (nothing reports on it).
#[derive(Deserialize)]
#[serde(untagged)]
enum Readiness {
    Known(bool),
    Unknown(UnknownWord),
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum UnknownWord {
    Unknown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadBody {
    service: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    rate: f64,
}

fn default_namespace() -> String {
    "default".into()
}

fn admin_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
}

/// The sim-only admin API.
pub(super) fn admin(st: &mut State, method: &str, path: &str, body: &[u8]) -> Out {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method, &segs[1..]) {
        ("GET", ["state"]) => Ok((200, state_json(st))),
        ("GET", ["placements"]) => Ok((200, json!(st.placements.values().collect::<Vec<_>>()))),
        ("GET", ["writes"]) => Ok((200, json!(st.writes))),
        ("POST", ["clusters"]) => {
            let c: SimCluster = admin_body(body)?;
            c.validate()
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let key = ObjKey::new(Res::Cluster, "", &c.name);
            if st.store.get(&key).is_none() {
                st.store.create(Res::Cluster, "", cluster_object(&c))?;
            } else {
                st.store
                    .update_with(&key, |o| o["metadata"]["labels"] = json!(c.labels));
            }
            st.clusters
                .insert(c.name.clone(), ClusterState::from_config(&c));
            st.added.insert(c.name.clone(), c);
            reconcile(st, Instant::now());
            found(st, &key).map(|(_, v)| (201, v))
        }
        ("POST", ["clusters", name, "ready"]) => {
            let b: ReadyBody = admin_body(body)?;
            let Some(c) = st.clusters.get_mut(*name) else {
                return Err(ApiError::NotFound {
                    res: Res::Cluster,
                    name: name.to_string(),
                });
            };
            let (ready, unknown) = match b.ready {
                Readiness::Known(r) => (r, false),
                Readiness::Unknown(UnknownWord::Unknown) => (false, true),
            };
            if c.ready != ready || c.unknown != unknown {
                c.ready = ready;
                c.unknown = unknown;
                c.since = now_rfc3339();
            }
            reconcile(st, Instant::now());
            found(st, &ObjKey::new(Res::Cluster, "", name))
        }
        ("POST", ["load"]) => {
            let b: LoadBody = admin_body(body)?;
            if !b.rate.is_finite() || b.rate < 0.0 {
                return Err(ApiError::BadRequest(
                    "rate must be a finite number >= 0".into(),
                ));
            }
            st.traffic
                .set_rate(&b.namespace, &b.service, b.rate, Instant::now());
            Ok((
                200,
                json!({"service": b.service, "namespace": b.namespace, "rate": b.rate}),
            ))
        }
        (_, ["state" | "placements" | "load" | "writes"] | ["clusters", ..]) => Err(
            ApiError::MethodNotAllowed(format!("{method} is not supported on {path}")),
        ),
        _ => Err(ApiError::NoRoute),
    }
}

fn state_json(st: &State) -> Value {
    let clusters: Vec<Value> = st
        .clusters
        .iter()
        .map(|(n, c)| {
            json!({"name": n, "ready": c.ready, "allocatable": c.allocatable,
                   "allocated": c.allocated, "allocating": c.allocating})
        })
        .collect();
    let loads: Vec<Value> = st
        .traffic
        .rates()
        .iter()
        .map(|((ns, svc), r)| json!({"namespace": ns, "service": svc, "rate": r}))
        .collect();
    json!({
        "resourceVersion": st.store.resource_version().to_string(),
        "clusters": clusters,
        "deployments": st.placements.values().collect::<Vec<_>>(),
        "loads": loads,
        "dashboards": st.dashboards.len(),
        "reconcile": st.memo.stats,
        "objects": st.store.kinds().iter().map(|r| (r.meta().plural.to_string(), json!(st.store.list(*r, None).len())))
            .collect::<serde_json::Map<_, _>>(),
    })
}
