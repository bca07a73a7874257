//! `smo bench placement`: the placement MILP on the reference instance families, with the worst
//! instance's seed printed so anyone can replay it.

use super::*;

/// The figures of `smo bench placement`: solve times over many seeded instances.
#[derive(Debug, Serialize)]
pub struct PlacementReport {
    /// Instances per row.
    pub instances: usize,
    pub rows: Vec<PlacementRow>,
}

/// One size × capacity × kind (first placement or re-placement).
#[derive(Debug, Serialize)]
pub struct PlacementRow {
    /// `services×clusters`.
    pub size: String,
    /// Capacity as a multiple of demand.
    pub headroom: f64,
    /// `first` or `re-place`.
    pub kind: &'static str,
    /// Solved and proven optimal.
    pub optimal: usize,
    /// Solved, not proven (time limit).
    pub not_proven: usize,
    /// No placement exists (re-placement after losing a cluster may leave none).
    pub infeasible: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The seed of the slowest instance, to study it alone.
    pub slowest_seed: u64,
}

/// Solves `instances` seeded instances of each size and headroom (first placement, then the
/// re-placement of its perturbed result) and gives p50/p99/max solve times.
pub fn placement(
    sizes: &[(usize, usize)],
    headrooms: &[f64],
    instances: usize,
    first_seed: u64,
    progress: impl Fn(&str),
) -> PlacementReport {
    use crate::placement::{self, SolveStatus, instances as family};
    let mut rows = Vec::new();
    for &(n, m) in sizes {
        for &headroom in headrooms {
            progress(&format!(
                "{n}×{m}, capacity {headroom}× demand: {instances} instances…"
            ));
            let mut times: [Vec<(f64, u64)>; 2] = [Vec::new(), Vec::new()];
            let mut counts = [[0usize; 3]; 2];
            let mut count = |k: usize, status: Option<&SolveStatus>| {
                counts[k][match status {
                    Some(s) if s.is_optimal() => 0,
                    Some(_) => 1,
                    None => 2,
                }] += 1;
            };
            for seed in first_seed..first_seed + instances as u64 {
                let base = family::reference_family(seed, n, m, headroom);
                let t = Instant::now();
                let first = placement::solve_problem(&base);
                times[0].push((t.elapsed().as_secs_f64() * 1e3, seed));
                count(0, first.as_ref().ok().map(|s| &s.status));
                let Ok(first) = first else { continue };
                let p = family::perturbed(seed, &base, &first);
                let usage = placement::own_usage_from_current(&p);
                let t = Instant::now();
                let re = placement::replan(&p, &usage);
                times[1].push((t.elapsed().as_secs_f64() * 1e3, seed));
                count(1, re.as_ref().ok().map(|r| &r.solution.status));
            }
            for (k, kind) in ["first", "re-place"].into_iter().enumerate() {
                let t = &mut times[k];
                if t.is_empty() {
                    continue;
                }
                t.sort_by(|a, b| a.0.total_cmp(&b.0));
                let ms: Vec<f64> = t.iter().map(|(ms, _)| *ms).collect();
                let at = |q: f64| quantile(&ms, q);
                rows.push(PlacementRow {
                    size: format!("{n}×{m}"),
                    headroom,
                    kind,
                    optimal: counts[k][0],
                    not_proven: counts[k][1],
                    infeasible: counts[k][2],
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                    max_ms: at(1.0),
                    slowest_seed: t[t.len() - 1].1,
                });
            }
        }
    }
    PlacementReport { instances, rows }
}
