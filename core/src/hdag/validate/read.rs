//! The generic reader under every section: typed values out of a JSON tree, each failure a
//! problem with its path, unknown keys warned about, names checked (DNS labels, semver, OCI
//! references, Prometheus durations).

use super::*;

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A short rendering of a value for messages ("got 42", "got a list").
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => q(s),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

/// A map being read: remembers which keys were consumed so the rest can be reported and kept.
pub(super) struct Obj<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) path: String,
    pub(super) known: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    /// The value at `key`, with null treated as absent (YAML `key:` with nothing after it).
    pub(super) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.get_raw(key).filter(|v| !v.is_null())
    }

    /// The value at `key`, null included.
    pub(super) fn get_raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key)
    }

    pub(super) fn require(&mut self, key: &'static str, cx: &mut Cx) -> Option<&'a Value> {
        let v = self.get(key);
        if v.is_none() {
            cx.error(&self.at(key), "missing required key");
        }
        v
    }

    pub(super) fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Unknown keys: warned about, and returned to be kept.
    pub(super) fn finish(self, cx: &mut Cx) -> Extra {
        let mut extra = Extra::new();
        for (k, v) in self.map {
            if !self.known.contains(&k.as_str()) {
                cx.warn(&join(&self.path, k), "unknown key (kept)");
                extra.insert(k.clone(), v.clone());
            }
        }
        extra
    }
}

pub(super) fn obj<'a>(v: &'a Value, path: &str, cx: &mut Cx) -> Option<Obj<'a>> {
    match v {
        Value::Object(map) => Some(Obj {
            map,
            path: path.to_string(),
            known: Vec::new(),
        }),
        other => {
            cx.error(path, format!("expected a map, got {}", describe(other)));
            None
        }
    }
}

pub(super) fn list<'a>(v: &'a Value, path: &str, cx: &mut Cx) -> Option<&'a [Value]> {
    match v {
        Value::Array(items) => Some(items),
        other => {
            cx.error(path, format!("expected a list, got {}", describe(other)));
            None
        }
    }
}

/// A scalar as text: numbers and booleans are accepted as written (YAML types `v3`, `1.0`, `yes`
/// differently from what authors usually mean).
pub(super) fn text(v: &Value, path: &str, cx: &mut Cx) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            cx.error(path, format!("expected a string, got {}", describe(other)));
            None
        }
    }
}

pub(super) fn opt_text(o: &mut Obj<'_>, key: &'static str, cx: &mut Cx) -> Option<String> {
    let path = o.at(key);
    o.get(key).and_then(|v| text(v, &path, cx))
}

/// A boolean; the examples write `True`/`False`, some descriptors quote them, and the reference
/// read YAML 1.1 (PyYAML), where `yes`/`no`/`on`/`off` are booleans too.
pub(super) fn boolean(v: &Value, path: &str, cx: &mut Cx) -> Option<bool> {
    let is = |s: &str, words: [&str; 3]| words.iter().any(|w| w.eq_ignore_ascii_case(s));
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if is(s, ["true", "yes", "on"]) => Some(true),
        Value::String(s) if is(s, ["false", "no", "off"]) => Some(false),
        other => {
            cx.error(
                path,
                format!("expected true or false, got {}", describe(other)),
            );
            None
        }
    }
}

pub(super) fn opt_bool(o: &mut Obj<'_>, key: &'static str, cx: &mut Cx) -> bool {
    let path = o.at(key);
    o.get(key)
        .and_then(|v| boolean(v, &path, cx))
        .unwrap_or(false)
}

pub(super) fn uint(v: &Value, path: &str, cx: &mut Cx) -> Option<u32> {
    match v.as_u64().map(u32::try_from) {
        Some(Ok(n)) => Some(n),
        _ => {
            cx.error(
                path,
                format!("expected a whole number ≥ 0, got {}", describe(v)),
            );
            None
        }
    }
}

pub(super) fn number(v: &Value, path: &str, cx: &mut Cx) -> Option<f64> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Some(x),
        _ => {
            cx.error(path, format!("expected a number, got {}", describe(v)));
            None
        }
    }
}

/// A list of service ids (`connectionPoints`, `dependencies`), each recorded as a reference.
pub(super) fn id_list(
    v: Option<&Value>,
    path: &str,
    from: usize,
    kind: RefKind,
    cx: &mut Cx,
) -> Vec<String> {
    let Some(items) = v.and_then(|v| list(v, path, cx)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        let Some(id) = text(item, &p, cx) else {
            continue;
        };
        if !seen.insert(id.clone()) {
            cx.warn(&p, format!("{} is listed twice", q(&id)));
        }
        cx.refs.push(Ref {
            from,
            target: id.clone(),
            path: p,
            kind,
        });
        out.push(id);
    }
    out
}

pub(super) fn dns_id(v: &Value, path: &str, cx: &mut Cx) -> Option<String> {
    let id = text(v, path, cx)?;
    if let Some(problem) = dns_label_problem(&id) {
        cx.error(path, problem);
    }
    Some(id)
}

/// `MAJOR[.MINOR[.PATCH]][-pre][+build]`, optionally with a leading `v`.
pub(super) fn is_semverish(s: &str) -> bool {
    let s = s.strip_prefix('v').unwrap_or(s);
    let (s, build) = s.split_once('+').map_or((s, None), |(a, b)| (a, Some(b)));
    let (core, pre) = s.split_once('-').map_or((s, None), |(a, b)| (a, Some(b)));
    let ident_ok = |x: &str| {
        !x.is_empty()
            && x.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 18 && p.bytes().all(|c| c.is_ascii_digit()))
        && pre.is_none_or(ident_ok)
        && build.is_none_or(ident_ok)
}

/// A Prometheus duration (`30s`, `2m`, `1h30m`), used as an alert rule's `for`.
pub(super) fn is_prom_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    if rest == "0" {
        return true;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

pub(super) fn toggle(v: &Value, path: &str, cx: &mut Cx) -> Toggle {
    // `gpu: true` is accepted as short for `gpu: {enabled: true}`.
    if let Some(enabled) = v.as_bool() {
        return Toggle {
            enabled,
            extra: Extra::new(),
        };
    }
    let Some(mut o) = obj(v, path, cx) else {
        return Toggle::default();
    };
    let enabled = opt_bool(&mut o, "enabled", cx);
    Toggle {
        enabled,
        extra: o.finish(cx),
    }
}

pub(super) fn opt_toggle(o: &mut Obj<'_>, key: &'static str, cx: &mut Cx) -> Toggle {
    let path = o.at(key);
    o.get(key).map(|v| toggle(v, &path, cx)).unwrap_or_default()
}

pub(super) fn one_of<T: Copy>(
    v: &Value,
    path: &str,
    options: &[(&str, T)],
    cx: &mut Cx,
) -> Option<T> {
    let s = text(v, path, cx)?;
    let found = options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&s))
        .map(|(_, t)| *t);
    if found.is_none() {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        cx.error(
            path,
            format!("expected one of {}, got {}", names.join("|"), q(&s)),
        );
    }
    found
}

/// `oci://host[:port]/path`: Helm only pulls charts from OCI registries by that scheme.
pub(super) fn oci_ref_problem(s: &str) -> Option<String> {
    let Some(rest) = s.strip_prefix("oci://") else {
        return Some(format!(
            "expected oci://host[:port]/project/chart, got {} (it must start with oci://)",
            q(s)
        ));
    };
    let ok = rest
        .split_once('/')
        .is_some_and(|(host, path)| !host.is_empty() && !path.is_empty() && !path.ends_with('/'))
        && !s.chars().any(char::is_whitespace);
    (!ok).then(|| format!("expected oci://host[:port]/project/chart, got {}", q(s)))
}
