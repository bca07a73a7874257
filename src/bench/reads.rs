//! `smo bench reads`: the API's read routes under wrk (or a built-in client), beside `/healthz` of
//! the same server as the in-run ceiling.

use super::*;

/// The figures of `smo bench reads`: the API's read routes under concurrent load.
#[derive(Debug, Serialize)]
pub struct ReadsReport {
    /// Graphs stored.
    pub graphs: usize,
    /// Connections kept busy at once.
    pub connections: usize,
    /// Seconds each route was loaded.
    pub secs: f64,
    /// Per route.
    pub routes: Vec<RouteLoad>,
}

/// One route under load.
#[derive(Debug, Serialize)]
pub struct RouteLoad {
    pub path: String,
    pub requests: usize,
    pub req_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// What generated the load: `wrk` (a separate process, when installed) or `in-process`.
    pub client: String,
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// One route loaded by wrk (2 threads), each request to another graph for `/graphs/{name}`
/// (a Lua script); its summary parsed.
async fn wrk_load(
    wrk: &std::path::Path,
    base: &str,
    label: &str,
    per_graph: bool,
    graphs: usize,
    connections: usize,
    secs: f64,
) -> anyhow::Result<RouteLoad> {
    let script = std::env::temp_dir().join(format!("smo-bench-reads-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, {})\nend\n",
            if per_graph {
                format!("\"/graphs/g\" .. (n % {graphs})")
            } else {
                format!("{label:?}")
            }
        ),
    )?;
    let out = tokio::process::Command::new(wrk)
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", secs.ceil() as u64),
        ])
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .await?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        !text.contains("Non-2xx"),
        "GET {label}: errors under load:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .ok_or_else(|| anyhow::anyhow!("no {prefix:?} in wrk's output:\n{text}"))
    };
    let ms = |v: String| -> anyhow::Result<f64> {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse()?;
        Ok(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            other => anyhow::bail!("unit {other:?} in wrk's output"),
        })
    };
    let requests: usize = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(RouteLoad {
        path: label.into(),
        requests,
        req_per_sec: field("Requests/sec:")?.parse()?,
        p50_ms: ms(field("50%")?)?,
        p99_ms: ms(field("99%")?)?,
        client: "wrk".into(),
    })
}

/// Loads `GET /graphs?limit=50`, `GET /graphs/{name}` (a different graph each time) and
/// `GET /clusters` of an API serving `graphs` running graphs, each for `secs` seconds with
/// `connections` keep-alive connections always busy (as `wrk -c` does), in this process.
pub async fn reads(
    pool: PgPool,
    graphs: usize,
    connections: usize,
    secs: f64,
    progress: impl Fn(&str),
) -> anyhow::Result<ReadsReport> {
    anyhow::ensure!(
        graphs > 0 && connections > 0 && secs > 0.0,
        "graphs, connections and seconds must be positive"
    );
    progress(&format!("creating {graphs} running graphs of 3 services…"));
    seed_running_graphs(&pool, graphs, ScaleFleet::default(), &[]).await?;
    let (base, stop) = spawn_api(&pool).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let wrk = which("wrk");
    let mut routes = Vec::new();
    // `/healthz` of the same server first: the ceiling the others are read against (the same
    // connections, server, client and machine, and no database or rendering).
    for (label, path) in [
        ("/healthz", None),
        ("/graphs?limit=50", None),
        ("/graphs/{name}", Some(())),
        ("/clusters", None),
    ] {
        progress(&format!(
            "GET {label}: {connections} connections for {secs} s ({})…",
            if wrk.is_some() {
                "wrk"
            } else {
                "in-process client"
            }
        ));
        if let Some(wrk) = &wrk {
            // A first pass opens the connections and warms the caches (every graph once).
            wrk_load(wrk, &base, label, path.is_some(), graphs, connections, 1.0).await?;
            routes.push(
                wrk_load(wrk, &base, label, path.is_some(), graphs, connections, secs).await?,
            );
            continue;
        }
        let run = |duration: Duration| {
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..connections {
                let (http, base) = (http.clone(), base.clone());
                tasks.spawn(async move {
                    let mut times = Vec::new();
                    let start = Instant::now();
                    let mut k = c;
                    while start.elapsed() < duration {
                        let url = match path {
                            Some(()) => format!("{base}/graphs/g{}", k % graphs),
                            None => format!("{base}{label}"),
                        };
                        k += connections;
                        let t = Instant::now();
                        let r = http.get(url).send().await?;
                        anyhow::ensure!(r.status().is_success(), "GET {label}: {}", r.status());
                        r.bytes().await?;
                        times.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(times)
                });
            }
            async move {
                let mut all = Vec::new();
                while let Some(t) = tasks.join_next().await {
                    all.extend(t??);
                }
                anyhow::Ok(all)
            }
        };
        run(Duration::from_millis(300)).await?; // connections open, caches warm
        let started = Instant::now();
        let mut times = run(Duration::from_secs_f64(secs)).await?;
        let elapsed = started.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| quantile(&times, q);
        routes.push(RouteLoad {
            path: label.into(),
            requests: times.len(),
            req_per_sec: times.len() as f64 / elapsed,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            client: "in-process".into(),
        });
    }
    stop.cancel();
    Ok(ReadsReport {
        graphs,
        connections,
        secs,
        routes,
    })
}
