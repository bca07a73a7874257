//! The MILP of SPEC §2, built with good_lp and solved by HiGHS.
//!
//! Variables exist only for usable (group, cluster) pairs: x[g,e] ∈ {0,1} per co-location group
//! (a group's services share one x), and for split (HA) services an integer replica count
//! n[s,e] ∈ [0, min(⌈r/2⌉, room)].
//!
//! Small models are solved directly. Large ones (thousands of services × hundreds of clusters,
//! where even HiGHS' root LP over every pair takes tens of seconds) use column generation: the LP
//! relaxation is solved over a few promising clusters per group, missing pairs are priced with
//! the LP duals, and the Lagrangian bound z_LP + Σ_g min(0, reduced cost) proves how far a
//! greedy / restricted solution can be from the full optimum. When that is not close enough,
//! reduced-cost fixing keeps exactly the pairs that could still improve the incumbent and the
//! MILP is solved on them — so "optimal" always refers to the full model. On both paths the
//! absolute tolerance is half the tie-break budget: the weighted SPEC objective is proven
//! optimal (exactly, when it is integral as with the default weights), the tie-break to within
//! `weights.tie_break / 2` (proving the tie-break exactly made tight instances of 20 services
//! take up to 0.8 s: it ranks placements the SPEC objective finds equal).

use std::time::Instant;

use good_lp::solvers::highs::highs;
use good_lp::{Expression, ProblemVariables, SolverModel, variable};
use highs::{HighsModelStatus, HighsSolutionStatus};

use super::error::{Infeasibility, PlacementError, Resource};
use super::first_fit::first_fit_plan;
use super::heuristic::{Greedy, greedy};
use super::model::{Plan, SolveStatus, TieBreak, frac, violations};
use super::prepare::{Prepared, replicas_that_fit};
use super::problem::Problem;

/// Models with at most this many (group, cluster) pairs are solved directly; larger ones by
/// column generation. Both prove the SPEC objective and bound the tie-break to within half its
/// budget (`weights.tie_break / 2`).
const DIRECT_LIMIT: usize = 2_000;
/// Clusters per group in the first restricted LP (besides current and heuristic ones).
const INITIAL_PER_GROUP: usize = 3;
/// Most negative-reduced-cost clusters added per group and round.
const ADD_PER_ROUND: usize = 3;
/// Column-generation rounds before falling back to the full model.
const MAX_ROUNDS: usize = 50;

/// Objective coefficients in solver units (the objective × `scale`, constants dropped).
struct Coefs {
    /// Per group, aligned with `cand`.
    x: Vec<Vec<f64>>,
    /// Per service (split groups only), aligned with its group's `cand`.
    n: Vec<Vec<f64>>,
    /// Replica upper bounds, aligned like `n`.
    ub: Vec<Vec<u32>>,
    util: f64,
    /// How column generation treats each group.
    priced: Vec<Priced>,
}

/// Column-generation role of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priced {
    /// Always every usable cluster (multi-member split groups, groups in mixed co-location).
    No,
    /// Non-split: one x per cluster, Σx = 1 (a convexity row).
    Plain,
    /// A single split service: a bundle (x, n) per cluster.
    Split,
}

fn coefs(problem: &Problem, prep: &Prepared) -> Coefs {
    let w = &problem.weights;
    let tb = TieBreak::new(problem);
    let use_tb = w.tie_break > 0.0;
    // One tie-break unit is O(1) in solver units, and the whole tie-break stays ≤ weights.tie_break.
    let scale = if use_tb {
        problem.services.len().max(1) as f64 / w.tie_break
    } else {
        1.0
    };
    let n_services = problem.services.len();
    let mut x = Vec::with_capacity(prep.groups.len());
    let mut n = vec![Vec::new(); n_services];
    let mut ub = vec![Vec::new(); n_services];
    let mut priced: Vec<Priced> = prep
        .groups
        .iter()
        .map(|g| match (g.split, g.members.len()) {
            (false, _) => Priced::Plain,
            (true, 1) => Priced::Split,
            (true, _) => Priced::No,
        })
        .collect();
    for &(a, b) in &prep.mixed {
        priced[a] = Priced::No;
        priced[b] = Priced::No;
    }
    for g in &prep.groups {
        let mut xs = Vec::with_capacity(g.cand.len());
        for &e in &g.cand {
            let c = &problem.clusters[e];
            let mut coef = 0.0;
            if g.split {
                coef += scale * w.deploy * g.members.len() as f64;
                for &s in &g.members {
                    if prep.current[s].contains(&e) {
                        coef -= scale * w.replace;
                    }
                }
            } else {
                for &s in &g.members {
                    // Σ_{e∈Y}(1 − x_e) = (|Y| − 1) + Σ_{e∉Y} x_e because Σx = 1: the constant is dropped.
                    if !prep.current[s].is_empty() && !prep.current[s].contains(&e) {
                        coef += scale * w.replace;
                    }
                    if use_tb {
                        coef += tb.score(problem, prep, s, e);
                    }
                }
                coef += scale * (w.cost * c.cost + w.carbon * c.carbon) * g.cpu;
            }
            xs.push(coef);
        }
        x.push(xs);
        if g.split {
            for &s in &g.members {
                let svc = &problem.services[s];
                let cap = svc.max_replicas_per_cluster();
                for &e in &g.cand {
                    let c = &problem.clusters[e];
                    let mut coef = scale * (w.cost * c.cost + w.carbon * c.carbon) * svc.cpu;
                    if use_tb {
                        coef += tb.score(problem, prep, s, e) / f64::from(svc.replicas);
                    }
                    n[s].push(coef);
                    ub[s].push(replicas_that_fit(
                        svc.cpu,
                        svc.memory,
                        prep.cpu_cap[e],
                        prep.mem_cap[e],
                        cap,
                    ));
                }
            }
        }
    }
    Coefs {
        x,
        n,
        ub,
        util: scale * w.balance,
        priced,
    }
}

/// Where each variable and row of a built model lives.
struct Index {
    n_cols: usize,
    x_col: Vec<Vec<Option<usize>>>,
    n_col: Vec<Vec<Option<usize>>>,
    util_col: Option<usize>,
    /// Σx = 1 of non-split groups.
    assign_row: Vec<Option<usize>>,
    /// Σx ≥ 2 of split groups.
    two_row: Vec<Option<usize>>,
    /// Σn = r of split services.
    sum_row: Vec<Option<usize>>,
    cpu_row: Vec<Option<usize>>,
    mem_row: Vec<Option<usize>>,
    bal_row: Vec<Option<usize>>,
}

/// A model handed to HiGHS plus the bookkeeping to read it back.
struct Built {
    model: highs::Model,
    idx: Index,
}

/// Builds the model over the `active` pairs (per group, aligned with `cand`); `integer: false`
/// gives the LP relaxation.
fn build(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    active: &[Vec<bool>],
    integer: bool,
) -> Result<Built, PlacementError> {
    let n = problem.services.len();
    let m = problem.clusters.len();
    let mut vars = ProblemVariables::new();
    let mut objective = Expression::default();
    let mut n_cols = 0usize;
    let mut x_var = Vec::with_capacity(prep.groups.len());
    let mut x_col = Vec::with_capacity(prep.groups.len());
    let mut n_var = vec![Vec::new(); n];
    let mut n_col = vec![Vec::new(); n];
    for (gi, g) in prep.groups.iter().enumerate() {
        let mut vs = Vec::with_capacity(g.cand.len());
        let mut cs = Vec::with_capacity(g.cand.len());
        for (k, &on) in active[gi].iter().enumerate() {
            if !on {
                vs.push(None);
                cs.push(None);
                continue;
            }
            let def = if integer {
                variable().binary()
            } else {
                variable().clamp(0, 1)
            };
            let v = vars.add(def);
            if co.x[gi][k] != 0.0 {
                objective.add_mul(co.x[gi][k], v);
            }
            vs.push(Some(v));
            cs.push(Some(n_cols));
            n_cols += 1;
        }
        if g.split {
            for &s in &g.members {
                for (k, &on) in active[gi].iter().enumerate() {
                    if !on {
                        n_var[s].push(None);
                        n_col[s].push(None);
                        continue;
                    }
                    let ub = co.ub[s][k];
                    let def = if integer {
                        variable().integer().clamp(0, ub)
                    } else {
                        variable().clamp(0, ub)
                    };
                    let v = vars.add(def);
                    if co.n[s][k] != 0.0 {
                        objective.add_mul(co.n[s][k], v);
                    }
                    n_var[s].push(Some(v));
                    n_col[s].push(Some(n_cols));
                    n_cols += 1;
                }
            }
        }
        x_var.push(vs);
        x_col.push(cs);
    }
    let util = if co.util > 0.0 {
        let v = vars.add(variable().clamp(0, 1));
        objective.add_mul(co.util, v);
        n_cols += 1;
        Some((v, n_cols - 1))
    } else {
        None
    };

    let mut model = vars.minimise(objective).using(highs);
    let mut rows = 0usize;
    let mut add = |model: &mut good_lp::solvers::highs::HighsProblem, c: good_lp::Constraint| {
        model.add_constraint(c);
        rows += 1;
        rows - 1
    };
    let mut assign_row = vec![None; prep.groups.len()];
    let mut two_row = vec![None; prep.groups.len()];
    let mut sum_row = vec![None; n];
    for (gi, g) in prep.groups.iter().enumerate() {
        let mut sum = Expression::default();
        for v in x_var[gi].iter().flatten() {
            sum.add_mul(1.0, *v);
        }
        if !g.split {
            assign_row[gi] = Some(add(&mut model, sum.eq(1.0)));
            continue;
        }
        // ≥ 2 clusters (implied by the per-cluster cap; stated to tighten the LP).
        two_row[gi] = Some(add(&mut model, sum.geq(2.0)));
        for &s in &g.members {
            let mut total = Expression::default();
            for v in n_var[s].iter().flatten() {
                total.add_mul(1.0, *v);
            }
            sum_row[s] = Some(add(
                &mut model,
                total.eq(f64::from(problem.services[s].replicas)),
            ));
        }
        for k in 0..g.cand.len() {
            let Some(xv) = x_var[gi][k] else { continue };
            // Σ_s n[s,e] ≤ (Σ ub)·x: replicas only where the group is deployed.
            let mut hi = Expression::default();
            let mut cap = 0.0;
            for &s in &g.members {
                if let Some(nv) = n_var[s][k] {
                    hi.add_mul(1.0, nv);
                    cap += f64::from(co.ub[s][k]);
                }
            }
            hi.add_mul(-cap, xv);
            add(&mut model, hi.leq(0.0));
            // x ≤ n[s,e]: every member has a replica on every cluster the group uses. For a
            // single service on a cluster it does not run on now, x costs ≥ 0 and an x without
            // replicas is never better, so the row is left out there — unless a co-located
            // non-split service relies on this x.
            let e = g.cand[k];
            let current_here = g.members.iter().any(|&s| prep.current[s].contains(&e));
            let hosts_partner = prep.mixed.iter().any(|&(_, gs)| gs == gi);
            if g.members.len() == 1 && !current_here && !hosts_partner && co.x[gi][k] >= 0.0 {
                continue;
            }
            for &s in &g.members {
                if let Some(nv) = n_var[s][k] {
                    let mut lo = Expression::default();
                    lo.add_mul(1.0, xv);
                    lo.add_mul(-1.0, nv);
                    add(&mut model, lo.leq(0.0));
                }
            }
        }
    }
    for &(gn, gs) in &prep.mixed {
        for (k, &e) in prep.groups[gn].cand.iter().enumerate() {
            let Some(xv) = x_var[gn][k] else { continue };
            let hk = prep.groups[gs].cand.binary_search(&e).ok();
            let mut c = Expression::default();
            c.add_mul(1.0, xv);
            if let Some(xh) = hk.and_then(|hk| x_var[gs][hk]) {
                c.add_mul(-1.0, xh);
            }
            add(&mut model, c.leq(0.0));
        }
    }

    let mut cpu_rows: Vec<Expression> = (0..m).map(|_| Expression::default()).collect();
    let mut mem_rows: Vec<Expression> = (0..m).map(|_| Expression::default()).collect();
    let mut cpu_max = vec![0.0; m];
    let mut mem_max = vec![0.0; m];
    for (gi, g) in prep.groups.iter().enumerate() {
        for (k, &e) in g.cand.iter().enumerate() {
            if g.split {
                for &s in &g.members {
                    if let Some(nv) = n_var[s][k] {
                        let svc = &problem.services[s];
                        cpu_rows[e].add_mul(svc.cpu, nv);
                        mem_rows[e].add_mul(svc.memory, nv);
                        cpu_max[e] += svc.cpu * f64::from(co.ub[s][k]);
                        mem_max[e] += svc.memory * f64::from(co.ub[s][k]);
                    }
                }
            } else if let Some(xv) = x_var[gi][k] {
                cpu_rows[e].add_mul(g.cpu, xv);
                mem_rows[e].add_mul(g.memory, xv);
                cpu_max[e] += g.cpu;
                mem_max[e] += g.memory;
            }
        }
    }
    eviction_cuts(problem, prep, &x_var, &mut model, &mut add);
    let mut cpu_row = vec![None; m];
    let mut mem_row = vec![None; m];
    let mut bal_row = vec![None; m];
    for (e, (cr, mr)) in cpu_rows.into_iter().zip(mem_rows).enumerate() {
        let k = prep.cpu_cap[e];
        if let Some((u, _)) = util
            && k > 0.0
            && cpu_max[e] > 0.0
        {
            let mut r = cr.clone();
            r.add_mul(-k, u);
            bal_row[e] = Some(add(&mut model, r.leq(0.0)));
        }
        // Rows that even the worst case cannot violate are left out.
        if cpu_max[e] > k {
            cpu_row[e] = Some(add(&mut model, cr.leq(k)));
        }
        if mem_max[e] > prep.mem_cap[e] {
            mem_row[e] = Some(add(&mut model, mr.leq(prep.mem_cap[e])));
        }
    }
    let model = model
        .try_into_inner()
        .map_err(|e| PlacementError::Solver(e.to_string()))?;
    Ok(Built {
        model,
        idx: Index {
            n_cols,
            x_col,
            n_col,
            util_col: util.map(|(_, c)| c),
            assign_row,
            two_row,
            sum_row,
            cpu_row,
            mem_row,
            bal_row,
        },
    })
}

/// Valid inequalities for re-placement: when the services currently on a cluster no longer fit
/// there, at most W of them can stay, W = a knapsack bound (exact for one resource and
/// single services). Without them the LP "evicts" fractions of services and its bound is too
/// weak to prove how few moves suffice.
fn eviction_cuts(
    problem: &Problem,
    prep: &Prepared,
    x_var: &[Vec<Option<good_lp::Variable>>],
    model: &mut good_lp::solvers::highs::HighsProblem,
    add: &mut dyn FnMut(&mut good_lp::solvers::highs::HighsProblem, good_lp::Constraint) -> usize,
) {
    let m = problem.clusters.len();
    // Per cluster: (variable, weight = members currently there, cpu, memory) of staying groups.
    let mut items: Vec<Vec<(good_lp::Variable, f64, f64, f64)>> = vec![Vec::new(); m];
    for (gi, g) in prep.groups.iter().enumerate() {
        for (k, &e) in g.cand.iter().enumerate() {
            let here = g
                .members
                .iter()
                .filter(|&&s| prep.current[s].contains(&e))
                .count();
            let Some(v) = x_var[gi][k] else { continue };
            if here == 0 {
                continue;
            }
            // Staying uses the whole group, or one replica per member for split groups.
            let (cpu, mem) = if g.split {
                g.members.iter().fold((0.0, 0.0), |(c, mm), &s| {
                    (c + problem.services[s].cpu, mm + problem.services[s].memory)
                })
            } else {
                (g.cpu, g.memory)
            };
            items[e].push((v, here as f64, cpu, mem));
        }
    }
    for (e, its) in items.iter().enumerate() {
        let total: f64 = its.iter().map(|i| i.1).sum();
        let bound = |size: fn(&(good_lp::Variable, f64, f64, f64)) -> f64, cap: f64| -> f64 {
            // Fractional knapsack, best weight per unit of size first.
            let mut v: Vec<(f64, f64)> = its.iter().map(|i| (i.1, size(i))).collect();
            v.sort_by(|a, b| {
                let ra = if a.1 > 0.0 { a.0 / a.1 } else { f64::INFINITY };
                let rb = if b.1 > 0.0 { b.0 / b.1 } else { f64::INFINITY };
                rb.total_cmp(&ra)
            });
            let (mut room, mut w) = (cap.max(0.0) * (1.0 + 1e-9) + 1e-9, 0.0);
            for (wt, sz) in v {
                if sz <= room {
                    room -= sz;
                    w += wt;
                } else {
                    w += wt * room / sz;
                    break;
                }
            }
            (w + 1e-9).floor()
        };
        let keep = bound(|i| i.2, prep.cpu_cap[e]).min(bound(|i| i.3, prep.mem_cap[e]));
        if keep < total {
            let mut c = Expression::default();
            for &(v, w, _, _) in its {
                c.add_mul(w, v);
            }
            add(model, c.leq(keep));
        }
    }
}

fn set_option<V: highs::HighsOptionValue>(
    hm: &mut highs::Model,
    name: &str,
    value: V,
) -> Result<(), PlacementError> {
    hm.try_set_option(name, value)
        .map_err(|_| PlacementError::Solver(format!("HiGHS rejected option {name}")))
}

/// What one HiGHS run produced.
struct Run {
    status: HighsModelStatus,
    feasible: bool,
    objective: f64,
    gap: f64,
    cols: Vec<f64>,
    row_duals: Vec<f64>,
    col_duals: Vec<f64>,
}

fn run(
    built: Built,
    time_limit: f64,
    rel_gap: f64,
    abs_gap: f64,
    start: Option<Vec<f64>>,
) -> Result<(Run, Index), PlacementError> {
    let Built { mut model, idx } = built;
    // One thread and a fixed seed: the same input gives the same placement on every run.
    set_option(&mut model, "threads", 1)?;
    set_option(&mut model, "parallel", "off")?;
    set_option(&mut model, "random_seed", 0)?;
    set_option(&mut model, "time_limit", time_limit.max(0.001))?;
    set_option(&mut model, "mip_rel_gap", rel_gap)?;
    set_option(&mut model, "mip_abs_gap", abs_gap.max(1e-9))?;
    if let Some(cols) = start
        && cols.len() == idx.n_cols
    {
        // A rejected start only costs time; the solve proceeds without it.
        let _ = model.try_set_solution(Some(&cols), None, None, None);
    }
    let solved = model
        .try_solve()
        .map_err(|e| PlacementError::Solver(format!("HiGHS failed: {e:?}")))?;
    let status = solved.status();
    // Read the raw value: the binding's typed accessor panics on "not set" (-1).
    let feasible = solved
        .int_info_value(c"primal_solution_status")
        .is_ok_and(|v| v == HighsSolutionStatus::Feasible as i64);
    let gap = solved.mip_gap();
    let sol = solved.get_solution();
    Ok((
        Run {
            status,
            feasible,
            objective: solved.objective_value(),
            gap: if gap.is_finite() { gap.max(0.0) } else { 0.0 },
            cols: sol.columns().to_vec(),
            row_duals: sol.dual_rows().to_vec(),
            col_duals: sol.dual_columns().to_vec(),
        },
        idx,
    ))
}

/// Builds and solves the MILP over `active`, warm-started from `start`; returns the run and the
/// plan read from it (`None` when HiGHS has no solution). HiGHS 1.16 can return the start's
/// columns together with the objective of a better solution it found in presolved space; when
/// the columns do not match its objective the solve is repeated without the start.
#[allow(clippy::too_many_arguments)]
fn mip(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    active: &[Vec<bool>],
    start: Option<&Plan>,
    time_limit: f64,
    rel_gap: f64,
    abs_gap: f64,
) -> Result<(Run, Option<Plan>), PlacementError> {
    let built = build(problem, prep, co, active, true)?;
    let cols = start.and_then(|p| start_columns(problem, prep, &built.idx, p));
    let had_start = cols.is_some();
    let (out, idx) = run(built, time_limit, rel_gap, abs_gap, cols)?;
    let plan = out
        .feasible
        .then(|| read_plan(problem, prep, &idx, &out.cols));
    let consistent = plan.as_ref().is_none_or(|p| {
        let c = plan_cost(problem, prep, co, p);
        (c - out.objective).abs() <= 1e-6 * c.abs().max(out.objective.abs()).max(1.0)
    });
    if consistent || !had_start {
        return Ok((out, plan));
    }
    let built = build(problem, prep, co, active, true)?;
    let (out, idx) = run(built, time_limit, rel_gap, abs_gap, None)?;
    let plan = out
        .feasible
        .then(|| read_plan(problem, prep, &idx, &out.cols));
    Ok((out, plan))
}

/// Column values of `plan` for a warm start, or `None` if it uses a pair missing from the model.
fn start_columns(problem: &Problem, prep: &Prepared, idx: &Index, plan: &Plan) -> Option<Vec<f64>> {
    let mut cols = vec![0.0; idx.n_cols];
    for (gi, g) in prep.groups.iter().enumerate() {
        let first = g.members[0];
        for &(e, _) in &plan.shares[first] {
            let k = g.cand.binary_search(&e).ok()?;
            cols[idx.x_col[gi][k]?] = 1.0;
        }
        if g.split {
            for &s in &g.members {
                for &(e, r) in &plan.shares[s] {
                    let k = g.cand.binary_search(&e).ok()?;
                    cols[idx.n_col[s][k]?] = f64::from(r);
                }
            }
        }
    }
    if let Some(c) = idx.util_col {
        cols[c] = max_utilisation(problem, prep, plan);
    }
    Some(cols)
}

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
    solve_with(problem, prep, false)
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
        if !violations(problem, prep, &plan).is_empty() {
            continue;
        }
        let c = plan_cost(problem, prep, &co, &plan);
        tracing::debug!(heuristic = i, cost = c, "placement: heuristic incumbent");
        if incumbent.as_ref().is_none_or(|(best, _)| c < *best) {
            incumbent = Some((c, plan));
        }
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
    let pairs: usize = prep.groups.iter().map(|g| g.cand.len()).sum();
    let large = force_column_generation || pairs > DIRECT_LIMIT;
    let incumbent = match incumbent {
        Some(inc) if large => inc,
        other => {
            let start = other.map(|(_, p)| p);
            return direct(
                problem,
                prep,
                &co,
                start.as_ref(),
                rel_gap,
                abs_tol,
                time_limit,
            );
        }
    };
    let tol = |ub: f64| abs_tol.max(rel_gap * ub.abs());
    column_generation(
        problem, prep, &co, incumbent, rel_gap, abs_tol, &tol, started, time_limit, &left,
    )
}

fn all_active(prep: &Prepared) -> Vec<Vec<bool>> {
    prep.groups
        .iter()
        .map(|g| vec![true; g.cand.len()])
        .collect()
}

/// The full model in one HiGHS run, warm-started from `start`.
fn direct(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    start: Option<&Plan>,
    rel_gap: f64,
    abs_gap: f64,
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
    )?;
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

/// Rounds an LP solution to a plan: split services keep their LP replica counts (rounded by
/// largest remainder within the caps), then each other group goes to its highest-valued cluster
/// with room, most decided groups first. `None` if that does not fit (or co-location links
/// groups of both kinds, which this rounding does not handle).
fn round_lp(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    idx: &Index,
    cols: &[f64],
) -> Option<Plan> {
    if !prep.mixed.is_empty() {
        return None;
    }
    let val = |c: Option<usize>| c.and_then(|c| cols.get(c).copied()).unwrap_or(0.0);
    let mut cpu_left = prep.cpu_cap.clone();
    let mut mem_left = prep.mem_cap.clone();
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); problem.services.len()];
    for (gi, g) in prep.groups.iter().enumerate().filter(|(_, g)| g.split) {
        // Co-located split services must share clusters: take the first member's support.
        let mut support: Option<Vec<usize>> = None;
        for &s in &g.members {
            let svc = &problem.services[s];
            let cap = svc.max_replicas_per_cluster();
            let mut counts: Vec<(usize, u32, f64)> = g
                .cand
                .iter()
                .enumerate()
                .filter(|(k, _)| idx.n_col[s][*k].is_some() && idx.x_col[gi][*k].is_some())
                .map(|(k, &e)| {
                    let v = val(idx.n_col[s][k]).max(0.0);
                    (e, (v.floor() as u32).min(cap), v - v.floor())
                })
                .collect();
            let mut left = svc
                .replicas
                .saturating_sub(counts.iter().map(|c| c.1).sum());
            counts.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
            for c in counts.iter_mut() {
                if left == 0 {
                    break;
                }
                if c.1 < cap && c.2 > 1e-6 {
                    c.1 += 1;
                    left -= 1;
                }
            }
            if left > 0 {
                return None;
            }
            let mut mine: Vec<(usize, u32)> = counts
                .into_iter()
                .filter(|c| c.1 > 0)
                .map(|c| (c.0, c.1))
                .collect();
            mine.sort_unstable();
            let used: Vec<usize> = mine.iter().map(|c| c.0).collect();
            if support.as_ref().is_some_and(|sup| *sup != used) {
                return None;
            }
            support = Some(used);
            for &(e, r) in &mine {
                cpu_left[e] -= svc.cpu * f64::from(r);
                mem_left[e] -= svc.memory * f64::from(r);
            }
            shares[s] = mine;
        }
    }
    let mut plain: Vec<(f64, usize)> = prep
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.split)
        .map(|(gi, _)| {
            let best = idx.x_col[gi].iter().map(|c| val(*c)).fold(0.0, f64::max);
            (best, gi)
        })
        .collect();
    plain.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, gi) in plain {
        let g = &prep.groups[gi];
        // Highest LP value first, then the cheapest of the remaining clusters.
        let mut options: Vec<(f64, f64, usize)> = g
            .cand
            .iter()
            .enumerate()
            .map(|(k, &e)| (val(idx.x_col[gi][k]), co.x[gi][k], e))
            .collect();
        options.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        let &(_, _, e) = options.iter().find(|&&(_, _, e)| {
            super::prepare::fits(g.cpu, cpu_left[e]) && super::prepare::fits(g.memory, mem_left[e])
        })?;
        cpu_left[e] -= g.cpu;
        mem_left[e] -= g.memory;
        for &s in &g.members {
            shares[s] = vec![(e, problem.services[s].replicas)];
        }
    }
    Some(Plan { shares })
}

/// Pricing of one pair missing from the restricted model.
#[derive(Debug, Clone, Copy)]
struct Price {
    /// Lower bound (≤ 0) on how much adding it could lower the LP optimum: for plain groups the
    /// group bound is the minimum over its pairs (Σx = 1), for split bundles they add up.
    bound: f64,
    /// Once no pair has a negative bound (the LP is optimal over every pair): the least increase
    /// of the objective, relative to z_LP, of any placement that uses this pair.
    increase: f64,
}

/// Prices every missing pair of the column-generated groups under the LP row duals `y`
/// (HiGHS convention: reduced cost = c − Aᵀy).
fn price(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    idx: &Index,
    y: &[f64],
    col_duals: &[f64],
    active: &[Vec<bool>],
) -> Vec<Vec<Option<Price>>> {
    let dual = |r: Option<usize>| r.and_then(|r| y.get(r).copied()).unwrap_or(0.0);
    let cap_dual = |e: usize, cpu: f64, mem: f64| {
        cpu * (dual(idx.cpu_row[e]) + dual(idx.bal_row[e])) + mem * dual(idx.mem_row[e])
    };
    prep.groups
        .iter()
        .enumerate()
        .map(|(gi, g)| match co.priced[gi] {
            Priced::No => vec![None; g.cand.len()],
            Priced::Plain => {
                let pi = dual(idx.assign_row[gi]);
                // Missing pairs are in no row besides these (current clusters, the only ones in
                // eviction cuts, are always in the model); present ones use HiGHS' own value.
                let rc: Vec<f64> = g
                    .cand
                    .iter()
                    .enumerate()
                    .map(|(k, &e)| match idx.x_col[gi][k] {
                        Some(c) => col_duals.get(c).copied().unwrap_or(0.0),
                        None => co.x[gi][k] - pi - cap_dual(e, g.cpu, g.memory),
                    })
                    .collect();
                // The basic pair has reduced cost 0; measure against the best present one.
                let base = rc
                    .iter()
                    .zip(&active[gi])
                    .filter(|(_, a)| **a)
                    .map(|(r, _)| *r)
                    .fold(f64::INFINITY, f64::min);
                let base = if base.is_finite() { base } else { 0.0 };
                rc.iter()
                    .enumerate()
                    .map(|(k, r)| {
                        (!active[gi][k]).then(|| Price {
                            bound: (r - base).min(0.0),
                            increase: r - base,
                        })
                    })
                    .collect()
            }
            Priced::Split => {
                let s = g.members[0];
                let svc = &problem.services[s];
                let sigma = dual(idx.two_row[gi]);
                let pi = dual(idx.sum_row[s]);
                g.cand
                    .iter()
                    .enumerate()
                    .map(|(k, &e)| {
                        if active[gi][k] {
                            return None;
                        }
                        // Bundle (x, n ≤ u·x): a = reduced cost of a replica, b = of deploying.
                        // The new linking row gets the dual −t (t ≥ 0) that proves the most.
                        let a = co.n[s][k] - pi - cap_dual(e, svc.cpu, svc.memory);
                        let b = co.x[gi][k] - sigma;
                        let u = f64::from(co.ub[s][k].max(1));
                        let f = |t: f64| u * (a + t).min(0.0) + (b - u * t).min(0.0);
                        let bound = [0.0, (-a).max(0.0), (b / u).max(0.0)]
                            .into_iter()
                            .map(f)
                            .fold(f64::NEG_INFINITY, f64::max);
                        let t = (-a).max(0.0);
                        Some(Price {
                            bound,
                            increase: (a + t) + (b - u * t),
                        })
                    })
                    .collect()
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn column_generation(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    incumbent: (f64, Plan),
    rel_gap: f64,
    abs_tol: f64,
    tol: &dyn Fn(f64) -> f64,
    started: Instant,
    time_limit: f64,
    left: &dyn Fn() -> f64,
) -> Result<(Plan, SolveStatus), PlacementError> {
    let (mut ub, mut best) = incumbent;
    // Start: current clusters, the incumbent's clusters and the cheapest few per group.
    let mut active: Vec<Vec<bool>> = Vec::with_capacity(prep.groups.len());
    for (gi, g) in prep.groups.iter().enumerate() {
        if co.priced[gi] == Priced::No {
            active.push(vec![true; g.cand.len()]);
            continue;
        }
        let mut a = vec![false; g.cand.len()];
        for &s in &g.members {
            for &e in prep.current[s]
                .iter()
                .chain(best.shares[s].iter().map(|(e, _)| e))
            {
                if let Ok(k) = g.cand.binary_search(&e) {
                    a[k] = true;
                }
            }
        }
        let cost = |k: usize| match co.priced[gi] {
            Priced::Split => {
                co.x[gi][k] + co.n[g.members[0]][k] * f64::from(co.ub[g.members[0]][k])
            }
            _ => co.x[gi][k],
        };
        let mut order: Vec<usize> = (0..g.cand.len()).collect();
        order.sort_by(|&p, &q| cost(p).total_cmp(&cost(q)).then(p.cmp(&q)));
        for k in order.into_iter().take(INITIAL_PER_GROUP) {
            a[k] = true;
        }
        active.push(a);
    }

    let mut lb = f64::NEG_INFINITY;
    let mut converged: Option<(f64, Vec<Vec<Option<Price>>>)> = None;
    for _ in 0..MAX_ROUNDS {
        if started.elapsed().as_secs_f64() >= time_limit {
            break;
        }
        let built = build(problem, prep, co, &active, false)?;
        let (out, idx) = run(built, left(), rel_gap, abs_tol, None)?;
        if out.status != HighsModelStatus::Optimal {
            break;
        }
        // The LP optimum is often integral or nearly so: a rounded copy is a cheap incumbent.
        if let Some(plan) = round_lp(problem, prep, co, &idx, &out.cols) {
            let c = plan_cost(problem, prep, co, &plan);
            if c < ub && violations(problem, prep, &plan).is_empty() {
                // Its pairs join the model so the MILP can start from it.
                for (gi, g) in prep.groups.iter().enumerate() {
                    for &(e, _) in &plan.shares[g.members[0]] {
                        if let Ok(k) = g.cand.binary_search(&e) {
                            active[gi][k] = true;
                        }
                    }
                }
                ub = c;
                best = plan;
            }
        }
        let prices = price(
            problem,
            prep,
            co,
            &idx,
            &out.row_duals,
            &out.col_duals,
            &active,
        );
        let mut bound = 0.0;
        let mut added = 0usize;
        for (gi, g_prices) in prices.iter().enumerate() {
            let mut neg: Vec<(f64, usize)> = g_prices
                .iter()
                .enumerate()
                .filter_map(|(k, p)| p.map(|p| (p.bound, k)))
                .filter(|(b, _)| *b < -1e-7)
                .collect();
            bound += match co.priced[gi] {
                Priced::Plain => neg.iter().map(|(b, _)| *b).fold(0.0, f64::min),
                _ => neg.iter().map(|(b, _)| *b).sum(),
            };
            neg.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, k) in neg.iter().take(ADD_PER_ROUND) {
                active[gi][k] = true;
                added += 1;
            }
        }
        lb = lb.max(out.objective + bound);
        if added == 0 {
            converged = Some((out.objective, prices));
            break;
        }
        if ub - lb <= tol(ub) {
            break;
        }
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        ub,
        lb,
        tol = tol(ub),
        converged = converged.is_some(),
        active = active.iter().flatten().filter(|a| **a).count(),
        "placement: column generation done"
    );
    if ub - lb <= tol(ub) {
        return Ok((best, SolveStatus::Optimal { gap: rel(ub, lb) }));
    }

    // Without converged prices, the restricted MILP finds an incumbent the bound may prove.
    // With them, reduced-cost fixing below builds the model that proves the optimum directly,
    // so this step is skipped: over a few clusters per group the packing is tight and HiGHS
    // could spend seconds on it where the fixed model takes a fraction (one 200×50
    // re-placement: 2.0 s → 0.6 s; `smo bench placement`).
    let plan = if converged.is_none() {
        mip(
            problem,
            prep,
            co,
            &active,
            Some(&best),
            left(),
            rel_gap,
            abs_tol,
        )?
        .1
    } else {
        None
    };
    if let Some(plan) = plan {
        let plan = checked(problem, prep, plan)?;
        let c = plan_cost(problem, prep, co, &plan);
        if c < ub {
            ub = c;
            best = plan;
        }
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        ub,
        lb,
        "placement: restricted MILP done"
    );
    if ub - lb <= tol(ub) {
        return Ok((best, SolveStatus::Optimal { gap: rel(ub, lb) }));
    }
    if started.elapsed().as_secs_f64() >= time_limit {
        return Ok((best, SolveStatus::Feasible { gap: rel(ub, lb) }));
    }

    // Reduced-cost fixing: a pair whose use costs at least z_LP + its increase cannot improve
    // the incumbent by more than the tolerance, so only the others join the final model.
    match &converged {
        Some((z, prices)) => {
            let threshold = ub - tol(ub) - z;
            for (gi, g_prices) in prices.iter().enumerate() {
                for (k, p) in g_prices.iter().enumerate() {
                    if let Some(p) = p
                        && p.increase <= threshold
                    {
                        active[gi][k] = true;
                    }
                }
            }
        }
        None => active = all_active(prep),
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        active = active.iter().flatten().filter(|a| **a).count(),
        "placement: final MILP over the pairs reduced-cost fixing kept"
    );
    let (out, plan) = mip(
        problem,
        prep,
        co,
        &active,
        Some(&best),
        left(),
        rel_gap,
        abs_tol,
    )?;
    match finish(problem, prep, &out, plan, time_limit) {
        // HiGHS' bound covers the pairs left out too: they cannot beat the incumbent.
        Ok((plan, SolveStatus::Feasible { gap })) => {
            let own = rel(plan_cost(problem, prep, co, &plan), lb);
            Ok((plan, SolveStatus::Feasible { gap: gap.min(own) }))
        }
        Ok(done) => Ok(done),
        Err(PlacementError::NoSolutionWithinTimeLimit { .. }) => {
            Ok((best, SolveStatus::Feasible { gap: rel(ub, lb) }))
        }
        Err(e) => Err(e),
    }
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
