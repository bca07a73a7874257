//! Label and field selectors: parsed from queries and `LabelSelector`s, matched against labels.

use serde_json::Value;

use super::str_at;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        match self {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        }
    }
}

/// True when `labels` (a JSON object, or null) satisfies every requirement.
pub(crate) fn matches_all(reqs: &[Requirement], labels: &Value) -> bool {
    reqs.iter().all(|r| r.matches(labels))
}

/// Parses the `labelSelector` query syntax: `a=b,c==d,e!=f,g in (x,y),h notin (z),i,!j`.
pub(crate) fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    let mut out = Vec::new();
    for p in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'));
            let inner = inner.ok_or_else(|| format!("invalid selector term {p:?}"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let req = if let Some((k, v)) = p.split_once("!=") {
            Requirement::NotEq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            Requirement::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            Requirement::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = p.split_once(" in ") {
            Requirement::In(k.trim().into(), set(rest)?)
        } else if let Some(k) = p.strip_prefix('!') {
            Requirement::NotExists(k.trim().into())
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Requirement::Exists(p.into())
        } else {
            return Err(format!("invalid selector term {p:?}"));
        };
        out.push(req);
    }
    Ok(out)
}

/// Converts a structured `LabelSelector` (`matchLabels`, `matchExpressions`); `None` when it
/// uses an unknown operator, which then matches nothing.
pub(crate) fn label_selector(sel: &Value) -> Option<Vec<Requirement>> {
    let mut out: Vec<Requirement> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| Requirement::Eq(k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(e, "/key").to_string();
        let values: Vec<String> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        out.push(match str_at(e, "/operator") {
            "In" => Requirement::In(key, values),
            "NotIn" => Requirement::NotIn(key, values),
            "Exists" => Requirement::Exists(key),
            "DoesNotExist" => Requirement::NotExists(key),
            _ => return None,
        });
    }
    Some(out)
}

/// Parses a `fieldSelector`; only `metadata.name` and `metadata.namespace` are supported, as
/// for custom resources. Each term is (JSON pointer, wanted value, equal?).
pub(crate) fn parse_field_selector(s: &str) -> Result<Vec<(&'static str, String, bool)>, String> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, eq) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(format!("invalid field selector term {term:?}"));
        };
        let pointer = match field.trim() {
            "metadata.name" => "/metadata/name",
            "metadata.namespace" => "/metadata/namespace",
            other => return Err(format!("field label not supported: {other}")),
        };
        out.push((pointer, value.trim().to_string(), eq));
    }
    Ok(out)
}
