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
/// schema, a 405 without Allow, …) fails this test with schemathesis's own report.
#[tokio::test]
async fn schemathesis_finds_nothing_against_the_live_api() {
    let bin = std::env::var("SMO_SCHEMATHESIS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/bin/schemathesis").to_string()
    });
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: run scripts/setup (it installs schemathesis into a venv)"
    );
    // With the token set, as a production server runs: every request sends it (so the fuzzing
    // reaches the handlers), and the document comes from a file (fetching it needs the token).
    let token = "schemathesis-token";
    let s = crate::stack::Stack::with_token(token).await;
    // Something to find: a graph, so the stateful phase can follow links past 404s.
    let accepted = s
        .client
        .deploy("demo", crate::support::example("hello.yaml"), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
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
            "coverage,fuzzing,stateful",
            "--max-examples",
            "15",
            "--max-time",
            "90",
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
