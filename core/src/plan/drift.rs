//! Drift: the objects a running graph should have in the federation, and what to record when
//! some were repaired.

use super::*;

/// The objects a running graph should have in the federation now: those of every deployed
/// native service on its recorded cluster, labelled `Kind name` (a Helm release's objects are
/// Helm's: see ARCHITECTURE.md).
pub fn expected_objects(s: &Snapshot<'_>) -> Vec<(String, Value)> {
    let replicas = desired_replicas(s.services);
    let input = RenderInput {
        graph: s.graph,
        project: s.project,
        placement: s.current,
        replicas: &replicas,
    };
    let mut out = Vec::new();
    for service in s.graph.deploy_order() {
        let deployed = s
            .services
            .iter()
            .any(|r| r.name == service.id && r.status.is_deployed());
        let Some(cluster) = s.current.get(&service.id).filter(|_| deployed) else {
            continue;
        };
        if !manifests::is_native(service) {
            continue;
        }
        for obj in manifests::render_service(&input, service, cluster) {
            let what = format!(
                "{} {}",
                obj["kind"].as_str().unwrap_or_default(),
                obj["metadata"]["name"].as_str().unwrap_or_default()
            );
            out.push((what, obj));
        }
    }
    out
}

/// What a drift check records: nothing when nothing drifted, else one decision (and a
/// re-publication when dashboards or rules are missing).
pub fn drift(
    placement: &BTreeMap<String, String>,
    missing: &[String],
    changed: &[String],
    republish: &[String],
) -> Option<Outcome> {
    if missing.is_empty() && changed.is_empty() && republish.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("re-created {} missing objects", missing.len()));
    }
    if !changed.is_empty() {
        parts.push(format!("restored {} changed objects", changed.len()));
    }
    if !republish.is_empty() {
        parts.push(format!("re-publishing {}", republish.join(", ")));
    }
    Some(Outcome {
        publish: !republish.is_empty(),
        decisions: vec![Decision::new(
            DecisionKind::Drift,
            format!("drift repaired: {}", parts.join("; ")),
            json!({ "placement": placement }),
            json!({ "missing": missing, "changed": changed, "republished": republish }),
        )],
        ..Outcome::default()
    })
}
