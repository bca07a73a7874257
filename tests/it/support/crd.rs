//! A small validator for Kubernetes objects against a CustomResourceDefinition's
//! structural OpenAPI v3 schema.
//!
//! Why it exists: smo writes PropagationPolicies, OverridePolicies, ServiceExports,
//! ServiceImports, PrometheusRules and Clusters as untyped JSON. The apiserver rejects a
//! wrong type or a missing required field with a 422, which a test can only see against a
//! live control plane; worse, it *silently prunes* fields its schema does not know, so a
//! misspelt field is simply lost. Conformance tests run every object smo produces through
//! [`validate`] against the real CRDs so both kinds of mistake fail a unit test instead.
//!
//! It is deliberately not a general JSON-Schema engine. It checks the keywords structural
//! CRD schemas use (listed in [`SUPPORTED_KEYWORDS`]), ignores pure annotations
//! ([`IGNORED_KEYWORDS`]), and [`Crd::unsupported_keywords`] names anything else a CRD uses,
//! so a test can prove no part of a schema went unchecked.

// Each test binary that includes this file (via `#[path]`) uses a different subset of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use regex::Regex;
use serde_json::{Map, Number, Value};

/// Schema keywords [`validate`] enforces.
pub const SUPPORTED_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "enum",
    "items",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "anyOf",
    "oneOf",
    "allOf",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
];

/// Keywords that cannot make a written object invalid, so skipping them loses nothing:
/// documentation, merge strategy (`x-kubernetes-map-type`), and `default` (the apiserver
/// fills it in; [`validate`] treats a required field that has a default as present).
/// `format` is skipped on purpose: smo writes no date-times or byte strings to these kinds,
/// and the apiserver's format checks are lenient for the others (`int32`, `int64`).
pub const IGNORED_KEYWORDS: &[&str] = &[
    "description",
    "title",
    "example",
    "externalDocs",
    "default",
    "format",
    "x-kubernetes-map-type",
];

/// The fields the apiserver itself owns at the root of every object; the CRD schema never
/// decides whether they survive, so the schema walk skips them and [`validate`] checks them
/// separately.
const ROOT_TYPE_META: &[&str] = &["apiVersion", "kind", "metadata"];

/// Names of custom resources must be DNS-1123 subdomains (apiextensions-apiserver uses
/// `NameIsDNSSubdomain`); smo derives names from user input, so this is a real failure mode.
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const LABEL_NAME: &str = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$";
const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// What a test needs from a CustomResourceDefinition to validate objects of its kind.
#[derive(Debug, Clone)]
pub struct Crd {
    /// API group, e.g. `policy.karmada.io`.
    pub group: String,
    /// `spec.names.kind`, e.g. `PropagationPolicy`.
    pub kind: String,
    /// `spec.names.plural`, e.g. `propagationpolicies` (the REST path segment smo uses).
    pub plural: String,
    /// `Namespaced` or `Cluster`.
    pub scope: String,
    /// `openAPIV3Schema` of every *served* version, by version name. Unserved versions are
    /// left out because nothing can be written with them.
    pub versions: BTreeMap<String, Value>,
}

impl Crd {
    /// Every schema keyword used by this CRD that [`validate`] neither enforces nor knows
    /// to be harmless. Empty means the validator checked everything the apiserver would.
    pub fn unsupported_keywords(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for schema in self.versions.values() {
            collect_unsupported(schema, &mut found);
        }
        found
    }
}

fn collect_unsupported(schema: &Value, found: &mut BTreeSet<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    for (keyword, sub) in node {
        let known = SUPPORTED_KEYWORDS.contains(&keyword.as_str())
            || IGNORED_KEYWORDS.contains(&keyword.as_str());
        if !known {
            found.insert(keyword.clone());
        }
        match (keyword.as_str(), sub) {
            ("properties", Value::Object(props)) => {
                props.values().for_each(|p| collect_unsupported(p, found))
            }
            ("items" | "additionalProperties", _) => collect_unsupported(sub, found),
            ("anyOf" | "oneOf" | "allOf", Value::Array(branches)) => {
                branches.iter().for_each(|b| collect_unsupported(b, found))
            }
            _ => {}
        }
    }
}

/// Reads one CRD (a single YAML document) from `path`.
pub fn load(path: &Path) -> Result<Crd, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses one CRD from YAML text; tests use it for small inline CRDs.
pub fn parse(yaml: &str) -> Result<Crd, String> {
    let doc: Value = serde_norway::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return Err("not a CustomResourceDefinition".into());
    }
    let text_at = |pointer: &str| {
        doc.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("missing string at {pointer}"))
    };
    let scope = text_at("/spec/scope")?;
    if scope != "Namespaced" && scope != "Cluster" {
        return Err(format!("unknown scope {scope:?}"));
    }
    let mut versions = BTreeMap::new();
    let listed = doc
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .ok_or("missing /spec/versions")?;
    for version in listed {
        let name = version
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a version has no name")?;
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let schema = version
            .pointer("/schema/openAPIV3Schema")
            .ok_or_else(|| format!("version {name} has no openAPIV3Schema"))?;
        versions.insert(name.to_owned(), schema.clone());
    }
    if versions.is_empty() {
        return Err("no served version".into());
    }
    Ok(Crd {
        group: text_at("/spec/group")?,
        kind: text_at("/spec/names/kind")?,
        plural: text_at("/spec/names/plural")?,
        scope,
        versions,
    })
}

/// Validates `obj` as the apiserver would on create, returning every problem as
/// `<json path>: <what is wrong>` (empty means valid).
///
/// Checks `apiVersion` (group and a served version) and `kind`, loosely checks `metadata`
/// (what the apiserver itself enforces on names, namespace and labels), then walks the
/// version's schema. Fields the schema does not declare are reported, not ignored: the
/// apiserver would prune them, so whatever smo meant by them would be lost.
pub fn validate(crd: &Crd, obj: &Value) -> Vec<String> {
    let mut v = Validator::default();
    let Some(fields) = obj.as_object() else {
        v.report("", format!("expected object, got {}", json_type(obj)));
        return v.problems;
    };
    let schema = v.served_schema(crd, fields);
    v.check_metadata(crd, fields.get("metadata"));
    if let Some(schema) = schema {
        v.check(schema, obj, "");
    }
    v.problems
}

/// `<json path>: <what is wrong>` for `value` against a bare schema (no Kubernetes object
/// envelope): the same keywords as [`validate`], e.g. for a chart's `values.schema.json`.
pub fn validate_value(schema: &Value, value: &Value) -> Vec<String> {
    let mut v = Validator::default();
    v.check(schema, value, "");
    v.problems
}

/// Accumulates problems while walking; holds compiled `pattern`s so each is built once.
#[derive(Default)]
struct Validator {
    problems: Vec<String>,
    regexes: HashMap<String, Result<Regex, String>>,
}

impl Validator {
    fn report(&mut self, path: &str, message: impl std::fmt::Display) {
        let shown = if path.is_empty() { "(root)" } else { path };
        self.problems.push(format!("{shown}: {message}"));
    }

    /// Checks `kind` and `apiVersion`, returning the schema of the version named by
    /// `apiVersion` when the CRD serves it.
    fn served_schema<'a>(
        &mut self,
        crd: &'a Crd,
        fields: &Map<String, Value>,
    ) -> Option<&'a Value> {
        match fields.get("kind") {
            Some(Value::String(kind)) if *kind == crd.kind => {}
            Some(other) => self.report("kind", format!("expected {:?}, got {other}", crd.kind)),
            None => self.report("kind", "required field missing"),
        }
        let api_version = match fields.get("apiVersion") {
            Some(Value::String(api_version)) => api_version,
            Some(other) => {
                self.report(
                    "apiVersion",
                    format!("expected string, got {}", json_type(other)),
                );
                return None;
            }
            None => {
                self.report("apiVersion", "required field missing");
                return None;
            }
        };
        let schema = match api_version.split_once('/') {
            Some((group, version)) if group == crd.group => crd.versions.get(version),
            _ => None,
        };
        if schema.is_none() {
            let served: Vec<String> = crd
                .versions
                .keys()
                .map(|v| format!("{}/{v}", crd.group))
                .collect();
            self.report(
                "apiVersion",
                format!(
                    "{api_version:?} is not served for {} (served: {})",
                    crd.kind,
                    served.join(", ")
                ),
            );
        }
        schema
    }

    /// The apiserver, not the CRD schema, owns `metadata`: CRD schemas say only
    /// `type: object`. Check the parts smo sets and the apiserver enforces.
    fn check_metadata(&mut self, crd: &Crd, metadata: Option<&Value>) {
        let Some(metadata) = metadata else {
            self.report("metadata", "required field missing");
            return;
        };
        let Some(meta) = metadata.as_object() else {
            self.report(
                "metadata",
                format!("expected object, got {}", json_type(metadata)),
            );
            return;
        };
        match (meta.get("name"), meta.get("generateName")) {
            (Some(Value::String(name)), _) => {
                self.check_dns(name, DNS_SUBDOMAIN, 253, "metadata.name")
            }
            (Some(other), _) => self.report(
                "metadata.name",
                format!("expected string, got {}", json_type(other)),
            ),
            (None, Some(Value::String(_))) => {}
            (None, _) => self.report("metadata.name", "required field missing"),
        }
        match meta.get("namespace") {
            None => {}
            // The apiserver clears it without a word, so a caller relying on it is wrong.
            Some(_) if crd.scope == "Cluster" => self.report(
                "metadata.namespace",
                format!(
                    "{} is cluster-scoped; the apiserver would clear the namespace",
                    crd.kind
                ),
            ),
            Some(Value::String(ns)) => self.check_dns(ns, DNS_LABEL, 63, "metadata.namespace"),
            Some(other) => self.report(
                "metadata.namespace",
                format!("expected string, got {}", json_type(other)),
            ),
        }
        for map_name in ["labels", "annotations"] {
            let Some(map) = meta.get(map_name) else {
                continue;
            };
            let map_path = format!("metadata.{map_name}");
            let Some(entries) = map.as_object() else {
                self.report(
                    &map_path,
                    format!("expected object, got {}", json_type(map)),
                );
                continue;
            };
            for (key, value) in entries {
                let path = child(&map_path, key);
                let Some(text) = value.as_str() else {
                    self.report(&path, format!("expected string, got {}", json_type(value)));
                    continue;
                };
                if map_name == "labels" {
                    self.check_label(key, text, &path);
                }
            }
        }
    }

    fn check_dns(&mut self, text: &str, pattern: &str, max: usize, path: &str) {
        if text.len() > max || !self.matches(pattern, text, path) {
            self.report(
                path,
                format!("{text:?} is not a valid DNS-1123 name (at most {max} characters)"),
            );
        }
    }

    /// Label keys are `[prefix/]name` and values are short restricted strings; the
    /// apiserver rejects anything else.
    fn check_label(&mut self, key: &str, value: &str, path: &str) {
        let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
        let prefix_ok = !key.contains('/')
            || (prefix.len() <= 253 && self.matches(DNS_SUBDOMAIN, prefix, path));
        if !prefix_ok || name.len() > 63 || !self.matches(LABEL_NAME, name, path) {
            self.report(path, "invalid label key");
        }
        if value.len() > 63 || !self.matches(LABEL_VALUE, value, path) {
            self.report(path, format!("invalid label value {value:?}"));
        }
    }

    /// Whether `pattern` (Go RE2 syntax in CRDs, which the `regex` crate shares) finds a
    /// match in `text`. A pattern that does not compile is reported, never a panic.
    fn matches(&mut self, pattern: &str, text: &str, path: &str) -> bool {
        let compiled = self
            .regexes
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string()));
        match compiled {
            Ok(re) => re.is_match(text),
            Err(e) => {
                let message = format!("schema pattern {pattern:?} does not compile: {e}");
                self.report(path, message);
                false
            }
        }
    }

    /// Validates `value` at `path` against one schema node.
    fn check(&mut self, schema: &Value, value: &Value, path: &str) {
        let Some(node) = schema.as_object() else {
            self.report(path, "schema node is not an object");
            return;
        };
        if value.is_null() {
            if !flag(node, "nullable") {
                self.report(
                    path,
                    "null is not allowed (not nullable; the apiserver would prune it)",
                );
            }
            return;
        }
        if !self.check_type(node, value, path) {
            return; // every other keyword would only repeat the type error
        }
        if let Some(allowed @ Value::Array(choices)) = node.get("enum")
            && !choices.contains(value)
        {
            self.report(path, format!("{value} is not one of {allowed}"));
        }
        match value {
            Value::String(text) => self.check_string(node, text, path),
            Value::Number(number) => self.check_number(node, number, path),
            Value::Array(items) => self.check_array(node, items, path),
            Value::Object(fields) => self.check_object(node, fields, path),
            Value::Bool(_) | Value::Null => {}
        }
        self.check_branches(node, value, path);
    }

    /// `type`, or integer-or-string for `x-kubernetes-int-or-string` (whose schema has no
    /// `type`). Returns false when the value has the wrong type.
    fn check_type(&mut self, node: &Map<String, Value>, value: &Value, path: &str) -> bool {
        let is_integer = value.is_i64() || value.is_u64();
        let (expected, ok) = if flag(node, "x-kubernetes-int-or-string") {
            ("integer or string", is_integer || value.is_string())
        } else {
            match node.get("type").and_then(Value::as_str) {
                None => return true,
                Some("object") => ("object", value.is_object()),
                Some("array") => ("array", value.is_array()),
                Some("string") => ("string", value.is_string()),
                Some("integer") => ("integer", is_integer),
                Some("number") => ("number", value.is_number()),
                Some("boolean") => ("boolean", value.is_boolean()),
                Some(other) => {
                    self.report(path, format!("schema has unknown type {other:?}"));
                    return false;
                }
            }
        };
        if !ok {
            self.report(
                path,
                format!("expected {expected}, got {}", json_type(value)),
            );
        }
        ok
    }

    fn check_string(&mut self, node: &Map<String, Value>, text: &str, path: &str) {
        // The apiserver counts characters, not bytes.
        let length = text.chars().count();
        self.check_count(node, ("minLength", "maxLength"), length, "characters", path);
        if let Some(pattern) = node.get("pattern").and_then(Value::as_str)
            && !self.matches(pattern, text, path)
        {
            self.report(path, format!("{text:?} does not match pattern {pattern}"));
        }
    }

    /// The `min*`/`max*` pair bounding a string's length or an array's or object's size.
    fn check_count(
        &mut self,
        node: &Map<String, Value>,
        (min_keyword, max_keyword): (&str, &str),
        count: usize,
        unit: &str,
        path: &str,
    ) {
        let count = count as u64;
        if let Some(min) = node.get(min_keyword).and_then(Value::as_u64)
            && count < min
        {
            self.report(
                path,
                format!("{count} {unit}, fewer than {min_keyword} {min}"),
            );
        }
        if let Some(max) = node.get(max_keyword).and_then(Value::as_u64)
            && count > max
        {
            self.report(
                path,
                format!("{count} {unit}, more than {max_keyword} {max}"),
            );
        }
    }

    fn check_number(&mut self, node: &Map<String, Value>, number: &Number, path: &str) {
        let Some(n) = number.as_f64() else {
            return;
        };
        if let Some(min) = node.get("minimum").and_then(Value::as_f64) {
            let exclusive = flag(node, "exclusiveMinimum");
            if n < min || (exclusive && n == min) {
                let bound = if exclusive {
                    "exclusive minimum"
                } else {
                    "minimum"
                };
                self.report(path, format!("{number} is below the {bound} {min}"));
            }
        }
        if let Some(max) = node.get("maximum").and_then(Value::as_f64) {
            let exclusive = flag(node, "exclusiveMaximum");
            if n > max || (exclusive && n == max) {
                let bound = if exclusive {
                    "exclusive maximum"
                } else {
                    "maximum"
                };
                self.report(path, format!("{number} is above the {bound} {max}"));
            }
        }
    }

    fn check_array(&mut self, node: &Map<String, Value>, items: &[Value], path: &str) {
        self.check_count(node, ("minItems", "maxItems"), items.len(), "items", path);
        self.check_list_type(node, items, path);
        if let Some(item_schema) = node.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}[{i}]"));
            }
        }
    }

    /// `x-kubernetes-list-type: set` and `map` promise uniqueness (of items, or of the
    /// `x-kubernetes-list-map-keys` tuple); the apiserver rejects duplicates.
    fn check_list_type(&mut self, node: &Map<String, Value>, items: &[Value], path: &str) {
        let key_of = |item: &Value| -> Option<Value> {
            match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => Some(item.clone()),
                Some("map") => {
                    let keys = node.get("x-kubernetes-list-map-keys")?.as_array()?;
                    let tuple = keys
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|k| item.get(k).cloned().unwrap_or(Value::Null));
                    Some(Value::Array(tuple.collect()))
                }
                _ => None,
            }
        };
        let mut seen: Vec<Value> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(key) = key_of(item) else {
                return;
            };
            if let Some(first) = seen.iter().position(|k| *k == key) {
                self.report(
                    &format!("{path}[{i}]"),
                    format!("duplicate of [{first}] (list keyed by {key})"),
                );
            }
            seen.push(key);
        }
    }

    fn check_object(&mut self, node: &Map<String, Value>, fields: &Map<String, Value>, path: &str) {
        let bounds = ("minProperties", "maxProperties");
        self.check_count(node, bounds, fields.len(), "fields", path);
        let properties = node.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = node.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                // The apiserver applies `default` before validating, so it satisfies `required`.
                let defaulted = properties
                    .and_then(|p| p.get(name))
                    .is_some_and(|p| p.get("default").is_some());
                if !fields.contains_key(name) && !defaulted {
                    self.report(&child(path, name), "required field missing");
                }
            }
        }
        let additional = node.get("additionalProperties");
        // A structural `type: object` node keeps only declared fields unless told otherwise.
        let prunes = node.get("type").and_then(Value::as_str) == Some("object")
            && !flag(node, "x-kubernetes-preserve-unknown-fields");
        for (key, value) in fields {
            if path.is_empty() && ROOT_TYPE_META.contains(&key.as_str()) {
                continue;
            }
            let field_path = child(path, key);
            if let Some(schema) = properties.and_then(|p| p.get(key)) {
                self.check(schema, value, &field_path);
                continue;
            }
            match additional {
                Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => {
                    self.report(&field_path, "unknown field (additionalProperties: false)")
                }
                Some(schema) => self.check(schema, value, &field_path),
                None if prunes => self.report(
                    &field_path,
                    "unknown field (not in the schema; the apiserver would silently prune it)",
                ),
                None => {}
            }
        }
    }

    /// `anyOf` (at least one branch), `oneOf` (exactly one) and `allOf` (every branch).
    /// In structural schemas these only add value checks, e.g. integer-or-string quantities.
    fn check_branches(&mut self, node: &Map<String, Value>, value: &Value, path: &str) {
        for keyword in ["anyOf", "oneOf", "allOf"] {
            let Some(Value::Array(branches)) = node.get(keyword) else {
                continue;
            };
            let outcomes: Vec<Vec<String>> = branches
                .iter()
                .map(|branch| self.problems_of(branch, value, path))
                .collect();
            let passing = outcomes.iter().filter(|p| p.is_empty()).count();
            match keyword {
                "allOf" => self.problems.extend(outcomes.into_iter().flatten()),
                "anyOf" if passing == 0 => {
                    let why: Vec<String> = outcomes.into_iter().flatten().collect();
                    self.report(
                        path,
                        format!("matches no anyOf branch ({})", why.join("; ")),
                    );
                }
                "oneOf" if passing != 1 => self.report(
                    path,
                    format!("matches {passing} oneOf branches, expected exactly 1"),
                ),
                _ => {}
            }
        }
    }

    /// The problems `value` would have against `schema` alone, without recording them.
    fn problems_of(&mut self, schema: &Value, value: &Value, path: &str) -> Vec<String> {
        let outer = std::mem::take(&mut self.problems);
        self.check(schema, value, path);
        std::mem::replace(&mut self.problems, outer)
    }
}

fn flag(node: &Map<String, Value>, keyword: &str) -> bool {
    node.get(keyword).and_then(Value::as_bool) == Some(true)
}

/// JSON's own type names; integers are reported as `number` like any JSON number.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier
/// (label keys like `app.kubernetes.io/name`, resource names like `nvidia.com/gpu`).
fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (plain, parent.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{parent}.{key}"),
        (false, _) => format!("{parent}[{}]", Value::String(key.to_owned())),
    }
}
