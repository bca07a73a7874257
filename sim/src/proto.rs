//! Kubernetes protobuf bodies, read into the JSON the sim stores.
//!
//! Typed client-go clients (Helm's release storage, `kubectl create`) send built-in kinds as
//! `application/vnd.kubernetes.protobuf`: the magic `k8s\0`, then a `runtime.Unknown` envelope
//! holding the type and the object's own protobuf. Neither Helm's Secret driver nor `kubectl
//! create` falls back to JSON, so the kinds they write are read here: Secret, ConfigMap,
//! Namespace, the DeleteOptions of a delete, and through a table of their messages ([`Spec`])
//! the kinds `kubectl create` makes: Deployment, Service, ServiceAccount, Role, ClusterRole,
//! RoleBinding, ClusterRoleBinding, Job and CronJob. A field the
//! table does not know is refused (415 naming it), never dropped. Field numbers are those of
//! k8s.io/api's and apimachinery's `generated.proto`.

use serde_json::{Map, Value, json};

/// One field of a message: its number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of a protobuf message, in order (fixed-width fields are skipped: none of the kinds
/// read here has one that matters).
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((number, Field::Varint(varint(&mut b)?))),
            2 => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "length overflows")?;
                if n > b.len() {
                    return Err("truncated field".into());
                }
                out.push((number, Field::Bytes(&b[..n])));
                b = &b[n..];
            }
            1 => b = b.get(8..).ok_or("truncated fixed64")?,
            5 => b = b.get(4..).ok_or("truncated fixed32")?,
            w => return Err(format!("unsupported wire type {w}")),
        }
    }
    Ok(out)
}

fn varint(b: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

/// A `map<string, V>` entry (key = 1, value = 2).
fn entry(b: &[u8]) -> Result<(String, &[u8]), String> {
    let (mut k, mut v) = (String::new(), &b[..0]);
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x)?,
            (2, Field::Bytes(x)) => v = x,
            _ => {}
        }
    }
    Ok((k, v))
}

fn string_map(m: &mut Map<String, Value>, key: &str, b: &[u8]) -> Result<(), String> {
    let (k, v) = entry(b)?;
    let map = m.entry(key).or_insert_with(|| json!({}));
    map[k] = json!(text(v)?);
    Ok(())
}

fn bytes_map(m: &mut Map<String, Value>, key: &str, b: &[u8]) -> Result<(), String> {
    let (k, v) = entry(b)?;
    let map = m.entry(key).or_insert_with(|| json!({}));
    map[k] = json!(super::store::base64_encode(v));
    Ok(())
}

/// `ObjectMeta`: what a client sets on create or update.
fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                m.insert("name".into(), json!(text(x)?));
            }
            (2, Field::Bytes(x)) => {
                m.insert("generateName".into(), json!(text(x)?));
            }
            (3, Field::Bytes(x)) => {
                m.insert("namespace".into(), json!(text(x)?));
            }
            (5, Field::Bytes(x)) => {
                m.insert("uid".into(), json!(text(x)?));
            }
            (6, Field::Bytes(x)) => {
                m.insert("resourceVersion".into(), json!(text(x)?));
            }
            (11, Field::Bytes(x)) => string_map(&mut m, "labels", x)?,
            (12, Field::Bytes(x)) => string_map(&mut m, "annotations", x)?,
            (14, Field::Bytes(x)) => {
                let f = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = f.as_array_mut() {
                    a.push(json!(text(x)?));
                }
            }
            _ => {}
        }
    }
    // Empty strings are proto3's "unset": drop them, as the JSON a client would send has none.
    m.retain(|_, v| v.as_str() != Some(""));
    Ok(Value::Object(m))
}

fn secret(b: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                o.insert("metadata".into(), object_meta(x)?);
            }
            (2, Field::Bytes(x)) => bytes_map(&mut o, "data", x)?,
            (3, Field::Bytes(x)) => {
                o.insert("type".into(), json!(text(x)?));
            }
            (4, Field::Bytes(x)) => string_map(&mut o, "stringData", x)?,
            (5, Field::Varint(v)) => {
                o.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

fn config_map(b: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                o.insert("metadata".into(), object_meta(x)?);
            }
            (2, Field::Bytes(x)) => string_map(&mut o, "data", x)?,
            (3, Field::Bytes(x)) => bytes_map(&mut o, "binaryData", x)?,
            (4, Field::Varint(v)) => {
                o.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

fn namespace(b: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(b)? {
        if let (1, Field::Bytes(x)) = (n, f) {
            o.insert("metadata".into(), object_meta(x)?);
        }
    }
    Ok(Value::Object(o))
}

fn delete_options(b: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Varint(v)) => {
                o.insert("gracePeriodSeconds".into(), json!(v as i64));
            }
            (4, Field::Bytes(x)) => {
                o.insert("propagationPolicy".into(), json!(text(x)?));
            }
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

/// How one field of a message is read into JSON.
#[derive(Clone, Copy)]
enum Kind {
    /// A string; `""` is unset.
    Str,
    /// A varint integer; `0` is unset (non-pointer ints are always written).
    Int,
    /// A varint integer kept even when 0 (a pointer field, e.g. `replicas`).
    Count,
    /// A bool; `false` is unset.
    Bool,
    /// `repeated string`.
    Strs,
    /// `map<string, string>`.
    Labels,
    /// `map<string, resource.Quantity>`.
    Quantities,
    /// `intstr.IntOrString`.
    IntOrString,
    /// `meta.v1.ObjectMeta`.
    Meta,
    /// A message.
    Msg(&'static [Spec]),
    /// `repeated` message.
    Msgs(&'static [Spec]),
    /// Read and dropped (a `status`, which a write never sets).
    Skip,
}

/// One field of a message table: number, JSON name, how to read it.
struct Spec(u64, &'static str, Kind);

const LABEL_SELECTOR_REQUIREMENT: &[Spec] = &[
    Spec(1, "key", Kind::Str),
    Spec(2, "operator", Kind::Str),
    Spec(3, "values", Kind::Strs),
];
const LABEL_SELECTOR: &[Spec] = &[
    Spec(1, "matchLabels", Kind::Labels),
    Spec(
        2,
        "matchExpressions",
        Kind::Msgs(LABEL_SELECTOR_REQUIREMENT),
    ),
];
const CONTAINER_PORT: &[Spec] = &[
    Spec(1, "name", Kind::Str),
    Spec(2, "hostPort", Kind::Int),
    Spec(3, "containerPort", Kind::Int),
    Spec(4, "protocol", Kind::Str),
    Spec(5, "hostIP", Kind::Str),
];
const ENV_VAR: &[Spec] = &[Spec(1, "name", Kind::Str), Spec(2, "value", Kind::Str)];
const RESOURCES: &[Spec] = &[
    Spec(1, "limits", Kind::Quantities),
    Spec(2, "requests", Kind::Quantities),
];
const VOLUME_MOUNT: &[Spec] = &[
    Spec(1, "name", Kind::Str),
    Spec(2, "readOnly", Kind::Bool),
    Spec(3, "mountPath", Kind::Str),
    Spec(4, "subPath", Kind::Str),
    Spec(5, "mountPropagation", Kind::Str),
    Spec(6, "subPathExpr", Kind::Str),
];
const CONTAINER: &[Spec] = &[
    Spec(1, "name", Kind::Str),
    Spec(2, "image", Kind::Str),
    Spec(3, "command", Kind::Strs),
    Spec(4, "args", Kind::Strs),
    Spec(5, "workingDir", Kind::Str),
    Spec(6, "ports", Kind::Msgs(CONTAINER_PORT)),
    Spec(7, "env", Kind::Msgs(ENV_VAR)),
    Spec(8, "resources", Kind::Msg(RESOURCES)),
    Spec(9, "volumeMounts", Kind::Msgs(VOLUME_MOUNT)),
    Spec(13, "terminationMessagePath", Kind::Str),
    Spec(14, "imagePullPolicy", Kind::Str),
    Spec(16, "stdin", Kind::Bool),
    Spec(17, "stdinOnce", Kind::Bool),
    Spec(18, "tty", Kind::Bool),
    Spec(20, "terminationMessagePolicy", Kind::Str),
    Spec(24, "restartPolicy", Kind::Str),
];
const POD_SPEC: &[Spec] = &[
    Spec(2, "containers", Kind::Msgs(CONTAINER)),
    Spec(3, "restartPolicy", Kind::Str),
    Spec(4, "terminationGracePeriodSeconds", Kind::Int),
    Spec(5, "activeDeadlineSeconds", Kind::Int),
    Spec(6, "dnsPolicy", Kind::Str),
    Spec(7, "nodeSelector", Kind::Labels),
    Spec(8, "serviceAccountName", Kind::Str),
    Spec(9, "serviceAccount", Kind::Str),
    Spec(10, "nodeName", Kind::Str),
    Spec(11, "hostNetwork", Kind::Bool),
    Spec(12, "hostPID", Kind::Bool),
    Spec(13, "hostIPC", Kind::Bool),
    Spec(16, "hostname", Kind::Str),
    Spec(17, "subdomain", Kind::Str),
    Spec(19, "schedulerName", Kind::Str),
    Spec(20, "initContainers", Kind::Msgs(CONTAINER)),
    Spec(24, "priorityClassName", Kind::Str),
    Spec(29, "runtimeClassName", Kind::Str),
    Spec(31, "preemptionPolicy", Kind::Str),
];
const POD_TEMPLATE: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "spec", Kind::Msg(POD_SPEC)),
];
const ROLLING_UPDATE: &[Spec] = &[
    Spec(1, "maxUnavailable", Kind::IntOrString),
    Spec(2, "maxSurge", Kind::IntOrString),
];
const STRATEGY: &[Spec] = &[
    Spec(1, "type", Kind::Str),
    Spec(2, "rollingUpdate", Kind::Msg(ROLLING_UPDATE)),
];
const DEPLOYMENT_SPEC: &[Spec] = &[
    Spec(1, "replicas", Kind::Count),
    Spec(2, "selector", Kind::Msg(LABEL_SELECTOR)),
    Spec(3, "template", Kind::Msg(POD_TEMPLATE)),
    Spec(4, "strategy", Kind::Msg(STRATEGY)),
    Spec(5, "minReadySeconds", Kind::Int),
    Spec(6, "revisionHistoryLimit", Kind::Count),
    Spec(7, "paused", Kind::Bool),
    Spec(9, "progressDeadlineSeconds", Kind::Count),
];
const DEPLOYMENT: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "spec", Kind::Msg(DEPLOYMENT_SPEC)),
    Spec(3, "status", Kind::Skip),
];
const SERVICE_PORT: &[Spec] = &[
    Spec(1, "name", Kind::Str),
    Spec(2, "protocol", Kind::Str),
    Spec(3, "port", Kind::Int),
    Spec(4, "targetPort", Kind::IntOrString),
    Spec(5, "nodePort", Kind::Int),
    Spec(6, "appProtocol", Kind::Str),
];
const SERVICE_SPEC: &[Spec] = &[
    Spec(1, "ports", Kind::Msgs(SERVICE_PORT)),
    Spec(2, "selector", Kind::Labels),
    Spec(3, "clusterIP", Kind::Str),
    Spec(4, "type", Kind::Str),
    Spec(5, "externalIPs", Kind::Strs),
    Spec(7, "sessionAffinity", Kind::Str),
    Spec(8, "loadBalancerIP", Kind::Str),
    Spec(9, "loadBalancerSourceRanges", Kind::Strs),
    Spec(10, "externalName", Kind::Str),
    Spec(11, "externalTrafficPolicy", Kind::Str),
    Spec(12, "healthCheckNodePort", Kind::Int),
    Spec(13, "publishNotReadyAddresses", Kind::Bool),
    Spec(17, "ipFamilyPolicy", Kind::Str),
    Spec(18, "clusterIPs", Kind::Strs),
    Spec(19, "ipFamilies", Kind::Strs),
    Spec(20, "allocateLoadBalancerNodePorts", Kind::Bool),
    Spec(21, "loadBalancerClass", Kind::Str),
    Spec(22, "internalTrafficPolicy", Kind::Str),
    Spec(23, "trafficDistribution", Kind::Str),
];
const SERVICE: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "spec", Kind::Msg(SERVICE_SPEC)),
    Spec(3, "status", Kind::Skip),
];

const LOCAL_OBJECT_REFERENCE: &[Spec] = &[Spec(1, "name", Kind::Str)];
const OBJECT_REFERENCE: &[Spec] = &[
    Spec(1, "kind", Kind::Str),
    Spec(2, "namespace", Kind::Str),
    Spec(3, "name", Kind::Str),
    Spec(4, "uid", Kind::Str),
    Spec(5, "apiVersion", Kind::Str),
    Spec(6, "resourceVersion", Kind::Str),
    Spec(7, "fieldPath", Kind::Str),
];
const SERVICE_ACCOUNT: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "secrets", Kind::Msgs(OBJECT_REFERENCE)),
    Spec(3, "imagePullSecrets", Kind::Msgs(LOCAL_OBJECT_REFERENCE)),
    Spec(4, "automountServiceAccountToken", Kind::Bool),
];
const POLICY_RULE: &[Spec] = &[
    Spec(1, "verbs", Kind::Strs),
    Spec(2, "apiGroups", Kind::Strs),
    Spec(3, "resources", Kind::Strs),
    Spec(4, "resourceNames", Kind::Strs),
    Spec(5, "nonResourceURLs", Kind::Strs),
];
const AGGREGATION_RULE: &[Spec] = &[Spec(1, "clusterRoleSelectors", Kind::Msgs(LABEL_SELECTOR))];
const ROLE: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "rules", Kind::Msgs(POLICY_RULE)),
];
const CLUSTER_ROLE: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "rules", Kind::Msgs(POLICY_RULE)),
    Spec(3, "aggregationRule", Kind::Msg(AGGREGATION_RULE)),
];
const SUBJECT: &[Spec] = &[
    Spec(1, "kind", Kind::Str),
    Spec(2, "apiGroup", Kind::Str),
    Spec(3, "name", Kind::Str),
    Spec(4, "namespace", Kind::Str),
];
const ROLE_REF: &[Spec] = &[
    Spec(1, "apiGroup", Kind::Str),
    Spec(2, "kind", Kind::Str),
    Spec(3, "name", Kind::Str),
];
const ROLE_BINDING: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "subjects", Kind::Msgs(SUBJECT)),
    Spec(3, "roleRef", Kind::Msg(ROLE_REF)),
];
const JOB_SPEC: &[Spec] = &[
    Spec(1, "parallelism", Kind::Count),
    Spec(2, "completions", Kind::Count),
    Spec(3, "activeDeadlineSeconds", Kind::Int),
    Spec(4, "selector", Kind::Msg(LABEL_SELECTOR)),
    Spec(5, "manualSelector", Kind::Bool),
    Spec(6, "template", Kind::Msg(POD_TEMPLATE)),
    Spec(7, "backoffLimit", Kind::Count),
    Spec(8, "ttlSecondsAfterFinished", Kind::Count),
    Spec(9, "completionMode", Kind::Str),
    Spec(10, "suspend", Kind::Bool),
];
const JOB: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "spec", Kind::Msg(JOB_SPEC)),
    Spec(3, "status", Kind::Skip),
];
const JOB_TEMPLATE: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "spec", Kind::Msg(JOB_SPEC)),
];
const CRON_JOB_SPEC: &[Spec] = &[
    Spec(1, "schedule", Kind::Str),
    Spec(2, "startingDeadlineSeconds", Kind::Int),
    Spec(3, "concurrencyPolicy", Kind::Str),
    Spec(4, "suspend", Kind::Bool),
    Spec(5, "jobTemplate", Kind::Msg(JOB_TEMPLATE)),
    Spec(6, "successfulJobsHistoryLimit", Kind::Count),
    Spec(7, "failedJobsHistoryLimit", Kind::Count),
    Spec(8, "timeZone", Kind::Str),
];
const CRON_JOB: &[Spec] = &[
    Spec(1, "metadata", Kind::Meta),
    Spec(2, "spec", Kind::Msg(CRON_JOB_SPEC)),
    Spec(3, "status", Kind::Skip),
];

/// Reads a message by its table; a field the table does not know (and that is not an empty
/// message, what a Go client writes for a zero struct) is an error naming it.
fn message(table: &[Spec], b: &[u8], at: &str) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(b)? {
        let Some(Spec(_, name, kind)) = table.iter().find(|s| s.0 == n) else {
            match f {
                Field::Bytes([]) => continue,
                _ => return Err(format!("field {n} of {at} is not read by the sim")),
            }
        };
        let path = format!("{at}.{name}");
        let push = |o: &mut Map<String, Value>, v: Value| {
            let a = o.entry(name.to_string()).or_insert_with(|| json!([]));
            if let Some(a) = a.as_array_mut() {
                a.push(v);
            }
        };
        match (*kind, f) {
            (Kind::Skip, _) => {}
            (Kind::Str, Field::Bytes(x)) => {
                let t = text(x)?;
                if !t.is_empty() {
                    o.insert(name.to_string(), json!(t));
                }
            }
            (Kind::Int, Field::Varint(v)) => {
                if v != 0 {
                    o.insert(name.to_string(), json!(v as i64));
                }
            }
            (Kind::Count, Field::Varint(v)) => {
                o.insert(name.to_string(), json!(v as i64));
            }
            (Kind::Bool, Field::Varint(v)) => {
                if v != 0 {
                    o.insert(name.to_string(), json!(true));
                }
            }
            (Kind::Strs, Field::Bytes(x)) => push(&mut o, json!(text(x)?)),
            (Kind::Labels, Field::Bytes(x)) => string_map(&mut o, name, x)?,
            (Kind::Quantities, Field::Bytes(x)) => {
                let (k, q) = entry(x)?;
                let mut amount = String::new();
                for (n, f) in fields(q)? {
                    if let (1, Field::Bytes(s)) = (n, f) {
                        amount = text(s)?;
                    }
                }
                let map = o.entry(name.to_string()).or_insert_with(|| json!({}));
                map[k] = json!(amount);
            }
            (Kind::IntOrString, Field::Bytes(x)) => {
                let (mut is_str, mut int, mut string) = (false, 0i64, String::new());
                for (n, f) in fields(x)? {
                    match (n, f) {
                        (1, Field::Varint(t)) => is_str = t == 1,
                        (2, Field::Varint(v)) => int = v as i32 as i64,
                        (3, Field::Bytes(s)) => string = text(s)?,
                        _ => {}
                    }
                }
                o.insert(
                    name.to_string(),
                    if is_str { json!(string) } else { json!(int) },
                );
            }
            (Kind::Meta, Field::Bytes(x)) => {
                o.insert(name.to_string(), object_meta(x)?);
            }
            (Kind::Msg(t), Field::Bytes(x)) => {
                let v = message(t, x, &path)?;
                if v.as_object().is_some_and(|m| !m.is_empty()) {
                    o.insert(name.to_string(), v);
                }
            }
            (Kind::Msgs(t), Field::Bytes(x)) => push(&mut o, message(t, x, &path)?),
            _ => return Err(format!("{path}: unexpected wire type")),
        }
    }
    Ok(Value::Object(o))
}

/// The JSON object a protobuf body holds, or why it cannot be read (the caller answers 415, and
/// kubectl retries in JSON).
pub(crate) fn to_json(body: &[u8]) -> Result<Value, String> {
    let envelope = body.strip_prefix(b"k8s\0").ok_or("no k8s protobuf magic")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &body[..0]);
    for (n, f) in fields(envelope)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (n, f) in fields(tm)? {
                    match (n, f) {
                        (1, Field::Bytes(x)) => api_version = text(x)?,
                        (2, Field::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = match kind.as_str() {
        "Secret" => secret(raw)?,
        "ConfigMap" => config_map(raw)?,
        "Namespace" => namespace(raw)?,
        "DeleteOptions" => delete_options(raw)?,
        "Deployment" => message(DEPLOYMENT, raw, "Deployment")?,
        "Service" => message(SERVICE, raw, "Service")?,
        "ServiceAccount" => message(SERVICE_ACCOUNT, raw, "ServiceAccount")?,
        "Role" => message(ROLE, raw, "Role")?,
        "ClusterRole" => message(CLUSTER_ROLE, raw, "ClusterRole")?,
        "RoleBinding" | "ClusterRoleBinding" => message(ROLE_BINDING, raw, &kind)?,
        "Job" => message(JOB, raw, "Job")?,
        "CronJob" => message(CRON_JOB, raw, "CronJob")?,
        other => return Err(format!("kind {other:?} is read as JSON only")),
    };
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal encoder, the mirror of [`fields`], to build client-shaped bodies.
    fn put(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        let mut key = (number << 3) | 2;
        let mut len = bytes.len() as u64;
        for v in [&mut key, &mut len] {
            loop {
                let b = (*v & 0x7f) as u8;
                *v >>= 7;
                if *v == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        }
        out.extend_from_slice(bytes);
    }

    fn map_entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        put(&mut e, 1, k.as_bytes());
        put(&mut e, 2, v);
        e
    }

    #[test]
    fn a_helm_release_secret_reads_as_the_json_a_client_would_send() {
        let mut meta = Vec::new();
        put(&mut meta, 1, b"sh.helm.release.v1.web.v1");
        put(&mut meta, 3, b"demo");
        put(&mut meta, 11, &map_entry("owner", b"helm"));
        put(&mut meta, 11, &map_entry("status", b"deployed"));
        let mut secret = Vec::new();
        put(&mut secret, 1, &meta);
        put(&mut secret, 2, &map_entry("release", b"H4sI\x00\xff"));
        put(&mut secret, 3, b"helm.sh/release.v1");
        let mut type_meta = Vec::new();
        put(&mut type_meta, 1, b"v1");
        put(&mut type_meta, 2, b"Secret");
        let mut body = b"k8s\0".to_vec();
        put(&mut body, 1, &type_meta);
        put(&mut body, 2, &secret);
        put(&mut body, 4, b"application/vnd.kubernetes.protobuf");
        let v = to_json(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": "demo",
                             "labels": {"owner": "helm", "status": "deployed"}},
                "data": {"release": "SDRzSQD/"},
            })
        );
    }

    fn varint_field(out: &mut Vec<u8>, number: u64, mut v: u64) {
        out.push((number << 3) as u8);
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }

    /// `kubectl create deployment web --image=nginx --replicas=3 --port=80`, as client-go
    /// encodes it: zero structs as empty messages, non-pointer scalars written as zero.
    #[test]
    fn a_deployment_from_kubectl_create_reads_whole_and_an_unknown_field_is_refused() {
        let mut labels_meta = Vec::new();
        put(&mut labels_meta, 11, &map_entry("app", b"web"));
        let mut meta = labels_meta.clone();
        put(&mut meta, 1, b"web");
        let mut selector = Vec::new();
        put(&mut selector, 1, &map_entry("app", b"web"));
        let mut port = Vec::new();
        varint_field(&mut port, 2, 0);
        varint_field(&mut port, 3, 80);
        put(&mut port, 4, b"TCP");
        let mut quantity = Vec::new();
        put(&mut quantity, 1, b"250m");
        let mut resources = Vec::new();
        put(&mut resources, 2, &map_entry("cpu", &quantity));
        let mut container = Vec::new();
        put(&mut container, 1, b"nginx");
        put(&mut container, 2, b"nginx");
        put(&mut container, 5, b"");
        put(&mut container, 6, &port);
        put(&mut container, 8, &resources);
        let mut pod = Vec::new();
        put(&mut pod, 2, &container);
        let mut template = Vec::new();
        put(&mut template, 1, &labels_meta);
        put(&mut template, 2, &pod);
        let mut max = Vec::new();
        varint_field(&mut max, 1, 1);
        put(&mut max, 3, b"25%");
        let mut rolling = Vec::new();
        put(&mut rolling, 2, &max);
        let mut strategy = Vec::new();
        put(&mut strategy, 2, &rolling);
        let mut spec = Vec::new();
        varint_field(&mut spec, 1, 3);
        put(&mut spec, 2, &selector);
        put(&mut spec, 3, &template);
        put(&mut spec, 4, &strategy);
        let envelope = |spec: &[u8]| {
            let mut d = Vec::new();
            put(&mut d, 1, &meta);
            put(&mut d, 2, spec);
            put(&mut d, 3, b"");
            let mut type_meta = Vec::new();
            put(&mut type_meta, 1, b"apps/v1");
            put(&mut type_meta, 2, b"Deployment");
            let mut body = b"k8s\0".to_vec();
            put(&mut body, 1, &type_meta);
            put(&mut body, 2, &d);
            body
        };
        assert_eq!(
            to_json(&envelope(&spec)).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                        {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "resources": {"requests": {"cpu": "250m"}}}]}}}})
        );
        // A liveness probe is not in the table: refused, naming it, rather than dropped.
        let mut probe = Vec::new();
        varint_field(&mut probe, 2, 5);
        let mut with_probe = container.clone();
        put(&mut with_probe, 10, &probe);
        let mut pod = Vec::new();
        put(&mut pod, 2, &with_probe);
        let mut template = Vec::new();
        put(&mut template, 2, &pod);
        let mut spec = Vec::new();
        put(&mut spec, 3, &template);
        let err = to_json(&envelope(&spec)).unwrap_err();
        assert_eq!(
            err,
            "field 10 of Deployment.spec.template.spec.containers is not read by the sim"
        );
    }

    #[test]
    fn unknown_kinds_and_broken_bodies_are_refused_not_misread() {
        let mut type_meta = Vec::new();
        put(&mut type_meta, 2, b"Pod");
        let mut body = b"k8s\0".to_vec();
        put(&mut body, 1, &type_meta);
        assert!(to_json(&body).unwrap_err().contains("Pod"));
        assert!(to_json(b"{\"kind\": \"Secret\"}").is_err());
        let mut cut = b"k8s\0".to_vec();
        put(&mut cut, 2, b"0123456789");
        cut.truncate(cut.len() - 3);
        assert!(to_json(&cut).is_err());
    }
}
