//! Patches: RFC 7386 JSON merge patch and RFC 6902 JSON patch.

use serde_json::{Value, json};

/// RFC 7386 JSON merge patch (also how applied fields land on the live object: objects merge
/// recursively, lists and scalars are replaced, `null` deletes).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
pub(crate) fn json_patch(doc: &Value, ops: &Value) -> Result<Value, String> {
    let Some(ops) = ops.as_array() else {
        return Err("a JSON patch must be an array of operations".into());
    };
    let mut doc = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or(format!("op {i}: missing path"))?;
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or(format!("op {i}: missing from"))
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or(format!("op {i}: missing value"))
        };
        match op.get("op").and_then(Value::as_str).unwrap_or("") {
            "add" => pointer_add(&mut doc, path, value()?)?,
            "remove" => {
                pointer_remove(&mut doc, path)?;
            }
            "replace" => {
                pointer_remove(&mut doc, path)?;
                pointer_add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = pointer_remove(&mut doc, from()?)?;
                pointer_add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or(format!("op {i}: from not found"))?;
                pointer_add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("op {i}: test failed at {path}"));
                }
            }
            other => return Err(format!("op {i}: unknown operation {other:?}")),
        }
    }
    Ok(doc)
}

fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..idx], last))
}

fn pointer_add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(o)) => {
            o.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let at = if last == "-" {
                a.len()
            } else {
                last.parse().map_err(|_| format!("bad index in {path}"))?
            };
            if at > a.len() {
                return Err(format!("index out of range in {path}"));
            }
            a.insert(at, value);
            Ok(())
        }
        _ => Err(format!("path not found: {path}")),
    }
}

fn pointer_remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let removed = match doc.pointer_mut(parent) {
        Some(Value::Object(o)) => o.remove(&last),
        Some(Value::Array(a)) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < a.len())
            .map(|i| a.remove(i)),
        _ => None,
    };
    removed.ok_or_else(|| format!("path not found: {path}"))
}
