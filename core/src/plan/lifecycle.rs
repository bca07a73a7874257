//! The ends of a graph's life: a failed deploy and its clean-up, stop, remove, and publishing
//! dashboards — each what to record, without I/O.

use super::*;

/// What a failed deploy's clean-up removed, and what it could not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cleanup {
    /// Objects deleted from the federation.
    pub objects: usize,
    /// Helm releases uninstalled (absent ones count).
    pub releases: usize,
    /// What could not be removed, and why.
    pub left: Vec<String>,
}

/// A deploy that failed for good: the graph says so, and the log says why and what was cleaned
/// up.
pub fn failed(error: &str, cleanup: Cleanup) -> Outcome {
    let mut message = format!(
        "failed: {error}; removed {} objects and {} Helm releases it had applied",
        cleanup.objects, cleanup.releases
    );
    if !cleanup.left.is_empty() {
        message.push_str(&format!("; left: {}", cleanup.left.join("; ")));
    }
    Outcome {
        status: Some((GraphStatus::Failed, Some(error.into()))),
        decisions: vec![Decision::new(
            DecisionKind::Deploy,
            message,
            json!({}),
            json!({
                "error": error,
                "removed_objects": cleanup.objects,
                "removed_releases": cleanup.releases,
                "left": cleanup.left,
            }),
        )],
        ..Outcome::default()
    }
}

/// A re-placement that failed for good: the graph keeps running where it is, and the log says
/// why nothing moved.
pub fn replace_failed(error: &str) -> Outcome {
    Outcome {
        decisions: vec![Decision::new(
            DecisionKind::RePlace,
            format!("failed, nothing moved: {error}"),
            json!({}),
            json!({ "error": error }),
        )],
        ..Outcome::default()
    }
}

/// A stop: the Helm releases to uninstall, then what to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Releases of chart services that were installed.
    pub uninstall: Vec<String>,
    /// Services that were deployed (they become Stopped), with their desired replicas.
    pub stopped: Vec<(String, i32)>,
}

/// Stop: every deployed service's workloads go. A conditional service whose event never fired
/// was never installed: it has nothing to uninstall, and it stays Pending so that start does not
/// install it either.
pub fn stop(graph: Option<&Graph>, services: &[ServiceRecord]) -> Stop {
    let deployed: Vec<&ServiceRecord> = services
        .iter()
        .filter(|s| !(s.conditional && s.status == ServiceStatus::Pending))
        .collect();
    let uninstall = graph
        .map(|g| {
            g.services
                .iter()
                .filter(|s| !manifests::is_native(s) && deployed.iter().any(|d| d.name == s.id))
                .map(|s| manifests::release_name(&g.id, s))
                .collect()
        })
        .unwrap_or_default();
    Stop {
        uninstall,
        stopped: deployed
            .iter()
            .map(|s| (s.name.clone(), s.replicas))
            .collect(),
    }
}

/// Every Helm release a graph may have installed (removal uninstalls them all).
pub fn helm_releases(graph: &Graph) -> Vec<String> {
    graph
        .services
        .iter()
        .filter(|s| !manifests::is_native(s))
        .map(|s| manifests::release_name(&graph.id, s))
        .collect()
}

impl Stop {
    /// What to record once `deleted` objects are gone.
    pub fn outcome(&self, deleted: usize) -> Outcome {
        Outcome {
            status: Some((GraphStatus::Stopped, None)),
            services: self
                .stopped
                .iter()
                .map(|(s, r)| (s.clone(), ServiceStatus::Stopped, Some((*r, 0))))
                .collect(),
            decisions: vec![Decision::new(
                DecisionKind::Stop,
                format!("deleted {deleted} objects"),
                json!({}),
                json!({ "deleted": deleted }),
            )],
            ..Outcome::default()
        }
    }
}

/// Remove: what to say once the graph and its objects are gone (the graph row is deleted, so
/// this is a decision only). `namespace` is the project's namespace when it went too.
pub fn removed(deleted: usize, namespace: Option<&str>, left_behind: &[String]) -> Decision {
    let mut message = format!("removed: deleted {deleted} objects");
    if let Some(ns) = namespace {
        message.push_str(&format!(" and namespace {ns}"));
    }
    if !left_behind.is_empty() {
        message.push_str(&format!(
            "; Helm could not uninstall (left behind, remove by hand with helm uninstall): {}",
            left_behind.join("; ")
        ));
    }
    Decision::new(
        DecisionKind::Remove,
        message,
        json!({}),
        json!({
            "deleted": deleted,
            "namespace_deleted": namespace.is_some(),
            "helm_left_behind": left_behind,
        }),
    )
}

/// Publish: the dashboards (title → URL) and the number of alert rules now published.
pub fn published(dashboards: BTreeMap<String, String>, rules: usize) -> Outcome {
    Outcome {
        decisions: vec![Decision::new(
            DecisionKind::Publish,
            format!(
                "published {} dashboards and {rules} alert rules",
                dashboards.len()
            ),
            json!({}),
            json!({ "dashboards": dashboards, "rules": rules }),
        )],
        dashboards: Some(dashboards),
        ..Outcome::default()
    }
}

/// What the API records when a user asks for `desired`, before its job runs: a stop or a remove
/// shows at once (`Stopping`, `Removing`); a start leaves the status to its deploy.
pub fn requested(desired: crate::model::Desired) -> Option<GraphStatus> {
    use crate::model::Desired;
    match desired {
        Desired::Running => None,
        Desired::Stopped => Some(GraphStatus::Stopping),
        Desired::Removed => Some(GraphStatus::Removing),
    }
}
