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
