//! Managed fields: which manager owns which fields (`fieldsV1`), as server-side apply and updates
//! record them, and the pruning of fields an applier stopped setting.

use serde_json::{Map, Value, json};

use super::{Part, Res, now_rfc3339, str_at};

pub(super) fn managed_entry(res: Res, manager: &str, part: Part, fields: Value) -> Value {
    let mut e = json!({
        "manager": manager, "operation": "Apply", "apiVersion": res.api_version(),
        "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields,
    });
    if part == Part::Status {
        e["subresource"] = json!("status");
    }
    e
}

/// The fields an apply body sets, in `fieldsV1` notation (`{"f:spec": {"f:replicas": {}}}`).
/// Lists are owned as a whole (no associative-list keys); metadata only through labels and
/// annotations, so that a later apply can never prune a name or uid.
pub(crate) fn field_set(body: &Value, part: Part) -> Value {
    fn walk(v: &Value) -> Value {
        match v.as_object() {
            Some(o) => Value::Object(o.iter().map(|(k, c)| (format!("f:{k}"), walk(c))).collect()),
            None => json!({}),
        }
    }
    let mut out = Map::new();
    for (k, v) in body.as_object().into_iter().flatten() {
        let wanted = match part {
            Part::Status => k == "status",
            Part::Main | Part::Scale => !matches!(k.as_str(), "apiVersion" | "kind" | "status"),
        };
        if !wanted {
            continue;
        }
        if k == "metadata" {
            let kept: Map<String, Value> = ["labels", "annotations"]
                .iter()
                .filter_map(|f| v.get(*f).map(|c| (format!("f:{f}"), walk(c))))
                .collect();
            if !kept.is_empty() {
                out.insert("f:metadata".into(), Value::Object(kept));
            }
        } else {
            out.insert(format!("f:{k}"), walk(v));
        }
    }
    Value::Object(out)
}

/// The leaf paths of a fieldsV1 set (`f:spec` → `f:replicas` → `["spec", "replicas"]`).
pub(super) fn leaves(set: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(o) = set.as_object() else {
        return;
    };
    for (k, sub) in o {
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        path.push(name.to_string());
        if sub.as_object().is_some_and(|m| !m.is_empty()) {
            leaves(sub, path, out);
        } else {
            out.push(path.clone());
        }
        path.pop();
    }
}

/// Whether a fieldsV1 set owns `path` (or all of a field above it).
pub(super) fn has_leaf(set: &Value, path: &[String]) -> bool {
    let mut node = set;
    for k in path {
        match node.get(format!("f:{k}")) {
            Some(sub) if sub.as_object().is_none_or(|m| m.is_empty()) => return true,
            Some(sub) => node = sub,
            None => return false,
        }
    }
    true
}

pub(super) fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |node, k| node.get(k))
}

/// Takes `path` out of a fieldsV1 set, and the parents it leaves empty.
pub(super) fn remove_leaf(set: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = format!("f:{first}");
    let Some(o) = set.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        o.remove(&key);
        return;
    }
    if let Some(sub) = o.get_mut(&key) {
        remove_leaf(sub, rest);
        if sub.as_object().is_some_and(|m| m.is_empty()) {
            o.remove(&key);
        }
    }
}

fn insert_leaf(set: &mut Value, path: &[String]) {
    let mut node = set;
    for k in path {
        if !node.is_object() {
            *node = json!({});
        }
        node = node
            .as_object_mut()
            .expect("an object")
            .entry(format!("f:{k}"))
            .or_insert(json!({}));
    }
}

/// The leaf paths whose values differ between `old` and `new` (lists compare whole); metadata
/// counts only for labels and annotations, and only the part being written counts.
fn changed_leaves(old: &Value, new: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match (old.as_object(), new.as_object()) {
        (Some(a), Some(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let top = path.is_empty();
                if top && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if path.len() == 1
                    && path[0] == "metadata"
                    && !matches!(k.as_str(), "labels" | "annotations")
                {
                    continue;
                }
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                if x != y {
                    path.push(k.clone());
                    changed_leaves(x, y, path, out);
                    path.pop();
                }
            }
        }
        _ if old != new && !path.is_empty() => out.push(path.clone()),
        _ => {}
    }
}

/// An update (PUT or a non-apply PATCH) with a `fieldManager` takes ownership of every field it
/// changes, from whoever owned it: updates never conflict, they record who changed what.
pub(super) fn take_update_ownership(
    res: Res,
    old: &Value,
    new: &mut Value,
    manager: Option<&str>,
    part: Part,
) {
    let Some(manager) = manager.filter(|m| !m.is_empty()) else {
        return;
    };
    let scope = |v: &Value| match part {
        Part::Status => json!({"status": v.get("status").cloned().unwrap_or(Value::Null)}),
        Part::Main | Part::Scale => {
            let mut c = v.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("status");
            }
            c
        }
    };
    let mut changed = Vec::new();
    changed_leaves(&scope(old), &scope(new), &mut Vec::new(), &mut changed);
    if changed.is_empty() {
        return;
    }
    let status = part == Part::Status;
    let is_mine = |e: &Value| {
        str_at(e, "/manager") == manager
            && str_at(e, "/operation") == "Update"
            && (str_at(e, "/subresource") == "status") == status
    };
    let mut list: Vec<Value> = old
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut mine = list
        .iter()
        .position(is_mine)
        .map(|i| list.remove(i))
        .unwrap_or_else(|| {
            let mut e = managed_entry(res, manager, part, json!({}));
            e["operation"] = json!("Update");
            e
        });
    for e in &mut list {
        for leaf in &changed {
            remove_leaf(&mut e["fieldsV1"], leaf);
        }
    }
    list.retain(|e| e["fieldsV1"].as_object().is_some_and(|o| !o.is_empty()));
    for leaf in &changed {
        insert_leaf(&mut mine["fieldsV1"], leaf);
    }
    mine["time"] = json!(now_rfc3339());
    list.push(mine);
    new["metadata"]["managedFields"] = Value::Array(list);
}

/// Removes from `obj` the fields a manager set last time (`old`) but no longer sets (`new`):
/// how server-side apply lets a manager drop a label or a port.
pub(crate) fn prune(obj: &mut Value, old: &Value, new: &Value) {
    let (Some(target), Some(old)) = (obj.as_object_mut(), old.as_object()) else {
        return;
    };
    for (fk, old_sub) in old {
        let Some(k) = fk.strip_prefix("f:") else {
            continue;
        };
        match new.get(fk) {
            None => {
                target.remove(k);
            }
            Some(new_sub) => {
                if let Some(child) = target.get_mut(k) {
                    prune(child, old_sub, new_sub);
                }
            }
        }
    }
}
