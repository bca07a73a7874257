//! `smo bench console`: the console's pages rendered over a seeded store, timed.

use super::*;

/// The figures of `smo bench console`: server-side render times of its pages, through HTTP on
/// loopback (one request at a time, so a figure is one page's whole server time plus loopback).
#[derive(Debug, Serialize)]
pub struct ConsoleReport {
    /// Graphs stored.
    pub graphs: usize,
    /// Requests per page.
    pub requests: usize,
    /// Per page: path, bytes, p50, p99 and max in milliseconds. The first is `/healthz`, the
    /// ceiling: the same server, client and loopback, no database or rendering.
    pub pages: Vec<PageTimes>,
    /// Bytes of the console's stylesheet and script compiled into the binary.
    pub asset_bytes: usize,
}

/// One page's figures.
#[derive(Debug, Serialize)]
pub struct PageTimes {
    pub path: String,
    pub bytes: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Serves the console over `graphs` running graphs (each with a decision) in the scratch database
/// `pool` and times `requests` GETs of each page.
pub async fn console(
    pool: PgPool,
    graphs: usize,
    requests: usize,
    progress: impl Fn(&str),
) -> anyhow::Result<ConsoleReport> {
    anyhow::ensure!(
        graphs > 0 && requests > 0,
        "graphs and requests must be at least 1"
    );
    progress(&format!("creating {graphs} running graphs of 3 services…"));
    seed_running_graphs(&pool, graphs, ScaleFleet::default(), &[]).await?;
    sqlx::query(
        "INSERT INTO smo.decisions (graph, project, kind, message, at)
         SELECT name, project, 'placement', 'placed 3 services (3 new, 0 moved), proven optimal', now() FROM smo.graphs",
    )
    .execute(&pool)
    .await?;
    let (base, stop) = spawn_api(&pool).await?;
    let http = reqwest::Client::new();
    let mut pages = Vec::new();
    for path in [
        "/healthz",
        "/console",
        "/console/graphs/g0",
        "/console/clusters",
        "/console/queue",
    ] {
        progress(&format!("GET {path} × {requests}…"));
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let r = http.get(format!("{base}{path}")).send().await?;
            anyhow::ensure!(r.status().is_success(), "GET {path}: {}", r.status());
            bytes = r.bytes().await?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| quantile(&times, q);
        pages.push(PageTimes {
            path: path.into(),
            bytes,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        });
    }
    stop.cancel();
    Ok(ConsoleReport {
        graphs,
        requests,
        pages,
        asset_bytes: crate::http::console::ASSET_BYTES,
    })
}
