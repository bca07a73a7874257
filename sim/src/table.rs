//! `Table` answers (meta.k8s.io/v1) for `kubectl get`: a real apiserver prints server-side, with
//! each kind's columns (a CRD's `additionalPrinterColumns`), when the client asks for
//! `application/json;as=Table`.

use serde_json::{Value, json};

use super::store::str_at;

/// How long ago `since` (RFC 3339) was, as kubectl shows ages: `45s`, `12m`, `3h`, `2d`.
pub(crate) fn age(since: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(since) else {
        return "<unknown>".into();
    };
    let s = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn condition(v: &Value, kind: &str) -> String {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The columns after NAME (and before AGE) of a kind, and their cells for one object.
fn columns(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "Deployment" => &[
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
        ],
        "StatefulSet" => &[("Ready", "string")],
        "Service" => &[
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
        ],
        "Namespace" => &[("Status", "string")],
        "Cluster" => &[
            ("Version", "string"),
            ("Mode", "string"),
            ("Ready", "string"),
        ],
        "ResourceBinding" => &[("Scheduled", "string"), ("FullyApplied", "string")],
        "Secret" => &[("Type", "string"), ("Data", "integer")],
        "ConfigMap" => &[("Data", "integer")],
        _ => &[],
    }
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    match kind {
        "Deployment" => vec![
            json!(format!(
                "{}/{}",
                int(o, "/status/readyReplicas"),
                int(o, "/spec/replicas")
            )),
            json!(int(o, "/status/updatedReplicas")),
            json!(int(o, "/status/availableReplicas")),
        ],
        "StatefulSet" => vec![json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            int(o, "/spec/replicas")
        ))],
        "Service" => {
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            let or_none = |s: &str| {
                if s.is_empty() {
                    "<none>".to_string()
                } else {
                    s.to_string()
                }
            };
            vec![
                json!(str_at(o, "/spec/type")),
                json!(or_none(str_at(o, "/spec/clusterIP"))),
                json!("<none>"),
                json!(or_none(&ports.join(","))),
            ]
        }
        "Namespace" => vec![json!(str_at(o, "/status/phase"))],
        "Cluster" => vec![
            json!(str_at(o, "/status/kubernetesVersion")),
            json!(str_at(o, "/spec/syncMode")),
            json!(condition(o, "Ready")),
        ],
        "ResourceBinding" => vec![
            json!(condition(o, "Scheduled")),
            json!(condition(o, "FullyApplied")),
        ],
        "Secret" => vec![
            json!(str_at(o, "/type")),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
        ],
        "ConfigMap" => vec![json!(
            o["data"].as_object().map_or(0, |m| m.len())
                + o["binaryData"].as_object().map_or(0, |m| m.len())
        )],
        _ => vec![],
    }
}

/// `v` (a list or one object) as a Table, rows carrying their objects as kubectl expects.
pub(crate) fn to_table(v: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
    let items: Vec<&Value> = match v["items"].as_array() {
        Some(items) => items.iter().collect(),
        None => vec![v],
    };
    let kind = items
        .first()
        .and_then(|o| o["kind"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            v["kind"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches("List")
                .to_string()
        });
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "priority": 0,
                               "description": "Name must be unique within a namespace."}),
    ];
    for (name, ty) in columns(&kind) {
        defs.push(
            json!({"name": name, "type": ty, "format": "", "priority": 0, "description": ""}),
        );
    }
    defs.push(json!({"name": "Age", "type": "string", "format": "", "priority": 0,
                     "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}));
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut c = vec![json!(str_at(o, "/metadata/name"))];
            c.extend(cells(&kind, o));
            c.push(json!(age(str_at(o, "/metadata/creationTimestamp"), now)));
            json!({"cells": c, "object": o})
        })
        .collect();
    let mut table = json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": v["metadata"]["resourceVersion"].clone()},
        "columnDefinitions": defs, "rows": rows,
    });
    if table["metadata"]["resourceVersion"].is_null() {
        table["metadata"] = json!({});
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_list_prints_as_kubectl_shows_it() {
        let now = chrono::Utc::now();
        let created = (now - chrono::Duration::seconds(300)).to_rfc3339();
        let list = json!({"kind": "DeploymentList", "metadata": {"resourceVersion": "7"}, "items": [{
            "kind": "Deployment", "metadata": {"name": "web", "creationTimestamp": created},
            "spec": {"replicas": 2}, "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1},
        }]});
        let t = to_table(&list, now);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
        assert_eq!(t["rows"][0]["cells"], json!(["web", "1/2", 2, 1, "5m"]));
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "web");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        let empty = to_table(
            &json!({"kind": "ServiceList", "metadata": {}, "items": []}),
            now,
        );
        assert_eq!(empty["columnDefinitions"].as_array().unwrap().len(), 6);
    }
}
