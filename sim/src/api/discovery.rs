//! Discovery: `/version`, the API groups and resource lists, and the OpenAPI v2 and v3
//! documents, as kube-rs and kubectl read them.

use serde_json::{Value, json};

use crate::store::{Res, Store};

pub(super) fn version() -> Value {
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
pub(super) fn openapi_v3_index(kinds: &[Res]) -> Value {
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
pub(super) fn openapi_v3_group(gv: &str, kinds: &[Res], store: &Store) -> Option<Value> {
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
pub(super) fn openapi_v2(store: &Store) -> Value {
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

pub(super) fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

pub(super) fn group_json(group: &str, kinds: &[Res]) -> Value {
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

pub(super) fn api_groups(kinds: &[Res]) -> Value {
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

pub(super) fn resource_list(group: &str, version: &str, kinds: &[Res]) -> Option<Value> {
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
        let (short, categories) = crate::store::short_names(m.plural);
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
