//! The generated SDK (`api/sdk`): fresh against api/openapi.yaml, and every operation round-trips
//! against a real stack through it.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use smo_sdk::{DeployGraphResponse, Error, JobAccepted, JobView};

use crate::stack::Stack;

#[test]
fn sdk_generated_code_is_fresh() {
    let root = env!("CARGO_MANIFEST_DIR");
    let spec = std::fs::read_to_string(format!("{root}/api/openapi.yaml")).expect("spec");
    let committed =
        std::fs::read_to_string(format!("{root}/api/sdk/src/generated.rs")).unwrap_or_default();
    let current = smo_sdk_gen::generate(&spec).expect("the generator accepts api/openapi.yaml");
    assert!(
        committed == current,
        "api/sdk/src/generated.rs is stale; regenerate it with: cargo run -p smo-sdk-gen"
    );
}

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/examples/graphs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Polls a job through the SDK until it ends and asserts it succeeded.
async fn succeed(api: &smo_sdk::Client, accepted: &JobAccepted) -> JobView {
    for _ in 0..600 {
        let job = api.get_job(&accepted.job_id).await.expect("job");
        assert_eq!(job.id, accepted.job_id);
        if matches!(job.state.as_str(), "succeeded" | "dead" | "cancelled") {
            assert_eq!(job.state, "succeeded", "{job:?}");
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {} did not finish", accepted.job_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_round_trips_every_operation() {
    let s = Stack::start().await;
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let record = {
        let seen = seen.clone();
        move |op: &str, _status: u16| {
            seen.lock().unwrap().insert(op.to_string());
        }
    };
    let api = smo_sdk::Client::new(&format!("{}/", s.api)).on_response(record.clone());

    // Health and metrics answer text.
    assert_eq!(api.healthz().await.unwrap(), "ok");
    assert_eq!(api.readyz().await.unwrap(), "ready");
    assert!(!api.metrics().await.unwrap().is_empty());

    // Clusters: sync through a job, then list.
    let sync = api.sync_clusters().await.unwrap();
    assert_eq!(sync.kind, "cluster-sync");
    succeed(&api, &sync).await;
    let clusters = api.list_clusters().await.unwrap();
    let names: BTreeSet<_> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["cloud-gpu", "edge-a", "edge-b"]),
        "{clusters:?}"
    );
    let gpu = clusters.iter().find(|c| c.name == "cloud-gpu").unwrap();
    assert_eq!(gpu.gpus, 2);
    assert!(gpu.ready && gpu.cpu_free > 0.0 && gpu.memory_free > 0);
    // A health round (the scheduler's `cluster-health`) records each cluster's first state.
    let queue = smo_jobs::Queue::new(s.db.pool.clone());
    let health = queue
        .enqueue(&smo::reconcile::ClusterHealthJob {})
        .await
        .unwrap();
    crate::support::until("the health round", 60, || async {
        queue
            .get(health.id)
            .await
            .is_ok_and(|j| j.state == "succeeded")
    })
    .await;
    let history = api.cluster_history(None, Some(10)).await.unwrap();
    let seen_ready: BTreeSet<_> = history
        .iter()
        .filter(|e| e.event == "ready")
        .map(|e| e.cluster.as_str())
        .collect();
    assert_eq!(seen_ready, names, "{history:?}");
    let one = api.cluster_history(Some("edge-a"), None).await.unwrap();
    assert!(one.iter().all(|e| e.cluster == "edge-a") && !one.is_empty());
    // A name no cluster can have (schemathesis sent a NUL) has no history, not a 422.
    assert!(
        api.cluster_history(Some("\u{0}x"), None)
            .await
            .unwrap()
            .is_empty()
    );

    // A dry run answers 200 with the placement and stores nothing.
    let DeployGraphResponse::Ok(dry) = api
        .deploy_graph("sdk", Some(true), example("autoscale.yaml"))
        .await
        .unwrap()
    else {
        panic!("a dry run answers 200")
    };
    assert_eq!(dry.graph, "autoscale");
    assert!(dry.placement.contains_key("web"), "{dry:?}");
    assert!(!dry.objects.is_empty());
    assert!(api.list_graphs(None, None).await.unwrap().is_empty());

    // Deploy answers 202 with a job; the job, the graph and its lists are all typed.
    let DeployGraphResponse::Accepted(deploy) = api
        .deploy_graph("sdk", None, example("autoscale.yaml"))
        .await
        .unwrap()
    else {
        panic!("a deploy answers 202")
    };
    assert_eq!(
        (deploy.kind.as_str(), deploy.graph.as_str()),
        ("deploy", "autoscale")
    );
    assert!(deploy.created);
    let job = succeed(&api, &deploy).await;
    assert_eq!(job.kind, "deploy");
    let g = api.get_graph("autoscale").await.unwrap();
    assert_eq!((g.project.as_str(), g.status.as_str()), ("sdk", "Running"));
    let services: Vec<_> = g.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(services, ["web", "burst-vo"]);
    let web = &g.services[0];
    assert!(web.cluster.is_some() && web.cpu_millis > 0 && web.memory_bytes > 0);
    let burst = &g.services[1];
    assert!(burst.conditional && burst.status == "Pending", "{burst:?}");
    let listed = api.list_graphs(None, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "autoscale");
    assert_eq!(
        api.list_project_graphs("sdk", None, None).await.unwrap(),
        listed
    );
    assert!(
        api.list_project_graphs("other", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    let jobs = api.list_graph_jobs("autoscale", Some(5)).await.unwrap();
    assert!(jobs.iter().any(|j| j.id == deploy.job_id), "{jobs:?}");
    assert!(jobs.len() <= 5);
    let history = api.graph_history("autoscale", Some(10)).await.unwrap();
    assert!(!history.is_empty() && history.len() <= 10);
    assert!(history.iter().any(|d| d.kind == "deploy"), "{history:?}");

    // Typed answers re-serialise to exactly what the server sent: nothing dropped or renamed.
    let raw = smo_sdk::Client::new(&s.api);
    let same = |typed: serde_json::Value, path: &'static str| {
        let raw = raw.clone();
        async move {
            let sent: serde_json::Value = raw
                .request_json(smo_sdk::Method::GET, path, None)
                .await
                .unwrap();
            assert_eq!(typed, sent, "{path}");
        }
    };
    same(serde_json::to_value(&g).unwrap(), "/graphs/autoscale").await;
    // (the deploy job re-synced the clusters since the list above)
    let clusters = api.list_clusters().await.unwrap();
    same(serde_json::to_value(&clusters).unwrap(), "/clusters").await;
    same(
        serde_json::to_value(&history).unwrap(),
        "/graphs/autoscale/history?limit=10",
    )
    .await;
    same(serde_json::to_value(&listed).unwrap(), "/graphs").await;

    // The blocking client, from a blocking thread, sees the same graph.
    let base = s.api.clone();
    let blocking_record = record.clone();
    let from_blocking = tokio::task::spawn_blocking(move || {
        let api = smo_sdk::blocking::Client::new(&base).on_response(blocking_record);
        assert_eq!(api.healthz().unwrap(), "ok");
        let err = api.get_graph("ghost").unwrap_err();
        assert_eq!(err.status(), Some(404), "{err}");
        api.get_graph("autoscale").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(from_blocking, g);

    // Alertmanager's webhook deploys the pending conditional service.
    let webhook = serde_json::json!({"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "web-overloaded", "graph": "autoscale", "service": "burst-vo"}},
        {"status": "firing", "labels": {"alertname": "unrelated"}}
    ]});
    let alerts = api
        .post_alerts(serde_json::to_vec(&webhook).unwrap())
        .await
        .unwrap();
    assert_eq!((alerts.firing, alerts.ignored), (2, 1), "{alerts:?}");
    assert_eq!(alerts.jobs.len(), 1);
    assert_eq!(alerts.jobs[0].kind, "deploy-conditional");
    succeed(&api, &alerts.jobs[0]).await;
    let g = api.get_graph("autoscale").await.unwrap();
    assert_ne!(g.services[1].status, "Pending", "{:?}", g.services[1]);

    // Stop, start, re-place: each a job.
    let stop = api.stop_graph("autoscale").await.unwrap();
    assert_eq!(stop.kind, "stop");
    succeed(&api, &stop).await;
    assert!(s.objects("sdk", "autoscale").await.is_empty());
    assert_eq!(api.get_graph("autoscale").await.unwrap().desired, "stopped");
    let start = api.start_graph("autoscale").await.unwrap();
    assert_eq!(start.kind, "start");
    succeed(&api, &start).await;
    assert_eq!(api.get_graph("autoscale").await.unwrap().status, "Running");
    let replace = api.replace_graph("autoscale").await.unwrap();
    assert_eq!(replace.kind, "re-place");
    succeed(&api, &replace).await;

    // Errors are typed problem documents.
    let bad = b"hdaGraph:\n  id: x\n  version: '1'\n  services:\n    - id: a\n      deployment:\n        trigger: {auto: {dependencies: []}}\n        intent: {compute: {cpu: huge, ram: small, storage: small, gpu: {enabled: false}}}\n      artifact: {image: x}\n";
    let err = api
        .deploy_graph("sdk", None, bad.to_vec())
        .await
        .unwrap_err();
    let Error::Api { status, problem } = &err else {
        panic!("{err}")
    };
    assert_eq!((*status, problem.status), (422, 422));
    assert!(err.is_bad_input());
    assert!(
        err.problem_lines()
            .iter()
            .any(|p| p.starts_with("services[0].deployment.intent.compute.cpu:")),
        "{:?}",
        err.problem_lines()
    );
    let err = api.get_job("not-a-uuid").await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let err = api.stop_graph("a graph/with ?odd chars").await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(404),
        "path parameters are encoded: {err}"
    );
    assert!(!err.is_bad_input());

    // Who the SDK acts as (this stack has no token: the anonymous admin), and the audit log of
    // what it changed.
    let me = api.whoami().await.unwrap();
    assert_eq!((me.name.as_str(), me.role.as_str()), ("anonymous", "admin"));
    assert_eq!(me.projects, vec!["*".to_string()]);
    let log = api
        .audit_log(Some("sdk"), None, None, None, None, Some(1000))
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.operation == "POST /project/{project}/graphs"
                && e.graph.as_deref() == Some("autoscale")
                && e.status == 202
                && e.token == "anonymous"
                && e.job_id.is_some()),
        "{log:?}"
    );

    // Remove: accepted, then gone.
    let rm = api.remove_graph("autoscale").await.unwrap();
    assert_eq!(rm.kind, "remove");
    succeed(&api, &rm).await;
    assert!(s.objects("sdk", "autoscale").await.is_empty());
    let err = api.get_graph("autoscale").await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // No server: Unreachable, with the hint the CLI prints.
    let err = smo_sdk::Client::new("http://127.0.0.1:9")
        .healthz()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("cannot reach smo"), "{err}");

    // Every operation of the document went through the SDK.
    let seen = seen.lock().unwrap().clone();
    let all: BTreeSet<String> = smo_sdk::OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        seen,
        all,
        "operations not exercised through the SDK: {:?}",
        all.difference(&seen).collect::<Vec<_>>()
    );
}
