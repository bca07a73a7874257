//! `smo placement solve`: the optimiser on a problem file, for comparing with other solvers.

use std::path::PathBuf;

use clap::Subcommand;

use crate::cli::Output;

use super::BadInput;

#[derive(Subcommand)]
pub(super) enum PlacementCmd {
    /// Solve a what-if placement problem given as JSON (format: README, "Placement what-ifs") and
    /// print the placement, objective, status and explanation.
    Solve {
        /// Problem file (`-` for stdin).
        #[arg(long, short)]
        input: PathBuf,
        /// Use the reference's first-fit heuristic instead of the optimiser (for comparison).
        #[arg(long)]
        first_fit: bool,
    },
    /// Print one seeded instance of `smo bench placement` as a problem file, to replay it or to
    /// give it to another solver: the first placement's problem, or with `--replace` the
    /// re-placement's (capacities as the solver sees them, the graph's own usage added back).
    Instance {
        /// Services × clusters.
        #[arg(long, default_value = "200x50")]
        size: String,
        /// The instance's seed (`smo bench placement` prints the slowest one's).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Capacity as a multiple of demand.
        #[arg(long, default_value_t = 1.3)]
        headroom: f64,
        /// The re-placement of its first placement rather than the first placement.
        #[arg(long)]
        replace: bool,
    },
}

/// `services×clusters` (`x` or `×`).
pub(super) fn parse_size(s: &str) -> Result<(usize, usize), BadInput> {
    s.split_once(['x', '×'])
        .and_then(|(n, m)| Some((n.trim().parse().ok()?, m.trim().parse().ok()?)))
        .filter(|&(n, m)| n > 0 && m > 0)
        .ok_or_else(|| BadInput(format!("size: {s:?} is not <services>x<clusters>")))
}

pub(super) fn instance(size: &str, seed: u64, headroom: f64, replace: bool) -> anyhow::Result<u8> {
    use crate::placement::instances;
    let (n, m) = parse_size(size)?;
    if !(headroom.is_finite() && headroom >= 1.0) {
        return Err(BadInput(format!("headroom: must be a number ≥ 1, got {headroom}")).into());
    }
    let base = instances::reference_family(seed, n, m, headroom);
    let problem = if replace {
        instances::replacement(seed, &base)?
    } else {
        base
    };
    println!("{}", serde_json::to_string_pretty(&problem)?);
    Ok(0)
}

/// Largest problem file read: far above any real federation, far below memory trouble.
const MAX_PROBLEM_BYTES: u64 = 256 * 1024 * 1024;

pub(super) fn solve(input: &std::path::Path, first_fit: bool, out: Output) -> anyhow::Result<u8> {
    let mut text = String::new();
    let read = if input.as_os_str() == "-" {
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::io::stdin(), MAX_PROBLEM_BYTES + 1),
            &mut text,
        )
    } else {
        std::fs::File::open(input).and_then(|f| {
            std::io::Read::read_to_string(
                &mut std::io::Read::take(f, MAX_PROBLEM_BYTES + 1),
                &mut text,
            )
        })
    };
    read.map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    if text.len() as u64 > MAX_PROBLEM_BYTES {
        anyhow::bail!("{}: larger than {MAX_PROBLEM_BYTES} bytes", input.display());
    }
    let problem: crate::placement::Problem = serde_json::from_str(&text)
        .map_err(|e| BadInput(format!("{}: not a placement problem: {e}", input.display())))?;
    let result = if first_fit {
        crate::placement::first_fit(&problem)
    } else {
        crate::placement::solve_problem(&problem)
    };
    let solution = match result {
        Ok(s) => s,
        Err(e @ crate::placement::PlacementError::Invalid(_)) => {
            return Err(BadInput(e.to_string()).into());
        }
        Err(e) => {
            if out == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"status": "infeasible", "error": e.to_string()})
                    )?
                );
            } else {
                eprintln!("error: {e}");
            }
            return Ok(1);
        }
    };
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(&solution)?);
        return Ok(0);
    }
    let status = match &solution.status {
        crate::placement::SolveStatus::Optimal { gap } => format!("proven optimal (gap {gap:.2e})"),
        crate::placement::SolveStatus::Feasible { gap } => {
            format!("feasible, not proven optimal (gap {gap:.2e})")
        }
        crate::placement::SolveStatus::Heuristic => {
            "first-fit heuristic (no optimality claim)".into()
        }
    };
    println!("status:    {status}");
    let o = &solution.objective;
    println!(
        "objective: {:.4} (deployments {}, moves {}, cost {:.2}, carbon {:.2}, max utilisation {:.2})",
        o.total, o.deployments, o.moves, o.cost, o.carbon, o.max_utilisation
    );
    println!();
    let mut t = crate::cli::table(&["service", "cluster(s)", "moved"]);
    for p in &solution.placement {
        let clusters = p
            .clusters
            .iter()
            .map(|c| format!("{} ×{}", c.cluster, c.replicas))
            .collect::<Vec<_>>()
            .join(", ");
        let moved = solution.moved.iter().any(|m| m.service == p.service);
        t.add_row(vec![
            p.service.clone(),
            clusters,
            if moved { "yes".into() } else { "-".into() },
        ]);
    }
    println!("{t}\nwhy:");
    for e in &solution.explanations {
        println!("  {}", e.summary);
    }
    Ok(0)
}
