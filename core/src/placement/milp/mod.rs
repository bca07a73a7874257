//! The MILP of SPEC §2, built with good_lp and solved by HiGHS.
//!
//! Variables exist only for usable (group, cluster) pairs: x[g,e] ∈ {0,1} per co-location group
//! (a group's services share one x), and for split (HA) services an integer replica count
//! n[s,e] ∈ [0, min(⌈r/2⌉, room)].
//!
//! Small models are solved directly (up to 2,000 pairs, 20,000 when the clusters are nearly
//! full, see [`FULL_DIRECT_LIMIT`]). Large ones (thousands of services × hundreds of clusters,
//! where even HiGHS' root LP over every pair takes tens of seconds) use column generation: the LP
//! relaxation is solved over a few promising clusters per group, missing pairs are priced with
//! the LP duals, and the Lagrangian bound z_LP + Σ_g min(0, reduced cost) proves how far a
//! greedy / restricted solution can be from the full optimum. When that is not close enough,
//! reduced-cost fixing keeps exactly the pairs that could still improve the incumbent and the
//! MILP is solved on them — so "optimal" always refers to the full model. On both paths the
//! absolute tolerance is half the tie-break budget: the weighted SPEC objective is proven
//! optimal (exactly, when it is integral as with the default weights), the tie-break to within
//! `weights.tie_break / 2` (proving the tie-break exactly made tight instances of 20 services
//! take up to 0.8 s: it ranks placements the SPEC objective finds equal). When the SPEC objective
//! moves in whole steps (the default weights), a large model is first solved on it alone, where
//! HiGHS rounds its bound up to a whole step; that optimum then bounds the solve with the
//! tie-break (`spec_first`; the slowest 200×50 re-placement: 1.8 s → 0.5 s). Small models do the
//! same in two direct runs (seed 137 of the 20×5 re-placements: 263 ms → 49 ms).

mod build;
mod colgen;

use std::time::Instant;

use self::{build::*, colgen::*};

use good_lp::solvers::highs::highs;
use good_lp::{Expression, ProblemVariables, SolverModel, variable};
use highs::{HighsModelStatus, HighsSolutionStatus};

use super::error::{Infeasibility, PlacementError, Resource};
use super::first_fit::first_fit_plan;
use super::heuristic::{Greedy, bring_home, greedy, repair};
use super::model::{Plan, SolveStatus, TieBreak, frac, violations};
use super::prepare::{Prepared, replicas_that_fit};
use super::problem::Problem;

/// Models with at most this many (group, cluster) pairs are solved directly; larger ones by
/// column generation. Both prove the SPEC objective and bound the tie-break to within half its
/// budget (`weights.tie_break / 2`).
const DIRECT_LIMIT: usize = 2_000;
/// The direct limit when the clusters are nearly full ([`nearly_full`]): column generation
/// prices a few clusters per group, and when nearly every cluster is full a group needs many of
/// them, so its restricted models starve. On tight 200×50 re-placements (10,000 pairs) the
/// direct model did better in the same 60 s (seed 39 of `--headroom 1.05`: 218 against 288,
/// the reference model 215), while at 1.3× capacity column generation is 30× faster.
const FULL_DIRECT_LIMIT: usize = 20_000;
/// Demand over usable capacity, in CPU or memory, at which the clusters count as nearly full.
const NEARLY_FULL: f64 = 0.9;

/// Whether the services ask for at least [`NEARLY_FULL`] of the CPU or memory of the clusters
/// any of them may use.
pub(crate) fn nearly_full(problem: &Problem, prep: &Prepared) -> bool {
    let mut usable = vec![false; problem.clusters.len()];
    for g in &prep.groups {
        for &e in &g.cand {
            usable[e] = true;
        }
    }
    let capacity = |caps: &[f64]| -> f64 {
        caps.iter()
            .zip(&usable)
            .filter(|(_, u)| **u)
            .map(|(c, _)| *c)
            .sum()
    };
    let cpu: f64 = problem.services.iter().map(|s| s.total_cpu()).sum();
    let memory: f64 = problem.services.iter().map(|s| s.total_memory()).sum();
    cpu >= NEARLY_FULL * capacity(&prep.cpu_cap) || memory >= NEARLY_FULL * capacity(&prep.mem_cap)
}

/// Clusters per group in the first restricted LP (besides current and heuristic ones).
const INITIAL_PER_GROUP: usize = 3;
/// Most negative-reduced-cost clusters added per group and round.
const ADD_PER_ROUND: usize = 3;
/// Column-generation rounds before falling back to the full model.
const MAX_ROUNDS: usize = 50;

fn max_utilisation(problem: &Problem, prep: &Prepared, plan: &Plan) -> f64 {
    let (cpu, _) = super::model::loads(problem, plan);
    cpu.iter()
        .zip(&prep.cpu_cap)
        .filter(|(l, _)| **l > 0.0)
        .map(|(l, k)| frac(*l, *k))
        .fold(0.0, f64::max)
}

/// The solver objective (scaled, constants dropped) of a plan, comparable with HiGHS' values.
fn plan_cost(problem: &Problem, prep: &Prepared, co: &Coefs, plan: &Plan) -> f64 {
    let mut total = 0.0;
    for (gi, g) in prep.groups.iter().enumerate() {
        for &(e, _) in &plan.shares[g.members[0]] {
            if let Ok(k) = g.cand.binary_search(&e) {
                total += co.x[gi][k];
            }
        }
        if g.split {
            for &s in &g.members {
                for &(e, r) in &plan.shares[s] {
                    if let Ok(k) = g.cand.binary_search(&e) {
                        total += co.n[s][k] * f64::from(r);
                    }
                }
            }
        }
    }
    total + co.util * max_utilisation(problem, prep, plan)
}

fn read_plan(problem: &Problem, prep: &Prepared, idx: &Index, cols: &[f64]) -> Plan {
    let col = |c: Option<usize>| c.and_then(|c| cols.get(c).copied()).unwrap_or(0.0);
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); problem.services.len()];
    for (gi, g) in prep.groups.iter().enumerate() {
        for &s in &g.members {
            for (k, &e) in g.cand.iter().enumerate() {
                if g.split {
                    let r = col(idx.n_col[s][k]).round();
                    if r >= 1.0 {
                        shares[s].push((e, r as u32));
                    }
                } else if col(idx.x_col[gi][k]) > 0.5 {
                    shares[s].push((e, problem.services[s].replicas));
                }
            }
        }
    }
    Plan { shares }
}

fn checked(problem: &Problem, prep: &Prepared, plan: Plan) -> Result<Plan, PlacementError> {
    let bad = violations(problem, prep, &plan);
    if bad.is_empty() {
        Ok(plan)
    } else {
        Err(PlacementError::Solver(format!(
            "HiGHS returned a placement that violates constraints: {}",
            bad.join("; ")
        )))
    }
}

fn rel(ub: f64, lb: f64) -> f64 {
    let d = (ub - lb).max(0.0);
    if d == 0.0 {
        0.0
    } else {
        d / ub.abs().max(1e-9)
    }
}

/// Solves the MILP. `prep` must come from `prepare(problem)`.
pub(crate) fn solve(
    problem: &Problem,
    prep: &Prepared,
) -> Result<(Plan, SolveStatus), PlacementError> {
    let started = Instant::now();
    let out = solve_with(problem, prep, false);
    if let Ok((plan, status)) = &out {
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            objective = super::model::evaluate(problem, prep, plan).total,
            ?status,
            "placement: solved"
        );
    }
    out
}

/// `force_column_generation` lets tests run the large-model path on small instances.
pub(crate) fn solve_with(
    problem: &Problem,
    prep: &Prepared,
    force_column_generation: bool,
) -> Result<(Plan, SolveStatus), PlacementError> {
    let started = Instant::now();
    let time_limit = problem.effective_time_limit();
    let left = || (time_limit - started.elapsed().as_secs_f64()).max(0.001);
    let co = coefs(problem, prep);
    let rel_gap = problem.effective_mip_gap();
    let tb = TieBreak::new(problem);

    // Upper bound: the best of the greedies and first-fit.
    let mut incumbent: Option<(f64, Plan)> = None;
    let candidates = [
        greedy(problem, prep, &tb, Greedy::KeepThenLargestFirst),
        greedy(problem, prep, &tb, Greedy::InputOrder),
        first_fit_plan(problem, prep).ok(),
    ];
    for (i, plan) in candidates.into_iter().enumerate() {
        let Some(plan) = plan else {
            tracing::debug!(heuristic = i, "placement: heuristic found no placement");
            continue;
        };
        let plan = bring_home(problem, prep, plan);
        if !violations(problem, prep, &plan).is_empty() {
            continue;
        }
        let c = plan_cost(problem, prep, &co, &plan);
        tracing::debug!(heuristic = i, cost = c, "placement: heuristic incumbent");
        if incumbent.as_ref().is_none_or(|(best, _)| c < *best) {
            incumbent = Some((c, plan));
        }
    }

    // Nearly full clusters can defeat every greedy; on a large re-placement local search then
    // finds a placement, which HiGHS alone may not find within the time limit (200×50, tight:
    // none in 60 s on 3 of 50). Such models still go to the direct solve, with it as the start.
    // Small models and first placements go without: HiGHS alone solves every 20×5 re-placement
    // within 0.15 s, and started from the search's placement it took 3× longer on one (seed 137);
    // it placed all 50 tight 200×50 first placements within 0.3 s, and a search that fails costs
    // up to 0.12 s there.
    let pairs: usize = prep.groups.iter().map(|g| g.cand.len()).sum();
    let greedy_found = incumbent.is_some();
    let moving = prep.current.iter().any(|c| !c.is_empty());
    if incumbent.is_none()
        && moving
        && pairs > DIRECT_LIMIT
        && let Some(plan) = repair(problem, prep, &tb).map(|p| bring_home(problem, prep, p))
        && violations(problem, prep, &plan).is_empty()
    {
        let c = plan_cost(problem, prep, &co, &plan);
        tracing::debug!(cost = c, "placement: repaired incumbent");
        incumbent = Some((c, plan));
    }

    // The SPEC objective is proven exactly (for integral weights: its steps are `scale` apart in
    // solver units, far above this), the tie-break to within half its budget. Proving the
    // tie-break exactly too is what made tight bin-packing instances take seconds: it orders
    // placements the SPEC objective finds equal and is worth at most `weights.tie_break`.
    let abs_tol = if problem.weights.tie_break > 0.0 {
        0.5 * problem.services.len() as f64
    } else {
        1e-6
    };
    let direct_limit = if nearly_full(problem, prep) {
        FULL_DIRECT_LIMIT
    } else {
        DIRECT_LIMIT
    };
    let large = force_column_generation || pairs > direct_limit;
    let incumbent = match incumbent {
        // A repaired start goes to column generation only where the direct model is too big.
        Some(inc) if large && (greedy_found || pairs > FULL_DIRECT_LIMIT) => inc,
        other => {
            let start = other.map(|(_, p)| p);
            // One HiGHS run over every pair: `co`'s objective, `gap` absolute, SPEC part ≥ `floor`.
            let run = |p: &Problem, co: &Coefs, start: Option<&Plan>, gap, floor| {
                direct(p, prep, co, start, rel_gap, gap, floor, left())
            };
            let Some(spec) = co.spec.as_ref().filter(|s| s.varies) else {
                return run(problem, &co, start.as_ref(), abs_tol, None);
            };
            // As `spec_first` does for large models: the SPEC objective alone, then the
            // tie-break from its placement, bounded below by its optimum.
            let mut pure = problem.clone();
            pure.weights.tie_break = 0.0;
            let co0 = coefs(&pure, prep);
            let (start, floor) = match run(&pure, &co0, start.as_ref(), 1e-6, None) {
                Ok((plan, SolveStatus::Optimal { .. })) => {
                    let best = plan_cost(&pure, prep, &co0, &plan);
                    (Some(plan), Some(proven_floor(best, rel_gap, spec.step)))
                }
                // The same rows: no placement there is none here.
                Err(e @ PlacementError::Infeasible(_)) => return Err(e),
                // Cut short by the time limit: there is none left for the tie-break.
                Ok(found) => return Ok(found),
                Err(_) => (start, None),
            };
            return run(problem, &co, start.as_ref(), abs_tol, floor);
        }
    };
    let (incumbent, floor) = match &co.spec {
        Some(spec) => spec_first(
            problem, prep, &co, spec.step, incumbent, rel_gap, started, time_limit,
        ),
        None => (incumbent, None),
    };
    let tol = |ub: f64| abs_tol.max(rel_gap * ub.abs());
    column_generation(
        problem, prep, &co, incumbent, floor, rel_gap, abs_tol, &tol, started, time_limit, &left,
    )
}

/// The least the SPEC objective can be, in the tie-break model's units (`step` per whole step),
/// when `best` (in whole steps) was proven optimal to within the SPEC-only solve's tolerance: the
/// whole step that far below it.
fn proven_floor(best: f64, rel_gap: f64, step: f64) -> f64 {
    (best - 1e-6f64.max(rel_gap * best.abs()) - 1e-9).ceil() * step
}

/// The SPEC objective alone first, when it moves in whole steps: HiGHS then rounds its bound up
/// to a whole step (16.01 moves proves 17), which the tie-break's fractions hide from it. Its
/// placement starts the solve with the tie-break, and its proven optimum, in that solve's
/// units, is returned as a lower bound for it (the tie-break is never negative): that solve then
/// only orders placements of equal SPEC objective. Any failure here leaves the incumbent as it
/// was and no bound.
#[allow(clippy::too_many_arguments)]
fn spec_first(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    step: f64,
    incumbent: (f64, Plan),
    rel_gap: f64,
    started: Instant,
    time_limit: f64,
) -> ((f64, Plan), Option<f64>) {
    let mut pure = problem.clone();
    pure.weights.tie_break = 0.0;
    let co0 = coefs(&pure, prep);
    let start = (
        plan_cost(&pure, prep, &co0, &incumbent.1),
        incumbent.1.clone(),
    );
    let left = || (time_limit - started.elapsed().as_secs_f64()).max(0.001);
    let tol = |ub: f64| 1e-6f64.max(rel_gap * ub.abs());
    match column_generation(
        &pure, prep, &co0, start, None, rel_gap, 1e-6, &tol, started, time_limit, &left,
    ) {
        Ok((plan, SolveStatus::Optimal { .. })) => {
            let best = plan_cost(&pure, prep, &co0, &plan);
            let floor = proven_floor(best, rel_gap, step);
            let c = plan_cost(problem, prep, co, &plan);
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                cost = c,
                floor,
                "placement: the SPEC objective alone"
            );
            let incumbent = if c < incumbent.0 {
                (c, plan)
            } else {
                incumbent
            };
            (incumbent, Some(floor))
        }
        _ => (incumbent, None),
    }
}

fn all_active(prep: &Prepared) -> Vec<Vec<bool>> {
    prep.groups
        .iter()
        .map(|g| vec![true; g.cand.len()])
        .collect()
}

/// The full model in one HiGHS run, warm-started from `start`, its SPEC part at least `floor`.
#[allow(clippy::too_many_arguments)]
fn direct(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    start: Option<&Plan>,
    rel_gap: f64,
    abs_gap: f64,
    floor: Option<f64>,
    time_limit: f64,
) -> Result<(Plan, SolveStatus), PlacementError> {
    let (out, plan) = mip(
        problem,
        prep,
        co,
        &all_active(prep),
        start,
        time_limit,
        rel_gap,
        abs_gap,
        floor,
    )?;
    // HiGHS may stop at the time limit without having taken the start in: it is still a
    // placement (checked before it was offered), better than none.
    let timed_out = !matches!(
        out.status,
        HighsModelStatus::Optimal
            | HighsModelStatus::Infeasible
            | HighsModelStatus::UnboundedOrInfeasible
    );
    let plan = plan.or_else(|| start.filter(|_| timed_out).cloned());
    finish(problem, prep, &out, plan, time_limit)
}

fn finish(
    problem: &Problem,
    prep: &Prepared,
    out: &Run,
    plan: Option<Plan>,
    time_limit: f64,
) -> Result<(Plan, SolveStatus), PlacementError> {
    let status = match out.status {
        HighsModelStatus::Optimal => SolveStatus::Optimal { gap: out.gap },
        HighsModelStatus::Infeasible | HighsModelStatus::UnboundedOrInfeasible => {
            return Err(PlacementError::Infeasible(vec![
                Infeasibility::Combination {
                    detail: combination_detail(problem, prep),
                },
            ]));
        }
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedIterationLimit
        | HighsModelStatus::ReachedSolutionLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedMemoryLimit
        | HighsModelStatus::ObjectiveBound
        | HighsModelStatus::ObjectiveTarget => SolveStatus::Feasible { gap: out.gap },
        other => return Err(PlacementError::Solver(format!("HiGHS status {other:?}"))),
    };
    let Some(plan) = plan else {
        return Err(PlacementError::NoSolutionWithinTimeLimit {
            time_limit_secs: time_limit,
        });
    };
    Ok((checked(problem, prep, plan)?, status))
}

/// Free capacity per Ready cluster and the largest demands, for the generic infeasible message.
fn combination_detail(problem: &Problem, prep: &Prepared) -> String {
    let free: Vec<String> = problem
        .clusters
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ready)
        .take(10)
        .map(|(e, c)| {
            format!(
                "{} {} / {}",
                c.name,
                Resource::Cpu.amount(prep.cpu_cap[e]),
                Resource::Memory.amount(prep.mem_cap[e])
            )
        })
        .collect();
    let mut demands: Vec<(f64, &str)> = problem
        .services
        .iter()
        .map(|s| (s.total_cpu(), s.name.as_str()))
        .collect();
    demands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let big: Vec<String> = demands
        .iter()
        .take(5)
        .map(|(c, s)| format!("{s} {}", Resource::Cpu.amount(*c)))
        .collect();
    format!(
        "free capacity: {}; largest services: {}",
        free.join(", "),
        big.join(", ")
    )
}
