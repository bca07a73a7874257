//! Watches (`?watch=true` on any list path, or on one object's path): newline-delimited watch
//! events, as an apiserver streams them, from the store's change log.
//!
//! Semantics followed: without `resourceVersion` (or with `"0"`) the watch starts with an `ADDED`
//! event per matching object, then streams changes; with one, it streams the changes after it, and
//! a version older than the store keeps gets one `ERROR` event (410 Expired) so the client lists
//! again. `sendInitialEvents=true` (the watch-list protocol) sends the `ADDED` events and then a
//! `BOOKMARK` annotated `k8s.io/initial-events-end`. `allowWatchBookmarks=true` adds a `BOOKMARK`
//! every few seconds; `timeoutSeconds` ends the stream. Label and field selectors filter as they
//! do for lists. `Accept: …;as=Table` gets each event's object as a one-row Table (`kubectl get
//! -w`). A watch is a reader: the simulation catches up with pending writes before each read, as a
//! GET does.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, sync::Notify};

use super::{
    State,
    reconcile::reconcile,
    store::{
        ApiError, Change, ChangeKind, Res, matches_all, parse_field_selector, parse_label_selector,
        str_at,
    },
};

/// How often an idle watch looks for changes it was not woken for (time-driven ones).
const TICK: Duration = Duration::from_millis(250);
/// How often a watch that allows bookmarks sends one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// The longest a watch runs when the client names no `timeoutSeconds`.
const MAX_WATCH: Duration = Duration::from_secs(1800);

/// True when the query asks for a watch.
pub(crate) fn wanted(query: &BTreeMap<String, String>) -> bool {
    query.get("watch").is_some_and(|w| w == "true" || w == "1")
}

/// What one watch follows.
pub(crate) struct Spec {
    res: Res,
    ns: Option<String>,
    labels: Vec<super::store::Requirement>,
    fields: Vec<(&'static str, String, bool)>,
    table: bool,
    bookmarks: bool,
    timeout: Duration,
    /// The version to stream from; `None`: from now, after the current objects as `ADDED`.
    from: Option<u64>,
    /// The watch-list protocol: the current objects, then a bookmark that says so.
    initial_events: bool,
}

impl Spec {
    /// Reads a watch request on `res` (in `ns`; `name` narrows it to one object).
    pub(crate) fn parse(
        res: Res,
        ns: Option<&str>,
        name: Option<&str>,
        query: &BTreeMap<String, String>,
        accept: &str,
    ) -> Result<Spec, ApiError> {
        let labels = parse_label_selector(query.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::BadRequest)?;
        let mut fields =
            parse_field_selector(query.get("fieldSelector").map_or("", String::as_str))
                .map_err(ApiError::BadRequest)?;
        if let Some(n) = name {
            fields.push(("/metadata/name", n.to_string(), true));
        }
        let from = match query.get("resourceVersion").map(String::as_str) {
            None | Some("" | "0") => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {v:?}")))?,
            ),
        };
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map_or(MAX_WATCH, |s| Duration::from_secs(s).min(MAX_WATCH));
        Ok(Spec {
            res,
            ns: ns.filter(|n| !n.is_empty()).map(str::to_string),
            labels,
            fields,
            table: accept.contains("as=Table"),
            bookmarks: query
                .get("allowWatchBookmarks")
                .is_some_and(|b| b == "true"),
            timeout,
            from,
            initial_events: query.get("sendInitialEvents").is_some_and(|b| b == "true"),
        })
    }

    fn matches(&self, res: Res, obj: &Value) -> bool {
        res == self.res
            && self
                .ns
                .as_deref()
                .is_none_or(|ns| str_at(obj, "/metadata/namespace") == ns)
            && matches_all(&self.labels, &obj["metadata"]["labels"])
            && self
                .fields
                .iter()
                .all(|(p, v, eq)| (str_at(obj, p) == v) == *eq)
    }

    fn event(&self, kind: &str, obj: &Value) -> Vec<u8> {
        let object = if self.table {
            super::table::to_table(obj, chrono::Utc::now())
        } else {
            obj.clone()
        };
        let mut line = json!({"type": kind, "object": object})
            .to_string()
            .into_bytes();
        line.push(b'\n');
        line
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Vec<u8> {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.res.meta().kind,
            "apiVersion": self.res.api_version(),
            "metadata": meta,
        });
        let mut line = json!({"type": "BOOKMARK", "object": object})
            .to_string()
            .into_bytes();
        line.push(b'\n');
        line
    }

    fn expired(rv: u64) -> Vec<u8> {
        let mut line = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {rv}"), "reason": "Expired", "code": 410,
        }})
        .to_string()
        .into_bytes();
        line.push(b'\n');
        line
    }
}

/// The first read of a watch, under the state lock: what to send at once and the version to
/// follow from, or `Err(lines)` for a watch that ends at once (410).
pub(crate) fn start(st: &mut State, spec: &Spec) -> Result<(Vec<u8>, u64), Vec<u8>> {
    if st.needs_reconcile() {
        reconcile(st, std::time::Instant::now());
    }
    let now = st.store.resource_version();
    let mut out = Vec::new();
    match spec.from {
        Some(rv) if !spec.initial_events => {
            if st.store.changes_since(rv).is_none() {
                return Err(Spec::expired(rv));
            }
            Ok((out, rv))
        }
        _ => {
            for obj in st.store.list(spec.res, spec.ns.as_deref()) {
                if spec.matches(spec.res, obj) {
                    out.extend(spec.event(ChangeKind::Added.as_str(), obj));
                }
            }
            if spec.initial_events {
                out.extend(spec.bookmark(now, true));
            }
            Ok((out, now))
        }
    }
}

/// Later reads: the changes after `after` that the watch follows, and the version read up to.
fn next(st: &mut State, spec: &Spec, after: u64) -> Result<(Vec<u8>, u64), Vec<u8>> {
    if st.needs_reconcile() {
        reconcile(st, std::time::Instant::now());
    }
    let Some(changes) = st.store.changes_since(after) else {
        return Err(Spec::expired(after));
    };
    let mut out = Vec::new();
    let mut upto = after;
    for c in changes {
        let Change { rv, kind, res, obj } = &*c;
        upto = *rv;
        if spec.matches(*res, obj) {
            out.extend(spec.event(kind.as_str(), obj));
        }
    }
    Ok((out, upto.max(after)))
}

/// Streams a watch into `out` until its timeout, the client going away, or a 410.
pub(crate) async fn run(
    state: Arc<std::sync::Mutex<State>>,
    changed: Arc<Notify>,
    spec: Spec,
    first: Vec<u8>,
    mut at: u64,
    mut out: tokio::io::DuplexStream,
) {
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let mut last_bookmark = tokio::time::Instant::now();
    if !first.is_empty() && out.write_all(&first).await.is_err() {
        return;
    }
    loop {
        let woken = changed.notified();
        let read = {
            let mut st = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            next(&mut st, &spec, at)
        };
        match read {
            Ok((lines, upto)) => {
                at = upto;
                if !lines.is_empty() && out.write_all(&lines).await.is_err() {
                    return;
                }
            }
            Err(gone) => {
                let _ = out.write_all(&gone).await;
                return;
            }
        }
        if spec.bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
            last_bookmark = tokio::time::Instant::now();
            if out.write_all(&spec.bookmark(at, false)).await.is_err() {
                return;
            }
        }
        let _ = out.flush().await;
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = tokio::time::sleep_until(deadline) => return,
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}
