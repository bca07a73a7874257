//! Scheduling: the taints of clusters that are not Ready and the grace their tolerations give,
//! the policy a workload follows and its clusters, and the packing of replicas into capacity.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Memo, Workload};
use crate::{
    simulate::{ClusterState, Resources, assign, eligible_clusters, spread},
    store::{ObjKey, Res, Store, str_at},
};

/// The taint Karmada's cluster controller puts on a cluster that is not Ready: `unreachable`
/// when nothing reports on it (Ready=Unknown), `not-ready` when it reports unhealthy.
pub(crate) fn down_taint(c: &ClusterState) -> Option<&'static str> {
    match (c.ready, c.unknown) {
        (true, _) => None,
        (false, true) => Some("cluster.karmada.io/unreachable"),
        (false, false) => Some("cluster.karmada.io/not-ready"),
    }
}

/// Karmada's webhook gives every policy these NoExecute tolerations unless it has its own
/// (`--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds`).
const DEFAULT_TOLERATION_SECS: i64 = 300;

/// How long a workload placed by `policy` may stay on a cluster tainted `key:NoExecute`:
/// `None` for ever (a matching toleration without `tolerationSeconds`).
fn toleration_secs(policy: Option<&Value>, key: &str) -> Option<i64> {
    let tolerations = policy
        .and_then(|p| p.pointer("/spec/placement/clusterTolerations"))
        .and_then(Value::as_array);
    let matching = tolerations.into_iter().flatten().find(|t| {
        let effect_ok = matches!(str_at(t, "/effect"), "" | "NoExecute");
        let key_ok = match str_at(t, "/operator") {
            "Exists" => [key, ""].contains(&str_at(t, "/key")),
            _ => str_at(t, "/key") == key && str_at(t, "/value").is_empty(),
        };
        effect_ok && key_ok
    });
    match matching {
        None => Some(DEFAULT_TOLERATION_SECS),
        Some(t) => t["tolerationSeconds"].as_i64().map(|s| s.max(0)),
    }
}

/// Keeps `old`'s scheduling for `w` when one of its clusters is down and still within its
/// grace period (recording when that runs out); false when it should be scheduled again.
pub(super) fn keeps_through_taints(
    memo: &mut Memo,
    store: &Store,
    clusters: &BTreeMap<String, ClusterState>,
    old: &Workload,
    w: &mut Workload,
) -> bool {
    let Some(policy_name) = &old.policy else {
        return false;
    };
    let (res, ns) = if old.cluster_policy {
        (Res::ClusterPropagationPolicy, "")
    } else {
        (Res::PropagationPolicy, old.key.ns.as_str())
    };
    let policy = store.get(&ObjKey::new(res, ns, policy_name));
    let now = chrono::Utc::now();
    let mut kept = false;
    let mut targets = Vec::new();
    for (cluster, n) in &old.targets {
        let Some(c) = clusters.get(cluster) else {
            continue;
        };
        let Some(key) = down_taint(c) else {
            targets.push((cluster.clone(), *n));
            continue;
        };
        let since = chrono::DateTime::parse_from_rfc3339(&c.since)
            .map_or(now, |t| t.with_timezone(&chrono::Utc));
        match toleration_secs(policy, key).map(|s| since + chrono::Duration::seconds(s)) {
            Some(deadline) if deadline <= now => continue,
            Some(deadline) => {
                memo.next_eviction = Some(memo.next_eviction.map_or(deadline, |t| t.min(deadline)));
            }
            None => {}
        }
        kept = true;
        targets.push((cluster.clone(), *n));
    }
    if kept {
        w.policy = old.policy.clone();
        w.cluster_policy = old.cluster_policy;
        w.scheduling = old.scheduling;
        w.targets = targets;
    }
    kept
}

/// Picks the workload's policy (a PropagationPolicy of its namespace wins over any
/// ClusterPropagationPolicy, as in Karmada) and assigns its replicas to clusters.
pub(super) fn schedule(
    memo: &Memo,
    store: &Store,
    clusters: &BTreeMap<String, ClusterState>,
    labels: &BTreeMap<&str, &Value>,
    w: &mut Workload,
) {
    let picked = match memo
        .propagation
        .pick(store, Res::PropagationPolicy, &w.key.ns, w)
    {
        Some(p) => Some((p, false)),
        None => memo
            .cluster_wide
            .pick(store, Res::ClusterPropagationPolicy, "", w)
            .map(|p| (p, true)),
    };
    let Some((p, cluster_wide)) = picked else {
        return;
    };
    let placement = &p["spec"]["placement"];
    let eligible = eligible_clusters(placement, clusters, labels);
    let eligible = spread(placement, w, eligible, clusters);
    let (kind, targets) = match w.key.res {
        // Every eligible cluster runs it, a pod per node; replica scheduling does not apply.
        Res::DaemonSet => (
            "Duplicated",
            eligible
                .iter()
                .map(|c| (c.clone(), clusters.get(c).map_or(0, |s| s.nodes)))
                .collect(),
        ),
        _ => assign(placement, w, &eligible, clusters),
    };
    w.cluster_policy = cluster_wide;
    w.policy = Some(str_at(p, "/metadata/name").to_string());
    w.scheduling = Some(kind);
    w.targets = targets.into_iter().filter(|t| t.1 > 0).collect();
}

/// Packs the workloads' replicas into each of `which` clusters (all when `None`), on its own:
/// replicas already running keep their place (oldest workload first), then new replicas are
/// placed in creation order; whatever does not fit stays pending (a cluster that is not Ready
/// holds none). Sets each packed cluster's `allocated` and `allocating`; returns the workloads
/// whose placement moved.
pub(super) fn pack(
    memo: &mut Memo,
    clusters: &mut BTreeMap<String, ClusterState>,
    which: Option<&BTreeSet<String>>,
) -> BTreeSet<u64> {
    let names: Vec<String> = match which {
        Some(w) => w.iter().cloned().collect(),
        None => clusters
            .keys()
            .chain(memo.by_cluster.keys())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut moved = BTreeSet::new();
    for name in names {
        memo.stats.packed += 1;
        // (workload, its target on this cluster, replicas it ran there before), oldest first.
        let entries: Vec<(u64, usize, u32)> = memo
            .by_cluster
            .get(&name)
            .into_iter()
            .flatten()
            .filter_map(|seq| {
                let w = &memo.workloads[seq];
                let i = w.targets.iter().position(|t| t.0 == name)?;
                Some((*seq, i, w.placed.get(i).copied().unwrap_or(0)))
            })
            .collect();
        for (seq, i, _) in &entries {
            if let Some(w) = memo.workloads.get_mut(seq) {
                w.placed.resize(w.targets.len(), 0);
                w.placed[*i] = 0;
            }
        }
        let (mut allocated, mut allocating) = (Resources::default(), Resources::default());
        let mut free = clusters
            .get(&name)
            .filter(|c| c.ready)
            .map(|c| c.allocatable);
        for pass in 0..2 {
            for (seq, i, prev) in &entries {
                let (Some(f), Some(w)) = (free.as_mut(), memo.workloads.get_mut(seq)) else {
                    continue;
                };
                let desired = w.targets[*i].1;
                let want = if pass == 0 {
                    (*prev).min(desired)
                } else {
                    desired - w.placed[*i]
                };
                let n = w.per_replica.fit_count(*f, u64::from(want)) as u32;
                *f = f.minus(w.per_replica.times(u64::from(n)));
                w.placed[*i] += n;
            }
        }
        for (seq, i, prev) in &entries {
            let w = &memo.workloads[seq];
            let (desired, ready) = (w.targets[*i].1, w.placed[*i]);
            allocated = allocated.plus(w.per_replica.times(u64::from(ready)));
            allocating = allocating.plus(w.per_replica.times(u64::from(desired - ready)));
            if ready != *prev {
                moved.insert(*seq);
            }
        }
        if let Some(c) = clusters.get_mut(&name) {
            c.allocated = allocated;
            c.allocating = allocating;
        }
    }
    moved
}
