//! A scaling round on one cluster: every graph placed there solved together against the
//! cluster's one CPU budget.
//!
//! Solving each graph alone (the old per-graph tick) gave every graph the cluster's whole free
//! CPU: two graphs scaling up in the same round could each take it and over-commit the cluster.
//! Here the CPU row spans all graphs. The objective is the sum of each graph's own SPEC §3
//! objective (M taken per graph), so a graph whose targets fit scales exactly as it would alone;
//! only a binding cluster trades replicas between graphs.
//!
//! A graph that cannot be served on this cluster whatever the others do (a GPU missing, load
//! beyond maxReplicas, invalid input) is left out of the solve: its replicas stay as they are
//! and count against the budget, and it gets its own [`ScaleOutcome::Infeasible`] (the caller
//! re-places it) or error. Only when the feasible graphs' fewest replicas do not fit together is
//! every one of them infeasible.

use std::collections::BTreeMap;

use super::{
    MAX_SERVICES, Method, Prepared, ScaleCluster, ScaleOutcome, ScaleService, ScalingError,
    SolveOptions, prepare, prepare_grouped, scaled, solve_prepared, validate,
};

/// The services of one graph on the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphServices {
    /// Graph name (unique among the graphs of one call).
    pub graph: String,
    /// Its services placed on this cluster.
    pub services: Vec<ScaleService>,
}

/// Solves one cluster's round. `cluster.cpu` is the CPU available to every listed service
/// together: the cluster's free CPU plus what they use now. One outcome (or input error) per
/// graph, keyed by graph name.
pub fn solve_cluster(
    cluster: &ScaleCluster,
    graphs: &[GraphServices],
    options: &SolveOptions,
) -> BTreeMap<String, Result<ScaleOutcome, ScalingError>> {
    let mut out = BTreeMap::new();
    // Cores held by graphs left out of the solve (they keep their replicas).
    let mut fixed = 0.0;
    let mut joint: Vec<ScaleService> = Vec::new();
    let mut group: Vec<usize> = Vec::new();
    // Per graph kept in the solve: its notes and its services' name order.
    let mut kept: BTreeMap<usize, (Vec<String>, Vec<usize>)> = BTreeMap::new();
    // Service-level pre-checks only: capacity is judged once, for all graphs.
    let unbounded = ScaleCluster {
        cpu: f64::MAX,
        ..cluster.clone()
    };
    for (gi, g) in graphs.iter().enumerate() {
        let current = current_cores(&g.services);
        if let Err(e) = validate(cluster, &g.services) {
            fixed += current;
            out.insert(g.graph.clone(), Err(e));
            continue;
        }
        let prep = prepare(&unbounded, &g.services);
        if !prep.reasons.is_empty() {
            fixed += current;
            out.insert(
                g.graph.clone(),
                Ok(ScaleOutcome::Infeasible {
                    reasons: prep.reasons,
                    notes: prep.notes,
                }),
            );
            continue;
        }
        kept.insert(gi, (prep.notes, prep.order));
        for s in &g.services {
            joint.push(ScaleService {
                name: format!("{}/{}", g.graph, s.name),
                ..s.clone()
            });
            group.push(gi);
        }
    }
    if joint.is_empty() {
        return out;
    }
    let budget = ScaleCluster {
        cpu: cluster.cpu - fixed,
        ..cluster.clone()
    };
    let prep = prepare_grouped(&budget, &joint, &group);
    // The joint pre-check repeats each graph's notes (already kept per graph); keep only the
    // cluster's own.
    let mut shared: Vec<String> = prep
        .notes
        .iter()
        .filter(|n| n.starts_with("cluster "))
        .cloned()
        .collect();
    if !prep.reasons.is_empty() {
        for (gi, (n, _)) in kept {
            out.insert(
                graphs[gi].graph.clone(),
                Ok(ScaleOutcome::Infeasible {
                    reasons: prep.reasons.clone(),
                    notes: n,
                }),
            );
        }
        return out;
    }
    let milp = joint.len() <= MAX_SERVICES;
    let (r, method, optimal) = solve_prepared(&joint, &prep, options, milp, &mut shared);
    if !milp && method == Method::Greedy {
        shared.push(format!(
            "{} services share cluster {}: more than the {MAX_SERVICES} one model solves, so the greedy fit was used",
            joint.len(),
            cluster.name
        ));
    }
    // Split the joint answer back per graph (joint services are contiguous per graph).
    let mut start = 0;
    for (gi, (graph_notes, order)) in kept {
        let g = &graphs[gi];
        let end = start + g.services.len();
        let sub = sub_prepared(&prep, order, start, end);
        let mut n = graph_notes;
        n.extend(shared.iter().cloned());
        out.insert(
            g.graph.clone(),
            Ok(scaled(
                &g.services,
                &sub,
                r[start..end].to_vec(),
                method,
                optimal,
                n,
            )),
        );
        start = end;
    }
    out
}

fn current_cores(services: &[ScaleService]) -> f64 {
    services.iter().map(|s| s.cpu * f64::from(s.current)).sum()
}

/// The part of the joint preparation that covers services `start..end` (one graph), with that
/// graph's own name `order`, for its objective and its outcome.
fn sub_prepared(prep: &Prepared, order: Vec<usize>, start: usize, end: usize) -> Prepared {
    Prepared {
        order,
        lo: prep.lo[start..end].to_vec(),
        hi: prep.hi[start..end].to_vec(),
        m: prep.m[start..end].to_vec(),
        cap: prep.cap,
        notes: Vec::new(),
        reasons: Vec::new(),
    }
}
