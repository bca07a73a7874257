//! The committed OpenAPI document matches the code.

#[tokio::test]
async fn api_openapi_yaml_is_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = smo::http::openapi_yaml();
    assert!(
        committed == current,
        "api/openapi.yaml is stale; refresh it with: cargo run -q --bin smo -- openapi > api/openapi.yaml"
    );
    for route in [
        "/project/{project}/graphs",
        "/graphs/{name}",
        "/graphs/{name}/start",
        "/graphs/{name}/stop",
        "/graphs/{name}/placement",
        "/graphs/{name}/jobs",
        "/graphs/{name}/history",
        "/jobs/{id}",
        "/clusters",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            current.contains(&format!("{route}:")),
            "route {route} missing from the OpenAPI document"
        );
    }
    assert!(current.contains("application/problem+json"));
}

/// schemathesis (a real OpenAPI fuzzer, installed by scripts/setup) against the live API: the
/// coverage, fuzzing and stateful phases, bounded in examples and time, with a fixed seed so a
/// run is repeatable. Any failure (a 5xx, an undocumented status, a response that breaks its
/// schema, a 405 without Allow, …) fails this test with schemathesis's own report. It runs as the
/// bootstrap admin (every operation reaches its handler).
#[tokio::test]
async fn schemathesis_finds_nothing_against_the_live_api() {
    let token = "schemathesis-token";
    let s = fuzzed_stack(token).await;
    schemathesis(&s, token, "coverage,fuzzing,stateful", "90").await;
}

/// The same fuzzing as a viewer of the project that holds the graph: reads answer, every change
/// is a documented 403.
#[tokio::test]
async fn schemathesis_finds_nothing_as_a_viewer() {
    let s = fuzzed_stack("schemathesis-admin").await;
    let viewer = crate::teams::mint_in(
        &s.db.pool,
        "fuzz-viewer",
        smo::access::Role::Viewer,
        Some(&["demo"]),
        None,
    )
    .await;
    schemathesis(&s, &viewer, "coverage,fuzzing", "40").await;
}

/// A stack with a token (as a production server runs) and a graph, so the stateful phase can
/// follow links past 404s.
async fn fuzzed_stack(token: &str) -> crate::stack::Stack {
    let s = crate::stack::Stack::with_token(token).await;
    let accepted = s
        .client
        .deploy("demo", crate::support::example("hello.yaml"), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    s
}

/// Runs schemathesis against `s` as `token` (every request sends it, so the fuzzing reaches the
/// guard and the handlers; the document comes from a file, as fetching it needs a token).
async fn schemathesis(s: &crate::stack::Stack, token: &str, phases: &str, max_time: &str) {
    let bin = std::env::var("SMO_SCHEMATHESIS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/bin/schemathesis").to_string()
    });
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: run scripts/setup (it installs schemathesis into a venv)"
    );
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let doc = std::env::temp_dir().join(format!("{}-openapi.yaml", s.db.name));
    std::fs::write(&doc, smo::http::openapi_yaml()).unwrap();
    let out = tokio::process::Command::new(&bin)
        .args(["--config-file", config, "--no-color", "run"])
        .arg(&doc)
        .args(["--url", &s.api])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--phases",
            phases,
            "--max-examples",
            "15",
            "--max-time",
            max_time,
            "--workers",
            "1",
            "--seed",
            "20261201",
        ])
        .output()
        .await
        .expect("schemathesis runs");
    let _ = std::fs::remove_file(&doc);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Fuzzing"), "{report}");
}
