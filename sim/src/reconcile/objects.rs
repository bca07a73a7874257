//! The objects Karmada's controllers write for a propagated workload: its ResourceBinding and a
//! Work per cluster, and their sweep after a start-over.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Memo, Workload, key_of};
use crate::{
    simulate::transition,
    store::{ObjKey, Res, Store},
};

/// Karmada's ResourceBinding of a propagated workload: `<name>-<kind>` in its namespace, owned by
/// it, with the scheduling result in `spec.clusters` and each member's status in
/// `status.aggregatedStatus`. A workload no policy selects has none.
pub(super) fn bind(store: &mut Store, w: &Workload, stamp: &str) {
    let name = w.binding_name();
    let key = ObjKey::new(Res::ResourceBinding, &w.key.ns, &name);
    let Some(policy) = &w.policy else {
        if store.get(&key).is_some() {
            let _ = store.delete(&key);
        }
        return;
    };
    let Some(d) = store.get(&w.key) else {
        return;
    };
    let kind = w.key.res.meta().kind;
    let (uid, rv) = (
        d["metadata"]["uid"].clone(),
        d["metadata"]["resourceVersion"].clone(),
    );
    let spec = json!({
        "resource": {"apiVersion": "apps/v1", "kind": kind, "namespace": w.key.ns,
                     "name": w.key.name, "uid": uid, "resourceVersion": rv},
        "replicas": w.replicas,
        "clusters": w.targets.iter().map(|(c, n)| json!({"name": c, "replicas": n})).collect::<Vec<_>>(),
        "propagateDeps": false,
        "schedulerName": "default-scheduler",
    });
    let scheduled = !w.targets.is_empty();
    let aggregated: Vec<Value> = w
        .targets
        .iter()
        .zip(&w.placed)
        .map(|((c, n), ready)| {
            json!({
                "clusterName": c, "applied": true,
                "health": if ready >= n { "Healthy" } else { "Unhealthy" },
                "status": {"replicas": n, "readyReplicas": ready, "availableReplicas": ready,
                           "updatedReplicas": n, "observedGeneration": w.generation},
            })
        })
        .collect();
    let all_ready = w.targets.iter().zip(&w.placed).all(|((_, n), r)| r >= n);
    let old = store
        .get(&key)
        .map(|b| b["status"]["conditions"].clone())
        .unwrap_or(Value::Null);
    let cond = |kind: &str, ok: bool, reason: &str| transition(&old, kind, ok, reason, "", stamp);
    let status = json!({
        "schedulerObservedGeneration": w.generation,
        "aggregatedStatus": aggregated,
        "conditions": [
            cond("Scheduled", scheduled, if scheduled { "Success" } else { "NoClusterFit" }),
            cond("FullyApplied", scheduled && all_ready, if all_ready { "FullyAppliedSuccess" } else { "FullyAppliedFailed" }),
        ],
    });
    if store.get(&key).is_none() {
        let body = json!({
            "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
            "metadata": {
                "name": name, "namespace": w.key.ns,
                "labels": if w.cluster_policy {
                    json!({"clusterpropagationpolicy.karmada.io/name": policy})
                } else {
                    json!({"propagationpolicy.karmada.io/name": policy})
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": w.key.name,
                                     "uid": uid, "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": spec,
        });
        let _ = store.create(Res::ResourceBinding, &w.key.ns, body);
    } else {
        store.set_field(&key, "spec", spec);
    }
    store.set_status(&key, status);
}

/// Where Karmada puts what it sends a member cluster: its execution namespace.
fn execution_namespace(cluster: &str) -> String {
    format!("karmada-es-{cluster}")
}

/// A workload's Work in one cluster: `<name>-<hash of kind, namespace, name>`, as Karmada names
/// them (unique within the cluster's execution namespace).
pub(super) fn work_key(w: &Workload, cluster: &str) -> ObjKey {
    let id = format!("{}/{}/{}", w.key.res.meta().kind, w.key.ns, w.key.name);
    // FNV-1a, 32 bits: short, stable across runs and platforms.
    let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    ObjKey::new(
        Res::Work,
        &execution_namespace(cluster),
        &format!("{}-{hash:08x}", w.key.name),
    )
}

/// Writes a Work per cluster the workload is propagated to, holding the resource template as
/// that cluster gets it: replicas its share (when divided), then the OverridePolicies' rules for
/// it applied. Deletes its Works in clusters it left. Returns the clusters it has a Work in.
pub(super) fn write_works(
    store: &mut Store,
    w: &Workload,
    overriding: &[Value],
    stamp: &str,
) -> Vec<String> {
    let mut worked = Vec::new();
    let (template, targets) = match (&w.policy, store.get(&w.key)) {
        (Some(_), Some(t)) => (template_of(t), &w.targets[..]),
        _ => (Value::Null, &[][..]),
    };
    for (cluster, n) in targets {
        let mut manifest = template.clone();
        if w.scheduling == Some("Divided") && w.key.res != Res::DaemonSet {
            manifest["spec"]["replicas"] = json!(n);
        }
        let labels = store
            .get(&ObjKey::new(Res::Cluster, "", cluster))
            .map_or(Value::Null, |c| c["metadata"]["labels"].clone());
        let policies: Vec<&Value> = overriding.iter().collect();
        if let Err(e) = crate::overrides::apply(&mut manifest, &policies, cluster, &labels) {
            // Karmada reports it as an event and does not send the workload there.
            tracing::warn!(workload = %w.key.name, cluster, "override not applied: {e}");
            continue;
        }
        let key = work_key(w, cluster);
        let spec = json!({"workload": {"manifests": [manifest]}});
        if store.get(&key).is_some() {
            store.set_field(&key, "spec", spec);
        } else {
            let ns = ObjKey::new(Res::Namespace, "", &key.ns);
            if store.get(&ns).is_none() {
                let _ = store.create(
                    Res::Namespace,
                    "",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": key.ns}}),
                );
            }
            let body = json!({
                "apiVersion": "work.karmada.io/v1alpha1", "kind": "Work",
                "metadata": {"name": key.name, "namespace": key.ns, "labels": {
                    "karmada.io/managed": "true",
                    "resourcebinding.karmada.io/name": w.binding_name(),
                    "resourcebinding.karmada.io/namespace": w.key.ns,
                }},
                "spec": spec,
            });
            if let Err(e) = store.create(Res::Work, &key.ns, body) {
                tracing::warn!(workload = %w.key.name, cluster, "work not written: {e:?}");
                continue;
            }
        }
        let old = store
            .get(&key)
            .map(|o| o["status"]["conditions"].clone())
            .unwrap_or(Value::Null);
        let mut applied = transition(&old, "Applied", true, "AppliedSuccessful", "", stamp);
        applied["message"] = json!("Manifest has been successfully applied");
        store.set_status(&key, json!({"conditions": [applied]}));
        worked.push(cluster.clone());
    }
    for gone in w.worked.iter().filter(|c| !worked.contains(c)) {
        let _ = store.delete(&work_key(w, gone));
    }
    worked
}

/// The resource template as Karmada sends it: identity, labels and annotations, spec; what the
/// control plane keeps for itself (uid, versions, managed fields, owners, status) left out.
fn template_of(obj: &Value) -> Value {
    let mut t = obj.clone();
    if let Some(o) = t.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = t["metadata"].as_object_mut() {
        meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations"));
    }
    t["metadata"]["labels"]["karmada.io/managed"] = json!("true");
    t
}

/// Deletes the Works of no propagated workload (after a start-over).
pub(super) fn sweep_works(store: &mut Store, memo: &Memo) {
    let wanted: BTreeSet<ObjKey> = memo
        .workloads
        .values()
        .flat_map(|w| w.worked.iter().map(|c| work_key(w, c)))
        .collect();
    let stale: Vec<ObjKey> = store
        .entries(Res::Work, None)
        .filter(|e| !e.obj["metadata"]["labels"]["resourcebinding.karmada.io/name"].is_null())
        .map(|e| key_of(Res::Work, &e.obj))
        .filter(|k| !wanted.contains(k))
        .collect();
    for k in stale {
        let _ = store.delete(&k);
    }
}

/// Deletes the ResourceBindings of no propagated workload (after a start-over).
pub(super) fn sweep_bindings(store: &mut Store, memo: &Memo) {
    let wanted: BTreeSet<(&str, String)> = memo
        .workloads
        .values()
        .filter(|w| w.policy.is_some())
        .map(|w| (w.key.ns.as_str(), w.binding_name()))
        .collect();
    let stale: Vec<ObjKey> = store
        .entries(Res::ResourceBinding, None)
        .map(|e| key_of(Res::ResourceBinding, &e.obj))
        .filter(|k| !wanted.contains(&(k.ns.as_str(), k.name.clone())))
        .collect();
    for k in stale {
        let _ = store.delete(&k);
    }
}
