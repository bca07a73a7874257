//! Greedy placements: starting points (upper bounds) for the MILP.

use super::model::{Plan, TieBreak};
use super::prepare::{Group, Prepared, fits, replicas_that_fit};
use super::problem::Problem;

/// Which greedy to run; the solver tries both and keeps the better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Greedy {
    /// Keep current clusters, smallest groups first (keeps the most services when a cluster
    /// shrank), then the rest — most constrained, then largest first — to their best-scoring
    /// cluster with room, displacing the fewest keepers of one cluster when none has room.
    KeepThenLargestFirst,
    /// Groups in input order, each to its current cluster if it has room, else the best score.
    InputOrder,
}

fn size_on(prep: &Prepared, g: &Group, e: usize) -> f64 {
    let r = |need: f64, cap: f64| {
        if need <= 0.0 {
            0.0
        } else if cap <= 0.0 {
            f64::INFINITY
        } else {
            need / cap
        }
    };
    r(g.cpu, prep.cpu_cap[e]).max(r(g.memory, prep.mem_cap[e]))
}

/// A feasible plan, or `None` when the greedy gets stuck.
pub(crate) fn greedy(
    problem: &Problem,
    prep: &Prepared,
    tb: &TieBreak,
    how: Greedy,
) -> Option<Plan> {
    let n = problem.services.len();
    let mut cpu_left = prep.cpu_cap.clone();
    let mut mem_left = prep.mem_cap.clone();
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    let mut clusters_of_group: Vec<Vec<usize>> = vec![Vec::new(); prep.groups.len()];
    let keep = |g: &Group, e: usize| {
        g.members
            .iter()
            .filter(|&&s| prep.current[s].contains(&e))
            .count()
    };
    let score = |g: &Group, e: usize| {
        g.members
            .iter()
            .map(|&s| tb.score(problem, prep, s, e))
            .sum::<f64>()
    };
    let ordered = |g: &Group, cand: &[usize]| {
        let mut keyed: Vec<(usize, f64, usize)> =
            cand.iter().map(|&e| (keep(g, e), score(g, e), e)).collect();
        keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        keyed.into_iter().map(|(_, _, e)| e).collect::<Vec<usize>>()
    };

    // Split groups first: non-split partners must land inside their cluster sets.
    for (gi, g) in prep.groups.iter().enumerate().filter(|(_, g)| g.split) {
        let cand = ordered(g, &g.cand);
        clusters_of_group[gi] =
            split_greedy(problem, g, &cand, &mut cpu_left, &mut mem_left, &mut shares)?;
    }
    let allowed = |gi: usize, clusters_of_group: &[Vec<usize>]| -> Vec<usize> {
        let mut cand = prep.groups[gi].cand.clone();
        for &(gn, gs) in &prep.mixed {
            if gn == gi {
                cand.retain(|e| clusters_of_group[gs].contains(e));
            }
        }
        cand
    };
    let place = |gi: usize,
                 e: usize,
                 cpu_left: &mut [f64],
                 mem_left: &mut [f64],
                 shares: &mut [Vec<(usize, u32)>]| {
        let g = &prep.groups[gi];
        cpu_left[e] -= g.cpu;
        mem_left[e] -= g.memory;
        for &s in &g.members {
            shares[s] = vec![(e, problem.services[s].replicas)];
        }
    };
    let plain: Vec<usize> = (0..prep.groups.len())
        .filter(|&gi| !prep.groups[gi].split)
        .collect();
    match how {
        Greedy::InputOrder => {
            for gi in plain {
                let g = &prep.groups[gi];
                let cand = ordered(g, &allowed(gi, &clusters_of_group));
                let e = *cand
                    .iter()
                    .find(|&&e| fits(g.cpu, cpu_left[e]) && fits(g.memory, mem_left[e]))?;
                place(gi, e, &mut cpu_left, &mut mem_left, &mut shares);
            }
        }
        Greedy::KeepThenLargestFirst => {
            let mut keepers: Vec<(f64, usize, usize)> = Vec::new();
            let mut rest: Vec<usize> = Vec::new();
            for gi in plain {
                let g = &prep.groups[gi];
                let cand = allowed(gi, &clusters_of_group);
                let best_keep = cand
                    .iter()
                    .map(|&e| (keep(g, e), e))
                    .filter(|&(k, _)| k > 0)
                    .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
                match best_keep {
                    Some((_, e)) => keepers.push((size_on(prep, g, e), gi, e)),
                    None => rest.push(gi),
                }
            }
            keepers.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // Keepers that stayed, by cluster: the ones a stuck mover may displace.
            let mut kept_on: Vec<Vec<usize>> = vec![Vec::new(); problem.clusters.len()];
            for (_, gi, e) in keepers {
                let g = &prep.groups[gi];
                if fits(g.cpu, cpu_left[e]) && fits(g.memory, mem_left[e]) {
                    place(gi, e, &mut cpu_left, &mut mem_left, &mut shares);
                    kept_on[e].push(gi);
                } else {
                    rest.push(gi);
                }
            }
            let big = |gi: &usize| {
                let g = &prep.groups[*gi];
                let max_cpu = prep.cpu_cap.iter().copied().fold(0.0, f64::max);
                let max_mem = prep.mem_cap.iter().copied().fold(0.0, f64::max);
                let r = |v: f64, m: f64| if m > 0.0 { v / m } else { 0.0 };
                r(g.cpu, max_cpu).max(r(g.memory, max_mem))
            };
            // Most constrained first (fewest usable clusters, e.g. GPU services), then largest.
            let mut rest: Vec<(usize, f64, usize)> = rest
                .iter()
                .map(|gi| (allowed(*gi, &clusters_of_group).len(), big(gi), *gi))
                .collect();
            rest.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
            let mut queue: std::collections::VecDeque<usize> =
                rest.into_iter().map(|(_, _, gi)| gi).collect();
            while let Some(gi) = queue.pop_front() {
                let g = &prep.groups[gi];
                let cand = ordered(g, &allowed(gi, &clusters_of_group));
                if let Some(&e) = cand
                    .iter()
                    .find(|&&e| fits(g.cpu, cpu_left[e]) && fits(g.memory, mem_left[e]))
                {
                    place(gi, e, &mut cpu_left, &mut mem_left, &mut shares);
                    continue;
                }
                // Stuck: displace the fewest keepers (largest first) of one cluster to make
                // room; they join the queue and move elsewhere. A keeper is displaced at most
                // once, so this ends. Without it one stuck mover left the greedy with no plan and
                // the solver started from a placement that moved twice as many services.
                let (e, evict) = cand
                    .iter()
                    .filter_map(|&e| {
                        let mut order = kept_on[e].clone();
                        order.sort_by(|&a, &b| {
                            let (ga, gb) = (&prep.groups[a], &prep.groups[b]);
                            gb.cpu.total_cmp(&ga.cpu).then(a.cmp(&b))
                        });
                        let (mut cpu, mut mem) = (cpu_left[e], mem_left[e]);
                        let mut out = Vec::new();
                        for k in order {
                            if fits(g.cpu, cpu) && fits(g.memory, mem) {
                                break;
                            }
                            cpu += prep.groups[k].cpu;
                            mem += prep.groups[k].memory;
                            out.push(k);
                        }
                        (fits(g.cpu, cpu) && fits(g.memory, mem)).then_some((e, out))
                    })
                    .min_by(|a, b| a.1.len().cmp(&b.1.len()))?;
                for k in evict {
                    let gk = &prep.groups[k];
                    cpu_left[e] += gk.cpu;
                    mem_left[e] += gk.memory;
                    kept_on[e].retain(|&x| x != k);
                    queue.push_back(k);
                }
                place(gi, e, &mut cpu_left, &mut mem_left, &mut shares);
            }
        }
    }
    Some(Plan { shares })
}

/// Spreads every member of a split group over the same clusters: grow the cluster set in `cand`
/// order (skipping clusters without room for a replica of every member) until each member's
/// replicas fit with the per-cluster cap and ≥ 1 replica everywhere.
fn split_greedy(
    problem: &Problem,
    g: &Group,
    cand: &[usize],
    cpu_left: &mut [f64],
    mem_left: &mut [f64],
    shares: &mut [Vec<(usize, u32)>],
) -> Option<Vec<usize>> {
    let min_replicas = g
        .members
        .iter()
        .map(|&s| problem.services[s].replicas)
        .min()?;
    let one_each = |e: usize| {
        let cpu: f64 = g.members.iter().map(|&s| problem.services[s].cpu).sum();
        let mem: f64 = g.members.iter().map(|&s| problem.services[s].memory).sum();
        fits(cpu, cpu_left[e]) && fits(mem, mem_left[e])
    };
    let mut set: Vec<usize> = Vec::new();
    for &e in cand {
        if !one_each(e) {
            continue;
        }
        set.push(e);
        if set.len() as u64 > u64::from(min_replicas) {
            return None;
        }
        if set.len() < 2 {
            continue;
        }
        if let Some(tentative) = distribute(problem, g, &set, cpu_left, mem_left) {
            for (s, mut v) in tentative {
                for &(e, r) in &v {
                    let svc = &problem.services[s];
                    cpu_left[e] -= svc.cpu * f64::from(r);
                    mem_left[e] -= svc.memory * f64::from(r);
                }
                v.sort_unstable();
                shares[s] = v;
            }
            set.sort_unstable();
            return Some(set);
        }
    }
    None
}

/// A member's shares before they are committed.
type Tentative = (usize, Vec<(usize, u32)>);

/// One replica of every member on every cluster of `set`, then the rest in `set` order up to
/// the per-cluster cap; `None` if they do not fit.
fn distribute(
    problem: &Problem,
    g: &Group,
    set: &[usize],
    cpu_left: &[f64],
    mem_left: &[f64],
) -> Option<Vec<Tentative>> {
    let mut cl = cpu_left.to_vec();
    let mut ml = mem_left.to_vec();
    let mut out = Vec::with_capacity(g.members.len());
    for &s in &g.members {
        let svc = &problem.services[s];
        let cap = svc.max_replicas_per_cluster();
        let mut counts = vec![0u32; set.len()];
        let mut left = svc.replicas;
        for (i, &e) in set.iter().enumerate() {
            if left == 0 || !fits(svc.cpu, cl[e]) || !fits(svc.memory, ml[e]) {
                return None;
            }
            counts[i] = 1;
            cl[e] -= svc.cpu;
            ml[e] -= svc.memory;
            left -= 1;
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
            return None;
        }
        out.push((s, set.iter().copied().zip(counts).collect()));
    }
    Some(out)
}
