//! The model: coefficients per (group, cluster) pair, the good_lp problem over the usable pairs
//! (or a restricted set of columns), eviction cuts, and one HiGHS run with its options.

use super::*;

/// Objective coefficients in solver units (the objective × `scale`, constants dropped).
pub(super) struct Coefs {
    /// Per group, aligned with `cand`.
    pub(super) x: Vec<Vec<f64>>,
    /// Per service (split groups only), aligned with its group's `cand`.
    pub(super) n: Vec<Vec<f64>>,
    /// Replica upper bounds, aligned like `n`.
    pub(super) ub: Vec<Vec<u32>>,
    pub(super) util: f64,
    /// How column generation treats each group.
    pub(super) priced: Vec<Priced>,
    /// The SPEC objective's part of `x`, when that part moves in whole steps of `scale` (integral
    /// weights; cost, carbon and balance off: the defaults) and the tie-break rides on top.
    pub(super) spec: Option<Spec>,
}

/// What makes a lower bound on the SPEC objective integral (see [`spec_floor`]).
pub(super) struct Spec {
    /// Per group, aligned with `cand`: `x`'s coefficient without its tie-break.
    pub(super) x: Vec<Vec<f64>>,
    /// One step of the SPEC objective in solver units.
    pub(super) step: f64,
    /// The most the tie-break can add to any placement, in solver units.
    pub(super) tie_break_max: f64,
    /// Whether placements differ in the SPEC objective. When none does (a first placement at
    /// the default weights: no moves to count, nothing split) a model small enough for one
    /// HiGHS run is solved once, with the tie-break: solving the SPEC objective first only found
    /// a feasible placement twice (tight 200×50 first placements took 3.8× the reference's
    /// time). Column generation still starts from it: its columns made 2,000×200 first
    /// placements faster (0.19 s against 0.32 s).
    pub(super) varies: bool,
}

/// The least the SPEC part of the objective can be, given `lb`, a lower bound on the whole
/// objective: it moves in whole steps and the tie-break adds at most `tie_break_max`, so the
/// SPEC part is at least `lb − tie_break_max` rounded *up* to a step. A bound of 16.3 moves thus
/// proves 17, which the tie-break's fractions hide from HiGHS (it only uses an objective's
/// integrality when every coefficient is integral). Stated as a row it tightens the final MILP's
/// bound; alone it did not make the slow 200×50 re-placements fast — solving the SPEC objective
/// first (`spec_first` in `milp/mod.rs`) did, and its optimum is the `lb` given here then.
pub(super) fn spec_floor(co: &Coefs, lb: f64) -> Option<f64> {
    let s = co.spec.as_ref()?;
    let steps = ((lb - s.tie_break_max) / s.step - 1e-6).ceil();
    steps.is_finite().then_some(steps * s.step)
}

/// Column-generation role of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Priced {
    /// Always every usable cluster (multi-member split groups, groups in mixed co-location).
    No,
    /// Non-split: one x per cluster, Σx = 1 (a convexity row).
    Plain,
    /// A single split service: a bundle (x, n) per cluster.
    Split,
}

pub(super) fn coefs(problem: &Problem, prep: &Prepared) -> Coefs {
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
    let whole = |v: f64| v.fract() == 0.0;
    let integral = use_tb
        && whole(w.deploy)
        && whole(w.replace)
        && w.cost == 0.0
        && w.carbon == 0.0
        && w.balance == 0.0;
    let mut spec_x = Vec::with_capacity(prep.groups.len());
    let mut tie_break_max = 0.0;
    for g in &prep.groups {
        let mut xs = Vec::with_capacity(g.cand.len());
        let mut spec_xs = Vec::with_capacity(g.cand.len());
        let mut most = 0.0f64;
        for &e in &g.cand {
            let c = &problem.clusters[e];
            let mut coef = 0.0;
            let mut tie = 0.0;
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
                        tie += tb.score(problem, prep, s, e);
                    }
                }
                coef += scale * (w.cost * c.cost + w.carbon * c.carbon) * g.cpu;
            }
            spec_xs.push(coef);
            most = most.max(tie);
            xs.push(coef + tie);
        }
        tie_break_max += most;
        x.push(xs);
        spec_x.push(spec_xs);
        if g.split {
            for &s in &g.members {
                let svc = &problem.services[s];
                let cap = svc.max_replicas_per_cluster();
                // At most every replica where it scores worst.
                let mut most_n = 0.0f64;
                for &e in &g.cand {
                    let c = &problem.clusters[e];
                    let mut coef = scale * (w.cost * c.cost + w.carbon * c.carbon) * svc.cpu;
                    if use_tb {
                        let tie = tb.score(problem, prep, s, e) / f64::from(svc.replicas);
                        coef += tie;
                        most_n = most_n.max(tie);
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
                tie_break_max += most_n * f64::from(svc.replicas);
            }
        }
    }
    // A split group's objective grows with the clusters it spreads over; any other group's
    // varies when its candidates' coefficients do.
    let varies = prep
        .groups
        .iter()
        .zip(&spec_x)
        .any(|(g, xs): (_, &Vec<f64>)| {
            if g.split {
                xs.iter().any(|c| *c != 0.0)
            } else {
                xs.windows(2).any(|p| p[0] != p[1])
            }
        });
    Coefs {
        x,
        n,
        ub,
        util: scale * w.balance,
        priced,
        spec: integral.then_some(Spec {
            x: spec_x,
            varies,
            step: scale,
            tie_break_max,
        }),
    }
}

/// Where each variable and row of a built model lives.
pub(super) struct Index {
    pub(super) n_cols: usize,
    pub(super) x_col: Vec<Vec<Option<usize>>>,
    pub(super) n_col: Vec<Vec<Option<usize>>>,
    pub(super) util_col: Option<usize>,
    /// Σx = 1 of non-split groups.
    pub(super) assign_row: Vec<Option<usize>>,
    /// Σx ≥ 2 of split groups.
    pub(super) two_row: Vec<Option<usize>>,
    /// Σn = r of split services.
    pub(super) sum_row: Vec<Option<usize>>,
    pub(super) cpu_row: Vec<Option<usize>>,
    pub(super) mem_row: Vec<Option<usize>>,
    pub(super) bal_row: Vec<Option<usize>>,
}

/// A model handed to HiGHS plus the bookkeeping to read it back.
pub(super) struct Built {
    pub(super) model: highs::Model,
    pub(super) idx: Index,
}

/// Builds the model over the `active` pairs (per group, aligned with `cand`); `integer: false`
/// gives the LP relaxation.
pub(super) fn build(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    active: &[Vec<bool>],
    integer: bool,
    floor: Option<f64>,
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
    if let (Some(floor), Some(spec)) = (floor, &co.spec) {
        // The SPEC objective's floor ([`spec_floor`]): valid for every placement.
        let mut row = Expression::default();
        for (gi, vs) in x_var.iter().enumerate() {
            for (k, v) in vs.iter().enumerate() {
                if let Some(v) = v
                    && spec.x[gi][k] != 0.0
                {
                    row.add_mul(spec.x[gi][k], *v);
                }
            }
        }
        add(&mut model, row.geq(floor));
    }
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
pub(super) fn eviction_cuts(
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

pub(super) fn set_option<V: highs::HighsOptionValue>(
    hm: &mut highs::Model,
    name: &str,
    value: V,
) -> Result<(), PlacementError> {
    hm.try_set_option(name, value)
        .map_err(|_| PlacementError::Solver(format!("HiGHS rejected option {name}")))
}

/// What one HiGHS run produced.
pub(super) struct Run {
    pub(super) status: HighsModelStatus,
    pub(super) feasible: bool,
    pub(super) objective: f64,
    pub(super) gap: f64,
    pub(super) cols: Vec<f64>,
    pub(super) row_duals: Vec<f64>,
    pub(super) col_duals: Vec<f64>,
}

pub(super) fn run(
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
pub(super) fn mip(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    active: &[Vec<bool>],
    start: Option<&Plan>,
    time_limit: f64,
    rel_gap: f64,
    abs_gap: f64,
    floor: Option<f64>,
) -> Result<(Run, Option<Plan>), PlacementError> {
    let built = build(problem, prep, co, active, true, floor)?;
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
    tracing::debug!("placement: HiGHS answered with the start's columns; solving again without it");
    let built = build(problem, prep, co, active, true, floor)?;
    let (out, idx) = run(built, time_limit, rel_gap, abs_gap, None)?;
    let plan = out
        .feasible
        .then(|| read_plan(problem, prep, &idx, &out.cols));
    Ok((out, plan))
}

/// Column values of `plan` for a warm start, or `None` if it uses a pair missing from the model.
pub(super) fn start_columns(
    problem: &Problem,
    prep: &Prepared,
    idx: &Index,
    plan: &Plan,
) -> Option<Vec<f64>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{instances, prepare::prepare};

    /// A first placement at the default weights counts every service once wherever it goes:
    /// its SPEC objective does not vary (so a small model is solved once, not twice); a
    /// re-placement's counts moves.
    #[test]
    fn the_spec_objective_is_solved_first_only_when_placements_differ_in_it() {
        let first = instances::reference_family(7, 40, 8, 1.3);
        let prep = prepare(&first).unwrap();
        let spec = coefs(&first, &prep).spec.expect("integral weights");
        assert!(
            !spec.varies,
            "a first placement's SPEC objective is the same everywhere"
        );
        let again = instances::replacement(7, &first).unwrap();
        let prep = prepare(&again).unwrap();
        let spec = coefs(&again, &prep).spec.expect("integral weights");
        assert!(spec.varies, "a re-placement counts moves");
        assert!(spec.step > 0.0 && spec.tie_break_max > 0.0);
    }
}
