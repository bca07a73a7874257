//! What hostile or unlucky clients found: a client's mistake is a 4xx naming the field (never a
//! 503 "database is unavailable"), races between clients end in one winner, unknown paths do not
//! grow /metrics, and listing graphs never reads their descriptors.

use serde_json::{Value, json};
use smo_sim::SimConfig;

use crate::stack::Stack;

fn descriptor(id: &str, description: &str) -> Value {
    json!({"hdaGraph": {
        "imVersion": "0.4.0", "id": id, "version": "1.0.0", "description": description,
        "services": [{
            "id": "web",
            "deployment": {"trigger": {"auto": {"dependencies": []}}, "intent": {
                "compute": {"cpu": "50m", "ram": "32Mi", "storage": "light", "gpu": {"enabled": false}}}},
            "artifact": {"image": "ghcr.io/example/web:1", "ports": [{"port": 8080}]}
        }]
    }})
}

async fn graph_count(s: &Stack) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM smo.graphs")
        .fetch_one(&s.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn twenty_parallel_creates_of_one_new_graph_end_in_one_graph_and_no_503() {
    let s = Stack::start_with(false, SimConfig::demo()).await;
    let body = descriptor("raced", "twenty clients at once").to_string();
    let http = reqwest::Client::new();
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, url, body) = (
            http.clone(),
            format!("{}/project/race/graphs", s.api),
            body.clone(),
        );
        posts.spawn(async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        });
    }
    let mut accepted = 0;
    while let Some(r) = posts.join_next().await {
        let (status, text) = r.unwrap();
        assert!(
            status == 202 || status == 409,
            "a concurrent create answered {status}: {text}"
        );
        if status == 409 {
            let p: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(p["status"], 409, "{p}");
        }
        accepted += i32::from(status == 202);
    }
    assert!(accepted >= 1, "one of them wins");
    assert_eq!(graph_count(&s).await, 1);
    let revision: i32 = sqlx::query_scalar("SELECT revision FROM smo.graphs WHERE name = 'raced'")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(revision, accepted, "each accepted post is one revision");
}

#[tokio::test]
async fn a_nul_character_is_a_422_naming_the_field_and_nothing_is_stored() {
    let s = Stack::start_with(false, SimConfig::demo()).await;
    let http = reqwest::Client::new();
    let problem = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let p: Value = r.json().await.unwrap();
        (status, p)
    };

    // In a descriptor string (JSON escapes it; PostgreSQL text and jsonb cannot hold it).
    let r = http
        .post(format!("{}/project/p/graphs", s.api))
        .header("content-type", "application/json")
        .body(descriptor("nul", "before\u{0}after").to_string())
        .send()
        .await
        .unwrap();
    let (status, p) = problem(r).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["problems"][0]["path"], "hdaGraph.description", "{p}");
    assert_eq!(
        p["type"], "urn:smo:problem:unstorable-value",
        "the cause, not just the status"
    );

    // In a path parameter.
    for (path, field) in [
        ("/graphs/a%00b", "name"),
        ("/graphs/a%00b/history", "name"),
        ("/project/p%00q/graphs", "project"),
    ] {
        let r = http.get(format!("{}{path}", s.api)).send().await.unwrap();
        let (status, p) = problem(r).await;
        assert_eq!(status, 422, "{path}: {p}");
        assert_eq!(p["problems"][0]["path"], field, "{path}: {p}");
    }

    // In an alert label.
    let alert = json!({"version": "4", "status": "firing", "alerts": [{
        "status": "firing",
        "labels": {"alertname": "hot\u{0}", "graph": "g", "service": "s"},
        "annotations": {}, "startsAt": "2026-12-01T00:00:00Z"}]});
    let r = http
        .post(format!("{}/alerts", s.api))
        .json(&alert)
        .send()
        .await
        .unwrap();
    let (status, p) = problem(r).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(
        p["problems"][0]["path"], "alerts[0].labels.alertname",
        "{p}"
    );

    assert_eq!(graph_count(&s).await, 0, "nothing is stored");
}

#[tokio::test]
async fn unknown_paths_share_one_metrics_label() {
    let s = Stack::start_with(false, SimConfig::demo()).await;
    let http = reqwest::Client::new();
    for i in 0..50 {
        let r = http
            .get(format!("{}/probe-{i}/wp-login-{i}.php", s.api))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let r = http
        .get(format!("{}/graphs/no-such-graph", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let metrics = http
        .get(format!("{}/metrics", s.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("probe-"),
        "an unknown path became a label"
    );
    assert!(
        metrics.contains(r#"route="unmatched""#),
        "unknown paths share one label"
    );
    assert!(
        metrics.contains(r#"route="/graphs/{name}""#),
        "a known route keeps its template even when it answers 404"
    );
}

#[tokio::test]
async fn listing_graphs_reads_neither_descriptor_nor_source() {
    let s = Stack::start_with(false, SimConfig::demo()).await;
    let accepted = s
        .client
        .deploy(
            "p",
            descriptor("listed", "a graph").to_string().into_bytes(),
            false,
        )
        .await
        .unwrap();
    assert!(accepted["job_id"].is_string());
    // A role that may read every column of smo.graphs but the documents: if the list selected
    // them, PostgreSQL would refuse.
    let role = format!("lister_{}", s.db.name);
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA smo TO {role}"),
        format!(
            "GRANT SELECT (id, project, name, version, revision, desired, status, status_message, \
             placement, dashboards, created_at, updated_at) ON smo.graphs TO {role}"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&s.db.pool)
            .await
            .unwrap();
    }
    let url = s.db.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(url, s.db.url, "{}", s.db.url);
    let lister = sqlx::PgPool::connect(&url).await.unwrap();
    let listed = smo::store::list_graphs(&lister, None, Default::default()).await;
    let project = smo::store::list_graphs(&lister, Some("p"), Default::default()).await;
    lister.close().await;
    for sql in [
        format!("REVOKE ALL ON smo.graphs FROM {role}"),
        format!("REVOKE ALL ON SCHEMA smo FROM {role}"),
        format!("DROP ROLE {role}"),
    ] {
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&s.db.pool)
            .await;
    }
    let listed = listed.expect("the list reads only what it shows");
    assert_eq!(listed.count, 1);
    assert_eq!(listed.last.as_deref(), Some("p/listed"));
    assert_eq!(project.unwrap().count, 1);
}

/// An API with short limits, on its own port.
async fn limited_api(
    limits: smo::http::HttpLimits,
) -> (
    smo_jobs::testing::TestDb,
    String,
    tokio_util::sync::CancellationToken,
) {
    smo::install_crypto_provider();
    let db = crate::support::test_db().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(smo::server::serve_api_on(
        db.pool.clone(),
        listener,
        None,
        Default::default(),
        limits,
        None,
        stop.clone(),
    ));
    (db, addr, stop)
}

/// Reads until the server closes the connection (or `within` passes); what it sent.
async fn read_until_closed(
    s: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn slow_headers_idle_connections_and_slow_bodies_are_cut_off_and_connections_are_capped() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    let limits = smo::http::HttpLimits {
        header_read_timeout: Duration::from_millis(800),
        body_read_timeout: Duration::from_millis(800),
        max_connections: 8,
    };
    let (_db, addr, stop) = limited_api(limits).await;
    let healthz = |addr: String| async move {
        reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    for _ in 0..100 {
        if healthz(addr.clone()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Slowloris: 16 connections (twice the cap) that trickle their headers a byte at a time.
    let mut lorises = Vec::new();
    for _ in 0..16 {
        let addr = addr.clone();
        lorises.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if s.write_all(b"X").await.is_err() {
                    break;
                }
            }
            let closed = read_until_closed(&mut s, Duration::from_secs(1)).await;
            (closed.is_some(), started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The cap holds them back, and the header timeout frees the slots: a real client gets in.
    assert_eq!(healthz(addr.clone()).await.unwrap(), 200);
    for l in lorises {
        let (closed, took) = l.await.unwrap();
        assert!(closed, "a slowloris connection stayed open for {took:?}");
        assert!(took < Duration::from_secs(8), "{took:?}");
    }

    // An idle keep-alive connection is closed after the header timeout.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    let answer = answer.expect("the idle connection was closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body that stops arriving is answered 408.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"alerts\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    let answer = answer.expect("the slow body's connection was closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("urn:smo:problem:body-timeout"), "{answer}");
    stop.cancel();
}

/// Runs scripts/dev-db for a PostgreSQL of this test's own (it is restarted under the API).
fn own_db(action: &str, port: u16, dir: &std::path::Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dev-db");
    let out = std::process::Command::new(script)
        .arg(action)
        .env("SMO_PG_PORT", port.to_string())
        .env("SMO_PG_DIR", dir)
        .output()
        .expect("scripts/dev-db runs");
    assert!(
        out.status.success(),
        "dev-db {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_fast_postgresql_restart_pooled_connections_are_not_served_stale() {
    use std::time::Duration;
    smo::install_crypto_provider();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("smo-pg-restart-{port}"));
    own_db("start", port, &dir);
    let url = format!("postgres://postgres@127.0.0.1:{port}/smo");
    let pool = smo::cli::connect(&url, 8).await.unwrap();
    smo::server::migrate(&pool).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(smo::server::serve_api_on(
        pool.clone(),
        listener,
        None,
        Default::default(),
        Default::default(),
        None,
        stop.clone(),
    ));
    let http = reqwest::Client::new();
    // Eight at once, so the pool holds eight connections that the restart will kill.
    let burst = || async {
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (http, url) = (http.clone(), format!("{api}/graphs"));
            all.spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) });
        }
        let mut statuses = Vec::new();
        while let Some(r) = all.join_next().await {
            statuses.push(r.unwrap().map_err(|e| e.to_string()));
        }
        statuses
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(burst().await.iter().all(|s| s == &Ok(200)));
    assert!(
        pool.size() >= 2,
        "the pool holds connections: {}",
        pool.size()
    );
    own_db("stop", port, &dir);
    own_db("start", port, &dir);
    let after = burst().await;
    stop.cancel();
    pool.close().await;
    own_db("stop", port, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        after.iter().all(|s| s == &Ok(200)),
        "a request after the restart was answered from a dead connection: {after:?}"
    );
}
