//! Every object smo generates validates against the real CRD schemas in `../shared/crds`
//! (Karmada, MCS, prometheus-operator), and core kinds parse as their k8s-openapi types.

use std::collections::BTreeMap;

use serde_json::Value;
use smo::{
    federation::manifests::{self, RenderInput},
    hdag,
};

use crate::support::{crd, fixture, shared_dir};

fn rendered(fixture_path: &str, project: &str) -> Vec<Value> {
    let graph = hdag::parse(&fixture(fixture_path))
        .expect("fixture parses")
        .graph;
    placed(&graph, project, 2)
}

/// `graph`'s objects with its services spread over the three demo clusters, `replicas` each.
fn placed(graph: &hdag::Graph, project: &str, replicas: i32) -> Vec<Value> {
    let clusters = ["edge-a", "edge-b", "cloud-gpu"];
    let placement: BTreeMap<String, String> = graph
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), clusters[i % 3].to_string()))
        .collect();
    let replicas = graph
        .services
        .iter()
        .map(|s| (s.id.clone(), replicas))
        .collect();
    manifests::render(&RenderInput {
        graph,
        project,
        placement: &placement,
        replicas: &replicas,
    })
}

#[test]
fn generated_karmada_and_mcs_objects_validate_against_the_real_crds() {
    let objects = rendered("hdag/image-three-services.yaml", "shop-prod");
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for k in [
        "Deployment",
        "Service",
        "PropagationPolicy",
        "ServiceExport",
        "ServiceImport",
    ] {
        assert!(
            kinds.contains(&k),
            "the fixture should exercise {k}, got {kinds:?}"
        );
    }
    // Core kinds: they must deserialise into the real Kubernetes types.
    for o in &objects {
        match o["kind"].as_str() {
            Some("Deployment") => {
                let d: k8s_openapi::api::apps::v1::Deployment =
                    serde_json::from_value(o.clone()).expect("Deployment");
                assert!(
                    d.spec.unwrap().template.spec.unwrap().containers[0]
                        .resources
                        .is_some()
                );
            }
            Some("Service") => {
                serde_json::from_value::<k8s_openapi::api::core::v1::Service>(o.clone())
                    .expect("Service");
            }
            _ => {}
        }
    }
    let Some(shared) = shared_dir() else { return };
    let crds = [
        (
            "PropagationPolicy",
            "crds/policy.karmada.io_propagationpolicies.yaml",
        ),
        (
            "ServiceExport",
            "crds/multicluster.x-k8s.io_serviceexports.yaml",
        ),
        (
            "ServiceImport",
            "crds/multicluster.x-k8s.io_serviceimports.yaml",
        ),
    ];
    let mut checked = 0;
    for (kind, file) in crds {
        let crd = crd::load(&shared.join(file)).expect("CRD loads");
        for o in objects.iter().filter(|o| o["kind"] == kind) {
            let problems = crd::validate(&crd, o);
            assert!(
                problems.is_empty(),
                "{kind} {} does not validate:\n{}",
                o["metadata"]["name"],
                problems.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "checked {checked} objects");
}

#[test]
fn names_and_labels_are_deterministic_across_renders() {
    assert_eq!(
        rendered("hdag/image-three-services.yaml", "p"),
        rendered("hdag/image-three-services.yaml", "p")
    );
}

/// Every built-in object smo renders — for every example graph and descriptor fixture, placed
/// on the three clusters — validates strictly against the real Kubernetes 1.37 schemas
/// (kubernetes-validate), as does the Namespace smo creates through the federation client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_in_object_smo_renders_validates_against_the_kubernetes_1_37_schemas() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut sources: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["examples/graphs", "tests/fixtures/hdag"] {
        for e in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            sources.push(e.unwrap().path());
        }
    }
    sources.sort();
    let mut objects = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    let mut graphs = 0;
    for path in &sources {
        let Ok(parsed) = hdag::parse(&std::fs::read(path).unwrap()) else {
            continue; // the invalid fixtures
        };
        graphs += 1;
        for o in placed(&parsed.graph, "conformance", 3) {
            if crate::support::is_built_in(&o) {
                kinds.insert(o["kind"].as_str().unwrap_or_default().to_string());
                objects.push(o);
            }
        }
    }
    assert!(graphs >= 8, "{graphs} graphs rendered");
    assert!(
        kinds.contains("Deployment") && kinds.contains("Service"),
        "{kinds:?}"
    );
    // The Namespace, as smo creates it in a real deploy.
    let stack = crate::stack::Stack::start().await;
    let a = stack
        .client
        .deploy("conformance", crate::support::example("hello.yaml"), false)
        .await
        .unwrap();
    stack.succeed(&a).await;
    let ns: Value = reqwest::get(format!("{}/api/v1/namespaces/conformance", stack.sim_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["app.kubernetes.io/managed-by"], "smo",
        "{ns}"
    );
    objects.push(ns);
    tokio::task::block_in_place(|| crate::support::validate_against_kubernetes(&objects));
}
