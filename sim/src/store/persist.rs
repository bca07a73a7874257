//! What a restart keeps: the snapshot of the store's objects and their restore.

use serde_json::{Value, json};

use super::{Entry, ObjKey, Res, Store, str_at};

impl Store {
    /// Every object a restart should keep, with the version counter: Clusters come from the
    /// configuration and ResourceBindings and Works from the simulation, so none is saved.
    pub fn snapshot(&self) -> Value {
        let objects: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, _)| !matches!(k.res, Res::Cluster | Res::ResourceBinding | Res::Work))
            .map(|(_, e)| json!({"seq": e.seq, "object": e.obj}))
            .collect();
        json!({"resourceVersion": self.rv, "objects": objects})
    }

    /// Puts back what [`Store::snapshot`] saved (objects of kinds the sim no longer serves are
    /// dropped); returns how many objects were restored.
    pub fn restore(&mut self, saved: &Value) -> usize {
        self.restores += 1;
        let mut n = self.restore_kinds(saved, &Res::ALL);
        // The kinds the restored CRDs define, then their objects.
        self.reindex_crds();
        let custom = self.custom.clone();
        n += self.restore_kinds(saved, &custom);
        let saved_rv = saved["resourceVersion"].as_u64().unwrap_or(0);
        self.rv = self.rv.max(saved_rv);
        self.rebuild_admission();
        n
    }

    /// Restores the saved objects of `kinds`; how many.
    fn restore_kinds(&mut self, saved: &Value, kinds: &[Res]) -> usize {
        let mut n = 0;
        for item in saved["objects"].as_array().into_iter().flatten() {
            let obj = &item["object"];
            let (api_version, kind) = (str_at(obj, "/apiVersion"), str_at(obj, "/kind"));
            let Some(res) = kinds
                .iter()
                .copied()
                .find(|r| r.api_version() == api_version && r.meta().kind == kind)
            else {
                continue;
            };
            let key = ObjKey::new(
                res,
                str_at(obj, "/metadata/namespace"),
                str_at(obj, "/metadata/name"),
            );
            let seq = item["seq"].as_u64().unwrap_or(0);
            self.objects.insert(
                key,
                Entry {
                    obj: obj.clone(),
                    seq,
                },
            );
            n += 1;
        }
        n
    }
}
