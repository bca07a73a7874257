//! Placement optimiser: which cluster each service of a graph runs on (SPEC §2).
//!
//! Pure: no I/O, no async. The model is the reference SMO's re-placement MILP, built with
//! good_lp and solved by HiGHS (one thread, fixed seed, so equal inputs give equal outputs):
//!
//! - x[s,e] ∈ {0,1}, Σ_e x[s,e] = 1 (variables only for clusters the service may use);
//! - Σ_s x[s,e]·c_s·r_s ≤ K_e, and the same for memory;
//! - GPU services only on clusters with accelerators; not-Ready, excluded and not-allowed
//!   clusters are never used; `co_locate_with` puts services on the same cluster;
//! - minimise w_dep·Σx + w_re·Σ y(y − x) (+ optional cost, carbon and balance terms, weights 0 by
//!   default) + a tiny deterministic tie-break (least loaded share, cheapest, input order).
//! - `ha: true` with `replicas ≥ 2` splits a service: replicas over ≥ 2 clusters, at most
//!   ⌈r/2⌉ per cluster, so losing one cluster never takes more than half the replicas. A
//!   non-split service co-located with a split one must run on one of its clusters; split
//!   services co-located with each other use the same cluster set.
//!
//! Cheap checks run before the solver so that an infeasible problem gets a message naming the
//! services and the constraint ([`Infeasibility`]).
//!
//! Status: [`SolveStatus::Optimal`] means proven within `mip_gap` (relative) of the best
//! placement of the *full* model: the weighted SPEC objective — exactly when it is integral, as
//! with the default weights — with the tie-break kept within `weights.tie_break / 2`. Up to 2,000
//! (service, cluster) pairs the model is solved directly (20,000 when the services ask for 90 %
//! of the capacity); larger problems by column generation (LP pricing, Lagrangian bound,
//! reduced-cost fixing). Greedy placements start both, each brought back home wherever that
//! stays feasible; when every greedy gets stuck on a re-placement, a local search finds the start.
//! [`SolveStatus::Feasible`] (time limit) carries the remaining gap. Equal inputs give equal
//! outputs unless the time limit cuts a solve short.
//!
//! # JSON problem format (`smo placement solve --input problem.json`)
//!
//! ```json
//! {
//!   "clusters": [
//!     {"name": "edge-1", "cpu": 8, "memory": 16384, "gpus": 0, "cost": 1.0, "carbon": 300,
//!      "ready": true, "labels": {"region": "eu"}},
//!     {"name": "gpu-1", "cpu": 16, "memory": 65536, "gpus": 2}
//!   ],
//!   "services": [
//!     {"name": "frontend", "cpu": 0.5, "memory": 512, "replicas": 3, "ha": true},
//!     {"name": "ml-inference", "cpu": 4, "memory": 8192, "gpu": true,
//!      "allowed_clusters": ["gpu-1"], "co_locate_with": ["cache"]},
//!     {"name": "cache", "cpu": 1, "memory": 2048, "excluded_clusters": ["edge-1"]}
//!   ],
//!   "current": {"frontend": ["edge-1", "gpu-1"], "cache": "gpu-1"},
//!   "weights": {"deploy": 1, "replace": 1, "cost": 0, "carbon": 0, "balance": 0, "tie_break": 0.01},
//!   "time_limit_secs": 30,
//!   "mip_gap": 0.0001
//! }
//! ```
//!
//! Units: `cpu` in cores, `memory` in MiB; cluster figures are *free* capacity. Cluster fields
//! other than `name`, `cpu`, `memory` are optional (`ready` defaults to true, `accelerator: bool`
//! overrides `gpus > 0`). Service fields other than `name` and `cpu` are optional (`replicas`
//! defaults to 1). `current` maps a service to one cluster or a list; every cluster named there
//! must be listed (use `ready: false` for one that went away). Unknown keys are rejected so typos
//! are caught. [`Problem::validate`] reports every bad field at once, e.g.
//! `services[3].cpu: must be a finite number ≥ 0, got NaN`.
//!
//! The answer ([`Solution`]) serialises to `{status: {kind: optimal|feasible|heuristic, gap},
//! objective: {total, deployments, moves, cost, carbon, max_utilisation, tie_break},
//! placement: [{service, clusters: [{cluster, replicas}]}], moved: [{service, from, to}],
//! clusters: [{cluster, cpu_used, cpu_left, memory_used, memory_left}],
//! explanations: [{service, clusters, previous, moved, capacity_left, excluded: [{cluster, reason, …}],
//! other_usable, summary}]}`.

mod error;
mod failover;
mod first_fit;
mod heuristic;
pub mod instances;
mod milp;
mod model;
mod prepare;
mod problem;
mod replan;
mod solution;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use error::{FieldError, Infeasibility, PlacementError, Resource};
pub use failover::{FailoverPlan, FleetGraph, GraphFailover, Stranded, failover};
pub use model::{Objective, SolveStatus};
pub use prepare::ExclusionReason;
pub use problem::{
    Cluster, CurrentPlacement, DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_SECS, MAX_CLUSTERS,
    MAX_QUANTITY, MAX_REPLICAS, MAX_SERVICES, MAX_VARIABLES, Problem, Service, Weights,
};
pub use replan::{Replan, Usage, own_usage_from_current, replan};
pub use solution::{
    ClusterLoad, ClusterShare, ExcludedCluster, Explanation, Move, ServicePlacement, Solution,
};

/// Solves a placement problem to (proven) optimality within its time limit and MIP gap.
/// With an empty `current` this is a first deployment (y = 0); otherwise moves are minimised.
pub fn solve_problem(problem: &Problem) -> Result<Solution, PlacementError> {
    problem.validate()?;
    let prep = prepare::prepare(problem).map_err(PlacementError::Infeasible)?;
    let (plan, status) = milp::solve(problem, &prep)?;
    Ok(solution::build(problem, &prep, &plan, status))
}

/// The reference SMO's first-fit (services in order, first cluster with room), extended to honour
/// the same hard constraints as the optimiser; for comparison and as a fallback baseline.
pub fn first_fit(problem: &Problem) -> Result<Solution, PlacementError> {
    problem.validate()?;
    let prep = prepare::prepare(problem).map_err(PlacementError::Infeasible)?;
    let plan = first_fit::first_fit_plan(problem, &prep)?;
    Ok(solution::build(
        problem,
        &prep,
        &plan,
        SolveStatus::Heuristic,
    ))
}

/// Every constraint of `problem` that `solution`'s placement breaks, in words (empty = valid).
/// Lets callers (and tests) check any placement, e.g. one edited by hand.
pub fn check_solution(
    problem: &Problem,
    solution: &Solution,
) -> Result<Vec<String>, PlacementError> {
    problem.validate()?;
    let prep = prepare::prepare(problem).map_err(PlacementError::Infeasible)?;
    let cluster: HashMap<&str, usize> = problem
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut errors = Vec::new();
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); problem.services.len()];
    for (s, svc) in problem.services.iter().enumerate() {
        let Some(p) = solution.placement.iter().find(|p| p.service == svc.name) else {
            errors.push(format!("{}: not placed", svc.name));
            continue;
        };
        for share in &p.clusters {
            match cluster.get(share.cluster.as_str()) {
                Some(&e) => shares[s].push((e, share.replicas)),
                None => errors.push(format!("{}: unknown cluster {}", svc.name, share.cluster)),
            }
        }
        shares[s].sort_unstable();
    }
    if errors.is_empty() {
        errors = model::violations(problem, &prep, &model::Plan { shares });
    }
    Ok(errors)
}
