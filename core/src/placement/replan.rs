//! Re-placement: solve again from the current placement without counting the graph's own usage twice.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::error::{FieldError, PlacementError};
use super::milp::solve;
use super::model::{Objective, Plan, evaluate, violations};
use super::prepare::prepare;
use super::problem::Problem;
use super::solution::{Solution, build};

/// Resources the graph itself uses on one cluster right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Cores.
    pub cpu: f64,
    /// MiB.
    #[serde(default)]
    pub memory: f64,
}

/// The outcome of a re-placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replan {
    /// The new placement; `solution.moved` lists the services that change clusters.
    pub solution: Solution,
    /// Objective of keeping the current placement (on the corrected capacities); `None` when some
    /// service has no current placement.
    pub objective_before: Option<Objective>,
    /// Objective of the new placement (same as `solution.objective`).
    pub objective_after: Objective,
    /// Constraints the current placement breaks (why moves were needed), in words.
    pub current_violations: Vec<String>,
    /// Capacity added back per cluster before solving.
    pub freed: BTreeMap<String, Usage>,
}

/// The graph's own usage implied by `problem.current` and the services' sizes, for callers that
/// have no measured figures. A service listed on several clusters is assumed split evenly.
pub fn own_usage_from_current(problem: &Problem) -> BTreeMap<String, Usage> {
    let mut out: BTreeMap<String, Usage> = BTreeMap::new();
    for svc in &problem.services {
        let Some(cur) = problem.current.get(&svc.name) else {
            continue;
        };
        let clusters = dedup(cur.clusters());
        for (c, r) in split_evenly(svc.replicas, &clusters) {
            let u = out.entry(c.to_string()).or_default();
            u.cpu += svc.cpu * f64::from(r);
            u.memory += svc.memory * f64::from(r);
        }
    }
    out
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|c| seen.insert(*c));
    v
}

fn split_evenly<'a>(replicas: u32, clusters: &[&'a str]) -> Vec<(&'a str, u32)> {
    let k = u32::try_from(clusters.len()).unwrap_or(u32::MAX).max(1);
    clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let extra = u32::from((i as u32) < replicas % k);
            (*c, replicas / k + extra)
        })
        .filter(|(_, r)| *r > 0)
        .collect()
}

/// Re-places a running graph. Cluster capacities in `problem` are the free capacities reported
/// by Karmada, which already subtract what the graph uses; `own_usage` (per cluster) is added
/// back before solving so the graph may keep — or reshuffle — its own resources. The reference
/// counted this usage twice and so moved services needlessly.
pub fn replan(
    problem: &Problem,
    own_usage: &BTreeMap<String, Usage>,
) -> Result<Replan, PlacementError> {
    problem.validate()?;
    let index: HashMap<&str, usize> = problem
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut errs = Vec::new();
    for (c, u) in own_usage {
        if !index.contains_key(c.as_str()) {
            errs.push(FieldError {
                path: format!("own_usage.{c}"),
                message: format!("unknown cluster {c:?}"),
            });
        }
        for (field, v) in [("cpu", u.cpu), ("memory", u.memory)] {
            if !v.is_finite() || v < 0.0 {
                errs.push(FieldError {
                    path: format!("own_usage.{c}.{field}"),
                    message: format!("must be a finite number ≥ 0, got {v}"),
                });
            }
        }
    }
    if !errs.is_empty() {
        return Err(PlacementError::Invalid(errs));
    }
    let mut adjusted = problem.clone();
    for (c, u) in own_usage {
        if let Some(&e) = index.get(c.as_str()) {
            adjusted.clusters[e].cpu += u.cpu;
            adjusted.clusters[e].memory += u.memory;
        }
    }
    let prep = prepare(&adjusted).map_err(PlacementError::Infeasible)?;
    let (plan, status) = solve(&adjusted, &prep)?;
    let solution = build(&adjusted, &prep, &plan, status);

    let everyone_placed = prep.current.iter().all(|c| !c.is_empty());
    let (objective_before, current_violations) = if everyone_placed {
        let shares = adjusted
            .services
            .iter()
            .zip(&prep.current)
            .map(|(svc, cur)| {
                let k = u32::try_from(cur.len()).unwrap_or(u32::MAX).max(1);
                cur.iter()
                    .enumerate()
                    .map(|(i, &e)| {
                        (
                            e,
                            svc.replicas / k + u32::from((i as u32) < svc.replicas % k),
                        )
                    })
                    .filter(|(_, r)| *r > 0)
                    .collect()
            })
            .collect();
        let current = Plan { shares };
        (
            Some(evaluate(&adjusted, &prep, &current)),
            violations(&adjusted, &prep, &current),
        )
    } else {
        (None, Vec::new())
    };
    Ok(Replan {
        objective_after: solution.objective.clone(),
        solution,
        objective_before,
        current_violations,
        freed: own_usage.clone(),
    })
}
