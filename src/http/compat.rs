//! The reference SMO's field names, beside smo's own (SPEC Appendix A): what its SDK and CLI
//! read from `GET /clusters` and `GET /graphs/{name}`. Pure: views in, values out.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{hdag::Graph, monitoring};

/// A JSON value as the reference's plain string field (`"small"`, `"250m"`, `2`).
fn text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The reference's fields of one service.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServiceCompat {
    pub artifact_ref: Option<String>,
    pub cluster_affinity: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub storage: Option<String>,
    pub values_overwrite: Value,
    pub alert: Option<Value>,
    pub artifact_type: Option<String>,
    pub artifact_implementer: Option<String>,
    pub grafana: Option<String>,
}

/// What the reference's fields of a graph's services are computed from, gathered once per
/// graph: its alert rules by service and its dashboards' URLs (rendering them per service made a
/// `GET /graphs/{name}` quadratic in services).
pub struct GraphCompat<'a> {
    graph: &'a Graph,
    placement: &'a BTreeMap<String, String>,
    rules: BTreeMap<String, Vec<Value>>,
    service_dashboards: BTreeMap<String, String>,
    /// The graph dashboard's URL, when smo published one.
    pub grafana: Option<String>,
}

impl<'a> GraphCompat<'a> {
    /// `placement` is where each service runs; `dashboards` the URLs smo published, by title.
    pub fn new(
        project: &str,
        graph: &'a Graph,
        placement: &'a BTreeMap<String, String>,
        dashboards: &BTreeMap<String, String>,
    ) -> Self {
        let mut rules: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in monitoring::alert_rules(project, graph) {
            if let (Some(service), Ok(v)) =
                (r.labels.get("service").cloned(), serde_json::to_value(&r))
            {
                rules.entry(service).or_default().push(v);
            }
        }
        let set = monitoring::render_graph_dashboards(project, graph);
        let service_dashboards = graph
            .services
            .iter()
            .zip(&set.services)
            .filter_map(|(s, d)| Some((s.id.clone(), dashboards.get(&d.title)?.clone())))
            .collect();
        GraphCompat {
            graph,
            placement,
            rules,
            service_dashboards,
            grafana: dashboards.get(&set.graph.title).cloned(),
        }
    }

    /// The reference's fields of service `id`.
    pub fn service(&self, id: &str) -> ServiceCompat {
        let Some(s) = self.graph.service(id) else {
            return ServiceCompat::default();
        };
        let compute = &s.deployment.intent.compute;
        let a = &s.artifact;
        let mut rules = self.rules.get(id).cloned().unwrap_or_default();
        ServiceCompat {
            artifact_ref: a.oci_image.clone().or_else(|| a.image.clone()),
            cluster_affinity: self.placement.get(id).cloned(),
            cpu: text(serde_json::to_value(&compute.cpu).ok()),
            memory: text(serde_json::to_value(&compute.ram).ok()),
            storage: text(serde_json::to_value(&compute.storage).ok()),
            values_overwrite: Value::Object(a.values_overwrite.clone()),
            alert: match rules.len() {
                0 => None,
                1 => rules.pop(),
                _ => Some(Value::Array(rules)),
            },
            artifact_type: a
                .oci_config
                .as_ref()
                .and_then(|c| text(serde_json::to_value(c.kind).ok())),
            artifact_implementer: a
                .oci_config
                .as_ref()
                .and_then(|c| text(serde_json::to_value(c.implementer).ok())),
            grafana: self.service_dashboards.get(id).cloned(),
        }
    }
}

/// Largest stored source re-read for `hdaGraph`.
const MAX_REREAD_BYTES: usize = 1024 * 1024;

/// The descriptor as submitted (its `hdaGraph`), read back from the stored source text; smo's
/// normalised copy when the source is not a descriptor document (deploy by reference stores the
/// reference).
pub fn hda_graph(source: &str, normalised: &Value) -> Value {
    // Re-reading the text costs time on the request's thread: only for descriptors of a size
    // people write by hand; larger ones show the normalised copy.
    if source.len() > MAX_REREAD_BYTES {
        return normalised.clone();
    }
    serde_norway::from_str::<Value>(source)
        .ok()
        .and_then(|v| v.get("hdaGraph").cloned())
        .unwrap_or_else(|| normalised.clone())
}

/// Where a cluster is, from the labels Kubernetes and Karmada users set.
pub fn location(labels: &BTreeMap<String, String>) -> Option<String> {
    [
        "topology.kubernetes.io/region",
        "location",
        "region",
        "topology.kubernetes.io/zone",
    ]
    .iter()
    .find_map(|k| labels.get(*k).cloned())
}

/// Bytes as the reference shows free memory: a Kubernetes quantity in whole MiB.
pub fn ram(bytes: i64) -> String {
    format!("{}Mi", bytes.max(0) / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_fields_come_from_the_descriptor_placement_and_labels() {
        let doc = br#"
hdaGraph:
  imVersion: 0.4.0
  id: g
  version: "1.0.0"
  services:
    - id: web
      deployment:
        trigger: {auto: {dependencies: []}}
        intent: {compute: {cpu: small, ram: 256Mi, storage: light, gpu: {enabled: false}}}
      artifact:
        ociImage: oci://r.example/charts/web
        ociConfig: {type: App, implementer: HELM}
        valuesOverwrite: {replicaCount: 2}
"#;
        let g = crate::hdag::parse(doc).unwrap().graph;
        let placement = BTreeMap::from([("web".to_string(), "edge-a".to_string())]);
        let c = GraphCompat::new("p", &g, &placement, &BTreeMap::new()).service("web");
        assert_eq!(
            c.artifact_ref.as_deref(),
            Some("oci://r.example/charts/web")
        );
        assert_eq!(c.cluster_affinity.as_deref(), Some("edge-a"));
        assert_eq!(c.cpu.as_deref(), Some("small"));
        assert_eq!(c.memory.as_deref(), Some("256Mi"));
        assert_eq!(c.artifact_implementer.as_deref(), Some("HELM"));
        assert_eq!(c.artifact_type.as_deref(), Some("App"));
        assert_eq!(c.values_overwrite, serde_json::json!({"replicaCount": 2}));
        assert_eq!(c.alert, None);
        let source = std::str::from_utf8(doc).unwrap();
        assert_eq!(hda_graph(source, &Value::Null)["services"][0]["id"], "web");
        let labels = BTreeMap::from([("region".to_string(), "eu-west".to_string())]);
        assert_eq!(location(&labels).as_deref(), Some("eu-west"));
        assert_eq!(ram(3 * 1024 * 1024 * 1024 + 5), "3072Mi");
    }
}
