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
