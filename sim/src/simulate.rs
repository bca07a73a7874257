//! The simulation: after every write, decide where each Deployment runs (its PropagationPolicy,
//! the clusters' readiness and capacity) and write the results back as Deployment and Cluster
//! status, like Karmada's scheduler, member kubelets and status controllers together would.
//! Synchronous and deterministic: the same objects always give the same placement.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    SimCluster,
    reconcile::Workload,
    store::{label_selector, matches_all, now_rfc3339, str_at},
};

/// Extended resource name of GPUs, as the NVIDIA device plugin reports it.
pub(crate) const GPU: &str = "nvidia.com/gpu";
const PODS_PER_NODE: u64 = 110;
const KUBERNETES_VERSION: &str = "v1.33.0";
/// Replicas per deployment are capped here, so sums over clusters cannot overflow.
pub(crate) const MAX_REPLICAS: u64 = 100_000;

/// Amounts of the resources the simulation accounts for, in integer units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub(crate) struct Resources {
    pub cpu_milli: u64,
    pub memory: u64,
    pub gpu: u64,
    pub pods: u64,
}

impl Resources {
    pub(crate) fn times(self, n: u64) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_mul(n),
            memory: self.memory.saturating_mul(n),
            gpu: self.gpu.saturating_mul(n),
            pods: self.pods.saturating_mul(n),
        }
    }

    pub(crate) fn plus(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_add(o.cpu_milli),
            memory: self.memory.saturating_add(o.memory),
            gpu: self.gpu.saturating_add(o.gpu),
            pods: self.pods.saturating_add(o.pods),
        }
    }

    pub(crate) fn minus(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_sub(o.cpu_milli),
            memory: self.memory.saturating_sub(o.memory),
            gpu: self.gpu.saturating_sub(o.gpu),
            pods: self.pods.saturating_sub(o.pods),
        }
    }

    /// How many copies of `self` fit into `free` (at most `limit`).
    pub(crate) fn fit_count(self, free: Resources, limit: u64) -> u64 {
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

/// The scheduling result for one workload, as `GET /sim/placements` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Placement {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub policy: Option<String>,
    pub scheduling: Option<&'static str>,
    pub replicas: u32,
    pub ready: u32,
    pub clusters: Vec<Share>,
}

/// Sums container requests (limits where a request is missing, as Kubernetes defaults them).
pub(crate) fn pod_requests(deployment: &Value) -> Resources {
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

/// The Ready clusters a placement's `clusterAffinity` allows (all clusters without one).
pub(crate) fn eligible_clusters(
    placement: &Value,
    clusters: &BTreeMap<String, ClusterState>,
    labels: &BTreeMap<&str, &Value>,
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
            let l = labels.get(n.as_str()).copied().unwrap_or(&Value::Null);
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
pub(crate) fn spread(
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

pub(crate) fn assign(
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
pub(crate) fn transition(
    old: &Value,
    ty: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
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

pub(crate) fn deployment_status(w: &Workload, old: &Value, now: &str) -> Value {
    let desired: u32 = w.targets.iter().map(|t| t.1).sum();
    let ready: u32 = w.placed.iter().sum();
    let (available, progressing) = match &w.policy {
        None => (
            condition(
                old,
                "Available",
                false,
                "NotPropagated",
                "no PropagationPolicy selects this deployment",
                now,
            ),
            condition(
                old,
                "Progressing",
                false,
                "NotPropagated",
                "waiting for a PropagationPolicy",
                now,
            ),
        ),
        Some(_) if ready >= desired && (desired > 0 || w.replicas == 0) => (
            condition(
                old,
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            ),
            condition(
                old,
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                "ReplicaSet has successfully progressed.",
                now,
            ),
        ),
        Some(_) if desired == 0 && w.replicas > 0 => (
            condition(
                old,
                "Available",
                false,
                "NoReadyCluster",
                "no Ready cluster matches the placement",
                now,
            ),
            condition(
                old,
                "Progressing",
                true,
                "ReplicaSetUpdated",
                "waiting for a Ready cluster",
                now,
            ),
        ),
        Some(_) => (
            condition(
                old,
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            ),
            condition(
                old,
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
pub(crate) fn statefulset_status(w: &Workload) -> Value {
    let desired: u32 = w.targets.iter().map(|t| t.1).sum();
    let ready: u32 = w.placed.iter().sum();
    let revision = format!("{}-{}", w.key.name, w.generation);
    json!({
        "observedGeneration": w.generation,
        "replicas": desired, "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": desired, "updatedReplicas": desired,
        "currentRevision": revision, "updateRevision": revision, "collisionCount": 0,
    })
}

/// A DaemonSet's status as Karmada aggregates its members': one pod per node of each cluster it
/// runs on, those that fit ready.
pub(crate) fn daemonset_status(w: &Workload) -> Value {
    let desired: u32 = w.targets.iter().map(|t| t.1).sum();
    let ready: u32 = w.placed.iter().sum();
    let mut s = json!({
        "observedGeneration": w.generation,
        "desiredNumberScheduled": desired, "currentNumberScheduled": desired,
        "updatedNumberScheduled": desired, "numberMisscheduled": 0,
        "numberReady": ready, "numberAvailable": ready,
    });
    if desired > ready {
        s["numberUnavailable"] = json!(desired - ready);
    }
    s
}

pub(crate) fn cluster_status(c: &ClusterState) -> Value {
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
