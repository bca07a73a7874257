//! The reference SMO's first-fit, kept as a baseline to compare the optimiser against.

use super::error::{PlacementError, Resource};
use super::model::{Plan, violations};
use super::prepare::{Prepared, fits, replicas_that_fit};
use super::problem::Problem;

/// Services in input order, each to the first usable cluster (input order) with room — the
/// reference algorithm. To make the comparison fair it honours the same hard constraints as the
/// optimiser where a greedy can (GPU, readiness, allow-lists, co-location with services already
/// placed, HA spreading with at most ⌈r/2⌉ replicas per cluster); it ignores the current
/// placement, exactly like the reference did on first deployment.
pub(crate) fn first_fit_plan(problem: &Problem, prep: &Prepared) -> Result<Plan, PlacementError> {
    let n = problem.services.len();
    let mut cpu_left = prep.cpu_cap.clone();
    let mut mem_left = prep.mem_cap.clone();
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    let mut placed = vec![false; n];
    for s in 0..n {
        let svc = &problem.services[s];
        let gi = prep.group_of[s];
        let g = &prep.groups[gi];
        let fail = |reason: String| PlacementError::FirstFitFailed {
            service: svc.name.clone(),
            reason,
        };
        // Clusters already fixed by placed partners.
        let same: Option<Vec<usize>> = g
            .members
            .iter()
            .find(|&&o| placed[o])
            .map(|&o| shares[o].iter().map(|&(e, _)| e).collect());
        let mut must_include: Vec<usize> = Vec::new();
        let mut within: Option<Vec<usize>> = None;
        for &(gn, gs) in &prep.mixed {
            if gn == gi {
                if let Some(&o) = prep.groups[gs].members.iter().find(|&&o| placed[o]) {
                    within = Some(shares[o].iter().map(|&(e, _)| e).collect());
                }
            } else if gs == gi
                && let Some(&o) = prep.groups[gn].members.iter().find(|&&o| placed[o])
            {
                must_include.extend(shares[o].iter().map(|&(e, _)| e));
            }
        }
        let allowed = |e: usize| {
            g.cand.binary_search(&e).is_ok()
                && within.as_ref().is_none_or(|w| w.contains(&e))
                && same.as_ref().is_none_or(|v| v.contains(&e))
        };
        if !svc.is_split() {
            let need_cpu = svc.total_cpu();
            let need_mem = svc.total_memory();
            let e = (0..problem.clusters.len())
                .find(|&e| allowed(e) && fits(need_cpu, cpu_left[e]) && fits(need_mem, mem_left[e]))
                .ok_or_else(|| {
                    fail(format!(
                        "no usable cluster has room for {} and {}",
                        Resource::Cpu.amount(need_cpu),
                        Resource::Memory.amount(need_mem)
                    ))
                })?;
            cpu_left[e] -= need_cpu;
            mem_left[e] -= need_mem;
            shares[s] = vec![(e, svc.replicas)];
        } else {
            let cap = svc.max_replicas_per_cluster();
            let mut order: Vec<usize> = must_include.clone();
            order.sort_unstable();
            order.dedup();
            order.extend((0..problem.clusters.len()).filter(|e| !must_include.contains(e)));
            let mut left = svc.replicas;
            let mut mine: Vec<(usize, u32)> = Vec::new();
            // Partners fixed the cluster set: one replica on each first.
            if let Some(set) = &same {
                for &e in set {
                    if left == 0 || !fits(svc.cpu, cpu_left[e]) || !fits(svc.memory, mem_left[e]) {
                        return Err(fail(format!(
                            "cannot put a replica on every cluster of its co-located services ({})",
                            problem.clusters[e].name
                        )));
                    }
                    cpu_left[e] -= svc.cpu;
                    mem_left[e] -= svc.memory;
                    mine.push((e, 1));
                    left -= 1;
                }
            }
            for e in order {
                if left == 0 {
                    break;
                }
                if !allowed(e) {
                    continue;
                }
                let have = mine.iter().find(|(f, _)| *f == e).map_or(0, |&(_, r)| r);
                let room =
                    replicas_that_fit(svc.cpu, svc.memory, cpu_left[e], mem_left[e], cap - have);
                let k = room.min(left);
                if k == 0 {
                    continue;
                }
                cpu_left[e] -= svc.cpu * f64::from(k);
                mem_left[e] -= svc.memory * f64::from(k);
                left -= k;
                match mine.iter_mut().find(|(f, _)| *f == e) {
                    Some(slot) => slot.1 += k,
                    None => mine.push((e, k)),
                }
            }
            if left > 0 {
                return Err(fail(format!(
                    "only {} of {} replicas fit with at most {cap} per cluster",
                    svc.replicas - left,
                    svc.replicas
                )));
            }
            mine.sort_unstable();
            shares[s] = mine;
        }
        placed[s] = true;
    }
    let plan = Plan { shares };
    if let Some(v) = violations(problem, prep, &plan).into_iter().next() {
        let service = v.split([':', ' ']).next().unwrap_or_default().to_string();
        return Err(PlacementError::FirstFitFailed { service, reason: v });
    }
    Ok(plan)
}
