//! The `smo` command line against a running API: exit codes, one-line errors, `--wait`,
//! `--output json`.

use std::process::Output;

use serde_json::Value;

use crate::stack::{Stack, smo_process};

fn run(s: &Stack, home: &std::path::Path, args: &[&str]) -> Output {
    let mut full = vec!["--api-url", s.api.as_str()];
    full.extend_from_slice(args);
    smo_process(&full, home).output().expect("smo runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_deploys_describes_and_removes_with_clear_exit_codes() {
    let s = Stack::start().await;
    let home = std::env::temp_dir().join(format!("{}-cli", s.db.name));
    std::fs::create_dir_all(&home).unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/graphs/hello.yaml");
    let h = home.clone();

    let out = tokio::task::block_in_place(|| {
        run(
            &s,
            &h,
            &["graph", "deploy", fixture, "--project", "cli", "--wait"],
        )
    });
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("succeeded"),
        "{}",
        text(&out.stdout)
    );

    let out = tokio::task::block_in_place(|| run(&s, &h, &["graph", "describe", "hello"]));
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("status:      Running"), "{stdout}");
    assert!(
        stdout.contains("hello-world") && stdout.contains("placement"),
        "{stdout}"
    );

    let out = tokio::task::block_in_place(|| run(&s, &h, &["graph", "list", "--output", "json"]));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json list");
    assert_eq!(list[0]["name"], "hello");

    // Invalid input: exit 2 and the problems, nothing stored.
    let bad = home.join("bad.yaml");
    std::fs::write(&bad, "hdaGraph:\n  id: x\n  version: '1'\n  services: []\n").unwrap();
    let out = tokio::task::block_in_place(|| {
        run(
            &s,
            &h,
            &["graph", "deploy", bad.to_str().unwrap(), "-p", "cli"],
        )
    });
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("error: the descriptor is invalid"),
        "{}",
        text(&out.stderr)
    );

    // An unknown graph: exit 1, one line.
    let out = tokio::task::block_in_place(|| run(&s, &h, &["graph", "stop", "ghost"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );

    let out = tokio::task::block_in_place(|| run(&s, &h, &["graph", "remove", "hello", "--wait"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(s.objects("cli", "hello").await.is_empty());

    // No API at all: exit 1 with a hint.
    let out = smo_process(&["--api-url", "http://127.0.0.1:9", "graph", "list"], &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach smo"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn placement_solve_answers_what_ifs_and_refuses_bad_problems() {
    let home = std::env::temp_dir().join(format!("smo-solve-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let fx = |f: &str| {
        format!(
            "{}/tests/fixtures/placement/{f}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let out = smo_process(
        &[
            "placement",
            "solve",
            "-i",
            &fx("example.json"),
            "-o",
            "json",
        ],
        &home,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sol: Value = serde_json::from_slice(&out.stdout).expect("json solution");
    assert_eq!(sol["status"]["kind"], "optimal", "{sol}");
    assert_eq!(
        sol["moved"][0]["service"], "api",
        "the service on the not-ready cluster moves"
    );
    assert_eq!(sol["placement"].as_array().unwrap().len(), 4);

    let out = smo_process(&["placement", "solve", "-i", &fx("invalid.json")], &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("clusters[0].cpu"),
        "{}",
        text(&out.stderr)
    );

    let out = smo_process(
        &["placement", "solve", "-i", &fx("infeasible-gpu.json")],
        &home,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs a GPU"),
        "{}",
        text(&out.stderr)
    );

    let out = smo_process(&["placement", "solve", "-i", "/nonexistent.json"], &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn run_refuses_an_unusable_listen_address_before_touching_anything() {
    let home = std::env::temp_dir().join(format!("smo-listen-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    // A database that does not exist: the address is checked first, so it is never reached.
    let unreachable_db = "postgres://nobody@127.0.0.1:9/none";
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    for (args, expected) in [
        (
            vec!["run", "--role", "worker", "--metrics-listen", "nonsense"],
            "cannot listen on nonsense for metrics",
        ),
        (
            vec!["run", "--role", "api", "--listen", taken_addr.as_str()],
            "for the API",
        ),
    ] {
        let out = smo_process(&args, &home)
            .env("SMO_DATABASE_URL", unreachable_db)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(expected),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("database"),
            "{args:?} reached the database: {err}"
        );
    }
    drop(taken);
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test]
async fn logs_are_json_lines_when_asked_and_plain_text_otherwise() {
    let db = crate::support::test_db().await;
    let home = std::env::temp_dir().join(format!("{}-logs", db.name));
    std::fs::create_dir_all(&home).unwrap();
    let migrate = |format: &str| {
        smo_process(&["migrate"], &home)
            .env("SMO_DATABASE_URL", &db.url)
            .env("RUST_LOG", "info")
            .env("SMO_LOG_FORMAT", format)
            .output()
            .unwrap()
    };
    let out = migrate("json");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "migrate logged nothing at info");
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert!(v["message"].is_string(), "{line}");
    }
    // Text (the default): no JSON, and no colour codes when stderr is not a terminal.
    let out = migrate("text");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(" INFO "), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.starts_with('{'),
        "{stderr}"
    );
    let out = migrate("yaml");
    assert!(
        text(&out.stderr).contains("SMO_LOG_FORMAT=\"yaml\" is not text or json"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_readiness_workers_and_waiting_jobs_with_its_exit_code() {
    let home = std::env::temp_dir().join(format!("smo-status-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    // No worker: the deploy waits, and status says why smo is not healthy.
    let s = Stack::start_with(false, smo_sim::SimConfig::demo()).await;
    s.client
        .deploy("demo", crate::support::example("hello.yaml"), false)
        .await
        .unwrap();
    let out = tokio::task::block_in_place(|| run(&s, &home, &["status"]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("database  ready"), "{stdout}");
    assert!(stdout.contains("workers   none alive"), "{stdout}");
    assert!(stdout.contains("1 waiting (deploy 1)"), "{stdout}");
    let out = tokio::task::block_in_place(|| run(&s, &home, &["status", "-o", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["waiting"]["deploy"]["jobs"], 1);
    assert!(v["waiting"]["deploy"]["oldest_seconds"].as_f64().unwrap() >= 0.0);

    // With a worker, once the deploy ran: healthy, exit 0.
    let s = Stack::start().await;
    let accepted = s
        .client
        .deploy("demo", crate::support::example("hello.yaml"), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    let out = tokio::task::block_in_place(|| run(&s, &home, &["status", "-o", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(
        (v["ready"].as_bool(), v["healthy"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(v["workers_alive"].as_u64().unwrap() >= 1, "{v}");
    let _ = std::fs::remove_dir_all(&home);
}

/// What a user of the reference SMO types: its CLI's `~/.smo/config.yaml`, `-v`, `scaler run`.
#[test]
fn a_reference_users_config_flags_and_commands_work_or_say_what_to_run() {
    let home = std::env::temp_dir().join(format!("smo-ref-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(home.join(".smo")).unwrap();
    std::fs::write(
        home.join(".smo/config.yaml"),
        "db: {url: \"sqlite:///root/.smo/smo.db\"}\nkarmada_kubeconfig: /root/.kube/karmada-apiserver.config\n\
         grafana: {host: \"http://localhost:3000\", username: admin, password: pw}\n\
         prometheus_host: \"http://localhost:9090\"\nhelm: {insecure_registry: true}\n\
         scaling: {interval_seconds: 30}\n",
    )
    .unwrap();
    let out = smo_process(&["-v", "config", "-o", "json"], &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["grafana_url"], "http://localhost:3000", "{shown}");
    assert_eq!(shown["prometheus_url"], "http://localhost:9090", "{shown}");
    assert_eq!(shown["helm_insecure_registry"], true, "{shown}");
    assert_eq!(shown["scaling_interval"], "30s", "{shown}");
    assert_eq!(shown["grafana_password"], "***", "{shown}");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("db.url").count(), 1, "warned once: {stderr}");

    let out = smo_process(&["-vv", "scaler", "run"], &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stderr);
    assert!(said.contains("smo run --role scheduler,worker"), "{said}");
    // It names the jobs that really scale (the scheduler's cron entry and the shards).
    for kind in [
        <smo::reconcile::ScaleFanoutJob as smo_jobs::JobArgs>::KIND,
        "scale-shard",
    ] {
        assert!(said.contains(kind), "{kind}: {said}");
    }
}
