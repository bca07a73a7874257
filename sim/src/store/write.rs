//! The writes: create, replace, patch (server-side apply included), status and field updates by
//! the simulation, delete; each checked, versioned and logged.

use serde_json::{Value, json};

use super::{
    ApiError, ChangeKind, Entry, FieldConflict, ObjKey, Res, Store, field_set,
    fields::{has_leaf, leaves, managed_entry, remove_leaf, take_update_ownership, value_at},
    json_patch, merge_patch, now_rfc3339,
    object::{apply_defaults, check_identity, differs_beyond_meta, set_or_remove},
    prune, scale_of, str_at,
};
use crate::admission::{Operation, Request};

/// Which part of an object a write may change: the main resource never changes `status`,
/// the `/status` subresource changes nothing else (as with a real status subresource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
    /// `spec.replicas` through the `/scale` subresource: written as the main resource, admitted
    /// as the subresource.
    Scale,
}

impl Part {
    /// The subresource a write of this part is admitted as.
    pub fn subresource(self) -> &'static str {
        match self {
            Part::Main => "",
            Part::Status => "status",
            Part::Scale => "scale",
        }
    }
}

/// PATCH flavours, from the request's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Apply,
    /// JSON merge patch; strategic merge patch is treated the same way.
    Merge,
    Json,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                Some(PatchType::Merge)
            }
            "application/json-patch+json" => Some(PatchType::Json),
            _ => None,
        }
    }
}

impl Store {
    /// Creates `body` in `ns` (ignored for cluster-scoped kinds).
    pub fn create(&mut self, res: Res, ns: &str, body: Value) -> Result<Value, ApiError> {
        let mut obj = body;
        let name = match str_at(&obj, "/metadata/name") {
            "" => match str_at(&obj, "/metadata/generateName") {
                "" => {
                    return Err(ApiError::Invalid {
                        res,
                        name: String::new(),
                        message: "metadata.name: Required value: name or generateName is required"
                            .into(),
                    });
                }
                prefix => {
                    let suffix = uuid::Uuid::new_v4().simple().to_string();
                    format!("{prefix}{}", &suffix[..5])
                }
            },
            n => n.to_string(),
        };
        let key = ObjKey::new(res, ns, &name);
        check_identity(&key, &mut obj)?;
        if self.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists { res, name });
        }
        self.ensure_namespace(&key)?;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            m.insert("generation".into(), json!(1));
        }
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
        let seq = self.rv + 1;
        apply_defaults(res, &mut obj, None, seq);
        obj["metadata"]["resourceVersion"] = json!(seq.to_string());
        self.validate(&key, &obj)?;
        let definition = Self::definition(&key, &obj)?;
        self.admit(Operation::Create, &key, "", Some(&obj), None)?;
        self.rv = seq;
        if let Some(d) = definition {
            self.admission.install(&key.name, d);
        }
        self.record(ChangeKind::Added, res, obj.clone());
        self.objects.insert(
            key.clone(),
            Entry {
                obj: obj.clone(),
                seq: self.rv,
            },
        );
        if res == Res::CustomResourceDefinition {
            self.reindex_crds();
            return Ok(self.objects.get(&key).map_or(obj, |e| e.obj.clone()));
        }
        Ok(obj)
    }

    fn ensure_namespace(&mut self, key: &ObjKey) -> Result<(), ApiError> {
        if !key.res.meta().namespaced {
            return Ok(());
        }
        let ns_key = ObjKey::new(Res::Namespace, "", &key.ns);
        if self.objects.contains_key(&ns_key) {
            return Ok(());
        }
        if !self.auto_create_namespaces {
            return Err(ApiError::NotFound {
                res: Res::Namespace,
                name: key.ns.clone(),
            });
        }
        self.create(Res::Namespace, "", json!({"metadata": {"name": key.ns}}))
            .map(|_| ())
    }

    /// PUT: replaces the object (or only its status).
    pub fn replace(
        &mut self,
        key: &ObjKey,
        mut body: Value,
        manager: Option<&str>,
        part: Part,
    ) -> Result<Value, ApiError> {
        let old = self.existing(key)?;
        if !body.is_object() {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        take_update_ownership(key.res, &old, &mut body, manager, part);
        self.commit(key, &old, body, part)
    }

    /// PATCH in any supported flavour. Server-side apply creates a missing object.
    pub fn patch(
        &mut self,
        key: &ObjKey,
        ty: PatchType,
        body: Value,
        manager: Option<&str>,
        force: bool,
        part: Part,
    ) -> Result<Value, ApiError> {
        match ty {
            PatchType::Apply => self.apply(key, body, manager, force, part),
            PatchType::Merge => {
                if !body.is_object() {
                    return Err(ApiError::BadRequest(
                        "a merge patch must be a JSON object".into(),
                    ));
                }
                let old = self.existing(key)?;
                let mut new = old.clone();
                merge_patch(&mut new, &body);
                take_update_ownership(key.res, &old, &mut new, manager, part);
                self.commit(key, &old, new, part)
            }
            PatchType::Json => {
                let old = self.existing(key)?;
                let mut new = json_patch(&old, &body).map_err(ApiError::BadRequest)?;
                take_update_ownership(key.res, &old, &mut new, manager, part);
                self.commit(key, &old, new, part)
            }
        }
    }

    fn apply(
        &mut self,
        key: &ObjKey,
        mut body: Value,
        manager: Option<&str>,
        force: bool,
        part: Part,
    ) -> Result<Value, ApiError> {
        let Some(manager) = manager.filter(|m| !m.is_empty()) else {
            return Err(ApiError::BadRequest(
                "PATCH is not supported for apply requests without a fieldManager".into(),
            ));
        };
        let meta = body
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert(json!({})));
        let Some(m) = meta.and_then(Value::as_object_mut) else {
            return Err(ApiError::BadRequest(
                "an apply patch must be an object with object metadata".into(),
            ));
        };
        m.remove("managedFields");
        let fields = field_set(&body, part);
        let Some(old) = self.get(key).cloned() else {
            if part == Part::Status {
                return Err(ApiError::NotFound {
                    res: key.res,
                    name: key.name.clone(),
                });
            }
            if str_at(&body, "/metadata/name").is_empty() {
                body["metadata"]["name"] = json!(key.name);
            }
            check_identity(key, &mut body)?;
            body["metadata"]["managedFields"] =
                json!([managed_entry(key.res, manager, part, fields)]);
            return self.create(key.res, &key.ns, body);
        };
        let mut new = old.clone();
        let entries = old
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array);
        let mine = |e: &&Value| {
            str_at(e, "/manager") == manager
                && str_at(e, "/operation") == "Apply"
                && (str_at(e, "/subresource") == "status") == (part == Part::Status)
        };
        let previous = entries.and_then(|es| es.iter().find(mine)).cloned();
        // Fields other managers own with another value conflict, unless forced: then they
        // change hands (as a real apiserver's field manager does). Equal values are shared.
        let mut others: Vec<Value> = entries
            .map(|es| es.iter().filter(|e| !mine(e)).cloned().collect())
            .unwrap_or_default();
        let mut applied = Vec::new();
        leaves(&fields, &mut Vec::new(), &mut applied);
        let mut conflicts = Vec::new();
        for e in &mut others {
            for leaf in &applied {
                if has_leaf(&e["fieldsV1"], leaf) && value_at(&body, leaf) != value_at(&old, leaf) {
                    conflicts.push(FieldConflict {
                        manager: str_at(e, "/manager").to_string(),
                        api_version: str_at(e, "/apiVersion").to_string(),
                        field: leaf.iter().map(|k| format!(".{k}")).collect(),
                    });
                    if force {
                        remove_leaf(&mut e["fieldsV1"], leaf);
                    }
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(ApiError::ApplyConflict {
                res: key.res,
                name: key.name.clone(),
                conflicts,
            });
        }
        others.retain(|e| e["fieldsV1"].as_object().is_some_and(|o| !o.is_empty()));
        if let Some(prev) = &previous {
            prune(&mut new, &prev["fieldsV1"], &fields);
        }
        merge_patch(&mut new, &body);
        let content_changed = new != old;
        let mut entry = managed_entry(key.res, manager, part, fields);
        if let Some(prev) =
            previous.filter(|p| !content_changed && p["fieldsV1"] == entry["fieldsV1"])
        {
            entry["time"] = prev["time"].clone();
        }
        let mut list = others;
        list.push(entry);
        new["metadata"]["managedFields"] = Value::Array(list);
        self.commit(key, &old, new, part)
    }

    fn existing(&self, key: &ObjKey) -> Result<Value, ApiError> {
        self.get(key).cloned().ok_or_else(|| ApiError::NotFound {
            res: key.res,
            name: key.name.clone(),
        })
    }

    /// Stores `new` as the next version of `old`: checks identity and resourceVersion, keeps
    /// system metadata, bumps `generation` on spec changes, and skips no-op writes entirely.
    fn commit(
        &mut self,
        key: &ObjKey,
        old: &Value,
        mut new: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        check_identity(key, &mut new)?;
        let old_rv = str_at(old, "/metadata/resourceVersion");
        let new_rv = str_at(&new, "/metadata/resourceVersion");
        if !new_rv.is_empty() && new_rv != old_rv {
            return Err(ApiError::Conflict {
                res: key.res,
                name: key.name.clone(),
            });
        }
        let mut next = match part {
            Part::Main | Part::Scale => {
                set_or_remove(&mut new, "status", old.get("status"));
                new
            }
            Part::Status => {
                let mut o = old.clone();
                set_or_remove(&mut o, "status", new.get("status"));
                if let Some(mf) = new.pointer("/metadata/managedFields") {
                    o["metadata"]["managedFields"] = mf.clone();
                }
                o
            }
        };
        for f in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            set_or_remove(&mut next["metadata"], f, old["metadata"].get(f));
        }
        if next["metadata"].get("managedFields").is_none() {
            set_or_remove(
                &mut next["metadata"],
                "managedFields",
                old["metadata"].get("managedFields"),
            );
        }
        apply_defaults(key.res, &mut next, Some(old), self.rv + 1);
        if differs_beyond_meta(&next, old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            next["metadata"]["generation"] = json!(generation + 1);
        }
        if part != Part::Status {
            self.validate(key, &next)?;
        }
        // Admission sees every update, a no-op too, as kube-apiserver's does; the scale
        // subresource is admitted as the Scale objects it reads and writes.
        let definition = match part {
            Part::Main => Self::definition(key, &next)?,
            Part::Status | Part::Scale => None,
        };
        if part == Part::Scale {
            let req = Request {
                op: Operation::Update,
                res: key.res,
                sub: part.subresource(),
                ns: &key.ns,
                name: &key.name,
            };
            // Scale objects are built only for a policy that may look at them.
            if self.admission.may_apply(&req) {
                let (scale, was) = (scale_of(&next), scale_of(old));
                self.admit(Operation::Update, key, req.sub, Some(&scale), Some(&was))?;
            }
        } else {
            self.admit(
                Operation::Update,
                key,
                part.subresource(),
                Some(&next),
                Some(old),
            )?;
        }
        if next == *old {
            return Ok(next);
        }
        self.rv += 1;
        next["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(ChangeKind::Modified, key.res, next.clone());
        if let Some(e) = self.objects.get_mut(key) {
            e.obj = next.clone();
        }
        if let Some(d) = definition {
            self.admission.install(&key.name, d);
        }
        if key.res == Res::CustomResourceDefinition && part == Part::Main {
            self.reindex_crds();
        }
        Ok(next)
    }

    /// Replaces an object's status on behalf of the simulation; bumps the version only on change.
    pub fn set_status(&mut self, key: &ObjKey, status: Value) -> bool {
        self.set_field(key, "status", status)
    }

    /// Sets one top-level field (the simulation's status and spec writes); no-op aware. Compares
    /// the field alone: the simulation rewrites every workload's status on each reconcile, and
    /// cloning whole objects to compare them made a write cost as much as the federation is big.
    pub fn set_field(&mut self, key: &ObjKey, field: &str, value: Value) -> bool {
        let Some(e) = self.objects.get_mut(key) else {
            return false;
        };
        if e.obj.get(field) == Some(&value) {
            return false;
        }
        e.obj[field] = value;
        self.rv += 1;
        e.obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let changed = e.obj.clone();
        self.record(ChangeKind::Modified, key.res, changed);
        true
    }

    /// Lets the simulation edit an object in place (e.g. a Cluster's taints); no-op aware.
    pub fn update_with(&mut self, key: &ObjKey, f: impl FnOnce(&mut Value)) -> bool {
        let Some(e) = self.objects.get_mut(key) else {
            return false;
        };
        let mut next = e.obj.clone();
        f(&mut next);
        if next == e.obj {
            return false;
        }
        self.rv += 1;
        next["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        e.obj = next;
        let changed = e.obj.clone();
        self.record(ChangeKind::Modified, key.res, changed);
        true
    }

    /// Deletes one object; deleting a namespace deletes everything in it at once.
    pub fn delete(&mut self, key: &ObjKey) -> Result<Value, ApiError> {
        let old = self.existing(key)?;
        self.admit(Operation::Delete, key, "", None, Some(&old))?;
        let Some(entry) = self.objects.remove(key) else {
            return Err(ApiError::NotFound {
                res: key.res,
                name: key.name.clone(),
            });
        };
        self.admission.remove(key.res, &key.name);
        if key.res == Res::Namespace {
            let inside: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|k| k.res.meta().namespaced && k.ns == key.name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(e) = self.objects.remove(&k) {
                    self.rv += 1;
                    let mut gone = e.obj;
                    gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                    self.record(ChangeKind::Deleted, k.res, gone);
                }
            }
        }
        self.rv += 1;
        let mut obj = entry.obj;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(ChangeKind::Deleted, key.res, obj.clone());
        if key.res == Res::CustomResourceDefinition {
            self.reindex_crds();
        }
        Ok(obj)
    }
}
