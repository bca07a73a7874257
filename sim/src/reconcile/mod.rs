//! The reconcile: decides where each Deployment, StatefulSet and DaemonSet runs (its PropagationPolicy, the
//! clusters' readiness and capacity) and writes the results back as workload, ResourceBinding
//! and Cluster status, as Karmada's scheduler, the members' kubelets and its status controllers
//! together would. Deterministic: the same objects always give the same placement.
//!
//! Incremental, so that a write costs what it touches rather than what the federation holds: it
//! follows the store's change log from where it last stopped ([`Memo::seen`]). Only workloads a
//! change can affect (the workload itself; those a changed PropagationPolicy selected before or
//! selects now) are read again and scheduled again. Packing replicas into clusters still visits
//! every workload, since capacity is shared, but on cached numbers, and only workloads whose
//! result moved are written. Clusters changing, a ClusterPropagationPolicy changing, a Namespace
//! deleted, a restore, or a change log that moved on start it over from the whole store.

//!
//! Split by concern: [`policy`] indexes the policies that could select a workload,
//! [`schedule`](mod@schedule) picks clusters and packs replicas into them, [`objects`] writes the
//! ResourceBindings and Works Karmada would.

mod objects;
mod policy;
mod schedule;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use serde_json::{Value, json};

use self::{
    objects::{bind, sweep_bindings, sweep_works, work_key, write_works},
    policy::{PolicyIndex, Selects},
    schedule::{down_taint, keeps_through_taints, pack, schedule},
};
use super::{
    State,
    simulate::{
        ClusterState, MAX_REPLICAS, Placement, Resources, Share, cluster_status, daemonset_status,
        deployment_status, pod_requests, statefulset_status,
    },
    store::{ChangeKind, Entry, ObjKey, Res, Store, now_rfc3339, str_at},
};

/// The kinds the simulation propagates, schedules and gives status.
const WORKLOADS: [Res; 3] = [Res::Deployment, Res::StatefulSet, Res::DaemonSet];

/// A Deployment, StatefulSet or DaemonSet, reduced to what the simulation needs.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub key: ObjKey,
    /// Creation order: earlier workloads are packed first.
    pub seq: u64,
    pub replicas: u32,
    pub per_replica: Resources,
    pub labels: Value,
    pub generation: i64,
    pub policy: Option<String>,
    /// `policy` is a ClusterPropagationPolicy.
    pub cluster_policy: bool,
    pub scheduling: Option<&'static str>,
    /// Replicas assigned per cluster.
    pub targets: Vec<(String, u32)>,
    /// Replicas that fit, per entry of `targets` (until the cluster is packed again, also the
    /// previous placement: running replicas keep their place before new ones are packed).
    pub placed: Vec<u32>,
    /// The clusters this workload has a Work in.
    worked: Vec<String>,
}

impl Workload {
    fn read(key: ObjKey, e: &Entry) -> Workload {
        Workload {
            // A DaemonSet has no replicas: it runs a pod on every node (Karmada's bindings say 0).
            replicas: match key.res {
                Res::DaemonSet => 0,
                _ => e
                    .obj
                    .pointer("/spec/replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .min(MAX_REPLICAS) as u32,
            },
            per_replica: pod_requests(&e.obj),
            labels: e.obj["metadata"]["labels"].clone(),
            generation: e.obj["metadata"]["generation"].as_i64().unwrap_or(1),
            key,
            seq: e.seq,
            policy: None,
            cluster_policy: false,
            scheduling: None,
            targets: Vec::new(),
            placed: Vec::new(),
            worked: Vec::new(),
        }
    }

    pub fn ready_on(&self, cluster: &str) -> u32 {
        self.targets
            .iter()
            .zip(&self.placed)
            .find(|((c, _), _)| c == cluster)
            .map_or(0, |(_, r)| *r)
    }

    fn binding_name(&self) -> String {
        let kind = self.key.res.meta().kind.to_ascii_lowercase();
        format!("{}-{kind}", self.key.name)
    }
}

/// What the reconcile keeps between runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memo {
    /// The store's resourceVersion up to which changes are folded in (`None`: never ran).
    seen: Option<u64>,
    /// The store's restore count at the last run.
    restores: u64,
    /// A fingerprint of every cluster's name, readiness and capacity at the last run.
    clusters: Option<u64>,
    /// Every workload, in creation order.
    workloads: BTreeMap<u64, Workload>,
    /// The workloads (by creation order) with replicas assigned to each cluster: a cluster is
    /// packed on its own, so a change repacks only the clusters it touches.
    by_cluster: BTreeMap<String, BTreeSet<u64>>,
    seqs: BTreeMap<ObjKey, u64>,
    propagation: PolicyIndex,
    cluster_wide: PolicyIndex,
    overrides: PolicyIndex,
    /// When the first NoExecute grace period a workload is kept through runs out.
    next_eviction: Option<chrono::DateTime<chrono::Utc>>,
    /// Work done so far, for `GET /sim/state` and the benchmarks: how much of the federation a
    /// write costs.
    pub stats: Stats,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stats {
    /// Reconciles run.
    pub runs: u64,
    /// Of them, those that started over from the whole store.
    pub starts_over: u64,
    /// Workloads read and scheduled, summed over every run.
    pub scheduled: u64,
    /// Workloads whose status was written, summed over every run.
    pub written: u64,
    /// Clusters packed, summed over every run.
    pub packed: u64,
}

impl Memo {
    /// A workload kept on a NotReady cluster is due to be evicted from it.
    pub fn eviction_due(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.next_eviction.is_some_and(|t| t <= now)
    }
}

/// What the changes since the last run may have affected.
#[derive(Debug, Default)]
struct Dirty {
    /// Everything: start over from the store.
    all: bool,
    /// Every workload's policy may have changed (a ClusterPropagationPolicy, a deleted
    /// Namespace, a restore, a change log that moved on): none keeps its clusters for a
    /// NoExecute taint's grace period.
    fresh: bool,
    /// (namespace, name) of workloads of either kind.
    names: BTreeSet<(String, String)>,
    /// Namespaces whose every workload is affected.
    namespaces: BTreeSet<String>,
}

impl Dirty {
    fn select(&mut self, ns: &str, s: &Selects) {
        for n in &s.names {
            self.names.insert((ns.to_string(), n.clone()));
        }
        if s.any {
            self.namespaces.insert(ns.to_string());
        }
    }
}

/// Names, readiness and capacity of every cluster, hashed: what moving any of them changes.
fn fingerprint(clusters: &BTreeMap<String, ClusterState>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (n, c) in clusters {
        (n, c.ready, c.unknown, c.allocatable).hash(&mut h);
    }
    h.finish()
}

/// Folds the store's changes since the last run into the policy index and returns what they
/// may have affected.
fn fold_changes(
    memo: &mut Memo,
    store: &Store,
    clusters: &BTreeMap<String, ClusterState>,
) -> Dirty {
    let log = match memo.seen {
        Some(rv) if memo.restores == store.restores => store.changes_since(rv),
        _ => None,
    };
    let mut d = Dirty {
        // Clusters moved, or a grace period ran out: every workload is scheduled again, but
        // the log still tells which ones changed themselves.
        all: memo.clusters != Some(fingerprint(clusters)) || memo.eviction_due(chrono::Utc::now()),
        ..Dirty::default()
    };
    memo.restores = store.restores;
    let Some(changes) = log else {
        d.all = true;
        d.fresh = true;
        return d;
    };
    for c in changes {
        let (ns, name) = (
            str_at(&c.obj, "/metadata/namespace"),
            str_at(&c.obj, "/metadata/name"),
        );
        let gone = c.kind == ChangeKind::Deleted;
        match c.res {
            Res::Deployment | Res::StatefulSet | Res::DaemonSet => {
                d.names.insert((ns.to_string(), name.to_string()));
            }
            Res::PropagationPolicy => {
                let [old, new] =
                    memo.propagation
                        .put(ns, name, (!gone).then(|| Selects::of(&c.obj)));
                d.select(ns, &old);
                d.select(ns, &new);
            }
            Res::OverridePolicy => {
                let [old, new] =
                    memo.overrides
                        .put(ns, name, (!gone).then(|| Selects::of_override(&c.obj)));
                d.select(ns, &old);
                d.select(ns, &new);
            }
            Res::Cluster => d.all = true,
            Res::ClusterPropagationPolicy => {
                d.all = true;
                d.fresh = true;
            }
            Res::Namespace if gone => {
                d.all = true;
                d.fresh = true;
            }
            _ => {}
        }
    }
    d
}

/// Reads the affected workloads again and schedules them (see [`Refreshed`]).
fn refresh(
    memo: &mut Memo,
    store: &Store,
    clusters: &BTreeMap<String, ClusterState>,
    d: &Dirty,
) -> Refreshed {
    let mut keys: Vec<ObjKey> = Vec::new();
    if d.all {
        memo.next_eviction = None;
        memo.propagation = PolicyIndex::default();
        memo.cluster_wide = PolicyIndex::default();
        for (res, index) in [
            (Res::PropagationPolicy, &mut memo.propagation),
            (Res::ClusterPropagationPolicy, &mut memo.cluster_wide),
        ] {
            for p in store.list(res, None) {
                let ns = str_at(p, "/metadata/namespace");
                index.put(ns, str_at(p, "/metadata/name"), Some(Selects::of(p)));
            }
        }
        memo.overrides = PolicyIndex::default();
        for p in store.list(Res::OverridePolicy, None) {
            let (ns, name) = (
                str_at(p, "/metadata/namespace"),
                str_at(p, "/metadata/name"),
            );
            memo.overrides.put(ns, name, Some(Selects::of_override(p)));
        }
        for res in WORKLOADS {
            keys.extend(store.entries(res, None).map(|e| key_of(res, &e.obj)));
        }
        // Whatever is not among them any more has left.
        let here: BTreeSet<&ObjKey> = keys.iter().collect();
        let left: Vec<ObjKey> = memo
            .seqs
            .keys()
            .filter(|k| !here.contains(k))
            .cloned()
            .collect();
        keys.extend(left);
    } else {
        for (ns, name) in &d.names {
            keys.extend(WORKLOADS.map(|res| ObjKey::new(res, ns, name)));
        }
        for ns in &d.namespaces {
            for res in WORKLOADS {
                keys.extend(store.entries(res, Some(ns)).map(|e| key_of(res, &e.obj)));
            }
        }
    }
    let labels: BTreeMap<&str, &Value> = store
        .list(Res::Cluster, None)
        .into_iter()
        .map(|c| (str_at(c, "/metadata/name"), &c["metadata"]["labels"]))
        .collect();
    let mut out = Refreshed::default();
    for key in keys {
        let old = memo
            .seqs
            .remove(&key)
            .and_then(|seq| memo.workloads.remove(&seq));
        if let Some(o) = &old {
            memo.unlist(o);
        }
        let Some(e) = store.entry(&key) else {
            if let Some(o) = old {
                out.clusters.extend(o.targets.iter().map(|t| t.0.clone()));
                out.left.push(o);
            }
            continue;
        };
        let mut w = Workload::read(key.clone(), e);
        let unchanged = !d.fresh
            && !d.names.contains(&(key.ns.clone(), key.name.clone()))
            && !d.namespaces.contains(&key.ns);
        match old.as_ref().filter(|o| unchanged && o.seq == w.seq) {
            // As Karmada's: a NotReady cluster is tainted NoSchedule, which new scheduling
            // avoids but which moves nothing, and NoExecute, which evicts what does not
            // tolerate it once its grace period is over. Until then the workload stays (its
            // replicas there not ready); after, it is scheduled again without that cluster.
            Some(o) if keeps_through_taints(memo, store, clusters, o, &mut w) => {}
            _ => schedule(memo, store, clusters, &labels, &mut w),
        }
        // Replicas keep their place on the clusters they still target (a workload deleted and
        // created again under the same name starts afresh); `pack` takes this as the previous
        // placement.
        w.placed = w
            .targets
            .iter()
            .map(|(c, _)| {
                old.as_ref()
                    .filter(|o| o.seq == w.seq)
                    .map_or(0, |o| o.ready_on(c))
            })
            .collect();
        w.worked = old.as_ref().map(|o| o.worked.clone()).unwrap_or_default();
        // Its clusters are packed again when what it asks of them changed.
        let same = old.as_ref().is_some_and(|o| {
            o.seq == w.seq && o.targets == w.targets && o.per_replica == w.per_replica
        });
        if !same {
            let before = old.iter().flat_map(|o| o.targets.iter());
            out.clusters
                .extend(before.chain(&w.targets).map(|t| t.0.clone()));
        }
        memo.seqs.insert(key, w.seq);
        memo.list(&w);
        memo.stats.scheduled += 1;
        out.touched.insert(w.seq);
        memo.workloads.insert(w.seq, w);
    }
    out
}

/// What [`refresh`] did.
#[derive(Default)]
struct Refreshed {
    /// Workloads read and scheduled again.
    touched: BTreeSet<u64>,
    /// Workloads gone.
    left: Vec<Workload>,
    /// Clusters whose packing those changes may move.
    clusters: BTreeSet<String>,
}

impl Memo {
    fn list(&mut self, w: &Workload) {
        for (c, _) in &w.targets {
            self.by_cluster.entry(c.clone()).or_default().insert(w.seq);
        }
    }

    fn unlist(&mut self, w: &Workload) {
        for (c, _) in &w.targets {
            if let Some(set) = self.by_cluster.get_mut(c) {
                set.remove(&w.seq);
                if set.is_empty() {
                    self.by_cluster.remove(c);
                }
            }
        }
    }
}

fn key_of(res: Res, obj: &Value) -> ObjKey {
    ObjKey::new(
        res,
        str_at(obj, "/metadata/namespace"),
        str_at(obj, "/metadata/name"),
    )
}

impl State {
    /// A write changed what the simulation computes, or a NoExecute grace period ran out: the
    /// next read reconciles first.
    pub(crate) fn needs_reconcile(&self) -> bool {
        self.stale || self.memo.eviction_due(chrono::Utc::now())
    }
}

/// Brings the simulation up to date with the store; see the module's doc.
pub(crate) fn reconcile(st: &mut State, now: Instant) {
    st.stale = false;
    let stamp = now_rfc3339();
    let dirty = fold_changes(&mut st.memo, &st.store, &st.clusters);
    if dirty.all {
        // Cluster objects created or deleted through the API join or leave the table.
        sync_clusters(st);
    }
    let memo = &mut st.memo;
    let Refreshed {
        touched,
        left,
        clusters,
    } = refresh(memo, &st.store, &st.clusters, &dirty);
    let moved = pack(memo, &mut st.clusters, (!dirty.all).then_some(&clusters));
    memo.stats.runs += 1;
    memo.stats.starts_over += u64::from(dirty.all);

    for w in &left {
        for cluster in &w.worked {
            let _ = st.store.delete(&work_key(w, cluster));
        }
        st.placements.remove(&w.key);
        let _ = st.store.delete(&ObjKey::new(
            Res::ResourceBinding,
            &w.key.ns,
            &w.binding_name(),
        ));
    }
    if dirty.all {
        st.placements.retain(|k, _| memo.seqs.contains_key(k));
    }
    for seq in touched.union(&moved) {
        memo.stats.written += 1;
        let w = &memo.workloads[seq];
        write_status(&mut st.store, w, &stamp);
        let ready = w
            .targets
            .iter()
            .zip(&w.placed)
            .map(|((c, _), r)| (c.clone(), *r))
            .collect();
        // Synthetic requests flow to Deployments (a service's pods), by their name.
        if w.key.res == Res::Deployment {
            st.traffic.set_ready(&w.key.ns, &w.key.name, ready, now);
        }
        st.placements.insert(w.key.clone(), placement_of(w));
        bind(&mut st.store, w, &stamp);
        if touched.contains(seq) {
            let overriding = memo.overrides.overriding(&st.store, &w.key.ns, w);
            let overriding: Vec<Value> = overriding.into_iter().cloned().collect();
            let worked = write_works(&mut st.store, w, &overriding, &stamp);
            if let Some(w) = memo.workloads.get_mut(seq) {
                w.worked = worked;
            }
        }
    }
    if dirty.all {
        sweep_bindings(&mut st.store, memo);
        sweep_works(&mut st.store, memo);
    }
    if dirty.all || !left.is_empty() {
        let live = &st.placements;
        st.traffic
            .retain(|(ns, n)| live.contains_key(&ObjKey::new(Res::Deployment, ns, n)));
    }
    write_clusters(st, (!dirty.all).then_some(&clusters));
    st.memo.clusters = Some(fingerprint(&st.clusters));
    st.memo.seen = Some(st.store.resource_version());
}

fn write_status(store: &mut Store, w: &Workload, stamp: &str) {
    let status = match w.key.res {
        Res::StatefulSet => statefulset_status(w),
        Res::DaemonSet => daemonset_status(w),
        _ => {
            let old = store.get(&w.key).map_or(&Value::Null, |o| &o["status"]);
            deployment_status(w, old, stamp)
        }
    };
    store.set_status(&w.key, status);
}

fn placement_of(w: &Workload) -> Placement {
    let shares: Vec<Share> = w
        .targets
        .iter()
        .zip(&w.placed)
        .map(|((c, d), r)| Share {
            cluster: c.clone(),
            desired: *d,
            ready: *r,
        })
        .collect();
    Placement {
        kind: w.key.res.meta().kind,
        namespace: w.key.ns.clone(),
        name: w.key.name.clone(),
        policy: w.policy.clone(),
        scheduling: w.scheduling,
        replicas: w.targets.iter().map(|t| t.1).sum(),
        ready: shares.iter().map(|s| s.ready).sum(),
        clusters: shares,
    }
}

/// Keeps the cluster table and the Cluster objects in step: a Cluster deleted through the API
/// leaves the simulation; one created through the API joins with no capacity, not Ready.
fn sync_clusters(st: &mut State) {
    let names: Vec<String> = st
        .store
        .list(Res::Cluster, None)
        .iter()
        .map(|c| str_at(c, "/metadata/name").to_string())
        .collect();
    st.clusters.retain(|n, _| names.contains(n));
    for n in names {
        st.clusters.entry(n).or_insert_with(|| ClusterState {
            allocatable: Resources::default(),
            nodes: 1,
            ready: false,
            unknown: false,
            since: now_rfc3339(),
            allocated: Resources::default(),
            allocating: Resources::default(),
        });
    }
}

/// Writes each Cluster's status, and its taints as Karmada's cluster controller sets them (with
/// its Failover feature on): `unreachable` when Ready is Unknown, `not-ready` when it is False,
/// each as NoSchedule and NoExecute.
fn write_clusters(st: &mut State, which: Option<&BTreeSet<String>>) {
    for (name, c) in &st.clusters {
        if which.is_some_and(|w| !w.contains(name)) {
            continue;
        }
        let key = ObjKey::new(Res::Cluster, "", name);
        let status = cluster_status(c);
        let taints = match down_taint(c) {
            None => Value::Null,
            Some(key) => json!([
                {"key": key, "effect": "NoSchedule", "timeAdded": c.since},
                {"key": key, "effect": "NoExecute", "timeAdded": c.since},
            ]),
        };
        st.store.update_with(&key, |o| {
            o["status"] = status;
            match (&taints, o["spec"].as_object_mut()) {
                (Value::Null, Some(spec)) => {
                    spec.remove("taints");
                }
                (t, Some(spec)) => {
                    spec.insert("taints".into(), t.clone());
                }
                _ => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{
        Sim, SimConfig,
        store::{Part, PatchType},
    };

    /// A small deterministic generator (xorshift): a failing sequence replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    const CLUSTERS: [&str; 3] = ["edge-a", "edge-b", "cloud-gpu"];

    fn workload(kind: &str, name: &str, replicas: u64, cpu_milli: u64, tier: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "labels": {"app": name, "tier": tier}},
            "spec": {
                "replicas": replicas, "serviceName": name,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx",
                        "resources": {"requests": {"cpu": format!("{cpu_milli}m"), "memory": "256Mi"}}}]},
                },
            },
        })
    }

    fn policy(
        kind: &str,
        name: &str,
        selector: Value,
        clusters: &[&str],
        divided: bool,
        priority: u64,
    ) -> Value {
        let mut placement = json!({"clusterAffinity": {"clusterNames": clusters}});
        if divided {
            placement["replicaScheduling"] = json!({"replicaSchedulingType": "Divided",
                "replicaDivisionPreference": "Weighted"});
        }
        json!({
            "apiVersion": "policy.karmada.io/v1alpha1", "kind": kind,
            "metadata": {"name": name},
            "spec": {"resourceSelectors": [selector], "placement": placement, "priority": priority},
        })
    }

    fn put(st: &mut State, res: Res, ns: &str, body: Value) {
        let key = ObjKey::new(res, ns, str_at(&body, "/metadata/name"));
        st.store
            .patch(&key, PatchType::Apply, body, Some("test"), true, Part::Main)
            .expect("apply");
        st.stale = true;
    }

    fn remove(st: &mut State, res: Res, ns: &str, name: &str) {
        let _ = st.store.delete(&ObjKey::new(res, ns, name));
        st.stale = true;
    }

    /// Everything a reconcile decides and writes.
    fn outcome(st: &State) -> Value {
        let objects = |res: Res, pointer: &str| -> Vec<Value> {
            st.store
                .list(res, None)
                .into_iter()
                .map(|o| {
                    json!([
                        o["metadata"]["namespace"],
                        o["metadata"]["name"],
                        o.pointer(pointer)
                    ])
                })
                .collect()
        };
        json!({
            "placements": st.placements.values().collect::<Vec<_>>(),
            "deployments": objects(Res::Deployment, "/status"),
            "statefulsets": objects(Res::StatefulSet, "/status"),
            "daemonsets": objects(Res::DaemonSet, "/status"),
            "works": objects(Res::Work, "/spec"),
            "bindings": objects(Res::ResourceBinding, ""),
            "clusters": objects(Res::Cluster, "/status"),
            "traffic": st.traffic.samples(Instant::now()).len(),
        })
    }

    /// Random writes of every kind the reconcile follows; after each, the incremental reconcile
    /// must have decided exactly what one that starts over from the whole store decides.
    #[test]
    fn an_incremental_reconcile_decides_what_one_over_the_whole_store_decides() {
        let sim = Sim::new(SimConfig::demo());
        sim.with_state(|st| {
            st.store.auto_create_namespaces = true;
            let mut rng = Rng(0x5eed_cafe_f00d);
            let (mut incremental, mut contended) = (0, false);
            for step in 0..400 {
                let k = rng.below(12);
                let ns = format!("n{}", k % 3);
                let name = format!("w{k}");
                let op = rng.below(10);
                match op {
                    0..=2 => {
                        let (kind, res) = match rng.below(5) {
                            0 => ("StatefulSet", Res::StatefulSet),
                            1 => ("DaemonSet", Res::DaemonSet),
                            _ => ("Deployment", Res::Deployment),
                        };
                        let tier = if rng.below(2) == 0 { "a" } else { "b" };
                        let body = workload(kind, &name, rng.below(6), 250 * (1 + rng.below(12)), tier);
                        put(st, res, &ns, body);
                    }
                    3 => remove(st, Res::Deployment, &ns, &name),
                    4 | 5 => {
                        let target = format!("w{}", (k + 3 * rng.below(2)) % 12);
                        let selector = match rng.below(3) {
                            0 => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                        "labelSelector": {"matchLabels": {"tier": "a"}}}),
                            1 => json!({"apiVersion": "apps/v1", "kind": if rng.below(2) == 0 { "StatefulSet" } else { "DaemonSet" }, "name": target}),
                            _ => json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": target}),
                        };
                        let clusters: Vec<&str> =
                            CLUSTERS.iter().copied().filter(|_| rng.below(3) > 0).collect();
                        let (divided, priority) = (rng.below(2) == 0, rng.below(3));
                        let p = policy("PropagationPolicy", &format!("p{}", rng.below(6)), selector, &clusters, divided, priority);
                        put(st, Res::PropagationPolicy, &ns, p);
                    }
                    6 => match rng.below(3) {
                        0 => remove(st, Res::PropagationPolicy, &ns, &format!("p{}", rng.below(6))),
                        1 => remove(st, Res::OverridePolicy, &ns, &format!("o{}", rng.below(3))),
                        _ => {
                            let selectors = match rng.below(3) {
                                0 => json!([]),
                                1 => json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}]),
                                _ => json!([{"apiVersion": "apps/v1", "kind": "Deployment",
                                             "labelSelector": {"matchLabels": {"tier": "b"}}}]),
                            };
                            let cluster = CLUSTERS[rng.below(3) as usize];
                            let o = json!({"apiVersion": "policy.karmada.io/v1alpha1", "kind": "OverridePolicy",
                                "metadata": {"name": format!("o{}", rng.below(3))},
                                "spec": {"resourceSelectors": selectors, "overrideRules": [
                                    {"targetCluster": {"clusterNames": [cluster]}, "overriders": {
                                        "imageOverrider": [{"component": "Tag", "operator": "replace", "value": format!("v{}", rng.below(9))}],
                                        "labelsOverrider": [{"operator": "add", "value": {"cluster": cluster}}]}}]}});
                            put(st, Res::OverridePolicy, &ns, o);
                        }
                    },
                    7 => {
                        let c = CLUSTERS[rng.below(3) as usize];
                        if let Some(c) = st.clusters.get_mut(c) {
                            c.ready = !c.ready;
                        }
                    }
                    8 => {
                        let selector = json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns,
                                              "labelSelector": {"matchLabels": {"tier": "b"}}});
                        let p = policy("ClusterPropagationPolicy", "everywhere-b", selector, &CLUSTERS, true, 0);
                        if rng.below(2) == 0 {
                            put(st, Res::ClusterPropagationPolicy, "", p);
                        } else {
                            remove(st, Res::ClusterPropagationPolicy, "", "everywhere-b");
                        }
                    }
                    _ => {
                        match rng.below(8) {
                            0 => remove(st, Res::Namespace, "", &ns),
                            1..=3 => remove(st, Res::DaemonSet, &ns, &name),
                            _ => remove(st, Res::StatefulSet, &ns, &name),
                        }
                    }
                }
                let before = st.memo.stats.starts_over;
                reconcile(st, Instant::now());
                incremental += u64::from(st.memo.stats.starts_over == before);
                let decided = outcome(st);
                contended |= st.placements.values().any(|p| p.ready < p.replicas);
                // Start over (as when clusters move), with the same history.
                st.memo.clusters = None;
                reconcile(st, Instant::now());
                let again = outcome(st);
                if again != decided {
                    let differ: Vec<String> = ["placements", "deployments", "statefulsets", "daemonsets", "works", "bindings", "clusters", "traffic"]
                        .iter()
                        .filter(|k| again[**k] != decided[**k])
                        .map(|k| format!("{k}:\n  incremental {}\n  whole store {}", decided[*k], again[*k]))
                        .collect();
                    panic!("step {step} (op {op}, {ns}/{name}) decided differently:\n{}", differ.join("\n"));
                }
            }
            // The sequence exercised what it claims to: mostly incremental runs, replicas that
            // did not fit, bindings.
            assert!(incremental > 200, "{incremental} of 400 runs were incremental");
            assert!(contended, "no step left replicas pending");
            let o = outcome(st);
            assert!(!o["bindings"].as_array().unwrap().is_empty());
        });
    }

    /// A write costs what it touches: scheduling work follows the workloads a change can affect,
    /// not how many the federation holds.
    #[test]
    fn a_write_schedules_only_the_workloads_it_can_affect() {
        let sim = Sim::new(SimConfig::demo());
        sim.with_state(|st| {
            st.store.auto_create_namespaces = true;
            for i in 0..40 {
                let ns = format!("g{}", i % 4);
                put(st, Res::Deployment, &ns, workload("Deployment", &format!("w{i}"), 1, 100, "a"));
                let selector = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("w{i}")});
                put(st, Res::PropagationPolicy, &ns, policy("PropagationPolicy", &format!("p{i}"), selector, &CLUSTERS, true, 0));
            }
            reconcile(st, Instant::now());
            let scheduled = |st: &State| st.memo.stats.scheduled;
            let step = |st: &mut State, what: &str, write: &dyn Fn(&mut State), expected: u64, over: bool| {
                let (before, starts) = (scheduled(st), st.memo.stats.starts_over);
                write(st);
                reconcile(st, Instant::now());
                assert_eq!(scheduled(st) - before, expected, "{what}");
                assert_eq!(st.memo.stats.starts_over - starts, u64::from(over), "{what}");
            };
            step(st, "one scaled", &|st| put(st, Res::Deployment, "g1", workload("Deployment", "w5", 3, 100, "a")), 1, false);
            step(st, "one policy changed", &|st| {
                let selector = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "w6"});
                put(st, Res::PropagationPolicy, "g2", policy("PropagationPolicy", "p6", selector, &["edge-a"], true, 0));
            }, 1, false);
            step(st, "a policy moved from w7 to w11", &|st| {
                let selector = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "w11"});
                put(st, Res::PropagationPolicy, "g3", policy("PropagationPolicy", "p7", selector, &["edge-b"], false, 1));
            }, 2, false);
            step(st, "a label selector in one namespace", &|st| {
                let selector = json!({"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"tier": "a"}}});
                put(st, Res::PropagationPolicy, "g0", policy("PropagationPolicy", "all-a", selector, &["edge-b"], false, 5));
            }, 10, false);
            step(st, "one deleted", &|st| remove(st, Res::Deployment, "g1", "w9"), 0, false);
            step(st, "a cluster lost", &|st| {
                if let Some(c) = st.clusters.get_mut("edge-b") {
                    c.ready = false;
                }
            }, 39, true);
            assert!(!st.placements.contains_key(&ObjKey::new(Res::Deployment, "g1", "w9")));
            let moved = &st.placements[&ObjKey::new(Res::Deployment, "g0", "w4")];
            assert_eq!((moved.policy.as_deref(), moved.ready), (Some("all-a"), 0), "{moved:?}");
        });
    }
}
