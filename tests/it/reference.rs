//! What the reference SMO's clients read, asked as they ask it: its SDK's `GET /clusters` and
//! `GET /graphs/{name}` fields, and descriptors written for it (no `version`, `trigger: {}`).

use serde_json::Value;

use crate::stack::Stack;

/// A descriptor as the reference's users write them: no `version`, a service with `trigger: {}`
/// and one with `trigger: {type: standard}`, Helm-free so the sim runs it.
const REFERENCE_STYLE: &str = r#"
hdaGraph:
  imVersion: 0.4.0
  id: legacy
  services:
    - id: front
      deployment:
        trigger: {}
        intent:
          compute: {cpu: small, ram: 256Mi, storage: light, gpu: {enabled: False}}
      artifact:
        image: ghcr.io/example/front:1
        ports: [{port: 80}]
    - id: back
      deployment:
        trigger: {type: standard}
        intent:
          compute: {cpu: light, ram: light, storage: light, gpu: {enabled: False}}
      artifact:
        image: ghcr.io/example/back:1
"#;

#[tokio::test]
async fn reference_clients_find_their_fields_and_reference_descriptors_deploy() {
    let s = Stack::start().await;
    // A fresh install has synced nothing yet: the first GET /clusters still answers the clusters
    // (the reference reads Karmada on each call), not `[]`.
    let first: Vec<Value> = s.client.get("/clusters").await.unwrap();
    assert_eq!(first.len(), 3, "{first:?}");
    let accepted = s
        .client
        .deploy("legacy", REFERENCE_STYLE.as_bytes().to_vec(), false)
        .await
        .unwrap();
    let warnings = accepted["warnings"].to_string();
    assert!(warnings.contains("version"), "{accepted}");
    assert!(warnings.contains("deployed at once"), "{accepted}");
    s.succeed(&accepted).await;

    // GET /clusters: the reference SDK's fields.
    let clusters: Vec<Value> = s.client.get("/clusters").await.unwrap();
    assert_eq!(clusters.len(), 3, "{clusters:?}");
    for (i, c) in clusters.iter().enumerate() {
        assert_eq!(c["id"], i as i64 + 1, "{c}");
        assert!(c["name"].is_string(), "{c}");
        assert_eq!(c["available_cpu"], c["cpu_free"], "{c}");
        assert!(c["available_ram"].as_str().unwrap().ends_with("Mi"), "{c}");
        assert_eq!(c["availability"], c["ready"], "{c}");
        assert_eq!(c["acceleration"], c["gpus"].as_i64().unwrap() > 0, "{c}");
    }
    let gpu = clusters.iter().find(|c| c["name"] == "cloud-gpu").unwrap();
    assert_eq!(gpu["acceleration"], true);
    let edge = clusters.iter().find(|c| c["name"] == "edge-a").unwrap();
    assert_eq!(edge["location"], "eu-west", "the region label: {edge}");

    // GET /graphs/{name}: hdaGraph as submitted, and the services' reference fields.
    let g: Value = s.client.get("/graphs/legacy").await.unwrap();
    assert_eq!(g["hdaGraph"]["id"], "legacy", "{g}");
    assert!(
        g["hdaGraph"].get("version").is_none(),
        "as submitted, not normalised: {}",
        g["hdaGraph"]
    );
    assert_eq!(
        g["hdaGraph"]["services"][1]["deployment"]["trigger"]["type"],
        "standard"
    );
    for svc in g["services"].as_array().unwrap() {
        let name = svc["name"].as_str().unwrap();
        assert_eq!(svc["status"], "Running", "{svc}");
        assert_eq!(svc["cluster_affinity"], g["placement"][name], "{svc}");
        assert_eq!(
            svc["artifact_ref"],
            format!("ghcr.io/example/{name}:1"),
            "{svc}"
        );
        assert!(svc["values_overwrite"].is_object(), "{svc}");
    }
    let front = &g["services"][0];
    assert_eq!(
        (front["cpu"].as_str(), front["memory"].as_str()),
        (Some("small"), Some("256Mi"))
    );
    assert_eq!(
        s.objects("legacy", "legacy")
            .await
            .iter()
            .filter(|(k, _)| k == "Deployment")
            .count(),
        2,
        "both services without an event deployed at once"
    );
}

#[tokio::test]
async fn flask_era_requests_are_read_or_told_the_route_to_use() {
    let s = Stack::start_with(false, smo_sim::SimConfig::demo()).await;
    let http = reqwest::Client::new();
    // A JSON string holding the YAML, as older scripts post it.
    let r = http
        .post(format!("{}/project/legacy/graphs", s.api))
        .header("content-type", "application/json")
        .body(serde_json::to_string(REFERENCE_STYLE).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // Every key the reference sends is there, null when unknown (as the reference sends it), so
    // its CLI's `describe` never reads a missing key: no worker runs here, so nothing is placed,
    // and no Grafana is configured.
    let g: Value = http
        .get(format!("{}/graphs/legacy", s.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [
        "name",
        "status",
        "project",
        "grafana",
        "hdaGraph",
        "placement",
        "services",
    ] {
        assert!(g.get(key).is_some(), "graph key {key} missing: {g}");
    }
    assert!(g["grafana"].is_null(), "{g}");
    for svc in g["services"].as_array().unwrap() {
        for key in [
            "name",
            "status",
            "grafana",
            "cluster_affinity",
            "cpu",
            "memory",
            "storage",
            "gpu",
            "values_overwrite",
            "alert",
            "artifact_ref",
            "artifact_type",
            "artifact_implementer",
        ] {
            assert!(svc.get(key).is_some(), "service key {key} missing: {svc}");
        }
        assert!(svc["cluster_affinity"].is_null(), "not placed yet: {svc}");
    }

    let r = http
        .get(format!("{}/graphs/legacy/start", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let p: Value = r.json().await.unwrap();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("use POST /graphs/legacy/start"),
        "{p}"
    );

    let r = http
        .get(format!("{}/clusters/", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let p: Value = r.json().await.unwrap();
    assert!(
        p["detail"].as_str().unwrap().contains("use /clusters"),
        "{p}"
    );
}

/// smo's optimiser reaches the optimum of the reference's own model (SPEC §2 in CVXPY, solved
/// by HiGHS: `scripts/placement-reference`) on seeded instances of the reference's family, first
/// placements and re-placements, among them the slowest 200×50 re-placements `smo bench
/// placement` has found (seeds 87 and 194).
#[test]
fn smo_places_as_well_as_the_reference_model() {
    use smo::placement::instances::{reference_family, replacement};
    let found = smo::bench::Reference::find();
    if !crate::support::require(
        "the reference model (scripts/setup installs CVXPY and highspy; SMO_PYTHON)",
        found.is_some(),
    ) {
        return;
    }
    let reference = found.unwrap();
    for (n, m, seed) in [(20, 5, 0), (20, 5, 1), (200, 50, 87), (200, 50, 194)] {
        let base = reference_family(seed, n, m, 1.3);
        let again = replacement(seed, &base).unwrap();
        for (kind, problem) in [("first", base), ("re-place", again)] {
            let ours = smo::placement::solve_problem(&problem).unwrap();
            let theirs = reference.solve(&problem).unwrap();
            let what = format!(
                "{n}×{m} seed {seed} {kind}: smo {:?} {:?}, reference {theirs}",
                ours.status, ours.objective
            );
            assert_eq!(theirs["status"], "optimal", "{what}");
            assert!(ours.status.is_optimal(), "{what}");
            assert_eq!(
                ours.objective.total,
                theirs["objective"].as_f64().unwrap(),
                "{what}"
            );
        }
    }
}
