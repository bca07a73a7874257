//! Request routing: the Kubernetes REST paths kube-rs uses, discovery, the sim-only admin API,
//! `/metrics` and Grafana. Works on plain values so it is independent of the HTTP server.

use std::{collections::BTreeMap, time::Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    SimCluster, State,
    reconcile::reconcile,
    simulate::{ClusterState, cluster_object},
    store::{
        ApiError, ObjKey, Part, PatchType, Res, Store, matches_all, now_rfc3339,
        parse_field_selector, parse_label_selector, scale_of, str_at,
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

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-sim", "gitCommit": "smo-sim",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

/// The group-versions the sim serves, as OpenAPI v3 path keys (`api/v1`, `apis/apps/v1`).
fn openapi_group_versions(kinds: &[Res]) -> Vec<String> {
    let mut gvs: Vec<String> = kinds
        .iter()
        .map(|r| r.meta())
        .map(|m| match m.group {
            "" => format!("api/{}", m.version),
            g => format!("apis/{g}/{}", m.version),
        })
        .collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

/// `/openapi/v3`: the index a real apiserver serves, one document per group-version.
fn openapi_v3_index(kinds: &[Res]) -> Value {
    let paths: serde_json::Map<String, Value> = openapi_group_versions(kinds)
        .into_iter()
        .map(|gv| {
            let url = format!("/openapi/v3/{gv}?hash=sim");
            (gv, json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// One group-version's OpenAPI v3 document: every path the sim serves with its operations, and
/// `fieldValidation` on the writes, so kubectl finds server-side field validation (and validates
/// there, as against a real apiserver) instead of refusing to apply. Schemas are open objects
/// tagged with their kind: the sim keeps whatever fields it is given.
fn openapi_v3_group(gv: &str, kinds: &[Res], store: &Store) -> Option<Value> {
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let metas: Vec<_> = kinds
        .iter()
        .map(|r| r.meta())
        .filter(|m| m.group == group && m.version == version)
        .collect();
    if metas.is_empty() {
        return None;
    }
    let prefix = match group {
        "" => format!("/api/{version}"),
        g => format!("/apis/{g}/{version}"),
    };
    let field_validation =
        json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}});
    let write = |kind: &str| {
        json!({"parameters": [field_validation.clone()], "responses": {"200": {"description": "OK"}},
               "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind}})
    };
    let read = json!({"responses": {"200": {"description": "OK"}}});
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for m in metas {
        let (collection, item) = if m.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", m.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", m.plural),
            )
        } else {
            (
                format!("{prefix}/{}", m.plural),
                format!("{prefix}/{}/{{name}}", m.plural),
            )
        };
        paths.insert(collection, json!({"get": read, "post": write(m.kind)}));
        paths.insert(
            item,
            json!({"get": read, "put": write(m.kind), "patch": write(m.kind), "delete": read}),
        );
        let id = match group {
            "" => format!("io.k8s.api.core.{version}.{}", m.kind),
            g => format!("{g}.{version}.{}", m.kind),
        };
        let gvk = json!([{"group": group, "version": version, "kind": m.kind}]);
        let schema = match store.schema(&format!("{group}/{version}/{}", m.kind)) {
            // The kind's real schema (from its CRD), so `kubectl explain` can walk its fields.
            Some(real) => {
                let mut s = real.clone();
                s["x-kubernetes-group-version-kind"] = gvk;
                s
            }
            None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                           "x-kubernetes-group-version-kind": gvk}),
        };
        schemas.insert(id, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "smo sim", "version": "v1.33.0-sim"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v2` (Swagger 2.0, JSON): every kind's definition and paths in one document, as
/// older clients read it; the same schemas as the v3 documents.
fn openapi_v2(store: &Store) -> Value {
    let kinds = store.kinds();
    let mut paths = serde_json::Map::new();
    let mut definitions = serde_json::Map::new();
    for gv in openapi_group_versions(&kinds) {
        let Some(doc) = openapi_v3_group(&gv, &kinds, store) else {
            continue;
        };
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), ops.clone());
        }
        for (id, schema) in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            definitions.insert(id.clone(), schema.clone());
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "smo sim", "version": "v1.33.0-sim"},
        "paths": paths,
        "definitions": definitions,
    })
}

fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

fn group_json(group: &str, kinds: &[Res]) -> Value {
    let mut versions: Vec<&str> = kinds
        .iter()
        .map(|r| r.meta())
        .filter(|m| m.group == group)
        .map(|m| m.version)
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first()})
}

fn api_groups(kinds: &[Res]) -> Value {
    let mut groups: Vec<&str> = kinds
        .iter()
        .map(|r| r.meta().group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let groups: Vec<Value> = groups.into_iter().map(|g| group_json(g, kinds)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str, kinds: &[Res]) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update"
    ]);
    let sub_verbs = json!(["get", "patch", "update"]);
    let mut resources = Vec::new();
    for m in kinds
        .iter()
        .map(|r| r.meta())
        .filter(|m| m.group == group && m.version == version)
    {
        let (short, categories) = super::store::short_names(m.plural);
        let mut r = json!({"name": m.plural, "singularName": m.singular, "namespaced": m.namespaced,
                           "kind": m.kind, "verbs": verbs});
        if !short.is_empty() {
            r["shortNames"] = json!(short);
        }
        if !categories.is_empty() {
            r["categories"] = json!(categories);
        }
        resources.push(r);
        resources.push(
            json!({"name": format!("{}/status", m.plural), "singularName": "",
                              "namespaced": m.namespaced, "kind": m.kind, "verbs": sub_verbs}),
        );
        if m.plural == "deployments" {
            resources.push(json!({"name": "deployments/scale", "singularName": "", "namespaced": true,
                                  "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": sub_verbs}));
        }
    }
    (!resources.is_empty()).then(|| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
    })
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

fn found(st: &State, key: &ObjKey) -> Out {
    st.store
        .get(key)
        .map(|v| (200, v.clone()))
        .ok_or_else(|| ApiError::NotFound {
            res: key.res,
            name: key.name.clone(),
        })
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
    let (_, current) = found(st, key)?;
    let current = scale_of(&current);
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
    st.store
        .patch(key, PatchType::Merge, patch, manager, false, Part::Scale)?;
    st.stale = true;
    let (_, d) = found(st, key)?;
    Ok((200, scale_of(&d)))
}

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
fn admin(st: &mut State, method: &str, path: &str, body: &[u8]) -> Out {
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
