//! apalis-board (apalis's own queue UI and API, served by `smo-admin board`) over smo's job
//! table: its API answers from the management traits of `PgBackend`, and its UI renders the
//! queues in a real browser.

use serde_json::{Value, json};
use smo_jobs::{JobState, NewJob, testing::TestDb};
use tokio_util::sync::CancellationToken;

use crate::support::browser::Browser;

#[tokio::test]
async fn apalis_board_lists_pushes_and_shows_smo_jobs_in_a_real_browser() {
    smo::install_crypto_provider();
    let db = TestDb::new().await;
    let q = db.queue();
    let job = |kind: &str, args: Value| NewJob {
        kind: kind.into(),
        args,
        unique_key: None,
        max_attempts: 3,
        priority: 0,
        run_at: None,
    };
    q.enqueue_many(&[
        job("deploy", json!({"graph": "shop"})),
        job("deploy", json!({"graph": "blog"})),
        job("publish-dashboards", json!({"graph": "shop"})),
    ])
    .await
    .unwrap();
    sqlx::query("UPDATE smo_jobs.jobs SET state = 'dead', finished_at = now() WHERE args->>'graph' = 'blog'")
        .execute(&db.pool)
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(smo_jobs::board::serve(listener, q.clone(), stop.clone()));
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{base}/api/v1{path}"));
        async move {
            let r = http.get(&url).send().await.unwrap();
            assert!(r.status().is_success(), "GET {url}: {}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };

    // One apalis queue per kind, the built-in ones included.
    let queues = get("/queues").await;
    let names: Vec<&str> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["deploy", "jobs.prune", "noop", "publish-dashboards"]
    );
    // A queue's tasks, filtered by apalis status (Failed = dead), and one task by id.
    let deploys = get("/queues/deploy/tasks?page=1").await;
    assert_eq!(deploys.as_array().unwrap().len(), 2, "{deploys}");
    let failed = get("/queues/deploy/tasks?page=1&status=Failed").await;
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["args"]["graph"], "blog", "{failed}");
    let id = q
        .list(&smo_jobs::JobFilter {
            kind: Some("publish-dashboards".into()),
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .id;
    let one = get(&format!("/queues/publish-dashboards/tasks/{id}")).await;
    assert_eq!(one["args"]["graph"], "shop", "{one}");

    // Pushing from the board enqueues a job of that kind through the backend's task sink.
    let r = http
        .put(format!("{base}/api/v1/queues/noop/tasks"))
        .json(&json!({"note": "pushed from apalis-board"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let noops = q
        .list(&smo_jobs::JobFilter {
            kind: Some("noop".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(noops.len(), 1);
    assert_eq!(
        (noops[0].job_state(), noops[0].args["note"].as_str()),
        (Some(JobState::Queued), Some("pushed from apalis-board"))
    );
    let overview = get("/overview").await;
    let queued = overview
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == "PENDING_JOBS")
        .unwrap();
    assert_eq!(queued["value"], "3", "{overview}");

    // The UI itself (WebAssembly, shipped inside apalis-board-api) renders our queues.
    let b = Browser::start().await;
    b.goto(&format!("{base}/")).await;
    let page = b
        .wait_for("the board's queue list", 60, "publish-dashboards", false)
        .await;
    assert!(page.contains("deploy"), "{page}");
    b.screenshot("board-01-overview").await;
    b.goto(&format!("{base}/queues/deploy")).await;
    b.wait_for("the deploy queue's tabs", 60, "Failed", false)
        .await;
    b.click_text("Failed").await;
    let dead = q
        .list(&smo_jobs::JobFilter {
            state: Some(JobState::Dead),
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .id
        .to_string();
    b.wait_for("the deploy queue's dead job", 60, &dead[..13], false)
        .await;
    b.screenshot("board-02-failed-tab").await;
    b.quit().await;
    stop.cancel();
    server.await.unwrap().unwrap();
}
