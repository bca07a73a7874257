//! What hostile or unlucky clients found: a client's mistake is a 4xx naming the field (never a
//! 503 "database is unavailable"), races between clients end in one winner, unknown paths do not
//! grow /metrics, and listing graphs never reads their descriptors.

use serde_json::{Value, json};
use smo::sim::SimConfig;

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
    let listed = smo::store::list_graphs(&lister, None).await;
    let project = smo::store::list_graphs(&lister, Some("p")).await;
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
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "listed");
    assert_eq!(project.unwrap().len(), 1);
}
