//! Tests of the CRD validator in `support/crd.rs`.
//!
//! Two halves: a small inline CRD exercises every supported keyword (always runs), and the
//! real CRDs in `../shared/crds` (from the Karmada, mcs-api and prometheus-operator
//! projects) check hand-written objects of the kinds smo writes. The shared directory lives
//! outside this repository on purpose, so those cases skip, with a message, when it is absent.

use std::path::{Path, PathBuf};

use crate::support::crd::{self, Crd};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Inline CRD: one field per keyword, so each test names exactly one rule.
// ---------------------------------------------------------------------------------------

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1beta1
    served: false
    storage: false
    schema:
      openAPIV3Schema: {type: object}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [size, mode]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              ratio: {type: number, minimum: 0, maximum: 1, exclusiveMaximum: true}
              mode: {type: string, enum: [Fast, Slow], default: Fast}
              name: {type: string, minLength: 1, maxLength: 5, pattern: '^[a-z]+$'}
              enabled: {type: boolean}
              tags:
                type: array
                minItems: 1
                maxItems: 3
                items: {type: string}
                x-kubernetes-list-type: set
              ports:
                type: array
                items:
                  type: object
                  required: [port]
                  properties:
                    name: {type: string}
                    port: {type: integer}
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [port]
              labels:
                type: object
                additionalProperties: {type: string}
              anything:
                type: object
                additionalProperties: true
              closed:
                type: object
                additionalProperties: false
              raw:
                x-kubernetes-preserve-unknown-fields: true
              quantity:
                anyOf: [{type: integer}, {type: string}]
                x-kubernetes-int-or-string: true
                pattern: '^[0-9]+(Mi|Gi)?$'
              choice:
                oneOf: [{type: string, enum: [a, b]}, {type: string, enum: [b, c]}]
              note: {type: string, nullable: true}
              nested:
                type: object
                x-kubernetes-preserve-unknown-fields: true
                properties:
                  known: {type: integer}
"#;

fn widget_crd() -> Crd {
    crd::parse(WIDGET_CRD).expect("inline CRD parses")
}

fn valid_widget() -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w-1", "namespace": "team-a", "labels": {"app.kubernetes.io/name": "w"}},
        "spec": {
            "size": 3, "ratio": 0.5, "mode": "Slow", "name": "abc", "enabled": true,
            "tags": ["x", "y"],
            "ports": [{"port": 80}, {"port": 443, "name": "https"}],
            "labels": {"a": "b"},
            "anything": {"x": [1, {"y": null}]},
            "closed": {},
            "raw": {"whatever": [1, "two"]},
            "quantity": "16Gi",
            "choice": "a",
            "note": null,
            "nested": {"known": 1, "extra": {"deep": true}},
        },
    })
}

/// Problems of the valid widget after `change`; every rule test starts from a valid object so
/// the only problems are the ones the change causes.
fn widget_problems(change: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut obj = valid_widget();
    change(&mut obj);
    sorted_problems(&widget_crd(), &obj)
}

/// Problems in a stable order, so assertions do not depend on the walk order.
fn sorted_problems(crd: &Crd, obj: &Value) -> Vec<String> {
    let mut problems = crd::validate(crd, obj);
    problems.sort();
    problems
}

#[test]
fn parse_keeps_only_served_versions_and_names() {
    let crd = widget_crd();
    assert_eq!(
        (crd.group.as_str(), crd.kind.as_str()),
        ("example.com", "Widget")
    );
    assert_eq!(
        (crd.plural.as_str(), crd.scope.as_str()),
        ("widgets", "Namespaced")
    );
    assert_eq!(crd.versions.keys().collect::<Vec<_>>(), ["v1"]);
    assert!(crd.unsupported_keywords().is_empty());
    assert!(crd::parse("kind: ConfigMap").is_err());
    assert!(crd::load(Path::new("/nonexistent/crd.yaml")).is_err());
}

#[test]
fn unsupported_keywords_are_listed() {
    let yaml = WIDGET_CRD.replace(
        "nullable: true",
        "nullable: true, x-kubernetes-validations: []",
    );
    let crd = crd::parse(&yaml).expect("parses");
    assert_eq!(
        crd.unsupported_keywords().into_iter().collect::<Vec<_>>(),
        ["x-kubernetes-validations"]
    );
}

#[test]
fn valid_widget_has_no_problems() {
    assert_eq!(widget_problems(|_| {}), Vec::<String>::new());
}

#[test]
fn type_mismatches_name_the_path() {
    let problems = widget_problems(|o| {
        o["spec"]["size"] = json!("3");
        o["spec"]["tags"][1] = json!(7);
        o["spec"]["enabled"] = json!("yes");
        o["spec"]["ratio"] = json!([]);
    });
    assert_eq!(
        problems,
        [
            "spec.enabled: expected boolean, got string",
            "spec.ratio: expected number, got array",
            "spec.size: expected integer, got string",
            "spec.tags[1]: expected string, got number",
        ]
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["size"] = json!(2.5)),
        ["spec.size: expected integer, got number"]
    );
    assert_eq!(
        crd::validate(&widget_crd(), &json!([1])),
        ["(root): expected object, got array"]
    );
}

#[test]
fn required_fields_without_default_must_be_present() {
    let problems = widget_problems(|o| {
        let spec = o["spec"].as_object_mut().expect("spec");
        spec.remove("size");
        spec.remove("mode"); // has a default, which the apiserver fills in
        o["spec"]["ports"][0] = json!({"name": "p"});
    });
    assert_eq!(
        problems,
        [
            "spec.ports[0].port: required field missing",
            "spec.size: required field missing"
        ]
    );
    let no_spec = widget_problems(|o| {
        o.as_object_mut().expect("object").remove("spec");
    });
    assert_eq!(no_spec, ["spec: required field missing"]);
}

#[test]
fn unknown_fields_are_reported_because_the_apiserver_prunes_them() {
    let problems = widget_problems(|o| {
        o["spec"]["sise"] = json!(3);
        o["spec"]["closed"]["x"] = json!(1);
        o["status"] = json!({});
    });
    assert_eq!(
        problems,
        [
            "spec.closed.x: unknown field (additionalProperties: false)",
            "spec.sise: unknown field (not in the schema; the apiserver would silently prune it)",
            "status: unknown field (not in the schema; the apiserver would silently prune it)",
        ]
    );
}

#[test]
fn additional_properties_and_preserved_fields() {
    assert_eq!(
        widget_problems(|o| o["spec"]["labels"]["n"] = json!(1)),
        ["spec.labels.n: expected string, got number"]
    );
    // preserve-unknown-fields keeps unknown fields, but declared ones are still checked.
    assert_eq!(
        widget_problems(|o| o["spec"]["nested"]["known"] = json!("1")),
        ["spec.nested.known: expected integer, got string"]
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["raw"] = json!("a string is fine too")),
        Vec::<String>::new()
    );
}

#[test]
fn enum_and_one_of() {
    assert_eq!(
        widget_problems(|o| o["spec"]["mode"] = json!("Medium")),
        [r#"spec.mode: "Medium" is not one of ["Fast","Slow"]"#]
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["choice"] = json!("b")),
        ["spec.choice: matches 2 oneOf branches, expected exactly 1"]
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["choice"] = json!("z")),
        ["spec.choice: matches 0 oneOf branches, expected exactly 1"]
    );
}

#[test]
fn int_or_string_with_pattern() {
    assert_eq!(
        widget_problems(|o| o["spec"]["quantity"] = json!(8)),
        Vec::<String>::new()
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["quantity"] = json!(true)),
        ["spec.quantity: expected integer or string, got boolean"]
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["quantity"] = json!("16 GB")),
        [r#"spec.quantity: "16 GB" does not match pattern ^[0-9]+(Mi|Gi)?$"#]
    );
}

#[test]
fn bounds_on_numbers_strings_and_arrays() {
    let problems = widget_problems(|o| {
        o["spec"]["size"] = json!(11);
        o["spec"]["ratio"] = json!(1);
        o["spec"]["name"] = json!("abcdef");
        o["spec"]["tags"] = json!([]);
    });
    assert_eq!(
        problems,
        [
            "spec.name: 6 characters, more than maxLength 5",
            "spec.ratio: 1 is above the exclusive maximum 1",
            "spec.size: 11 is above the maximum 10",
            "spec.tags: 0 items, fewer than minItems 1",
        ]
    );
    let problems = widget_problems(|o| {
        o["spec"]["size"] = json!(0);
        o["spec"]["name"] = json!("");
        o["spec"]["tags"] = json!(["a", "b", "c", "d"]);
    });
    assert_eq!(
        problems,
        [
            r#"spec.name: "" does not match pattern ^[a-z]+$"#,
            "spec.name: 0 characters, fewer than minLength 1",
            "spec.size: 0 is below the minimum 1",
            "spec.tags: 4 items, more than maxItems 3",
        ]
    );
}

#[test]
fn nullable_and_list_uniqueness() {
    assert_eq!(
        widget_problems(|o| o["spec"]["name"] = Value::Null),
        ["spec.name: null is not allowed (not nullable; the apiserver would prune it)"]
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["tags"] = json!(["x", "x"])),
        [r#"spec.tags[1]: duplicate of [0] (list keyed by "x")"#]
    );
    assert_eq!(
        widget_problems(|o| o["spec"]["ports"] = json!([{"port": 80}, {"port": 80, "name": "b"}])),
        ["spec.ports[1]: duplicate of [0] (list keyed by [80])"]
    );
}

#[test]
fn type_meta_and_metadata() {
    let crd = widget_crd();
    let problems = widget_problems(|o| {
        o["apiVersion"] = json!("example.com/v1beta1"); // exists but is not served
        o["kind"] = json!("Gadget");
    });
    assert_eq!(
        problems,
        [
            r#"apiVersion: "example.com/v1beta1" is not served for Widget (served: example.com/v1)"#,
            r#"kind: expected "Widget", got "Gadget""#,
        ]
    );
    let problems = widget_problems(|o| {
        o["metadata"] = json!({"name": "Bad_Name", "namespace": 3, "labels": {"a": 1, "b": "-x"}, "annotations": []});
    });
    assert_eq!(
        problems,
        [
            "metadata.annotations: expected object, got array",
            "metadata.labels.a: expected string, got number",
            r#"metadata.labels.b: invalid label value "-x""#,
            r#"metadata.name: "Bad_Name" is not a valid DNS-1123 name (at most 253 characters)"#,
            "metadata.namespace: expected string, got number",
        ]
    );
    let bare =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": valid_widget()["spec"]});
    assert_eq!(
        crd::validate(&crd, &bare),
        ["metadata: required field missing"]
    );
}

proptest! {
    /// The validator must never panic, whatever smo (or a bug in it) hands it.
    #[test]
    fn never_panics_on_arbitrary_json(value in arbitrary_json()) {
        let crd = widget_crd();
        let _ = crd::validate(&crd, &value);
        let mut obj = valid_widget();
        obj["spec"] = value;
        let _ = crd::validate(&crd, &obj);
    }

    /// Any field the schema does not declare is reported exactly once, at its own path.
    #[test]
    fn any_undeclared_spec_field_is_reported(key in "[a-zA-Z][a-zA-Z0-9]{0,8}", value in arbitrary_json()) {
        let crd = widget_crd();
        let declared = crd.versions["v1"].pointer("/properties/spec/properties").and_then(Value::as_object).expect("spec properties");
        prop_assume!(!declared.contains_key(&key));
        let mut obj = valid_widget();
        obj["spec"][&key] = value;
        let problems = crd::validate(&crd, &obj);
        prop_assert_eq!(problems.len(), 1);
        let expected = format!("spec.{key}: unknown field");
        prop_assert!(problems[0].starts_with(&expected), "{:?}", problems);
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-zA-Z0-9 ./-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------------------------------
// Real CRDs from ../shared/crds.
// ---------------------------------------------------------------------------------------

fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/crds"));
    crate::support::require(&dir.display().to_string(), dir.is_dir()).then(|| dir.to_path_buf())
}

/// The CRD at `file` under the shared directory, or `None` (after saying so) when it is absent.
fn shared(file: &str) -> Option<Crd> {
    let path = shared_dir()?.join(file);
    Some(crd::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

fn assert_valid(crd: &Crd, obj: &Value) {
    let problems = crd::validate(crd, obj);
    assert!(
        problems.is_empty(),
        "{} should be valid, got:\n{}",
        crd.kind,
        problems.join("\n")
    );
}

#[test]
fn every_shared_crd_loads_and_uses_only_supported_keywords() {
    let Some(dir) = shared_dir() else { return };
    let mut files = Vec::new();
    for sub in [
        dir.clone(),
        dir.join("derived"),
        dir.join("mcs-api-upstream"),
    ] {
        let entries = std::fs::read_dir(&sub).unwrap_or_else(|e| panic!("{}: {e}", sub.display()));
        files.extend(
            entries
                .map(|e| e.expect("dir entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml")),
        );
    }
    assert!(
        files.len() >= 6,
        "expected the shared CRDs, found {files:?}"
    );
    for file in files {
        let crd = crd::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let unsupported = crd.unsupported_keywords();
        assert!(
            unsupported.is_empty(),
            "{}: unchecked keywords {unsupported:?}",
            file.display()
        );
    }
}

fn propagation_policy() -> Value {
    json!({
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}],
            "placement": {"clusterAffinity": {"clusterNames": ["a"]}},
        },
    })
}

#[test]
fn propagation_policy_valid() {
    let Some(crd) = shared("policy.karmada.io_propagationpolicies.yaml") else {
        return;
    };
    assert_eq!(
        (crd.plural.as_str(), crd.scope.as_str()),
        ("propagationpolicies", "Namespaced")
    );
    assert_valid(&crd, &propagation_policy());
    let mut divided = propagation_policy();
    divided["spec"]["placement"]["replicaScheduling"] = json!({
        "replicaSchedulingType": "Divided",
        "replicaDivisionPreference": "Weighted",
        "weightPreference": {"staticWeightList": [{"targetCluster": {"clusterNames": ["a"]}, "weight": 2}]},
    });
    assert_valid(&crd, &divided);
}

#[test]
fn propagation_policy_invalid() {
    let Some(crd) = shared("policy.karmada.io_propagationpolicies.yaml") else {
        return;
    };
    let mut obj = propagation_policy();
    obj["spec"]["placement"]["clusterAffinity"]["clusterNames"][0] = json!(1);
    obj["spec"]["placement"]["clusterAfinity"] = json!({"clusterNames": ["b"]});
    obj["spec"]["preemption"] = json!("Sometimes");
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            "spec.placement.clusterAffinity.clusterNames[0]: expected string, got number",
            "spec.placement.clusterAfinity: unknown field (not in the schema; the apiserver would silently prune it)",
            r#"spec.preemption: "Sometimes" is not one of ["Always","Never"]"#,
        ]
    );

    let mut obj = propagation_policy();
    obj["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("resourceSelectors");
    assert_eq!(
        sorted_problems(&crd, &obj),
        ["spec.resourceSelectors: required field missing"]
    );
    obj["spec"]["resourceSelectors"] = json!([]);
    assert_eq!(
        sorted_problems(&crd, &obj),
        ["spec.resourceSelectors: 0 items, fewer than minItems 1"]
    );

    let mut obj = propagation_policy();
    obj["apiVersion"] = json!("policy.karmada.io/v1");
    obj["kind"] = json!("ClusterPropagationPolicy");
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            r#"apiVersion: "policy.karmada.io/v1" is not served for PropagationPolicy (served: policy.karmada.io/v1alpha1)"#,
            r#"kind: expected "PropagationPolicy", got "ClusterPropagationPolicy""#,
        ]
    );
}

#[test]
fn override_policy() {
    let Some(crd) = shared("policy.karmada.io_overridepolicies.yaml") else {
        return;
    };
    let mut obj = json!({
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "OverridePolicy",
        "metadata": {"name": "x-images", "namespace": "default"},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}],
            "overrideRules": [{
                "targetCluster": {"clusterNames": ["a"]},
                "overriders": {
                    "imageOverrider": [{"component": "Registry", "operator": "replace", "value": "registry.a"}],
                    "plaintext": [{"path": "/spec/replicas", "operator": "replace", "value": 2}],
                },
            }],
        },
    });
    assert_valid(&crd, &obj);
    obj["spec"]["overrideRules"][0]["overriders"]["imageOverrider"][0]["operator"] = json!("set");
    obj["spec"]["overrideRules"][0]["overriders"]["plaintext"][0]["value"] =
        json!({"any": ["thing"]});
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            r#"spec.overrideRules[0].overriders.imageOverrider[0].operator: "set" is not one of ["add","remove","replace"]"#
        ]
    );
}

#[test]
fn service_export() {
    let Some(crd) = shared("multicluster.x-k8s.io_serviceexports.yaml") else {
        return;
    };
    let mut obj = json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceExport",
        "metadata": {"name": "web", "namespace": "shop"},
    });
    assert_valid(&crd, &obj);
    // The Karmada copy has no `spec` at all: an empty spec would be pruned.
    obj["spec"] = json!({});
    assert_eq!(
        sorted_problems(&crd, &obj),
        ["spec: unknown field (not in the schema; the apiserver would silently prune it)"]
    );
}

#[test]
fn service_import() {
    let Some(crd) = shared("multicluster.x-k8s.io_serviceimports.yaml") else {
        return;
    };
    let mut obj = json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceImport",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "ClusterSetIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    });
    assert_valid(&crd, &obj);
    obj["spec"]["type"] = json!("LoadBalancer");
    obj["spec"]["ips"] = json!(["10.0.0.1", "10.0.0.2"]);
    obj["spec"]["ports"][0]["port"] = json!("80");
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            "spec.ips: 2 items, more than maxItems 1",
            "spec.ports[0].port: expected integer, got string",
            r#"spec.type: "LoadBalancer" is not one of ["ClusterSetIP","Headless"]"#,
        ]
    );
    obj["spec"] = json!({});
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            "spec.ports: required field missing",
            "spec.type: required field missing"
        ]
    );
}

#[test]
fn prometheus_rule() {
    let Some(crd) = shared("monitoring.coreos.com_prometheusrules.yaml") else {
        return;
    };
    let mut obj = json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "smo-app-x", "namespace": "monitoring", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": [{
            "name": "smo.app-x",
            "rules": [{
                "alert": "AppXDown",
                "expr": "up{job=\"x\"} == 0",
                "for": "1m",
                "labels": {"severity": "critical"},
                "annotations": {"summary": "x is down"},
            }],
        }]},
    });
    assert_valid(&crd, &obj);
    obj["spec"]["groups"][0]["rules"][0]["for"] = json!("1 minute");
    obj["spec"]["groups"][0]["rules"][0]["labels"]["severity"] = json!(2);
    obj["spec"]["groups"][0]["rules"][0]
        .as_object_mut()
        .expect("rule")
        .remove("expr");
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            "spec.groups[0].rules[0].expr: required field missing",
            r#"spec.groups[0].rules[0].for: "1 minute" does not match pattern ^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"#,
            "spec.groups[0].rules[0].labels.severity: expected string, got number",
        ]
    );
    // `groups` is a list-type map keyed by name: the operator relies on names being unique.
    obj["spec"]["groups"] = json!([{"name": "g", "rules": []}, {"name": "g"}]);
    assert_eq!(
        sorted_problems(&crd, &obj),
        [r#"spec.groups[1]: duplicate of [0] (list keyed by ["g"])"#]
    );
}

fn cluster() -> Value {
    json!({
        "apiVersion": "cluster.karmada.io/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "member-1", "labels": {"topology.kubernetes.io/region": "eu-west-1"}},
        "spec": {"syncMode": "Push", "apiEndpoint": "https://10.0.0.1:6443", "region": "eu-west-1"},
        "status": {
            "kubernetesVersion": "v1.33.1",
            "nodeSummary": {"totalNum": 3, "readyNum": 3},
            "resourceSummary": {
                "allocatable": {"cpu": "8", "memory": "16Gi", "pods": 110, "nvidia.com/gpu": "2"},
                "allocated": {"cpu": "3500m", "memory": "7Gi", "pods": "12"},
                "allocating": {},
            },
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "ClusterReady",
                "message": "cluster is healthy and ready to accept workloads",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }],
        },
    })
}

#[test]
fn cluster_from_openapi() {
    let Some(crd) = shared("derived/cluster.karmada.io_clusters.from-openapi.yaml") else {
        return;
    };
    assert_eq!(crd.scope, "Cluster");
    assert_valid(&crd, &cluster());
    let mut with_models = cluster();
    with_models["spec"]["resourceModels"] = json!([{
        "grade": 0,
        "ranges": [{"name": "cpu", "min": "0", "max": "1"}, {"name": "memory", "min": "0", "max": "4Gi"}],
    }]);
    assert_valid(&crd, &with_models);

    let mut obj = cluster();
    obj["metadata"]["namespace"] = json!("karmada-system");
    obj["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("syncMode");
    let allocatable = &mut obj["status"]["resourceSummary"]["allocatable"];
    allocatable["memory"] = json!("16 GB");
    allocatable["nvidia.com/gpu"] = json!(true);
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            "metadata.namespace: Cluster is cluster-scoped; the apiserver would clear the namespace",
            "spec.syncMode: required field missing",
            r#"status.resourceSummary.allocatable.memory: "16 GB" does not match pattern ^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"#,
            r#"status.resourceSummary.allocatable["nvidia.com/gpu"]: expected integer or string, got boolean"#,
        ]
    );
}

/// Why the derived Cluster CRD exists: the last upstream one (2021) would prune fields the
/// current aggregated apiserver serves, such as `spec.resourceModels`.
#[test]
fn historical_cluster_crd_lacks_current_fields() {
    let Some(crd) = shared("cluster.karmada.io_clusters.yaml") else {
        return;
    };
    assert_valid(&crd, &cluster());
    let mut obj = cluster();
    obj["spec"]["resourceModels"] = json!([]);
    assert_eq!(
        sorted_problems(&crd, &obj),
        [
            "spec.resourceModels: unknown field (not in the schema; the apiserver would silently prune it)"
        ]
    );
}
