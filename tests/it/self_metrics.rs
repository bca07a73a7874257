//! smo's own /metrics scraped by the real Prometheus: `smo run --role api` and
//! `smo run --role worker --metrics-listen …` as separate processes, the way the chart runs them.

use std::process::Stdio;

use serde_json::Value;
use smo_sim::{Sim, SimConfig};

use crate::{
    stack::smo_process,
    support::{Proc, example, free_port, spawn_prometheus, test_db, until, wait_http},
};

/// The value of a PromQL instant query with exactly one series, if there is one.
async fn query_one(prom: &str, q: &str) -> Option<f64> {
    let v: Value = reqwest::Client::new()
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

fn role(args: &[&str], db_url: &str, home: &std::path::Path) -> Proc {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    Proc(
        smo_process(&all, home)
            .env("SMO_DATABASE_URL", db_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smo run starts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_queue_depth_while_jobs_wait_and_worker_counters_after() {
    smo::install_crypto_provider();
    let db = test_db().await;
    let home = std::env::temp_dir().join(format!("{}-self", db.name));
    std::fs::create_dir_all(&home).unwrap();
    let (sim_addr, _sim) = Sim::new(SimConfig::demo())
        .spawn_on("127.0.0.1:0")
        .expect("sim starts");
    let kubeconfig = home.join("karmada.kubeconfig");
    std::fs::write(
        &kubeconfig,
        smo_sim::kubeconfig_yaml(&format!("http://{sim_addr}")),
    )
    .unwrap();

    // The API alone: it records and enqueues, nothing runs the jobs yet.
    let (api_port, worker_port) = (free_port(), free_port());
    let api = format!("http://127.0.0.1:{api_port}");
    let _api = role(
        &[
            "--role",
            "api",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
        ],
        &db.url,
        &home,
    );
    wait_http(&format!("{api}/healthz")).await;
    let (_prom, prom) = spawn_prometheus(
        &home.join("prometheus"),
        &format!(
            "global: {{scrape_interval: 1s}}\n\
             scrape_configs:\n\
             - {{job_name: smo-api, static_configs: [{{targets: ['127.0.0.1:{api_port}']}}]}}\n\
             - {{job_name: smo-worker, static_configs: [{{targets: ['127.0.0.1:{worker_port}']}}]}}\n"
        ),
    );
    wait_http(&format!("{prom}/-/ready")).await;

    for graph in ["hello.yaml", "offload.yaml"] {
        let r = reqwest::Client::new()
            .post(format!("{api}/project/demo/graphs"))
            .header("content-type", "application/yaml")
            .body(example(graph))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    }
    until("Prometheus to see two deploy jobs waiting", 60, || async {
        query_one(&prom, "smo_queue_depth{job=\"smo-api\",kind=\"deploy\"}").await == Some(2.0)
    })
    .await;
    assert_eq!(
        query_one(
            &prom,
            "smo_jobs_enqueued_total{job=\"smo-api\",kind=\"deploy\"}"
        )
        .await,
        Some(2.0),
        "the API process counted what it enqueued"
    );
    assert!(
        query_one(
            &prom,
            "smo_queue_oldest_seconds{job=\"smo-api\",kind=\"deploy\"}"
        )
        .await
        .is_some_and(|age| age > 0.0),
        "the oldest waiting job has an age"
    );
    assert!(
        query_one(
            &prom,
            "sum(smo_http_request_duration_seconds_count{job=\"smo-api\",route=\"/project/{project}/graphs\",status=\"202\"})"
        )
        .await
            == Some(2.0),
        "request latency is recorded by route template and status"
    );

    // A worker process with its own metrics endpoint drains the queue.
    let _worker = role(
        &[
            "--role",
            "worker",
            "--metrics-listen",
            &format!("127.0.0.1:{worker_port}"),
            "--karmada-kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &db.url,
        &home,
    );
    until(
        "Prometheus to see both deploys succeed on the worker",
        90,
        || async {
            query_one(
                &prom,
                "smo_jobs_succeeded_total{job=\"smo-worker\",kind=\"deploy\"}",
            )
            .await
                == Some(2.0)
        },
    )
    .await;
    until("the queue depth to fall back to zero", 30, || async {
        query_one(&prom, "smo_queue_depth{job=\"smo-api\",kind=\"deploy\"}").await == Some(0.0)
    })
    .await;
    assert_eq!(
        query_one(
            &prom,
            "smo_jobs_started_total{job=\"smo-worker\",kind=\"deploy\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        query_one(
            &prom,
            "smo_job_duration_seconds_count{job=\"smo-worker\",kind=\"deploy\",outcome=\"succeeded\"}"
        )
        .await,
        Some(2.0),
        "one duration observation per attempt"
    );
    assert!(
        query_one(
            &prom,
            "sum(smo_solve_duration_seconds_count{job=\"smo-worker\",problem=\"placement\",outcome=\"ok\"})"
        )
        .await
        .is_some_and(|n| n >= 2.0),
        "each deploy solved a placement"
    );
    assert_eq!(
        query_one(&prom, "smo_workers_alive{job=\"smo-api\"}").await,
        Some(1.0)
    );

    // Every query of smo's own dashboard is valid PromQL for the real Prometheus, and the
    // panels over series that exist by now return data.
    let dashboard = smo::monitoring::render_smo_dashboard();
    for q in smo::monitoring::dashboard_queries(&dashboard.model) {
        let v: Value = reqwest::Client::new()
            .get(format!("{prom}/api/v1/query"))
            .query(&[("query", q.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "success", "{q}: {v}");
        if q.starts_with("max by (kind) (smo_queue_depth)") || q == "max(smo_workers_alive)" {
            assert!(
                v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()),
                "{q} returns no data"
            );
        }
    }
}

/// `name{label="value"} N` from an exposition text; 0 when the series is absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scheduler_processes_fire_each_cron_slot_once_between_them() {
    smo::install_crypto_provider();
    let db = test_db().await;
    let home = std::env::temp_dir().join(format!("{}-cron", db.name));
    std::fs::create_dir_all(&home).unwrap();
    let started = std::time::Instant::now();
    let ports = [free_port(), free_port()];
    let _schedulers: Vec<Proc> = ports
        .iter()
        .map(|port| {
            role(
                &[
                    "--role",
                    "scheduler",
                    "--scaling-interval",
                    "1s",
                    "--metrics-listen",
                    &format!("127.0.0.1:{port}"),
                ],
                &db.url,
                &home,
            )
        })
        .collect();
    for port in ports {
        wait_http(&format!("http://127.0.0.1:{port}/healthz")).await;
    }
    let fired = || async {
        let mut total = 0.0;
        for port in ports {
            let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            total += sample(&text, "smo_cron_fired_total{entry=\"scale-fanout\"}");
        }
        total
    };
    until("the schedulers to fire eight slots", 60, || async {
        fired().await >= 8.0
    })
    .await;
    let total = fired().await;
    // Every second is one slot of `*/1 * * * * *`. Both processes claim from the same cron row,
    // so between them they fire at most one job per second that has passed (plus the first);
    // duplicated claims would come near twice that.
    let seconds = started.elapsed().as_secs_f64().ceil();
    assert!(
        total <= seconds + 1.0,
        "{total} slots fired in {seconds} s by two schedulers"
    );
}
