//! Scaling rounds end to end: two graphs sharing a small cluster scale together through the
//! simulated federation, and when their loads cannot both be served there the round re-places
//! them instead of over-committing the cluster (each graph's own tick used to take the whole free
//! CPU); a shard whose plan went stale changes nothing, and one run again after it recorded
//! records nothing twice.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use poem::{EndpointExt, Route, handler, listener::TcpAcceptor, web::Data};
use serde_json::{Value, json};
use smo::{
    reconcile::{self, App, ClusterSyncJob, ScaleFanoutJob, ScaleShardJob},
    scaling::{GraphPlan, PlannedChange},
};
use smo_jobs::{Queue, Registry, testing::fast_worker_config, testing::work_until_idle};
use smo_sim::SimConfig;

use crate::stack::Stack;

type Rates = Arc<Mutex<HashMap<String, f64>>>;

/// Prometheus's answer to the fleet query: one series per deployment in `rates`.
#[handler]
fn fleet(Data(rates): Data<&Rates>) -> poem::web::Json<Value> {
    let result: Vec<Value> = rates
        .lock()
        .unwrap()
        .iter()
        .map(|(svc, rate)| {
            json!({"metric": {"namespace": "p", "service": svc}, "value": [1.0, rate.to_string()]})
        })
        .collect();
    poem::web::Json(
        json!({"status": "success", "data": {"resultType": "vector", "result": result}}),
    )
}

fn graph(id: &str) -> Vec<u8> {
    format!(
        "hdaGraph:\n  imVersion: 0.4.0\n  id: {id}\n  version: \"1.0.0\"\n  hdaGraphIntent: {{useStaticPlacement: false}}\n  services:\n\
         \x20   - id: web\n      deployment:\n        trigger: {{auto: {{dependencies: []}}}}\n        intent:\n\
         \x20         compute: {{cpu: 500m, ram: 64Mi, storage: light, gpu: {{enabled: false}}}}\n\
         \x20         scaling: {{minReplicas: 1, maxReplicas: 10, alpha: 10, beta: 0}}\n\
         \x20     artifact: {{image: example/web:1, ports: [{{port: 8080}}]}}\n"
    )
    .into_bytes()
}

async fn replicas(s: &Stack, deployment: &str) -> i32 {
    s.federation
        .deployment_replicas("p", deployment)
        .await
        .unwrap()
        .expect("deployment exists")
        .0
}

async fn messages(s: &Stack, graph: &str) -> Vec<String> {
    let h: Value = s
        .client
        .get(&format!("/graphs/{graph}/history?limit=100"))
        .await
        .unwrap();
    h.as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "scaling")
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect()
}

async fn run(queue: &Queue, registry: &Registry) {
    work_until_idle(queue, registry.clone(), fast_worker_config("rounds"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_sharing_a_cluster_scale_in_one_round_and_never_over_commit_it() {
    // One cluster of 4 cores: everything lands there.
    let s = Stack::start_with(
        false,
        SimConfig::from_yaml("clusters: [{name: small, cpu: 4, memory: 16Gi}]").unwrap(),
    )
    .await;
    let rates: Rates = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prom = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        poem::Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap())
            .run_with_graceful_shutdown(
                Route::new().at("/api/v1/query", fleet).data(rates.clone()),
                s.stop.clone().cancelled_owned(),
                None,
            ),
    );
    let app = App {
        pool: s.db.pool.clone(),
        federation: Some(s.federation.clone()),
        monitoring: reconcile::Monitoring {
            prometheus: Some(smo::monitoring::io::Prometheus::new(
                &prom,
                Duration::from_secs(5),
            )),
            ..Default::default()
        },
        helm: None,
        failover: Default::default(),
    };
    let queue = Queue::new(s.db.pool.clone());
    let registry = reconcile::registry(app);
    for g in ["ga", "gb"] {
        s.client.deploy("p", graph(g), false).await.unwrap();
    }
    run(&queue, &registry).await;
    let sync_and_round = || async {
        queue.enqueue(&ClusterSyncJob {}).await.unwrap();
        run(&queue, &registry).await;
        queue.enqueue(&ScaleFanoutJob {}).await.unwrap();
        run(&queue, &registry).await;
    };

    // 20 req/s each: 2 replicas each, 2 cores of 4. One round scales both, through one shard.
    rates
        .lock()
        .unwrap()
        .extend([("ga-web".into(), 20.0), ("gb-web".into(), 20.0)]);
    sync_and_round().await;
    assert_eq!(replicas(&s, "ga-web").await, 2);
    assert_eq!(replicas(&s, "gb-web").await, 2);
    assert_eq!(messages(&s, "ga").await, ["scaled web 1→2"]);
    assert_eq!(messages(&s, "gb").await, ["scaled web 1→2"]);
    let shards: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'scale-shard' AND state = 'succeeded'",
    )
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(shards, 1);

    // 60 req/s each: 6 replicas (3 cores) each. Alone, each graph would see 2 free cores plus
    // its own 1 and take 3: 6 cores on a 4-core cluster. Together they cannot both be served,
    // so neither grows and both are re-placed.
    rates
        .lock()
        .unwrap()
        .extend([("ga-web".into(), 60.0), ("gb-web".into(), 60.0)]);
    sync_and_round().await;
    let total = replicas(&s, "ga-web").await + replicas(&s, "gb-web").await;
    assert!(
        f64::from(total) * 0.5 <= 4.0,
        "{total} replicas of 0.5 cores on 4 cores"
    );
    for g in ["ga", "gb"] {
        let m = messages(&s, g).await;
        assert!(
            m[0].starts_with(
                "infeasible, re-placement enqueued: small: the services need at least 6 cores"
            ),
            "{m:?}"
        );
        let re_placed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM smo.graph_jobs WHERE graph = $1 AND kind = 're-place'",
        )
        .bind(g)
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
        assert_eq!(re_placed, 1, "{g}");
    }

    // A shard planned from replicas that have moved since changes nothing.
    let before = messages(&s, "ga").await.len();
    let running = replicas(&s, "ga-web").await;
    queue
        .enqueue(&ScaleShardJob {
            round: uuid::Uuid::new_v4(),
            index: 0,
            graphs: vec![GraphPlan {
                graph: "ga".into(),
                project: "p".into(),
                changes: vec![PlannedChange {
                    service: "web".into(),
                    cluster: "small".into(),
                    from: 7,
                    to: 5,
                }],
                infeasible: vec![],
                notes: vec![],
                inputs: json!({}),
                outcome: Default::default(),
            }],
        })
        .await
        .unwrap();
    run(&queue, &registry).await;
    assert_eq!(replicas(&s, "ga-web").await, running);
    assert_eq!(messages(&s, "ga").await.len(), before);

    // So does one planned for the replicas the service has, on a cluster it is no longer on (a
    // re-placement moved it after the round read it): the round solved another cluster's budget.
    let g: Value = s.client.get("/graphs/ga").await.unwrap();
    let web = &g["services"][0];
    assert_eq!(web["name"], "web", "{g}");
    let stored = web["replicas"].as_u64().unwrap() as u32;
    queue
        .enqueue(&ScaleShardJob {
            round: uuid::Uuid::new_v4(),
            index: 0,
            graphs: vec![GraphPlan {
                graph: "ga".into(),
                project: "p".into(),
                changes: vec![PlannedChange {
                    service: "web".into(),
                    cluster: "elsewhere".into(),
                    from: stored,
                    to: stored + 1,
                }],
                infeasible: vec![],
                notes: vec![],
                inputs: json!({}),
                outcome: Default::default(),
            }],
        })
        .await
        .unwrap();
    run(&queue, &registry).await;
    assert_eq!(replicas(&s, "ga-web").await, running);
    assert_eq!(messages(&s, "ga").await.len(), before);

    // A shard run again after it recorded (its worker died between the commit and the
    // acknowledgement) records nothing twice: one decision, one re-placement.
    let id = queue
        .enqueue(&ScaleShardJob {
            round: uuid::Uuid::new_v4(),
            index: 0,
            graphs: vec![GraphPlan {
                graph: "gb".into(),
                project: "p".into(),
                changes: vec![],
                infeasible: vec!["small: too much load".into()],
                notes: vec![],
                inputs: json!({}),
                outcome: Default::default(),
            }],
        })
        .await
        .unwrap()
        .id;
    let counts = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT count(*) FROM smo.decisions WHERE graph = 'gb' AND job_id = $1),
                    (SELECT count(*) FROM smo.graph_jobs WHERE graph = 'gb' AND kind = 're-place')",
        )
        .bind(id)
        .fetch_one(&s.db.pool)
        .await
        .unwrap()
    };
    run(&queue, &registry).await;
    let (decided, re_placed) = counts().await;
    assert_eq!(decided, 1);
    sqlx::query("UPDATE smo_jobs.jobs SET state = 'queued', finished_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&s.db.pool)
        .await
        .unwrap();
    run(&queue, &registry).await;
    assert_eq!(counts().await, (decided, re_placed));
}
