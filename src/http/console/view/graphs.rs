//! The graph list: filters by project and status, one row per graph with its latest decision.

use super::*;

/// Filters of the graph list.
#[derive(Debug, Default, Clone)]
pub struct GraphFilter {
    pub project: Option<String>,
    pub status: Option<GraphStatus>,
}

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
    for s in GraphStatus::ALL {
        let sel = if filter.status == Some(*s) {
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
            status_badge(g.status),
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
