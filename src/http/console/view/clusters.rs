//! The clusters page: readiness, capacity bars, the services placed on each, and history.

use super::*;

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
                badge(Tone::Ok, "Ready")
            } else {
                badge(Tone::Bad, "Not ready")
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
            n = esc(c.name.as_str())
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
                status_badge(p.status)
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
