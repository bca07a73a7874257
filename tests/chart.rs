//! Static checks of the Helm chart in `charts/smo` (helm itself is not installed on the dev
//! machine, so nothing here renders templates): Chart.yaml and values.yaml parse, every
//! `.Values.x.y` a template uses exists in values.yaml, the templates cover every role, and the
//! template delimiters and blocks are balanced. Also a few facts of the Dockerfile.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use regex::Regex;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    root().join("charts").join("smo")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every Rust file of a source directory (the `smo` command's modules, the API's routes), joined.
fn sources(dir: &str) -> String {
    let mut files: Vec<_> = fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} has no sources");
    files.iter().map(|p| read(p)).collect()
}

fn yaml(path: &Path) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn values() -> Value {
    yaml(&chart_dir().join("values.yaml"))
}

/// Every file in templates/, by file name.
fn templates() -> BTreeMap<String, String> {
    let dir = chart_dir().join("templates");
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, read(&path));
        }
    }
    assert!(!out.is_empty(), "no templates in {}", dir.display());
    out
}

fn template(name: &str) -> String {
    templates()
        .remove(name)
        .unwrap_or_else(|| panic!("templates/{name} is missing"))
}

/// The text without `{{/* ... */}}` comments (trim markers included).
fn strip_comments(text: &str) -> String {
    let re = Regex::new(r"(?s)\{\{-?\s*/\*.*?\*/\s*-?\}\}").unwrap();
    re.replace_all(text, "").into_owned()
}

/// The value at a dotted path, if every step is a mapping key.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(root, |v, key| v.as_object().and_then(|m| m.get(key)))
}

/// `.Values.a.b.c` references (as `a.b.c`) outside comments, with the files using them.
fn values_refs() -> BTreeMap<String, Vec<String>> {
    let re = Regex::new(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, text) in templates() {
        for cap in re.captures_iter(&strip_comments(&text)) {
            let path = cap[1].trim_start_matches('.').to_string();
            let files = refs.entry(path).or_default();
            if !files.contains(&name) {
                files.push(name.clone());
            }
        }
    }
    refs
}

/// Seconds of a duration such as `30s`, `5m`, `2h`, `1d`, `1500ms`.
fn seconds(text: &str) -> f64 {
    let re = Regex::new(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$").unwrap();
    let cap = re
        .captures(text.trim())
        .unwrap_or_else(|| panic!("not a duration: {text:?}"));
    let n: f64 = cap[1].parse().unwrap();
    n * match &cap[2] {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => 86400.0,
    }
}

#[test]
fn chart_yaml_has_the_required_fields() {
    let chart = yaml(&chart_dir().join("Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "smo");
    assert_eq!(chart["version"], "0.1.0");
    assert_eq!(chart["appVersion"], "0.1.0");
    assert!(chart["description"].as_str().is_some_and(|d| !d.is_empty()));
    // The chart's appVersion follows the crate.
    let cargo = read(&root().join("Cargo.toml"));
    let pkg = cargo
        .split("[package]")
        .nth(1)
        .expect("[package] in Cargo.toml");
    let version = Regex::new(r#"(?m)^version\s*=\s*"([^"]+)""#).unwrap();
    assert_eq!(chart["appVersion"], version.captures(pkg).unwrap()[1]);
}

#[test]
fn values_yaml_parses_and_every_key_is_documented() {
    let v = values();
    assert!(v.is_object(), "values.yaml is not a mapping");
    for key in [
        "image.repository",
        "image.tag",
        "image.pullPolicy",
        "database.url",
        "database.existingSecret",
        "database.key",
        "karmada.kubeconfigSecret",
        "karmada.kubeconfigKey",
        "prometheus.url",
        "grafana.url",
        "grafana.existingSecret",
        "alertRules.mode",
        "scaling.interval",
        "retention",
        "logging.format",
        "logging.level",
        "api.token.existingSecret",
        "api.replicas",
        "api.service.port",
        "api.resources",
        "worker.replicas",
        "worker.concurrency",
        "worker.batch",
        "worker.resources",
        "worker.hpa.enabled",
        "worker.hpa.min",
        "worker.hpa.max",
        "worker.hpa.targetCPU",
        "worker.terminationGracePeriodSeconds",
        "worker.shutdownGrace",
        "scheduler.replicas",
        "serviceAccount.create",
        "serviceAccount.name",
        "serviceMonitor.enabled",
        "serviceMonitor.interval",
        "migrations.enabled",
    ] {
        assert!(lookup(&v, key).is_some(), "values.yaml lacks {key}");
    }
    assert_eq!(v["scheduler"]["replicas"], 2);
    assert!(
        ["prometheus-rule", "rule-file", "none"]
            .contains(&v["alertRules"]["mode"].as_str().unwrap())
    );
    // No secret material in the defaults.
    assert_eq!(v["database"]["url"], "");

    // Every key line carries a comment: on the line itself or on the line above.
    let text = read(&chart_dir().join("values.yaml"));
    let key = Regex::new(r"^\s*[A-Za-z_][A-Za-z0-9_-]*:").unwrap();
    let mut previous = "";
    for (i, line) in text.lines().enumerate() {
        if key.is_match(line) {
            assert!(
                line.contains(" # ") || previous.trim_start().starts_with('#'),
                "values.yaml:{}: undocumented key: {line}",
                i + 1
            );
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
}

#[test]
fn every_values_reference_exists_in_values_yaml() {
    let v = values();
    let refs = values_refs();
    assert!(
        refs.len() > 30,
        "suspiciously few .Values references: {refs:?}"
    );
    let missing: Vec<String> = refs
        .iter()
        .filter(|(path, _)| lookup(&v, path).is_none())
        .map(|(path, files)| format!(".Values.{path} ({})", files.join(", ")))
        .collect();
    assert!(missing.is_empty(), "not in values.yaml: {missing:#?}");
}

#[test]
fn the_comment_stripper_and_reference_extractor_work() {
    let text = "{{/* .Values.nope.a */}}x {{- /* multi\nline .Values.nope.b */ -}} {{ .Values.yes.c | quote }}";
    let stripped = strip_comments(text);
    assert!(!stripped.contains("nope"), "{stripped}");
    assert!(stripped.contains(".Values.yes.c"));
    let v: Value = serde_json::json!({"a": {"b": {"c": null}}});
    assert!(lookup(&v, "a.b.c").is_some());
    assert!(lookup(&v, "a.b.d").is_none());
    assert!(lookup(&v, "a.b.c.d").is_none());
    assert_eq!(seconds("30s"), 30.0);
    assert_eq!(seconds("2m"), 120.0);
}

#[test]
fn templates_cover_every_role() {
    let all = templates();
    for name in [
        "_helpers.tpl",
        "deployment-api.yaml",
        "service.yaml",
        "deployment-worker.yaml",
        "hpa-worker.yaml",
        "deployment-scheduler.yaml",
        "job-migrate.yaml",
        "serviceaccount.yaml",
        "servicemonitor.yaml",
        "service-metrics.yaml",
        "configmap-dashboard.yaml",
        "pdb.yaml",
        "NOTES.txt",
    ] {
        assert!(all.contains_key(name), "templates/{name} is missing");
    }
    for (file, role) in [
        ("deployment-api.yaml", "api"),
        ("deployment-worker.yaml", "worker"),
        ("deployment-scheduler.yaml", "scheduler"),
    ] {
        let t = &all[file];
        assert!(t.contains("kind: Deployment"), "{file}");
        assert!(
            t.contains(&format!(r#"args: ["run", "--role", "{role}"]"#)),
            "{file} does not run --role {role}"
        );
        assert!(
            t.contains(r#"include "smo.commonEnv""#),
            "{file} lacks the common env"
        );
        assert!(t.contains("serviceAccountName:"), "{file}");
    }

    let worker = &all["deployment-worker.yaml"];
    assert!(worker.contains("name: SMO_WORKER_PREFIX"));
    assert!(worker.contains("default .Release.Name .Values.worker.prefix"));
    assert!(worker.contains(
        "terminationGracePeriodSeconds: {{ .Values.worker.terminationGracePeriodSeconds }}"
    ));
    assert!(worker.contains("name: SMO_SHUTDOWN_GRACE"));
    // Replicas are left to the HPA when it is enabled.
    assert!(worker.contains("{{- if not .Values.worker.hpa.enabled }}"));

    let hpa = &all["hpa-worker.yaml"];
    assert!(hpa.starts_with("{{- if .Values.worker.hpa.enabled }}"));
    assert!(hpa.contains("apiVersion: autoscaling/v2"));
    assert!(hpa.contains("kind: HorizontalPodAutoscaler"));
    assert!(hpa.contains("name: {{ include \"smo.fullname\" . }}-worker"));
    // Optional second signal: the queue depth smo exports, through an external-metrics adapter.
    assert!(hpa.contains("{{- if .Values.worker.hpa.queueDepthPerWorker }}"));
    assert!(hpa.contains("type: External") && hpa.contains("type: AverageValue"));
    assert_eq!(values()["worker"]["hpa"]["queueDepthPerWorker"], 0);
    assert_eq!(
        values()["worker"]["hpa"]["queueDepthMetric"],
        "smo_queue_depth"
    );

    let job = &all["job-migrate.yaml"];
    assert!(job.contains("kind: Job"));
    assert!(job.contains(r#""helm.sh/hook": pre-install,pre-upgrade"#));
    assert!(job.contains(r#"args: ["migrate"]"#));
    assert!(job.contains("restartPolicy: Never"));

    let sm = &all["servicemonitor.yaml"];
    assert!(sm.starts_with("{{- if .Values.serviceMonitor.enabled }}"));
    assert!(sm.contains("apiVersion: monitoring.coreos.com/v1"));
    assert!(sm.contains("path: {{ .Values.serviceMonitor.path }}"));
    assert_eq!(values()["serviceMonitor"]["path"], "/metrics");

    assert!(all["serviceaccount.yaml"].starts_with("{{- if .Values.serviceAccount.create }}"));
    assert!(all["service.yaml"].contains("targetPort: http"));
}

#[test]
fn the_api_has_liveness_and_readiness_probes() {
    let api = template("deployment-api.yaml");
    let live = api.find("livenessProbe:").expect("livenessProbe");
    let ready = api.find("readinessProbe:").expect("readinessProbe");
    assert!(
        api[live..ready].contains("path: /healthz"),
        "liveness is not /healthz"
    );
    assert!(
        api[ready..].contains("path: /readyz"),
        "readiness is not /readyz"
    );
    assert!(api.contains("name: SMO_LISTEN"));
    assert!(api.contains(r#"printf "0.0.0.0:%v" .Values.api.port"#));
    // Routes the probes hit exist in the API.
    let http = sources("src/http");
    assert!(http.contains(r#"path = "/healthz""#) && http.contains(r#"path = "/readyz""#));
}

#[test]
fn the_worker_grace_period_exceeds_the_shutdown_grace() {
    let v = values();
    let k8s = v["worker"]["terminationGracePeriodSeconds"]
        .as_f64()
        .expect("worker.terminationGracePeriodSeconds is a number");
    let grace = seconds(
        v["worker"]["shutdownGrace"]
            .as_str()
            .expect("worker.shutdownGrace"),
    );
    assert!(
        k8s > grace,
        "terminationGracePeriodSeconds {k8s} <= shutdownGrace {grace}s"
    );
    // smo's own default too (used when the value is dropped).
    let defaults =
        smo::settings::ServerSettings::resolve(&Default::default(), String::new()).unwrap();
    assert!(k8s > defaults.shutdown_grace.as_secs_f64());
}

#[test]
fn secrets_come_from_secret_key_refs_and_env_names_are_real() {
    let helpers = template("_helpers.tpl");
    for var in ["SMO_API_TOKEN", "SMO_DATABASE_URL"] {
        let at = helpers
            .find(&format!("- name: {var}\n"))
            .unwrap_or_else(|| panic!("{var} not set in _helpers.tpl"));
        let after = &helpers[at..];
        let next = after
            .lines()
            .skip(1)
            .find(|l| !l.trim().starts_with("{{"))
            .unwrap();
        assert!(
            next.trim() == "valueFrom:",
            "{var} is not read from a Secret first: {next}"
        );
        assert!(after.contains("secretKeyRef:"));
    }
    // Monitoring credentials: each from an optional Secret key, through one helper.
    let define = helpers
        .split(r#"{{- define "smo.optionalSecretEnv" }}"#)
        .nth(1)
        .expect("smo.optionalSecretEnv")
        .split("{{- end -}}")
        .next()
        .unwrap();
    assert!(define.contains("valueFrom:") && define.contains("secretKeyRef:"));
    assert!(define.contains("optional: true") && !define.contains("value:"));
    for var in [
        "SMO_PROMETHEUS_TOKEN",
        "SMO_PROMETHEUS_USER",
        "SMO_PROMETHEUS_PASSWORD",
        "SMO_GRAFANA_TOKEN",
        "SMO_GRAFANA_USER",
        "SMO_GRAFANA_PASSWORD",
    ] {
        assert!(
            helpers.contains(&format!(
                r#"include "smo.optionalSecretEnv" (dict "env" "{var}""#
            )),
            "{var} is not read from a Secret"
        );
    }
    // Only the database URL has a plain fallback (documented as password-less).
    let all = templates();
    for (name, text) in &all {
        assert!(!text.contains("kind: Secret"), "{name} creates a Secret");
        for var in ["SMO_API_TOKEN", "SMO_GRAFANA_TOKEN"] {
            let inline = Regex::new(&format!(r"name: {var}\s*\n\s*value:")).unwrap();
            assert!(!inline.is_match(text), "{name} inlines {var}");
        }
    }
    // Every SMO_* variable the chart sets is one smo reads: a settings key (each is read from
    // SMO_<KEY>), a flag's variable, or the logging setup.
    let keys: String = smo::settings::FileSettings::keys()
        .iter()
        .map(|k| format!("\"SMO_{}\"", k.to_ascii_uppercase()))
        .collect();
    let smo = sources("src/cli/smo") + &read(&root().join("src/lib.rs")) + &keys;
    let var = Regex::new(r#"(?:name: |"env" ")(SMO_[A-Z_]+)"#).unwrap();
    for (name, text) in &all {
        for cap in var.captures_iter(text) {
            assert!(
                smo.contains(&format!("\"{}\"", &cap[1])),
                "{name}: smo does not read {}",
                &cap[1]
            );
        }
    }
}

/// Checks `{{`/`}}` pairing and that if/range/with/define/block each have an `end`.
fn check_delimiters(name: &str, text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let (mut open, mut i) = (None::<usize>, 0);
    while i + 1 < bytes.len() {
        match &bytes[i..i + 2] {
            b"{{" => {
                if open.is_some() {
                    return Err(format!("{name}: `{{{{` at byte {i} inside another action"));
                }
                open = Some(i);
                i += 2;
            }
            b"}}" => {
                if open.take().is_none() {
                    return Err(format!("{name}: `}}}}` at byte {i} without `{{{{`"));
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    if let Some(at) = open {
        return Err(format!("{name}: `{{{{` at byte {at} is never closed"));
    }
    let action = Regex::new(r"(?s)\{\{-?\s*(.*?)\s*-?\}\}").unwrap();
    let mut depth: i64 = 0;
    for cap in action.captures_iter(&strip_comments(text)) {
        let word = cap[1]
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        match word {
            "if" | "range" | "with" | "define" | "block" => depth += 1,
            "end" => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!(
                "{name}: `end` without a block: {{{{{}}}}}",
                &cap[1]
            ));
        }
    }
    if depth != 0 {
        return Err(format!("{name}: {depth} block(s) without `end`"));
    }
    Ok(())
}

#[test]
fn template_delimiters_and_blocks_are_balanced() {
    for (name, text) in templates() {
        check_delimiters(&name, &text).unwrap();
    }
    // The checker itself catches the mistakes it is meant to.
    assert!(check_delimiters("t", "{{ if .x }}a{{ end }}{{- with .y }}{{ end -}}").is_ok());
    assert!(check_delimiters("t", "{{ if .x }}a").is_err());
    assert!(check_delimiters("t", "{{ if .x }}a{{ else if .y }}b{{ end }}{{ end }}").is_err());
    assert!(check_delimiters("t", "{{ .x }").is_err());
    assert!(check_delimiters("t", "{{ .x {{ .y }}").is_err());
    assert!(check_delimiters("t", ".x }}").is_err());
    assert!(
        check_delimiters("t", "{{/* {{ if */}}ok").is_err(),
        "nested braces in a comment"
    );
}

#[test]
fn the_dockerfile_builds_a_non_root_smo_image_with_helm() {
    let d = read(&root().join("Dockerfile"));
    for needle in [
        // Base images are build arguments whose defaults are the public images.
        "ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm",
        "FROM ${BUILDER_IMAGE} AS build",
        "cmake clang libclang-dev g++ pkg-config",
        "cargo build --release --bins --locked",
        "ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim",
        "FROM ${BASE_IMAGE} AS rootfs",
        "rootfs-add /rootfs libc6 libstdc++6",
        "ca-certificates",
        "--uid 10001",
        "USER 10001",
        "ARG HELM_VERSION=v3.",
        "sha256sum -c -",
        "/usr/local/bin/helm",
        "EXPOSE 8080",
        r#"ENTRYPOINT ["smo"]"#,
        r#"CMD ["run", "--role", "all"]"#,
    ] {
        assert!(d.contains(needle), "Dockerfile lacks {needle:?}");
    }
    assert!(d.contains("smo-admin"));
    let ignore = read(&root().join(".dockerignore"));
    for entry in ["target/", ".git", ".run"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

#[test]
fn every_role_exposes_metrics_and_the_dashboard_ships_with_the_chart() {
    let all = templates();
    // Workers and schedulers serve their own /metrics on a named port behind a headless Service.
    for role in ["worker", "scheduler"] {
        let t = &all[&format!("deployment-{role}.yaml")];
        assert!(t.contains("name: SMO_METRICS_LISTEN"), "{role}");
        assert!(t.contains("- name: metrics"), "{role} has no metrics port");
        assert!(
            t.contains("containerPort: {{ .Values.metrics.port }}"),
            "{role}"
        );
    }
    let svc = &all["service-metrics.yaml"];
    assert!(svc.contains(r#"range $component := list "worker" "scheduler""#));
    assert!(svc.contains("clusterIP: None") && svc.contains("targetPort: metrics"));
    // The ServiceMonitor scrapes both port names, selecting every Service of the release.
    let sm = &all["servicemonitor.yaml"];
    assert!(sm.contains("- port: http") && sm.contains("- port: metrics"));
    assert!(
        !sm.contains("app.kubernetes.io/component"),
        "must not select one component only"
    );
    // smo's flag and env var exist.
    let smo = sources("src/cli/smo");
    assert!(smo.contains(r#"env = "SMO_METRICS_LISTEN""#));
    // The dashboard ConfigMap embeds the file smo renders (its freshness is a unit test of smo).
    let cm = &all["configmap-dashboard.yaml"];
    assert!(cm.starts_with("{{- if .Values.dashboard.enabled }}"));
    let file = cm
        .split(".Files.Get \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect(".Files.Get path");
    let dashboard: Value = serde_json::from_str(&read(&chart_dir().join(file)))
        .expect("the shipped dashboard is JSON");
    assert_eq!(dashboard["uid"], "smo-self");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
    assert_eq!(values()["dashboard"]["labels"]["grafana_dashboard"], "1");
    // The image documents the metrics port the chart uses.
    let port = values()["metrics"]["port"].as_u64().expect("metrics.port");
    assert!(read(&root().join("Dockerfile")).contains(&format!("EXPOSE 8080 {port}")));
}

#[test]
fn every_role_has_a_disruption_budget_below_its_replicas() {
    let pdb = template("pdb.yaml");
    assert!(pdb.starts_with("{{- if .Values.podDisruptionBudget.enabled }}"));
    assert!(pdb.contains("apiVersion: policy/v1") && pdb.contains("kind: PodDisruptionBudget"));
    assert!(pdb.contains(r#"range $component := list "api" "worker" "scheduler""#));
    assert!(pdb.contains(r#"include "smo.selectorLabels" $ctx"#));
    let v = values();
    let min = v["podDisruptionBudget"]["minAvailable"]
        .as_u64()
        .expect("podDisruptionBudget.minAvailable");
    // With the defaults a drain can always proceed: every role has more replicas than the budget.
    for role in ["api", "worker", "scheduler"] {
        let replicas = v[role]["replicas"].as_u64().expect("replicas");
        assert!(
            replicas > min,
            "{role}: {replicas} replicas, minAvailable {min}"
        );
    }
    assert!(v["worker"]["hpa"]["min"].as_u64().unwrap() > min);
}

#[path = "it/support/crd.rs"]
mod crd;

fn schema() -> Value {
    serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("values.schema.json is JSON")
}

/// values.yaml with one value replaced (dotted path), as `--set` would.
fn values_with(path: &str, value: Value) -> Value {
    let mut v = values();
    let mut node = &mut v;
    let keys: Vec<&str> = path.split('.').collect();
    for k in &keys[..keys.len() - 1] {
        node = &mut node[*k];
    }
    node[keys[keys.len() - 1]] = value;
    v
}

#[test]
fn values_yaml_satisfies_values_schema_json_and_bad_overrides_are_refused() {
    let schema = schema();
    // Keywords the validator checks (helm would check the same ones).
    let text = serde_json::to_string(&schema).unwrap();
    for unsupported in ["\"$ref\"", "\"if\"", "\"dependencies\"", "\"const\""] {
        assert!(!text.contains(unsupported), "schema uses {unsupported}");
    }
    let problems = crd::validate_value(&schema, &values());
    assert!(
        problems.is_empty(),
        "values.yaml breaks its schema: {problems:#?}"
    );
    // additionalProperties: false everywhere but free-form maps, so every key of values.yaml
    // is declared (a new key without schema fails above) and a typo is refused.
    for (path, bad, expected) in [
        ("worker.replicas", json!("two"), "worker.replicas"),
        ("worker.replicas", json!(0), "worker.replicas"),
        ("alertRules.mode", json!("rules"), "alertRules.mode"),
        ("image.pullPolicy", json!("Sometimes"), "image.pullPolicy"),
        ("scaling.interval", json!("30 seconds"), "scaling.interval"),
        (
            "scaling.rateWindow",
            json!("1 minute"),
            "scaling.rateWindow",
        ),
        ("worker.hpa.targetCPU", json!(150), "worker.hpa.targetCPU"),
        ("metrics.port", json!(70000), "metrics.port"),
        ("logging.format", json!("yaml"), "logging.format"),
        ("api.replicaz", json!(3), "api.replicaz"),
    ] {
        let problems = crd::validate_value(&schema, &values_with(path, bad.clone()));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{path}={bad} accepted: {problems:?}"
        );
    }
    // Accepted overrides stay accepted.
    for (path, ok) in [
        ("worker.heartbeatInterval", json!("500ms")),
        ("retention", json!("2w")),
        ("scaling.rateWindow", json!("1m30s")),
        (
            "serviceMonitor.labels",
            json!({"release": "kube-prometheus-stack"}),
        ),
        ("imagePullSecrets", json!([{"name": "regcred"}])),
    ] {
        let problems = crd::validate_value(&schema, &values_with(path, ok.clone()));
        assert!(problems.is_empty(), "{path}={ok} refused: {problems:?}");
    }
}
