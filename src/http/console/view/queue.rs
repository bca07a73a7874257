//! The queue page: counts per kind and state, throughput, workers, and the jobs that need an
//! operator (dead, retrying) with retry and cancel.

use super::*;

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
                (None, _) => badge(Tone::Ok, "running"),
                (Some(_), Some(r)) => format!("{} {}", badge(Tone::Idle, "stopped"), esc(r)),
                (Some(_), None) => badge(Tone::Idle, "stopped"),
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
