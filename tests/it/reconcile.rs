//! Graph jobs under pressure: the graph lock snoozes instead of failing, a burst of deploys is
//! served by the pool without anyone looking dead, drift in the federation is repaired, and
//! removal converges (even when Helm keeps failing) and cleans up the namespace smo created.

use std::{fmt::Write, os::unix::fs::PermissionsExt, path::Path, time::Duration};

use serde_json::{Value, json};
use smo::reconcile::RepairDriftJob;
use smo_sim::SimConfig;

use crate::{
    stack::{Stack, smo_process},
    support::fixture,
};

/// A graph of `n` small image services.
fn graph(id: &str, n: usize) -> Vec<u8> {
    let mut y =
        format!("hdaGraph:\n  imVersion: 0.4.0\n  id: {id}\n  version: \"1.0.0\"\n  services:\n");
    for i in 0..n {
        let _ = write!(
            y,
            "    - id: s{i}\n      deployment:\n        trigger: {{auto: {{dependencies: []}}}}\n        intent:\n          \
             compute: {{cpu: 50m, ram: 32Mi, storage: light, gpu: {{enabled: false}}}}\n      artifact:\n        \
             image: ghcr.io/example/s{i}:1\n        ports: [{{port: 8080}}]\n"
        );
    }
    y.into_bytes()
}

async fn job_row(s: &Stack, id: &str) -> smo_jobs::JobRow {
    s.db.queue()
        .get(id.parse().expect("uuid"))
        .await
        .expect("job row")
}

#[tokio::test]
async fn a_job_that_finds_its_graph_busy_snoozes_without_spending_an_attempt() {
    // A slow API server keeps the deploy holding the graph while the re-placement arrives.
    let s = Stack::start_with(
        true,
        SimConfig {
            write_latency_ms: 40,
            ..SimConfig::demo()
        },
    )
    .await;
    let deploy = s
        .client
        .deploy("busy", graph("busy", 8), false)
        .await
        .unwrap();
    // Wait until the deploy holds the graph, then ask for a re-placement.
    let id = deploy["job_id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if job_row(&s, &id).await.state == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let re_place: Value = s.client.post("/graphs/busy/placement").await.unwrap();
    s.succeed(&deploy).await;
    s.succeed(&re_place).await;
    let row = job_row(&s, re_place["job_id"].as_str().unwrap()).await;
    assert_eq!(
        row.attempt, 1,
        "waiting for the graph is not a failed attempt: {:?}",
        row.errors
    );
    assert_eq!(row.errors, json!([]), "a snooze leaves no error");
    let deploy_row = job_row(&s, &id).await;
    assert_eq!(deploy_row.attempt, 1, "{:?}", deploy_row.errors);
}

#[tokio::test]
async fn a_burst_of_200_graphs_deploys_each_on_its_first_attempt_and_no_worker_is_declared_lost() {
    // Two worker processes with default settings (concurrency, pool, heartbeat), eight clients.
    let s = Stack::start_with(false, SimConfig::demo()).await;
    let home = std::env::temp_dir().join(format!("{}-home", s.db.name));
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = s.kubeconfig.to_string_lossy().to_string();
    let mut workers: Vec<_> = ["burst-a", "burst-b"]
        .iter()
        .map(|name| {
            smo_process(
                &[
                    "run",
                    "--role",
                    "worker",
                    "--database-url",
                    &s.db.url,
                    "--karmada-kubeconfig",
                    &kubeconfig,
                    "--worker-prefix",
                    name,
                ],
                &home,
            )
            .spawn()
            .expect("worker process starts")
        })
        .collect();
    let started = std::time::Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..8 {
        let client = s.client.clone();
        clients.spawn(async move {
            let mut ids = Vec::new();
            for i in (c..200).step_by(8) {
                let name = format!("burst-{i:03}");
                let a = client
                    .deploy(&format!("burst-{}", i % 4), graph(&name, 2), false)
                    .await
                    .unwrap_or_else(|e| panic!("POST {name}: {e}"));
                ids.push(a["job_id"].as_str().unwrap().to_string());
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = clients.join_next().await {
        ids.extend(r.unwrap());
    }
    assert_eq!(ids.len(), 200);
    let mut done = 0;
    for _ in 0..1200 {
        done = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'deploy' AND state IN ('succeeded', 'dead')",
        )
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
        if done == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert_eq!(done, 200, "every deploy ended");
    let rows: Vec<(String, i32, i32, Value)> = sqlx::query_as(
        "SELECT state, attempt, lost, errors FROM smo_jobs.jobs WHERE kind = 'deploy'",
    )
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    let retried: Vec<&(String, i32, i32, Value)> = rows
        .iter()
        .filter(|(st, attempt, lost, _)| st != "succeeded" || *attempt != 1 || *lost != 0)
        .collect();
    assert!(
        retried.is_empty(),
        "{} of 200 deploys were not done on their first attempt: {:?}",
        retried.len(),
        retried.iter().take(3).collect::<Vec<_>>()
    );
    let lost: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo_jobs.workers WHERE stop_reason = 'heartbeat lapsed'",
    )
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(lost, 0, "a live worker was declared lost");
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM smo.graphs WHERE status = 'Running'")
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
    assert_eq!(running, 200);
    eprintln!(
        "burst: 200 graphs (400 services) by 8 clients, 2 worker processes: {:.1} s, {:.1} graphs/s",
        elapsed.as_secs_f64(),
        200.0 / elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn drift_in_the_federation_is_repaired_and_logged_and_no_drift_logs_nothing() {
    let s = Stack::start().await;
    let accepted = s
        .client
        .deploy("drifty", graph("drifty", 3), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    let before = s.objects("drifty", "drifty").await;
    assert!(before.len() >= 6, "{before:?}");

    // Nothing drifted: the repair checks and logs nothing.
    let q = s.db.queue();
    let repair = |q: smo_jobs::Queue| async move {
        let e = q
            .enqueue(&RepairDriftJob {
                graph: smo::hdag::GraphName::parse("drifty").unwrap(),
            })
            .await
            .unwrap();
        json!({ "job_id": e.id.to_string() })
    };
    s.succeed(&repair(q.clone()).await).await;
    let history: Vec<Value> = s.client.get("/graphs/drifty/history").await.unwrap();
    assert!(history.iter().all(|d| d["kind"] != "drift"), "{history:#?}");

    // The federation lost its state (as after a restart without storage), and someone changed
    // the image of a Deployment that came back meanwhile.
    let deleted = s
        .federation
        .delete_labelled(
            "drifty",
            "drifty",
            None,
            &smo::federation::Fence::unbounded(),
        )
        .await
        .unwrap();
    assert_eq!(deleted, before.len());
    let apply = |body: Value| {
        let url = format!(
            "{}/apis/apps/v1/namespaces/drifty/deployments/drifty-s0?fieldManager=someone&force=true",
            s.sim_url
        );
        async move {
            reqwest::Client::new()
                .patch(url)
                .header("content-type", "application/apply-patch+yaml")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let r = apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "drifty-s0", "namespace": "drifty"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [{"name": "s0", "image": "evil:1"}]}}}}))
    .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    s.succeed(&repair(q.clone()).await).await;
    assert_eq!(
        s.objects("drifty", "drifty").await,
        before,
        "every object is back"
    );
    let live = s
        .federation
        .get(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "drifty-s0", "namespace": "drifty"}}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/example/s0:1"
    );
    let history: Vec<Value> = s.client.get("/graphs/drifty/history").await.unwrap();
    let drift = history
        .iter()
        .find(|d| d["kind"] == "drift")
        .unwrap_or_else(|| panic!("no drift decision: {history:#?}"));
    assert_eq!(
        drift["outcome"]["missing"].as_array().unwrap().len(),
        before.len() - 1
    );
    assert_eq!(drift["outcome"]["changed"], json!(["Deployment drifty-s0"]));
    assert!(
        drift["message"]
            .as_str()
            .unwrap()
            .starts_with("drift repaired"),
        "{drift}"
    );

    // The scheduler has a cron entry that fans the repair out to every running graph.
    let entries = smo::server::cron_entries(&test_settings()).unwrap();
    assert!(entries.iter().any(|e| e.name == "drift-fanout"));
}

fn test_settings() -> smo::settings::ServerSettings {
    smo::settings::ServerSettings {
        database_url: String::new(),
        listen: String::new(),
        metrics_listen: None,
        worker_concurrency: 1,
        db_pool_size: None,
        http: Default::default(),
        worker_batch: 1,
        worker_prefix: String::new(),
        retention: Duration::from_secs(3600),
        audit_retention: Duration::from_secs(90 * 86_400),
        shutdown_grace: Duration::from_secs(1),
        heartbeat_interval: Duration::from_secs(1),
        karmada_kubeconfig: None,
        api_token: None,
        monitoring: Default::default(),
        failover: Default::default(),
        registry: Default::default(),
        board_url: None,
        helm_binary: "helm".into(),
        helm_plain_http: false,
    }
}

/// A `helm` that installs fine and can never uninstall.
fn helm_that_cannot_uninstall(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("helm");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in\n  uninstall) echo 'Error: uninstall: release is stuck' >&2; exit 1;;\n  *) exit 0;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test]
async fn removal_converges_when_helm_keeps_failing_and_deletes_only_the_namespace_smo_created() {
    let dir = std::env::temp_dir().join(format!("smo-rm-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let helm = helm_that_cannot_uninstall(&dir);
    let s = Stack::with_helm(&helm).await;
    let namespace = |name: &str| {
        let url = format!("{}/api/v1/namespaces/{name}", s.sim_url);
        async move {
            let r = reqwest::get(url).await.map_err(|e| e.to_string())?;
            match r.status().as_u16() {
                200 => Ok(Some(r.json::<Value>().await.map_err(|e| e.to_string())?)),
                404 => Ok(None),
                other => Err(format!("namespace GET answered {other}")),
            }
        }
    };
    // A namespace that existed before smo: a graph deployed there must not take it over.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/namespaces", s.sim_url))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "theirs"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let helm_graph = s
        .client
        .deploy("sensors", fixture("hdag/conditional.yaml"), false)
        .await
        .unwrap();
    s.succeed(&helm_graph).await;
    let image_graph = s
        .client
        .deploy("theirs", graph("guest", 1), false)
        .await
        .unwrap();
    s.succeed(&image_graph).await;
    assert!(namespace("sensors").await.unwrap().is_some());

    let removed: Value = s.client.delete("/graphs/sensor-pipeline").await.unwrap();
    let job = s.succeed(&removed).await;
    assert!(job["attempt"].as_i64().unwrap() <= 3, "{job}");
    let gone = s.client.get::<Value>("/graphs/sensor-pipeline").await;
    assert!(gone.is_err(), "the graph is gone: {gone:?}");
    let history: Vec<Value> = s
        .client
        .get("/graphs/sensor-pipeline/history")
        .await
        .unwrap();
    let remove = &history[0];
    assert_eq!(remove["kind"], "remove", "{history:#?}");
    assert!(
        remove["message"]
            .as_str()
            .unwrap()
            .contains("release is stuck"),
        "the release left behind is named: {remove}"
    );
    assert_eq!(remove["outcome"]["namespace_deleted"], true, "{remove}");
    assert!(namespace("sensors").await.unwrap().is_none());
    let dead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'remove' AND state = 'dead'",
    )
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(dead, 0);

    // The namespace smo did not create stays, though its only graph is removed.
    let removed: Value = s.client.delete("/graphs/guest").await.unwrap();
    s.succeed(&removed).await;
    assert!(s.objects("theirs", "guest").await.is_empty());
    assert!(namespace("theirs").await.unwrap().is_some());
}

#[tokio::test]
async fn projects_named_after_system_namespaces_are_refused_and_nothing_is_stored() {
    let s = Stack::start_with(false, SimConfig::demo()).await;
    for project in ["kube-system", "kube-public", "karmada-system"] {
        let err = s
            .client
            .deploy(project, graph("sneaky", 1), false)
            .await
            .unwrap_err();
        let text = format!("{err:?}");
        assert!(
            text.contains("422") || text.contains("reserved"),
            "{project}: {text}"
        );
        assert!(text.contains("project"), "names the field: {text}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM smo.graphs")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

/// An attempt whose lease lapsed writes nothing at all: not an apply, not a delete (one object or
/// every object of a graph by label), not a scale patch. Deletes and the scale subresource carry
/// no fencing token the federation could check, so the lease check is all that stops them; the
/// sim's write log proves none of them left the worker.
#[tokio::test]
async fn an_attempt_whose_lease_lapsed_neither_applies_nor_deletes_nor_scales() {
    use smo::federation::{FederationError, Fence};
    let s = Stack::start().await;
    let accepted = s
        .client
        .deploy("lapsed", graph("lapsed", 2), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    let before = s.objects("lapsed", "lapsed").await;
    assert_eq!(before.len(), 6, "{before:?}");
    let writes = crate::crash::sim_writes(&s.sim_url).await.len();

    // The worker was declared lost after this attempt began (its lease generation moved on).
    let manual = smo_jobs::testing::ManualLease::new(Duration::from_secs(60));
    let lease = manual.lease();
    manual.revoke();
    let fence = Fence::new(lease, Some(smo::store::FenceToken::from_raw(i64::MAX)));
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "lapsed-s0", "namespace": "lapsed"},
        "spec": {"replicas": 3}});
    fn fenced<T>(r: Result<T, FederationError>, what: &str) {
        match r {
            Err(FederationError::Fenced(_)) => {}
            Err(e) => panic!("{what}: {e}"),
            Ok(_) => panic!("{what} went through a lapsed lease"),
        }
    }
    fenced(
        s.federation
            .delete_labelled("lapsed", "lapsed", None, &fence)
            .await,
        "delete by label",
    );
    fenced(
        s.federation
            .delete_labelled("lapsed", "lapsed", Some("s1"), &fence)
            .await,
        "delete a service's objects",
    );
    fenced(
        s.federation.scale("lapsed", "lapsed-s0", 7, &fence).await,
        "scale",
    );
    fenced(s.federation.apply(&deployment, &fence).await, "apply");
    fenced(s.federation.delete(&deployment, &fence).await, "delete");
    fenced(
        s.federation.ensure_namespace("lapsed-too", &fence).await,
        "create a namespace",
    );

    assert_eq!(s.objects("lapsed", "lapsed").await, before);
    assert_eq!(
        s.federation
            .deployment_replicas("lapsed", "lapsed-s0")
            .await
            .unwrap()
            .map(|(desired, _)| desired),
        Some(1)
    );
    let after = crate::crash::sim_writes(&s.sim_url).await;
    assert_eq!(
        after.len(),
        writes,
        "no request reached the federation: {:?}",
        &after[writes..]
    );
}

/// A conditional service's graph with two services waiting for the same event.
fn two_conditionals() -> Vec<u8> {
    let mut y = String::from(
        "hdaGraph:\n  imVersion: 0.4.0\n  id: twice\n  version: \"1.0.0\"\n  services:\n\
         \x20   - id: web\n      deployment:\n        trigger: {auto: {dependencies: []}}\n        intent:\n\
         \x20         compute: {cpu: 50m, ram: 32Mi, storage: light, gpu: {enabled: false}}\n\
         \x20     artifact: {image: ghcr.io/example/web:1, ports: [{port: 8080}]}\n",
    );
    for id in ["burst-a", "burst-b"] {
        let _ = write!(
            y,
            "    - id: {id}\n      deployment:\n        trigger:\n          event:\n            condition: ANY\n            events:\n\
             \x20             - id: hot\n                source: [{{serviceId: web, metricId: requests}}]\n\
             \x20               condition: {{promQuery: 'sum(rate(x[1m])) > 1', gracePeriod: 1s}}\n        intent:\n\
             \x20         compute: {{cpu: 50m, ram: 32Mi, storage: light, gpu: {{enabled: false}}}}\n\
             \x20     artifact: {{image: ghcr.io/example/{id}:1, ports: [{{port: 9000}}]}}\n"
        );
    }
    y.into_bytes()
}

/// Alertmanager repeats a firing alert until it resolves: while the first `deploy-conditional`
/// of a service is queued, a repeat finds that job instead of queueing a second deploy; another
/// service waiting for the same event gets a job of its own.
#[tokio::test]
async fn a_repeated_alert_finds_the_queued_conditional_deploy_of_its_service() {
    // No worker: the jobs stay queued.
    let s = Stack::start_with(false, SimConfig::demo()).await;
    s.client
        .deploy("demo", two_conditionals(), false)
        .await
        .unwrap();
    let fire = |service: &str| {
        serde_json::to_vec(&json!({"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "hot", "graph": "twice", "service": service}}
        ]}))
        .unwrap()
    };
    let mut ids = Vec::new();
    for service in ["burst-a", "burst-a", "burst-b", "burst-a"] {
        let a = s.client.post_alerts(fire(service)).await.unwrap();
        assert_eq!(a.jobs.len(), 1, "{service}: {a:?}");
        assert_eq!(a.jobs[0].kind, "deploy-conditional");
        ids.push((a.jobs[0].job_id.clone(), a.jobs[0].created));
    }
    assert_eq!(
        ids[1],
        (ids[0].0.clone(), false),
        "a repeat finds the queued job"
    );
    assert_eq!(ids[3], (ids[0].0.clone(), false), "{ids:?}");
    assert!(ids[0].1 && ids[2].1, "{ids:?}");
    assert_ne!(ids[0].0, ids[2].0, "each service has its own job");
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'deploy-conditional' AND state = 'queued'",
    )
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(queued, 2);
}
