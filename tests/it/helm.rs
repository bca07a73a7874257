//! Helm-chart services through a recording stand-in `helm` (helm cannot be installed here): the
//! exact arguments, the values file with the placement injected (nested under voChartOverwrite for
//! WOT charts), the namespace, and uninstall on removal.

use std::{os::unix::fs::PermissionsExt, path::Path};

use serde_json::Value;

use crate::{
    stack::Stack,
    support::{fixture, shared_dir},
};

/// A `helm` that records each call (arguments, then the values file's content) and succeeds.
fn recording_helm(dir: &Path) -> std::path::PathBuf {
    let log = dir.join("helm.log");
    let script = dir.join("helm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"ARGS $*\" >> '{log}'\nprev=''\nfor a in \"$@\"; do\n  if [ \"$prev\" = '--values' ]; then echo \"VALUES $(tr -d '\\n' < \"$a\")\" >> '{log}'; fi\n  prev=\"$a\"\ndone\nexit 0\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("helm.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn helm_services_are_installed_with_their_placement_and_uninstalled_on_remove() {
    let dir = std::env::temp_dir().join(format!("smo-helm-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let helm = recording_helm(&dir);
    let s = Stack::with_helm(&helm).await;
    let kubeconfig = s.kubeconfig.display().to_string();

    // Our own Helm fixture: two chart services and a conditional WOT VO.
    let accepted = s
        .client
        .deploy("sensors", fixture("hdag/conditional.yaml"), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    let g: Value = s.client.get("/graphs/sensor-pipeline").await.unwrap();
    let log = calls(&dir);
    let installs: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("ARGS upgrade"))
        .collect();
    assert_eq!(
        installs.len(),
        2,
        "the two non-conditional chart services: {log:#?}"
    );
    for svc in ["ingest", "analytics"] {
        let cluster = g["placement"][svc].as_str().expect("placed");
        let i = log
            .iter()
            .position(|l| l.starts_with(&format!("ARGS upgrade --install sensor-pipeline-{svc} ")))
            .unwrap_or_else(|| panic!("no install of {svc}: {log:#?}"));
        let args = &log[i];
        let expected_prefix = format!(
            "ARGS upgrade --install sensor-pipeline-{svc} oci://registry.example.com:5000/sensors/{svc} --namespace sensors --create-namespace --kubeconfig {kubeconfig} --values "
        );
        assert!(args.starts_with(&expected_prefix), "{args}");
        let values: Value =
            serde_json::from_str(log[i + 1].trim_start_matches("VALUES ")).expect("values JSON");
        assert_eq!(
            values["clustersAffinity"],
            serde_json::json!([cluster]),
            "{values}"
        );
        assert!(values["serviceImportClusters"].is_array());
        // The values file is private and gone after the call.
        let file = args.rsplit(' ').next().unwrap();
        assert!(!Path::new(file).exists(), "values file {file} left behind");
    }
    assert_eq!(
        g["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["status"] == "Deployed")
            .count(),
        2
    );

    let rm: Value = s.client.delete("/graphs/sensor-pipeline").await.unwrap();
    s.succeed(&rm).await;
    let log = calls(&dir);
    for svc in ["ingest", "analytics", "alarm-vo"] {
        let line = format!(
            "ARGS uninstall sensor-pipeline-{svc} --namespace sensors --kubeconfig {kubeconfig}"
        );
        assert!(log.contains(&line), "missing `{line}` in {log:#?}");
    }

    // The three real example descriptors deploy through it too; the WOT VO is conditional, so its
    // values (nested under voChartOverwrite) are checked through a conditional deploy.
    if let Some(shared) = shared_dir() {
        for f in [
            "hello-world-graph.yaml",
            "gpu-offloading-graph.yaml",
            "image-detection-graph.yaml",
        ] {
            let body = std::fs::read(shared.join("hdag-examples").join(f)).unwrap();
            let accepted = s.client.deploy("examples", body, false).await.unwrap();
            s.succeed(&accepted).await;
        }
        let log = calls(&dir);
        let gpu: Value = s.client.get("/graphs/gpu-offloading-graph").await.unwrap();
        assert_eq!(gpu["placement"]["ml-inference"], "cloud-gpu");
        assert!(log.iter().any(|l| l.contains("upgrade --install gpu-offloading-graph-ml-inference oci://127.0.0.1:5000/demo2/ml-inference --namespace examples")), "{log:#?}");
        let alert = serde_json::json!({"version": "4", "status": "firing", "alerts": [{"status": "firing",
            "labels": {"alertname": "main-event", "graph": "image-detection-graph", "service": "image-compression-vo", "project": "examples"}}]});
        let res: Value = s.client.post_json("/alerts", &alert).await.unwrap();
        s.succeed(&res["jobs"][0]).await;
        let log = calls(&dir);
        let i = log
            .iter()
            .position(|l| {
                l.contains("upgrade --install image-detection-graph-image-compression-vo ")
            })
            .expect("VO installed");
        let values: Value = serde_json::from_str(log[i + 1].trim_start_matches("VALUES ")).unwrap();
        // The example says `useStaticPlacement: True`: its values go as written, as in the
        // reference, and the chart's own affinity applies (WOT nesting is unit-tested in
        // federation::helm).
        assert!(values.get("clustersAffinity").is_none(), "{values}");
        assert!(
            values["voChartOverwrite"].get("clustersAffinity").is_none(),
            "{values}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reference's own alert rules label the event (`alertname`) and the conditional service,
/// never the graph; and a conditional service whose event never fired is neither uninstalled by
/// stop nor installed by start.
#[tokio::test]
async fn stop_and_start_leave_a_never_fired_service_alone_and_reference_alerts_find_their_graph() {
    let dir = std::env::temp_dir().join(format!("smo-helm-cond-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let helm = recording_helm(&dir);
    let s = Stack::with_helm(&helm).await;
    let accepted = s
        .client
        .deploy("sensors", fixture("hdag/conditional.yaml"), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    let alarm_status = |g: &Value| {
        g["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "alarm-vo")
            .map(|x| x["status"].clone())
            .unwrap()
    };
    let touched_alarm = |log: &[String]| {
        log.iter()
            .filter(|l| l.starts_with("ARGS") && l.contains("sensor-pipeline-alarm-vo"))
            .cloned()
            .collect::<Vec<_>>()
    };

    let stopped: Value = s.client.post("/graphs/sensor-pipeline/stop").await.unwrap();
    s.succeed(&stopped).await;
    let g: Value = s.client.get("/graphs/sensor-pipeline").await.unwrap();
    assert_eq!(alarm_status(&g), "Pending", "{g}");
    let started: Value = s
        .client
        .post("/graphs/sensor-pipeline/start")
        .await
        .unwrap();
    s.succeed(&started).await;
    let g: Value = s.client.get("/graphs/sensor-pipeline").await.unwrap();
    assert_eq!(
        alarm_status(&g),
        "Pending",
        "start must not install it: {g}"
    );
    let log = calls(&dir);
    assert!(
        touched_alarm(&log).is_empty(),
        "stop/start touched a release that was never installed: {:#?}",
        touched_alarm(&log)
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("ARGS uninstall sensor-pipeline-ingest ")),
        "stop uninstalls what is deployed: {log:#?}"
    );

    // What the reference's rule for event temperature-high sends: no graph label.
    let alert = serde_json::json!({"version": "4", "status": "firing", "alerts": [{"status": "firing",
        "labels": {"alertname": "temperature-high", "severity": "critical", "service": "alarm-vo"}}]});
    let res: Value = s.client.post_json("/alerts", &alert).await.unwrap();
    assert_eq!(res["jobs"].as_array().unwrap().len(), 1, "{res}");
    assert_eq!(res["jobs"][0]["graph"], "sensor-pipeline", "{res}");
    s.succeed(&res["jobs"][0]).await;
    assert!(
        calls(&dir)
            .iter()
            .any(|l| l.starts_with("ARGS upgrade --install sensor-pipeline-alarm-vo ")),
        "the alert installed the service"
    );

    // Two graphs waiting for the same event and service: nothing is guessed.
    let copy = |id: &str| {
        String::from_utf8(fixture("hdag/conditional.yaml"))
            .unwrap()
            .replace("id: sensor-pipeline", &format!("id: {id}"))
            .into_bytes()
    };
    for (project, id) in [("east", "pipeline-east"), ("west", "pipeline-west")] {
        let a = s.client.deploy(project, copy(id), false).await.unwrap();
        s.succeed(&a).await;
    }
    let res: Value = s.client.post_json("/alerts", &alert).await.unwrap();
    assert!(res["jobs"].as_array().unwrap().is_empty(), "{res}");
    let ambiguous = res["ambiguous"][0].as_str().unwrap_or_default();
    assert!(
        ambiguous.contains("pipeline-east") && ambiguous.contains("pipeline-west"),
        "{res}"
    );

    // Adopting a release the reference installed (named by service id): smo upgrades and
    // uninstalls that release, not `<graph>-<service>`.
    let adopted = String::from_utf8(copy("adopted"))
        .unwrap()
        .replacen(
            "        ociImage: oci://registry.example.com:5000/sensors/ingest\n",
            "        ociImage: oci://registry.example.com:5000/sensors/ingest\n        releaseName: ingest\n",
            1,
        );
    assert!(adopted.contains("releaseName: ingest"));
    let a = s
        .client
        .deploy("adopt", adopted.into_bytes(), false)
        .await
        .unwrap();
    s.succeed(&a).await;
    let rm: Value = s.client.delete("/graphs/adopted").await.unwrap();
    s.succeed(&rm).await;
    let log = calls(&dir);
    assert!(
        log.iter()
            .any(|l| l.starts_with("ARGS upgrade --install ingest oci://")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("ARGS uninstall ingest --namespace adopt ")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("adopted-ingest")),
        "{log:#?}"
    );
}

/// The repository's `scripts/helm`: Helm v4's own engine (helm-sdkpy, installed by scripts/setup)
/// behind helm's command line.
fn real_helm() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/helm")
}

/// Runs the real engine's `helm`, asserting success; its stdout.
fn helm_ok(args: &[&str]) -> String {
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(real_helm())
            .args(args)
            .output()
            .expect("scripts/helm runs")
    });
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Packages our own test charts and pushes them to `registry` with the real engine.
fn push_charts(registry: &str, charts: &[&str]) {
    let dir = std::env::temp_dir().join(format!("smo-charts-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for c in charts {
        // The example charts (the demo pushes them too), else the tests' own (a broken one).
        let root = env!("CARGO_MANIFEST_DIR");
        let example = format!("{root}/examples/charts/{c}");
        let src = if std::path::Path::new(&example).is_dir() {
            example
        } else {
            format!("{root}/tests/fixtures/charts/{c}")
        };
        helm_ok(&["package", &src, "-d", &dir.display().to_string()]);
        let tgz = dir.join(format!("{c}-0.1.0.tgz")).display().to_string();
        helm_ok(&[
            "push",
            &tgz,
            &format!("oci://{registry}/charts"),
            "--plain-http",
        ]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The releases Helm itself lists in `ns` (from the release Secrets it stored in the sim).
fn helm_list(kubeconfig: &Path, ns: &str) -> Vec<Value> {
    let out = helm_ok(&[
        "list",
        "-n",
        ns,
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "-o",
        "json",
    ]);
    let mut rows: Vec<Value> = serde_json::from_str(&out).expect("helm list JSON");
    rows.sort_by_key(|r| r["name"].as_str().unwrap_or_default().to_string());
    rows
}

async fn sim_get(s: &Stack, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{}{path}", s.sim_url)).await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

fn shop(registry: &str) -> Vec<u8> {
    format!(
        r#"hdaGraph:
  imVersion: 0.4.0
  id: shop
  version: "1.0"
  services:
    - id: web
      deployment:
        trigger: {{auto: {{dependencies: [worker]}}}}
        intent:
          compute: {{cpu: small, ram: small, storage: small, gpu: {{enabled: false}}}}
          connectionPoints: [worker]
      artifact:
        ociImage: oci://{registry}/charts/web
        ociConfig: {{type: App, implementer: HELM}}
        valuesOverwrite: {{greeting: from smo}}
    - id: worker
      deployment:
        trigger: {{auto: {{dependencies: []}}}}
        intent:
          compute: {{cpu: small, ram: small, storage: small, gpu: {{enabled: false}}}}
      artifact:
        ociImage: oci://{registry}/charts/worker
        ociConfig: {{type: App, implementer: HELM}}
    - id: sensor
      deployment:
        trigger: {{auto: {{dependencies: []}}}}
        intent:
          compute: {{cpu: light, ram: light, storage: light, gpu: {{enabled: false}}}}
      artifact:
        ociImage: oci://{registry}/charts/vo
        ociConfig: {{type: VO, implementer: WOT}}
        valuesOverwrite: {{thingDescription: thermometer}}
"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_services_go_through_the_real_helm_engine_from_a_real_registry() {
    let reg = crate::oci::start_registry().await;
    push_charts(&reg.addr, &["web", "worker", "vo"]);
    let s = Stack::with_helm(&real_helm()).await;
    let accepted = s
        .client
        .deploy("shop", shop(&reg.addr), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    let g: Value = s.client.get("/graphs/shop").await.unwrap();
    let placed = |svc: &str| g["placement"][svc].as_str().expect("placed").to_string();

    // What Helm rendered and created, with smo's placement injected into the values.
    let base = "/apis/apps/v1/namespaces/shop";
    for (svc, kind) in [
        ("web", "deployments"),
        ("worker", "deployments"),
        ("sensor", "statefulsets"),
    ] {
        let (code, _) = sim_get(&s, &format!("{base}/{kind}/shop-{svc}")).await;
        assert_eq!(code, 200, "{kind}/shop-{svc}");
        let (_, pp) = sim_get(
            &s,
            &format!(
                "/apis/policy.karmada.io/v1alpha1/namespaces/shop/propagationpolicies/shop-{svc}"
            ),
        )
        .await;
        assert_eq!(
            pp["spec"]["placement"]["clusterAffinity"]["clusterNames"],
            serde_json::json!([placed(svc)]),
            "{svc}: {pp}"
        );
    }
    // Karmada's view of the propagated workload: a ResourceBinding with the scheduling result
    // and each member's status, valid against the real CRD.
    let rb_path =
        "/apis/work.karmada.io/v1alpha2/namespaces/shop/resourcebindings/shop-web-deployment";
    let (code, rb) = sim_get(&s, rb_path).await;
    assert_eq!(code, 200, "{rb}");
    assert_eq!(
        rb["spec"]["clusters"],
        serde_json::json!([{"name": placed("web"), "replicas": 1}])
    );
    assert_eq!(
        rb["status"]["aggregatedStatus"][0]["status"]["readyReplicas"], 1,
        "{rb}"
    );
    assert_eq!(rb["status"]["conditions"][1]["type"], "FullyApplied");
    assert_eq!(rb["status"]["conditions"][1]["status"], "True");
    if let Some(shared) = crate::support::shared_dir() {
        let crd =
            crate::support::crd::load(&shared.join("crds/work.karmada.io_resourcebindings.yaml"))
                .expect("the ResourceBinding CRD");
        let problems = crate::support::crd::validate(&crd, &rb);
        assert!(problems.is_empty(), "{problems:#?}\n{rb}");
    }
    let (_, cm) = sim_get(&s, "/api/v1/namespaces/shop/configmaps/shop-web-config").await;
    assert_eq!(cm["data"]["greeting"], "from smo", "{cm}");
    let (_, sts) = sim_get(&s, &format!("{base}/statefulsets/shop-sensor")).await;
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "thermometer"
    );
    for path in [
        "/api/v1/namespaces/shop/serviceaccounts/shop-worker",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles/shop-worker",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings/shop-worker",
    ] {
        let (code, _) = sim_get(&s, path).await;
        assert_eq!(code, 200, "{path}");
    }
    // The release records Helm stored, and Helm reading them back.
    let (_, secrets) = sim_get(
        &s,
        "/api/v1/namespaces/shop/secrets?labelSelector=owner%3Dhelm",
    )
    .await;
    let names: Vec<&str> = secrets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.contains(&"sh.helm.release.v1.shop-web.v1"),
        "{names:?}"
    );
    let releases = helm_list(&s.kubeconfig, "shop");
    let summary: Vec<(String, String, String)> = releases
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["revision"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        ["shop-sensor", "shop-web", "shop-worker"]
            .map(|n| (n.to_string(), "1".to_string(), "deployed".to_string()))
            .to_vec()
    );

    // Re-place after a cluster fails: the moved services are upgraded (revision 2), the others
    // are left alone (revision 1).
    let lost = placed("web");
    let r = reqwest::Client::new()
        .post(format!("{}/sim/clusters/{lost}/ready", s.sim_url))
        .json(&serde_json::json!({"ready": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let accepted: Value = s.client.post("/graphs/shop/placement").await.unwrap();
    s.succeed(&accepted).await;
    let g2: Value = s.client.get("/graphs/shop").await.unwrap();
    assert_ne!(g2["placement"]["web"].as_str(), Some(lost.as_str()));
    for r in helm_list(&s.kubeconfig, "shop") {
        let svc = r["name"].as_str().unwrap().trim_start_matches("shop-");
        let moved = g["placement"][svc] != g2["placement"][svc];
        let want = if moved { "2" } else { "1" };
        assert_eq!(r["revision"], want, "{svc} (moved: {moved}): {r}");
    }
    let (_, pp) = sim_get(
        &s,
        "/apis/policy.karmada.io/v1alpha1/namespaces/shop/propagationpolicies/shop-web",
    )
    .await;
    assert_eq!(
        pp["spec"]["placement"]["clusterAffinity"]["clusterNames"],
        serde_json::json!([g2["placement"]["web"]])
    );
    let (_, rb) = sim_get(&s, rb_path).await;
    assert_eq!(
        rb["spec"]["clusters"][0]["name"], g2["placement"]["web"],
        "{rb}"
    );

    // Stop uninstalls every release: nothing of them is left.
    let accepted: Value = s.client.post("/graphs/shop/stop").await.unwrap();
    s.succeed(&accepted).await;
    assert!(helm_list(&s.kubeconfig, "shop").is_empty());
    for path in [
        "/api/v1/namespaces/shop/secrets?labelSelector=owner%3Dhelm",
        &format!("{base}/deployments"),
        &format!("{base}/statefulsets"),
        "/api/v1/namespaces/shop/configmaps",
        "/apis/work.karmada.io/v1alpha2/namespaces/shop/resourcebindings",
    ] {
        let (_, list) = sim_get(&s, path).await;
        assert_eq!(list["items"], serde_json::json!([]), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_that_fails_to_render_fails_the_job_with_helms_message_and_the_graph_can_be_removed()
 {
    let reg = crate::oci::start_registry().await;
    push_charts(&reg.addr, &["broken"]);
    let s = Stack::with_helm(&real_helm()).await;
    // `front` (an image) is applied before `app` (the broken chart) on every attempt: a deploy
    // that dies after applying part of its graph.
    let descriptor = format!(
        r#"hdaGraph:
  id: broken
  version: "1.0"
  services:
    - id: front
      deployment:
        trigger: {{auto: {{dependencies: []}}}}
        intent:
          compute: {{cpu: "2", ram: 1Gi, storage: small, gpu: {{enabled: false}}}}
      artifact:
        image: ghcr.io/example/front:1
        ports: [{{port: 80}}]
    - id: app
      deployment:
        trigger: {{auto: {{dependencies: [front]}}}}
        intent:
          compute: {{cpu: small, ram: small, storage: small, gpu: {{enabled: false}}}}
      artifact:
        ociImage: oci://{}/charts/broken
        ociConfig: {{type: App, implementer: HELM}}
"#,
        reg.addr
    );
    let accepted = s
        .client
        .deploy("broken", descriptor.into_bytes(), false)
        .await
        .unwrap();
    let id = accepted["job_id"].as_str().unwrap().to_string();
    // The first attempt fails with Helm's own words, and the job is retried.
    let mut job = Value::Null;
    for _ in 0..600 {
        job = serde_json::to_value(s.client.get_job(&id).await.unwrap()).unwrap();
        if job["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let error = job["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("this chart is broken on purpose"),
        "not Helm's message: {job}"
    );
    // Retried until its attempts are spent, then dead, with every error kept.
    let job = s.wait_job(&accepted).await;
    assert_eq!(job["state"], "dead", "{job}");
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(
        errors.len() as i64,
        job["max_attempts"].as_i64().unwrap(),
        "{job}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e["error"].as_str().unwrap().contains("broken on purpose"))
    );
    // Nothing is left behind: the Failed graph holds no object in the federation and no
    // capacity, and its log says what was removed.
    let g: Value = s.client.get("/graphs/broken").await.unwrap();
    assert_eq!(g["status"], "Failed", "{g}");
    assert!(
        s.objects("broken", "broken").await.is_empty(),
        "a Failed graph holds objects: {:?}",
        s.objects("broken", "broken").await
    );
    let (_, state) = sim_get(&s, "/sim/state").await;
    for c in state["clusters"].as_array().unwrap() {
        assert_eq!(c["allocated"]["cpu_milli"], 0, "capacity still held: {c}");
    }
    let history: Vec<Value> = s.client.get("/graphs/broken/history").await.unwrap();
    let last = history.iter().find(|d| d["kind"] == "deploy").unwrap();
    assert!(
        last["outcome"]["removed_objects"].as_u64() > Some(0),
        "{last}"
    );
    assert_eq!(last["outcome"]["removed_releases"], 1, "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("Helm releases it had applied"),
        "{last}"
    );
    // Removal converges even so.
    let accepted: Value = s.client.delete("/graphs/broken").await.unwrap();
    s.succeed(&accepted).await;
    assert!(s.client.get::<Value>("/graphs/broken").await.is_err());
    assert!(helm_list(&s.kubeconfig, "broken").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_smo_installs_into_the_sim_with_the_real_engine_and_its_schema_refuses_bad_values() {
    smo::install_crypto_provider();
    let (addr, _sim) = smo_sim::Sim::new(smo_sim::SimConfig::demo())
        .spawn_on("127.0.0.1:0")
        .expect("sim starts");
    let sim = format!("http://{addr}");
    let kubeconfig = std::env::temp_dir().join(format!("smo-chart-{}.kubeconfig", addr.port()));
    std::fs::write(&kubeconfig, smo_sim::kubeconfig_yaml(&sim)).unwrap();
    let kc = kubeconfig.display().to_string();
    let chart = format!("{}/charts/smo", env!("CARGO_MANIFEST_DIR"));
    // Every optional template on, so every template renders and is applied.
    helm_ok(&[
        "upgrade",
        "--install",
        "smo",
        &chart,
        "-n",
        "smo-system",
        "--create-namespace",
        "--kubeconfig",
        &kc,
        "--set",
        "database.url=postgres://smo@db/smo,worker.hpa.enabled=true,serviceMonitor.enabled=true,\
         api.token.existingSecret=smo-api,api.metricsToken.existingSecret=smo-metrics",
    ]);
    let names = |path: &str| {
        let url = format!("{sim}{path}");
        async move {
            let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            let mut n: Vec<String> = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            n.sort();
            n
        }
    };
    let ns = "namespaces/smo-system";
    assert_eq!(
        names(&format!("/apis/apps/v1/{ns}/deployments")).await,
        ["smo-api", "smo-scheduler", "smo-worker"]
    );
    for path in [
        format!("/api/v1/{ns}/services"),
        format!("/api/v1/{ns}/serviceaccounts"),
        format!("/api/v1/{ns}/configmaps"),
        format!("/apis/policy/v1/{ns}/poddisruptionbudgets"),
        format!("/apis/autoscaling/v2/{ns}/horizontalpodautoscalers"),
        format!("/apis/monitoring.coreos.com/v1/{ns}/servicemonitors"),
    ] {
        assert!(!names(&path).await.is_empty(), "nothing at {path}");
    }
    // What the chart made, as the apiserver keeps it, is valid Kubernetes 1.37 (strictly).
    let mut made = Vec::new();
    for path in [
        format!("/apis/apps/v1/{ns}/deployments"),
        format!("/api/v1/{ns}/services"),
        format!("/api/v1/{ns}/serviceaccounts"),
        format!("/api/v1/{ns}/configmaps"),
        format!("/apis/policy/v1/{ns}/poddisruptionbudgets"),
        format!("/apis/autoscaling/v2/{ns}/horizontalpodautoscalers"),
    ] {
        let list: Value = reqwest::get(format!("{sim}{path}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (api_version, kind) = (
            list["apiVersion"].as_str().unwrap().to_string(),
            list["kind"]
                .as_str()
                .unwrap()
                .trim_end_matches("List")
                .to_string(),
        );
        for mut item in list["items"].as_array().unwrap().clone() {
            // A list's items carry no kind of their own, as from a real apiserver.
            item["apiVersion"] = api_version.clone().into();
            item["kind"] = kind.clone().into();
            made.push(item);
        }
    }
    assert!(made.len() >= 8, "{}", made.len());
    tokio::task::block_in_place(|| crate::support::validate_against_kubernetes(&made));
    // The scrape sends the metrics-role token, not the admin's; every role keeps audit rows 90 days.
    let monitors: Value = reqwest::get(format!(
        "{sim}/apis/monitoring.coreos.com/v1/{ns}/servicemonitors"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        monitors["items"][0]["spec"]["endpoints"][0]["bearerTokenSecret"]["name"], "smo-metrics",
        "{monitors}"
    );
    let api: Value = reqwest::get(format!("{sim}/apis/apps/v1/{ns}/deployments/smo-api"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let env = &api["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "SMO_AUDIT_RETENTION" && e["value"] == "90d"),
        "{env}"
    );
    // The migration hook (a Job) ran and succeeded, and Helm deleted it as its policy says.
    let status: Value = serde_json::from_str(&helm_ok(&[
        "status",
        "smo",
        "-n",
        "smo-system",
        "--kubeconfig",
        &kc,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(status["hooks"][0]["name"], "smo-migrate", "{status}");
    assert_eq!(status["hooks"][0]["last_run"]["phase"], "Succeeded");
    assert!(names(&format!("/apis/batch/v1/{ns}/jobs")).await.is_empty());
    let releases = helm_list(&kubeconfig, "smo-system");
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["status"], "deployed");

    // values.schema.json refuses a wrong value, in Helm's own words, and nothing is installed.
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(real_helm())
            .args([
                "upgrade",
                "--install",
                "bad",
                &chart,
                "-n",
                "smo-bad",
                "--create-namespace",
                "--kubeconfig",
                &kc,
                "--set",
                "database.url=postgres://x,worker.replicas=lots",
            ])
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/worker/replicas") && stderr.contains("want integer"),
        "{stderr}"
    );
    assert!(helm_list(&kubeconfig, "smo-bad").is_empty());
    let _ = std::fs::remove_file(&kubeconfig);
}

/// `helm upgrade --install --wait` with Helm's own engine (its watcher: watch-list informers and
/// kstatus) returns once the chart's Deployment is ready — and reports it not ready, in Helm's
/// words, while it is not (placed on a cluster that does not exist, Karmada schedules it nowhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_wait_returns_when_the_charts_workloads_are_ready_and_not_before() {
    smo::install_crypto_provider();
    let (addr, _sim) = smo_sim::Sim::new(smo_sim::SimConfig::demo())
        .spawn_on("127.0.0.1:0")
        .expect("sim starts");
    let kubeconfig = std::env::temp_dir().join(format!("smo-wait-{}.kubeconfig", addr.port()));
    std::fs::write(
        &kubeconfig,
        smo_sim::kubeconfig_yaml(&format!("http://{addr}")),
    )
    .unwrap();
    let kc = kubeconfig.display().to_string();
    let chart = format!("{}/examples/charts/web", env!("CARGO_MANIFEST_DIR"));
    let values = |cluster: &str| {
        let p = std::env::temp_dir().join(format!("smo-wait-{}-{cluster}.yaml", addr.port()));
        std::fs::write(&p, format!("clustersAffinity: [{cluster}]\n")).unwrap();
        p.display().to_string()
    };
    let placed = values("edge-b");
    helm_ok(&[
        "upgrade",
        "--install",
        "web",
        &chart,
        "-n",
        "wait-ok",
        "--create-namespace",
        "--kubeconfig",
        &kc,
        "-f",
        &placed,
        "--wait",
        "--timeout",
        "60s",
    ]);
    let nowhere = values("no-such-cluster");
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(real_helm())
            .args([
                "upgrade",
                "--install",
                "web",
                &chart,
                "-n",
                "wait-never",
                "--create-namespace",
                "--kubeconfig",
                &kc,
                "-f",
                &nowhere,
                "--wait",
                "--timeout",
                "3s",
            ])
            .output()
            .unwrap()
    });
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("Deployment/wait-never/web not ready"),
        "{said}"
    );
}

/// A chart that ships a CustomResourceDefinition (in `crds/`) and an object of it deploys through
/// smo: Helm's engine creates the CRD, the sim registers its kind as an API server does (served,
/// in discovery, its schema enforced), then the chart's Gadget is created in smo's namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_with_a_crd_deploys_through_smo_and_its_kind_is_served() {
    let reg = crate::oci::start_registry().await;
    push_charts(&reg.addr, &["gadget"]);
    let s = Stack::with_helm(&real_helm()).await;
    let graph = format!(
        r#"hdaGraph:
  imVersion: 0.4.0
  id: gizmo
  version: "1.0"
  services:
    - id: gadget
      deployment:
        trigger: {{auto: {{dependencies: []}}}}
        intent:
          compute: {{cpu: small, ram: small, storage: small, gpu: {{enabled: false}}}}
      artifact:
        ociImage: oci://{}/charts/gadget
        ociConfig: {{type: App, implementer: HELM}}
        valuesOverwrite: {{size: 5}}
"#,
        reg.addr
    );
    let accepted = s
        .client
        .deploy("gizmo", graph.into_bytes(), false)
        .await
        .unwrap();
    let job = s.succeed(&accepted).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (code, crd) = sim_get(
        &s,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.smo.io",
    )
    .await;
    assert_eq!(code, 200, "{crd}");
    assert!(
        crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True"),
        "{crd}"
    );
    let (code, gadget) = sim_get(
        &s,
        "/apis/example.smo.io/v1/namespaces/gizmo/gadgets/gizmo-gadget",
    )
    .await;
    assert_eq!(code, 200, "{gadget}");
    assert_eq!(
        gadget["spec"]["size"], 5,
        "smo's valuesOverwrite reached the chart"
    );
    let (_, discovery) = sim_get(&s, "/apis/example.smo.io/v1").await;
    assert_eq!(discovery["resources"][0]["name"], "gadgets", "{discovery}");
    // The kind's schema is the CRD's: an object it refuses is refused.
    let bad = reqwest::Client::new()
        .post(format!(
            "{}/apis/example.smo.io/v1/namespaces/gizmo/gadgets",
            s.sim_url
        ))
        .json(
            &serde_json::json!({"apiVersion": "example.smo.io/v1", "kind": "Gadget",
            "metadata": {"name": "bad"}, "spec": {"size": "large"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422, "{}", bad.text().await.unwrap());
}
