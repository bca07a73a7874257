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
    /// The slowest instances solved again by the reference model, slowest first (empty when
    /// the reference was not asked for).
    pub reference: Vec<ReferenceRun>,
}

/// One instance solved by smo and by the reference model (CVXPY + HiGHS).
#[derive(Debug, Serialize)]
pub struct ReferenceRun {
    pub seed: u64,
    /// smo's solve (the bench's timing).
    pub smo_ms: f64,
    /// The reference: building the CVXPY model and `solve` (its compilation and HiGHS).
    pub reference_ms: f64,
    /// HiGHS alone inside the reference.
    pub reference_solver_ms: f64,
    /// The SPEC objective of each answer (smo's without its tie-break): equal when both are
    /// optimal.
    pub smo_objective: f64,
    pub reference_objective: f64,
    /// The reference's status (`optimal`, `user_limit` at its time limit, `infeasible`).
    pub reference_status: String,
}

/// Where the reference model is: the venv's Python (`$SMO_PYTHON`, else `target/py/bin/python`,
/// both made by scripts/setup) and `scripts/placement-reference`, from the checkout's root.
#[derive(Debug, Clone)]
pub struct Reference {
    pub python: std::path::PathBuf,
    pub script: std::path::PathBuf,
}

impl Reference {
    /// The reference of this checkout, if scripts/setup installed it.
    pub fn find() -> Option<Self> {
        let python = std::env::var_os("SMO_PYTHON")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "target/py/bin/python".into());
        let script = std::path::PathBuf::from("scripts/placement-reference");
        (python.exists() && script.exists()).then_some(Self { python, script })
    }

    /// Solves `problem` with the reference model: its JSON answer.
    pub fn solve(&self, problem: &crate::placement::Problem) -> anyhow::Result<serde_json::Value> {
        use anyhow::Context as _;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let file = std::env::temp_dir().join(format!(
            "smo-placement-{}-{}.json",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&file, serde_json::to_vec(problem)?)?;
        let out = std::process::Command::new(&self.python)
            .arg(&self.script)
            .arg(&file)
            .output();
        let _ = std::fs::remove_file(&file);
        let out = out.with_context(|| format!("running {}", self.python.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "the reference model failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// Solves `instances` seeded instances of each size and headroom (first placement, then the
/// re-placement of its perturbed result) and gives p50/p99/max solve times; with `reference`,
/// its `compare` slowest instances per row are solved again by the reference model.
pub fn placement(
    sizes: &[(usize, usize)],
    headrooms: &[f64],
    instances: usize,
    first_seed: u64,
    reference: Option<(&Reference, usize)>,
    progress: impl Fn(&str),
) -> anyhow::Result<PlacementReport> {
    use crate::placement::{self, SolveStatus, instances as family};
    let mut rows = Vec::new();
    for &(n, m) in sizes {
        for &headroom in headrooms {
            progress(&format!(
                "{n}×{m}, capacity {headroom}× demand: {instances} instances…"
            ));
            // (ms, seed, SPEC objective) per instance.
            let mut times: [Vec<(f64, u64, f64)>; 2] = [Vec::new(), Vec::new()];
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
                let ms = t.elapsed().as_secs_f64() * 1e3;
                count(0, first.as_ref().ok().map(|s| &s.status));
                let Ok(first) = first else {
                    times[0].push((ms, seed, f64::NAN));
                    continue;
                };
                times[0].push((ms, seed, first.objective.total));
                let p = family::perturbed(seed, &base, &first);
                let usage = placement::own_usage_from_current(&p);
                let t = Instant::now();
                let re = placement::replan(&p, &usage);
                times[1].push((
                    t.elapsed().as_secs_f64() * 1e3,
                    seed,
                    re.as_ref().map_or(f64::NAN, |r| r.solution.objective.total),
                ));
                count(1, re.as_ref().ok().map(|r| &r.solution.status));
            }
            for (k, kind) in ["first", "re-place"].into_iter().enumerate() {
                let t = &mut times[k];
                if t.is_empty() {
                    continue;
                }
                t.sort_by(|a, b| a.0.total_cmp(&b.0));
                let ms: Vec<f64> = t.iter().map(|(ms, ..)| *ms).collect();
                let at = |q: f64| quantile(&ms, q);
                let mut compared = Vec::new();
                for &(smo_ms, seed, smo_objective) in
                    t.iter().rev().take(reference.map_or(0, |(_, k)| k))
                {
                    let Some((r, _)) = reference else { break };
                    progress(&format!(
                        "{n}×{m} {kind}: seed {seed} by the reference model…"
                    ));
                    let base = family::reference_family(seed, n, m, headroom);
                    let problem = if k == 0 {
                        base
                    } else {
                        family::replacement(seed, &base)?
                    };
                    let a = r.solve(&problem)?;
                    let secs = |f: &str| a[f].as_f64().unwrap_or(f64::NAN) * 1e3;
                    compared.push(ReferenceRun {
                        seed,
                        smo_ms,
                        reference_ms: secs("total_s"),
                        reference_solver_ms: secs("solver_s"),
                        smo_objective,
                        reference_objective: a["objective"].as_f64().unwrap_or(f64::NAN),
                        reference_status: a["status"].as_str().unwrap_or("?").to_string(),
                    });
                }
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
                    reference: compared,
                });
            }
        }
    }
    Ok(PlacementReport { instances, rows })
}
