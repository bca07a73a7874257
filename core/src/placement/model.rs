//! Plans, their objective and constraint checks, and the tie-break score — shared by the MILP,
//! the heuristics and the explanations. The reported objective is always recomputed from the
//! plan by [`evaluate`], so solver scaling never leaks into results.

use serde::{Deserialize, Serialize};

use super::error::Resource;
use super::prepare::{Prepared, fits};
use super::problem::Problem;

/// A placement: per service, (cluster index, replicas) sorted by cluster index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub shares: Vec<Vec<(usize, u32)>>,
}

/// Objective of a placement, term by term. `total` is the weighted objective of SPEC §2
/// (without the tie-break), the number to compare placements by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// w_dep·deployments + w_re·moves + w_cost·cost + w_carbon·carbon + w_balance·max_utilisation.
    pub total: f64,
    /// Σx: (service, cluster) pairs used.
    pub deployments: f64,
    /// Σ y(y − x): current (service, cluster) pairs given up.
    pub moves: f64,
    /// Σ cost_e × cores placed on e.
    pub cost: f64,
    /// Σ carbon_e × cores placed on e.
    pub carbon: f64,
    /// Highest CPU utilisation (placed cores / free cores) over clusters that received load.
    pub max_utilisation: f64,
    /// Deterministic tie-break term actually included in the solver objective (≤ weights.tie_break).
    pub tie_break: f64,
}

/// How the solve ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SolveStatus {
    /// Proven optimal within the configured relative MIP gap; `gap` is the gap HiGHS reached.
    Optimal {
        /// Relative gap between the placement and the best bound (≤ mip_gap).
        gap: f64,
    },
    /// Stopped (time limit) with a valid but not proven optimal placement.
    Feasible {
        /// Relative gap to the best bound when the solver stopped.
        gap: f64,
    },
    /// Produced by the first-fit heuristic: valid, no optimality claim.
    Heuristic,
}

impl SolveStatus {
    /// Whether the placement is proven optimal (within the MIP gap).
    pub fn is_optimal(&self) -> bool {
        matches!(self, SolveStatus::Optimal { .. })
    }
}

pub(crate) fn frac(need: f64, free: f64) -> f64 {
    if need <= 0.0 {
        0.0
    } else if free <= 0.0 {
        1.0
    } else {
        (need / free).min(1.0)
    }
}

/// Precomputed inputs of the tie-break score.
pub(crate) struct TieBreak {
    max_cost: f64,
    max_carbon: f64,
    max_cpu: f64,
    max_mem: f64,
    n: f64,
    m: f64,
}

impl TieBreak {
    pub fn new(problem: &Problem) -> Self {
        let max_of = |f: fn(&super::problem::Cluster) -> f64| {
            problem.clusters.iter().map(f).fold(0.0_f64, f64::max)
        };
        let max_svc = |f: fn(&super::problem::Service) -> f64| {
            problem.services.iter().map(f).fold(0.0_f64, f64::max)
        };
        Self {
            max_cost: max_of(|c| c.cost),
            max_carbon: max_of(|c| c.carbon),
            max_cpu: max_svc(|s| s.total_cpu()),
            max_mem: max_svc(|s| s.total_memory()),
            n: problem.services.len().max(1) as f64,
            m: problem.clusters.len().max(1) as f64,
        }
    }

    /// Score in [0, 1] of putting service `s` (all of it) on cluster `e`. In order of weight:
    /// prefer clusters where it takes a small share of the free capacity (least loaded); when
    /// something must move, move the smaller services (less disruption); cheap, low-carbon
    /// clusters; finally input order. The order term depends on `s` too, so swapping two
    /// identical services between two identical clusters is never a tie.
    pub fn score(&self, problem: &Problem, prep: &Prepared, s: usize, e: usize) -> f64 {
        let svc = &problem.services[s];
        let c = &problem.clusters[e];
        let ratio = |v: f64, max: f64| if max > 0.0 { v / max } else { 0.0 };
        let load =
            frac(svc.total_cpu(), prep.cpu_cap[e]).max(frac(svc.total_memory(), prep.mem_cap[e]));
        let moving = !prep.current[s].is_empty() && !prep.current[s].contains(&e);
        let size = if moving {
            ratio(svc.total_cpu(), self.max_cpu).max(ratio(svc.total_memory(), self.max_mem))
        } else {
            0.0
        };
        let order = (e as f64 / self.m) * (1.0 + s as f64 / self.n) / 2.0;
        0.4 * load
            + 0.3 * size
            + 0.15 * ratio(c.cost, self.max_cost)
            + 0.05 * ratio(c.carbon, self.max_carbon)
            + 0.1 * order
    }
}

/// Cores and MiB each cluster receives from a plan.
pub(crate) fn loads(problem: &Problem, plan: &Plan) -> (Vec<f64>, Vec<f64>) {
    let m = problem.clusters.len();
    let (mut cpu, mut mem) = (vec![0.0; m], vec![0.0; m]);
    for (s, shares) in plan.shares.iter().enumerate() {
        let svc = &problem.services[s];
        for &(e, r) in shares {
            cpu[e] += svc.cpu * f64::from(r);
            mem[e] += svc.memory * f64::from(r);
        }
    }
    (cpu, mem)
}

/// The objective of any plan (optimiser, first-fit or the current placement) under `problem`'s weights.
pub(crate) fn evaluate(problem: &Problem, prep: &Prepared, plan: &Plan) -> Objective {
    let w = &problem.weights;
    let tb = TieBreak::new(problem);
    let mut deployments = 0.0;
    let mut moves = 0.0;
    let mut cost = 0.0;
    let mut carbon = 0.0;
    let mut tie = 0.0;
    for (s, shares) in plan.shares.iter().enumerate() {
        let svc = &problem.services[s];
        deployments += shares.len() as f64;
        for &y in &prep.current[s] {
            if !shares.iter().any(|&(e, _)| e == y) {
                moves += 1.0;
            }
        }
        for &(e, r) in shares {
            let cores = svc.cpu * f64::from(r);
            cost += problem.clusters[e].cost * cores;
            carbon += problem.clusters[e].carbon * cores;
            tie += tb.score(problem, prep, s, e) * f64::from(r) / f64::from(svc.replicas.max(1));
        }
    }
    let (cpu, _) = loads(problem, plan);
    let max_utilisation = cpu
        .iter()
        .zip(&prep.cpu_cap)
        .filter(|(l, _)| **l > 0.0)
        .map(|(l, k)| frac(*l, *k))
        .fold(0.0, f64::max);
    let total = w.deploy * deployments
        + w.replace * moves
        + w.cost * cost
        + w.carbon * carbon
        + w.balance * max_utilisation;
    Objective {
        total,
        deployments,
        moves,
        cost,
        carbon,
        max_utilisation,
        tie_break: tie * w.tie_break / tb.n,
    }
}

/// Every constraint the plan violates, in words (empty = valid). Used to guard solver output and in tests.
pub(crate) fn violations(problem: &Problem, prep: &Prepared, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if plan.shares.len() != problem.services.len() {
        out.push("plan does not cover every service".to_string());
        return out;
    }
    for (s, shares) in plan.shares.iter().enumerate() {
        let svc = &problem.services[s];
        let g = &prep.groups[prep.group_of[s]];
        let total: u64 = shares.iter().map(|&(_, r)| u64::from(r)).sum();
        if total != u64::from(svc.replicas) {
            out.push(format!(
                "{}: {total} replicas placed, {} wanted",
                svc.name, svc.replicas
            ));
        }
        if svc.is_split() {
            if shares.len() < 2 {
                out.push(format!(
                    "{}: high availability needs ≥ 2 clusters",
                    svc.name
                ));
            }
            if shares
                .iter()
                .any(|&(_, r)| r > svc.max_replicas_per_cluster())
            {
                out.push(format!(
                    "{}: more than half its replicas on one cluster",
                    svc.name
                ));
            }
        } else if shares.len() != 1 {
            out.push(format!("{}: must run on exactly one cluster", svc.name));
        }
        for &(e, r) in shares {
            let c = &problem.clusters[e];
            if r == 0 {
                out.push(format!("{}: zero replicas listed on {}", svc.name, c.name));
            }
            if g.cand.binary_search(&e).is_err() {
                let why = prep.exclusions[s]
                    .iter()
                    .find(|(x, _)| *x == e)
                    .map(|(_, r)| r.to_string())
                    .unwrap_or_else(|| "not usable".into());
                out.push(format!("{} on {}: {why}", svc.name, c.name));
            }
        }
        for &o in &g.members {
            let mine: Vec<usize> = shares.iter().map(|&(e, _)| e).collect();
            let theirs: Vec<usize> = plan.shares[o].iter().map(|&(e, _)| e).collect();
            if mine != theirs {
                out.push(format!(
                    "{} and {} must be co-located",
                    svc.name, problem.services[o].name
                ));
            }
        }
    }
    for &(gn, gs) in &prep.mixed {
        let a = prep.groups[gn].members[0];
        let b = prep.groups[gs].members[0];
        for &(e, _) in &plan.shares[a] {
            if !plan.shares[b].iter().any(|&(f, _)| f == e) {
                out.push(format!(
                    "{} must run where {} runs",
                    problem.services[a].name, problem.services[b].name
                ));
            }
        }
    }
    let (cpu, mem) = loads(problem, plan);
    for (e, c) in problem.clusters.iter().enumerate() {
        if cpu[e] > 0.0 && !fits(cpu[e], prep.cpu_cap[e]) {
            out.push(format!(
                "{}: {} placed, {} free",
                c.name,
                Resource::Cpu.amount(cpu[e]),
                Resource::Cpu.amount(prep.cpu_cap[e])
            ));
        }
        if mem[e] > 0.0 && !fits(mem[e], prep.mem_cap[e]) {
            out.push(format!(
                "{}: {} placed, {} free",
                c.name,
                Resource::Memory.amount(mem[e]),
                Resource::Memory.amount(prep.mem_cap[e])
            ));
        }
    }
    out
}
