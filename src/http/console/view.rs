//! The console's pages as pure functions from data to HTML (no I/O: unit-tested without servers).
//! Every value that came from a user or the database goes through [`esc`].

use std::{collections::BTreeMap, fmt::Write as _};

use chrono::{DateTime, Utc};
use smo_core::model::DecisionKind;
use smo_jobs::JobState;

use crate::store::{
    ClusterRecord, ClusterUsage, Decision, GraphOverview, PlacedService, ServiceRecord,
};

/// HTML-escapes text for element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value (graph names are DNS labels, but filters are not).
pub fn url_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Which top-level page is open (marks the navigation link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Graphs,
    Deploy,
    Clusters,
    Queue,
    None,
}

/// The shell every page shares: navigation, a skip link, `<main>` (what live refresh replaces when
/// `live`) and the small script.
/// `who` is the signed-in caller when the server has tokens: the navigation offers only what its
/// role may do, and the header says who is signed in.
pub fn layout(
    title: &str,
    nav: Nav,
    main: &str,
    live: bool,
    who: Option<&crate::access::Caller>,
) -> String {
    use crate::access::Need;
    let link = |n: Nav, href: &str, label: &str| {
        let current = if n == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    let logout = match who {
        Some(c) => format!(
            "<form method=\"post\" action=\"/console/logout\" class=\"logout\"><span class=\"who\" id=\"who\">{}</span> <button type=\"submit\">Sign out</button></form>",
            esc(&c.describe())
        ),
        None => String::new(),
    };
    let may = |need: Need| who.is_none_or(|c| c.role.grants(need));
    let deploy = if may(Need::Deploy) {
        link(Nav::Deploy, "/console/deploy", "Deploy")
    } else {
        String::new()
    };
    let queue = if may(Need::Admin) {
        link(Nav::Queue, "/console/queue", "Queue")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · smo console</title><link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head>\
<body><a class=\"skip\" href=\"#main\">Skip to content</a>\
<header><span class=\"brand\">smo</span><nav aria-label=\"Console\">{}{}{}{}</nav>{logout}</header>\
<main id=\"main\" tabindex=\"-1\"{}>{main}</main>\
<script src=\"/console/assets/console.js\" defer></script></body></html>",
        link(Nav::Graphs, "/console", "Graphs"),
        deploy,
        link(Nav::Clusters, "/console/clusters", "Clusters"),
        queue,
        if live { " data-live=\"5000\"" } else { "" },
        title = esc(title),
    )
}

/// A status as text with a shape and a colour class: readable without colour.
pub fn status_badge(status: &str) -> String {
    let (class, mark) = match status.to_ascii_lowercase().as_str() {
        "running" | "succeeded" => ("ok", "●"),
        "deploying" | "pending" | "queued" | "deployed" => ("busy", "◐"),
        "running-job" => ("busy", "◐"),
        "stopping" | "stopped" | "cancelled" => ("idle", "■"),
        "removing" | "retrying" => ("warn", "▲"),
        "failed" | "dead" => ("bad", "✖"),
        _ => ("idle", "○"),
    };
    format!(
        "<span class=\"st st-{class}\"><span aria-hidden=\"true\">{mark}</span> {}</span>",
        esc(status)
    )
}

fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let s = (now - at).num_seconds().max(0);
    let text = match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    };
    format!(
        "<time datetime=\"{}\" title=\"{}\">{text}</time>",
        at.to_rfc3339(),
        at.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// The sign-in form (only when the server has an API token).
pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let main = format!(
        "<h1>Sign in</h1>{error}<form method=\"post\" action=\"/console/login\" class=\"card narrow\">\
<label for=\"token\">API token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<p class=\"hint\">The server's <code>api_token</code> or a token from <code>smo-admin tokens create</code>. The browser keeps a session, never the token.</p>\
<button type=\"submit\">Sign in</button></form>"
    );
    layout("Sign in", Nav::None, &main, false, None)
}

/// Filters of the graph list.
#[derive(Debug, Default, Clone)]
pub struct GraphFilter {
    pub project: Option<String>,
    pub status: Option<String>,
}

/// The statuses a graph may have, for the filter.
const GRAPH_STATUSES: &[&str] = &[
    "Pending",
    "Deploying",
    "Running",
    "Stopping",
    "Stopped",
    "Removing",
    "Failed",
];

/// The graph list.
pub fn graphs(
    rows: &[GraphOverview],
    projects: &[String],
    filter: &GraphFilter,
    now: DateTime<Utc>,
) -> String {
    let mut m = String::with_capacity(256 + rows.len() * 400);
    m.push_str("<h1>Graphs</h1><form method=\"get\" action=\"/console\" class=\"filters\">");
    m.push_str("<label for=\"f-project\">Project</label><select id=\"f-project\" name=\"project\"><option value=\"\">all</option>");
    for p in projects {
        let sel = if filter.project.as_deref() == Some(p) {
            " selected"
        } else {
            ""
        };
        let _ = write!(m, "<option{sel}>{}</option>", esc(p));
    }
    m.push_str("</select><label for=\"f-status\">Status</label><select id=\"f-status\" name=\"status\"><option value=\"\">all</option>");
    for s in GRAPH_STATUSES {
        let sel = if filter.status.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(m, "<option{sel}>{s}</option>");
    }
    m.push_str("</select><button type=\"submit\">Filter</button></form>");
    if rows.is_empty() {
        m.push_str("<p class=\"empty\">No graphs. <a href=\"/console/deploy\">Deploy one</a>.</p>");
        return m;
    }
    let _ = write!(
        m,
        "<table class=\"list\" id=\"graphs\"><caption>{} graphs</caption><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Project</th>\
<th scope=\"col\">Status</th><th scope=\"col\">Services running</th><th scope=\"col\">Last decision</th></tr></thead><tbody>",
        rows.len()
    );
    for g in rows {
        let decision = match (&g.decision_kind, &g.decision_message, g.decision_at) {
            (Some(k), Some(msg), Some(at)) => format!(
                "<span class=\"kind\">{}</span> {} · {}",
                esc(k),
                esc(msg),
                ago(now, at)
            ),
            _ => "—".into(),
        };
        let _ = write!(
            m,
            "<tr data-graph=\"{n}\"><th scope=\"row\"><a href=\"/console/graphs/{u}\">{n}</a></th><td>{p}</td><td>{}</td>\
<td>{}/{}</td><td>{decision}</td></tr>",
            status_badge(&g.status),
            g.running,
            g.services,
            n = esc(&g.name),
            u = url_enc(&g.name),
            p = esc(&g.project),
        );
    }
    m.push_str("</tbody></table>");
    m
}

/// One service of a graph, as the graph page needs it: its record, and what the descriptor
/// and the placement say about it.
#[derive(Debug, Clone)]
pub struct ServiceNode {
    pub service: ServiceRecord,
    /// `image` or `helm`.
    pub artifact: String,
    /// Services it calls (its connection points).
    pub calls: Vec<String>,
    /// Why it runs where it runs (the placement's explanation), when known.
    pub explanation: Option<String>,
}

/// Everything the graph page shows.
#[derive(Debug, Clone)]
pub struct GraphPage {
    pub name: String,
    pub project: String,
    pub status: String,
    pub status_message: Option<String>,
    pub desired: String,
    pub revision: i32,
    pub version: String,
    pub description: Option<String>,
    pub services: Vec<ServiceNode>,
    pub clusters: Vec<ClusterRecord>,
    /// Requests per cluster: this graph's and the other graphs'.
    pub usage: Vec<ClusterUsage>,
    /// Newest first.
    pub decisions: Vec<Decision>,
    pub jobs: Vec<smo_jobs::JobRow>,
    pub dashboards: BTreeMap<String, String>,
    /// Where the replica chart comes from.
    pub replicas: ReplicaSource,
}

/// The replica chart's data: Prometheus's series, or smo's decision log and why not Prometheus.
#[derive(Debug, Clone)]
pub enum ReplicaSource {
    Prometheus(BTreeMap<String, Vec<(DateTime<Utc>, i64)>>),
    DecisionLog(String),
}

/// Range-query series keyed by service: the `deployment` label without the graph's `prefix`.
pub fn series_by_service(
    series: &[crate::monitoring::RangeSeries],
    prefix: &str,
) -> BTreeMap<String, Vec<(DateTime<Utc>, i64)>> {
    let mut out: BTreeMap<String, Vec<(DateTime<Utc>, i64)>> = BTreeMap::new();
    for (labels, values) in series {
        let Some(service) = labels
            .get("deployment")
            .and_then(|d| d.strip_prefix(prefix))
        else {
            continue;
        };
        let points = out.entry(service.to_string()).or_default();
        for (t, v) in values {
            if let Some(at) = DateTime::from_timestamp_millis((t * 1000.0) as i64) {
                points.push((at, v.round() as i64));
            }
        }
        points.sort_by_key(|p| p.0);
    }
    out
}

/// Node geometry of the topology drawing.
const NODE_W: i64 = 170;
const NODE_H: i64 = 52;
const GAP_X: i64 = 70;
const GAP_Y: i64 = 22;

/// Columns of a left-to-right layered drawing: a service sits one column right of every service
/// that calls it (longest path from the callers; cycles are cut after `n` rounds).
pub fn layers(services: &[ServiceNode]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.service.name.as_str(), i))
        .collect();
    let mut level = vec![0usize; services.len()];
    for _ in 0..services.len() {
        let mut changed = false;
        for (i, s) in services.iter().enumerate() {
            for c in &s.calls {
                if let Some(&j) = index.get(c.as_str())
                    && j != i
                    && level[j] < level[i] + 1
                    && level[i] + 1 < services.len()
                {
                    level[j] = level[i] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    level
}

/// The service topology as SVG: services as boxes coloured (and labelled) by status, conditional
/// ones dashed, an arrow from each service to every service it calls.
pub fn topology_svg(services: &[ServiceNode]) -> String {
    let level = layers(services);
    let mut row_of = vec![0i64; services.len()];
    let mut rows: BTreeMap<usize, i64> = BTreeMap::new();
    for (i, l) in level.iter().enumerate() {
        let r = rows.entry(*l).or_insert(0);
        row_of[i] = *r;
        *r += 1;
    }
    let cols = level.iter().max().map_or(1, |m| m + 1) as i64;
    let max_rows = rows.values().copied().max().unwrap_or(1).max(1);
    let (w, h) = (
        cols * (NODE_W + GAP_X) - GAP_X + 20,
        max_rows * (NODE_H + GAP_Y) - GAP_Y + 20,
    );
    let pos = |i: usize| {
        (
            10 + level[i] as i64 * (NODE_W + GAP_X),
            10 + row_of[i] * (NODE_H + GAP_Y),
        )
    };
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.service.name.as_str(), i))
        .collect();
    let mut svg = format!(
        "<svg class=\"topology\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-labelledby=\"topo-title\">\
<title id=\"topo-title\">Service topology: {} services</title>\
<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
<path d=\"M0,0 L10,5 L0,10 z\" class=\"arrowhead\"/></marker></defs>",
        services.len()
    );
    for (i, s) in services.iter().enumerate() {
        for c in &s.calls {
            let Some(&j) = index.get(c.as_str()) else {
                continue;
            };
            let ((x1, y1), (x2, y2)) = (pos(i), pos(j));
            let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2);
            let mid = (sx + ex) / 2;
            let _ = write!(
                svg,
                "<path class=\"edge\" d=\"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}\" marker-end=\"url(#arrow)\"><title>{} calls {}</title></path>",
                esc(&s.service.name),
                esc(c)
            );
        }
    }
    for (i, s) in services.iter().enumerate() {
        let (x, y) = pos(i);
        let class = status_class(s.service.status.as_str());
        let dashed = if s.service.conditional {
            " conditional"
        } else {
            ""
        };
        let where_ = s.service.cluster.as_deref().unwrap_or("not placed");
        let _ = write!(
            svg,
            "<g class=\"node {class}{dashed}\" data-service=\"{n}\"><title>{n}: {st}{cond}, {where_}</title>\
<rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\"/>\
<text x=\"{tx}\" y=\"{ty1}\" class=\"name\">{n}</text><text x=\"{tx}\" y=\"{ty2}\" class=\"meta\">{st} · {where_}{cond_short}</text></g>",
            n = esc(&s.service.name),
            st = esc(s.service.status.as_str()),
            where_ = esc(where_),
            cond = if s.service.conditional {
                " (conditional)"
            } else {
                ""
            },
            cond_short = if s.service.conditional { " · ⚡" } else { "" },
            tx = x + 10,
            ty1 = y + 21,
            ty2 = y + 40,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn status_class(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "running" => "st-ok",
        "deploying" | "pending" | "deployed" => "st-busy",
        "failed" => "st-bad",
        "removing" => "st-warn",
        _ => "st-idle",
    }
}

/// One resource of one cluster split three ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub this: f64,
    pub others: f64,
    pub total: f64,
}

impl Share {
    pub fn free(&self) -> f64 {
        (self.total - self.this - self.others).max(0.0)
    }
}

/// Per cluster: (cpu cores, memory GiB, GPUs) requested by this graph, by the others, and in all.
pub fn shares(clusters: &[ClusterRecord], usage: &[ClusterUsage]) -> Vec<(String, [Share; 3])> {
    clusters
        .iter()
        .map(|c| {
            let mut s = [
                Share {
                    this: 0.0,
                    others: 0.0,
                    total: c.cpu_allocatable,
                },
                Share {
                    this: 0.0,
                    others: 0.0,
                    total: c.memory_allocatable as f64 / GIB,
                },
                Share {
                    this: 0.0,
                    others: 0.0,
                    total: c.gpus as f64,
                },
            ];
            for u in usage.iter().filter(|u| u.cluster == c.name) {
                let used = [
                    u.cpu_millis as f64 / 1000.0,
                    u.memory_bytes as f64 / GIB,
                    u.gpus as f64,
                ];
                for (share, v) in s.iter_mut().zip(used) {
                    if u.mine {
                        share.this += v;
                    } else {
                        share.others += v;
                    }
                }
            }
            (c.name.to_string(), s)
        })
        .collect()
}

/// [`ClusterUsage`] summed from placed services (the clusters page has them anyway).
pub fn usage_of(placed: &[PlacedService], graph: &str) -> Vec<ClusterUsage> {
    let mut sums: BTreeMap<(String, bool), ClusterUsage> = BTreeMap::new();
    for p in placed {
        let mine = p.graph == graph;
        let u = sums
            .entry((p.cluster.clone(), mine))
            .or_insert_with(|| ClusterUsage {
                cluster: p.cluster.clone(),
                mine,
                cpu_millis: 0,
                memory_bytes: 0,
                gpus: 0,
            });
        let n = i64::from(p.replicas.max(0));
        u.cpu_millis += p.cpu_millis * n;
        u.memory_bytes += p.memory_bytes * n;
        u.gpus += if p.gpu { n } else { 0 };
    }
    sums.into_values().collect()
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn bar(label: &str, unit: &str, s: &Share) -> String {
    let text = format!(
        "{label}: this graph {:.1}, others {:.1}, free {:.1} of {:.1} {unit}",
        s.this,
        s.others,
        s.free(),
        s.total
    );
    bar_with(&text, s)
}

/// A bar of what every graph requests on a cluster (the clusters page has no "this graph").
fn bar_all(label: &str, unit: &str, s: &Share) -> String {
    let all = Share {
        this: 0.0,
        others: s.this + s.others,
        total: s.total,
    };
    let text = format!(
        "{label}: requested {:.1}, free {:.1} of {:.1} {unit}",
        all.others,
        all.free(),
        all.total
    );
    bar_with(&text, &all)
}

fn bar_with(text: &str, s: &Share) -> String {
    let pct = |v: f64| {
        if s.total > 0.0 {
            (v / s.total * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        }
    };
    format!(
        "<div class=\"res\"><div class=\"bar\" role=\"img\" aria-label=\"{t}\"><span class=\"seg this\" style=\"width:{:.1}%\"></span>\
<span class=\"seg others\" style=\"width:{:.1}%\"></span></div><div class=\"bar-text\">{t}</div></div>",
        pct(s.this),
        pct(s.others),
        t = esc(text)
    )
}

/// The placement map: clusters as columns with CPU, memory and GPU bars (this graph, others,
/// free) and this graph's services on each.
pub fn placement_map(page: &GraphPage) -> String {
    let mut m = String::from("<div class=\"placement\">");
    for (name, [cpu, mem, gpu]) in shares(&page.clusters, &page.usage) {
        let ready = page
            .clusters
            .iter()
            .find(|c| c.name == name)
            .is_some_and(|c| c.ready);
        let _ = write!(
            m,
            "<section class=\"cluster-col\" data-cluster=\"{n}\" aria-label=\"cluster {n}\"><h3>{n}{}</h3>{}{}{}<ul class=\"here\">",
            if ready {
                ""
            } else {
                " <span class=\"st st-bad\">not ready</span>"
            },
            bar("CPU", "cores", &cpu),
            bar("Memory", "GiB", &mem),
            if gpu.total > 0.0 {
                bar("GPU", "GPUs", &gpu)
            } else {
                "<div class=\"res bar-text\">no GPUs</div>".into()
            },
            n = esc(&name)
        );
        for s in page
            .services
            .iter()
            .filter(|s| s.service.cluster.as_deref() == Some(&name))
        {
            let _ = write!(
                m,
                "<li data-placed=\"{n}\"><strong>{n}</strong> ×{} {}",
                s.service.replicas,
                status_badge(s.service.status.as_str()),
                n = esc(&s.service.name)
            );
            if let Some(e) = &s.explanation {
                let _ = write!(m, "<p class=\"why\">{}</p>", esc(e));
            }
            m.push_str("</li>");
        }
        m.push_str("</ul></section>");
    }
    m.push_str("</div><p class=\"legend\"><span class=\"seg this\"></span> this graph <span class=\"seg others\"></span> other graphs <span class=\"seg free\"></span> free</p>");
    m
}

/// Replica counts per service over time, from the scaling decisions (oldest first) and the
/// current counts: `service → [(at, replicas)]`.
pub fn replica_series(
    services: &[ServiceNode],
    decisions: &[Decision],
    now: DateTime<Utc>,
) -> BTreeMap<String, Vec<(DateTime<Utc>, i64)>> {
    let mut series: BTreeMap<String, Vec<(DateTime<Utc>, i64)>> = BTreeMap::new();
    for d in decisions
        .iter()
        .rev()
        .filter(|d| d.kind == DecisionKind::Scaling)
    {
        let mut changes = Vec::new();
        collect_changes(&d.outcome, &mut changes);
        for (service, from, to) in changes {
            let s = series.entry(service).or_default();
            if s.is_empty() {
                s.push((d.at - chrono::Duration::seconds(1), from));
            }
            s.push((d.at, to));
        }
    }
    for s in services {
        series
            .entry(s.service.name.clone())
            .or_default()
            .push((now, s.service.replicas as i64));
    }
    series
}

/// Every `{service, from, to}` object under a `changed` list, however the outcome nests them.
fn collect_changes(v: &serde_json::Value, out: &mut Vec<(String, i64, i64)>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Array(changed)) = m.get("changed") {
                for c in changed {
                    if let (Some(s), Some(f), Some(t)) = (
                        c.get("service").and_then(|x| x.as_str()),
                        c.get("from").and_then(|x| x.as_i64()),
                        c.get("to").and_then(|x| x.as_i64()),
                    ) {
                        out.push((s.to_string(), f, t));
                    }
                }
            }
            for (k, x) in m {
                if k != "changed" {
                    collect_changes(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_changes(x, out)),
        _ => {}
    }
}

/// A step chart of [`replica_series`] with a text table beside it.
pub fn replica_chart(series: &BTreeMap<String, Vec<(DateTime<Utc>, i64)>>) -> String {
    let points = series.values().flatten();
    let (Some(t0), Some(t1)) = (
        points.clone().map(|p| p.0).min(),
        points.clone().map(|p| p.0).max(),
    ) else {
        return "<p class=\"empty\">No services.</p>".into();
    };
    let ymax = points.map(|p| p.1).max().unwrap_or(1).max(1);
    let span = (t1 - t0).num_milliseconds().max(1) as f64;
    let (w, h) = (560.0, 140.0);
    let x = |t: DateTime<Utc>| 40.0 + (t - t0).num_milliseconds() as f64 / span * (w - 50.0);
    let y = |v: i64| h - 20.0 - v as f64 / ymax as f64 * (h - 30.0);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"Replicas per service over time; the table below has the same figures\">\
<line class=\"axis\" x1=\"40\" y1=\"{b}\" x2=\"{w}\" y2=\"{b}\"/><text x=\"4\" y=\"{t}\" class=\"meta\">{ymax}</text><text x=\"4\" y=\"{b}\" class=\"meta\">0</text>",
        b = h - 20.0,
        t = y(ymax) + 4.0,
    );
    let mut table = String::from(
        "<table class=\"list compact\"><thead><tr><th scope=\"col\">Service</th><th scope=\"col\">Replicas (oldest first)</th></tr></thead><tbody>",
    );
    for (i, (service, pts)) in series.iter().enumerate() {
        let mut d = String::new();
        for (k, (t, v)) in pts.iter().enumerate() {
            if k == 0 {
                let _ = write!(d, "M{:.1},{:.1}", x(*t), y(*v));
            } else {
                let _ = write!(d, " H{:.1} V{:.1}", x(*t), y(*v));
            }
        }
        let _ = write!(
            svg,
            "<path class=\"series s{}\" d=\"{d}\"><title>{}</title></path>",
            i % 6,
            esc(service)
        );
        let steps: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{v} <small>({})</small>", t.format("%H:%M:%S")))
            .collect();
        let _ = write!(
            table,
            "<tr><th scope=\"row\"><span class=\"swatch s{}\"></span>{}</th><td>{}</td></tr>",
            i % 6,
            esc(service),
            steps.join(" → ")
        );
    }
    svg.push_str("</svg>");
    table.push_str("</tbody></table>");
    svg + &table
}

fn json_block(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    if s.len() > 20_000 {
        let cut = (0..=20_000)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push_str("\n… (truncated)");
    }
    format!("<pre>{}</pre>", esc(&s))
}

fn jobs_table(jobs: &[smo_jobs::JobRow], now: DateTime<Utc>, actions: bool) -> String {
    if jobs.is_empty() {
        return "<p class=\"empty\">No jobs.</p>".into();
    }
    let mut m = String::from(
        "<table class=\"list jobs\"><thead><tr><th scope=\"col\">Job</th><th scope=\"col\">Kind</th><th scope=\"col\">State</th>\
<th scope=\"col\">Attempts</th><th scope=\"col\">Enqueued</th><th scope=\"col\">Last error</th>",
    );
    if actions {
        m.push_str("<th scope=\"col\">Actions</th>");
    }
    m.push_str("</tr></thead><tbody>");
    for j in jobs {
        let short = j.id.to_string();
        let _ = write!(
            m,
            "<tr data-job=\"{id}\" data-kind=\"{k}\" data-state=\"{s}\"><td><code title=\"{id}\">{}</code></td><td>{k}</td><td>{}</td><td>{}/{}</td><td>{}</td><td class=\"err\">{}</td>",
            &short[..8.min(short.len())],
            status_badge(&j.state),
            j.attempt,
            j.max_attempts,
            ago(now, j.created_at),
            esc(&j.last_error().unwrap_or_default()),
            id = j.id,
            k = esc(&j.kind),
            s = esc(&j.state),
        );
        if actions {
            m.push_str("<td class=\"actions\">");
            let state = j.state.parse::<JobState>().ok();
            if matches!(state, Some(JobState::Dead | JobState::Cancelled)) {
                let _ = write!(
                    m,
                    "<form method=\"post\" action=\"/console/jobs/{}/retry\"><button type=\"submit\">Retry</button></form>",
                    j.id
                );
            }
            if state.is_some_and(|s| !s.is_final()) {
                let _ = write!(
                    m,
                    "<form method=\"post\" action=\"/console/jobs/{}/cancel\"><button type=\"submit\">Cancel</button></form>",
                    j.id
                );
            }
            m.push_str("</td>");
        }
        m.push_str("</tr>");
    }
    m.push_str("</tbody></table>");
    m
}

/// The graph page.
/// The graph page; `may_act` shows the actions (the caller may deploy in the graph's project).
pub fn graph(page: &GraphPage, now: DateTime<Utc>, may_act: bool) -> String {
    let mut m = String::with_capacity(16 * 1024);
    let _ = write!(
        m,
        "<p class=\"crumbs\"><a href=\"/console\">Graphs</a> / {p}</p><h1 data-status=\"{st}\">{n} {}</h1>\
<p class=\"meta\">project <strong>{p}</strong> · desired <strong>{}</strong> · version {} · revision {}</p>",
        status_badge(&page.status),
        esc(&page.desired),
        esc(&page.version),
        page.revision,
        n = esc(&page.name),
        p = esc(&page.project),
        st = esc(&page.status),
    );
    if let Some(msg) = &page.status_message {
        let _ = write!(m, "<p class=\"status-message\">{}</p>", esc(msg));
    }
    if let Some(d) = &page.description {
        let _ = write!(m, "<p>{}</p>", esc(d));
    }
    m.push_str("<div class=\"actions\" role=\"group\" aria-label=\"Actions\">");
    let actions: &[(&str, &str)] = if may_act {
        &[
            ("start", "Start"),
            ("stop", "Stop"),
            ("re-place", "Re-place"),
            ("remove", "Remove"),
        ]
    } else {
        &[]
    };
    for (action, label) in actions {
        let _ = write!(
            m,
            "<a class=\"button\" href=\"/console/graphs/{}/confirm/{action}\">{label}</a>",
            url_enc(&page.name)
        );
    }
    m.push_str("</div>");

    m.push_str("<section aria-labelledby=\"h-topo\"><h2 id=\"h-topo\">Topology</h2>");
    m.push_str(&topology_svg(&page.services));
    m.push_str("<p class=\"legend\">Arrows point from a service to the services it calls; ⚡ and a dashed border mark conditional (event-triggered) services.</p>");
    m.push_str(
        "<table class=\"list\" id=\"services\"><thead><tr><th scope=\"col\">Service</th><th scope=\"col\">Status</th><th scope=\"col\">Cluster</th>\
<th scope=\"col\">Ready</th><th scope=\"col\">CPU</th><th scope=\"col\">Memory</th><th scope=\"col\">GPU</th><th scope=\"col\">Artifact</th><th scope=\"col\">Calls</th></tr></thead><tbody>",
    );
    for s in &page.services {
        let _ = write!(
            m,
            "<tr data-service=\"{n}\"><th scope=\"row\">{n}{}</th><td>{}</td><td>{}</td><td>{}/{}</td><td>{}m</td><td>{} MiB</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if s.service.conditional {
                " <small>(conditional)</small>"
            } else {
                ""
            },
            status_badge(s.service.status.as_str()),
            esc(s.service.cluster.as_deref().unwrap_or("—")),
            s.service.ready,
            s.service.replicas,
            s.service.cpu_millis,
            s.service.memory_bytes / (1024 * 1024),
            if s.service.gpu { "yes" } else { "no" },
            esc(&s.artifact),
            esc(&s.calls.join(", ")),
            n = esc(&s.service.name),
        );
    }
    m.push_str("</tbody></table></section>");

    m.push_str("<section aria-labelledby=\"h-place\"><h2 id=\"h-place\">Placement</h2>");
    m.push_str(&placement_map(page));
    m.push_str("</section>");

    m.push_str("<section aria-labelledby=\"h-rep\"><h2 id=\"h-rep\">Replicas over time</h2>");
    match &page.replicas {
        ReplicaSource::Prometheus(series) if !series.is_empty() => {
            m.push_str("<p class=\"hint\" id=\"replica-source\">From Prometheus: <code>kube_deployment_spec_replicas</code> over the last hour.</p>");
            m.push_str(&replica_chart(series));
        }
        other => {
            let why = match other {
                ReplicaSource::DecisionLog(why) => why.as_str(),
                ReplicaSource::Prometheus(_) => "Prometheus has no series for this graph yet",
            };
            let _ = write!(
                m,
                "<p class=\"hint\" id=\"replica-source\">{}: from smo's decision log instead (each scale tick that changed a count) and the current counts.</p>",
                esc(why)
            );
            m.push_str(&replica_chart(&replica_series(
                &page.services,
                &page.decisions,
                now,
            )));
        }
    }
    m.push_str("</section>");

    m.push_str("<section aria-labelledby=\"h-dash\"><h2 id=\"h-dash\">Dashboards</h2>");
    if page.dashboards.is_empty() {
        m.push_str("<p class=\"empty\">None published (Grafana not configured, or not yet).</p>");
    } else {
        m.push_str("<ul>");
        for (name, url) in &page.dashboards {
            let _ = write!(
                m,
                "<li><a href=\"{}\" rel=\"noopener\" target=\"_blank\">{}</a></li>",
                esc(url),
                esc(name)
            );
        }
        m.push_str("</ul>");
    }
    m.push_str("</section>");

    m.push_str("<section aria-labelledby=\"h-dec\"><h2 id=\"h-dec\">Decisions</h2>");
    if page.decisions.is_empty() {
        m.push_str("<p class=\"empty\">No decisions yet.</p>");
    } else {
        m.push_str("<ol class=\"timeline\" reversed>");
        for d in &page.decisions {
            let _ = write!(
                m,
                "<li data-kind=\"{k}\"><span class=\"kind\">{k}</span> {} <span class=\"when\">{}</span>\
<details><summary>inputs and outcome</summary><h4>Inputs</h4>{}<h4>Outcome</h4>{}</details></li>",
                esc(&d.message),
                ago(now, d.at),
                json_block(&d.inputs),
                json_block(&d.outcome),
                k = esc(d.kind.as_str()),
            );
        }
        m.push_str("</ol>");
    }
    m.push_str("</section><section aria-labelledby=\"h-jobs\"><h2 id=\"h-jobs\">Jobs</h2>");
    m.push_str(&jobs_table(&page.jobs, now, false));
    m.push_str("</section>");
    m
}

/// The confirmation step of a graph action (works without JavaScript).
pub fn confirm(graph: &str, action: &str) -> String {
    let what = match action {
        "stop" => "Stop it: its workloads are deleted, the graph is kept.",
        "start" => "Start it again on the federation.",
        "re-place" => "Run the placement again with the current placement as the baseline.",
        _ => {
            "Remove it: its objects, dashboards and records are deleted. The decision log is kept."
        }
    };
    format!(
        "<p class=\"crumbs\"><a href=\"/console\">Graphs</a> / <a href=\"/console/graphs/{u}\">{n}</a></p>\
<h1>{a} graph {n}?</h1><p>{what}</p><form method=\"post\" action=\"/console/graphs/{u}/{a}\" class=\"card narrow\">\
<button type=\"submit\" class=\"danger\" autofocus>Yes, {a} {n}</button> <a href=\"/console/graphs/{u}\">Cancel</a></form>",
        n = esc(graph),
        u = url_enc(graph),
        a = esc(action),
    )
}

/// A problem found in a submitted descriptor.
#[derive(Debug, Clone)]
pub struct FormProblem {
    pub path: String,
    pub message: String,
}

/// What the deploy page shows below the form.
#[derive(Debug, Clone)]
pub enum DeployOutcome {
    Nothing,
    /// The descriptor was refused.
    Problems {
        detail: String,
        problems: Vec<FormProblem>,
    },
    /// A dry run: placement, explanations and objects; nothing stored.
    DryRun {
        graph: String,
        placement: BTreeMap<String, String>,
        explanations: BTreeMap<String, String>,
        objects: Vec<serde_json::Value>,
        helm_services: Vec<String>,
        warnings: Vec<FormProblem>,
    },
}

/// The deploy page: paste or upload a descriptor, dry-run it, deploy it.
pub fn deploy(project: &str, descriptor: &str, outcome: &DeployOutcome) -> String {
    let mut m = String::from("<h1>Deploy a graph</h1>");
    // Problems come first, where the eye lands after submitting; a dry run's result follows the form.
    if let DeployOutcome::Problems { detail, problems } = outcome {
        let _ = write!(
            m,
            "<section class=\"problems\" role=\"alert\" aria-labelledby=\"h-problems\"><h2 id=\"h-problems\">Not deployed: {}</h2>",
            esc(detail)
        );
        if !problems.is_empty() {
            m.push_str("<table class=\"list\" id=\"problems\"><thead><tr><th scope=\"col\">Path</th><th scope=\"col\">Problem</th></tr></thead><tbody>");
            for p in problems {
                let _ = write!(
                    m,
                    "<tr><th scope=\"row\"><code>{}</code></th><td>{}</td></tr>",
                    esc(&p.path),
                    esc(&p.message)
                );
            }
            m.push_str("</tbody></table>");
        }
        m.push_str("<p>Nothing was stored.</p></section>");
    }
    let _ = write!(
        m,
        "<form method=\"post\" action=\"/console/deploy\" class=\"card deploy\" id=\"deploy-form\">\
<label for=\"project\">Project</label><input id=\"project\" name=\"project\" value=\"{}\" required pattern=\"[a-z0-9]([-a-z0-9]*[a-z0-9])?\" aria-describedby=\"project-hint\">\
<p class=\"hint\" id=\"project-hint\">The Kubernetes namespace the graph runs in (a DNS label).</p>\
<label for=\"descriptor\">Descriptor (HDAG, YAML or JSON)</label>\
<textarea id=\"descriptor\" name=\"descriptor\" rows=\"18\" spellcheck=\"false\" required>{}</textarea>\
<label for=\"upload\">…or upload a file</label><input id=\"upload\" type=\"file\" accept=\".yaml,.yml,.json\" data-fills=\"descriptor\">\
<div class=\"buttons\"><button type=\"submit\" name=\"action\" value=\"dry-run\" id=\"dry-run\">Dry run</button>\
<button type=\"submit\" name=\"action\" value=\"deploy\" id=\"deploy\" class=\"primary\">Deploy</button></div></form>",
        esc(project),
        esc(descriptor)
    );
    match outcome {
        DeployOutcome::Nothing | DeployOutcome::Problems { .. } => {}
        DeployOutcome::DryRun {
            graph,
            placement,
            explanations,
            objects,
            helm_services,
            warnings,
        } => {
            let _ = write!(
                m,
                "<section aria-labelledby=\"h-dry\" id=\"dry-run-result\"><h2 id=\"h-dry\">Dry run of {}: nothing stored</h2>",
                esc(graph)
            );
            for w in warnings {
                let _ = write!(
                    m,
                    "<p class=\"warning\">warning at <code>{}</code>: {}</p>",
                    esc(&w.path),
                    esc(&w.message)
                );
            }
            m.push_str("<table class=\"list\" id=\"dry-placement\"><thead><tr><th scope=\"col\">Service</th><th scope=\"col\">Cluster</th><th scope=\"col\">Why</th></tr></thead><tbody>");
            for (s, c) in placement {
                let _ = write!(
                    m,
                    "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
                    esc(s),
                    esc(c),
                    esc(explanations.get(s).map_or("", String::as_str))
                );
            }
            m.push_str("</tbody></table>");
            if !helm_services.is_empty() {
                let _ = write!(
                    m,
                    "<p>Installed as Helm releases: {}</p>",
                    esc(&helm_services.join(", "))
                );
            }
            let _ = write!(
                m,
                "<h3>{} objects that would be applied</h3><ul class=\"objects\">",
                objects.len()
            );
            for o in objects {
                let kind = o["kind"].as_str().unwrap_or("?");
                let name = o["metadata"]["name"].as_str().unwrap_or("?");
                let _ = write!(
                    m,
                    "<li><details><summary>{} <code>{}</code></summary>{}</details></li>",
                    esc(kind),
                    esc(name),
                    json_block(o)
                );
            }
            m.push_str("</ul></section>");
        }
    }
    m
}

/// The clusters page: capacity, readiness, GPUs and what runs where.
/// The clusters' health history: transitions, losses, failovers, recoveries, newest first.
pub fn cluster_history(events: &[crate::store::ClusterEvent]) -> String {
    let mut m = String::from("<h2>Health history</h2>");
    if events.is_empty() {
        m.push_str("<p class=\"empty\" id=\"health\">Nothing yet: the scheduler's <code>cluster-health</code> entry records each cluster's Ready transitions, and failover and fail-back.</p>");
        return m;
    }
    m.push_str("<table class=\"list compact\" id=\"health\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Cluster</th><th scope=\"col\">Event</th><th scope=\"col\">What</th></tr></thead><tbody>");
    for e in events {
        m.push_str(&format!(
            "<tr class=\"event-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.event),
            e.at.format("%Y-%m-%d %H:%M:%S"),
            esc(&e.cluster),
            esc(&e.event),
            esc(e.message.as_deref().unwrap_or(""))
        ));
    }
    m.push_str("</tbody></table>");
    m
}

pub fn clusters(
    clusters: &[ClusterRecord],
    placed: &[PlacedService],
    now: DateTime<Utc>,
) -> String {
    let mut m = String::from("<h1>Clusters</h1>");
    if clusters.is_empty() {
        m.push_str("<p class=\"empty\">No clusters synced yet (a worker runs <code>cluster-sync</code>).</p>");
        return m;
    }
    let shares = shares(clusters, &usage_of(placed, ""));
    m.push_str("<div class=\"placement\">");
    for (c, (_, [cpu, mem, gpu])) in clusters.iter().zip(shares) {
        let labels: Vec<String> = c
            .labels
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            m,
            "<section class=\"cluster-col\" data-cluster=\"{n}\" aria-label=\"cluster {n}\"><h2>{n} {}</h2>\
<p class=\"meta\">Karmada reported {} of {:.1} cores free · {} GPUs · synced {}</p>{}{}{}",
            if c.ready {
                status_badge("Running").replace("Running", "Ready")
            } else {
                status_badge("Failed").replace("Failed", "Not ready")
            },
            format_args!("{:.1}", c.cpu_free),
            c.cpu_allocatable,
            c.gpus,
            ago(now, c.synced_at),
            bar_all("CPU", "cores", &cpu),
            bar_all("Memory", "GiB", &mem),
            if gpu.total > 0.0 {
                bar_all("GPU", "GPUs", &gpu)
            } else {
                String::new()
            },
            n = esc(&c.name)
        );
        if let Some(msg) = &c.message {
            let class = if c.ready { "meta" } else { "status-message" };
            let _ = write!(m, "<p class=\"{class}\">{}</p>", esc(msg));
        }
        if !labels.is_empty() {
            let _ = write!(m, "<p class=\"labels\">{}</p>", esc(&labels.join(" · ")));
        }
        m.push_str("<ul class=\"here\">");
        let here: Vec<&PlacedService> = placed.iter().filter(|p| p.cluster == c.name).collect();
        if here.is_empty() {
            m.push_str("<li class=\"empty\">nothing placed</li>");
        }
        for p in here.iter().take(PER_CLUSTER) {
            let _ = write!(
                m,
                "<li><a href=\"/console/graphs/{}\">{}</a> / {} ×{} {}</li>",
                url_enc(&p.graph),
                esc(&p.graph),
                esc(&p.service),
                p.replicas,
                status_badge(&p.status)
            );
        }
        if here.len() > PER_CLUSTER {
            let _ = write!(
                m,
                "<li>… and {} more services</li>",
                here.len() - PER_CLUSTER
            );
        }
        m.push_str("</ul></section>");
    }
    m.push_str("</div>");
    m
}

/// Services listed per cluster on the clusters page (a big fleet would make it megabytes).
const PER_CLUSTER: usize = 100;

fn secs(v: Option<f64>) -> String {
    v.map_or("—".into(), |s| format!("{s:.1} s"))
}

/// The queue page: counts per kind × state, throughput, workers and their heartbeats, and the
/// jobs that need an operator (dead, retrying) with retry and cancel.
pub fn queue(
    stats: &smo_jobs::Stats,
    workers: &[smo_jobs::WorkerRow],
    attention: &[smo_jobs::JobRow],
    board_url: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let mut m = format!(
        "<h1>Queue</h1><p class=\"meta\" id=\"throughput\">throughput <strong>{:.2} jobs/s</strong> (last minute) · oldest waiting <strong>{}</strong> · <strong>{}</strong> live workers</p>",
        stats.throughput_per_sec,
        secs(stats.oldest_queued_secs),
        workers.iter().filter(|w| w.stopped_at.is_none()).count(),
    );
    // apalis's own queue UI browses every job and task of the same table.
    match board_url {
        Some(url) => {
            let _ = write!(
                m,
                "<p class=\"meta\" id=\"board\">Every job, page by page: <a href=\"{}\" rel=\"noopener\">apalis-board</a></p>",
                esc(url)
            );
        }
        None => m.push_str(
            "<p class=\"meta\" id=\"board\">Every job, page by page: run <code>smo-admin board</code> for apalis-board and set <code>board_url</code> to link it here.</p>",
        ),
    }
    let states: Vec<&str> = smo_jobs::JobState::ALL.iter().map(|s| s.as_str()).collect();
    m.push_str("<table class=\"list\" id=\"counts\"><caption>Jobs per kind and state</caption><thead><tr><th scope=\"col\">Kind</th>");
    for s in &states {
        let _ = write!(m, "<th scope=\"col\">{s}</th>");
    }
    m.push_str("<th scope=\"col\">Done last minute</th><th scope=\"col\">Oldest waiting</th></tr></thead><tbody>");
    for k in &stats.kinds {
        let _ = write!(
            m,
            "<tr data-kind=\"{n}\"><th scope=\"row\">{n}</th>",
            n = esc(&k.kind)
        );
        for s in &states {
            let n = k.states.get(*s).copied().unwrap_or(0);
            let _ = write!(m, "<td data-state=\"{s}\">{n}</td>");
        }
        let _ = write!(
            m,
            "<td>{}</td><td>{}</td></tr>",
            k.succeeded_last_minute,
            secs(k.oldest_queued_secs)
        );
    }
    m.push_str("</tbody></table><h2>Workers</h2>");
    if workers.is_empty() {
        m.push_str("<p class=\"empty\">No workers registered.</p>");
    } else {
        m.push_str("<table class=\"list\" id=\"workers\"><thead><tr><th scope=\"col\">Worker</th><th scope=\"col\">Host</th><th scope=\"col\">In flight</th>\
<th scope=\"col\">Concurrency</th><th scope=\"col\">Heartbeat</th><th scope=\"col\">State</th></tr></thead><tbody>");
        for w in workers {
            let state = match (&w.stopped_at, &w.stop_reason) {
                (None, _) => status_badge("Running"),
                (Some(_), Some(r)) => format!("{} {}", status_badge("Stopped"), esc(r)),
                (Some(_), None) => status_badge("Stopped"),
            };
            let _ = write!(
                m,
                "<tr><th scope=\"row\"><code>{}</code></th><td>{} (pid {})</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
                esc(&w.name),
                esc(&w.host),
                w.pid,
                w.in_flight,
                w.concurrency,
                ago(now, w.heartbeat_at),
            );
        }
        m.push_str("</tbody></table>");
    }
    m.push_str("<h2>Needs attention</h2><p class=\"hint\">Dead and retrying jobs, newest first, with every error.</p>");
    m.push_str(&jobs_table(attention, now, true));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, calls: &[&str], status: &str) -> ServiceNode {
        ServiceNode {
            service: ServiceRecord {
                name: name.into(),
                position: 0,
                status: status.parse().unwrap(),
                cluster: Some("edge-a".into()),
                replicas: 1,
                ready: 1,
                conditional: false,
                cpu_millis: 500,
                memory_bytes: 256 << 20,
                gpu: false,
            },
            artifact: "image".into(),
            calls: calls.iter().map(|c| c.to_string()).collect(),
            explanation: None,
        }
    }

    #[test]
    fn text_from_users_is_escaped_everywhere() {
        assert_eq!(
            esc("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        let html = deploy(
            "p\"><script>",
            "</textarea><script>alert(1)</script>",
            &DeployOutcome::Nothing,
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("p\"><script>"));
        assert_eq!(url_enc("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn callers_sit_left_of_the_services_they_call_and_cycles_end() {
        let s = vec![
            node("db", &[], "Running"),
            node("web", &["api"], "Running"),
            node("api", &["db"], "Running"),
        ];
        assert_eq!(layers(&s), vec![2, 0, 1]);
        let cycle = vec![node("a", &["b"], "Running"), node("b", &["a"], "Running")];
        let l = layers(&cycle);
        assert!(l.iter().all(|x| *x < 2), "{l:?}");
        let svg = topology_svg(&s);
        assert_eq!(svg.matches("class=\"edge\"").count(), 2);
        assert!(svg.contains("web calls api"));
    }

    #[test]
    fn a_conditional_service_is_marked_in_shape_and_words() {
        let mut s = vec![node("web", &[], "Running"), node("burst", &[], "Pending")];
        s[1].service.conditional = true;
        let svg = topology_svg(&s);
        assert!(svg.contains("node st-busy conditional"), "{svg}");
        assert!(svg.contains("burst: Pending (conditional)"));
    }

    fn cluster(name: &str, cpu: f64, gpus: i32) -> ClusterRecord {
        ClusterRecord {
            name: crate::hdag::ClusterName::parse(name).unwrap(),
            ready: true,
            cpu_allocatable: cpu,
            cpu_free: cpu,
            memory_allocatable: 8 << 30,
            memory_free: 8 << 30,
            gpus,
            labels: serde_json::json!({}),
            message: None,
            synced_at: Utc::now(),
        }
    }

    fn placed(
        graph: &str,
        cluster: &str,
        cpu_millis: i64,
        replicas: i32,
        gpu: bool,
    ) -> PlacedService {
        PlacedService {
            graph: graph.into(),
            project: "p".into(),
            service: "s".into(),
            cluster: cluster.into(),
            status: "Running".into(),
            replicas,
            cpu_millis,
            memory_bytes: 1 << 30,
            gpu,
        }
    }

    #[test]
    fn shares_split_each_cluster_between_this_graph_others_and_free() {
        let cs = vec![cluster("a", 8.0, 0), cluster("g", 16.0, 2)];
        let ps = vec![
            placed("mine", "a", 500, 2, false),
            placed("other", "a", 2000, 1, false),
            placed("mine", "g", 1000, 1, true),
        ];
        let s = shares(&cs, &usage_of(&ps, "mine"));
        assert_eq!(
            s[0].1[0],
            Share {
                this: 1.0,
                others: 2.0,
                total: 8.0
            }
        );
        assert_eq!(s[0].1[0].free(), 5.0);
        assert_eq!(s[0].1[1].this, 2.0);
        assert_eq!(
            s[1].1[2],
            Share {
                this: 1.0,
                others: 0.0,
                total: 2.0
            }
        );
        let over = shares(&cs, &usage_of(&[placed("y", "a", 9000, 1, false)], "x"));
        assert_eq!(over[0].1[0].free(), 0.0);
    }

    #[test]
    fn replica_history_comes_from_scaling_decisions_oldest_first() {
        let t = Utc::now();
        let d = |id: i64, secs: i64, outcome: serde_json::Value| Decision {
            id,
            graph: "g".into(),
            project: "p".into(),
            kind: DecisionKind::Scaling,
            job_id: None,
            message: String::new(),
            inputs: serde_json::json!({}),
            outcome,
            at: t - chrono::Duration::seconds(secs),
        };
        // Newest first, as the store returns them.
        let decisions = vec![
            d(
                2,
                10,
                serde_json::json!({"edge-a": {"kind": "scaled", "changed": [{"service": "web", "from": 3, "to": 2}]}}),
            ),
            d(
                1,
                60,
                serde_json::json!({"edge-a": {"kind": "scaled", "changed": [{"service": "web", "from": 1, "to": 3}]}}),
            ),
        ];
        let mut web = node("web", &[], "Running");
        web.service.replicas = 2;
        let series = replica_series(&[web], &decisions, t);
        let v: Vec<i64> = series["web"].iter().map(|p| p.1).collect();
        assert_eq!(v, vec![1, 3, 2, 2]);
        let html = replica_chart(&series);
        assert!(html.contains("1 <small>"), "{html}");
    }

    #[test]
    fn prometheus_series_are_keyed_by_service_and_their_source_is_named() {
        let series = vec![
            (
                BTreeMap::from([("deployment".to_string(), "shop-web".to_string())]),
                vec![(1_700_000_060.0, 2.0), (1_700_000_000.0, 1.0)],
            ),
            (
                BTreeMap::from([("deployment".to_string(), "other-web".to_string())]),
                vec![(1_700_000_000.0, 9.0)],
            ),
        ];
        let by = series_by_service(&series, "shop-");
        assert_eq!(by.keys().collect::<Vec<_>>(), ["web"]);
        assert_eq!(by["web"].iter().map(|p| p.1).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn the_queue_page_offers_retry_for_dead_jobs_and_cancel_for_waiting_ones() {
        let row = |state: &str| smo_jobs::JobRow {
            id: uuid::Uuid::new_v4(),
            kind: "deploy".into(),
            state: state.into(),
            args: serde_json::json!({}),
            attempt: 3,
            max_attempts: 3,
            lost: 0,
            priority: 0,
            unique_key: None,
            run_at: Utc::now(),
            created_at: Utc::now(),
            started_at: None,
            attempted_at: None,
            finished_at: None,
            locked_by: None,
            errors: serde_json::json!([{"error": "boom <b>"}]),
        };
        let stats = smo_jobs::Stats {
            kinds: vec![],
            throughput_per_sec: 0.0,
            oldest_queued_secs: None,
        };
        let dead = row("dead");
        let waiting = row("retrying");
        let html = queue(
            &stats,
            &[],
            &[dead.clone(), waiting.clone()],
            None,
            Utc::now(),
        );
        assert!(html.contains(&format!("/console/jobs/{}/retry", dead.id)));
        assert!(!html.contains(&format!("/console/jobs/{}/cancel", dead.id)));
        assert!(html.contains(&format!("/console/jobs/{}/cancel", waiting.id)));
        assert!(html.contains("boom &lt;b&gt;"));
        assert!(html.contains("run <code>smo-admin board</code>"));
    }

    #[test]
    fn the_queue_page_links_apalis_board_when_its_address_is_set() {
        let stats = smo_jobs::Stats {
            kinds: vec![],
            throughput_per_sec: 0.0,
            oldest_queued_secs: None,
        };
        let html = queue(
            &stats,
            &[],
            &[],
            Some("http://ops:8090/?a=1&b=\"x"),
            Utc::now(),
        );
        assert!(
            html.contains(
                r#"<a href="http://ops:8090/?a=1&amp;b=&quot;x" rel="noopener">apalis-board</a>"#
            ),
            "{html}"
        );
    }
}
