//! Kubernetes protobuf bodies, read into the JSON the sim stores.
//!
//! Typed client-go clients (Helm's release storage, `kubectl create`) send built-in kinds as
//! `application/vnd.kubernetes.protobuf`: the magic `k8s\0`, then a `runtime.Unknown` envelope
//! holding the type and the object's own protobuf. kubectl falls back to JSON on a 415; Helm's
//! Secret driver does not, so the kinds it writes are read here (Secret, ConfigMap, Namespace, and
//! the DeleteOptions of a delete). Field numbers are those of k8s.io/api's `generated.proto`.

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
