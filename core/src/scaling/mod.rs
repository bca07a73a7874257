//! Replica scaling (SPEC §3): how many replicas each service of one graph runs on one cluster.
//!
//! Pure: no I/O, no async. Per cluster and tick, over the services of one graph placed there:
//!
//! - integer r_s with max(1, minReplicas_s) ≤ r_s ≤ maxReplicas_s (the reference dropped the
//!   upper bound; without it a load spike asks for absurd replica counts instead of re-placing);
//! - α_s·r_s + β_s ≥ λ_s (linear capacity model: one replica serves α_s req/s, β_s is fixed);
//! - Σ c_s·r_s ≤ C (CPU of the cluster available to this graph, computed by the caller);
//! - GPU services only on a cluster with accelerators;
//! - minimise 0.4·Σ r_s·c_s / M + 0.4·Σ |r_s − r̂_s| / maxReplicas_s, M = max_s(maxReplicas_s·c_s),
//!   r̂ = current replicas, solved as a MILP by good_lp + HiGHS (|·| through auxiliary variables).
//!
//! Feasibility is decided exactly by cheap pre-checks (GPU, load vs maxReplicas, Σ c·r_min vs C),
//! so [`ScaleOutcome::Infeasible`] always carries reasons that name services and numbers.
//!
//! The objective is separable except for the CPU row, and each term is smallest at
//! clamp(r̂, r_min, r_max). When those targets fit into C they are therefore optimal and
//! returned without building a model ([`Method::ClosedForm`]); only a binding CPU row (a
//! knapsack) goes to HiGHS, with the targets as upper bounds. Ties prefer fewer cores (a
//! service for which going down is free goes to r_min); HiGHS runs on one thread with a fixed
//! seed and services in name order, so equal inputs give equal outputs whatever their order.
//!
//! Note on the objective (inherited from the reference): since c_s/M ≤ 1/maxReplicas_s, one
//! replica less never saves more than the change term costs, so services are scaled *down* only
//! when that is free (maxReplicas_s·c_s = M, e.g. a single service) or forced (CPU, maxReplicas).

mod error;
mod fleet;
pub mod inputs;
mod milp;
mod round;
pub mod shard;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

pub use error::ScalingError;
pub use fleet::{GraphServices, solve_cluster};
pub use round::{
    ClusterSolve, GraphPlan, PlannedChange, RoundCluster, RoundPlan, RoundService, plan_round,
};

/// Weight of the CPU term of the objective (SPEC §3).
pub const W_UTILISATION: f64 = 0.4;
/// Weight of the replica-change term of the objective (SPEC §3).
pub const W_CHANGE: f64 = 0.4;
/// Most services solved in one call; keeps one tick's solve time bounded.
pub const MAX_SERVICES: usize = 5_000;
/// Largest accepted maxReplicas; beyond it the numbers are surely a mistake.
pub const MAX_REPLICAS_LIMIT: u32 = 100_000;

/// Default α per core of a replica when a service has no `intent.scaling`: 10 req/s per core.
pub const DEFAULT_ALPHA_PER_CORE: f64 = 10.0;
/// Default β when a service has no `intent.scaling`: no fixed capacity.
pub const DEFAULT_BETA: f64 = 0.0;
/// Default minReplicas when a service has no `intent.scaling`.
pub const DEFAULT_MIN_REPLICAS: u32 = 1;
/// Default maxReplicas when a service has no `intent.scaling`.
pub const DEFAULT_MAX_REPLICAS: u32 = 10;

/// `(alpha, beta, min, max)` for a service without `intent.scaling`, from its CPU per replica.
///
/// α = 10 req/s per core (a 0.5-core replica serves 5 req/s, an 8-core one 80), because bigger
/// replicas are asked for by heavier services; β = 0, min = 1, max = 10. An unusable `cpu`
/// (NaN, ≤ 0) gives α = 10.
pub fn defaults_for(cpu: f64) -> (f64, f64, u32, u32) {
    let alpha = if cpu.is_finite() && cpu > 0.0 {
        DEFAULT_ALPHA_PER_CORE * cpu
    } else {
        DEFAULT_ALPHA_PER_CORE
    };
    (
        alpha,
        DEFAULT_BETA,
        DEFAULT_MIN_REPLICAS,
        DEFAULT_MAX_REPLICAS,
    )
}

/// One service of the graph on this cluster, as the scale tick sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleService {
    /// Service id (unique among the services of one call).
    pub name: String,
    /// λ: request rate in req/s from Prometheus. NaN, negative or infinite count as 0 (with a
    /// note), because an empty or broken metric must not scale anything up. JSON `null` = NaN.
    #[serde(deserialize_with = "nan_if_null")]
    pub rate: f64,
    /// r̂: replicas running now.
    pub current: u32,
    /// c: CPU cores per replica (> 0).
    pub cpu: f64,
    /// α: req/s one replica serves (> 0).
    pub alpha: f64,
    /// β: req/s served regardless of replicas (≥ 0).
    pub beta: f64,
    /// minReplicas (0 is read as 1: a running service keeps one replica).
    pub min: u32,
    /// maxReplicas (≥ 1, ≥ min).
    pub max: u32,
    /// Needs an accelerator.
    #[serde(default)]
    pub gpu: bool,
}

impl ScaleService {
    /// A service with the [`defaults_for`] its CPU (for services without `intent.scaling`).
    pub fn with_defaults(name: impl Into<String>, cpu: f64, rate: f64, current: u32) -> Self {
        let (alpha, beta, min, max) = defaults_for(cpu);
        Self {
            name: name.into(),
            rate,
            current,
            cpu,
            alpha,
            beta,
            min,
            max,
            gpu: false,
        }
    }
}

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The cluster, as far as this graph is concerned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleCluster {
    /// Cluster name (for messages and [`solve_graph`]).
    pub name: String,
    /// CPU cores available to this graph: free capacity plus the graph's own current usage
    /// there (so the graph's running replicas are not counted twice). Negative counts as 0.
    pub cpu: f64,
    /// Has accelerators (GPUs).
    pub accelerator: bool,
}

/// How a [`ScaleOutcome::Scaled`] result was found (kept in the decision log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The per-service optimum fits into the cluster CPU: optimal without a solver.
    ClosedForm,
    /// Solved by HiGHS.
    Milp,
    /// HiGHS failed or did worse; the greedy feasible solution was used (a note says why).
    Greedy,
}

/// One service whose replica count changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Service name.
    pub service: String,
    /// Replicas now.
    pub from: u32,
    /// Replicas to set.
    pub to: u32,
}

/// The result of one tick on one cluster. Infeasible is an outcome, not an error: the caller
/// enqueues a `re-place` job for the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScaleOutcome {
    /// Replica counts that satisfy every constraint.
    Scaled {
        /// Replicas per service (every service of the call).
        replicas: BTreeMap<String, u32>,
        /// Services whose count differs from `current`, in name order.
        changed: Vec<Change>,
        /// Objective of `replicas` (SPEC §3 formula, recomputed from the integers).
        objective: f64,
        /// How it was found.
        method: Method,
        /// Proven optimal (false only when HiGHS stopped at its time limit or failed).
        optimal: bool,
        /// Input repairs and solver remarks, e.g. "service api: request rate NaN counted as 0".
        notes: Vec<String>,
    },
    /// No replica counts satisfy the constraints on this cluster.
    Infeasible {
        /// Each violated constraint in words, naming services and numbers.
        reasons: Vec<String>,
        /// Input repairs, as for `Scaled`.
        notes: Vec<String>,
    },
}

impl ScaleOutcome {
    /// The replica counts, if feasible.
    pub fn replicas(&self) -> Option<&BTreeMap<String, u32>> {
        match self {
            ScaleOutcome::Scaled { replicas, .. } => Some(replicas),
            ScaleOutcome::Infeasible { .. } => None,
        }
    }

    /// Whether the caller should re-place the graph.
    pub fn is_infeasible(&self) -> bool {
        matches!(self, ScaleOutcome::Infeasible { .. })
    }
}

/// Solver knobs; the defaults are what the scale tick uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveOptions {
    /// HiGHS time limit in seconds; on expiry the best solution found is returned
    /// (`optimal: false`). Non-positive or NaN means the default.
    pub time_limit_secs: f64,
    /// Return the closed-form optimum without HiGHS when the CPU row does not bind. Turning it
    /// off only costs time (tests and benchmarks use that to exercise the MILP).
    pub closed_form: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            time_limit_secs: 2.0,
            closed_form: true,
        }
    }
}

/// One tick for the services of one graph on `cluster`, with [`SolveOptions::default`].
pub fn solve(
    cluster: &ScaleCluster,
    services: &[ScaleService],
) -> Result<ScaleOutcome, ScalingError> {
    solve_with(cluster, services, &SolveOptions::default())
}

/// One tick per cluster of a graph. Clusters without services are skipped; services listed
/// under a cluster not in `clusters` are an error (the caller's bookkeeping is off).
pub fn solve_graph(
    clusters: &[ScaleCluster],
    services_by_cluster: &BTreeMap<String, Vec<ScaleService>>,
) -> Result<BTreeMap<String, ScaleOutcome>, ScalingError> {
    let mut by_name: BTreeMap<&str, &ScaleCluster> = BTreeMap::new();
    for c in clusters {
        if by_name.insert(c.name.as_str(), c).is_some() {
            return Err(ScalingError::DuplicateCluster {
                cluster: c.name.clone(),
            });
        }
    }
    let mut out = BTreeMap::new();
    for (name, services) in services_by_cluster {
        let cluster = by_name
            .get(name.as_str())
            .ok_or_else(|| ScalingError::UnknownCluster {
                cluster: name.clone(),
            })?;
        out.insert(name.clone(), solve(cluster, services)?);
    }
    Ok(out)
}

/// One tick with explicit solver options.
pub fn solve_with(
    cluster: &ScaleCluster,
    services: &[ScaleService],
    options: &SolveOptions,
) -> Result<ScaleOutcome, ScalingError> {
    validate(cluster, services)?;
    let prep = prepare(cluster, services);
    let mut notes = prep.notes.clone();
    if !prep.reasons.is_empty() {
        return Ok(ScaleOutcome::Infeasible {
            reasons: prep.reasons.clone(),
            notes,
        });
    }
    let (r, method, optimal) = solve_prepared(services, &prep, options, true, &mut notes);
    Ok(scaled(services, &prep, r, method, optimal, notes))
}

/// Replicas for pre-checked `services`: the closed form when the targets fit, else HiGHS
/// (when `milp` allows it) started from the greedy fit, else the greedy fit. Solver remarks go
/// to `notes`.
pub(crate) fn solve_prepared(
    services: &[ScaleService],
    prep: &Prepared,
    options: &SolveOptions,
    milp: bool,
    notes: &mut Vec<String>,
) -> (Vec<u32>, Method, bool) {
    let target = prep.target(services);
    if options.closed_form && prep.fits(services, &target) {
        return (target, Method::ClosedForm, true);
    }
    let greedy = prep.reduce_to_fit(services, target.clone());
    if !milp {
        return (greedy, Method::Greedy, false);
    }
    let time_limit = if options.time_limit_secs.is_finite() && options.time_limit_secs > 0.0 {
        options.time_limit_secs
    } else {
        SolveOptions::default().time_limit_secs
    };
    match milp::solve(services, prep, &target, &greedy, time_limit) {
        Ok(sol) => {
            let (o_milp, o_greedy) = (
                prep.objective(services, &sol.r),
                prep.objective(services, &greedy),
            );
            if o_milp <= o_greedy + 1e-12 {
                if !sol.optimal {
                    notes.push(format!(
                        "HiGHS stopped at its {time_limit} s time limit; the replicas are feasible but not proven optimal"
                    ));
                }
                (sol.r, Method::Milp, sol.optimal)
            } else {
                notes.push(
                    "HiGHS returned a worse solution than the greedy one; used the greedy one"
                        .into(),
                );
                (greedy, Method::Greedy, false)
            }
        }
        Err(why) => {
            notes.push(format!("{why}; used the greedy feasible solution"));
            (greedy, Method::Greedy, false)
        }
    }
}

/// Rejects input that no tick should act on; every message names the field.
fn validate(cluster: &ScaleCluster, services: &[ScaleService]) -> Result<(), ScalingError> {
    let bad_cluster = |field, message: String| ScalingError::InvalidCluster {
        cluster: cluster.name.clone(),
        field,
        message,
    };
    if cluster.name.trim().is_empty() {
        return Err(bad_cluster("name", "must not be empty".into()));
    }
    if !cluster.cpu.is_finite() {
        return Err(bad_cluster(
            "cpu",
            format!("must be a finite number of cores, got {}", cluster.cpu),
        ));
    }
    if services.len() > MAX_SERVICES {
        return Err(ScalingError::TooManyServices {
            cluster: cluster.name.clone(),
            count: services.len(),
            limit: MAX_SERVICES,
        });
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, s) in services.iter().enumerate() {
        let bad = |field, message: String| ScalingError::InvalidService {
            index,
            service: s.name.clone(),
            field,
            message,
        };
        if s.name.trim().is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        if let Some(&first) = seen.get(s.name.as_str()) {
            return Err(ScalingError::DuplicateService {
                name: s.name.clone(),
                first,
                second: index,
            });
        }
        seen.insert(s.name.as_str(), index);
        if !(s.cpu.is_finite() && s.cpu > 0.0) {
            return Err(bad(
                "cpu",
                format!("must be a finite number of cores > 0, got {}", s.cpu),
            ));
        }
        if !(s.alpha.is_finite() && s.alpha > 0.0) {
            return Err(bad(
                "alpha",
                format!("must be a finite number of req/s > 0, got {}", s.alpha),
            ));
        }
        if !(s.beta.is_finite() && s.beta >= 0.0) {
            return Err(bad(
                "beta",
                format!("must be a finite number of req/s ≥ 0, got {}", s.beta),
            ));
        }
        if s.max == 0 || s.max > MAX_REPLICAS_LIMIT {
            return Err(bad(
                "max",
                format!(
                    "maxReplicas must be between 1 and {MAX_REPLICAS_LIMIT}, got {}",
                    s.max
                ),
            ));
        }
        if s.min > s.max {
            return Err(bad(
                "min",
                format!("minReplicas {} exceeds maxReplicas {}", s.min, s.max),
            ));
        }
    }
    Ok(())
}

/// Validated inputs turned into bounds, plus the messages gathered on the way.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Service indices in name order (solver column order, greedy tie-break).
    pub order: Vec<usize>,
    /// Fewest replicas allowed: max(1, min, ⌈(λ − β)/α⌉). Meaningful only without `reasons`.
    pub lo: Vec<u32>,
    /// maxReplicas.
    pub hi: Vec<u32>,
    /// M per service: max(maxReplicas·c) over the services of its graph (> 0 once validated).
    /// One value for a single graph; per graph when a cluster's graphs are solved together, so
    /// each graph's terms weigh exactly as in its own SPEC §3 objective.
    pub m: Vec<f64>,
    /// Cluster CPU, negative read as 0.
    pub cap: f64,
    /// Input repairs.
    pub notes: Vec<String>,
    /// Why no solution exists (empty: feasible).
    pub reasons: Vec<String>,
}

impl Prepared {
    /// Objective coefficient of one replica of `s` in the CPU term.
    pub fn util_coef(&self, i: usize, s: &ScaleService) -> f64 {
        W_UTILISATION * s.cpu / self.m[i]
    }

    /// Objective coefficient of one replica of change of `s`.
    pub fn change_coef(s: &ScaleService) -> f64 {
        W_CHANGE / f64::from(s.max)
    }

    /// Objective cost of one replica less below r̂ (≥ 0 up to rounding): the change term grows
    /// more than the CPU term shrinks.
    fn down_cost(&self, i: usize, s: &ScaleService) -> f64 {
        Self::change_coef(s) - self.util_coef(i, s)
    }

    /// Per-service optimum ignoring the CPU row: r̂ clamped to the bounds, or the lower bound
    /// when going down is free (ties prefer fewer cores).
    pub fn target(&self, services: &[ScaleService]) -> Vec<u32> {
        services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if self.down_cost(i, s) <= 1e-12 {
                    self.lo[i]
                } else {
                    s.current.clamp(self.lo[i], self.hi[i])
                }
            })
            .collect()
    }

    /// Cores used by `r`.
    pub fn cores(services: &[ScaleService], r: &[u32]) -> f64 {
        services
            .iter()
            .zip(r)
            .map(|(s, &n)| s.cpu * f64::from(n))
            .sum()
    }

    /// Whether `r` fits into the cluster CPU (with a little float tolerance; name order again).
    pub fn fits(&self, services: &[ScaleService], r: &[u32]) -> bool {
        let used: f64 = self
            .order
            .iter()
            .map(|&i| services[i].cpu * f64::from(r[i]))
            .sum();
        used <= self.cap + 1e-9 * self.cap.max(1.0)
    }

    /// SPEC §3 objective of `r`, summed in name order so that input order cannot change a bit.
    pub fn objective(&self, services: &[ScaleService], r: &[u32]) -> f64 {
        self.order
            .iter()
            .map(|&i| {
                let (s, n) = (&services[i], r[i]);
                self.util_coef(i, s) * f64::from(n)
                    + Self::change_coef(s) * f64::from(n.abs_diff(s.current))
            })
            .sum()
    }

    /// A feasible solution from `r` (the targets): lower the services that cost least per core
    /// freed until the CPU row holds. Always succeeds once the pre-checks pass, because the lower
    /// bounds fit. Used as HiGHS's start and as the fallback.
    pub fn reduce_to_fit(&self, services: &[ScaleService], mut r: Vec<u32>) -> Vec<u32> {
        let mut excess = Self::cores(services, &r) - self.cap;
        let mut cand: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&i| r[i] > self.lo[i])
            .collect();
        // Stable sort over name order: equal ratios keep name order.
        cand.sort_by(|&a, &b| {
            let ka = self.down_cost(a, &services[a]).max(0.0) / services[a].cpu;
            let kb = self.down_cost(b, &services[b]).max(0.0) / services[b].cpu;
            ka.total_cmp(&kb)
        });
        for i in cand {
            if excess <= 1e-9 * self.cap.max(1.0) {
                break;
            }
            let room = r[i] - self.lo[i];
            let want = (excess / services[i].cpu).ceil();
            let units = if want >= f64::from(room) {
                room
            } else {
                want as u32
            };
            r[i] -= units;
            excess -= services[i].cpu * f64::from(units);
        }
        r
    }
}

/// Replicas needed to serve `rate` with α·r + β ≥ λ (0 when β alone serves it). A tiny
/// tolerance keeps exact cases exact: (80 − 5)/25 = 3, not 3.0000000001 → 4.
fn needed(rate: f64, alpha: f64, beta: f64) -> f64 {
    if rate <= beta {
        return 0.0;
    }
    let x = (rate - beta) / alpha;
    (x - 1e-9 * x.max(1.0)).ceil().max(0.0)
}

/// Sanitises inputs, computes bounds and runs the exact feasibility pre-checks, for the services
/// of one graph.
fn prepare(cluster: &ScaleCluster, services: &[ScaleService]) -> Prepared {
    prepare_grouped(cluster, services, &vec![0; services.len()])
}

/// [`prepare`] for the services of several graphs sharing one cluster: `group[i]` is the graph
/// of service `i`, and M is taken per graph.
pub(crate) fn prepare_grouped(
    cluster: &ScaleCluster,
    services: &[ScaleService],
    group: &[usize],
) -> Prepared {
    let mut notes = Vec::new();
    let mut reasons = Vec::new();
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by(|&a, &b| services[a].name.cmp(&services[b].name));
    let cap = if cluster.cpu < 0.0 {
        notes.push(format!(
            "cluster {}: available CPU {} cores counted as 0",
            cluster.name,
            num(cluster.cpu)
        ));
        0.0
    } else {
        cluster.cpu
    };
    let mut per_group: BTreeMap<usize, f64> = BTreeMap::new();
    for (s, &g) in services.iter().zip(group) {
        let e = per_group.entry(g).or_insert(0.0);
        *e = e.max(f64::from(s.max) * s.cpu);
    }
    let m: Vec<f64> = group
        .iter()
        .map(|g| per_group[g])
        .map(|m| if m > 0.0 { m } else { 1.0 })
        .collect();
    let mut lo = vec![1; services.len()];
    let mut hi = vec![1; services.len()];
    // Fewest cores each service could possibly use here, for the capacity message.
    let mut floor_cores: Vec<(f64, usize, u32)> = Vec::with_capacity(services.len());
    for &i in &order {
        let s = &services[i];
        let lambda = if s.rate.is_finite() && s.rate >= 0.0 {
            s.rate
        } else {
            notes.push(format!(
                "service {}: request rate {} counted as 0",
                s.name, s.rate
            ));
            0.0
        };
        hi[i] = s.max;
        if s.current > s.max {
            notes.push(format!(
                "service {}: {} replicas run but maxReplicas is {}",
                s.name, s.current, s.max
            ));
        }
        if s.gpu && !cluster.accelerator {
            reasons.push(format!(
                "service {} needs a GPU; cluster {} has none",
                s.name, cluster.name
            ));
        }
        let need = needed(lambda, s.alpha, s.beta);
        let low = need.max(f64::from(s.min.max(1)));
        if low > f64::from(s.max) {
            reasons.push(format!(
                "service {} needs {} replicas for {} req/s (α={}, β={}) but maxReplicas is {}",
                s.name,
                num(need),
                num(lambda),
                num(s.alpha),
                num(s.beta),
                s.max
            ));
            lo[i] = s.max;
        } else {
            // low ≤ max ≤ MAX_REPLICAS_LIMIT, an integer: the cast is exact.
            lo[i] = low as u32;
        }
        floor_cores.push((s.cpu * f64::from(lo[i]), i, lo[i]));
    }
    let total: f64 = floor_cores.iter().map(|f| f.0).sum();
    if total > cap + 1e-9 * cap.max(1.0) {
        floor_cores.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut parts: Vec<String> = floor_cores
            .iter()
            .take(3)
            .map(|&(cores, i, r)| {
                format!(
                    "{} {} × {} = {}",
                    services[i].name,
                    r,
                    num(services[i].cpu),
                    cores_str(cores)
                )
            })
            .collect();
        if floor_cores.len() > 3 {
            parts.push("…".into());
        }
        reasons.push(format!(
            "the services need at least {} (the fewest replicas that serve their load and respect minReplicas) but cluster {} offers {}: {}",
            cores_str(total),
            cluster.name,
            cores_str(cap),
            parts.join(", ")
        ));
    }
    Prepared {
        order,
        lo,
        hi,
        m,
        cap,
        notes,
        reasons,
    }
}

fn scaled(
    services: &[ScaleService],
    prep: &Prepared,
    r: Vec<u32>,
    method: Method,
    optimal: bool,
    notes: Vec<String>,
) -> ScaleOutcome {
    let objective = prep.objective(services, &r);
    let mut replicas = BTreeMap::new();
    let mut changed = Vec::new();
    for &i in &prep.order {
        let s = &services[i];
        replicas.insert(s.name.clone(), r[i]);
        if r[i] != s.current {
            changed.push(Change {
                service: s.name.clone(),
                from: s.current,
                to: r[i],
            });
        }
    }
    ScaleOutcome::Scaled {
        replicas,
        changed,
        objective,
        method,
        optimal,
        notes,
    }
}

/// A number without noise: 12 → "12", 12.5 → "12.5", 1/3 → "0.333".
fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() >= 1e12 {
        return format!("{v:.3e}");
    }
    let r = (v * 1000.0).round() / 1000.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        let s = format!("{r:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn cores_str(v: f64) -> String {
    let n = num(v);
    if n == "1" {
        "1 core".into()
    } else {
        format!("{n} cores")
    }
}
