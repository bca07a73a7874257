//! The object store: what an apiserver keeps and how it writes (metadata bookkeeping,
//! resourceVersion, optimistic concurrency, patches). Free of HTTP so it can be tested directly.
//!
//! Split by concern: [`kinds`] (the kinds served, object keys), [`custom`] (kinds CRDs define,
//! schemas), [`error`] (refusals as `Status`), [`write`](mod@write) (create, update, patch,
//! apply, delete), [`object`] (identity, names, defaults), [`fields`] (managed fields), [`patch`]
//! (merge and JSON patches), [`selectors`] (label and field selectors), [`log`] (the change log
//! watches follow), [`persist`] (snapshot and restore).

mod custom;
mod error;
mod fields;
mod kinds;
mod log;
mod object;
mod patch;
mod persist;
mod selectors;
mod write;

use std::{collections::BTreeMap, sync::Arc};

use serde_json::{Value, json};

pub(crate) use self::{
    error::{ApiError, FieldConflict},
    fields::{field_set, prune},
    kinds::{ObjKey, Res, short_names},
    log::{Change, ChangeKind},
    object::base64_encode,
    patch::{json_patch, merge_patch},
    selectors::{
        Requirement, label_selector, matches_all, parse_field_selector, parse_label_selector,
    },
    write::{Part, PatchType},
};
use super::admission::{self, Admission, Definition, Operation, Request};

/// A stored object and its creation order (the resourceVersion it was created at).
#[derive(Clone)]
pub(crate) struct Entry {
    pub obj: Value,
    pub seq: u64,
}

/// How many changes the store keeps for watches; a watch from an older resourceVersion gets
/// `410 Gone` and lists again, as from an apiserver whose watch cache moved on.
pub(crate) const CHANGE_WINDOW: usize = 8192;

/// All objects, keyed by kind, namespace and name, plus the global resourceVersion counter.
#[derive(Clone, Default)]
pub(crate) struct Store {
    rv: u64,
    objects: BTreeMap<ObjKey, Entry>,
    /// The latest changes, oldest first (at most [`CHANGE_WINDOW`]).
    changes: std::collections::VecDeque<Arc<Change>>,
    /// The resourceVersion of the newest change dropped from `changes` (0: none was).
    dropped_through: u64,
    /// The schemas writes are validated against, keyed `group/version/Kind` (see
    /// `SimConfig::schemas`); kinds without one are open.
    pub schemas: Arc<BTreeMap<String, Value>>,
    /// The current request asked for `fieldValidation=Strict`: unknown fields are refused.
    pub strict_fields: bool,
    /// The kinds this store's CustomResourceDefinitions define, and their schemas (keyed as
    /// `schemas`).
    custom: Vec<Res>,
    custom_schemas: BTreeMap<String, Value>,
    /// Create a missing namespace on a namespaced write instead of answering 404.
    pub auto_create_namespaces: bool,
    /// The ValidatingAdmissionPolicies and bindings among `objects`, compiled.
    admission: Admission,
    /// How many times saved objects were restored: restores bypass the change log, so whoever
    /// follows the log (the reconcile) starts over when this moves.
    pub restores: u64,
}

impl Store {
    /// Compiles every admission policy and binding anew (after a restore); one that no longer
    /// compiles is kept as an object but not enforced.
    fn rebuild_admission(&mut self) {
        self.admission = Admission::default();
        for (key, e) in &self.objects {
            match admission::definition(key.res, &e.obj) {
                Ok(Some(d)) => self.admission.install(&key.name, d),
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(name = %key.name, "admission object not enforced: {why}")
                }
            }
        }
    }

    /// A policy or binding about to be written, checked and compiled (422 when it is invalid).
    fn definition(key: &ObjKey, obj: &Value) -> Result<Option<Definition>, ApiError> {
        admission::definition(key.res, obj).map_err(|message| ApiError::Invalid {
            res: key.res,
            name: key.name.clone(),
            message,
        })
    }

    /// Runs the admission policies in force on a write of `key` (`object` null for a DELETE,
    /// `old` for a CREATE).
    fn admit(
        &self,
        op: Operation,
        key: &ObjKey,
        sub: &str,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let namespace = (!key.ns.is_empty())
            .then(|| self.get(&ObjKey::new(Res::Namespace, "", &key.ns)))
            .flatten();
        let req = Request {
            op,
            res: key.res,
            sub,
            ns: &key.ns,
            name: &key.name,
        };
        self.admission.check(&req, object, old, namespace)
    }
}

/// The annotation carrying a writer's fencing token (smo stamps it on everything it applies).
pub const FENCE_ANNOTATION: &str = "smo.io/fence";
/// The name of smo's fencing admission policy (and its binding), which the sim starts with:
/// smo's `deploy/fence-policy.yaml`, evaluated as written (see `admission`).
pub const FENCE_POLICY: &str = "smo-fence";

/// The fencing token an object carries (its [`FENCE_ANNOTATION`]), if any.
pub(crate) fn fence_token(v: &Value) -> Option<i64> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(FENCE_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<i64>().ok())
}

/// A Deployment as its `/scale` subresource reads (autoscaling/v1 `Scale`).
pub(crate) fn scale_of(d: &Value) -> Value {
    let selector: Vec<String> = d
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let meta = &d["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                     "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": d.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": d.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                   "selector": selector.join(",")},
    })
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Every kind this store serves: the built-in ones and those of its CRDs.
    pub fn kinds(&self) -> Vec<Res> {
        Res::ALL
            .into_iter()
            .chain(self.custom.iter().copied())
            .collect()
    }

    /// True when this store serves `res` (a custom kind only while its CRD exists here).
    pub fn serves(&self, res: Res) -> bool {
        !matches!(res, Res::Custom(_)) || self.custom.contains(&res)
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key).map(|e| &e.obj)
    }

    pub fn entry(&self, key: &ObjKey) -> Option<&Entry> {
        self.objects.get(key)
    }

    /// Objects of one kind (in one namespace if given), in key order. A range of the key order
    /// (kind, namespace, name), not a scan: the reconcile lists the clusters on every run, beside
    /// hundreds of thousands of workloads, bindings and works.
    pub fn entries(&self, res: Res, ns: Option<&str>) -> impl Iterator<Item = &Entry> {
        let from = ObjKey {
            res,
            ns: ns.unwrap_or_default().to_string(),
            name: String::new(),
        };
        self.objects
            .range(from..)
            .take_while(move |(k, _)| k.res == res && ns.is_none_or(|n| k.ns == n))
            .map(|(_, e)| e)
    }

    pub fn list(&self, res: Res, ns: Option<&str>) -> Vec<&Value> {
        self.entries(res, ns).map(|e| &e.obj).collect()
    }
}

#[cfg(test)]
mod tests;
