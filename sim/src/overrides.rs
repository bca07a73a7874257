//! OverridePolicies, as Karmada applies them to what it sends each member cluster: the rules
//! whose `targetCluster` picks the cluster rewrite the resource template's copy in that cluster's
//! Work. Pure: a manifest, the policies and a cluster in; the manifest out.
//!
//! Overriders, in Karmada's order: `imageOverrider` (an image is `[registry/]repository[:tag]`;
//! `add` appends the value to the component, `replace` sets it, `remove` drops it; without a
//! `predicate` every container and init container of the pod template), `commandOverrider` and
//! `argsOverrider` (`add` appends, `remove` takes out, by `containerName`), `labelsOverrider`
//! and `annotationsOverrider` (`add`/`replace` set each key, `remove` deletes it) and
//! `plaintext` (JSON patch operations `add`, `remove`, `replace` at `path`). The deprecated
//! top-level `targetCluster` and `overriders` count as one more rule.

use serde_json::{Value, json};

use super::store::{json_patch, label_selector, matches_all, str_at};

/// Does the cluster affinity `target` pick `cluster` (labelled `labels`)? None picks all.
fn picks(target: &Value, cluster: &str, labels: &Value) -> bool {
    if target.is_null() {
        return true;
    }
    let list = |field: &str| -> Vec<&str> {
        target[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    let (names, exclude) = (list("clusterNames"), list("exclude"));
    let by_labels = match target.get("labelSelector") {
        None | Some(Value::Null) => true,
        Some(ls) => label_selector(ls).is_some_and(|r| matches_all(&r, labels)),
    };
    (names.is_empty() || names.contains(&cluster)) && !exclude.contains(&cluster) && by_labels
}

/// The rules of one policy: `overrideRules`, then the deprecated top-level pair.
fn rules(policy: &Value) -> Vec<(&Value, &Value)> {
    let spec = &policy["spec"];
    let mut out: Vec<(&Value, &Value)> = spec["overrideRules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (&r["targetCluster"], &r["overriders"]))
        .collect();
    if !spec["overriders"].is_null() {
        out.push((&spec["targetCluster"], &spec["overriders"]));
    }
    out
}

/// Applies to `manifest` (a workload's copy for `cluster`) every rule of `policies`, in order,
/// that picks the cluster. An operation that cannot apply is an error naming the policy.
pub(crate) fn apply(
    manifest: &mut Value,
    policies: &[&Value],
    cluster: &str,
    labels: &Value,
) -> Result<(), String> {
    for policy in policies {
        let name = str_at(policy, "/metadata/name");
        for (target, overriders) in rules(policy) {
            if picks(target, cluster, labels) {
                apply_overriders(manifest, overriders)
                    .map_err(|e| format!("OverridePolicy {name}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn apply_overriders(m: &mut Value, o: &Value) -> Result<(), String> {
    let each = |field: &str| o[field].as_array().cloned().unwrap_or_default();
    for img in each("imageOverrider") {
        let paths = match img.pointer("/predicate/path").and_then(Value::as_str) {
            Some(p) => vec![p.to_string()],
            None => image_paths(m),
        };
        for path in paths {
            let Some(image) = m.pointer(&path).and_then(Value::as_str) else {
                return Err(format!("no image at {path}"));
            };
            let new = override_image(
                image,
                str_at(&img, "/component"),
                str_at(&img, "/operator"),
                str_at(&img, "/value"),
            )?;
            if let Some(v) = m.pointer_mut(&path) {
                *v = json!(new);
            }
        }
    }
    for (field, key) in [("commandOverrider", "command"), ("argsOverrider", "args")] {
        for ov in each(field) {
            let values: Vec<Value> = ov["value"].as_array().cloned().unwrap_or_default();
            let container = str_at(&ov, "/containerName");
            for c in containers_mut(m) {
                if c["name"] != container {
                    continue;
                }
                let list = c[key].as_array().cloned().unwrap_or_default();
                c[key] = match str_at(&ov, "/operator") {
                    "add" => json!(list.into_iter().chain(values.clone()).collect::<Vec<_>>()),
                    "remove" => json!(
                        list.into_iter()
                            .filter(|v| !values.contains(v))
                            .collect::<Vec<_>>()
                    ),
                    other => return Err(format!("{field}: unknown operator {other:?}")),
                };
            }
        }
    }
    for (field, key) in [
        ("labelsOverrider", "labels"),
        ("annotationsOverrider", "annotations"),
    ] {
        for ov in each(field) {
            let op = str_at(&ov, "/operator");
            for (k, v) in ov["value"].as_object().into_iter().flatten() {
                match op {
                    "add" | "replace" => m["metadata"][key][k] = v.clone(),
                    "remove" => {
                        if let Some(map) = m["metadata"][key].as_object_mut() {
                            map.remove(k);
                        }
                    }
                    other => return Err(format!("{field}: unknown operator {other:?}")),
                }
            }
        }
    }
    let plaintext = each("plaintext");
    if !plaintext.is_empty() {
        let ops: Vec<Value> = plaintext
            .iter()
            .map(|p| json!({"op": p["operator"], "path": p["path"], "value": p["value"]}))
            .collect();
        *m = json_patch(m, &json!(ops)).map_err(|e| format!("plaintext: {e}"))?;
    }
    Ok(())
}

/// Where a workload's pod template keeps its containers.
fn pod_spec_pointer(m: &Value) -> &'static str {
    if str_at(m, "/kind") == "Pod" {
        "/spec"
    } else {
        "/spec/template/spec"
    }
}

fn image_paths(m: &Value) -> Vec<String> {
    let base = pod_spec_pointer(m);
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        let n = m
            .pointer(&format!("{base}/{list}"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        out.extend((0..n).map(|i| format!("{base}/{list}/{i}/image")));
    }
    out
}

fn containers_mut(m: &mut Value) -> impl Iterator<Item = &mut Value> {
    m.pointer_mut(&format!("{}/containers", pod_spec_pointer(m)))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// `[registry/]repository[:tag]` with one component added to, replaced or removed.
fn override_image(image: &str, component: &str, op: &str, value: &str) -> Result<String, String> {
    // The first path segment is a registry when it looks like a host (as Docker decides).
    let (mut registry, rest) = match image.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_string()), rest)
        }
        _ => (None, image),
    };
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (rest, None),
    };
    let (mut repo, mut tag) = (repo.to_string(), tag.map(str::to_string));
    let edit = |part: &mut Option<String>| -> Result<(), String> {
        *part = match op {
            "add" => Some(format!("{}{value}", part.as_deref().unwrap_or_default())),
            "replace" => Some(value.to_string()),
            "remove" => None,
            other => return Err(format!("imageOverrider: unknown operator {other:?}")),
        };
        Ok(())
    };
    match component {
        "Registry" => edit(&mut registry)?,
        "Tag" => edit(&mut tag)?,
        "Repository" => {
            let mut r = Some(repo);
            edit(&mut r)?;
            repo = r.unwrap_or_default();
        }
        other => return Err(format!("imageOverrider: unknown component {other:?}")),
    }
    let mut out = registry.map(|r| format!("{r}/")).unwrap_or_default() + &repo;
    if let Some(t) = tag.filter(|t| !t.is_empty()) {
        out = format!("{out}:{t}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": 3, "template": {"spec": {
                   "initContainers": [{"name": "init", "image": "busybox"}],
                   "containers": [{"name": "web", "image": "docker.io/library/nginx:1.27",
                                   "command": ["nginx"], "args": ["-g", "daemon off;"]}]}}}})
    }

    #[test]
    fn images_change_by_component() {
        let cases = [
            (
                "docker.io/library/nginx:1.27",
                "Registry",
                "replace",
                "mirror.eu",
                "mirror.eu/library/nginx:1.27",
            ),
            (
                "docker.io/library/nginx:1.27",
                "Registry",
                "add",
                "-cn",
                "docker.io-cn/library/nginx:1.27",
            ),
            (
                "docker.io/library/nginx:1.27",
                "Registry",
                "remove",
                "",
                "library/nginx:1.27",
            ),
            (
                "nginx",
                "Registry",
                "replace",
                "localhost:5000",
                "localhost:5000/nginx",
            ),
            ("nginx:1.27", "Tag", "replace", "1.28", "nginx:1.28"),
            ("nginx", "Tag", "add", "latest", "nginx:latest"),
            (
                "localhost:5000/nginx:1.27",
                "Tag",
                "remove",
                "",
                "localhost:5000/nginx",
            ),
            (
                "docker.io/library/nginx",
                "Repository",
                "replace",
                "me/web",
                "docker.io/me/web",
            ),
            (
                "docker.io/library/nginx",
                "Repository",
                "add",
                "-slim",
                "docker.io/library/nginx-slim",
            ),
        ];
        for (image, component, op, value, want) in cases {
            assert_eq!(
                override_image(image, component, op, value).unwrap(),
                want,
                "{component} {op} {value} on {image}"
            );
        }
        assert!(override_image("nginx", "Digest", "add", "x").is_err());
    }

    #[test]
    fn rules_apply_to_the_clusters_they_pick_in_order() {
        let policy = json!({"metadata": {"name": "eu"}, "spec": {"overrideRules": [
            {"targetCluster": {"clusterNames": ["edge-a"]}, "overriders": {
                "imageOverrider": [{"component": "Registry", "operator": "replace", "value": "mirror.eu"}],
                "commandOverrider": [{"containerName": "web", "operator": "add", "value": ["-q"]}],
                "argsOverrider": [{"containerName": "web", "operator": "remove", "value": ["daemon off;"]}],
                "labelsOverrider": [{"operator": "add", "value": {"region": "eu"}}],
                "annotationsOverrider": [{"operator": "add", "value": {"note": "x"}}],
                "plaintext": [{"path": "/spec/replicas", "operator": "replace", "value": 1}]}},
            {"targetCluster": {"labelSelector": {"matchLabels": {"tier": "edge"}}}, "overriders": {
                "labelsOverrider": [{"operator": "remove", "value": {"app": ""}}]}},
        ]}});
        let mut m = deployment();
        apply(&mut m, &[&policy], "edge-a", &json!({"tier": "edge"})).unwrap();
        let c = &m["spec"]["template"]["spec"];
        assert_eq!(c["initContainers"][0]["image"], "mirror.eu/busybox");
        assert_eq!(c["containers"][0]["image"], "mirror.eu/library/nginx:1.27");
        assert_eq!(c["containers"][0]["command"], json!(["nginx", "-q"]));
        assert_eq!(c["containers"][0]["args"], json!(["-g"]));
        assert_eq!(m["metadata"]["labels"], json!({"region": "eu"}));
        assert_eq!(m["metadata"]["annotations"], json!({"note": "x"}));
        assert_eq!(m["spec"]["replicas"], 1);
        // Another cluster: only the rule its labels pick.
        let mut m = deployment();
        apply(&mut m, &[&policy], "cloud", &json!({"tier": "cloud"})).unwrap();
        assert_eq!(m, deployment());
        let mut m = deployment();
        apply(&mut m, &[&policy], "edge-b", &json!({"tier": "edge"})).unwrap();
        assert_eq!(m["metadata"]["labels"], json!({}));
        // The deprecated pair applies everywhere without a target; a bad patch names the policy.
        let legacy = json!({"metadata": {"name": "old"}, "spec": {"overriders": {
            "plaintext": [{"path": "/spec/nothing/here", "operator": "remove"}]}}});
        let err = apply(&mut deployment(), &[&legacy], "x", &Value::Null).unwrap_err();
        assert!(err.starts_with("OverridePolicy old: plaintext"), "{err}");
    }
}
