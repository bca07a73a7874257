//! The console in a real browser (Debian's chromium through chromedriver) against a whole stack on
//! the simulated federation, plus its guards seen from plain HTTP.

use std::time::Duration;

use crate::{
    stack::Stack,
    support::{browser::Browser, example},
};

const TOKEN: &str = "console-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_deploys_through_the_form_watches_it_run_stops_it_and_sees_the_queue()
{
    let stack = Stack::with_token(TOKEN).await;
    let b = Browser::start().await;
    let console = format!("{}/console", stack.api);

    // A browser at the root lands on the console, which asks for the token first.
    b.goto(&format!("{}/", stack.api)).await;
    assert!(
        b.url().await.ends_with("/console/login"),
        "{}",
        b.url().await
    );
    b.screenshot("01-sign-in").await;
    b.type_into("#token", "not-the-token").await;
    b.click_to_page("main form button[type=submit]").await;
    assert!(b.source().await.contains("That token is not valid here"));
    b.type_into("#token", TOKEN).await;
    b.click_to_page("main form button[type=submit]").await;
    assert_eq!(b.url().await, console, "{}", b.source().await);
    assert!(b.title().await.starts_with("Graphs"), "{}", b.title().await);
    assert!(!b.url().await.contains(TOKEN));

    // A validation error first: shown at its path, nothing stored.
    b.goto(&format!("{console}/deploy")).await;
    b.type_into("#project", "demo").await;
    let good = String::from_utf8(example("offload.yaml")).unwrap();
    let bad = good.replacen("cpu: small", "cpu: a-lot", 1);
    assert_ne!(good, bad);
    b.paste("#descriptor", &bad).await;
    b.click_to_page("#dry-run").await;
    let problems = b.text("#problems").await;
    assert!(problems.contains("compute.cpu"), "{problems}");
    assert!(b.source().await.contains("Nothing was stored"));
    b.screenshot("02-deploy-invalid").await;
    assert!(
        stack
            .client
            .list_graphs(None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // A dry run shows the placement (on the clusters last synced: the first GET /clusters syncs)
    assert_eq!(stack.client.list_clusters().await.unwrap().len(), 3);
    // A dry run shows the placement (the GPU service on the GPU cluster) and the objects.
    b.paste("#descriptor", &good).await;
    b.click_to_page("#dry-run").await;
    let placed = b.text("#dry-placement").await;
    assert!(placed.contains("ml-inference cloud-gpu"), "{placed}");
    assert!(b.source().await.contains("objects that would be applied"));
    b.screenshot("03-dry-run").await;
    assert!(
        stack
            .client
            .list_graphs(None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // Deploy: the browser follows to the graph's page, which reaches Running by itself.
    b.click_to_page("#deploy").await;
    assert!(
        b.url().await.ends_with("/console/graphs/offload"),
        "{}",
        b.url().await
    );
    b.wait_for("the graph running", 90, "data-status=\"Running\"", true)
        .await;
    let gpu = b.text("section[data-cluster=\"cloud-gpu\"]").await;
    assert!(gpu.contains("ml-inference"), "{gpu}");
    assert!(gpu.contains("GPU: this graph 1.0"), "{gpu}");
    let topology = b.source().await;
    assert!(topology.contains("web-frontend calls ml-inference"));
    assert!(
        topology.contains("data-kind=\"placement\""),
        "no decision log"
    );
    b.screenshot("04-graph").await;

    // Stop, through the confirmation step.
    b.click_to_page("a[href$=\"/confirm/stop\"]").await;
    assert!(b.title().await.starts_with("stop offload"));
    b.click_to_page("main form button.danger").await;
    b.wait_for("the graph stopped", 60, "data-status=\"Stopped\"", true)
        .await;
    b.screenshot("05-graph-stopped").await;

    // Live: a change made elsewhere shows up without a reload.
    stack.client.start_graph("offload").await.unwrap();
    b.wait_for(
        "the page to follow a start",
        60,
        "data-status=\"Running\"",
        false,
    )
    .await;

    // The list filters by status.
    b.goto(&format!("{console}?status=Running")).await;
    assert!(b.source().await.contains("data-graph=\"offload\""));
    b.screenshot("06-graphs").await;
    b.goto(&format!("{console}?status=Failed")).await;
    assert!(!b.source().await.contains("data-graph=\"offload\""));

    b.goto(&format!("{console}/clusters")).await;
    let gpu = b.text("section[data-cluster=\"cloud-gpu\"]").await;
    assert!(gpu.contains("offload / ml-inference"), "{gpu}");
    b.screenshot("07-clusters").await;

    // The queue counts the jobs the console caused.
    b.goto(&format!("{console}/queue")).await;
    for kind in ["deploy", "stop", "start"] {
        let n = b
            .text(&format!(
                "tr[data-kind=\"{kind}\"] td[data-state=\"succeeded\"]"
            ))
            .await;
        assert_eq!(n, "1", "{kind} jobs succeeded");
    }
    assert!(b.text("#workers").await.contains("it-"));
    b.screenshot("08-queue").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_needs_a_session_and_refuses_forms_from_other_sites() {
    let stack = Stack::with_token(TOKEN).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let console = format!("{}/console", stack.api);
    for path in ["", "/queue", "/clusters", "/graphs/x", "/deploy"] {
        let r = http.get(format!("{console}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/console/login");
    }
    // The API itself still wants the bearer token; an API client asking for the root is not
    // sent to the console.
    let r = http
        .get(format!("{}/graphs", stack.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(format!("{}/", stack.api)).send().await.unwrap();
    assert_ne!(r.status(), 303);

    let r = http
        .post(format!("{console}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds the token: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let r = http
        .get(format!("{console}/queue"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Deploy a graph through the API, then try to stop it from a foreign page.
    let a = stack
        .client
        .deploy("demo", example("hello.yaml"), false)
        .await
        .unwrap();
    stack.succeed(&a).await;
    let r = http
        .post(format!("{console}/graphs/hello/stop"))
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let g = stack.client.get_graph("hello").await.unwrap();
    assert_eq!(g.desired, "running", "a cross-site form changed the graph");
    // The same form from the console's own origin works.
    let r = http
        .post(format!("{console}/graphs/hello/stop"))
        .header("cookie", &session)
        .header("origin", stack.api.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let g = stack.client.get_graph("hello").await.unwrap();
    assert_eq!(g.desired, "stopped");

    // Cancel and retry from the queue page act on the job (a kind no worker runs stays queued).
    let queue = smo_jobs::Queue::new(stack.db.pool.clone());
    queue
        .enqueue_many(&[smo_jobs::NewJob {
            kind: "nobody-runs-this".into(),
            args: serde_json::json!({}),
            unique_key: None,
            max_attempts: 1,
            priority: 0,
            run_at: None,
        }])
        .await
        .unwrap();
    let job = queue
        .list(&smo_jobs::JobFilter {
            kind: Some("nobody-runs-this".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    for (action, state) in [("cancel", "cancelled"), ("retry", "queued")] {
        let r = http
            .post(format!("{console}/jobs/{}/{action}", job.id))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{action}");
        assert_eq!(queue.get(job.id).await.unwrap().state, state, "{action}");
    }

    // A wrong token in the form is a 401 page, not a session.
    let r = http
        .post(format!("{console}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", "nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
}
