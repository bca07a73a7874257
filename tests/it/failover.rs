//! Losing a cluster against `smo sim`, as an operator would see it: twelve running graphs, the
//! busiest cluster marked NotReady, and nobody touching anything. `cluster-health` (the cron
//! entry, enqueued here as the scheduler would) finds it lost after the threshold, one
//! `failover` job re-places every affected graph in one solve, and `move-graph` applies each.
//! Once the cluster is back for `failback_after`, the graphs go home by themselves.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::{Value, json};
use smo::reconcile::ClusterHealthJob;

use crate::{stack::Stack, support::until};

/// Graph `i`: two services; the first graph opts out of fail-back.
fn graph(i: usize) -> Vec<u8> {
    let intent = if i == 0 { "failback: manual" } else { "" };
    format!(
        r#"
hdaGraph:
  imVersion: 0.4.0
  id: shop-{i:02}
  version: "1.0.0"
  hdaGraphIntent: {{{intent}}}
  services:
    - id: front
      deployment:
        trigger: {{auto: {{dependencies: []}}}}
        intent:
          compute: {{cpu: "1", ram: 512Mi, storage: light, gpu: {{enabled: false}}}}
      artifact:
        image: ghcr.io/example/front:1
        ports: [{{port: 80}}]
    - id: back
      deployment:
        trigger: {{auto: {{dependencies: []}}}}
        intent:
          compute: {{cpu: 500m, ram: 256Mi, storage: light, gpu: {{enabled: false}}}}
      artifact:
        image: ghcr.io/example/back:1
"#
    )
    .into_bytes()
}

/// service placement of every graph, from the API.
async fn placements(s: &Stack, n: usize) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in 0..n {
        let name = format!("shop-{i:02}");
        let g: Value = s.client.get(&format!("/graphs/{name}")).await.unwrap();
        let p: BTreeMap<String, String> = serde_json::from_value(g["placement"].clone()).unwrap();
        out.insert(name, p);
    }
    out
}

async fn sim(s: &Stack, path: &str) -> Value {
    reqwest::get(format!("{}/sim/{path}", s.sim_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_ready(s: &Stack, cluster: &str, ready: bool) {
    let r = reqwest::Client::new()
        .post(format!("{}/sim/clusters/{cluster}/ready", s.sim_url))
        .json(&json!({ "ready": ready }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// One cluster-health round, as the scheduler's cron entry runs it, waited for.
async fn health_round(s: &Stack) {
    let queue = smo_jobs::Queue::new(s.db.pool.clone());
    let e = queue.enqueue(&ClusterHealthJob {}).await.unwrap();
    until("the cluster-health job to finish", 60, || async {
        queue.get(e.id).await.is_ok_and(|j| j.state == "succeeded")
    })
    .await;
}

/// Every deployment the sim runs is on exactly one ready cluster with all replicas ready, and no
/// ready cluster holds more than it can.
async fn converged_and_within_capacity(s: &Stack, lost: Option<&str>) -> Result<(), String> {
    let state = sim(s, "state").await;
    for c in state["clusters"].as_array().unwrap() {
        if c["ready"] == true {
            for r in ["cpu_milli", "memory"] {
                let (used, cap) = (&c["allocated"][r], &c["allocatable"][r]);
                if used.as_u64() > cap.as_u64() {
                    return Err(format!("{} over capacity: {r} {used} of {cap}", c["name"]));
                }
            }
        }
    }
    for d in state["deployments"].as_array().unwrap() {
        let clusters: Vec<&str> = d["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["desired"].as_u64() > Some(0))
            .map(|c| c["cluster"].as_str().unwrap())
            .collect();
        if clusters.len() != 1 || Some(clusters[0]) == lost || d["ready"] != d["replicas"] {
            return Err(format!("not converged: {d}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_cluster_moves_its_graphs_in_one_solve_and_they_come_back_by_themselves() {
    const N: usize = 12;
    let s = Stack::with_failover(smo::settings::FailoverSettings {
        failure_threshold: Duration::from_millis(800),
        failback_after: Duration::from_millis(800),
        failback_max_moves: 100,
        ..Default::default()
    })
    .await;
    for i in 0..N {
        let a = s.client.deploy("shop", graph(i), false).await.unwrap();
        s.succeed(&a).await;
    }
    let before = placements(&s, N).await;
    // Lose the cluster shop-00 (the graph that opts out of fail-back) runs its front on.
    let lost = before["shop-00"]["front"].clone();
    let affected: BTreeSet<String> = before
        .iter()
        .filter(|(_, p)| p.values().any(|c| *c == lost))
        .map(|(g, _)| g.clone())
        .collect();
    assert!(!affected.is_empty());
    health_round(&s).await; // everything Ready: a baseline, nothing moves
    set_ready(&s, &lost, false).await;
    health_round(&s).await; // NotReady seen: the clock starts
    tokio::time::sleep(Duration::from_millis(1000)).await;
    health_round(&s).await; // past the threshold: lost, failover enqueued

    until("every affected graph to run elsewhere", 120, || async {
        let now = placements(&s, N).await;
        now.values().all(|p| p.values().all(|c| *c != lost))
            && converged_and_within_capacity(&s, Some(&lost)).await.is_ok()
    })
    .await;
    let after = placements(&s, N).await;
    for (g, p) in &before {
        if !affected.contains(g) {
            assert_eq!(&after[g], p, "{g} was not on {lost} and must not move");
        }
    }
    for g in &affected {
        let detail: Value = s.client.get(&format!("/graphs/{g}")).await.unwrap();
        assert_eq!(detail["status"], "Running", "{detail}");
        for svc in detail["services"].as_array().unwrap() {
            assert_eq!(svc["status"], "Running", "{g}: {svc}");
        }
        let history: Vec<Value> = s.client.get(&format!("/graphs/{g}/history")).await.unwrap();
        let failover: Vec<&Value> = history.iter().filter(|d| d["kind"] == "failover").collect();
        assert_eq!(failover.len(), 1, "{g}: one failover decision: {history:?}");
        assert!(
            failover[0]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{lost} lost: moved")),
            "{}",
            failover[0]
        );
    }
    // One failover job for the whole cluster: the solve was joint.
    let failovers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'failover'")
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
    assert_eq!(failovers, 1);
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM smo.cluster_events WHERE cluster = $1 ORDER BY id")
            .bind(&lost)
            .fetch_all(&s.db.pool)
            .await
            .unwrap();
    assert_eq!(
        events[..],
        ["ready", "not-ready", "lost", "failover"],
        "{events:?}"
    );
    // The console's clusters page and `GET /clusters/history` show it.
    let page = reqwest::get(format!("{}/console/clusters", s.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("event-lost") && page.contains("event-failover"),
        "{page}"
    );
    let history: Vec<Value> = s
        .client
        .get(&format!("/clusters/history?cluster={lost}"))
        .await
        .unwrap();
    let failover = history.iter().find(|e| e["event"] == "failover").unwrap();
    assert_eq!(failover["data"]["graphs"], affected.len(), "{failover}");
    assert_eq!(failover["data"]["stranded"], 0, "{failover}");

    // The cluster comes back; after failback_after (and not before) the graphs go home.
    set_ready(&s, &lost, true).await;
    health_round(&s).await;
    assert_eq!(
        placements(&s, N).await,
        after,
        "nothing moves back the moment the cluster answers"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    health_round(&s).await;
    // Home: every graph but the one that said `failback: manual`, which stays where failover
    // put it (when failover moved it at all).
    let mut home = before.clone();
    home.insert("shop-00".into(), after["shop-00"].clone());
    until("every graph to be home", 120, || async {
        placements(&s, N).await == home && converged_and_within_capacity(&s, None).await.is_ok()
    })
    .await;
    for g in affected.iter().filter(|g| *g != "shop-00") {
        let history: Vec<Value> = s.client.get(&format!("/graphs/{g}/history")).await.unwrap();
        assert!(
            history.iter().any(|d| d["kind"] == "failback"),
            "{g}: {history:?}"
        );
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM smo.failover_moves")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "every moved service is home");
    let lost_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT lost_at FROM smo.cluster_health WHERE cluster = $1")
            .bind(&lost)
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
    assert_eq!(lost_at, None);
}
