//! The simulation: after every write, decide where each Deployment runs (its PropagationPolicy,
//! the clusters' readiness and capacity) and write the results back as Deployment and Cluster
//! status, like Karmada's scheduler, member kubelets and status controllers together would.
//! Synchronous and deterministic: the same objects always give the same placement.

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    SimCluster, State,
    store::{ObjKey, Res, label_selector, matches_all, now_rfc3339, str_at},
};

/// Extended resource name of GPUs, as the NVIDIA device plugin reports it.
pub(crate) const GPU: &str = "nvidia.com/gpu";
const PODS_PER_NODE: u64 = 110;
const KUBERNETES_VERSION: &str = "v1.33.0";
/// Replicas per deployment are capped here, so sums over clusters cannot overflow.
const MAX_REPLICAS: u64 = 100_000;

/// Amounts of the resources the simulation accounts for, in integer units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Resources {
    pub cpu_milli: u64,
    pub memory: u64,
    pub gpu: u64,
    pub pods: u64,
}

impl Resources {
    fn times(self, n: u64) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_mul(n),
            memory: self.memory.saturating_mul(n),
            gpu: self.gpu.saturating_mul(n),
            pods: self.pods.saturating_mul(n),
        }
    }

    fn plus(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_add(o.cpu_milli),
            memory: self.memory.saturating_add(o.memory),
            gpu: self.gpu.saturating_add(o.gpu),
            pods: self.pods.saturating_add(o.pods),
        }
    }

    fn minus(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_sub(o.cpu_milli),
            memory: self.memory.saturating_sub(o.memory),
            gpu: self.gpu.saturating_sub(o.gpu),
            pods: self.pods.saturating_sub(o.pods),
        }
    }

    /// How many copies of `self` fit into `free` (at most `limit`).
    fn fit_count(self, free: Resources, limit: u64) -> u64 {
        [
            (self.cpu_milli, free.cpu_milli),
            (self.memory, free.memory),
            (self.gpu, free.gpu),
            (self.pods, free.pods),
        ]
        .into_iter()
        .filter(|(need, _)| *need > 0)
        .map(|(need, have)| have / need)
        .fold(limit, u64::min)
    }

    /// A Kubernetes `ResourceList` in canonical quantities; zero entries left out unless `all`.
    pub fn resource_list(self, all: bool) -> Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: u64, s: String| {
            if all || v > 0 {
                m.insert(k.to_string(), json!(s));
            }
        };
        put("cpu", self.cpu_milli, format_cpu(self.cpu_milli));
        put("memory", self.memory, format_bytes(self.memory));
        put("pods", self.pods, self.pods.to_string());
        if all && self.gpu == 0 {
            return Value::Object(m);
        }
        put(GPU, self.gpu, self.gpu.to_string());
        Value::Object(m)
    }
}

/// Parses a Kubernetes quantity (`250m`, `1.5`, `16Gi`, `1e3`, `2k`) into its value.
pub(crate) fn parse_quantity(s: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let s = s.trim();
    let plain = |n: &str| {
        let ok = !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
        n.parse::<f64>()
            .ok()
            .filter(|v| ok && v.is_finite() && *v >= 0.0)
    };
    SUFFIXES
        .iter()
        .find_map(|(suf, mult)| {
            let num = s.strip_suffix(suf)?;
            let digits_only = num.chars().all(|c| c.is_ascii_digit() || "+-.".contains(c));
            digits_only.then(|| plain(num).map(|v| v * mult)).flatten()
        })
        .or_else(|| plain(s))
}

/// A quantity given as a JSON number or string.
fn quantity(v: &Value) -> Option<f64> {
    v.as_f64()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .or_else(|| v.as_str().and_then(parse_quantity))
}

fn format_cpu(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn format_bytes(b: u64) -> String {
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        if b > 0 && b.is_multiple_of(1u64 << shift) {
            return format!("{}{suffix}", b >> shift);
        }
    }
    b.to_string()
}

/// The simulated state of one member cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterState {
    pub allocatable: Resources,
    pub nodes: u32,
    pub ready: bool,
    /// Not Ready because nothing reports on it (Ready=Unknown, the `unreachable` taint), rather
    /// than reported unhealthy (Ready=False, the `not-ready` taint).
    pub unknown: bool,
    /// When `ready` last changed (the Ready condition's lastTransitionTime).
    pub since: String,
    pub allocated: Resources,
    pub allocating: Resources,
}

impl ClusterState {
    pub fn from_config(c: &SimCluster) -> ClusterState {
        let nodes = c.nodes.max(1);
        ClusterState {
            allocatable: Resources {
                cpu_milli: (c.cpu.max(0.0) * 1000.0).round() as u64,
                memory: parse_quantity(&c.memory).unwrap_or(0.0) as u64,
                gpu: u64::from(c.gpus),
                pods: PODS_PER_NODE * u64::from(nodes),
            },
            nodes,
            ready: c.ready,
            unknown: false,
            since: now_rfc3339(),
            allocated: Resources::default(),
            allocating: Resources::default(),
        }
    }
}

/// The Cluster object a member cluster is registered as (status comes from [`reconcile`]).
pub(crate) fn cluster_object(c: &SimCluster) -> Value {
    json!({
        "apiVersion": "cluster.karmada.io/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": c.name, "labels": c.labels},
        "spec": {
            "syncMode": "Push",
            "apiEndpoint": format!("https://{}.sim.invalid:6443", c.name),
            "id": uuid::Uuid::new_v4().to_string(),
        },
    })
}

/// Where one deployment runs: `desired` replicas were assigned to `cluster`, `ready` of them fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Share {
    pub cluster: String,
    pub desired: u32,
    pub ready: u32,
}

/// The scheduling result for one deployment, as `GET /sim/placements` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Placement {
    pub namespace: String,
    pub name: String,
    pub policy: Option<String>,
    pub scheduling: Option<&'static str>,
    pub replicas: u32,
    pub ready: u32,
    pub clusters: Vec<Share>,
}

/// A Deployment, reduced to what the simulation needs.
struct Workload {
    key: ObjKey,
    seq: u64,
    replicas: u32,
    per_replica: Resources,
    labels: Value,
    generation: i64,
    status: Value,
    policy: Option<String>,
    /// `policy` is a ClusterPropagationPolicy.
    cluster_policy: bool,
    scheduling: Option<&'static str>,
    targets: Vec<(String, u32)>,
    placed: BTreeMap<String, u32>,
}

/// Sums container requests (limits where a request is missing, as Kubernetes defaults them).
fn pod_requests(deployment: &Value) -> Resources {
    let containers = deployment
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array);
    let mut total = Resources {
        pods: 1,
        ..Resources::default()
    };
    for c in containers.into_iter().flatten() {
        let get = |name: &str| {
            let r = &c["resources"];
            quantity(&r["requests"][name])
                .or_else(|| quantity(&r["limits"][name]))
                .unwrap_or(0.0)
        };
        total = total.plus(Resources {
            cpu_milli: (get("cpu") * 1000.0).ceil() as u64,
            memory: get("memory").ceil() as u64,
            gpu: get(GPU).ceil() as u64,
            pods: 0,
        });
    }
    total
}

/// Does this resource selector of a PropagationPolicy select the deployment? Returns how
/// specific the match is (name 2, label selector 1, kind only 0), Karmada's tie-breaker.
fn selector_match(sel: &Value, w: &Workload) -> Option<u8> {
    let ns = str_at(sel, "/namespace");
    let ns_ok = ns.is_empty() || ns == w.key.ns;
    if str_at(sel, "/apiVersion") != "apps/v1"
        || str_at(sel, "/kind") != w.key.res.meta().kind
        || !ns_ok
    {
        return None;
    }
    match str_at(sel, "/name") {
        "" => {}
        n if n == w.key.name => return Some(2),
        _ => return None,
    }
    match sel.get("labelSelector") {
        None | Some(Value::Null) => Some(0),
        Some(ls) => label_selector(ls)
            .filter(|r| matches_all(r, &w.labels))
            .map(|_| 1),
    }
}

/// The PropagationPolicies of a reconcile, indexed so that picking one for a workload looks only
/// at the policies that could select it: those naming it, and those of its namespace that select
/// by labels or kind. (A scan of every policy per workload made each write quadratic.)
struct PolicyIndex<'a> {
    by_name: std::collections::HashMap<(&'a str, &'a str), Vec<&'a Value>>,
    generic: std::collections::HashMap<&'a str, Vec<&'a Value>>,
}

impl<'a> PolicyIndex<'a> {
    fn new(policies: Vec<&'a Value>) -> Self {
        let mut index = PolicyIndex {
            by_name: Default::default(),
            generic: Default::default(),
        };
        for p in policies {
            let ns = str_at(p, "/metadata/namespace");
            let sels = p
                .pointer("/spec/resourceSelectors")
                .and_then(Value::as_array);
            let mut names: Vec<&'a str> = Vec::new();
            let mut any_unnamed = false;
            for sel in sels.into_iter().flatten() {
                match str_at(sel, "/name") {
                    "" => any_unnamed = true,
                    n => names.push(n),
                }
            }
            if any_unnamed {
                index.generic.entry(ns).or_default().push(p);
            }
            names.sort_unstable();
            names.dedup();
            for n in names {
                index.by_name.entry((ns, n)).or_default().push(p);
            }
        }
        index
    }

    /// Picks the PropagationPolicy Karmada would: highest `spec.priority`, then the most
    /// specific selector, then the alphabetically first name.
    fn pick(&self, w: &Workload) -> Option<&'a Value> {
        let named = self.by_name.get(&(w.key.ns.as_str(), w.key.name.as_str()));
        let generic = self.generic.get(w.key.ns.as_str());
        Self::best(named.into_iter().chain(generic).flatten(), w)
    }

    /// Picks among ClusterPropagationPolicies (cluster-scoped: indexed under no namespace; a
    /// selector's own `namespace` narrows it), by the same rules.
    fn pick_across(&self, w: &Workload) -> Option<&'a Value> {
        let named = self.by_name.get(&("", w.key.name.as_str()));
        let generic = self.generic.get("");
        Self::best(named.into_iter().chain(generic).flatten(), w)
    }

    fn best<'b>(candidates: impl Iterator<Item = &'b &'a Value>, w: &Workload) -> Option<&'a Value>
    where
        'a: 'b,
    {
        candidates
            .filter_map(|p| {
                let sels = p
                    .pointer("/spec/resourceSelectors")
                    .and_then(Value::as_array)?;
                let best = sels.iter().filter_map(|s| selector_match(s, w)).max()?;
                let priority = p
                    .pointer("/spec/priority")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                Some((
                    priority,
                    best,
                    std::cmp::Reverse(str_at(p, "/metadata/name")),
                    *p,
                ))
            })
            .max_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)))
            .map(|t| t.3)
    }
}

/// The Ready clusters a placement's `clusterAffinity` allows (all clusters without one).
fn eligible_clusters(
    placement: &Value,
    clusters: &BTreeMap<String, ClusterState>,
    labels: &BTreeMap<String, Value>,
) -> Vec<String> {
    let aff = &placement["clusterAffinity"];
    let names: Vec<&str> = aff["clusterNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let exclude: Vec<&str> = aff["exclude"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let selector = match aff.get("labelSelector") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(ls) => label_selector(ls),
    };
    clusters
        .iter()
        .filter(|(n, c)| c.ready && (names.is_empty() || names.contains(&n.as_str())))
        .filter(|(n, _)| !exclude.contains(&n.as_str()))
        .filter(|(n, _)| {
            let l = labels.get(*n).unwrap_or(&Value::Null);
            selector.as_ref().is_some_and(|s| matches_all(s, l))
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// Splits `total` by integer weights (largest remainder; ties go to the earlier cluster).
pub(crate) fn split_by_weights(total: u32, weights: &[(String, u64)]) -> Vec<(String, u32)> {
    let sum: u128 = weights.iter().map(|w| u128::from(w.1)).sum();
    if sum == 0 {
        let even: Vec<_> = weights.iter().map(|(n, _)| (n.clone(), 1)).collect();
        return if even.is_empty() {
            Vec::new()
        } else {
            split_by_weights(total, &even)
        };
    }
    let mut out: Vec<(String, u32, u128)> = weights
        .iter()
        .map(|(n, w)| {
            let exact = u128::from(total) * u128::from(*w);
            (n.clone(), (exact / sum) as u32, exact % sum)
        })
        .collect();
    let mut left = total - out.iter().map(|o| o.1).sum::<u32>();
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|a, b| out[*b].2.cmp(&out[*a].2).then(a.cmp(b)));
    for i in order {
        if left == 0 {
            break;
        }
        out[i].1 += 1;
        left -= 1;
    }
    out.into_iter().map(|(n, r, _)| (n, r)).collect()
}

/// Assigns replicas to clusters by the placement's `replicaScheduling`: absent means
/// Duplicated (Karmada's behaviour); Divided spreads evenly, by static weights, by how many
/// replicas each cluster could hold (`dynamicWeight: AvailableReplicas`), or packs them
/// (`Aggregated`) into as few clusters as possible.
/// `spreadConstraints` by `cluster`, as Karmada's scheduler applies them: at most `maxGroups`
/// clusters (those that fit the most replicas first, then by name), and none at all when fewer
/// than `minGroups` are eligible (the workload is not scheduled). Other fields are not simulated.
fn spread(
    placement: &Value,
    w: &Workload,
    mut eligible: Vec<String>,
    clusters: &BTreeMap<String, ClusterState>,
) -> Vec<String> {
    let Some(by_cluster) = placement["spreadConstraints"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["spreadByField"] == "cluster"))
    else {
        return eligible;
    };
    let min = by_cluster["minGroups"].as_u64().unwrap_or(0) as usize;
    if eligible.len() < min {
        return Vec::new();
    }
    if let Some(max) = by_cluster["maxGroups"].as_u64().map(|m| m as usize) {
        let room = |c: &String| {
            clusters.get(c).map_or(0, |s| {
                w.per_replica.fit_count(s.allocatable, u64::from(u32::MAX))
            })
        };
        eligible.sort_by(|a, b| room(b).cmp(&room(a)).then(a.cmp(b)));
        eligible.truncate(max);
        eligible.sort();
    }
    eligible
}

fn assign(
    placement: &Value,
    w: &Workload,
    eligible: &[String],
    clusters: &BTreeMap<String, ClusterState>,
) -> (&'static str, Vec<(String, u32)>) {
    let rs = &placement["replicaScheduling"];
    if rs.is_null() || str_at(rs, "/replicaSchedulingType") == "Duplicated" {
        return (
            "Duplicated",
            eligible.iter().map(|c| (c.clone(), w.replicas)).collect(),
        );
    }
    let capacity = |c: &String| {
        clusters.get(c).map_or(0, |s| {
            w.per_replica.fit_count(s.allocatable, u64::from(u32::MAX))
        })
    };
    let pref = str_at(rs, "/replicaDivisionPreference");
    let weights: Vec<(String, u64)> = if pref == "Aggregated" {
        let mut by_cap: Vec<(String, u64)> =
            eligible.iter().map(|c| (c.clone(), capacity(c))).collect();
        by_cap.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut left = u64::from(w.replicas);
        let mut out = Vec::new();
        for (c, cap) in by_cap {
            let take = cap.min(left);
            left -= take;
            out.push((c, take));
        }
        if let Some(first) = out.first_mut() {
            first.1 += left;
        }
        out.sort();
        return (
            "Divided",
            out.into_iter().map(|(c, n)| (c, n as u32)).collect(),
        );
    } else if str_at(rs, "/weightPreference/dynamicWeight") == "AvailableReplicas" {
        eligible.iter().map(|c| (c.clone(), capacity(c))).collect()
    } else if let Some(list) = rs
        .pointer("/weightPreference/staticWeightList")
        .and_then(Value::as_array)
    {
        eligible
            .iter()
            .map(|c| {
                let weight = list
                    .iter()
                    .filter(|e| {
                        e.pointer("/targetCluster/clusterNames")
                            .and_then(Value::as_array)
                            .is_some_and(|ns| ns.iter().any(|n| n.as_str() == Some(c.as_str())))
                    })
                    .filter_map(|e| e["weight"].as_u64())
                    .max()
                    .unwrap_or(0);
                (c.clone(), weight)
            })
            .collect()
    } else {
        eligible.iter().map(|c| (c.clone(), 1)).collect()
    };
    ("Divided", split_by_weights(w.replicas, &weights))
}

/// A status condition that keeps its timestamps while its status (and reason) stay the same.
/// A condition as Kubernetes writes it (`metav1.Condition`): its `lastTransitionTime` moves only
/// when its status does. `old` is the object's previous `conditions` list.
fn transition(old: &Value, ty: &str, ok: bool, reason: &str, message: &str, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = old
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == status))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    json!({"type": ty, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": since})
}

/// A Deployment's condition: [`transition`], plus `lastUpdateTime`, which moves whenever the
/// reason or message does. `old` is the previous status.
fn condition(old: &Value, ty: &str, ok: bool, reason: &str, message: &str, now: &str) -> Value {
    let mut c = transition(&old["conditions"], ty, ok, reason, message, now);
    let unchanged = old["conditions"].as_array().and_then(|cs| {
        cs.iter().find(|p| {
            p["type"] == ty
                && p["status"] == c["status"]
                && p["reason"] == reason
                && p["message"] == message
        })
    });
    c["lastUpdateTime"] = match unchanged {
        Some(p) if p["lastUpdateTime"].is_string() => p["lastUpdateTime"].clone(),
        _ => json!(now),
    };
    c
}

fn deployment_status(w: &Workload, now: &str) -> Value {
    let desired: u32 = w.targets.iter().map(|t| t.1).sum();
    let ready: u32 = w.placed.values().sum();
    let (available, progressing) = match &w.policy {
        None => (
            condition(
                &w.status,
                "Available",
                false,
                "NotPropagated",
                "no PropagationPolicy selects this deployment",
                now,
            ),
            condition(
                &w.status,
                "Progressing",
                false,
                "NotPropagated",
                "waiting for a PropagationPolicy",
                now,
            ),
        ),
        Some(_) if ready >= desired && (desired > 0 || w.replicas == 0) => (
            condition(
                &w.status,
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            ),
            condition(
                &w.status,
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                "ReplicaSet has successfully progressed.",
                now,
            ),
        ),
        Some(_) if desired == 0 && w.replicas > 0 => (
            condition(
                &w.status,
                "Available",
                false,
                "NoReadyCluster",
                "no Ready cluster matches the placement",
                now,
            ),
            condition(
                &w.status,
                "Progressing",
                true,
                "ReplicaSetUpdated",
                "waiting for a Ready cluster",
                now,
            ),
        ),
        Some(_) => (
            condition(
                &w.status,
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            ),
            condition(
                &w.status,
                "Progressing",
                true,
                "ReplicaSetUpdated",
                "some replicas do not fit on their clusters",
                now,
            ),
        ),
    };
    let mut s = json!({
        "observedGeneration": w.generation,
        "replicas": desired, "updatedReplicas": desired,
        "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [available, progressing],
    });
    if desired > ready {
        s["unavailableReplicas"] = json!(desired - ready);
    }
    s
}

/// A StatefulSet's status as Karmada aggregates its members': every replica on a Ready cluster
/// is current, updated and ready (the sim runs no pods to roll).
fn statefulset_status(w: &Workload) -> Value {
    let desired: u32 = w.targets.iter().map(|t| t.1).sum();
    let ready: u32 = w.placed.values().sum();
    let revision = format!("{}-{}", w.key.name, w.generation);
    json!({
        "observedGeneration": w.generation,
        "replicas": desired, "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": desired, "updatedReplicas": desired,
        "currentRevision": revision, "updateRevision": revision, "collisionCount": 0,
    })
}

fn cluster_status(c: &ClusterState) -> Value {
    let (status, reason, message) = if c.ready {
        (
            "True",
            "ClusterReady",
            "cluster is healthy and ready to accept workloads",
        )
    } else if c.unknown {
        (
            "Unknown",
            "ClusterStatusUnknown",
            "Cluster status controller stopped posting cluster status.",
        )
    } else {
        (
            "False",
            "ClusterNotReady",
            "cluster is not ready (set by smo sim)",
        )
    };
    let ready = json!({"type": "Ready", "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": c.since});
    json!({
        "kubernetesVersion": KUBERNETES_VERSION,
        "apiEnablements": [
            {"groupVersion": "v1", "resources": [
                {"name": "services", "kind": "Service"}, {"name": "pods", "kind": "Pod"}]},
            {"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]},
        ],
        "conditions": [
            ready,
            {"type": "CompleteAPIEnablements", "status": "True", "reason": "Complete",
             "message": "collected complete APIEnablements from the cluster", "lastTransitionTime": c.since},
        ],
        "nodeSummary": {"totalNum": c.nodes, "readyNum": if c.ready { c.nodes } else { 0 }},
        "resourceSummary": {
            "allocatable": c.allocatable.resource_list(true),
            "allocated": c.allocated.resource_list(false),
            "allocating": c.allocating.resource_list(false),
        },
    })
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

/// Karmada's ResourceBinding of a propagated Deployment: `<name>-deployment` in its namespace,
/// owned by it, with the scheduling result in `spec.clusters` and each member's status in
/// `status.aggregatedStatus`. Bindings of workloads no policy selects any more are deleted.
fn bind(st: &mut State, workloads: &[Workload], stamp: &str) {
    let mut wanted = std::collections::BTreeSet::new();
    for w in workloads.iter().filter(|w| w.policy.is_some()) {
        let kind = w.key.res.meta().kind;
        let name = format!("{}-{}", w.key.name, kind.to_ascii_lowercase());
        wanted.insert((w.key.ns.clone(), name.clone()));
        let Some(d) = st.store.get(&w.key) else {
            continue;
        };
        let (uid, rv) = (
            d["metadata"]["uid"].clone(),
            d["metadata"]["resourceVersion"].clone(),
        );
        let key = ObjKey::new(Res::ResourceBinding, &w.key.ns, &name);
        // Unchanged inputs, binding still there: nothing to write (a reconcile visits every
        // workload on every write; most of them did not move).
        let inputs = format!("{rv}|{:?}|{:?}|{}", w.targets, w.placed, w.replicas);
        let slot = (w.key.ns.clone(), name.clone());
        if st.bound.get(&slot) == Some(&inputs) && st.store.get(&key).is_some() {
            continue;
        }
        st.bound.insert(slot, inputs);
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
            .map(|(c, n)| {
                let ready = w.placed.get(c).copied().unwrap_or(0);
                json!({
                    "clusterName": c, "applied": true,
                    "health": if ready >= *n { "Healthy" } else { "Unhealthy" },
                    "status": {"replicas": n, "readyReplicas": ready, "availableReplicas": ready,
                               "updatedReplicas": n, "observedGeneration": w.generation},
                })
            })
            .collect();
        let all_ready = w
            .targets
            .iter()
            .all(|(c, n)| w.placed.get(c).copied().unwrap_or(0) >= *n);
        let old = st
            .store
            .get(&key)
            .map(|b| b["status"]["conditions"].clone())
            .unwrap_or(Value::Null);
        let cond =
            |kind: &str, ok: bool, reason: &str| transition(&old, kind, ok, reason, "", stamp);
        let status = json!({
            "schedulerObservedGeneration": w.generation,
            "aggregatedStatus": aggregated,
            "conditions": [
                cond("Scheduled", scheduled, if scheduled { "Success" } else { "NoClusterFit" }),
                cond("FullyApplied", scheduled && all_ready, if all_ready { "FullyAppliedSuccess" } else { "FullyAppliedFailed" }),
            ],
        });
        if st.store.get(&key).is_none() {
            let body = json!({
                "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
                "metadata": {
                    "name": name, "namespace": w.key.ns,
                    "labels": if w.cluster_policy {
                        json!({"clusterpropagationpolicy.karmada.io/name": w.policy})
                    } else {
                        json!({"propagationpolicy.karmada.io/name": w.policy})
                    },
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": w.key.name,
                                         "uid": uid, "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": spec,
            });
            let _ = st.store.create(Res::ResourceBinding, &w.key.ns, body);
        } else {
            st.store.set_field(&key, "spec", spec);
        }
        st.store.set_status(&key, status);
    }
    let stale: Vec<ObjKey> = st
        .store
        .list(Res::ResourceBinding, None)
        .iter()
        .map(|b| {
            ObjKey::new(
                Res::ResourceBinding,
                str_at(b, "/metadata/namespace"),
                str_at(b, "/metadata/name"),
            )
        })
        .filter(|k| !wanted.contains(&(k.ns.clone(), k.name.clone())))
        .collect();
    for k in stale {
        let _ = st.store.delete(&k);
    }
    st.bound.retain(|slot, _| wanted.contains(slot));
}

/// Recomputes every placement and writes statuses. Replicas already running keep their place
/// (oldest deployment first), then new replicas are placed in creation order; whatever does
/// not fit stays pending and counts as `allocating` on its cluster.
pub(crate) fn reconcile(st: &mut State, now: Instant) {
    st.stale = false;
    sync_clusters(st);
    let stamp = now_rfc3339();
    let labels: BTreeMap<String, Value> = st
        .store
        .list(Res::Cluster, None)
        .iter()
        .map(|c| {
            (
                str_at(c, "/metadata/name").to_string(),
                c["metadata"]["labels"].clone(),
            )
        })
        .collect();
    let policies = PolicyIndex::new(st.store.list(Res::PropagationPolicy, None));
    // ClusterPropagationPolicies select across namespaces; a workload any PropagationPolicy
    // selects is never taken by one (Karmada's precedence).
    let cluster_policies = PolicyIndex::new(st.store.list(Res::ClusterPropagationPolicy, None));
    // StatefulSets are propagated, scheduled and given status as Deployments are.
    let mut workloads: Vec<Workload> = [Res::Deployment, Res::StatefulSet]
        .into_iter()
        .flat_map(|res| st.store.entries(res, None).map(move |e| (res, e)))
        .map(|(res, e)| Workload {
            key: ObjKey::new(
                res,
                str_at(&e.obj, "/metadata/namespace"),
                str_at(&e.obj, "/metadata/name"),
            ),
            seq: e.seq,
            replicas: e
                .obj
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .min(MAX_REPLICAS) as u32,
            per_replica: pod_requests(&e.obj),
            labels: e.obj["metadata"]["labels"].clone(),
            generation: e.obj["metadata"]["generation"].as_i64().unwrap_or(1),
            status: e.obj.get("status").cloned().unwrap_or(Value::Null),
            policy: None,
            cluster_policy: false,
            scheduling: None,
            targets: Vec::new(),
            placed: BTreeMap::new(),
        })
        .collect();
    workloads.sort_by_key(|w| w.seq);

    for w in &mut workloads {
        let picked = match policies.pick(w) {
            Some(p) => Some((p, false)),
            None => cluster_policies.pick_across(w).map(|p| (p, true)),
        };
        if let Some((p, cluster_wide)) = picked {
            let placement = &p["spec"]["placement"];
            let eligible = eligible_clusters(placement, &st.clusters, &labels);
            let eligible = spread(placement, w, eligible, &st.clusters);
            let (kind, targets) = assign(placement, w, &eligible, &st.clusters);
            w.cluster_policy = cluster_wide;
            w.policy = Some(str_at(p, "/metadata/name").to_string());
            w.scheduling = Some(kind);
            w.targets = targets.into_iter().filter(|t| t.1 > 0).collect();
        }
    }

    let mut free: BTreeMap<String, Resources> = st
        .clusters
        .iter()
        .filter(|(_, c)| c.ready)
        .map(|(n, c)| (n.clone(), c.allocatable))
        .collect();
    let previous = std::mem::take(&mut st.placements);
    for pass in 0..2 {
        for w in &mut workloads {
            let prev = previous.get(&(w.key.ns.clone(), w.key.name.clone()));
            for (cluster, desired) in &w.targets {
                let Some(f) = free.get_mut(cluster) else {
                    continue;
                };
                let placed = w.placed.get(cluster).copied().unwrap_or(0);
                let want = if pass == 0 {
                    let was = prev
                        .and_then(|p| p.clusters.iter().find(|s| &s.cluster == cluster))
                        .map_or(0, |s| s.ready);
                    was.min(*desired)
                } else {
                    desired - placed
                };
                let n = w.per_replica.fit_count(*f, u64::from(want)) as u32;
                *f = f.minus(w.per_replica.times(u64::from(n)));
                w.placed.insert(cluster.clone(), placed + n);
            }
        }
    }

    for c in st.clusters.values_mut() {
        c.allocated = Resources::default();
        c.allocating = Resources::default();
    }
    for w in &workloads {
        for (cluster, desired) in &w.targets {
            let ready = w.placed.get(cluster).copied().unwrap_or(0);
            if let Some(c) = st.clusters.get_mut(cluster) {
                c.allocated = c.allocated.plus(w.per_replica.times(u64::from(ready)));
                c.allocating = c
                    .allocating
                    .plus(w.per_replica.times(u64::from(desired - ready)));
            }
        }
        let status = match w.key.res {
            Res::StatefulSet => statefulset_status(w),
            _ => deployment_status(w, &stamp),
        };
        st.store.set_status(&w.key, status);
        let shares: Vec<Share> = w
            .targets
            .iter()
            .map(|(c, d)| Share {
                cluster: c.clone(),
                desired: *d,
                ready: w.placed.get(c).copied().unwrap_or(0),
            })
            .collect();
        let ready_by_cluster = shares
            .iter()
            .map(|s| (s.cluster.clone(), s.ready))
            .collect();
        st.traffic
            .set_ready(&w.key.ns, &w.key.name, ready_by_cluster, now);
        st.placements.insert(
            (w.key.ns.clone(), w.key.name.clone()),
            Placement {
                namespace: w.key.ns.clone(),
                name: w.key.name.clone(),
                policy: w.policy.clone(),
                scheduling: w.scheduling,
                replicas: w.targets.iter().map(|t| t.1).sum(),
                ready: shares.iter().map(|s| s.ready).sum(),
                clusters: shares,
            },
        );
    }
    bind(st, &workloads, &stamp);
    let live = &st.placements;
    st.traffic.retain(|k| live.contains_key(k));

    for (name, c) in &st.clusters {
        let key = ObjKey::new(Res::Cluster, "", name);
        let status = cluster_status(c);
        // As Karmada's cluster controller taints them: `unreachable` when Ready is Unknown,
        // `not-ready` when it is False.
        let taints = match (c.ready, c.unknown) {
            (true, _) => Value::Null,
            (false, true) => {
                json!([{"key": "cluster.karmada.io/unreachable", "effect": "NoSchedule", "timeAdded": c.since}])
            }
            (false, false) => {
                json!([{"key": "cluster.karmada.io/not-ready", "effect": "NoSchedule", "timeAdded": c.since}])
            }
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
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("16Gi"), Some(17179869184.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
        assert_eq!(parse_quantity("500M"), Some(5e8));
        for bad in ["", "abc", "-1", "1Zi", "inf", "NaN", "1 Gi"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
        assert_eq!(quantity(&json!(2)), Some(2.0));
        assert_eq!(format_cpu(3500), "3500m");
        assert_eq!(format_cpu(8000), "8");
        assert_eq!(format_bytes(7 << 30), "7Gi");
        assert_eq!(format_bytes(1536 << 20), "1536Mi");
        assert_eq!(format_bytes(1000), "1000");
    }

    #[test]
    fn resources_fit_and_lists() {
        let per = Resources {
            cpu_milli: 500,
            memory: 1 << 30,
            gpu: 0,
            pods: 1,
        };
        let free = Resources {
            cpu_milli: 2000,
            memory: 16 << 30,
            gpu: 0,
            pods: 110,
        };
        assert_eq!(per.fit_count(free, 10), 4);
        assert_eq!(per.fit_count(free, 3), 3);
        let gpu = Resources { gpu: 1, ..per };
        assert_eq!(gpu.fit_count(free, 10), 0);
        assert_eq!(
            per.times(3).resource_list(false),
            json!({"cpu": "1500m", "memory": "3Gi", "pods": "3"})
        );
        assert_eq!(Resources::default().resource_list(false), json!({}));
    }

    #[test]
    fn pod_requests_fall_back_to_limits() {
        let d = json!({"spec": {"template": {"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"nvidia.com/gpu": 1}}},
            {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "no-resources"}]}}}});
        assert_eq!(
            pod_requests(&d),
            Resources {
                cpu_milli: 1250,
                memory: 1536 << 20,
                gpu: 1,
                pods: 1
            }
        );
    }

    #[test]
    fn weights_split_with_largest_remainder() {
        let w = |v: &[u64]| -> Vec<(String, u64)> {
            v.iter()
                .enumerate()
                .map(|(i, x)| (format!("c{i}"), *x))
                .collect()
        };
        let counts = |v: Vec<(String, u32)>| v.into_iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(counts(split_by_weights(5, &w(&[1, 1]))), vec![3, 2]);
        assert_eq!(counts(split_by_weights(4, &w(&[1, 3]))), vec![1, 3]);
        assert_eq!(counts(split_by_weights(3, &w(&[0, 0, 0]))), vec![1, 1, 1]);
        assert_eq!(counts(split_by_weights(0, &w(&[1]))), vec![0]);
        assert!(split_by_weights(3, &[]).is_empty());
    }
}
