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
