//! The SPEC §3 MILP over good_lp, solved by HiGHS. Only reached when the CPU row binds (or the
//! closed form is switched off); the pre-checks have already proven feasibility.

use good_lp::solvers::highs::highs;
use good_lp::{Expression, ProblemVariables, SolverModel, variable};
use highs::{HighsModelStatus, HighsSolutionStatus};

use super::{Prepared, ScaleService};

/// Integer replicas per service (input order) and whether HiGHS proved them optimal.
pub(super) struct MilpSolution {
    pub r: Vec<u32>,
    pub optimal: bool,
}

/// Builds and solves the model, started from the feasible `start`. `Err` says why no usable
/// solution came back (the caller falls back to `start`).
///
/// `upper` are the per-service targets ([`Prepared::target`]), used as upper bounds instead of
/// maxReplicas: above its target a service only costs more (or, when going down is free, the
/// same with more cores), so the bound loses no optimum and settles the ties the objective leaves
/// open the same way the closed form does. Tie-breaking by a tiny objective term would not
/// work: HiGHS's dual tolerance (1e-7) swallows it.
pub(super) fn solve(
    services: &[ScaleService],
    prep: &Prepared,
    upper: &[u32],
    start: &[u32],
    time_limit: f64,
) -> Result<MilpSolution, String> {
    let n = services.len();
    // Objective scaled so its largest coefficient is 1: HiGHS's absolute tolerances then
    // compare like for like whatever maxReplicas and CPU sizes are. Scaling keeps the optimum.
    let largest = services
        .iter()
        .enumerate()
        .map(|(i, s)| prep.util_coef(i, s).max(Prepared::change_coef(s)))
        .fold(0.0, f64::max);
    let scale = if largest > 0.0 { 1.0 / largest } else { 1.0 };
    let mut vars = ProblemVariables::new();
    // Columns in name order: r_s at 2k, d_s = |r_s − r̂_s| at 2k + 1 (k = rank of s by name).
    let mut cols = Vec::with_capacity(n);
    let mut objective = Expression::with_capacity(2 * n);
    for &i in &prep.order {
        let s = &services[i];
        let hi = upper[i].clamp(prep.lo[i], prep.hi[i]);
        let r = vars.add(variable().integer().clamp(prep.lo[i], hi));
        let d = vars.add(variable().min(0.0));
        objective.add_mul(scale * prep.util_coef(i, s), r);
        objective.add_mul(scale * Prepared::change_coef(s), d);
        cols.push((i, r, d));
    }
    let mut model = vars.minimise(objective).using(highs);
    let mut cpu = Expression::with_capacity(n);
    for &(i, r, d) in &cols {
        let current = f64::from(services[i].current);
        // d ≥ r − r̂ and d ≥ r̂ − r: d = |r − r̂| at the optimum, as d only costs.
        let mut up = Expression::with_capacity(2);
        up.add_mul(1.0, d);
        up.add_mul(-1.0, r);
        model.add_constraint(up.geq(-current));
        let mut down = Expression::with_capacity(2);
        down.add_mul(1.0, d);
        down.add_mul(1.0, r);
        model.add_constraint(down.geq(current));
        cpu.add_mul(services[i].cpu, r);
    }
    model.add_constraint(cpu.leq(prep.cap));

    let mut hm = model
        .try_into_inner()
        .map_err(|e| format!("HiGHS model: {e}"))?;
    // One thread and a fixed seed: equal inputs give equal replicas on every run.
    set(&mut hm, "threads", 1)?;
    set(&mut hm, "parallel", "off")?;
    set(&mut hm, "random_seed", 0)?;
    set(&mut hm, "time_limit", time_limit)?;
    set(&mut hm, "mip_rel_gap", 1e-9)?;
    set(&mut hm, "mip_abs_gap", 1e-12)?;
    if std::env::var_os("SMO_HIGHS_DEBUG").is_some() {
        set(&mut hm, "output_flag", true)?;
        set(&mut hm, "log_to_console", true)?;
    }
    let mut x = Vec::with_capacity(2 * n);
    for &(i, _, _) in &cols {
        x.push(f64::from(start[i]));
        x.push(f64::from(start[i].abs_diff(services[i].current)));
    }
    // A rejected start only costs time.
    let _ = hm.try_set_solution(Some(&x), None, None, None);

    let solved = hm.try_solve().map_err(|e| format!("HiGHS failed: {e:?}"))?;
    let optimal = match solved.status() {
        HighsModelStatus::Optimal => true,
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedIterationLimit
        | HighsModelStatus::ReachedSolutionLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedMemoryLimit => false,
        other => return Err(format!("HiGHS ended with status {other:?}")),
    };
    if solved.primal_solution_status() != HighsSolutionStatus::Feasible {
        return Err("HiGHS found no solution within its time limit".into());
    }
    let sol = solved.get_solution();
    let values = sol.columns();
    let mut r = vec![0u32; n];
    for (k, &(i, _, _)) in cols.iter().enumerate() {
        let v = values.get(2 * k).copied().unwrap_or(f64::NAN).round();
        if !(v >= f64::from(prep.lo[i]) && v <= f64::from(prep.hi[i])) {
            return Err(format!(
                "HiGHS returned {v} replicas for service {}, outside [{}, {}]",
                services[i].name, prep.lo[i], prep.hi[i]
            ));
        }
        // Within [lo, hi] ⊂ u32: exact.
        r[i] = v as u32;
    }
    if !prep.fits(services, &r) {
        return Err("HiGHS returned replicas that exceed the cluster CPU".into());
    }
    Ok(MilpSolution { r, optimal })
}

fn set<V: highs::HighsOptionValue>(
    hm: &mut highs::Model,
    name: &str,
    value: V,
) -> Result<(), String> {
    hm.try_set_option(name, value)
        .map_err(|_| format!("HiGHS rejected option {name}"))
}
