//! Kubernetes' own schemas for the built-in kinds the sim serves, read from the JSON-schema
//! rendering of the OpenAPI definitions that the `kubernetes-validate` package ships
//! (`kubernetes-json-schema/v1.37.0-local/_definitions.json`), turned back into the OpenAPI v3
//! shape an apiserver publishes: `$ref`s inlined (a type that contains itself becomes an open
//! object at its second level), `["T", "null"]` types as `T`, int-or-string unions as
//! `x-kubernetes-int-or-string`. `kubectl explain deployment.spec` then walks them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::store::Res;

/// How deep `$ref`s are inlined: far beyond any built-in kind's nesting, short of a loop.
const MAX_DEPTH: usize = 24;

/// The schemas of the built-in kinds the sim serves, keyed `group/version/Kind`, from the
/// `_definitions.json` in `dir`.
pub(crate) fn load(dir: &std::path::Path) -> std::io::Result<BTreeMap<String, Value>> {
    let text = std::fs::read_to_string(dir.join("_definitions.json"))?;
    let doc: Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    let defs = doc
        .get("$defs")
        .or_else(|| doc.get("definitions"))
        .and_then(Value::as_object)
        .ok_or_else(|| std::io::Error::other("_definitions.json has no $defs"))?;
    // Each definition's group-version-kind says which kind it is.
    let mut out = BTreeMap::new();
    for (id, def) in defs {
        for gvk in def["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (g, v, k) = (
                gvk["group"].as_str().unwrap_or_default(),
                gvk["version"].as_str().unwrap_or_default(),
                gvk["kind"].as_str().unwrap_or_default(),
            );
            let served = Res::ALL.iter().any(|r| {
                let m = r.meta();
                m.group == g && m.version == v && m.kind == k
            });
            if served && !id.ends_with("List") {
                let mut path = Vec::new();
                out.insert(format!("{g}/{v}/{k}"), inline(def, defs, &mut path));
            }
        }
    }
    Ok(out)
}

/// `schema` with every `$ref` replaced by its definition (recursively) and JSON-schema spellings
/// turned into OpenAPI v3 ones.
fn inline(schema: &Value, defs: &Map<String, Value>, path: &mut Vec<String>) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default().to_string();
        let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        if path.contains(&name) || path.len() >= MAX_DEPTH {
            return open;
        }
        let Some(def) = defs.get(&name) else {
            return open;
        };
        path.push(name);
        let mut resolved = inline(def, defs, path);
        path.pop();
        // The referring site's own description wins, as in the apiserver's documents.
        if let (Some(d), Some(o)) = (obj.get("description"), resolved.as_object_mut()) {
            o.insert("description".into(), d.clone());
        }
        return resolved;
    }
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "type" => {
                if let Some(t) = single_type(v) {
                    out.insert("type".into(), t);
                }
            }
            "properties" | "patternProperties" => {
                let props = v
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(n, s)| (n.clone(), inline(s, defs, path)))
                            .collect::<Map<_, _>>()
                    })
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), inline(v, defs, path));
            }
            "oneOf" | "anyOf" => {
                // IntOrString (and Quantity) are spelled as a union of string and integer.
                let kinds: Vec<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| single_type(&s["type"]))
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
                if kinds.iter().any(|t| t == "string") && kinds.iter().any(|t| t == "integer") {
                    out.insert("x-kubernetes-int-or-string".into(), json!(true));
                } else {
                    let alts: Vec<Value> = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| inline(s, defs, path))
                        .collect();
                    out.insert(k.clone(), Value::Array(alts));
                }
            }
            "$schema" | "$id" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if out.contains_key("x-kubernetes-int-or-string") {
        out.remove("type");
    }
    Value::Object(out)
}

/// `"T"` or `["T", "null"]` as `"T"`; `None` for no single type.
fn single_type(v: &Value) -> Option<Value> {
    match v {
        Value::String(_) => Some(v.clone()),
        Value::Array(ts) => {
            let real: Vec<&Value> = ts.iter().filter(|t| *t != "null").collect();
            (real.len() == 1).then(|| real[0].clone())
        }
        _ => None,
    }
}

/// What a write's object breaks in `schema`, as the apiserver words field errors
/// (`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer`).
/// Unknown fields count only when `strict` (the request's `fieldValidation=Strict`, what kubectl
/// sends); otherwise they are dropped silently by a real apiserver's decoder too.
pub(crate) fn violations(schema: &Value, value: &Value, strict: bool) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, value, "", strict, &mut out);
    out
}

fn check(schema: &Value, v: &Value, path: &str, strict: bool, out: &mut Vec<String>) {
    if out.len() >= 20 || v.is_null() {
        return;
    }
    let at = |p: &str| {
        if p.is_empty() {
            "<root>".to_string()
        } else {
            p.to_string()
        }
    };
    if schema["x-kubernetes-int-or-string"] == true {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            out.push(format!(
                "{}: Invalid value: {v}: {} in body must be an integer or a string",
                at(path),
                at(path)
            ));
        }
        return;
    }
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !ok {
            out.push(format!(
                "{}: Invalid value: {}: {} in body must be of type {t}",
                at(path),
                json_kind(v),
                at(path)
            ));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(format!(
            "{}: Unsupported value: {v}: supported values: {}",
            at(path),
            list.join(", ")
        ));
    }
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str()
                    && !m.contains_key(r)
                {
                    out.push(format!("{}: Required value", join(path, r)));
                }
            }
            let open = schema["x-kubernetes-preserve-unknown-fields"] == true;
            for (k, child) in m {
                let p = join(path, k);
                match (
                    props.and_then(|ps| ps.get(k)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) => check(s, child, &p, strict, out),
                    (None, Some(extra)) if extra.is_object() => {
                        check(extra, child, &p, strict, out)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    _ if open || props.is_none() => {}
                    // Every object has these, whether its (CRD) schema names them or not.
                    _ if path.is_empty()
                        && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") => {}
                    _ if strict => out.push(format!("{p}: unknown field \"{k}\"")),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    check(s, item, &format!("{}[{i}]", at(path)), strict, out);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "\"string\"",
        Value::Number(_) => "\"number\"",
        Value::Bool(_) => "\"boolean\"",
        Value::Array(_) => "\"array\"",
        Value::Object(_) => "\"object\"",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_checked_for_types_required_fields_enums_and_strictly_for_unknown_fields() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer"},
                "port": {"x-kubernetes-int-or-string": true},
                "policy": {"type": "string", "enum": ["Always", "Never"]},
                "names": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }},
        }});
        let good = json!({"spec": {"replicas": 2, "port": "http", "policy": "Never",
            "names": ["a"], "labels": {"x": "y"}, "free": {"any": [1]}}});
        assert!(violations(&schema, &good, true).is_empty());
        let bad = json!({"spec": {"replicas": "2", "port": 1.5, "policy": "Sometimes",
            "names": ["a", 3], "labels": {"x": 1}, "extra": true}});
        let found = violations(&schema, &bad, true);
        assert_eq!(
            found,
            [
                "spec.extra: unknown field \"extra\"",
                "spec.labels.x: Invalid value: \"number\": spec.labels.x in body must be of type string",
                "spec.names[1]: Invalid value: \"number\": spec.names[1] in body must be of type string",
                "spec.policy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\"",
                "spec.port: Invalid value: 1.5: spec.port in body must be an integer or a string",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer",
            ]
        );
        // Without fieldValidation=Strict an unknown field is not an error; a wrong type still is.
        assert_eq!(violations(&schema, &bad, false).len(), 5);
        assert_eq!(
            violations(&schema, &json!({}), false),
            ["spec: Required value"]
        );
    }

    #[test]
    fn refs_are_inlined_loops_cut_and_json_schema_spellings_undone() {
        let defs: Map<String, Value> = serde_json::from_value(json!({
            "A": {"type": ["object", "null"], "properties": {
                "b": {"$ref": "#/$defs/B", "description": "the b"},
                "port": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "self": {"$ref": "#/$defs/A"},
            }},
            "B": {"type": "object", "description": "B itself", "properties": {"n": {"type": ["integer", "null"]}}},
        }))
        .unwrap();
        let a = inline(&defs["A"], &defs, &mut vec!["A".into()]);
        assert_eq!(a["type"], "object");
        assert_eq!(a["properties"]["b"]["description"], "the b");
        assert_eq!(a["properties"]["b"]["properties"]["n"]["type"], "integer");
        assert_eq!(a["properties"]["port"]["x-kubernetes-int-or-string"], true);
        assert!(a["properties"]["port"].get("type").is_none());
        assert_eq!(
            a["properties"]["self"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }
}
