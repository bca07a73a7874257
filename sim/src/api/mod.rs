//! Request routing: the Kubernetes REST paths kube-rs uses, discovery, the sim-only admin API,
//! `/metrics` and Grafana. Works on plain values so it is independent of the HTTP server.
//!
//! The discovery and OpenAPI documents are in [`discovery`], the admin API in [`admin`](mod@admin).

mod admin;
mod discovery;

use std::{collections::BTreeMap, time::Instant};

use serde_json::{Value, json};

use self::{
    admin::admin,
    discovery::{
        api_groups, api_versions, group_json, openapi_v2, openapi_v3_group, openapi_v3_index,
        resource_list, version,
    },
};
use super::{
    State,
    reconcile::reconcile,
    store::{
        ApiError, ObjKey, Part, PatchType, Res, matches_all, parse_field_selector,
        parse_label_selector, scale_of, str_at,
    },
};

/// A request, as the router needs it.
pub(crate) struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: &'a str,
    /// The `Accept` header (kubectl asks for `as=Table`).
    pub accept: &'a str,
    /// The `User-Agent` header: the field manager of writes that name none (`kubectl/v1.37…`
    /// manages as `kubectl`), as a real apiserver derives it.
    pub user_agent: &'a str,
    pub body: &'a [u8],
}

/// A response: status code, content type and body.
pub(crate) struct Resp {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Resp {
    fn json(status: u16, v: &Value) -> Resp {
        Resp {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
        }
    }

    fn text(status: u16, content_type: &'static str, s: String) -> Resp {
        Resp {
            status,
            content_type,
            body: s.into_bytes(),
        }
    }

    fn error(e: &ApiError) -> Resp {
        Resp::json(e.code(), &e.status_json())
    }
}

/// Decodes `a=b&c=d%3Dx` (percent escapes, `+` as space).
pub(crate) fn parse_query(q: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Serves one request against the state. A write that shapes the federation marks the
/// simulation stale; the next read runs [`reconcile`] first. As with a real control plane, a
/// write's answer carries the status the controllers last wrote, and what a client reads
/// afterwards reflects every write before it. A burst of writes (a deploy's objects, a scaling
/// shard's patches) costs one reconcile instead of one each: a reconcile visits every workload.
pub(crate) fn handle(st: &mut State, req: &Req) -> Resp {
    if st.needs_reconcile() && req.method == "GET" {
        reconcile(st, Instant::now());
    }
    let path = match req.path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let query = parse_query(req.query);
    if let Some((code, v)) = st.dashboards.handle(req.method, path, &query, req.body) {
        return Resp::json(code, &v);
    }
    // Typed clients send built-in kinds as protobuf: read the kinds the sim knows how to (what
    // Helm's release storage writes); for the rest answer 415, as an apiserver does for a kind it
    // serves only as JSON (e.g. CRDs), and kubectl falls back to JSON for its session.
    let translated;
    let req = if req.method != "GET"
        && path.starts_with("/api")
        && req.content_type.contains("protobuf")
    {
        match super::proto::to_json(req.body) {
            Ok(v) => {
                translated = serde_json::to_vec(&v).unwrap_or_default();
                &Req {
                    content_type: "application/json",
                    body: &translated,
                    ..*req
                }
            }
            Err(why) => {
                return Resp::error(&ApiError::UnsupportedMediaType(format!(
                    "the body content type {:?} is not supported for this request ({why}); send application/json",
                    req.content_type
                )));
            }
        }
    } else {
        req
    };
    let result = match (req.method, path) {
        ("GET", "/version") => Ok((200, version())),
        ("GET", "/healthz" | "/livez" | "/readyz") => {
            return Resp::text(200, "text/plain", "ok".into());
        }
        ("GET", "/metrics") => {
            let body = super::metrics::render(st, Instant::now());
            return Resp::text(200, "text/plain; version=0.0.4", body);
        }
        ("GET", "/openapi/v3") => Ok((200, openapi_v3_index(&st.store.kinds()))),
        ("GET", "/openapi/v2") => Ok((200, openapi_v2(&st.store))),
        ("GET", p) if p.starts_with("/openapi/v3/") => {
            match openapi_v3_group(&p[12..], &st.store.kinds(), &st.store) {
                Some(doc) => Ok((200, doc)),
                None => Err(ApiError::NoRoute),
            }
        }
        ("GET", "/api") => Ok((200, api_versions())),
        ("GET", "/apis") => Ok((200, api_groups(&st.store.kinds()))),
        (_, p) if p == "/sim" || p.starts_with("/sim/") => admin(st, req.method, p, req.body),
        (m, p) if m != "GET" && query.contains_key("dryRun") && p.starts_with("/api") => {
            // Dry run: the same request against a scratch copy, which is then thrown away.
            let mut scratch = State {
                store: st.store.clone(),
                clusters: st.clusters.clone(),
                placements: st.placements.clone(),
                memo: st.memo.clone(),
                traffic: st.traffic.clone(),
                dashboards: Default::default(),
                write_latency_ms: 0,
                writes: Default::default(),
                stale: st.stale,
                added: Default::default(),
            };
            kube(&mut scratch, req, p, &query)
        }
        (_, p) if p.starts_with("/api/") || p.starts_with("/apis/") => kube(st, req, p, &query),
        _ => Err(ApiError::NoRoute),
    };
    match result {
        // kubectl get: the columns a real apiserver prints for the kind.
        Ok((200, v))
            if req.method == "GET"
                && req.accept.contains("as=Table")
                && path.starts_with("/api") =>
        {
            Resp::json(200, &super::table::to_table(&v, chrono::Utc::now()))
        }
        Ok((code, v)) => Resp::json(code, &v),
        Err(e) => Resp::error(&e),
    }
}

/// What a Kubernetes path addresses.
struct Target<'a> {
    res: Res,
    ns: Option<&'a str>,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

fn parse_target<'a>(group: &str, version: &str, rest: &[&'a str]) -> Option<Target<'a>> {
    let namespaced_at = |i: usize| {
        rest.get(i)
            .and_then(|p| Res::find(group, version, p))
            .filter(|r| r.meta().namespaced)
    };
    let (ns, rest) = match (rest.first(), namespaced_at(2)) {
        (Some(&"namespaces"), Some(_)) if rest.len() >= 3 => (Some(rest[1]), &rest[2..]),
        _ => (None, rest),
    };
    let res = Res::find(group, version, rest.first()?)?;
    if rest.len() > 3 || (ns.is_none() && res.meta().namespaced && rest.len() > 1) {
        return None;
    }
    Some(Target {
        res,
        ns,
        name: rest.get(1).copied(),
        sub: rest.get(2).copied(),
    })
}

/// What a Kubernetes path addresses, for the write log: the kind, the namespace (empty at cluster
/// scope) and, unless it is a collection, the object's name (a subresource counts as its object).
pub(crate) fn target_of(path: &str) -> Option<(Res, &str, Option<&str>)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let t = parse_target(group, version, rest)?;
    Some((t.res, t.ns.unwrap_or(""), t.name))
}

type Out = Result<(u16, Value), ApiError>;

/// Whether a write to `res` can change what the simulation computes (placements, statuses,
/// bindings, Works): workloads, the policies that place and override them, Clusters, and Namespaces (whose
/// deletion takes their Deployments). Other writes skip the reconcile, which visits every
/// workload: a deploy's Services, Secrets or ConfigMaps then cost what the write costs.
fn shapes_the_federation(res: Res) -> bool {
    matches!(
        res,
        Res::Deployment
            | Res::StatefulSet
            | Res::DaemonSet
            | Res::PropagationPolicy
            | Res::OverridePolicy
            | Res::ClusterPropagationPolicy
            | Res::Cluster
            | Res::Namespace
    )
}

/// The request's field manager: `?fieldManager=`, else the user agent's name (before the `/`).
fn field_manager<'a>(query: &'a BTreeMap<String, String>, req: &Req<'a>) -> Option<&'a str> {
    query
        .get("fieldManager")
        .map(String::as_str)
        .or_else(|| req.user_agent.split('/').next())
        .filter(|m| !m.is_empty())
}

fn kube(st: &mut State, req: &Req, path: &str, query: &BTreeMap<String, String>) -> Out {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] if req.method == "GET" => {
            let kinds = st.store.kinds();
            return if kinds.iter().any(|r| r.meta().group == *g) {
                let mut g = group_json(g, &kinds);
                g["kind"] = json!("APIGroup");
                g["apiVersion"] = json!("v1");
                Ok((200, g))
            } else {
                Err(ApiError::NoRoute)
            };
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::NoRoute),
    };
    if rest.is_empty() {
        return match req.method {
            "GET" => resource_list(group, version, &st.store.kinds())
                .map(|l| (200, l))
                .ok_or(ApiError::NoRoute),
            _ => Err(ApiError::NoRoute),
        };
    }
    let t = parse_target(group, version, rest).ok_or(ApiError::NoRoute)?;
    if !st.store.serves(t.res) {
        return Err(ApiError::NoRoute);
    }
    let ns = t.ns.unwrap_or("");
    st.store.strict_fields = query.get("fieldValidation").is_some_and(|v| v == "Strict");
    let manager = field_manager(query, req);
    let force = query.get("force").is_some_and(|f| f == "true");
    let not_allowed = || {
        Err(ApiError::MethodNotAllowed(format!(
            "{} is not supported on {path}",
            req.method
        )))
    };
    let out = match (t.name, t.sub, req.method) {
        (None, _, "GET") => return list(st, t.res, t.ns, query),
        (None, _, "POST") if t.ns.is_some() || !t.res.meta().namespaced => {
            let created = st.store.create(t.res, ns, body_json(req.body, false)?)?;
            (
                201,
                ObjKey::new(t.res, ns, str_at(&created, "/metadata/name")),
            )
        }
        (None, _, "DELETE") => return delete_collection(st, t.res, t.ns, query),
        (None, _, _) => return not_allowed(),
        (Some(name), None, method) => {
            let key = ObjKey::new(t.res, ns, name);
            match method {
                "GET" => return found(st, &key),
                "DELETE" => {
                    let gone = st.store.delete(&key)?;
                    if shapes_the_federation(t.res) {
                        st.stale = true;
                    }
                    return Ok((200, gone));
                }
                "PUT" => {
                    st.store
                        .replace(&key, body_json(req.body, false)?, manager, Part::Main)?;
                    (200, key)
                }
                "PATCH" => {
                    let ty = patch_type(req.content_type)?;
                    let existed = st.store.get(&key).is_some();
                    let body = body_json(req.body, ty == PatchType::Apply)?;
                    st.store.patch(&key, ty, body, manager, force, Part::Main)?;
                    (if existed { 200 } else { 201 }, key)
                }
                _ => return not_allowed(),
            }
        }
        (Some(name), Some("status"), method) => {
            let key = ObjKey::new(t.res, ns, name);
            match method {
                "GET" => return found(st, &key),
                "PUT" => {
                    st.store
                        .replace(&key, body_json(req.body, false)?, manager, Part::Status)?
                }
                "PATCH" => {
                    let ty = patch_type(req.content_type)?;
                    let body = body_json(req.body, ty == PatchType::Apply)?;
                    st.store
                        .patch(&key, ty, body, manager, force, Part::Status)?
                }
                _ => return not_allowed(),
            };
            (200, key)
        }
        (Some(name), Some("scale"), method) if t.res == Res::Deployment => {
            return scale(st, &ObjKey::new(t.res, ns, name), method, req);
        }
        _ => return Err(ApiError::NoRoute),
    };
    if shapes_the_federation(t.res) {
        st.stale = true;
    }
    let (code, key) = out;
    found(st, &key).map(|(_, v)| (code, v))
}

/// The object at `key`, borrowed; 404 when there is none.
fn object<'a>(st: &'a State, key: &ObjKey) -> Result<&'a Value, ApiError> {
    st.store.get(key).ok_or_else(|| ApiError::NotFound {
        res: key.res,
        name: key.name.clone(),
    })
}

fn found(st: &State, key: &ObjKey) -> Out {
    object(st, key).map(|v| (200, v.clone()))
}

fn patch_type(content_type: &str) -> Result<PatchType, ApiError> {
    PatchType::from_content_type(content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml \
             (got {content_type:?})"
        ))
    })
}

/// Parses a JSON body (YAML too for apply patches, whose content type says YAML).
fn body_json(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if yaml => serde_norway::from_slice::<Value>(body)
            .map_err(|y| ApiError::BadRequest(format!("error decoding YAML: {y} (as JSON: {e})"))),
        Err(e) => Err(ApiError::BadRequest(format!(
            "error decoding JSON body: {e}"
        ))),
    }
}

/// Objects of a kind filtered by the request's `labelSelector` and `fieldSelector`.
fn select<'a>(
    st: &'a State,
    res: Res,
    ns: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Result<Vec<&'a Value>, ApiError> {
    let labels = parse_label_selector(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::BadRequest)?;
    let fields = parse_field_selector(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::BadRequest)?;
    Ok(st
        .store
        .list(res, ns)
        .into_iter()
        .filter(|o| matches_all(&labels, &o["metadata"]["labels"]))
        .filter(|o| fields.iter().all(|(p, v, eq)| (str_at(o, p) == v) == *eq))
        .collect())
}

fn list_json(st: &State, res: Res, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": res.api_version(), "kind": format!("{}List", res.meta().kind),
        "metadata": {"resourceVersion": st.store.resource_version().to_string()},
        "items": items,
    })
}

fn list(st: &State, res: Res, ns: Option<&str>, query: &BTreeMap<String, String>) -> Out {
    let items = select(st, res, ns, query)?.into_iter().cloned().collect();
    Ok((200, list_json(st, res, items)))
}

fn delete_collection(
    st: &mut State,
    res: Res,
    ns: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Out {
    let keys: Vec<ObjKey> = select(st, res, ns, query)?
        .into_iter()
        .map(|o| {
            ObjKey::new(
                res,
                str_at(o, "/metadata/namespace"),
                str_at(o, "/metadata/name"),
            )
        })
        .collect();
    let mut gone = Vec::new();
    for k in keys {
        gone.push(st.store.delete(&k)?);
    }
    if shapes_the_federation(res) {
        st.stale = true;
    }
    Ok((200, list_json(st, res, gone)))
}

/// The `/scale` subresource: reads and writes `spec.replicas` through an autoscaling/v1 Scale.
fn scale(st: &mut State, key: &ObjKey, method: &str, req: &Req) -> Out {
    let current = scale_of(object(st, key)?);
    let wanted = match method {
        "GET" => return Ok((200, current)),
        "PUT" => body_json(req.body, false)?,
        "PATCH" => {
            let ty = patch_type(req.content_type)?;
            let body = body_json(req.body, ty == PatchType::Apply)?;
            let mut s = current.clone();
            match ty {
                PatchType::Json => {
                    s = super::store::json_patch(&s, &body).map_err(ApiError::BadRequest)?
                }
                _ => super::store::merge_patch(&mut s, &body),
            }
            s
        }
        _ => {
            return Err(ApiError::MethodNotAllowed(format!(
                "{method} is not supported on scale"
            )));
        }
    };
    let Some(replicas) = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
    else {
        return Err(ApiError::Invalid {
            res: key.res,
            name: key.name.clone(),
            message: "spec.replicas: Invalid value: must be a non-negative integer".into(),
        });
    };
    let mut patch = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    // The scale subresource changes `spec.replicas` on the writer's behalf (ownership included).
    let query = parse_query(req.query);
    let manager = field_manager(&query, req);
    let d = st
        .store
        .patch(key, PatchType::Merge, patch, manager, false, Part::Scale)?;
    st.stale = true;
    Ok((200, scale_of(&d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sim, SimConfig};

    #[test]
    fn cluster_scoped_chart_kinds_are_stored_at_cluster_scope() {
        let sim = Sim::new(SimConfig::demo());
        let role = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}"#;
        let path = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
        let (code, created) = call(&sim, "POST", path, "application/json", role);
        assert_eq!(code, 201, "{created}");
        assert!(created["metadata"].get("namespace").is_none(), "{created}");
        let (_, list) = call(&sim, "GET", path, "", "");
        assert_eq!(list["items"][0]["rules"][0]["verbs"][0], "get");
        // Not under a namespace, as a real apiserver has it.
        let (code, _) = call(
            &sim,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/clusterroles",
            "",
            "",
        );
        assert_eq!(code, 404);
    }

    #[test]
    fn openapi_v2_has_a_definition_and_paths_for_every_kind() {
        let sim = Sim::new(SimConfig::demo());
        let (code, doc) = call(&sim, "GET", "/openapi/v2", "", "");
        assert_eq!(code, 200);
        assert_eq!(doc["swagger"], "2.0");
        for r in Res::ALL {
            let m = r.meta();
            let found = doc["definitions"]
                .as_object()
                .unwrap()
                .values()
                .any(|d| d["x-kubernetes-group-version-kind"][0]["kind"] == m.kind);
            assert!(found, "no definition of {}", m.kind);
            assert!(
                doc["paths"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|p| p.ends_with(&format!("/{}", m.plural))),
                "no path of {}",
                m.plural
            );
        }
    }

    fn call(sim: &Sim, method: &str, path: &str, ct: &str, body: &str) -> (u16, Value) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let req = Req {
            method,
            path,
            query,
            content_type: ct,
            accept: "application/json",
            user_agent: "sim-test/0",
            body: body.as_bytes(),
        };
        let r = sim.with_state(|st| handle(st, &req));
        let v = serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&r.body)));
        (r.status, v)
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier+in+(a)&force=true&x&bad=%zz%4");
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["force"], "true");
        assert_eq!(q["x"], "");
        assert_eq!(q["bad"], "%zz%4");
    }

    #[test]
    fn paths_and_errors() {
        let sim = Sim::new(SimConfig::demo());
        assert_eq!(call(&sim, "GET", "/version", "", "").1["minor"], "33");
        assert_eq!(call(&sim, "GET", "/nope", "", "").0, 404);
        assert_eq!(
            call(
                &sim,
                "GET",
                "/apis/apps/v1/namespaces/default/widgets",
                "",
                ""
            )
            .0,
            404
        );
        assert_eq!(
            call(&sim, "GET", "/apis/apps/v1/deployments/x", "", "").0,
            404
        );
        let (code, st) = call(
            &sim,
            "POST",
            "/api/v1/namespaces",
            "application/json",
            "{not json",
        );
        assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
        let (code, _) = call(
            &sim,
            "PATCH",
            "/api/v1/namespaces/default",
            "text/plain",
            "{}",
        );
        assert_eq!(code, 415);
        let (code, l) = call(
            &sim,
            "GET",
            "/apis/cluster.karmada.io/v1alpha1/clusters?labelSelector=nope%3D1",
            "",
            "",
        );
        assert_eq!((code, l["items"].as_array().map(Vec::len)), (200, Some(0)));
        let (code, l) = call(
            &sim,
            "GET",
            "/apis/cluster.karmada.io/v1alpha1/clusters?fieldSelector=metadata.name%3Dedge-a",
            "",
            "",
        );
        assert_eq!(
            (
                code,
                l["kind"].as_str(),
                l["items"].as_array().map(Vec::len)
            ),
            (200, Some("ClusterList"), Some(1))
        );
        assert_eq!(
            call(
                &sim,
                "GET",
                "/api/v1/namespaces?fieldSelector=spec.x%3D1",
                "",
                ""
            )
            .0,
            400
        );
        assert_eq!(call(&sim, "GET", "/apis", "", "").1["kind"], "APIGroupList");
        assert_eq!(
            call(&sim, "GET", "/apis/apps/v1", "", "").1["resources"][2]["name"],
            "deployments/scale"
        );
        assert_eq!(
            call(&sim, "GET", "/api/v1/namespaces/default/status", "", "").0,
            200
        );
        assert_eq!(
            call(
                &sim,
                "POST",
                "/sim/load",
                "",
                r#"{"service": "x", "rate": -1}"#
            )
            .0,
            400
        );
        assert_eq!(
            call(
                &sim,
                "POST",
                "/sim/clusters/nope/ready",
                "",
                r#"{"ready": true}"#
            )
            .0,
            404
        );
        assert_eq!(
            call(
                &sim,
                "POST",
                "/sim/clusters/edge-a/ready",
                "",
                r#"{"ready": "x"}"#
            )
            .0,
            400
        );
        let (code, _) = call(
            &sim,
            "POST",
            "/sim/clusters",
            "",
            r#"{"name": "extra", "cpu": 2, "memory": 4294967296}"#,
        );
        assert_eq!(code, 201);
        assert_eq!(
            call(&sim, "GET", "/sim/state", "", "").1["clusters"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        assert_eq!(call(&sim, "GET", "/healthz", "", "").1, json!("ok"));
    }

    #[test]
    fn scale_subresource_and_json_patch() {
        let sim = Sim::new(SimConfig::demo());
        let d = r#"{"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}}}"#;
        assert_eq!(
            call(
                &sim,
                "POST",
                "/apis/apps/v1/namespaces/default/deployments",
                "application/json",
                d
            )
            .0,
            201
        );
        let url = "/apis/apps/v1/namespaces/default/deployments/web/scale";
        let (code, s) = call(&sim, "GET", url, "", "");
        assert_eq!(
            (
                code,
                s["spec"]["replicas"].as_i64(),
                s["status"]["selector"].as_str()
            ),
            (200, Some(1), Some("app=web"))
        );
        let (_, s) = call(
            &sim,
            "PATCH",
            url,
            "application/merge-patch+json",
            r#"{"spec": {"replicas": 3}}"#,
        );
        assert_eq!(s["spec"]["replicas"], 3);
        let (code, _) = call(
            &sim,
            "PUT",
            url,
            "application/json",
            r#"{"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 2}}"#,
        );
        assert_eq!(code, 409);
        assert_eq!(
            call(
                &sim,
                "PATCH",
                url,
                "application/merge-patch+json",
                r#"{"spec": {"replicas": -2}}"#
            )
            .0,
            422
        );
        let ops = r#"[{"op": "replace", "path": "/spec/replicas", "value": 4}]"#;
        let (_, d) = call(
            &sim,
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web",
            "application/json-patch+json",
            ops,
        );
        assert_eq!(d["spec"]["replicas"], 4);
        let (code, _) = call(
            &sim,
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web",
            "application/json-patch+json",
            r#"[{"op": "remove", "path": "/x"}]"#,
        );
        assert_eq!(code, 400);
    }
}
