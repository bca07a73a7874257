//! The MILP of SPEC §2 over good_lp, solved by HiGHS, plus objective evaluation of any plan.
//!
//! Variables exist only for usable (group, cluster) pairs: x[g,e] ∈ {0,1} per co-location group
//! (a group's services share one x), and for split (HA) services an integer replica count
//! n[s,e] ∈ [0, ⌈r/2⌉]. The reported objective is always recomputed from the plan by
//! [`evaluate`], so solver scaling never leaks into results.

use good_lp::solvers::highs::highs;
use good_lp::{Expression, ProblemVariables, SolverModel, Variable, variable};
use highs::{HighsModelStatus, HighsSolutionStatus};
use serde::{Deserialize, Serialize};

use super::error::{Infeasibility, PlacementError, Resource};
use super::prepare::{Prepared, fits, replicas_that_fit};
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

fn frac(need: f64, free: f64) -> f64 {
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

/// A quick feasible plan for HiGHS to start from: keep current clusters where possible, else the
/// best tie-break score with room. Returns `None` when the greedy gets stuck (the solver then
/// starts from scratch).
fn greedy_start(problem: &Problem, prep: &Prepared, tb: &TieBreak) -> Option<Plan> {
    let n = problem.services.len();
    let mut cpu_left = prep.cpu_cap.clone();
    let mut mem_left = prep.mem_cap.clone();
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    let mut clusters_of_group: Vec<Vec<usize>> = vec![Vec::new(); prep.groups.len()];
    // Split groups first: non-split partners must land inside their cluster sets.
    let order = prep
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.split)
        .chain(prep.groups.iter().enumerate().filter(|(_, g)| !g.split));
    for (gi, g) in order {
        let keep = |e: usize| {
            g.members
                .iter()
                .filter(|&&s| prep.current[s].contains(&e))
                .count()
        };
        let mut cand = g.cand.clone();
        for &(gn, gs) in &prep.mixed {
            if gn == gi {
                cand.retain(|e| clusters_of_group[gs].contains(e));
            }
        }
        let score = |e: usize| {
            g.members
                .iter()
                .map(|&s| tb.score(problem, prep, s, e))
                .sum::<f64>()
        };
        cand.sort_by(|&a, &b| keep(b).cmp(&keep(a)).then(score(a).total_cmp(&score(b))));
        if g.split {
            let chosen = split_greedy(
                problem,
                prep,
                g,
                &cand,
                &mut cpu_left,
                &mut mem_left,
                &mut shares,
            )?;
            clusters_of_group[gi] = chosen;
        } else {
            let e = *cand
                .iter()
                .find(|&&e| fits(g.cpu, cpu_left[e]) && fits(g.memory, mem_left[e]))?;
            cpu_left[e] -= g.cpu;
            mem_left[e] -= g.memory;
            for &s in &g.members {
                shares[s] = vec![(e, problem.services[s].replicas)];
            }
            clusters_of_group[gi] = vec![e];
        }
    }
    Some(Plan { shares })
}

/// Spreads every member of a split group over the same clusters: grow the cluster set in `cand`
/// order until each member's replicas fit with the per-cluster cap and ≥ 1 replica everywhere.
fn split_greedy(
    problem: &Problem,
    prep: &Prepared,
    g: &super::prepare::Group,
    cand: &[usize],
    cpu_left: &mut [f64],
    mem_left: &mut [f64],
    shares: &mut [Vec<(usize, u32)>],
) -> Option<Vec<usize>> {
    let _ = prep;
    for k in 2..=cand.len() {
        let set: Vec<usize> = cand[..k].to_vec();
        let mut cl = cpu_left.to_vec();
        let mut ml = mem_left.to_vec();
        let mut tentative: Vec<(usize, Vec<(usize, u32)>)> = Vec::new();
        let mut ok = true;
        for &s in &g.members {
            let svc = &problem.services[s];
            let cap = svc.max_replicas_per_cluster();
            let mut counts = vec![0u32; k];
            // One replica everywhere, then fill in order.
            let mut left = svc.replicas;
            for (i, &e) in set.iter().enumerate() {
                if left == 0 || !fits(svc.cpu, cl[e]) || !fits(svc.memory, ml[e]) {
                    ok = false;
                    break;
                }
                counts[i] = 1;
                cl[e] -= svc.cpu;
                ml[e] -= svc.memory;
                left -= 1;
            }
            if !ok {
                break;
            }
            for (i, &e) in set.iter().enumerate() {
                let more =
                    replicas_that_fit(svc.cpu, svc.memory, cl[e], ml[e], cap - counts[i]).min(left);
                counts[i] += more;
                cl[e] -= svc.cpu * f64::from(more);
                ml[e] -= svc.memory * f64::from(more);
                left -= more;
            }
            if left > 0 {
                ok = false;
                break;
            }
            tentative.push((s, set.iter().copied().zip(counts).collect()));
        }
        if ok {
            cpu_left.copy_from_slice(&cl);
            mem_left.copy_from_slice(&ml);
            for (s, mut v) in tentative {
                v.sort_unstable();
                shares[s] = v;
            }
            let mut set = set;
            set.sort_unstable();
            return Some(set);
        }
    }
    None
}

/// Solves the MILP. `prep` must come from `prepare(problem)`.
pub(crate) fn solve(
    problem: &Problem,
    prep: &Prepared,
) -> Result<(Plan, SolveStatus), PlacementError> {
    let n = problem.services.len();
    let m = problem.clusters.len();
    let w = &problem.weights;
    let tb = TieBreak::new(problem);
    let use_tb = w.tie_break > 0.0;
    // Scale so one tie-break unit is O(1) and the whole tie-break stays within weights.tie_break.
    let scale = if use_tb { tb.n / w.tie_break } else { 1.0 };

    let mut vars = ProblemVariables::new();
    let mut n_cols = 0usize;
    let mut add =
        |vars: &mut ProblemVariables, def: good_lp::VariableDefinition| -> (Variable, usize) {
            let v = vars.add(def);
            n_cols += 1;
            (v, n_cols - 1)
        };
    let mut objective = Expression::with_capacity(prep.groups.iter().map(|g| g.cand.len()).sum());
    // x[g] : (cluster, var, col) ; n[s] : (cluster, var, col, upper bound)
    let mut x: Vec<Vec<(usize, Variable, usize)>> = Vec::with_capacity(prep.groups.len());
    let mut reps: Vec<Vec<(usize, Variable, usize, u32)>> = vec![Vec::new(); n];
    for g in &prep.groups {
        let mut xs = Vec::with_capacity(g.cand.len());
        for &e in &g.cand {
            let (v, col) = add(&mut vars, variable().binary());
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
                    // 1 − x summed over current clusters = (|Y| − 1) + Σ_{e ∉ Y} x, since Σx = 1.
                    if !prep.current[s].is_empty() && !prep.current[s].contains(&e) {
                        coef += scale * w.replace;
                    }
                    if use_tb {
                        coef += tb.score(problem, prep, s, e);
                    }
                }
                coef += scale * (w.cost * c.cost + w.carbon * c.carbon) * g.cpu;
            }
            if coef != 0.0 {
                objective.add_mul(coef, v);
            }
            xs.push((e, v, col));
        }
        if g.split {
            for &s in &g.members {
                let svc = &problem.services[s];
                let cap = svc.max_replicas_per_cluster();
                for &e in &g.cand {
                    let ub = replicas_that_fit(
                        svc.cpu,
                        svc.memory,
                        prep.cpu_cap[e],
                        prep.mem_cap[e],
                        cap,
                    );
                    let (v, col) = add(&mut vars, variable().integer().clamp(0, ub));
                    let c = &problem.clusters[e];
                    let mut coef = scale * (w.cost * c.cost + w.carbon * c.carbon) * svc.cpu;
                    if use_tb {
                        coef += tb.score(problem, prep, s, e) / f64::from(svc.replicas);
                    }
                    if coef != 0.0 {
                        objective.add_mul(coef, v);
                    }
                    reps[s].push((e, v, col, ub));
                }
            }
        }
        x.push(xs);
    }
    let util = if w.balance > 0.0 {
        let (v, col) = add(&mut vars, variable().clamp(0, 1));
        objective.add_mul(scale * w.balance, v);
        Some((v, col))
    } else {
        None
    };

    let mut model = vars.minimise(objective).using(highs);

    // Assignment, HA spreading and co-location.
    for (gi, g) in prep.groups.iter().enumerate() {
        let mut sum = Expression::with_capacity(x[gi].len());
        for &(_, v, _) in &x[gi] {
            sum.add_mul(1.0, v);
        }
        if g.split {
            model.add_constraint(sum.geq(2.0));
            for &s in &g.members {
                let mut total = Expression::with_capacity(reps[s].len());
                for (k, &(_, nv, _, ub)) in reps[s].iter().enumerate() {
                    total.add_mul(1.0, nv);
                    let xv = x[gi][k].1;
                    // n ≤ ub·x and n ≥ x: a used cluster gets at least one replica.
                    let mut hi = Expression::with_capacity(2);
                    hi.add_mul(1.0, nv);
                    hi.add_mul(-f64::from(ub), xv);
                    model.add_constraint(hi.leq(0.0));
                    let mut lo = Expression::with_capacity(2);
                    lo.add_mul(1.0, xv);
                    lo.add_mul(-1.0, nv);
                    model.add_constraint(lo.leq(0.0));
                }
                model.add_constraint(total.eq(f64::from(problem.services[s].replicas)));
            }
        } else {
            model.add_constraint(sum.eq(1.0));
        }
    }
    for &(gn, gs) in &prep.mixed {
        for &(e, xv, _) in &x[gn] {
            if let Some(&(_, xh, _)) = x[gs].iter().find(|(f, _, _)| *f == e) {
                let mut c = Expression::with_capacity(2);
                c.add_mul(1.0, xv);
                c.add_mul(-1.0, xh);
                model.add_constraint(c.leq(0.0));
            }
        }
    }

    // Capacity rows (skipped when even the worst case fits), and the utilisation bound.
    let mut cpu_rows: Vec<Expression> = (0..m).map(|_| Expression::default()).collect();
    let mut mem_rows: Vec<Expression> = (0..m).map(|_| Expression::default()).collect();
    let mut cpu_max = vec![0.0; m];
    let mut mem_max = vec![0.0; m];
    for (gi, g) in prep.groups.iter().enumerate() {
        if g.split {
            for &s in &g.members {
                let svc = &problem.services[s];
                for &(e, nv, _, ub) in &reps[s] {
                    cpu_rows[e].add_mul(svc.cpu, nv);
                    mem_rows[e].add_mul(svc.memory, nv);
                    cpu_max[e] += svc.cpu * f64::from(ub);
                    mem_max[e] += svc.memory * f64::from(ub);
                }
            }
        } else {
            for &(e, xv, _) in &x[gi] {
                cpu_rows[e].add_mul(g.cpu, xv);
                mem_rows[e].add_mul(g.memory, xv);
                cpu_max[e] += g.cpu;
                mem_max[e] += g.memory;
            }
        }
    }
    for (e, (cpu_row, mem_row)) in cpu_rows.into_iter().zip(mem_rows).enumerate() {
        let k = prep.cpu_cap[e];
        if let Some((u, _)) = util
            && k > 0.0
            && cpu_max[e] > 0.0
        {
            let mut r = cpu_row.clone();
            r.add_mul(-k, u);
            model.add_constraint(r.leq(0.0));
        }
        if cpu_max[e] > k {
            model.add_constraint(cpu_row.leq(k));
        }
        if mem_max[e] > prep.mem_cap[e] {
            model.add_constraint(mem_row.leq(prep.mem_cap[e]));
        }
    }

    let mut hm = model
        .try_into_inner()
        .map_err(|e| PlacementError::Solver(e.to_string()))?;
    let time_limit = problem.effective_time_limit();
    // One thread and a fixed seed: the same input gives the same placement on every run.
    set_option(&mut hm, "threads", 1)?;
    set_option(&mut hm, "parallel", "off")?;
    set_option(&mut hm, "random_seed", 0)?;
    set_option(&mut hm, "time_limit", time_limit)?;
    set_option(&mut hm, "mip_rel_gap", problem.effective_mip_gap())?;
    set_option(&mut hm, "mip_abs_gap", 1e-9)?;
    if std::env::var_os("SMO_HIGHS_DEBUG").is_some() {
        set_option(&mut hm, "output_flag", true)?;
        set_option(&mut hm, "log_to_console", true)?;
    }

    if let Some(start) = greedy_start(problem, prep, &tb) {
        let mut cols = vec![0.0; n_cols];
        for (gi, g) in prep.groups.iter().enumerate() {
            let used: &Vec<(usize, u32)> = &start.shares[g.members[0]];
            for &(e, _, col) in &x[gi] {
                if used.iter().any(|&(f, _)| f == e) {
                    cols[col] = 1.0;
                }
            }
            for &s in &g.members {
                for &(e, _, col, _) in &reps[s] {
                    if let Some(&(_, r)) = start.shares[s].iter().find(|&&(f, _)| f == e) {
                        cols[col] = f64::from(r);
                    }
                }
            }
        }
        if let Some((_, col)) = util {
            let (cpu, _) = loads(problem, &start);
            cols[col] = cpu
                .iter()
                .zip(&prep.cpu_cap)
                .filter(|(l, _)| **l > 0.0)
                .map(|(l, k)| frac(*l, *k))
                .fold(0.0, f64::max);
        }
        // A rejected start only costs time; the solve proceeds without it.
        let _ = hm.try_set_solution(Some(&cols), None, None, None);
    }

    let solved = hm
        .try_solve()
        .map_err(|e| PlacementError::Solver(format!("HiGHS failed: {e:?}")))?;
    let gap = solved.mip_gap();
    let gap = if gap.is_finite() { gap.max(0.0) } else { 0.0 };
    let status = match solved.status() {
        HighsModelStatus::Optimal => SolveStatus::Optimal { gap },
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
        | HighsModelStatus::ObjectiveTarget => SolveStatus::Feasible { gap },
        other => return Err(PlacementError::Solver(format!("HiGHS status {other:?}"))),
    };
    if solved.primal_solution_status() != HighsSolutionStatus::Feasible {
        return Err(PlacementError::NoSolutionWithinTimeLimit {
            time_limit_secs: time_limit,
        });
    }
    let sol = solved.get_solution();
    let cols = sol.columns();
    let col = |c: usize| cols.get(c).copied().unwrap_or(0.0);
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    for (gi, g) in prep.groups.iter().enumerate() {
        for &s in &g.members {
            if g.split {
                for &(e, _, c, _) in &reps[s] {
                    let r = col(c).round();
                    if r >= 1.0 {
                        shares[s].push((e, r as u32));
                    }
                }
            } else {
                for &(e, _, c) in &x[gi] {
                    if col(c) > 0.5 {
                        shares[s].push((e, problem.services[s].replicas));
                    }
                }
            }
        }
    }
    let plan = Plan { shares };
    let bad = violations(problem, prep, &plan);
    if !bad.is_empty() {
        return Err(PlacementError::Solver(format!(
            "HiGHS returned a placement that violates constraints: {}",
            bad.join("; ")
        )));
    }
    Ok((plan, status))
}

fn set_option<V: highs::HighsOptionValue>(
    hm: &mut highs::Model,
    name: &str,
    value: V,
) -> Result<(), PlacementError> {
    hm.try_set_option(name, value)
        .map_err(|_| PlacementError::Solver(format!("HiGHS rejected option {name}")))
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
