//! One graph's page: topology, placement map, replica chart, services, decisions and jobs.

use super::*;

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
    pub status: GraphStatus,
    pub status_message: Option<String>,
    pub desired: Desired,
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
                status_badge(s.service.status),
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

/// The graph page.
/// The graph page; `may_act` shows the actions (the caller may deploy in the graph's project).
pub fn graph(page: &GraphPage, now: DateTime<Utc>, may_act: bool) -> String {
    let mut m = String::with_capacity(16 * 1024);
    let _ = write!(
        m,
        "<p class=\"crumbs\"><a href=\"/console\">Graphs</a> / {p}</p><h1 data-status=\"{st}\">{n} {}</h1>\
<p class=\"meta\">project <strong>{p}</strong> · desired <strong>{}</strong> · version {} · revision {}</p>",
        status_badge(page.status),
        page.desired.as_str(),
        esc(&page.version),
        page.revision,
        n = esc(&page.name),
        p = esc(&page.project),
        st = page.status.as_str(),
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
            status_badge(s.service.status),
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
