//! The console's pages as pure functions from data to HTML (no I/O: unit-tested without servers).
//! Every value that came from a user or the database goes through [`esc`].

use std::{collections::BTreeMap, fmt::Write as _};

use chrono::{DateTime, Utc};
use smo_core::model::{DecisionKind, Desired, GraphStatus, ServiceStatus};
use smo_jobs::JobState;

use crate::store::{
    ClusterRecord, ClusterUsage, Decision, GraphOverview, PlacedService, ServiceRecord,
};

mod clusters;
mod deploy;
mod graph;
mod graphs;
mod queue;
mod shares;
mod topology;

pub use clusters::*;
pub use deploy::*;
pub use graph::*;
pub use graphs::*;
pub use queue::*;
pub use shares::*;
pub use topology::*;

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

/// How a state looks on a page: a colour class and a mark whose shape says the same, so colour
/// is never the only cue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Running, succeeded, ready.
    Ok,
    /// On its way (pending, deploying, queued).
    Busy,
    /// At rest (stopped, cancelled).
    Idle,
    /// Needs a look soon (removing, retrying).
    Warn,
    /// Failed, dead, not ready.
    Bad,
}

impl Tone {
    /// The CSS class suffix (`st-ok`, …).
    pub fn class(self) -> &'static str {
        match self {
            Tone::Ok => "ok",
            Tone::Busy => "busy",
            Tone::Idle => "idle",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
        }
    }

    fn mark(self) -> &'static str {
        match self {
            Tone::Ok => "●",
            Tone::Busy => "◐",
            Tone::Idle => "■",
            Tone::Warn => "▲",
            Tone::Bad => "✖",
        }
    }
}

/// A state the console draws: its tone and its name.
pub trait Badge: Copy {
    /// How it looks.
    fn tone(self) -> Tone;
    /// What it says.
    fn label(self) -> &'static str;
}

impl Badge for GraphStatus {
    fn tone(self) -> Tone {
        match self {
            GraphStatus::Running => Tone::Ok,
            GraphStatus::Pending | GraphStatus::Deploying => Tone::Busy,
            GraphStatus::Stopping | GraphStatus::Stopped => Tone::Idle,
            GraphStatus::Removing => Tone::Warn,
            GraphStatus::Failed => Tone::Bad,
        }
    }
    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Badge for ServiceStatus {
    fn tone(self) -> Tone {
        match self {
            ServiceStatus::Running => Tone::Ok,
            ServiceStatus::Pending | ServiceStatus::Deployed => Tone::Busy,
            ServiceStatus::Stopped => Tone::Idle,
            ServiceStatus::Failed => Tone::Bad,
        }
    }
    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Badge for JobState {
    fn tone(self) -> Tone {
        match self {
            JobState::Running | JobState::Succeeded => Tone::Ok,
            JobState::Queued => Tone::Busy,
            JobState::Cancelled => Tone::Idle,
            JobState::Retrying => Tone::Warn,
            JobState::Dead => Tone::Bad,
        }
    }
    fn label(self) -> &'static str {
        self.as_str()
    }
}

/// A state as text with a shape and a colour class: readable without colour.
pub fn status_badge(state: impl Badge) -> String {
    badge(state.tone(), state.label())
}

/// `text` drawn in `tone`.
pub fn badge(tone: Tone, text: &str) -> String {
    format!(
        "<span class=\"st st-{}\"><span aria-hidden=\"true\">{}</span> {}</span>",
        tone.class(),
        tone.mark(),
        esc(text)
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
            match j.state.parse::<JobState>() {
                Ok(state) => status_badge(state),
                Err(_) => badge(Tone::Idle, &j.state),
            },
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
            status: ServiceStatus::Running,
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
