//! The sim's audit log of writes: each write request, the fencing token it carried and what it
//! did, so tests read "no write with an older token after a newer one" straight off it.

use super::*;

/// One write request as the sim received it: what a Kubernetes audit log records at the
/// `Metadata` level, plus the object it wrote, the writer's fencing token and what the write did.
/// The log is in the order the writes were applied (each is logged under the lock it is applied
/// under), so "no write with an older token after a newer one" reads straight off it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WriteRecord {
    /// When the request arrived (before any simulated write latency), RFC 3339 with microseconds.
    pub received: String,
    /// Its User-Agent: smo names the worker there.
    pub source: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The answer's status code.
    pub status: u16,
    /// The kind of the object written (empty when the path names no kind the sim serves).
    #[serde(default)]
    pub kind: String,
    /// Its namespace (empty at cluster scope).
    #[serde(default)]
    pub namespace: String,
    /// Its name (empty for a request on a whole collection, such as a delete by label).
    #[serde(default)]
    pub name: String,
    /// The writer's fencing token: the `smo.io/fence` annotation of the object it sent. `None`
    /// for a body without one and for deletes, which carry no object.
    #[serde(default)]
    pub fence: Option<i64>,
    /// What the write did to the object; `None` when it was refused, was a dry run or named no
    /// object.
    #[serde(default)]
    pub effect: Option<Effect>,
}

/// What an accepted write did to the object it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The object did not exist before.
    Created,
    /// It existed and got a new resourceVersion.
    Updated,
    /// It existed and the write changed nothing (same resourceVersion).
    Unchanged,
    /// It existed and is gone.
    Deleted,
}

impl Effect {
    /// From the object's resourceVersion before and after an accepted write.
    pub(crate) fn of(before: Option<&str>, after: Option<&str>) -> Option<Effect> {
        match (before, after) {
            (None, Some(_)) => Some(Effect::Created),
            (Some(_), None) => Some(Effect::Deleted),
            (Some(a), Some(b)) if a != b => Some(Effect::Updated),
            (Some(_), Some(_)) => Some(Effect::Unchanged),
            (None, None) => None,
        }
    }
}

/// The fencing token in a write's body. Only a body that mentions the annotation is parsed, so
/// logging costs other writers nothing; parsed outside the state lock.
pub(crate) fn written_token(body: &[u8]) -> Option<i64> {
    let needle = FENCE_ANNOTATION.as_bytes();
    if !body.windows(needle.len()).any(|w| w == needle) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .ok()
        .or_else(|| serde_norway::from_slice(body).ok())?;
    store::fence_token(&v)
}

/// How many writes the audit log keeps.
pub(crate) const WRITE_LOG_LIMIT: usize = 100_000;
