//! smo's own metrics: what operators scrape to see the queue, the workers, the API and the solvers.
//!
//! Two sources, one exposition:
//! - per-process series kept in memory (jobs enqueued/started/succeeded/failed/dead, job, request
//!   and solve durations), counted by whichever process did the work — the API pods, the worker
//!   pods and the scheduler each expose their own, and Prometheus sums them;
//! - queue-wide gauges read from PostgreSQL at scrape time (depth and oldest age per kind, jobs
//!   per state, live workers), exposed by the API role only, since every replica would report the
//!   same numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use smo_jobs::Queue;
use smo_jobs::metrics::{CounterVec, DURATION_BUCKETS, HistogramVec};

/// API request latency by method, route template and status.
pub static HTTP_REQUESTS: HistogramVec = HistogramVec::new(
    "smo_http_request_duration_seconds",
    "API request latency by method, route template and status.",
    &["method", "route", "status"],
    DURATION_BUCKETS,
);

/// Optimizer run time by problem (`placement`, `re-placement`, `scaling`) and outcome.
pub static SOLVE: HistogramVec = HistogramVec::new(
    "smo_solve_duration_seconds",
    "Optimizer run time by problem (placement, re-placement, scaling) and outcome (ok, error).",
    &["problem", "outcome"],
    DURATION_BUCKETS,
);

/// Failover's work by event: clusters `lost`, graphs `moved` off them, graphs `stranded` (no
/// room left), graphs `moved-back` once their cluster recovered.
pub static FAILOVER: CounterVec = CounterVec::new(
    "smo_failover_total",
    "Failover events: clusters lost, graphs moved off them, stranded, moved back.",
    &["event"],
);

/// Runs `solve`, recording its duration under `problem` and its outcome.
pub fn timed_solve<T, E>(problem: &str, solve: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let started = Instant::now();
    let out = solve();
    let outcome = if out.is_ok() { "ok" } else { "error" };
    SOLVE.observe(&[problem, outcome], started.elapsed().as_secs_f64());
    out
}

/// Records a graph plan's solve under `smo_solve_seconds{problem, outcome}`: the plan says which
/// solve it ran (none when every service kept its cluster); the caller holds the clock.
pub fn observe_plan(
    plan: &Result<smo_core::plan::Deploy, smo_core::plan::PlanError>,
    took: std::time::Duration,
) {
    let (solve, outcome) = match plan {
        Ok(deploy) => (deploy.solved(), "ok"),
        Err(smo_core::plan::PlanError::Placement(failed)) => (Some(failed.solve), "error"),
        Err(_) => (None, "error"),
    };
    if let Some(solve) = solve {
        SOLVE.observe(&[solve.as_str(), outcome], took.as_secs_f64());
    }
}

/// This process's series: the engine's job counters and durations, API latency, solve times.
pub fn render_process() -> String {
    let mut out = String::new();
    smo_jobs::metrics::render(&mut out);
    HTTP_REQUESTS.render(&mut out);
    SOLVE.render(&mut out);
    FAILOVER.render(&mut out);
    out
}

/// The queue-wide gauges, read from the database now.
pub async fn render_queue(queue: &Queue) -> Result<String, smo_jobs::Error> {
    let stats = queue.stats().await?;
    let workers = queue.workers(false).await?;
    let mut out = String::new();
    gauge_header(
        &mut out,
        "smo_jobs",
        "Jobs in the queue table per kind and state.",
    );
    for k in &stats.kinds {
        for (state, n) in &k.states {
            let _ = writeln!(
                out,
                "smo_jobs{{kind=\"{}\",state=\"{state}\"}} {n}",
                esc(&k.kind)
            );
        }
    }
    gauge_header(
        &mut out,
        "smo_queue_depth",
        "Jobs waiting to run (queued or retrying), per kind.",
    );
    for k in &stats.kinds {
        let depth = k.states.get("queued").copied().unwrap_or(0)
            + k.states.get("retrying").copied().unwrap_or(0);
        let _ = writeln!(out, "smo_queue_depth{{kind=\"{}\"}} {depth}", esc(&k.kind));
    }
    gauge_header(
        &mut out,
        "smo_queue_oldest_seconds",
        "Age of the oldest runnable queued job, per kind (0 when none waits).",
    );
    for k in &stats.kinds {
        let _ = writeln!(
            out,
            "smo_queue_oldest_seconds{{kind=\"{}\"}} {}",
            esc(&k.kind),
            k.oldest_queued_secs.unwrap_or(0.0)
        );
    }
    gauge_header(
        &mut out,
        "smo_workers_alive",
        "Workers with a live heartbeat.",
    );
    let _ = writeln!(out, "smo_workers_alive {}", workers.len());
    Ok(out)
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    smo_jobs::metrics::header(out, name, help, "gauge");
}

fn esc(v: &str) -> String {
    smo_jobs::metrics::escape(v)
}

/// What `smo status` shows of the queue, read back from the API's `/metrics` text.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct QueueHealth {
    /// Workers with a live heartbeat.
    pub workers_alive: u64,
    /// Per kind with jobs waiting: (waiting jobs, age in seconds of the oldest).
    pub waiting: BTreeMap<String, (u64, f64)>,
}

impl QueueHealth {
    /// Reads `smo_workers_alive`, `smo_queue_depth` and `smo_queue_oldest_seconds` out of an
    /// exposition text; kinds with nothing waiting are left out.
    pub fn from_exposition(text: &str) -> Self {
        let mut h = QueueHealth::default();
        let mut oldest = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let kind = |family: &str| {
                series
                    .strip_prefix(family)?
                    .strip_prefix("{kind=\"")?
                    .strip_suffix("\"}")
                    .map(str::to_string)
            };
            if series == "smo_workers_alive" {
                h.workers_alive = value as u64;
            } else if let Some(k) = kind("smo_queue_depth") {
                if value > 0.0 {
                    h.waiting.insert(k, (value as u64, 0.0));
                }
            } else if let Some(k) = kind("smo_queue_oldest_seconds") {
                oldest.insert(k, value);
            }
        }
        for (k, (_, age)) in h.waiting.iter_mut() {
            *age = oldest.get(k).copied().unwrap_or(0.0);
        }
        h
    }
}

/// Serves this process's series on `listener` (`GET /metrics`, `GET /healthz`) until
/// `shutdown` — for worker and scheduler pods, which have no API to carry them.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use poem::{EndpointExt as _, Route, get, handler};

    #[handler]
    fn metrics() -> poem::Response {
        poem::Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(render_process())
    }
    #[handler]
    fn healthz() -> &'static str {
        "ok"
    }

    tracing::info!(addr = %listener.local_addr()?, "metrics listening on /metrics");
    let app = Route::new()
        .at("/metrics", get(metrics))
        .at("/healthz", get(healthz))
        .map_to_response();
    poem::Server::new_with_acceptor(poem::listener::TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), None)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_health_reads_back_what_render_queue_writes() {
        let text = "# HELP smo_queue_depth x\n# TYPE smo_queue_depth gauge\n\
                    smo_queue_depth{kind=\"deploy\"} 2\nsmo_queue_depth{kind=\"noop\"} 0\n\
                    smo_queue_oldest_seconds{kind=\"deploy\"} 4.5\n\
                    smo_queue_oldest_seconds{kind=\"noop\"} 0\n\
                    smo_jobs{kind=\"deploy\",state=\"queued\"} 2\nsmo_workers_alive 3\n";
        let h = QueueHealth::from_exposition(text);
        assert_eq!(h.workers_alive, 3);
        assert_eq!(
            h.waiting,
            BTreeMap::from([("deploy".to_string(), (2, 4.5))])
        );
        assert_eq!(QueueHealth::from_exposition(""), QueueHealth::default());
    }

    #[test]
    fn timed_solve_records_outcome_and_passes_the_result_through() {
        let before_ok = SOLVE.count(&["t-problem", "ok"]);
        let before_err = SOLVE.count(&["t-problem", "error"]);
        assert_eq!(timed_solve("t-problem", || Ok::<_, ()>(7)), Ok(7));
        assert_eq!(timed_solve("t-problem", || Err::<(), _>("no")), Err("no"));
        assert_eq!(SOLVE.count(&["t-problem", "ok"]), before_ok + 1);
        assert_eq!(SOLVE.count(&["t-problem", "error"]), before_err + 1);
        let text = render_process();
        assert!(text.contains("# TYPE smo_solve_duration_seconds histogram"));
        assert!(
            text.contains("smo_solve_duration_seconds_count{problem=\"t-problem\",outcome=\"ok\"}")
        );
    }
}
