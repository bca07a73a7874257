//! The graph lifecycle through HTTP, end to end: deploy → jobs → objects in the (simulated)
//! federation → describe → stop/start → remove, plus the error paths.

use serde_json::Value;

use crate::{stack::Stack, support::example};

fn kinds(objs: &[(String, String)]) -> Vec<String> {
    objs.iter().map(|(k, n)| format!("{k}/{n}")).collect()
}

#[tokio::test]
async fn three_graphs_deploy_run_stop_start_and_remove_without_leftovers() {
    let s = Stack::start().await;
    for name in ["hello", "offload", "detection"] {
        let accepted = s
            .client
            .deploy("demo", example(&format!("{name}.yaml")), false)
            .await
            .expect("accepted");
        assert_eq!(accepted["kind"], "deploy");
        s.succeed(&accepted).await;
    }

    assert_eq!(
        kinds(&s.objects("demo", "hello").await),
        [
            "Deployment/hello-hello-world",
            "PropagationPolicy/hello-hello-world",
            "Service/hello-hello-world"
        ]
    );
    assert_eq!(
        kinds(&s.objects("demo", "offload").await),
        [
            "Deployment/offload-ml-inference",
            "Deployment/offload-web-frontend",
            "PropagationPolicy/offload-ml-inference",
            "PropagationPolicy/offload-ml-inference-import",
            "PropagationPolicy/offload-web-frontend",
            "Service/offload-ml-inference",
            "Service/offload-web-frontend",
            "ServiceExport/offload-ml-inference",
            "ServiceImport/offload-ml-inference",
        ]
    );
    // The conditional VO waits for its event: nothing of it exists yet.
    let detection = kinds(&s.objects("demo", "detection").await);
    assert_eq!(detection.len(), 9, "{detection:?}");
    assert!(
        detection.iter().all(|o| !o.contains("compression-vo")),
        "{detection:?}"
    );

    let offload: Value = s.client.get("/graphs/offload").await.unwrap();
    assert_eq!(offload["status"], "Running");
    assert_eq!(
        offload["placement"]["ml-inference"], "cloud-gpu",
        "the GPU service needs the GPU cluster"
    );
    for svc in offload["services"].as_array().unwrap() {
        assert_eq!(svc["status"], "Running", "{svc}");
        assert_eq!(svc["ready"], svc["replicas"]);
    }
    let det: Value = s.client.get("/graphs/detection").await.unwrap();
    let vo = det["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "compression-vo")
        .unwrap();
    assert_eq!(
        (vo["status"].as_str(), vo["cluster"].is_null()),
        (Some("Pending"), true)
    );
    let history: Vec<Value> = s.client.get("/graphs/offload/history").await.unwrap();
    let kinds_logged: Vec<&str> = history.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds_logged, ["deploy", "placement"], "newest first");
    assert!(
        history[1]["outcome"]["explanations"]
            .as_array()
            .is_some_and(|e| e.len() == 2)
    );
    let jobs: Vec<Value> = s.client.get("/graphs/offload/jobs").await.unwrap();
    let mut kinds_run: Vec<&str> = jobs.iter().filter_map(|j| j["kind"].as_str()).collect();
    kinds_run.sort();
    assert_eq!(
        kinds_run,
        ["deploy"],
        "with no Grafana and no rules target there is nowhere to publish: no publish job \
         (tests/it/monitoring.rs has the stack that publishes)"
    );

    // Re-running a deploy changes nothing: same objects.
    let before = s.objects("demo", "offload").await;
    let again = s
        .client
        .deploy("demo", example("offload.yaml"), false)
        .await
        .unwrap();
    s.succeed(&again).await;
    assert_eq!(s.objects("demo", "offload").await, before);
    let offload: Value = s.client.get("/graphs/offload").await.unwrap();
    assert_eq!(offload["revision"], 2);

    // Stop removes the workloads but keeps the graph; start brings them back.
    let stop: Value = s.client.post("/graphs/hello/stop").await.unwrap();
    s.succeed(&stop).await;
    assert!(s.objects("demo", "hello").await.is_empty());
    let hello: Value = s.client.get("/graphs/hello").await.unwrap();
    assert_eq!(
        (hello["status"].as_str(), hello["desired"].as_str()),
        (Some("Stopped"), Some("stopped"))
    );
    let start: Value = s.client.post("/graphs/hello/start").await.unwrap();
    s.succeed(&start).await;
    assert_eq!(s.objects("demo", "hello").await.len(), 3);
    let hello: Value = s.client.get("/graphs/hello").await.unwrap();
    assert_eq!(hello["status"], "Running");

    // Remove leaves nothing behind, and frees the clusters' capacity.
    for name in ["hello", "offload", "detection"] {
        let rm: Value = s.client.delete(&format!("/graphs/{name}")).await.unwrap();
        s.succeed(&rm).await;
        assert!(
            s.objects("demo", name).await.is_empty(),
            "{name} left objects"
        );
        let err = s
            .client
            .get::<Value>(&format!("/graphs/{name}"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, smo_sdk::Error::Api { status: 404, .. }),
            "{err}"
        );
    }
    let history: Vec<Value> = s.client.get("/graphs/offload/history").await.unwrap();
    assert_eq!(
        history[0]["kind"], "remove",
        "the decision log outlives the graph"
    );
    for c in s.federation.clusters(chrono::Utc::now()).await.unwrap() {
        assert_eq!(
            c.cpu_free, c.cpu_allocatable,
            "{} still has capacity allocated",
            c.name
        );
    }
}

#[tokio::test]
async fn an_invalid_descriptor_is_refused_with_every_problem_and_nothing_is_stored() {
    let s = Stack::start().await;
    let bad = br#"
hdaGraph:
  id: Bad_Name
  version: "1.0.0"
  services:
    - id: a
      deployment:
        trigger: {auto: {dependencies: [ghost]}}
        intent: {compute: {cpu: huge, ram: small, storage: small, gpu: {enabled: false}}}
      artifact: {image: x}
"#;
    let err = s
        .client
        .deploy("demo", bad.to_vec(), false)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
    let problems = err.problem_lines();
    let joined = problems.join("\n");
    for path in [
        "id",
        "services[0].deployment.trigger.auto.dependencies[0]",
        "services[0].deployment.intent.compute.cpu",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(&format!("{path}:"))),
            "no problem at {path}:\n{joined}"
        );
    }
    assert!(err.is_bad_input(), "the CLI exits 2 for it");

    // Hostile bodies: not UTF-8, too large, a bad project name.
    let err = s
        .client
        .deploy("demo", vec![0xff, 0xfe, 0x00, 0x80], false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, smo_sdk::Error::Api { status: 422, .. }),
        "{err}"
    );
    let err = s
        .client
        .deploy("demo", vec![b'a'; 11 * 1024 * 1024], false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, smo_sdk::Error::Api { status: 413, .. }),
        "{err}"
    );
    let err = s
        .client
        .deploy("Not_A_Project", example("hello.yaml"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, smo_sdk::Error::Api { status: 422, .. } if err.problem_lines()[0].starts_with("project:")),
        "{err}"
    );

    let graphs: Vec<Value> = s.client.get("/graphs").await.unwrap();
    assert!(graphs.is_empty());
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM smo_jobs.jobs")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "nothing enqueued for invalid input");
    // Unknown graph and job ids are problem documents too.
    let err = s.client.get::<Value>("/jobs/not-a-uuid").await.unwrap_err();
    assert!(
        matches!(err, smo_sdk::Error::Api { status: 400, .. }),
        "{err}"
    );
    let err = s
        .client
        .post::<Value>("/graphs/nope/stop")
        .await
        .unwrap_err();
    assert!(
        matches!(err, smo_sdk::Error::Api { status: 404, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_dry_run_shows_placement_and_objects_and_changes_nothing() {
    let s = Stack::start().await;
    // Clusters come from a sync job (the API never talks to Karmada).
    let sync: Value = s.client.post("/clusters/sync").await.unwrap();
    s.succeed(&sync).await;
    let clusters: Vec<Value> = s.client.get("/clusters").await.unwrap();
    assert_eq!(clusters.len(), 3);

    let plan = s
        .client
        .deploy("demo", example("offload.yaml"), true)
        .await
        .unwrap();
    assert_eq!(plan["placement"]["ml-inference"], "cloud-gpu");
    assert_eq!(plan["objects"].as_array().unwrap().len(), 9);
    assert!(
        plan["solution"]["explanations"][0]["summary"]
            .as_str()
            .is_some()
    );
    let graphs: Vec<Value> = s.client.get("/graphs").await.unwrap();
    assert!(graphs.is_empty(), "a dry run stores nothing");
    assert!(
        s.objects("demo", "offload").await.is_empty(),
        "a dry run applies nothing"
    );
}

#[tokio::test]
async fn metrics_show_jobs_queue_depth_and_api_latency() {
    let s = Stack::start_with(false, smo_sim::SimConfig::demo()).await;
    // No worker runs: the deploy job waits, and the queue depth says so.
    s.client
        .deploy("demo", example("hello.yaml"), false)
        .await
        .unwrap();
    let _: Value = s.client.get("/graphs/hello").await.unwrap();
    let text = reqwest::get(format!("{}/metrics", s.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("smo_queue_depth{kind=\"deploy\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("smo_jobs{kind=\"deploy\",state=\"queued\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("smo_jobs_enqueued_total{kind=\"deploy\"} 1\n"),
        "the API counts what it enqueued: {text}"
    );
    assert!(
        !text.contains("smo_jobs_started_total{kind=\"deploy\"}"),
        "nothing ran in this process: {text}"
    );
    assert!(text.contains("smo_http_request_duration_seconds_count{method=\"GET\",route=\"/graphs/{name}\",status=\"200\"} 1\n"), "{text}");
    assert!(
        text.contains("route=\"/project/{project}/graphs\",status=\"202\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_configured_token_guards_every_route_but_health_checks() {
    smo::install_crypto_provider();
    let db = crate::support::test_db().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(smo::server::serve_api_on(
        db.pool.clone(),
        listener,
        Some("s3cret".into()),
        Default::default(),
        Default::default(),
        None,
        stop.clone(),
    ));
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(up, "the API never answered /healthz without a token");
    let r = http.get(format!("{base}/graphs")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
        "a 401 says which scheme it wants"
    );
    // The scheme is case-insensitive (RFC 9110).
    let r = http
        .get(format!("{base}/graphs"))
        .header("authorization", "bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/graphs"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let client =
        smo_sdk::Client::with_config(smo_sdk::Config::new(&base).token(Some("s3cret".into())));
    let graphs = client.list_graphs(None, None).await.unwrap();
    assert!(graphs.is_empty());
    stop.cancel();
}

/// An Alertmanager webhook body with one alert of graph `guarded`'s `failover` service.
fn notification(event: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"version": "4", "status": status, "alerts": [
        {"status": status, "labels": {"alertname": event, "graph": "guarded", "service": "failover"}}
    ]}))
    .unwrap()
}

/// Deploys graph `guarded` (a `condition: ALL` service) into project demo.
async fn deploy_guarded(s: &Stack) -> Value {
    s.client
        .deploy(
            "demo",
            crate::support::fixture("hdag/all-events.yaml"),
            false,
        )
        .await
        .unwrap()
}

/// Posts [`notification`] through the SDK; the webhook's answer.
async fn notify(s: &Stack, event: &str, status: &str) -> smo_sdk::AlertsAccepted {
    s.client
        .post_alerts(notification(event, status))
        .await
        .unwrap()
}

async fn failover_status(s: &Stack) -> String {
    let g = s.client.get_graph("guarded").await.unwrap();
    g.services
        .iter()
        .find(|x| x.name == "failover")
        .map(|x| x.status.clone())
        .unwrap()
}

#[tokio::test]
async fn a_condition_all_service_deploys_only_while_every_event_fires() {
    let s = Stack::start().await;
    let accepted = deploy_guarded(&s).await;
    s.succeed(&accepted).await;
    assert_eq!(failover_status(&s).await, "Pending");

    // One event alone is recorded but deploys nothing.
    let a = notify(&s, "web-slow", "firing").await;
    assert!(a.jobs.is_empty(), "{a:?}");
    assert_eq!(a.waiting, ["guarded/failover: web-slow"]);
    // It resolves; then the other event fires: still not both at once.
    let a = notify(&s, "web-slow", "resolved").await;
    assert_eq!((a.firing, a.resolved, a.jobs.len()), (0, 1, 0), "{a:?}");
    let a = notify(&s, "web-erroring", "firing").await;
    assert_eq!(a.waiting, ["guarded/failover: web-erroring"], "{a:?}");
    assert!(a.jobs.is_empty());
    // An alert that is no event of the service is ignored.
    let a = notify(&s, "unrelated", "firing").await;
    assert_eq!((a.ignored, a.jobs.len()), (1, 0), "{a:?}");
    assert_eq!(failover_status(&s).await, "Pending");
    assert!(
        !s.objects("demo", "guarded")
            .await
            .iter()
            .any(|(_, n)| n.contains("failover")),
        "nothing of failover is applied yet"
    );

    // Both firing together: deployed, once.
    let a = notify(&s, "web-slow", "firing").await;
    assert_eq!(a.jobs.len(), 1, "{a:?}");
    let job = serde_json::to_value(&a.jobs[0]).unwrap();
    s.succeed(&job).await;
    assert_ne!(failover_status(&s).await, "Pending");
    assert!(
        s.objects("demo", "guarded")
            .await
            .iter()
            .any(|(_, n)| n.contains("failover")),
        "failover's objects are applied"
    );
    let again = notify(&s, "web-slow", "firing").await;
    assert_eq!((again.ignored, again.jobs.len()), (1, 0), "{again:?}");
    let history = s.client.graph_history("guarded", None).await.unwrap();
    assert!(
        history
            .iter()
            .any(|d| d.kind == "deploy-conditional" && d.message.contains("web-slow fired")),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_condition_all_job_rechecks_events_that_resolved_after_it_was_enqueued() {
    // No worker yet: the deploy and the deploy-conditional jobs wait in the queue.
    let s = Stack::start_with(false, smo_sim::SimConfig::demo()).await;
    let run_jobs = || async {
        let registry = smo::reconcile::registry(smo::reconcile::App {
            pool: s.db.pool.clone(),
            federation: Some(s.federation.clone()),
            monitoring: Default::default(),
            helm: None,
            failover: Default::default(),
        });
        smo_jobs::testing::work_until_idle(
            &s.db.queue(),
            registry,
            smo_jobs::testing::fast_worker_config("w-all"),
        )
        .await
        .unwrap();
    };
    deploy_guarded(&s).await;
    run_jobs().await;
    notify(&s, "web-slow", "firing").await;
    let both = notify(&s, "web-erroring", "firing").await;
    assert_eq!(both.jobs.len(), 1, "{both:?}");
    // Enqueued while both fired; one resolves before a worker gets to it.
    notify(&s, "web-erroring", "resolved").await;
    run_jobs().await;
    assert_eq!(failover_status(&s).await, "Pending");
    let history = s.client.graph_history("guarded", None).await.unwrap();
    assert!(
        history.iter().any(|d| d.kind == "deploy-conditional"
            && d.message.contains("web-erroring not firing any more")),
        "{history:?}"
    );
}

/// `GET /graphs/{name}` keeps rendered answers by a version stamp of the graph's rows: any write,
/// even one that moves no timestamp (as the dashboard publisher's does not), shows at once.
#[tokio::test]
async fn a_graph_read_shows_every_write_even_those_that_move_no_timestamp() {
    let s = Stack::start().await;
    let a = s
        .client
        .deploy("demo", example("hello.yaml"), false)
        .await
        .unwrap();
    s.succeed(&a).await;
    let before: Value = s.client.get("/graphs/hello").await.unwrap();
    // Twice, so the second read is served from what the first rendered.
    assert_eq!(
        s.client.get::<Value>("/graphs/hello").await.unwrap(),
        before
    );
    sqlx::query("UPDATE smo.graphs SET dashboards = '{\"extra\": \"http://grafana/d/x\"}' WHERE name = 'hello'")
        .execute(&s.db.pool)
        .await
        .unwrap();
    let g: Value = s.client.get("/graphs/hello").await.unwrap();
    assert_eq!(g["dashboards"]["extra"], "http://grafana/d/x", "{g}");
    sqlx::query("UPDATE smo.services SET replicas = 7 WHERE name = 'hello-world'")
        .execute(&s.db.pool)
        .await
        .unwrap();
    let g: Value = s.client.get("/graphs/hello").await.unwrap();
    assert_eq!(g["services"][0]["replicas"], 7, "{g}");
    // A removed graph is gone, not served from memory.
    sqlx::query("DELETE FROM smo.graphs WHERE name = 'hello'")
        .execute(&s.db.pool)
        .await
        .unwrap();
    assert!(s.client.get::<Value>("/graphs/hello").await.is_err());
}

/// Pages of `GET /graphs` are kept by a stamp of the rows they cover, as a graph's detail is: a
/// write to a listed graph, a graph entering the page and one leaving it all show at once, and a
/// caller scoped to a project is never served another scope's page.
#[tokio::test]
async fn a_graph_page_shows_every_write_to_its_rows_at_once() {
    let s = Stack::start().await;
    for (project, id) in [("a", "g1"), ("a", "g3"), ("b", "h1")] {
        s.client.deploy(project, tiny(id), false).await.unwrap();
    }
    let client = &s.client;
    let page = |path: &'static str| async move {
        let v: Vec<Value> = client.get(path).await.unwrap();
        v.iter()
            .map(|g| format!("{}/{} {}", g["project"], g["name"], g["version"]).replace('"', ""))
            .collect::<Vec<_>>()
    };
    let first = page("/graphs?limit=2").await;
    assert_eq!(first, ["a/g1 1.0.0", "a/g3 1.0.0"]);
    // Served again from what the first read rendered.
    assert_eq!(page("/graphs?limit=2").await, first);
    // A write that moves no timestamp.
    sqlx::query("UPDATE smo.graphs SET version = '9.9.9' WHERE name = 'g3'")
        .execute(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(page("/graphs?limit=2").await, ["a/g1 1.0.0", "a/g3 9.9.9"]);
    // A graph entering the page pushes the last one out.
    s.client.deploy("a", tiny("g2"), false).await.unwrap();
    assert_eq!(page("/graphs?limit=2").await, ["a/g1 1.0.0", "a/g2 1.0.0"]);
    // One leaving it lets the next one in.
    sqlx::query("DELETE FROM smo.graphs WHERE name = 'g1'")
        .execute(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(page("/graphs?limit=2").await, ["a/g2 1.0.0", "a/g3 9.9.9"]);
    assert_eq!(
        page("/project/b/graphs?limit=2").await,
        ["b/h1 1.0.0"],
        "another query is another page"
    );
}

/// A small graph named `id`.
fn tiny(id: &str) -> Vec<u8> {
    format!(
        "hdaGraph:\n  id: {id}\n  version: \"1.0.0\"\n  services:\n    - id: web\n      deployment:\n        \
         trigger: {{auto: {{dependencies: []}}}}\n        intent:\n          compute: {{cpu: 10m, ram: 16Mi, \
         storage: light, gpu: {{enabled: false}}}}\n      artifact:\n        image: ghcr.io/example/web:1\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn lists_page_by_project_and_name_following_their_next_links() {
    let s = Stack::start().await;
    for (project, id) in [
        ("b", "h1"),
        ("a", "g3"),
        ("a", "g1"),
        ("b", "h0"),
        ("a", "g2"),
    ] {
        s.client.deploy(project, tiny(id), false).await.unwrap();
    }
    let everything: Vec<Value> = s.client.get("/graphs").await.unwrap();
    let names = |page: &[Value]| -> Vec<String> {
        page.iter()
            .map(|g| {
                format!(
                    "{}/{}",
                    g["project"].as_str().unwrap(),
                    g["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names(&everything), ["a/g1", "a/g2", "a/g3", "b/h0", "b/h1"]);

    // Follow the Link headers from the first page of two to the end.
    let http = reqwest::Client::new();
    let mut next = Some("/graphs?limit=2".to_string());
    let (mut seen, mut pages) = (Vec::new(), 0);
    while let Some(path) = next.take() {
        let r = http.get(format!("{}{path}", s.api)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        next = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string())
            .map(|l| {
                assert!(l.ends_with(">; rel=\"next\""), "{l}");
                l[1..l.find('>').unwrap()].to_string()
            });
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(names(&page));
        pages += 1;
    }
    assert_eq!(seen, names(&everything), "every graph once, in order");
    assert_eq!(pages, 3, "2 + 2 + 1: the short page has no next link");
    let a: Vec<Value> = s
        .client
        .get("/project/a/graphs?limit=2&after=a%2Fg1")
        .await
        .unwrap();
    assert_eq!(names(&a), ["a/g2", "a/g3"]);

    // Bad paging parameters: 400 naming each, nothing listed.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=nope", "after"),
    ] {
        let r = http
            .get(format!("{}/graphs?{query}", s.api))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["problems"][0]["path"], field, "{problem}");
    }
}

/// A stored descriptor that no longer loads is smo's fault, said as such: the graph read answers
/// 500 naming the graph (it used to drop the error and answer a page without the reference's
/// fields), and a deploy job fails for good with the same cause instead of retrying.
#[tokio::test]
async fn a_stored_descriptor_that_does_not_load_is_an_internal_error_naming_the_graph() {
    let s = Stack::start().await;
    let sync: Value = s.client.post("/clusters/sync").await.unwrap();
    s.succeed(&sync).await;
    let accepted = s
        .client
        .deploy("demo", example("hello.yaml"), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    sqlx::query("UPDATE smo.graphs SET descriptor = '{\"id\": 5}' WHERE name = 'hello'")
        .execute(&s.db.pool)
        .await
        .unwrap();

    let e = s
        .client
        .get::<Value>("/graphs/hello")
        .await
        .expect_err("an unreadable graph is not served");
    assert_eq!(e.status(), Some(500));
    let problem = e.problem().expect("a problem document");
    assert_eq!(problem.r#type, "urn:smo:problem:internal");
    assert!(
        problem.detail.contains("\"hello\"") && problem.detail.contains("does not load"),
        "{}",
        problem.detail
    );

    let again: Value = s.client.post("/graphs/hello/start").await.unwrap();
    let job = s.wait_job(&again).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempt"], 1, "a permanent error is not retried: {job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not load"),
        "{job}"
    );
}

/// A deploy syncs the clusters before it places, so in a burst hundreds a second would rewrite
/// the same rows: a row differing only in free capacity waits until its sync is `settle` old,
/// while readiness, allocatable, labels and message changes land at once, and an explicit sync
/// (`settle` zero) always rewrites.
#[tokio::test]
async fn a_deploys_cluster_sync_rewrites_free_capacity_once_a_second_and_every_other_change_at_once()
 {
    use smo::store::{ClusterRecord, list_clusters, replace_clusters};
    use std::time::Duration;
    let s = Stack::start().await;
    let t0 = chrono::Utc::now();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let cluster = |name: &str, free: f64, ready: bool, ms: i64| ClusterRecord {
        name: smo::hdag::ClusterName::parse(name.to_string()).unwrap(),
        ready,
        cpu_allocatable: 8.0,
        cpu_free: free,
        memory_allocatable: 1 << 30,
        memory_free: 1 << 29,
        gpus: 0,
        labels: serde_json::json!({"zone": "a"}),
        message: None,
        synced_at: at(ms),
    };
    let settle = Duration::from_secs(1);
    let sync = |clusters: Vec<ClusterRecord>, settle: Duration| {
        let pool = s.db.pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            replace_clusters(&mut conn, &clusters, settle)
                .await
                .unwrap();
            list_clusters(&pool)
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.name.to_string(), c.cpu_free, c.ready))
                .collect::<Vec<_>>()
        }
    };
    let a = |free, ready| ("a".to_string(), free, ready);
    assert_eq!(
        sync(vec![cluster("a", 4.0, true, 0)], settle).await,
        [a(4.0, true)],
        "a new cluster is inserted"
    );
    assert_eq!(
        sync(vec![cluster("a", 3.0, true, 500)], settle).await,
        [a(4.0, true)],
        "free capacity alone waits until the row is a second old"
    );
    assert_eq!(
        sync(vec![cluster("a", 3.0, false, 600)], settle).await,
        [a(3.0, false)],
        "readiness lands at once"
    );
    assert_eq!(
        sync(vec![cluster("a", 2.0, false, 1700)], settle).await,
        [a(2.0, false)],
        "a row a second old takes the new free capacity"
    );
    assert_eq!(
        sync(vec![cluster("a", 1.0, false, 1800)], Duration::ZERO).await,
        [a(1.0, false)],
        "an explicit sync always rewrites"
    );
    assert_eq!(
        sync(vec![cluster("b", 6.0, true, 1900)], settle).await,
        [("b".to_string(), 6.0, true)],
        "a cluster gone from the federation leaves the table"
    );
}
