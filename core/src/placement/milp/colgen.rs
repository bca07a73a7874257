//! Column generation for large models: the LP over a few promising clusters per group, pricing
//! the missing pairs with its duals, the Lagrangian bound, reduced-cost fixing.

use super::*;

/// Rounds an LP solution to a plan: split services keep their LP replica counts (rounded by
/// largest remainder within the caps), then each other group goes to its highest-valued cluster
/// with room, most decided groups first. `None` if that does not fit (or co-location links
/// groups of both kinds, which this rounding does not handle).
pub(super) fn round_lp(
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
            crate::placement::prepare::fits(g.cpu, cpu_left[e])
                && crate::placement::prepare::fits(g.memory, mem_left[e])
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
pub(super) struct Price {
    /// Lower bound (≤ 0) on how much adding it could lower the LP optimum: for plain groups the
    /// group bound is the minimum over its pairs (Σx = 1), for split bundles they add up.
    pub(super) bound: f64,
    /// Once no pair has a negative bound (the LP is optimal over every pair): the least increase
    /// of the objective, relative to z_LP, of any placement that uses this pair.
    pub(super) increase: f64,
}

/// Prices every missing pair of the column-generated groups under the LP row duals `y`
/// (HiGHS convention: reduced cost = c − Aᵀy).
pub(super) fn price(
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
pub(super) fn column_generation(
    problem: &Problem,
    prep: &Prepared,
    co: &Coefs,
    incumbent: (f64, Plan),
    floor: Option<f64>,
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

    // A bound proven before (the SPEC objective alone), else none yet.
    let mut lb = floor.unwrap_or(f64::NEG_INFINITY);
    let mut converged: Option<(f64, Vec<Vec<Option<Price>>>)> = None;
    for _ in 0..MAX_ROUNDS {
        if started.elapsed().as_secs_f64() >= time_limit {
            break;
        }
        let built = build(problem, prep, co, &active, false, None)?;
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
            spec_floor(co, lb),
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
        spec_floor(co, lb),
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
