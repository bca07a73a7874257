//! End-to-end tests: the sim served over TCP, driven through a real `kube::Client` (plain
//! HTTP, no auth) exactly as smo talks to Karmada, plus raw HTTP for metrics, admin and Grafana.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Service},
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
        PostParams,
    },
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};

use super::{Sim, SimConfig, SimHandle, kubeconfig_yaml};

struct Fixture {
    client: Client,
    url: String,
    http: reqwest::Client,
    sim: Sim,
    _handle: SimHandle,
}

async fn start(config: SimConfig) -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::new(config);
    let (addr, handle) = sim.spawn_on("127.0.0.1:0").expect("bind");
    let url = format!("http://{addr}");
    let client = Client::try_from(Config::new(url.parse().expect("url"))).expect("client");
    Fixture {
        client,
        url,
        http: reqwest::Client::new(),
        sim,
        _handle: handle,
    }
}

impl Fixture {
    /// POSTs `body` to `path` as JSON, asserting success; the answer.
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let ok = r.status().is_success();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert!(ok, "POST {path}: {answer}");
        answer
    }

    /// GETs `path`; the answer as JSON.
    async fn get(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.url)).send().await;
        r.unwrap().json().await.unwrap()
    }
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn clusters_ar() -> ApiResource {
    ar("cluster.karmada.io", "v1alpha1", "Cluster", "clusters")
}

fn policies_ar() -> ApiResource {
    ar(
        "policy.karmada.io",
        "v1alpha1",
        "PropagationPolicy",
        "propagationpolicies",
    )
}

fn apply() -> PatchParams {
    PatchParams::apply("smo").force()
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn deployment(name: &str, replicas: i32, cpu: &str, memory: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "smo.io/graph": "g"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
            },
        },
    }))
    .expect("deployment")
}

fn policy(name: &str, target: &str, clusters: &[&str], scheduling: Option<&str>) -> DynamicObject {
    let mut placement = json!({"clusterAffinity": {"clusterNames": clusters}});
    if let Some(s) = scheduling {
        placement["replicaScheduling"] = json!({"replicaSchedulingType": s});
    }
    serde_json::from_value(json!({
        "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": name},
        "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": target}],
                 "placement": placement},
    }))
    .expect("policy")
}

async fn ensure_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .patch(name, &apply(), &Patch::Apply(&ns))
        .await
        .expect("namespace");
}

async fn cluster_summary(client: &Client, name: &str) -> Value {
    let c = Api::<DynamicObject>::all_with(client.clone(), &clusters_ar())
        .get(name)
        .await
        .expect("cluster");
    c.data["status"]["resourceSummary"].clone()
}

#[tokio::test]
async fn kube_talks_plain_http_via_kubeconfig_and_discovery() {
    let f = start(SimConfig::demo()).await;
    let kc = Kubeconfig::from_yaml(&kubeconfig_yaml(&f.url)).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    assert_eq!(config.cluster_url.to_string(), format!("{}/", f.url));
    let client = Client::try_from(config).expect("client");
    let v = client.apiserver_version().await.expect("version");
    assert_eq!(
        (v.major.as_str(), v.minor.as_str(), v.git_version.as_str()),
        ("1", "33", "v1.33.0-sim")
    );
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let karmada = discovery.get("cluster.karmada.io").expect("karmada group");
    assert!(
        karmada
            .recommended_resources()
            .iter()
            .any(|(r, _)| r.kind == "Cluster" && r.plural == "clusters")
    );
    assert!(discovery.get("multicluster.x-k8s.io").is_some());
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .expect("list")
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");
}

#[tokio::test]
async fn server_side_apply_get_list_delete() {
    let f = start(SimConfig::demo()).await;
    ensure_namespace(&f.client, "p").await;
    let api: Api<Deployment> = Api::namespaced(f.client.clone(), "p");
    let d = deployment("web", 2, "500m", "256Mi");
    let first = api
        .patch("web", &apply(), &Patch::Apply(&d))
        .await
        .expect("apply create");
    let second = api
        .patch("web", &apply(), &Patch::Apply(&d))
        .await
        .expect("apply again");
    assert_eq!(
        serde_json::to_value(&first).ok(),
        serde_json::to_value(&second).ok(),
        "apply is idempotent"
    );
    assert_eq!(first.metadata.generation, Some(1));
    assert!(first.metadata.uid.is_some() && first.metadata.creation_timestamp.is_some());
    assert_eq!(
        first
            .metadata
            .managed_fields
            .as_ref()
            .map(|m| m[0].manager.clone()),
        Some(Some("smo".into()))
    );

    let mut bigger = d.clone();
    bigger.spec.as_mut().expect("spec").replicas = Some(3);
    let third = api
        .patch("web", &apply(), &Patch::Apply(&bigger))
        .await
        .expect("apply update");
    assert_eq!(third.metadata.generation, Some(2));
    assert_ne!(third.resource_version(), first.resource_version());

    api.create(
        &PostParams::default(),
        &deployment("api", 1, "100m", "64Mi"),
    )
    .await
    .expect("create");
    let err = api
        .create(
            &PostParams::default(),
            &deployment("api", 1, "100m", "64Mi"),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), 409);
    let mut stale = api.get("api").await.expect("get");
    stale.metadata.resource_version = Some("1".into());
    assert_eq!(
        code(
            api.replace("api", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        409
    );

    let by_label = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(
        by_label
            .items
            .iter()
            .map(|d| d.name_any())
            .collect::<Vec<_>>(),
        vec!["web"]
    );
    let by_field = api
        .list(&ListParams::default().fields("metadata.name=api"))
        .await
        .expect("list");
    assert_eq!(by_field.items.len(), 1);
    let everywhere: Api<Deployment> = Api::all(f.client.clone());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .expect("list all")
            .items
            .len(),
        2
    );

    let dry = Patch::Apply(deployment("dry", 1, "1", "1Gi"));
    let dry = api
        .patch("dry", &apply().dry_run(), &dry)
        .await
        .expect("dry run");
    assert_eq!(dry.name_any(), "dry");
    assert_eq!(
        code(api.get("dry").await.unwrap_err()),
        404,
        "dry runs persist nothing"
    );

    api.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(code(api.get("web").await.unwrap_err()), 404);
    match api
        .delete("web", &DeleteParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, "deployments.apps \"web\" not found");
        }
        other => panic!("{other:?}"),
    }

    let services: Api<Service> = Api::namespaced(f.client.clone(), "p");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}))
    .expect("svc");
    let svc = services
        .patch("api", &apply(), &Patch::Apply(&svc))
        .await
        .expect("service");
    assert!(svc.spec.and_then(|s| s.cluster_ip).is_some());

    let exports = Api::<DynamicObject>::namespaced_with(
        f.client.clone(),
        "p",
        &ar(
            "multicluster.x-k8s.io",
            "v1alpha1",
            "ServiceExport",
            "serviceexports",
        ),
    );
    let ex: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceExport", "metadata": {"name": "api"}}))
        .expect("export");
    exports
        .patch("api", &apply(), &Patch::Apply(&ex))
        .await
        .expect("export apply");
    assert_eq!(
        exports
            .get("api")
            .await
            .expect("get export")
            .metadata
            .namespace
            .as_deref(),
        Some("p")
    );
}

#[tokio::test]
async fn namespaces_must_exist_unless_configured() {
    let f = start(SimConfig::demo()).await;
    let api: Api<Deployment> = Api::namespaced(f.client.clone(), "nowhere");
    match api
        .patch(
            "web",
            &apply(),
            &Patch::Apply(deployment("web", 1, "1", "1Gi")),
        )
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.message.as_str()),
                (404, "namespaces \"nowhere\" not found")
            );
        }
        other => panic!("{other:?}"),
    }
    let lenient = start(SimConfig {
        auto_create_namespaces: true,
        ..SimConfig::demo()
    })
    .await;
    let api: Api<Deployment> = Api::namespaced(lenient.client.clone(), "nowhere");
    api.patch(
        "web",
        &apply(),
        &Patch::Apply(deployment("web", 1, "1", "1Gi")),
    )
    .await
    .expect("auto namespace");
    Api::<Namespace>::all(lenient.client.clone())
        .get("nowhere")
        .await
        .expect("created");
}

#[tokio::test]
async fn policy_places_replicas_and_updates_cluster_summary() {
    let f = start(SimConfig::demo()).await;
    ensure_namespace(&f.client, "p").await;
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), "p");
    let policies = Api::<DynamicObject>::namespaced_with(f.client.clone(), "p", &policies_ar());
    deployments
        .patch(
            "web",
            &apply(),
            &Patch::Apply(deployment("web", 4, "1", "1Gi")),
        )
        .await
        .expect("deploy");
    let status = deployments
        .get("web")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.ready_replicas, Some(0), "no policy, nothing runs");

    let pp = policy("web-pp", "web", &["edge-a", "edge-b"], Some("Divided"));
    policies
        .patch("web-pp", &apply(), &Patch::Apply(&pp))
        .await
        .expect("policy");
    let d = deployments.get("web").await.expect("get");
    let status = d.status.expect("status");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(4), Some(4), Some(4))
    );
    assert_eq!(status.observed_generation, d.metadata.generation);
    let available = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available");
    assert_eq!(available.map(|c| c.status), Some("True".into()));
    for c in ["edge-a", "edge-b"] {
        let s = cluster_summary(&f.client, c).await;
        assert_eq!(
            s["allocated"],
            json!({"cpu": "2", "memory": "2Gi", "pods": "2"}),
            "{c}"
        );
    }
    assert_eq!(
        cluster_summary(&f.client, "cloud-gpu").await["allocated"],
        json!({})
    );

    let placements: Value = f
        .http
        .get(format!("{}/sim/placements", f.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        placements[0]["clusters"],
        json!([
        {"cluster": "edge-a", "desired": 2, "ready": 2}, {"cluster": "edge-b", "desired": 2, "ready": 2}])
    );

    // Scale through the subresource, as the scaler does.
    let pp_scale = PatchParams::default();
    let scale = deployments
        .patch_scale(
            "web",
            &pp_scale,
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(6));
    assert_eq!(
        deployments
            .get_scale("web")
            .await
            .expect("get scale")
            .status
            .map(|s| s.replicas),
        Some(6)
    );
    assert_eq!(
        cluster_summary(&f.client, "edge-a").await["allocated"]["cpu"],
        "3"
    );

    // Duplicated: every cluster runs all replicas.
    let dup = policy("web-pp", "web", &["edge-a", "edge-b"], Some("Duplicated"));
    policies
        .patch("web-pp", &apply(), &Patch::Apply(&dup))
        .await
        .expect("policy");
    assert_eq!(
        deployments
            .get("web")
            .await
            .expect("get")
            .status
            .and_then(|s| s.ready_replicas),
        Some(12)
    );

    // Taking a cluster out moves divided replicas to the other one.
    policies
        .patch("web-pp", &apply(), &Patch::Apply(&pp))
        .await
        .expect("policy");
    let r = f
        .http
        .post(format!("{}/sim/clusters/edge-a/ready", f.url))
        .json(&json!({"ready": false}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let edge_a = Api::<DynamicObject>::all_with(f.client.clone(), &clusters_ar())
        .get("edge-a")
        .await
        .expect("get");
    assert_eq!(edge_a.data["status"]["conditions"][0]["status"], "False");
    assert_eq!(
        cluster_summary(&f.client, "edge-b").await["allocated"]["cpu"],
        "6"
    );

    // Scaled to zero is still Available.
    let zero = Patch::Merge(json!({"spec": {"replicas": 0}}));
    deployments
        .patch_scale("web", &pp_scale, &zero)
        .await
        .expect("scale to zero");
    let status = deployments
        .get("web")
        .await
        .expect("get")
        .status
        .expect("status");
    let available = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available");
    assert_eq!(available.map(|c| c.status), Some("True".into()));

    // Deleting the policy frees the capacity.
    policies
        .delete("web-pp", &DeleteParams::default())
        .await
        .expect("delete policy");
    assert_eq!(
        cluster_summary(&f.client, "edge-b").await["allocated"],
        json!({})
    );
    let status = deployments
        .get("web")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.ready_replicas, Some(0));
}

#[tokio::test]
async fn capacity_exhaustion_leaves_replicas_unavailable() {
    let f = start(SimConfig::demo()).await;
    ensure_namespace(&f.client, "p").await;
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), "p");
    let policies = Api::<DynamicObject>::namespaced_with(f.client.clone(), "p", &policies_ar());
    deployments
        .patch(
            "big",
            &apply(),
            &Patch::Apply(deployment("big", 10, "1", "1Gi")),
        )
        .await
        .expect("deploy");
    policies
        .patch(
            "big",
            &apply(),
            &Patch::Apply(policy("big", "big", &["edge-a"], None)),
        )
        .await
        .expect("pp");
    let status = deployments
        .get("big")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.unavailable_replicas
        ),
        (Some(10), Some(8), Some(2))
    );
    let s = cluster_summary(&f.client, "edge-a").await;
    assert_eq!(s["allocatable"]["cpu"], "8");
    assert_eq!(s["allocated"]["cpu"], "8");
    assert_eq!(
        s["allocating"],
        json!({"cpu": "2", "memory": "2Gi", "pods": "2"})
    );

    // A later deployment does not evict running replicas; it waits.
    deployments
        .patch(
            "late",
            &apply(),
            &Patch::Apply(deployment("late", 1, "1", "1Gi")),
        )
        .await
        .expect("deploy");
    policies
        .patch(
            "late",
            &apply(),
            &Patch::Apply(policy("late", "late", &["edge-a"], None)),
        )
        .await
        .expect("pp");
    assert_eq!(
        deployments
            .get("late")
            .await
            .expect("get")
            .status
            .and_then(|s| s.ready_replicas),
        Some(0)
    );
    assert_eq!(
        deployments
            .get("big")
            .await
            .expect("get")
            .status
            .and_then(|s| s.ready_replicas),
        Some(8)
    );

    // GPUs: only cloud-gpu has them.
    let mut gpu = deployment("gpu", 3, "1", "1Gi");
    let container = &mut gpu
        .spec
        .as_mut()
        .expect("spec")
        .template
        .spec
        .as_mut()
        .expect("pod")
        .containers[0];
    container.resources.as_mut().expect("resources").limits = Some(
        [(
            "nvidia.com/gpu".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
        )]
        .into(),
    );
    deployments
        .patch("gpu", &apply(), &Patch::Apply(&gpu))
        .await
        .expect("deploy");
    let spread = policy("gpu", "gpu", &["edge-b", "cloud-gpu"], Some("Duplicated"));
    policies
        .patch("gpu", &apply(), &Patch::Apply(&spread))
        .await
        .expect("pp");
    let status = deployments
        .get("gpu")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!((status.replicas, status.ready_replicas), (Some(6), Some(2)));
    assert_eq!(
        cluster_summary(&f.client, "cloud-gpu").await["allocated"]["nvidia.com/gpu"],
        "2"
    );
}

fn counter(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_at_the_configured_rate() {
    let f = start(SimConfig::demo()).await;
    ensure_namespace(&f.client, "p").await;
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), "p");
    let policies = Api::<DynamicObject>::namespaced_with(f.client.clone(), "p", &policies_ar());
    deployments
        .patch(
            "web",
            &apply(),
            &Patch::Apply(deployment("web", 2, "1", "1Gi")),
        )
        .await
        .expect("deploy");
    policies
        .patch(
            "web",
            &apply(),
            &Patch::Apply(policy("web", "web", &["edge-b"], None)),
        )
        .await
        .expect("pp");
    let r = f
        .http
        .post(format!("{}/sim/load", f.url))
        .json(&json!({"service": "web", "namespace": "p", "rate": 42.0}))
        .send()
        .await
        .expect("load");
    assert_eq!(r.status(), 200);
    let metrics = || async {
        f.http
            .get(format!("{}/metrics", f.url))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text")
    };
    let series = "flask_http_request_total{service=\"web\",namespace=\"p\",cluster=\"edge-b\"} ";
    // The two renders happened somewhere inside [t0, t1] and [t2, t3]: bracket the increase.
    let t0 = std::time::Instant::now();
    let first = metrics().await;
    let t1 = std::time::Instant::now();
    let a = counter(&first, series).expect("counter present");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t2 = std::time::Instant::now();
    let b = counter(&metrics().await, series).expect("counter present");
    let t3 = std::time::Instant::now();
    let (low, high) = (
        42.0 * (t2 - t1).as_secs_f64(),
        42.0 * (t3 - t0).as_secs_f64(),
    );
    assert!(
        b - a >= low - 1e-3 && b - a <= high + 1e-3,
        "{} not in [{low}, {high}]",
        b - a
    );
    assert!(
        first.contains(
            "kube_deployment_status_replicas_ready{namespace=\"p\",deployment=\"web\"} 2"
        )
    );
    assert!(first.contains("sim_cluster_cpu_allocated_cores{cluster=\"edge-b\"} 2"));
    assert!(first.contains("sim_cluster_cpu_allocatable_cores{cluster=\"cloud-gpu\"} 32"));
    assert!(first.contains("# TYPE flask_http_request_total counter"));
}

#[tokio::test]
async fn grafana_dashboards_roundtrip() {
    let f = start(SimConfig::demo()).await;
    let auth = ("Authorization", "Bearer anything");
    let body =
        json!({"dashboard": {"uid": "smo-g", "title": "smo / g", "panels": []}, "overwrite": true});
    let r = f
        .http
        .post(format!("{}/api/dashboards/db", f.url))
        .header(auth.0, auth.1)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let saved: Value = r.json().await.expect("json");
    assert_eq!(
        (saved["status"].as_str(), saved["url"].as_str()),
        (Some("success"), Some("/d/smo-g/smo-g"))
    );
    let got: Value = f
        .http
        .get(format!("{}/api/dashboards/uid/smo-g", f.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(got["dashboard"]["title"], "smo / g");
    let conflict = json!({"dashboard": {"uid": "smo-g", "title": "x"}, "overwrite": false});
    let r = f
        .http
        .post(format!("{}/api/dashboards/db", f.url))
        .json(&conflict)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 412);
    let hits: Value = f
        .http
        .get(format!("{}/api/search?query=smo", f.url))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    assert_eq!(hits.as_array().map(Vec::len), Some(1));
    let r = f
        .http
        .delete(format!("{}/api/dashboards/uid/smo-g", f.url))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    let r = f
        .http
        .get(format!("{}/api/dashboards/uid/smo-g", f.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"message": "Dashboard not found"})
    );
}

#[test]
fn fixture_config_parses_and_bad_configs_are_refused() {
    let c =
        SimConfig::from_yaml(include_str!("../tests/fixtures/federation.yaml")).expect("fixture");
    assert_eq!(c.clusters.len(), 3);
    assert_eq!(c.clusters[1].memory, "34359738368");
    assert!(!c.clusters[2].ready);
    assert!(SimConfig::from_yaml("clusters: [{name: Bad, cpu: 1, memory: 1Gi}]").is_err());
    assert!(SimConfig::from_yaml("clusters: [{name: a, cpu: 1, memory: lots}]").is_err());
    assert!(
        SimConfig::from_yaml(
            "clusters: [{name: a, cpu: 1, memory: 1}, {name: a, cpu: 1, memory: 1}]"
        )
        .is_err()
    );
    assert!(SimConfig::from_yaml("clusterz: []").is_err());
    SimConfig::demo().validate().expect("demo is valid");
}

/// Checks `v` against a structural OpenAPI v3 schema (types, required, enums, unknown fields).
fn check_schema(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if schema.get("x-kubernetes-int-or-string").is_some() || schema.get("anyOf").is_some() {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errors.push(format!("{path}: expected int or string"));
        }
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{path}: expected {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        errors.push(format!("{path}: {v} not in {allowed:?}"));
    }
    if schema["format"] == "date-time"
        && v.as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_err())
    {
        errors.push(format!("{path}: not a date-time"));
    }
    for r in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if v.get(r).is_none() {
            errors.push(format!("{path}.{r}: required"));
        }
    }
    if let Some(o) = v.as_object() {
        let props = schema["properties"].as_object();
        for (k, child) in o {
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => check_schema(s, child, &format!("{path}.{k}"), errors),
                (None, Some(s)) if s.is_object() => {
                    check_schema(s, child, &format!("{path}.{k}"), errors)
                }
                (None, _) if props.is_some() => errors.push(format!("{path}.{k}: unknown field")),
                _ => {}
            }
        }
    }
    for (i, item) in v.as_array().into_iter().flatten().enumerate() {
        check_schema(&schema["items"], item, &format!("{path}[{i}]"), errors);
    }
}

#[tokio::test]
async fn cluster_objects_conform_to_the_karmada_schema() {
    let f = start(SimConfig::demo()).await;
    let clusters = Api::<DynamicObject>::all_with(f.client.clone(), &clusters_ar());
    f.http
        .post(format!("{}/sim/clusters/edge-b/ready", f.url))
        .json(&json!({"ready": false}))
        .send()
        .await
        .expect("post");
    let list = clusters.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        list.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        vec!["cloud-gpu", "edge-a", "edge-b"]
    );
    let gpu = &list.items[0].data["status"];
    assert_eq!(
        gpu["resourceSummary"]["allocatable"],
        json!({"cpu": "32", "memory": "64Gi", "pods": "110", "nvidia.com/gpu": "2"})
    );
    assert_eq!(gpu["conditions"][0]["type"], "Ready");
    assert_eq!(
        list.items[0]
            .labels()
            .get("accelerator")
            .map(String::as_str),
        Some("nvidia")
    );

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/crds/derived/cluster.karmada.io_clusters.from-openapi.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        // Under CI=true (CI sets it) a missing ../shared fails: no test passes there unrun.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and {} is missing",
            path.display()
        );
        eprintln!("skipped (CI is not set): {} not found", path.display());
        return;
    };
    let crd: Value = serde_norway::from_str(&text).expect("crd yaml");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let raw: Value = f
        .http
        .get(format!(
            "{}/apis/cluster.karmada.io/v1alpha1/clusters",
            f.url
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    for item in raw["items"].as_array().expect("items") {
        let mut errors = Vec::new();
        check_schema(schema, item, "", &mut errors);
        assert!(
            errors.is_empty(),
            "{}: {errors:?}",
            item["metadata"]["name"]
        );
    }
    let mut bad = raw["items"][0].clone();
    bad["spec"]["bogus"] = json!(1);
    bad["status"]["conditions"][0]["status"] = json!(true);
    let mut errors = Vec::new();
    check_schema(schema, &bad, "", &mut errors);
    assert_eq!(
        errors.len(),
        2,
        "the checker itself catches mistakes: {errors:?}"
    );
    let edge_b = raw["items"]
        .as_array()
        .and_then(|i| i.iter().find(|c| c["metadata"]["name"] == "edge-b"))
        .expect("edge-b");
    assert_eq!(
        edge_b["spec"]["taints"][0]["key"],
        "cluster.karmada.io/not-ready"
    );
}

#[tokio::test]
async fn a_state_file_keeps_the_federation_across_a_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let file = std::env::temp_dir().join(format!(
        "smo-sim-state-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let config = || SimConfig {
        state_file: Some(file.clone()),
        ..SimConfig::demo()
    };
    let (addr, handle) = Sim::new(config()).spawn_on("127.0.0.1:0").expect("bind");
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{url}{path}")).json(&body).send();
    assert!(
        post("/api/v1/namespaces", json!({"metadata": {"name": "keep"}}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    assert!(
        post("/api/v1/namespaces/keep/configmaps", cm)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let before: Value = http
        .get(format!("{url}/api/v1/namespaces/keep/configmaps/c"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A CRD and an object of its kind.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "knobs.example.smo.io"},
        "spec": {"group": "example.smo.io", "scope": "Namespaced",
            "names": {"plural": "knobs", "singular": "knob", "kind": "Knob"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
    for (path, body) in [
        (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
        ),
        (
            "/apis/example.smo.io/v1/namespaces/keep/knobs",
            json!({"apiVersion": "example.smo.io/v1", "kind": "Knob", "metadata": {"name": "k"}}),
        ),
    ] {
        let r = post(path, body).await.unwrap();
        assert!(
            r.status().is_success(),
            "{path}: {}",
            r.text().await.unwrap()
        );
    }
    // What was set at run time: a cluster added, one marked not Ready, a service's load.
    for (path, body) in [
        (
            "/sim/clusters",
            json!({"name": "late", "cpu": 4, "memory": "8Gi", "labels": {"tier": "edge"}}),
        ),
        ("/sim/clusters/edge-a/ready", json!({"ready": false})),
        (
            "/sim/load",
            json!({"namespace": "keep", "service": "web", "rate": 42.5}),
        ),
    ] {
        let r = post(path, body).await.unwrap();
        assert!(
            r.status().is_success(),
            "{path}: {}",
            r.text().await.unwrap()
        );
    }
    // A clean stop writes the file; a new sim on it serves the same object, same version.
    handle.stop().await.unwrap();
    assert!(file.exists());
    let (addr, _handle) = Sim::new(config()).spawn_on("127.0.0.1:0").expect("bind");
    let after: Value = reqwest::get(format!("http://{addr}/api/v1/namespaces/keep/configmaps/c"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after, before);
    // New writes continue the version sequence instead of reusing versions.
    let r: Value = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/namespaces/keep/configmaps"))
        .json(&json!({"metadata": {"name": "d"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&r) > rv(&before), "{r}");
    // The custom kind is served again, with its object.
    let knob = reqwest::get(format!(
        "http://{addr}/apis/example.smo.io/v1/namespaces/keep/knobs/k"
    ))
    .await
    .unwrap();
    assert_eq!(knob.status(), 200);
    // The configured clusters, plus the one added at run time, with readiness and load as set.
    let state: Value = reqwest::get(format!("http://{addr}/sim/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ready: std::collections::BTreeMap<String, bool> = state["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["ready"] == true))
        .collect();
    assert_eq!(
        ready,
        [
            ("cloud-gpu", true),
            ("edge-a", false),
            ("edge-b", true),
            ("late", true)
        ]
        .map(|(n, r)| (n.to_string(), r))
        .into()
    );
    let late: Value = reqwest::get(format!(
        "http://{addr}/apis/cluster.karmada.io/v1alpha1/clusters/late"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(late["metadata"]["labels"]["tier"], "edge", "{late}");
    assert_eq!(
        state["loads"],
        json!([{"namespace": "keep", "service": "web", "rate": 42.5}])
    );
    let _ = std::fs::remove_file(&file);
}

/// The sim enforces smo's fence policy (deploy/fence-policy.yaml) and answers a stale writer as
/// kube-apiserver answers a ValidatingAdmissionPolicy denial; every write lands in the audit log
/// with its User-Agent.
#[tokio::test]
async fn a_write_that_lowers_the_fencing_token_is_denied_and_every_write_is_logged() {
    let f = start(SimConfig::demo()).await;
    let svcs: Api<Service> = Api::namespaced(f.client.clone(), "default");
    let svc = |token: Option<&str>, port: i32| {
        let mut v = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "fenced"},
            "spec": {"ports": [{"port": port}]}});
        if let Some(t) = token {
            v["metadata"]["annotations"] = json!({ super::FENCE_ANNOTATION: t });
        }
        v
    };
    svcs.patch("fenced", &apply(), &Patch::Apply(svc(Some("5"), 80)))
        .await
        .unwrap();
    let err = svcs
        .patch("fenced", &apply(), &Patch::Apply(svc(Some("3"), 81)))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert!(
        status
            .message
            .contains("ValidatingAdmissionPolicy 'smo-fence'")
            && status.message.contains("fencing token 3 is older than 5"),
        "{}",
        status.message
    );
    let live = svcs.get("fenced").await.unwrap();
    assert_eq!(
        live.spec.unwrap().ports.unwrap()[0].port,
        80,
        "nothing changed"
    );
    // An equal or newer token, or a writer without one, passes.
    for (token, port) in [(Some("5"), 82), (Some("9"), 83), (None, 84)] {
        svcs.patch("fenced", &apply(), &Patch::Apply(svc(token, port)))
            .await
            .unwrap();
    }
    let log: Vec<super::WriteRecord> = f
        .http
        .get(format!("{}/sim/writes", f.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u16> = log
        .iter()
        .filter(|w| w.path.contains("/services/fenced"))
        .map(|w| w.status)
        .collect();
    assert_eq!(statuses, [201, 403, 200, 200, 200]);
    assert!(
        log.iter()
            .all(|w| w.method == "PATCH" && !w.received.is_empty())
    );
}

/// The sim evaluates the fence policy it holds, not a rule of its own: the same file with `>=`
/// changed to `>`, applied through the API as `kubectl apply` does, refuses an equal token (which
/// the shipped policy admits), and deleting the binding takes the policy out of force.
#[tokio::test]
async fn the_sim_enforces_the_admission_policy_applied_through_the_api_not_a_rule_of_its_own() {
    let f = start(SimConfig::demo()).await;
    let vap = ar(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
    );
    let vapb = ar(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    );
    let policies = Api::<DynamicObject>::all_with(f.client.clone(), &vap);
    let bindings = Api::<DynamicObject>::all_with(f.client.clone(), &vapb);
    // In force from the start, and served like any object.
    let shipped = policies.get(super::FENCE_POLICY).await.unwrap();
    let expression = shipped.data["spec"]["validations"][0]["expression"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(expression.contains(">="), "{expression}");
    bindings.get(super::FENCE_POLICY).await.unwrap();

    let svcs: Api<Service> = Api::namespaced(f.client.clone(), "default");
    let svc = |token: &str, port: i32| {
        Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "fenced", "annotations": {super::FENCE_ANNOTATION: token}},
            "spec": {"ports": [{"port": port}]}}))
    };
    svcs.patch("fenced", &apply(), &svc("5", 80)).await.unwrap();
    svcs.patch("fenced", &apply(), &svc("5", 81)).await.unwrap();

    assert_eq!(super::admission::FENCE_POLICY_YAML.matches(">=").count(), 1);
    let stricter = super::admission::FENCE_POLICY_YAML.replace(">=", ">");
    let docs = super::admission::documents(&stricter).unwrap();
    let kubectl = PatchParams::apply("kubectl").force();
    policies
        .patch(super::FENCE_POLICY, &kubectl, &Patch::Apply(&docs[0]))
        .await
        .unwrap();
    let err = svcs
        .patch("fenced", &apply(), &svc("5", 82))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "services \"fenced\" is forbidden: ValidatingAdmissionPolicy 'smo-fence' with binding \
         'smo-fence' denied request: stale writer: fencing token 5 is older than 5, written by a \
         newer holder of the lock"
    );
    svcs.patch("fenced", &apply(), &svc("6", 83)).await.unwrap();

    // An expression that does not compile is refused when written, as by kube-apiserver.
    let mut broken = docs[0].clone();
    broken["spec"]["validations"][0]["expression"] = json!("int(object.metadata.name");
    let err = policies
        .patch(super::FENCE_POLICY, &kubectl, &Patch::Apply(&broken))
        .await
        .unwrap_err();
    assert_eq!(code(err), 422);

    // Without its binding the policy is not in force: a lower token passes.
    bindings
        .delete(super::FENCE_POLICY, &DeleteParams::default())
        .await
        .unwrap();
    svcs.patch("fenced", &apply(), &svc("1", 84)).await.unwrap();
    let live = svcs.get("fenced").await.unwrap();
    assert_eq!(live.spec.unwrap().ports.unwrap()[0].port, 84);
}

/// The write log names each write's object, the writer's fencing token and what the write did,
/// in the order the writes were applied: a second create, a write by two writers or a token that
/// goes down shows there even though the store keeps one object per name.
#[tokio::test]
async fn the_write_log_records_each_writes_object_token_and_effect_in_order() {
    use super::{Effect, WriteRecord};
    let f = start(SimConfig::demo()).await;
    let svcs: Api<Service> = Api::namespaced(f.client.clone(), "default");
    let svc = |token: Option<i64>, port: i32| {
        let mut v = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "logged"},
            "spec": {"ports": [{"port": port}]}});
        if let Some(t) = token {
            v["metadata"]["annotations"] = json!({ super::FENCE_ANNOTATION: t.to_string() });
        }
        v
    };
    // Created, unchanged (the same object again), updated, refused (older token), deleted, and
    // created anew by POST without a token.
    for (token, port) in [(Some(4), 80), (Some(4), 80), (Some(6), 81), (Some(5), 82)] {
        let _ = svcs
            .patch("logged", &apply(), &Patch::Apply(svc(token, port)))
            .await;
    }
    svcs.delete("logged", &DeleteParams::default())
        .await
        .unwrap();
    let posted: Service = serde_json::from_value(svc(None, 83)).unwrap();
    svcs.create(&PostParams::default(), &posted).await.unwrap();
    // A dry run and a request on a whole collection name no effect.
    let dry = PatchParams {
        dry_run: true,
        ..apply()
    };
    svcs.patch("logged", &dry, &Patch::Apply(svc(Some(9), 84)))
        .await
        .unwrap();
    svcs.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();

    let log: Vec<WriteRecord> = f
        .http
        .get(format!("{}/sim/writes", f.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    /// Method, kind, name, status, token, effect.
    type Seen<'a> = (&'a str, &'a str, &'a str, u16, Option<i64>, Option<Effect>);
    let seen: Vec<Seen> = log
        .iter()
        .map(|w| {
            (
                w.method.as_str(),
                w.kind.as_str(),
                w.name.as_str(),
                w.status,
                w.fence,
                w.effect,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "PATCH",
                "Service",
                "logged",
                201,
                Some(4),
                Some(Effect::Created)
            ),
            (
                "PATCH",
                "Service",
                "logged",
                200,
                Some(4),
                Some(Effect::Unchanged)
            ),
            (
                "PATCH",
                "Service",
                "logged",
                200,
                Some(6),
                Some(Effect::Updated)
            ),
            ("PATCH", "Service", "logged", 403, Some(5), None),
            (
                "DELETE",
                "Service",
                "logged",
                200,
                None,
                Some(Effect::Deleted)
            ),
            (
                "POST",
                "Service",
                "logged",
                201,
                None,
                Some(Effect::Created)
            ),
            ("PATCH", "Service", "logged", 200, Some(9), None),
            ("DELETE", "Service", "", 200, None, None),
        ]
    );
    assert!(log.iter().all(|w| w.namespace == "default"), "{log:?}");
}

/// A watch's events, line by line, with a deadline per line.
struct Events(reqwest::Response, Vec<u8>);

impl Events {
    async fn open(url: &str) -> Events {
        let r = reqwest::Client::new().get(url).send().await.expect("watch");
        assert_eq!(r.status(), 200);
        Events(r, Vec::new())
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(at) = self.1.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.1.drain(..=at).collect();
                return serde_json::from_slice(&line).expect("one JSON event per line");
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), self.0.chunk())
                .await
                .expect("an event within 30 s")
                .expect("the stream reads")
                .expect("the stream is open");
            self.1.extend_from_slice(&chunk);
        }
    }
}

fn event(e: &Value) -> (String, String) {
    (
        e["type"].as_str().unwrap_or_default().to_string(),
        e["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn watches_stream_changes_resume_from_a_version_and_send_410_when_it_is_gone() {
    let f = start(SimConfig::demo()).await;
    let post = |path: &'static str, body: Value| f.post(path, body);
    post("/api/v1/namespaces", json!({"metadata": {"name": "w"}})).await;
    let cm = |name: &str, labels: Value| json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}});
    let a = post(
        "/api/v1/namespaces/w/configmaps",
        cm("a", json!({"app": "x"})),
    )
    .await;
    let base = format!("{}/api/v1/namespaces/w/configmaps?watch=true", f.url);
    // From now: the current objects as ADDED, then changes; the selector filters both.
    let mut w = Events::open(&format!("{base}&labelSelector=app%3Dx")).await;
    assert_eq!(event(&w.next().await), ("ADDED".into(), "a".into()));
    post(
        "/api/v1/namespaces/w/configmaps",
        cm("b", json!({"app": "y"})),
    )
    .await;
    post(
        "/api/v1/namespaces/w/configmaps",
        cm("c", json!({"app": "x"})),
    )
    .await;
    assert_eq!(event(&w.next().await), ("ADDED".into(), "c".into()));
    let patched = f
        .http
        .patch(format!("{}/api/v1/namespaces/w/configmaps/c", f.url))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"data":{"k":"w"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let modified = w.next().await;
    assert_eq!(event(&modified), ("MODIFIED".into(), "c".into()));
    assert_eq!(modified["object"]["data"]["k"], "w");
    let deleted = f
        .http
        .delete(format!("{}/api/v1/namespaces/w/configmaps/c", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(event(&w.next().await), ("DELETED".into(), "c".into()));
    // From a version: only what came after it, no ADDED for what already was.
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap();
    let mut resumed = Events::open(&format!("{base}&resourceVersion={rv}")).await;
    let seen: Vec<(String, String)> = [
        resumed.next().await,
        resumed.next().await,
        resumed.next().await,
        resumed.next().await,
    ]
    .iter()
    .map(event)
    .collect();
    let expect = |t: &str, n: &str| (t.to_string(), n.to_string());
    assert_eq!(
        seen,
        [
            expect("ADDED", "b"),
            expect("ADDED", "c"),
            expect("MODIFIED", "c"),
            expect("DELETED", "c")
        ]
    );
    // The watch-list protocol: the objects, then a bookmark that says the initial events ended.
    let mut listed = Events::open(&format!(
        "{base}&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    ))
    .await;
    assert_eq!(event(&listed.next().await), ("ADDED".into(), "a".into()));
    assert_eq!(event(&listed.next().await), ("ADDED".into(), "b".into()));
    let bookmark = listed.next().await;
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // More changes than the sim keeps: a watch from before them is told to list again.
    let key = super::store::ObjKey::new(super::store::Res::ConfigMap, "w", "a");
    f.sim.with_state(|st| {
        for i in 0..super::store::CHANGE_WINDOW + 1 {
            st.store.set_field(&key, "data", json!({"k": i}));
        }
    });
    let mut gone = Events::open(&format!("{base}&resourceVersion={rv}")).await;
    let e = gone.next().await;
    assert_eq!(e["type"], "ERROR", "{e}");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    // A bad selector is a 400 before any stream.
    let bad = f
        .http
        .get(format!("{base}&labelSelector=a%20in%20(b"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_crd_written_through_the_api_registers_its_kind_until_it_is_deleted() {
    let f = start(SimConfig::demo()).await;
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let (http, url) = (f.http.clone(), format!("{}{path}", f.url));
        async move {
            let mut r = http.request(method, url);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            let code = r.status().as_u16();
            (code, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let gadgets = "/apis/example.smo.io/v1/namespaces/default/gadgets";
    // Before the CRD: no such resource, as from an apiserver.
    assert_eq!(send(reqwest::Method::GET, gadgets, None).await.0, 404);
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.smo.io"},
        "spec": {"group": "example.smo.io", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema":
                {"type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
                    "properties": {"size": {"type": "integer"}}}}}}}]}});
    let (code, created) = send(
        reqwest::Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some(crd),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["conditions"][1]["type"], "Established");
    // Served, discoverable, documented and validated by its schema.
    let (_, list) = send(reqwest::Method::GET, "/apis/example.smo.io/v1", None).await;
    assert_eq!(list["resources"][0]["kind"], "Gadget", "{list}");
    let (_, groups) = send(reqwest::Method::GET, "/apis", None).await;
    assert!(groups.to_string().contains("example.smo.io/v1"), "{groups}");
    let (_, doc) = send(
        reqwest::Method::GET,
        "/openapi/v3/apis/example.smo.io/v1",
        None,
    )
    .await;
    assert_eq!(
        doc["components"]["schemas"]["example.smo.io.v1.Gadget"]["properties"]["spec"]["required"],
        json!(["size"])
    );
    let gadget = |size: Value| {
        json!({"apiVersion": "example.smo.io/v1", "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"size": size}})
    };
    let (code, refused) = send(reqwest::Method::POST, gadgets, Some(gadget(json!("big")))).await;
    assert_eq!(code, 422, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("spec.size"),
        "{refused}"
    );
    assert_eq!(
        send(reqwest::Method::POST, gadgets, Some(gadget(json!(2))))
            .await
            .0,
        201
    );
    assert_eq!(
        send(reqwest::Method::GET, gadgets, None).await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Deleting the CRD takes its kind and its objects with it.
    let (code, _) = send(
        reqwest::Method::DELETE,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.smo.io",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(send(reqwest::Method::GET, gadgets, None).await.0, 404);
    f.sim.with_state(|st| {
        assert!(
            st.store
                .list(super::store::Res::CustomResourceDefinition, None)
                .is_empty()
        );
        assert!(
            !st.store
                .kinds()
                .iter()
                .any(|r| matches!(r, super::store::Res::Custom(_)))
        );
    });
}

#[tokio::test]
async fn a_cluster_propagation_policy_places_across_namespaces_and_a_propagation_policy_wins() {
    let f = start(SimConfig::demo()).await;
    for ns in ["team-a", "team-b"] {
        f.post("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
            .await;
        f.post(
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        )
        .await;
    }
    // One ClusterPropagationPolicy for every `app: web` Deployment, on edge-a.
    f.post(
        "/apis/policy.karmada.io/v1alpha1/clusterpropagationpolicies",
        json!({"metadata": {"name": "webs"}, "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"app": "web"}}}],
            "placement": {"clusterAffinity": {"clusterNames": ["edge-a"]}}}}),
    )
    .await;
    // team-b's own PropagationPolicy takes precedence there.
    f.post(
        "/apis/policy.karmada.io/v1alpha1/namespaces/team-b/propagationpolicies",
        json!({"metadata": {"name": "mine"}, "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            "placement": {"clusterAffinity": {"clusterNames": ["edge-b"]}}}}),
    )
    .await;
    let placements = f.get("/sim/placements").await;
    let of = |ns: &str| {
        placements
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["namespace"] == ns)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of("team-a")["policy"], "webs", "{placements}");
    assert_eq!(of("team-a")["clusters"][0]["cluster"], "edge-a");
    assert_eq!(of("team-b")["policy"], "mine");
    assert_eq!(of("team-b")["clusters"][0]["cluster"], "edge-b");
    let binding: Value = f
        .http
        .get(format!(
            "{}/apis/work.karmada.io/v1alpha2/namespaces/team-a/resourcebindings/web-deployment",
            f.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        binding["metadata"]["labels"]["clusterpropagationpolicy.karmada.io/name"], "webs",
        "{binding}"
    );
}

#[tokio::test]
async fn a_cluster_nothing_reports_on_is_ready_unknown_and_tainted_unreachable_as_karmada_does() {
    let f = start(SimConfig::demo()).await;
    let set = |ready: Value| {
        let (http, url) = (
            f.http.clone(),
            format!("{}/sim/clusters/edge-a/ready", f.url),
        );
        async move {
            let r = http
                .post(url)
                .json(&json!({"ready": ready}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let ready = |c: &Value| {
        c["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap()
    };
    let c = set(json!("unknown")).await;
    assert_eq!(ready(&c)["status"], "Unknown", "{c}");
    assert_eq!(ready(&c)["reason"], "ClusterStatusUnknown");
    assert_eq!(
        c["spec"]["taints"][0]["key"],
        "cluster.karmada.io/unreachable"
    );
    let c = set(json!(false)).await;
    assert_eq!(ready(&c)["status"], "False");
    assert_eq!(
        c["spec"]["taints"][0]["key"],
        "cluster.karmada.io/not-ready"
    );
    let c = set(json!(true)).await;
    assert_eq!(ready(&c)["status"], "True");
    assert!(c["spec"].get("taints").is_none(), "{c}");
}

#[tokio::test]
async fn a_statefulset_is_propagated_scheduled_and_given_status_as_a_deployment_is() {
    let f = start(SimConfig::demo()).await;
    f.post("/api/v1/namespaces", json!({"metadata": {"name": "data"}}))
        .await;
    f.post(
        "/apis/apps/v1/namespaces/data/statefulsets",
        json!({"metadata": {"name": "db"}, "spec": {"replicas": 2, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                {"name": "db", "image": "postgres", "resources": {"requests": {"cpu": "100m"}}}]}}}}),
    )
    .await;
    // Unplaced: defaulted as by an apiserver, nothing ready.
    let sts = f.get("/apis/apps/v1/namespaces/data/statefulsets/db").await;
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(sts["status"]["readyReplicas"], 0, "{sts}");
    f.post(
        "/apis/policy.karmada.io/v1alpha1/namespaces/data/propagationpolicies",
        json!({"metadata": {"name": "db"}, "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}],
            "placement": {"clusterAffinity": {"clusterNames": ["edge-b"]}}}}),
    )
    .await;
    let sts = f.get("/apis/apps/v1/namespaces/data/statefulsets/db").await;
    assert_eq!(sts["status"]["readyReplicas"], 2, "{sts}");
    assert_eq!(sts["status"]["updatedReplicas"], 2);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    let rb = f
        .get("/apis/work.karmada.io/v1alpha2/namespaces/data/resourcebindings/db-statefulset")
        .await;
    assert_eq!(rb["spec"]["resource"]["kind"], "StatefulSet", "{rb}");
    assert_eq!(rb["spec"]["clusters"][0]["name"], "edge-b");
    // A policy for Deployments named db does not take it.
    let placements = f.get("/sim/placements").await;
    assert_eq!(placements[0]["policy"], "db", "{placements}");
}

#[tokio::test]
async fn spread_constraints_by_cluster_cap_and_require_the_clusters_a_workload_uses() {
    let f = start(SimConfig::demo()).await;
    f.post("/api/v1/namespaces", json!({"metadata": {"name": "sp"}}))
        .await;
    for (name, min, max) in [("two", 1, 2), ("four", 4, 4)] {
        f.post(
            "/apis/apps/v1/namespaces/sp/deployments",
            json!({"metadata": {"name": name}, "spec": {"replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                    {"name": "c", "image": "i", "resources": {"requests": {"cpu": "100m"}}}]}}}}),
        )
        .await;
        f.post(
            "/apis/policy.karmada.io/v1alpha1/namespaces/sp/propagationpolicies",
            json!({"metadata": {"name": name}, "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
                "placement": {"spreadConstraints": [{"spreadByField": "cluster", "minGroups": min, "maxGroups": max}]}}}),
        )
        .await;
    }
    let placements = f.get("/sim/placements").await;
    let clusters = |name: &str| -> Vec<String> {
        placements
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| {
                p["clusters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["cluster"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Two of the three clusters: the two with the most room (cloud-gpu 32 cores, edge-b 16).
    assert_eq!(clusters("two"), ["cloud-gpu", "edge-b"], "{placements}");
    // Four wanted, three exist: not scheduled.
    assert!(clusters("four").is_empty(), "{placements}");
}

#[tokio::test]
async fn a_daemonset_runs_a_pod_per_node_of_each_cluster_its_policy_picks() {
    let mut config = SimConfig::demo();
    config.clusters[1].nodes = 3;
    let f = start(config).await;
    f.post("/api/v1/namespaces", json!({"metadata": {"name": "ops"}}))
        .await;
    f.post(
        "/apis/apps/v1/namespaces/ops/daemonsets",
        json!({"metadata": {"name": "agent"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [
                {"name": "agent", "image": "fluent-bit", "resources": {"requests": {"cpu": "50m"}}}]}}}}),
    )
    .await;
    let ds = f.get("/apis/apps/v1/namespaces/ops/daemonsets/agent").await;
    // Defaulted as by an apiserver (what `kubectl rollout status` needs); nowhere yet.
    assert_eq!(
        ds["spec"]["updateStrategy"]["type"], "RollingUpdate",
        "{ds}"
    );
    assert_eq!(ds["status"]["desiredNumberScheduled"], 0, "{ds}");
    f.post(
        "/apis/policy.karmada.io/v1alpha1/namespaces/ops/propagationpolicies",
        json!({"metadata": {"name": "agent"}, "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent"}],
            "placement": {"clusterAffinity": {"clusterNames": ["edge-a", "edge-b"]},
                          "replicaScheduling": {"replicaSchedulingType": "Divided"}}}}),
    )
    .await;
    let ds = f.get("/apis/apps/v1/namespaces/ops/daemonsets/agent").await;
    // One pod per node: edge-a has 1, edge-b 3; replica division does not apply.
    let s = &ds["status"];
    assert_eq!(
        (
            &s["desiredNumberScheduled"],
            &s["numberReady"],
            &s["updatedNumberScheduled"]
        ),
        (&json!(4), &json!(4), &json!(4)),
        "{ds}"
    );
    let rb = f
        .get("/apis/work.karmada.io/v1alpha2/namespaces/ops/resourcebindings/agent-daemonset")
        .await;
    assert_eq!(rb["spec"]["replicas"], 0, "{rb}");
    assert_eq!(
        rb["spec"]["clusters"],
        json!([{"name": "edge-a", "replicas": 1}, {"name": "edge-b", "replicas": 3}])
    );
    let edge_b = cluster_summary(&f.client, "edge-b").await;
    assert_eq!(edge_b["allocated"]["cpu"], "150m", "{edge_b}");
}

/// As Karmada with its Failover feature: a NotReady cluster is tainted NoSchedule and NoExecute;
/// what runs there stays (not ready) for the NoExecute toleration's seconds (the policy's
/// `clusterTolerations`, else Karmada's default 300 s), then is evicted and scheduled again.
#[tokio::test]
async fn a_workload_on_a_lost_cluster_is_evicted_when_its_toleration_runs_out() {
    let f = start(SimConfig::demo()).await;
    f.post("/api/v1/namespaces", json!({"metadata": {"name": "ev"}}))
        .await;
    for (name, tolerations) in [
        (
            "brief",
            json!([{"key": "cluster.karmada.io/not-ready", "operator": "Exists",
                          "effect": "NoExecute", "tolerationSeconds": 1}]),
        ),
        ("default", json!(null)),
        (
            "forever",
            json!([{"operator": "Exists", "effect": "NoExecute"}]),
        ),
    ] {
        f.post(
            "/apis/apps/v1/namespaces/ev/deployments",
            json!({"metadata": {"name": name}, "spec": {"replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                    {"name": "c", "image": "i", "resources": {"requests": {"cpu": "100m"}}}]}}}}),
        )
        .await;
        let mut placement = json!({"clusterAffinity": {"clusterNames": ["edge-a", "edge-b"]}});
        if !tolerations.is_null() {
            placement["clusterTolerations"] = tolerations;
        }
        f.post(
            "/apis/policy.karmada.io/v1alpha1/namespaces/ev/propagationpolicies",
            json!({"metadata": {"name": name}, "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
                "placement": placement}}),
        )
        .await;
    }
    let clusters_of = |p: &Value, name: &str| -> Vec<(String, u64)> {
        let d = p
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap();
        d["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["cluster"].as_str().unwrap().to_string(),
                    s["ready"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let both = vec![("edge-a".to_string(), 2), ("edge-b".to_string(), 2)];
    let p = f.get("/sim/placements").await;
    assert_eq!(clusters_of(&p, "brief"), both);
    let c = f
        .post("/sim/clusters/edge-a/ready", json!({"ready": false}))
        .await;
    let taints: Vec<(&str, &str)> = c["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap(), t["effect"].as_str().unwrap()))
        .collect();
    assert_eq!(
        taints,
        [
            ("cluster.karmada.io/not-ready", "NoSchedule"),
            ("cluster.karmada.io/not-ready", "NoExecute")
        ]
    );
    // Within the grace period everything stays where it was, not ready on edge-a.
    let kept = vec![("edge-a".to_string(), 0), ("edge-b".to_string(), 2)];
    let p = f.get("/sim/placements").await;
    for name in ["brief", "default", "forever"] {
        assert_eq!(clusters_of(&p, name), kept, "{name}");
    }
    let d = f.get("/apis/apps/v1/namespaces/ev/deployments/brief").await;
    assert_eq!(d["status"]["readyReplicas"], 2, "{d}");
    // The toleration's second (timeAdded has whole seconds) runs out: evicted from edge-a.
    let mut evicted = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let p = f.get("/sim/placements").await;
        if clusters_of(&p, "brief") == vec![("edge-b".to_string(), 2)] {
            evicted = true;
            assert_eq!(clusters_of(&p, "default"), kept);
            assert_eq!(clusters_of(&p, "forever"), kept);
            break;
        }
    }
    assert!(evicted, "{}", f.get("/sim/placements").await);
    let rb = f
        .get("/apis/work.karmada.io/v1alpha2/namespaces/ev/resourcebindings/brief-deployment")
        .await;
    assert_eq!(
        rb["spec"]["clusters"],
        json!([{"name": "edge-b", "replicas": 2}])
    );
    // Back: scheduled again onto both.
    f.post("/sim/clusters/edge-a/ready", json!({"ready": true}))
        .await;
    let p = f.get("/sim/placements").await;
    for name in ["brief", "default", "forever"] {
        assert_eq!(clusters_of(&p, name), both, "{name}");
    }
}

/// What each member cluster gets is a Work in its execution namespace: the template with the
/// cluster's share of replicas and the OverridePolicy rules that pick that cluster applied.
#[tokio::test]
async fn works_carry_each_clusters_copy_with_its_overrides_applied() {
    let f = start(SimConfig::demo()).await;
    f.post("/api/v1/namespaces", json!({"metadata": {"name": "shop"}}))
        .await;
    f.post(
        "/apis/apps/v1/namespaces/shop/deployments",
        json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "docker.io/library/nginx:1.27",
                 "resources": {"requests": {"cpu": "100m"}}}]}}}}),
    )
    .await;
    let pp = "/apis/policy.karmada.io/v1alpha1/namespaces/shop/propagationpolicies";
    f.post(
        pp,
        json!({"metadata": {"name": "web"}, "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            "placement": {"clusterAffinity": {"clusterNames": ["edge-a", "edge-b"]},
                          "replicaScheduling": {"replicaSchedulingType": "Divided",
                                                "replicaDivisionPreference": "Weighted"}}}}),
    )
    .await;
    f.post(
        "/apis/policy.karmada.io/v1alpha1/namespaces/shop/overridepolicies",
        json!({"metadata": {"name": "eu-mirror"}, "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            "overrideRules": [{"targetCluster": {"labelSelector": {"matchLabels": {"region": "eu-west"}}},
                "overriders": {"imageOverrider": [{"component": "Registry", "operator": "replace",
                                                   "value": "mirror.eu"}]}}]}}),
    )
    .await;
    let works = |ns: &'static str| {
        let f = &f;
        async move {
            let list = f
                .get(&format!(
                    "/apis/work.karmada.io/v1alpha1/namespaces/{ns}/works"
                ))
                .await;
            list["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let manifest = |w: &Value| w["spec"]["workload"]["manifests"][0].clone();
    let (a, b) = (
        works("karmada-es-edge-a").await,
        works("karmada-es-edge-b").await,
    );
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    let (ma, mb) = (manifest(&a[0]), manifest(&b[0]));
    // edge-a is in eu-west: the mirror; edge-b keeps the image. Each gets its share of 4.
    let image = |m: &Value| m["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    assert_eq!(image(&ma), "mirror.eu/library/nginx:1.27", "{ma}");
    assert_eq!(image(&mb), "docker.io/library/nginx:1.27", "{mb}");
    assert_eq!(ma["spec"]["replicas"], 2);
    assert_eq!(mb["spec"]["replicas"], 2);
    // The control plane's own fields stay home.
    assert!(
        ma["metadata"].get("uid").is_none() && ma.get("status").is_none(),
        "{ma}"
    );
    assert_eq!(
        a[0]["metadata"]["labels"]["resourcebinding.karmada.io/name"],
        "web-deployment"
    );
    assert_eq!(a[0]["status"]["conditions"][0]["type"], "Applied");
    // A changed override reaches the Works at once.
    let op = "/apis/policy.karmada.io/v1alpha1/namespaces/shop/overridepolicies/eu-mirror";
    let r = f
        .http
        .patch(format!("{}{op}", f.url))
        .header("content-type", "application/merge-patch+json")
        .json(&json!({"spec": {"overrideRules": [{"targetCluster": {"clusterNames": ["edge-b"]},
            "overriders": {"imageOverrider": [{"component": "Tag", "operator": "replace", "value": "1.28"}]}}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (a, b) = (
        works("karmada-es-edge-a").await,
        works("karmada-es-edge-b").await,
    );
    assert_eq!(image(&manifest(&a[0])), "docker.io/library/nginx:1.27");
    assert_eq!(image(&manifest(&b[0])), "docker.io/library/nginx:1.28");
    // Placed on edge-b alone: edge-a's Work goes, edge-b's gets all replicas.
    let r = f
        .http
        .patch(format!("{}{pp}/web", f.url))
        .header("content-type", "application/merge-patch+json")
        .json(&json!({"spec": {"placement": {"clusterAffinity": {"clusterNames": ["edge-b"]}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (a, b) = (
        works("karmada-es-edge-a").await,
        works("karmada-es-edge-b").await,
    );
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(manifest(&b[0])["spec"]["replicas"], 4);
    // Deleted: no Work left.
    let r = f
        .http
        .delete(format!(
            "{}/apis/apps/v1/namespaces/shop/deployments/web",
            f.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(works("karmada-es-edge-b").await.is_empty());
}

/// A sim served apart answers on its own threads: here while the caller's only runtime thread
/// is blocked on the answer (served on the caller's runtime, it could never answer), and it
/// stops when asked.
#[tokio::test]
async fn a_sim_served_apart_answers_while_the_callers_runtime_is_blocked() {
    use std::io::{Read as _, Write as _};
    let (addr, handle) = Sim::new(SimConfig::demo())
        .spawn_apart("127.0.0.1:0")
        .expect("bind");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    tcp.write_all(b"GET /version HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)
        .expect("an answer while this runtime's only thread waits");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("gitVersion"), "{answer}");
    handle.stop().await.unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped");
}
