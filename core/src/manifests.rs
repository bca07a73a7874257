//! Pure generation of the Kubernetes/Karmada objects of image-based services (`artifact.image`):
//! a Deployment with requests/limits from the intents, a Service for its ports, a Karmada
//! PropagationPolicy pinning both to the placed cluster, and ServiceExport/ServiceImport (+ a policy
//! propagating the import to the callers' clusters) for services other services call.
//!
//! Names are deterministic (`<graph>-<service>`, hashed when longer than 63 characters) and every
//! object carries the `smo.io/*` labels, so re-applying is a no-op and removal finds everything.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::hdag::{Graph, Implementer, Service};

/// Label on every object smo writes, for removal by selector.
pub const LABEL_GRAPH: &str = "smo.io/graph";
/// Label naming the service an object belongs to.
pub const LABEL_SERVICE: &str = "smo.io/service";
/// Label naming the project.
pub const LABEL_PROJECT: &str = "smo.io/project";

/// The Helm release of a chart service: `artifact.releaseName` when set (a release the reference
/// SMO installed, adopted), else [`object_name`].
pub fn release_name(graph: &str, service: &crate::hdag::Service) -> String {
    service
        .artifact
        .release_name
        .clone()
        .unwrap_or_else(|| object_name(graph, &service.id))
}

/// The name of a service's objects: unique per project + graph + service, a DNS-1123 label.
pub fn object_name(graph: &str, service: &str) -> String {
    let full = format!("{graph}-{service}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across machines and releases (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in full.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let head: String = full.chars().take(54).collect();
    format!("{}-{:08x}", head.trim_end_matches('-'), h as u32)
}

/// True when smo generates the objects itself (rather than running Helm).
pub fn is_native(service: &Service) -> bool {
    service.artifact.image.is_some()
}

fn labels(project: &str, graph: &str, service: &str) -> Value {
    json!({
        "app.kubernetes.io/managed-by": "smo",
        "app.kubernetes.io/name": service,
        LABEL_PROJECT: project,
        LABEL_GRAPH: graph,
        LABEL_SERVICE: service,
    })
}

fn cpu_quantity(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn memory_quantity(bytes: u64) -> String {
    const MI: u64 = 1024 * 1024;
    if bytes.is_multiple_of(1024 * MI) {
        format!("{}Gi", bytes / (1024 * MI))
    } else if bytes.is_multiple_of(MI) {
        format!("{}Mi", bytes / MI)
    } else {
        bytes.to_string()
    }
}

/// Everything needed to render one graph.
pub struct RenderInput<'a> {
    /// The graph.
    pub graph: &'a Graph,
    /// Project = namespace.
    pub project: &'a str,
    /// service → cluster, for the services to render.
    pub placement: &'a BTreeMap<String, String>,
    /// service → replicas (default 1, or the scaling minimum).
    pub replicas: &'a BTreeMap<String, i32>,
}

/// The objects of every placed image-based service, in apply order (Services and Deployments
/// before the policies that select them). Services absent from `placement` are skipped.
pub fn render(input: &RenderInput<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    for service in input.graph.services.iter().filter(|s| is_native(s)) {
        if let Some(cluster) = input.placement.get(&service.id) {
            out.extend(render_service(input, service, cluster));
        }
    }
    out
}

/// The objects of one service placed on `cluster`.
pub fn render_service(input: &RenderInput<'_>, service: &Service, cluster: &str) -> Vec<Value> {
    let (graph, project) = (&input.graph.id, input.project);
    let name = object_name(graph, &service.id);
    let labels = labels(project, graph, &service.id);
    let selector = json!({ LABEL_GRAPH: graph, LABEL_SERVICE: service.id });
    let res = service.resources();
    let replicas = input.replicas.get(&service.id).copied().unwrap_or(1).max(0);
    let mut limits =
        json!({ "cpu": cpu_quantity(res.cpu_millis), "memory": memory_quantity(res.memory_bytes) });
    if res.gpu {
        limits["nvidia.com/gpu"] = json!("1");
    }
    let ports: Vec<Value> = service
        .artifact
        .ports
        .iter()
        .map(|p| {
            let mut v = json!({ "containerPort": p.port, "protocol": format!("{:?}", p.protocol) });
            if let Some(n) = &p.name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let mut container = json!({
        "name": service.id,
        "image": service.artifact.image.clone().unwrap_or_default(),
        "resources": {
            "requests": { "cpu": cpu_quantity(res.cpu_millis), "memory": memory_quantity(res.memory_bytes) },
            "limits": limits,
        },
    });
    if !ports.is_empty() {
        container["ports"] = Value::Array(ports);
    }
    let mut objects = vec![json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": project, "labels": labels },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [container] },
            },
        },
    })];
    let mut selectors =
        vec![json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": name })];

    let service_ports: Vec<Value> = service
        .artifact
        .ports
        .iter()
        .map(|p| {
            json!({
                "name": p.name.clone().unwrap_or_else(|| format!("p{}", p.port)),
                "port": p.port,
                "targetPort": p.port,
                "protocol": format!("{:?}", p.protocol),
            })
        })
        .collect();
    let callers = input.graph.callers_of(&service.id);
    if !service_ports.is_empty() {
        objects.insert(
            0,
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": { "name": name, "namespace": project, "labels": labels },
                "spec": { "selector": selector, "ports": service_ports },
            }),
        );
        selectors.push(json!({ "apiVersion": "v1", "kind": "Service", "name": name }));
        if !callers.is_empty() {
            objects.push(json!({
                "apiVersion": "multicluster.x-k8s.io/v1alpha1",
                "kind": "ServiceExport",
                "metadata": { "name": name, "namespace": project, "labels": labels },
            }));
            selectors.push(json!({
                "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport", "name": name
            }));
        }
    }
    objects.push(propagation_policy(
        &name,
        project,
        &labels,
        selectors,
        vec![cluster.to_string()],
    ));

    // Callers on other clusters reach the service through a ServiceImport propagated to them.
    let caller_clusters: BTreeSet<String> = callers
        .iter()
        .filter_map(|c| input.placement.get(&c.id))
        .cloned()
        .collect();
    if !service_ports.is_empty() && !caller_clusters.is_empty() {
        let import_ports: Vec<Value> = service
            .artifact
            .ports
            .iter()
            .map(|p| json!({ "port": p.port, "protocol": format!("{:?}", p.protocol) }))
            .collect();
        objects.push(json!({
            "apiVersion": "multicluster.x-k8s.io/v1alpha1",
            "kind": "ServiceImport",
            "metadata": { "name": name, "namespace": project, "labels": labels },
            "spec": { "type": "ClusterSetIP", "ports": import_ports },
        }));
        objects.push(propagation_policy(
            &format!("{name}-import"),
            project,
            &labels,
            vec![json!({ "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport", "name": name })],
            caller_clusters.into_iter().collect(),
        ));
    }
    objects
}

fn propagation_policy(
    name: &str,
    ns: &str,
    labels: &Value,
    selectors: Vec<Value>,
    clusters: Vec<String>,
) -> Value {
    json!({
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": { "name": name, "namespace": ns, "labels": labels },
        "spec": {
            "resourceSelectors": selectors,
            "placement": { "clusterAffinity": { "clusterNames": clusters } },
        },
    })
}

/// The chart values of a placed service: the descriptor's `valuesOverwrite` with the placement
/// injected — at the top level for HELM charts, under `voChartOverwrite` for WOT charts. With
/// `hdaGraphIntent.useStaticPlacement` (`static_placement`) the values go as written and the
/// chart's own affinity applies, as in the reference SMO.
pub fn values_for(
    service: &Service,
    cluster: &str,
    import_clusters: &[String],
    static_placement: bool,
) -> Value {
    let mut values: Map<String, Value> = service.artifact.values_overwrite.clone();
    if static_placement {
        return Value::Object(values);
    }
    let injected = [
        ("clustersAffinity".to_string(), json!([cluster])),
        ("serviceImportClusters".to_string(), json!(import_clusters)),
    ];
    match service.artifact.implementer() {
        Implementer::Wot => {
            let slot = values
                .entry("voChartOverwrite")
                .or_insert_with(|| json!({}));
            if !slot.is_object() {
                *slot = json!({});
            }
            if let Some(m) = slot.as_object_mut() {
                m.extend(injected);
            }
        }
        _ => values.extend(injected),
    }
    Value::Object(values)
}

#[cfg(test)]
mod drift_tests {
    use super::*;

    #[test]
    fn system_namespaces_are_reserved_and_ordinary_ones_are_not() {
        for n in [
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "karmada-system",
            "karmada-cluster",
            "karmada-es-edge-a",
        ] {
            assert!(reserved_namespace(n).is_some(), "{n}");
        }
        for n in ["default", "demo", "kubeflow", "my-karmada"] {
            assert!(reserved_namespace(n).is_none(), "{n}");
        }
    }

    #[test]
    fn drift_is_a_missing_or_different_field_of_what_smo_wrote_never_a_server_default() {
        let desired = json!({"metadata": {"name": "g-web", "labels": {"smo.io/graph": "g"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1", "resources": {"requests": {"cpu": "0.5"}}}]}}}});
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["labels"]["added-by-someone"] = json!("x");
        live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        live["spec"]["replicas"] = json!(2.0);
        live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] =
            json!("500m");
        live["status"] = json!({"readyReplicas": 2});
        assert!(
            !drifted(&desired, &live),
            "server defaults and status are not drift"
        );

        let mut image = live.clone();
        image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:1");
        assert!(drifted(&desired, &image));
        let mut label = live.clone();
        label["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("smo.io/graph");
        assert!(drifted(&desired, &label));
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(drifted(&desired, &scaled));
        let mut container = live;
        container["spec"]["template"]["spec"]["containers"] = json!([]);
        assert!(drifted(&desired, &container));
    }

    /// A Deployment as `render` writes it, and as an API server gives it back: quantities in
    /// canonical form, defaults filled in.
    fn rendered_and_served() -> (Value, Value) {
        let desired = json!({"metadata": {"name": "g-web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
                 "resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"},
                               "limits": {"cpu": "1500m", "memory": "1Gi"}}}]}}}});
        let mut live = desired.clone();
        let c = &mut live["spec"]["template"]["spec"]["containers"][0];
        c["resources"] = json!({"requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {"cpu": "1.5", "memory": "1073741824"}});
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["ports"][0]["protocol"] = json!("TCP");
        (desired, live)
    }

    #[test]
    fn a_resource_amount_someone_changed_is_drift_and_its_canonical_spelling_is_not() {
        let (desired, live) = rendered_and_served();
        assert!(
            !drifted(&desired, &live),
            "the same amounts, spelt otherwise"
        );
        let mut numeric = live.clone();
        numeric["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] =
            json!(1);
        assert!(!drifted(&desired, &numeric), "a number is a quantity too");

        for (part, key, value) in [
            ("requests", "cpu", "2"),
            ("requests", "memory", "512Mi"),
            ("limits", "cpu", "1"),
            ("limits", "memory", "1G"),
        ] {
            let mut edited = live.clone();
            edited["spec"]["template"]["spec"]["containers"][0]["resources"][part][key] =
                json!(value);
            assert!(drifted(&desired, &edited), "{part}.{key} = {value}");
        }
        let mut removed = live;
        removed["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            .as_object_mut()
            .unwrap()
            .remove("memory");
        assert!(drifted(&desired, &removed), "a limit removed");
    }

    #[test]
    fn an_element_someone_added_to_a_list_smo_wrote_is_drift() {
        let (desired, live) = rendered_and_served();
        let mut sidecar = live.clone();
        sidecar["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "miner", "image": "evil:1"}));
        assert!(drifted(&desired, &sidecar), "a container added");
        let mut port = live;
        port["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array_mut()
            .unwrap()
            .push(json!({"containerPort": 22, "protocol": "TCP"}));
        assert!(drifted(&desired, &port), "a port added");

        // A cluster added to a PropagationPolicy's placement: the service would run there too.
        let policy = json!({"metadata": {"name": "g-web"},
            "spec": {"placement": {"clusterAffinity": {"clusterNames": ["edge-a"]}}}});
        let mut wider = policy.clone();
        wider["spec"]["placement"]["clusterAffinity"]["clusterNames"] = json!(["edge-a", "edge-b"]);
        assert!(drifted(&policy, &wider));
        assert!(!drifted(&policy, &policy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH: &str = r#"
hdaGraph:
  imVersion: 0.4.0
  id: shop
  version: "1.0.0"
  services:
    - id: web
      deployment:
        trigger: {auto: {dependencies: [api]}}
        intent:
          compute: {cpu: light, ram: small, storage: light, gpu: {enabled: false}}
          connectionPoints: [api]
      artifact: {image: "nginx:1.27", ports: [{port: 80, name: http}]}
    - id: api
      deployment:
        trigger: {auto: {dependencies: []}}
        intent:
          compute: {cpu: small, ram: medium, storage: light, gpu: {enabled: true}}
      artifact: {image: "example/api:2", ports: [{port: 8080}]}
"#;

    fn graph() -> Graph {
        crate::hdag::parse(GRAPH.as_bytes())
            .expect("fixture parses")
            .graph
    }

    #[test]
    fn names_are_deterministic_dns_labels() {
        assert_eq!(object_name("shop", "web"), "shop-web");
        let long = object_name(&"g".repeat(40), &"s".repeat(40));
        assert!(long.len() <= 63, "{long}");
        assert_eq!(long, object_name(&"g".repeat(40), &"s".repeat(40)));
        assert_ne!(long, object_name(&"g".repeat(40), &"t".repeat(40)));
    }

    #[test]
    fn renders_deployment_service_policy_and_mcs_objects() {
        let g = graph();
        let placement: BTreeMap<String, String> = [
            ("web".into(), "edge-a".into()),
            ("api".into(), "cloud-gpu".into()),
        ]
        .into();
        let replicas = BTreeMap::from([("web".to_string(), 2)]);
        let objs = render(&RenderInput {
            graph: &g,
            project: "demo",
            placement: &placement,
            replicas: &replicas,
        });
        let kinds: Vec<(&str, &str)> = objs
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("Service", "shop-web"),
                ("Deployment", "shop-web"),
                ("PropagationPolicy", "shop-web"),
                ("Service", "shop-api"),
                ("Deployment", "shop-api"),
                ("ServiceExport", "shop-api"),
                ("PropagationPolicy", "shop-api"),
                ("ServiceImport", "shop-api"),
                ("PropagationPolicy", "shop-api-import"),
            ]
        );
        let web = &objs[1];
        assert_eq!(web["spec"]["replicas"], 2);
        let c = &web["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        let api = &objs[4]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(api["resources"]["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(
            objs[6]["spec"]["placement"]["clusterAffinity"]["clusterNames"],
            json!(["cloud-gpu"])
        );
        assert_eq!(
            objs[8]["spec"]["placement"]["clusterAffinity"]["clusterNames"],
            json!(["edge-a"])
        );
        assert!(objs.iter().all(|o| o["metadata"]["namespace"] == "demo"
            && o["metadata"]["labels"][LABEL_GRAPH] == "shop"));
    }

    #[test]
    fn unplaced_services_render_nothing() {
        let g = graph();
        let placement = BTreeMap::from([("api".to_string(), "cloud-gpu".to_string())]);
        let objs = render(&RenderInput {
            graph: &g,
            project: "demo",
            placement: &placement,
            replicas: &BTreeMap::new(),
        });
        assert!(objs.iter().all(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("shop-api")
        }));
        // No caller is placed, so no import.
        assert!(objs.iter().all(|o| o["kind"] != "ServiceImport"));
    }
}

/// Why a project may not be named so, if it may not: a project is a namespace in every member
/// cluster, and these belong to Kubernetes or Karmada themselves (deploying there, and worse,
/// deleting the namespace on removal, would damage the federation).
pub fn reserved_namespace(name: &str) -> Option<&'static str> {
    if name.starts_with("kube-") {
        Some("namespaces starting with kube- belong to Kubernetes")
    } else if name.starts_with("karmada-") {
        Some("namespaces starting with karmada- belong to Karmada")
    } else {
        // `default` stays allowed: the reference's examples deploy there, and smo never deletes
        // a namespace it did not create.
        None
    }
}

/// True when a live object no longer carries what smo wrote: a field of `desired`'s labels,
/// annotations or spec is missing or different in `live`, or a list smo wrote has elements
/// added or removed. Fields the server added (defaults, status, managedFields) do not count.
/// Under `resources`, quantities compare by amount: API servers canonicalise their text (`0.5` →
/// `500m`, `1000m` → `1`), so only a different amount is drift.
pub fn drifted(desired: &Value, live: &Value) -> bool {
    fn covers(want: &Value, have: &Value, quantities: bool) -> bool {
        match (want, have) {
            (Value::Null, _) => true,
            (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| {
                let have = h.get(k).unwrap_or(&Value::Null);
                covers(v, have, quantities || k == "resources")
            }),
            (Value::Array(w), Value::Array(h)) => {
                w.len() == h.len() && w.iter().zip(h).all(|(a, b)| covers(a, b, quantities))
            }
            (Value::Number(a), Value::Number(b)) if !quantities => a.as_f64() == b.as_f64(),
            (a, b) if quantities => match (quantity_text(a), quantity_text(b)) {
                (Some(a), Some(b)) => crate::hdag::same_quantity(&a, &b),
                _ => a == b,
            },
            (a, b) => a == b,
        }
    }
    let meta = |v: &Value, k: &str| v["metadata"][k].clone();
    !(covers(&meta(desired, "labels"), &meta(live, "labels"), false)
        && covers(
            &meta(desired, "annotations"),
            &meta(live, "annotations"),
            false,
        )
        && covers(&desired["spec"], &live["spec"], false))
}

/// A quantity as text: a string, or a number (YAML `cpu: 1` arrives as one).
fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
