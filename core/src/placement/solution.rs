//! The result of a solve: placement, objective, status and per-service explanations.

use serde::{Deserialize, Serialize};

use super::error::Resource;
use super::model::{Objective, Plan, SolveStatus, evaluate, loads};
use super::prepare::{ExclusionReason, Prepared};
use super::problem::Problem;

/// Replicas of a service on one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterShare {
    /// Cluster name.
    pub cluster: String,
    /// Replicas there.
    pub replicas: u32,
}

/// Where one service goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePlacement {
    /// Service name.
    pub service: String,
    /// Clusters in input order; exactly one unless the service is split for high availability.
    pub clusters: Vec<ClusterShare>,
}

/// A service whose clusters changed relative to the current placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// Service name.
    pub service: String,
    /// Clusters before.
    pub from: Vec<String>,
    /// Clusters after.
    pub to: Vec<String>,
}

/// Load on one cluster after placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterLoad {
    /// Cluster name.
    pub cluster: String,
    /// Cores placed by this solution.
    pub cpu_used: f64,
    /// Cores still free afterwards.
    pub cpu_left: f64,
    /// MiB placed.
    pub memory_used: f64,
    /// MiB still free afterwards.
    pub memory_left: f64,
}

/// A cluster the service could not use, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedCluster {
    /// Cluster name.
    pub cluster: String,
    /// Why.
    #[serde(flatten)]
    pub reason: ExclusionReason,
}

/// Why a service went where it went, for `smo placement solve` output and for users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Service name.
    pub service: String,
    /// Chosen clusters.
    pub clusters: Vec<String>,
    /// Clusters before (empty on first deployment).
    pub previous: Vec<String>,
    /// Whether it changed clusters.
    pub moved: bool,
    /// Free capacity left on each chosen cluster after the whole placement.
    pub capacity_left: Vec<ClusterLoad>,
    /// Clusters it could not use, with reasons.
    pub excluded: Vec<ExcludedCluster>,
    /// Usable clusters that were not chosen.
    pub other_usable: usize,
    /// One human sentence summarising the above.
    pub summary: String,
}

/// The optimiser's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// Optimal / feasible (with gap) / heuristic.
    pub status: SolveStatus,
    /// Objective of this placement, term by term.
    pub objective: Objective,
    /// Per service, in input order.
    pub placement: Vec<ServicePlacement>,
    /// Services whose clusters changed relative to `Problem::current` (services without a current
    /// placement are not listed).
    pub moved: Vec<Move>,
    /// Per cluster, in input order.
    pub clusters: Vec<ClusterLoad>,
    /// Per service, in input order.
    pub explanations: Vec<Explanation>,
}

impl Solution {
    /// The cluster holding most replicas of `service` (its only cluster unless split).
    pub fn cluster_of(&self, service: &str) -> Option<&str> {
        let p = self.placement.iter().find(|p| p.service == service)?;
        p.clusters
            .iter()
            .max_by(|a, b| a.replicas.cmp(&b.replicas).then(b.cluster.cmp(&a.cluster)))
            .map(|c| c.cluster.as_str())
    }
}

fn names(problem: &Problem, idx: impl IntoIterator<Item = usize>) -> Vec<String> {
    idx.into_iter()
        .map(|e| problem.clusters[e].name.clone())
        .collect()
}

/// Builds the public answer from an internal plan.
pub(crate) fn build(
    problem: &Problem,
    prep: &Prepared,
    plan: &Plan,
    status: SolveStatus,
) -> Solution {
    let objective = evaluate(problem, prep, plan);
    let (cpu, mem) = loads(problem, plan);
    let clusters: Vec<ClusterLoad> = problem
        .clusters
        .iter()
        .enumerate()
        .map(|(e, c)| ClusterLoad {
            cluster: c.name.clone(),
            cpu_used: cpu[e],
            cpu_left: prep.cpu_cap[e] - cpu[e],
            memory_used: mem[e],
            memory_left: prep.mem_cap[e] - mem[e],
        })
        .collect();
    let mut placement = Vec::with_capacity(plan.shares.len());
    let mut moved = Vec::new();
    let mut explanations = Vec::with_capacity(plan.shares.len());
    for (s, shares) in plan.shares.iter().enumerate() {
        let svc = &problem.services[s];
        let chosen: Vec<usize> = shares.iter().map(|&(e, _)| e).collect();
        let previous = &prep.current[s];
        let is_move = !previous.is_empty() && previous != &chosen;
        placement.push(ServicePlacement {
            service: svc.name.clone(),
            clusters: shares
                .iter()
                .map(|&(e, r)| ClusterShare {
                    cluster: problem.clusters[e].name.clone(),
                    replicas: r,
                })
                .collect(),
        });
        if is_move {
            moved.push(Move {
                service: svc.name.clone(),
                from: names(problem, previous.iter().copied()),
                to: names(problem, chosen.iter().copied()),
            });
        }
        let excluded: Vec<ExcludedCluster> = prep.exclusions[s]
            .iter()
            .map(|(e, r)| ExcludedCluster {
                cluster: problem.clusters[*e].name.clone(),
                reason: r.clone(),
            })
            .collect();
        let usable = prep.groups[prep.group_of[s]].cand.len();
        let other_usable = usable.saturating_sub(chosen.len());
        let capacity_left: Vec<ClusterLoad> = chosen.iter().map(|&e| clusters[e].clone()).collect();
        let summary = summary(
            problem,
            prep,
            s,
            shares,
            &capacity_left,
            &excluded,
            other_usable,
            is_move,
        );
        explanations.push(Explanation {
            service: svc.name.clone(),
            clusters: names(problem, chosen.iter().copied()),
            previous: names(problem, previous.iter().copied()),
            moved: is_move,
            capacity_left,
            excluded,
            other_usable,
            summary,
        });
    }
    Solution {
        status,
        objective,
        placement,
        moved,
        clusters,
        explanations,
    }
}

#[allow(clippy::too_many_arguments)]
fn summary(
    problem: &Problem,
    prep: &Prepared,
    s: usize,
    shares: &[(usize, u32)],
    left: &[ClusterLoad],
    excluded: &[ExcludedCluster],
    other_usable: usize,
    is_move: bool,
) -> String {
    let svc = &problem.services[s];
    let target: Vec<String> = shares
        .iter()
        .map(|&(e, r)| {
            if shares.len() > 1 {
                format!("{} ({r} replicas)", problem.clusters[e].name)
            } else {
                problem.clusters[e].name.clone()
            }
        })
        .collect();
    let mut out = format!("{} → {}", svc.name, target.join(" + "));
    let previous = &prep.current[s];
    if is_move {
        let why: Vec<String> = previous
            .iter()
            .filter(|e| !shares.iter().any(|(f, _)| f == *e))
            .map(|&e| match prep.exclusions[s].iter().find(|(x, _)| *x == e) {
                Some((_, r)) => format!("{}: {r}", problem.clusters[e].name),
                None => format!(
                    "{}: still usable on its own, but not part of the best placement as a whole",
                    problem.clusters[e].name
                ),
            })
            .collect();
        out.push_str(&format!(" (moved; left {})", why.join("; ")));
    } else if !previous.is_empty() {
        out.push_str(" (stays)");
    }
    out.push('.');
    for l in left {
        out.push_str(&format!(
            " {} keeps {} and {} free",
            l.cluster,
            Resource::Cpu.amount(l.cpu_left.max(0.0)),
            Resource::Memory.amount(l.memory_left.max(0.0))
        ));
        let full_cpu = l.cpu_left <= 1e-9 && l.cpu_used > 0.0;
        let full_mem = l.memory_left <= 1e-9 && l.memory_used > 0.0;
        match (full_cpu, full_mem) {
            (true, true) => out.push_str(" (now full)"),
            (true, false) => out.push_str(" (CPU now full)"),
            (false, true) => out.push_str(" (memory now full)"),
            (false, false) => {}
        }
        out.push('.');
    }
    if !excluded.is_empty() {
        let shown: Vec<String> = excluded
            .iter()
            .take(8)
            .map(|x| format!("{} {}", x.cluster, x.reason))
            .collect();
        let more = if excluded.len() > 8 {
            format!(" and {} more", excluded.len() - 8)
        } else {
            String::new()
        };
        out.push_str(&format!(" Not usable: {}{more}.", shown.join("; ")));
    }
    if other_usable > 0 {
        out.push_str(&format!(
            " {other_usable} other usable cluster{} not chosen.",
            if other_usable == 1 { " was" } else { "s were" }
        ));
    }
    out
}
