//! Kinds that CustomResourceDefinitions written through the API define: their names, the
//! reindexing after each CRD write or restore, and the schemas writes are validated against.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{ApiError, ObjKey, Res, Store, now_rfc3339};

/// The names a CustomResourceDefinition gives one served version of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomNames {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
}

/// The served versions of a CustomResourceDefinition: their names and `openAPIV3Schema`s.
pub(crate) fn crd_versions(crd: &Value) -> Vec<(CustomNames, Option<Value>)> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let group = spec["group"].as_str().unwrap_or_default();
    if plural.is_empty() || kind.is_empty() || group.is_empty() {
        return Vec::new();
    }
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != false)
        .filter_map(|v| {
            Some((
                CustomNames {
                    group: group.to_string(),
                    version: v["name"].as_str()?.to_string(),
                    plural: plural.to_string(),
                    singular: names["singular"]
                        .as_str()
                        .map_or_else(|| kind.to_ascii_lowercase(), str::to_string),
                    kind: kind.to_string(),
                    namespaced: spec["scope"] != "Cluster",
                },
                v.pointer("/schema/openAPIV3Schema").cloned(),
            ))
        })
        .collect()
}

impl Store {
    /// Rebuilds the custom kinds from the CRDs in the store, marks new CRDs Established (as the
    /// apiextensions controller does) and deletes the objects of kinds no CRD defines any more.
    pub(super) fn reindex_crds(&mut self) {
        let mut custom = Vec::new();
        let mut schemas = BTreeMap::new();
        let crds: Vec<(ObjKey, Value)> = self
            .objects
            .iter()
            .filter(|(k, _)| k.res == Res::CustomResourceDefinition)
            .map(|(k, e)| (k.clone(), e.obj.clone()))
            .collect();
        for (key, crd) in crds {
            for (names, schema) in crd_versions(&crd) {
                let Some(res) = Res::custom(&names) else {
                    continue;
                };
                custom.push(res);
                if let Some(s) = schema {
                    schemas.insert(
                        format!("{}/{}/{}", names.group, names.version, names.kind),
                        s,
                    );
                }
            }
            if crd.pointer("/status/conditions").is_none() {
                let names = &crd["spec"]["names"];
                let now = now_rfc3339();
                let cond = |t: &str, reason: &str, msg: &str| {
                    json!({"type": t, "status": "True", "reason": reason, "message": msg,
                           "lastTransitionTime": now})
                };
                self.set_status(
                    &key,
                    json!({
                        "acceptedNames": names,
                        "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten()
                            .filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
                        "conditions": [
                            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                        ],
                    }),
                );
            }
        }
        let gone: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| matches!(k.res, Res::Custom(_)) && !custom.contains(&k.res))
            .cloned()
            .collect();
        for k in gone {
            let _ = self.delete(&k);
        }
        self.custom = custom;
        self.custom_schemas = schemas;
    }

    /// The schema of `group/version/Kind`: a configured one, else that of one of this store's CRDs.
    pub fn schema(&self, id: &str) -> Option<&Value> {
        self.schemas.get(id).or_else(|| self.custom_schemas.get(id))
    }

    /// Refuses an object its kind's schema does not admit (422, every field named).
    pub(super) fn validate(&self, key: &ObjKey, obj: &Value) -> Result<(), ApiError> {
        let m = key.res.meta();
        let Some(schema) = self.schema(&format!("{}/{}/{}", m.group, m.version, m.kind)) else {
            return Ok(());
        };
        let found = crate::schemas::violations(schema, obj, self.strict_fields);
        if found.is_empty() {
            return Ok(());
        }
        Err(ApiError::Invalid {
            res: key.res,
            name: key.name.clone(),
            message: found.join(", "),
        })
    }
}
