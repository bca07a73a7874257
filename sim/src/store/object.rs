//! What a write checks and fills in on the object itself: identity, name syntax, the defaults an
//! apiserver adds.

use serde_json::{Map, Value, json};

use super::{ApiError, ObjKey, Res, now_rfc3339, str_at};

pub(super) fn set_or_remove(target: &mut Value, field: &str, value: Option<&Value>) {
    match (value, target.as_object_mut()) {
        (Some(v), Some(o)) => {
            o.insert(field.to_string(), v.clone());
        }
        (None, Some(o)) => {
            o.remove(field);
        }
        _ => {}
    }
}

/// True when two objects differ outside `metadata` and `status`: what a `generation` bump is
/// about. Compared in place (every write asks, and copying both objects to ask cost more than the
/// write).
pub(super) fn differs_beyond_meta(a: &Value, b: &Value) -> bool {
    let empty = Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let kept = |k: &String| k != "metadata" && k != "status";
    a.keys().filter(|k| kept(k)).count() != b.keys().filter(|k| kept(k)).count()
        || a.iter().any(|(k, v)| kept(k) && b.get(k) != Some(v))
}

/// Checks and fills `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` of a body
/// against where it is written, like the apiserver does.
pub(super) fn check_identity(key: &ObjKey, obj: &mut Value) -> Result<(), ApiError> {
    let res = key.res;
    let Some(o) = obj.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    };
    for (field, want) in [
        ("apiVersion", res.api_version()),
        ("kind", res.meta().kind.to_string()),
    ] {
        match o.get(field).and_then(Value::as_str) {
            None | Some("") => {
                o.insert(field.into(), json!(want));
            }
            Some(got) if got != want => {
                return Err(ApiError::BadRequest(format!(
                    "the {field} of the object ({got}) does not match the expected {field} ({want})"
                )));
            }
            _ => {}
        }
    }
    if o.get("spec").is_some_and(|s| !s.is_object()) {
        return Err(ApiError::BadRequest("spec must be an object".into()));
    }
    let meta = o.entry("metadata").or_insert(json!({}));
    let Some(m) = meta.as_object_mut() else {
        return Err(ApiError::BadRequest("metadata must be an object".into()));
    };
    for field in ["labels", "annotations"] {
        let ok = m.get(field).is_none_or(|v| {
            v.is_null()
                || v.as_object()
                    .is_some_and(|o| o.values().all(Value::is_string))
        });
        if !ok {
            return Err(ApiError::BadRequest(format!(
                "metadata.{field} must map strings to strings"
            )));
        }
    }
    match m.get("name").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("name".into(), json!(key.name));
        }
        Some(n) if n != key.name => {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                key.name
            )));
        }
        _ => {}
    }
    if res.meta().namespaced {
        match m.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("namespace".into(), json!(key.ns));
            }
            Some(n) if n != key.ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                        .into(),
                ));
            }
            _ => {}
        }
    } else {
        m.remove("namespace");
    }
    if let Err(message) = validate_name(res, &key.name) {
        return Err(ApiError::Invalid {
            res,
            name: key.name.clone(),
            message,
        });
    }
    Ok(())
}

/// DNS-1123 subdomain for most kinds, a label for namespaces, a DNS-1035 label for services.
fn validate_name(res: Res, name: &str) -> Result<(), String> {
    let (max, dots, letter_first) = match res {
        Res::Namespace => (63, false, false),
        Res::Service => (63, false, true),
        _ => (253, true, false),
    };
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let first = name.chars().next();
    let valid = !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && first.is_some_and(|c| {
            if letter_first {
                c.is_ascii_lowercase()
            } else {
                alnum(c)
            }
        })
        && name.chars().last().is_some_and(alnum);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be a lowercase RFC 1123 {} of at most {max} characters",
            if dots { "subdomain" } else { "label" }
        ))
    }
}

/// Standard base64 with padding (what `data` of a Secret holds).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The few defaults an apiserver adds that clients read back.
pub(super) fn apply_defaults(res: Res, obj: &mut Value, old: Option<&Value>, seq: u64) {
    match res {
        Res::Namespace => {
            let name = str_at(obj, "/metadata/name").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            if obj.get("status").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        Res::Service => {
            if obj.pointer("/spec/type").is_none() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            let external = str_at(obj, "/spec/type") == "ExternalName";
            if !external && obj.pointer("/spec/clusterIP").is_none() {
                let ip = old
                    .and_then(|o| o.pointer("/spec/clusterIP").cloned())
                    .unwrap_or_else(|| json!(format!("10.96.{}.{}", (seq >> 8) & 255, seq & 255)));
                obj["spec"]["clusterIPs"] = json!([ip]);
                obj["spec"]["clusterIP"] = ip;
            }
        }
        Res::Deployment if obj.pointer("/spec/replicas").is_none() => {
            obj["spec"]["replicas"] = json!(1);
        }
        // As the apiserver defaults them (what `kubectl rollout status` reads).
        Res::StatefulSet => {
            if obj.pointer("/spec/replicas").is_none() {
                obj["spec"]["replicas"] = json!(1);
            }
            if obj.pointer("/spec/updateStrategy/type").is_none() {
                obj["spec"]["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
            }
            if obj.pointer("/spec/podManagementPolicy").is_none() {
                obj["spec"]["podManagementPolicy"] = json!("OrderedReady");
            }
        }
        Res::DaemonSet => {
            if obj.pointer("/spec/updateStrategy/type").is_none() {
                obj["spec"]["updateStrategy"] = json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
            }
            if obj.pointer("/spec/revisionHistoryLimit").is_none() {
                obj["spec"]["revisionHistoryLimit"] = json!(10);
            }
        }
        // The sim runs no pods: a Job completes as soon as it exists (what Helm's hooks wait for).
        Res::Job if obj.get("status").is_none() => {
            let now = now_rfc3339();
            obj["status"] = json!({
                "succeeded": 1, "startTime": now, "completionTime": now,
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}],
            });
        }
        // A Secret's `stringData` is write-only: the apiserver folds it into `data` (base64).
        Res::Secret => {
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                for (k, v) in sd {
                    let text = v.as_str().unwrap_or_default().to_string();
                    obj["data"][k] = json!(base64_encode(text.as_bytes()));
                }
            }
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
        }
        _ => {}
    }
}
