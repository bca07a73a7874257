//! A worker process killed with SIGKILL in the middle of a deploy: another worker finishes the
//! job, and the federation ends with exactly the objects of the graph — none lost, none twice.

use std::{fmt::Write, time::Duration};

use serde_json::Value;
use smo_sim::SimConfig;

use crate::stack::{Stack, smo_process};

/// A graph `wide` of `n` independent services (3 objects each).
pub(crate) fn many_services(n: usize) -> Vec<u8> {
    let mut y = String::from(
        "hdaGraph:\n  imVersion: 0.4.0\n  id: wide\n  version: \"1.0.0\"\n  services:\n",
    );
    for i in 0..n {
        let _ = write!(
            y,
            "    - id: s{i}\n      deployment:\n        trigger: {{auto: {{dependencies: []}}}}\n        intent:\n          \
             compute: {{cpu: 100m, ram: 64Mi, storage: light, gpu: {{enabled: false}}}}\n      artifact:\n        \
             image: ghcr.io/example/s{i}:1\n        ports: [{{port: 8080}}]\n"
        );
    }
    y.into_bytes()
}

#[tokio::test]
async fn a_worker_killed_mid_deploy_is_replaced_and_the_objects_end_up_exactly_once() {
    let sim = SimConfig {
        write_latency_ms: 60,
        ..SimConfig::demo()
    };
    let s = Stack::start_with(false, sim).await;
    let home = std::env::temp_dir().join(format!("{}-home", s.db.name));
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = s.kubeconfig.to_string_lossy().to_string();
    let worker = |name: &str| {
        smo_process(
            &[
                "run",
                "--role",
                "worker",
                "--database-url",
                &s.db.url,
                "--karmada-kubeconfig",
                &kubeconfig,
                "--heartbeat-interval",
                "200ms",
                "--worker-prefix",
                name,
            ],
            &home,
        )
        .spawn()
        .expect("worker process starts")
    };

    let accepted = s
        .client
        .deploy("crash", many_services(12), false)
        .await
        .unwrap();
    let mut first = worker("first");
    let mut seen = 0;
    for _ in 0..400 {
        seen = s.objects("crash", "wide").await.len();
        if seen >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        (4..36).contains(&seen),
        "kill should land mid-deploy, saw {seen} objects"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let mut second = worker("second");
    let job = s.wait_job(&accepted).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(job["state"], "succeeded", "{job}");
    // Run again after the first worker's lease lapsed, on the same attempt: a job lost to a dead
    // worker keeps the attempts meant for its own errors (the loss is counted apart).
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(job["errors"][0]["lost"], true, "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("was lost"),
        "{job}"
    );

    let objects = s.objects("crash", "wide").await;
    let mut expected: Vec<(String, String)> = (0..12)
        .flat_map(|i| {
            ["Deployment", "PropagationPolicy", "Service"]
                .map(|k| (k.to_string(), format!("wide-s{i}")))
        })
        .collect();
    expected.sort();
    assert_eq!(objects, expected);
    let g: Value = s.client.get("/graphs/wide").await.unwrap();
    assert_eq!(g["status"], "Running");
    let decisions: Vec<Value> = s.client.get("/graphs/wide/history").await.unwrap();
    assert_eq!(
        decisions.iter().filter(|d| d["kind"] == "deploy").count(),
        1,
        "the crashed attempt recorded nothing"
    );
    let _ = std::fs::remove_dir_all(&home);
}
