//! Snapshot tests of everything smo publishes for a fixture graph, and validation of the
//! `PrometheusRule` against the prometheus-operator CRD in `../shared/crds` (skipped, with a
//! message, when that directory is absent).
//!
//! Snapshots live in `tests/fixtures/monitoring/`. A missing snapshot, or any snapshot when
//! `UPDATE_SNAPSHOTS=1`, is written and the test fails, so CI never passes on a snapshot nobody
//! reviewed: review the diff, commit the files and run again without the variable.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::federation::manifests::object_name;
use crate::hdag::{Graph, parse};

const PROJECT: &str = "demo";

fn fixture_graph() -> Graph {
    parse(include_bytes!("../../tests/fixtures/monitoring/graph.yaml"))
        .expect("tests/fixtures/monitoring/graph.yaml is a valid descriptor")
        .graph
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/monitoring")
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("json");
    s.push('\n');
    s
}

/// Compares each output with its committed snapshot, or writes it (see the module docs); fails
/// once for all of them, so one run writes every missing snapshot.
fn check_snapshots(outputs: &[(String, String)]) {
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut problems = Vec::new();
    for (name, actual) in outputs {
        let path = snapshot_dir().join(name);
        match std::fs::read_to_string(&path) {
            Ok(expected) if !update => {
                let expected = expected.replace("\r\n", "\n");
                if &expected != actual {
                    let line = expected
                        .lines()
                        .zip(actual.lines())
                        .position(|(a, b)| a != b)
                        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
                    problems.push(format!(
                        "snapshot {} differs from the output, first at line {}:\n  snapshot: {:?}\n  output:   {:?}\n\
                         If the change is intended, run `UPDATE_SNAPSHOTS=1 cargo test --lib monitoring`, \
                         review `git diff tests/fixtures/monitoring`, commit, and run again without it.",
                        path.display(),
                        line + 1,
                        expected.lines().nth(line).unwrap_or("<end of file>"),
                        actual.lines().nth(line).unwrap_or("<end of file>"),
                    ));
                }
            }
            _ => {
                std::fs::write(&path, actual)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
                problems.push(format!(
                    "snapshot {} written. Review it (`git diff tests/fixtures/monitoring`), commit \
                     it, and run the tests again without UPDATE_SNAPSHOTS to accept it.",
                    path.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn check_snapshot(name: &str, actual: &str) {
    check_snapshots(&[(name.to_string(), actual.to_string())]);
}

fn rule_object(graph: &Graph) -> Value {
    let group = rule_group_name(PROJECT, &graph.id);
    prometheus_rule(PROJECT, graph, &group, "monitoring", &group)
}

#[test]
fn snapshot_graph_dashboard() {
    let set = render_graph_dashboards(PROJECT, &fixture_graph());
    check_snapshot("dashboard-graph.json", &pretty(&set.graph.model));
}

#[test]
fn snapshot_service_dashboards() {
    let g = fixture_graph();
    let set = render_graph_dashboards(PROJECT, &g);
    assert_eq!(set.services.len(), g.services.len());
    let outputs: Vec<(String, String)> = g
        .services
        .iter()
        .zip(&set.services)
        .map(|(s, d)| (format!("dashboard-service-{}.json", s.id), pretty(&d.model)))
        .collect();
    check_snapshots(&outputs);
}

#[test]
fn snapshot_cluster_dashboard() {
    check_snapshot(
        "dashboard-cluster.json",
        &pretty(&render_cluster_dashboard("edge-1").model),
    );
}

#[test]
fn snapshot_prometheus_rule() {
    check_snapshot(
        "prometheus-rule.json",
        &pretty(&rule_object(&fixture_graph())),
    );
}

#[test]
fn snapshot_rule_file() {
    let g = fixture_graph();
    let groups = [(rule_group_name(PROJECT, &g.id), alert_rules(PROJECT, &g))];
    check_snapshot("rules.yaml", &rule_file(&groups));
}

#[test]
fn rendering_is_deterministic() {
    let g = fixture_graph();
    assert_eq!(
        render_graph_dashboards(PROJECT, &g),
        render_graph_dashboards(PROJECT, &g)
    );
    assert_eq!(rule_object(&g), rule_object(&g));
}

/// Brackets balance outside string literals: a cheap guard against a `format!` brace slip.
fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some('\\') => {
                        chars.next();
                    }
                    Some('"') | None => break,
                    Some(_) => {}
                }
            },
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let open = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty()
}

#[test]
fn dashboards_follow_the_conventions() {
    let g = fixture_graph();
    let set = render_graph_dashboards(PROJECT, &g);
    let deployments: Vec<String> = g
        .services
        .iter()
        .map(|s| object_name(&g.id, &s.id))
        .collect();

    let mut uids = BTreeSet::new();
    for d in set.iter().chain([&render_cluster_dashboard("edge-1")]) {
        assert!(d.uid.len() <= 40, "{}", d.uid);
        assert!(uids.insert(d.uid.clone()), "duplicate uid {}", d.uid);
        assert_eq!(d.model["uid"], d.uid.as_str());
        assert_eq!(d.model["title"], d.title.as_str());
        assert_eq!(d.model["schemaVersion"], SCHEMA_VERSION);
        let exprs = dashboard_queries(&d.model);
        assert!(!exprs.is_empty(), "{} has no queries", d.title);
        for e in exprs {
            assert!(balanced(&e), "unbalanced brackets in {e}");
        }
    }

    assert_eq!(set.graph.title, "smo / demo / shop");
    assert_eq!(set.graph.uid, graph_dashboard_uid(PROJECT, "shop"));
    assert_eq!(
        set.graph.model["tags"],
        serde_json::json!(["smo", "demo", "shop"])
    );
    let service_var = &set.graph.model["templating"]["list"][1];
    assert_eq!(service_var["name"], "service");
    assert_eq!(service_var["query"], deployments.join(","));
    let titles: Vec<&str> = set.graph.model["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Ready pods",
            "Request rate",
            "CPU utilisation vs limit",
            "Memory working set",
            "CPU throttling"
        ]
    );
    for e in dashboard_queries(&set.graph.model) {
        assert!(e.contains(r#"namespace="demo""#), "{e}");
        assert!(e.contains("$service") || e.contains("${service}"), "{e}");
    }

    for ((s, d), dep) in g.services.iter().zip(&set.services).zip(&deployments) {
        assert_eq!(d.title, format!("smo / demo / shop / {}", s.id));
        assert_eq!(d.uid, service_dashboard_uid(PROJECT, "shop", &s.id));
        for e in dashboard_queries(&d.model) {
            assert!(e.contains(dep.as_str()), "{e} should name {dep}");
            assert!(!e.contains('$'), "{e}");
        }
    }

    let cluster = render_cluster_dashboard("edge-1");
    let all = dashboard_queries(&cluster.model).join("\n");
    for metric in [
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_network_receive_bytes_total",
    ] {
        assert!(all.contains(metric), "cluster dashboard lacks {metric}");
    }
    for e in dashboard_queries(&cluster.model) {
        assert!(e.contains(r#"cluster="edge-1""#), "{e}");
    }
}

#[test]
fn only_conditional_services_get_rules() {
    let g = fixture_graph();
    let rules = alert_rules(PROJECT, &g);
    let names: Vec<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    assert_eq!(names, ["checkout-errors-high", "checkout-down"]);
    assert!(rules.iter().all(|r| r.labels["service"] == "fraud-check"));
    assert_eq!(rules[0].for_, "1m30s");
    assert_eq!(rules[1].for_, "0s");
    assert_eq!(
        rules[0].annotations["description"],
        "More than 5 failed checkouts per second"
    );

    let obj = rule_object(&g);
    assert_eq!(obj["metadata"]["labels"]["smo.io/graph"], "shop");
    assert_eq!(obj["spec"]["groups"][0]["name"], "smo-demo-shop");
}

#[test]
fn fixture_scaling_metric_is_a_rate_template() {
    let g = fixture_graph();
    let s = g.service("frontend").expect("frontend");
    let template = s
        .deployment
        .intent
        .scaling
        .as_ref()
        .and_then(|sc| sc.metric.as_deref());
    assert_eq!(
        rate_query(template, PROJECT, &object_name(&g.id, &s.id), &s.id, "2m"),
        r#"sum(rate(http_requests_total{namespace="demo",job="shop-frontend"}[2m]))"#
    );
}

// ------------------------------------------------------------------ CRD conformance

fn prometheus_rule_crd() -> Option<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/crds/monitoring.coreos.com_prometheusrules.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        smo_jobs::testing::missing_prerequisite(&path.display().to_string());
        return None;
    };
    Some(serde_norway::from_str(&text).expect("CRD YAML"))
}

fn v1_schema(crd: &Value) -> &Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "v1"))
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .expect("v1 schema")
}

/// The subset of OpenAPI v3 structural schemas the PrometheusRule CRD uses: type, properties
/// (unknown keys are errors, to catch a misspelt field), additionalProperties, required, items,
/// pattern, minLength, enum, anyOf, int-or-string and list-map key uniqueness.
fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if schema["x-kubernetes-int-or-string"] == true {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errors.push(format!("{path}: expected an integer or a string"));
        }
        return;
    }
    if let Some(any) = schema["anyOf"].as_array()
        && schema.get("type").is_none()
    {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            validate(s, v, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{path}: matches none of anyOf"));
        }
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{path}: expected {ty}, got {v}"));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        errors.push(format!("{path}: {v} not in {values:?}"));
    }
    if let Some(s) = v.as_str() {
        if let Some(min) = schema["minLength"].as_u64()
            && (s.chars().count() as u64) < min
        {
            errors.push(format!("{path}: shorter than {min}"));
        }
        if let Some(p) = schema["pattern"].as_str() {
            let re = regex::Regex::new(p).expect("CRD pattern compiles");
            if !re.is_match(s) {
                errors.push(format!("{path}: {s:?} does not match {p}"));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            if let Some(k) = req.as_str()
                && !obj.contains_key(k)
            {
                errors.push(format!("{path}: missing required {k}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, child) in obj {
            let p = format!("{path}.{k}");
            match props.and_then(|ps| ps.get(k)) {
                Some(s) => validate(s, child, &p, errors),
                None if schema["additionalProperties"].is_object() => {
                    validate(&schema["additionalProperties"], child, &p, errors)
                }
                None if props.is_some() => errors.push(format!("{p}: unknown field")),
                None => {}
            }
        }
    }
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
        if schema["x-kubernetes-list-type"] == "map" {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut seen = BTreeSet::new();
            for item in items {
                let key: Vec<String> = keys.iter().map(|k| item[*k].to_string()).collect();
                if !seen.insert(key.clone()) {
                    errors.push(format!("{path}: duplicate list-map key {key:?}"));
                }
            }
        }
    }
}

fn errors_of(schema: &Value, v: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    validate(schema, v, "", &mut errors);
    errors
}

#[test]
fn prometheus_rule_validates_against_the_crd() {
    let Some(crd) = prometheus_rule_crd() else {
        return;
    };
    let schema = v1_schema(&crd);
    let obj = rule_object(&fixture_graph());
    assert_eq!(errors_of(schema, &obj), Vec::<String>::new());

    // A graph without conditional services: an empty group, still valid.
    let mut plain = fixture_graph();
    plain.services.retain(|s| !s.is_conditional());
    assert_eq!(
        errors_of(schema, &rule_object(&plain)),
        Vec::<String>::new()
    );

    // The rule file has the same shape as the CRD's spec.
    let g = fixture_graph();
    let file: Value = serde_norway::from_str(&rule_file(&[(
        rule_group_name(PROJECT, &g.id),
        alert_rules(PROJECT, &g),
    )]))
    .expect("rule file YAML");
    assert_eq!(
        errors_of(&schema["properties"]["spec"], &file),
        Vec::<String>::new()
    );

    // The checker is not vacuous: it sees a bad `for`, a missing expr and repeated groups.
    let mut bad = obj.clone();
    bad["spec"]["groups"][0]["rules"][0]["for"] = Value::from("30s1m");
    bad["spec"]["groups"][0]["rules"][1]
        .as_object_mut()
        .map(|r| r.remove("expr"));
    let group = bad["spec"]["groups"][0].clone();
    bad["spec"]["groups"]
        .as_array_mut()
        .expect("groups")
        .push(group);
    let errors = errors_of(schema, &bad).join("\n");
    assert!(errors.contains("does not match"), "{errors}");
    assert!(errors.contains("missing required expr"), "{errors}");
    assert!(errors.contains("duplicate list-map key"), "{errors}");
}

#[test]
fn normalised_durations_match_the_crd_pattern() {
    let Some(crd) = prometheus_rule_crd() else {
        return;
    };
    let pattern = v1_schema(&crd)["properties"]["spec"]["properties"]["groups"]["items"]
        ["properties"]["rules"]["items"]["properties"]["for"]["pattern"]
        .as_str()
        .expect("the CRD gives rules[].for a pattern");
    let re = regex::Regex::new(pattern).expect("pattern compiles");
    let inputs = [
        "0",
        "0s",
        "1",
        "59",
        "60",
        "90",
        "3600",
        "30s1m",
        "1m1m",
        "90s",
        "2m",
        "1h30m",
        "36h",
        "7d",
        "8d",
        "14d",
        "365d",
        "366d",
        "1y1w",
        "1500ms",
        "1s1ms",
        "5m30s250ms",
    ];
    for raw in inputs {
        let d = prometheus_duration(raw).expect(raw);
        assert!(re.is_match(&d), "{raw} → {d} does not match {pattern}");
    }
    // Values smo's descriptor validation accepts but Prometheus would not, as written.
    assert!(!re.is_match("30s1m"));
    assert!(!re.is_match("90"));
}

#[test]
fn smo_dashboard_watches_every_family_smo_exports() {
    let d = render_smo_dashboard();
    assert_eq!(d.uid, SMO_DASHBOARD_UID);
    let queries = dashboard_queries(&d.model);
    for e in &queries {
        assert!(balanced(e), "unbalanced brackets in {e}");
    }
    let all = queries.join("\n");
    // Every family smo exposes is on the dashboard, so a new one is not forgotten silently.
    let mut text = crate::metrics::render_process();
    smo_jobs::metrics::ENQUEUED.inc(&["dashboard-test"]);
    text.push_str(&crate::metrics::render_process());
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .chain([
            "smo_queue_depth",
            "smo_queue_oldest_seconds",
            "smo_workers_alive",
        ])
        .collect();
    assert!(families.len() >= 10, "{families:?}");
    for f in families {
        assert!(all.contains(f), "smo's dashboard does not show {f}");
    }
}

#[test]
fn the_chart_ships_the_dashboard_smo_renders() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/smo/dashboards/smo.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let current = format!(
        "{}\n",
        serde_json::to_string_pretty(&render_smo_dashboard().model).unwrap()
    );
    assert!(
        committed == current,
        "{} is stale; refresh it with: cargo run -q --bin smo -- dashboard > charts/smo/dashboards/smo.json",
        path.display()
    );
}
