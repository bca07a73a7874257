//! Greedy placements: starting points (upper bounds) for the MILP.

use super::instances::Rng;
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
    let allowed =
        |gi: usize, clusters_of_group: &[Vec<usize>]| allowed(prep, gi, clusters_of_group);
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

/// The clusters plain group `gi` may use once the split groups sit on `clusters_of_group`: its
/// candidates, inside the cluster set of every split group it is co-located with.
fn allowed(prep: &Prepared, gi: usize, clusters_of_group: &[Vec<usize>]) -> Vec<usize> {
    let mut cand = prep.groups[gi].cand.clone();
    for &(gn, gs) in &prep.mixed {
        if gn == gi {
            cand.retain(|e| clusters_of_group[gs].contains(e));
        }
    }
    cand
}

/// Steps of [`repair`]'s search before it gives up (each looks at every move and swap out of
/// one overflowing cluster).
const REPAIR_STEPS: usize = 20_000;

/// A feasible plan found by local search, for when the greedies get stuck because the clusters
/// are nearly full (tight 200×50 re-placements of `--headroom 1.05`): HiGHS alone then starts
/// from nothing, and after 5 s its placement of seed 41 moved 150 services where this search's
/// moves 91. Two tries: the second does without the preference for moves home, and finds
/// placements the first misses. Split groups are placed as the greedy places them. Every other
/// group then goes to its current cluster if it fits, else where it fits tightest, else where
/// it overflows least; then a tabu search moves and swaps groups out
/// of overflowing clusters, each step the move that lowers the total overflow most and, of
/// those, leaves the fewest groups away from where they run (a recently moved group stays put
/// for a few steps unless moving it beats the best yet), until nothing overflows. Seeded, so
/// equal inputs give equal plans. `None` after [`REPAIR_STEPS`] steps.
pub(crate) fn repair(problem: &Problem, prep: &Prepared, tb: &TieBreak) -> Option<Plan> {
    search(problem, prep, tb, true).or_else(|| search(problem, prep, tb, false))
}

fn search(problem: &Problem, prep: &Prepared, tb: &TieBreak, prefer_home: bool) -> Option<Plan> {
    let n = problem.services.len();
    let m = problem.clusters.len();
    let mut cpu_left = prep.cpu_cap.clone();
    let mut mem_left = prep.mem_cap.clone();
    let mut shares: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    let mut clusters_of_group: Vec<Vec<usize>> = vec![Vec::new(); prep.groups.len()];
    for (gi, g) in prep.groups.iter().enumerate().filter(|(_, g)| g.split) {
        let mut cand: Vec<(f64, usize)> = g
            .cand
            .iter()
            .map(|&e| {
                (
                    g.members
                        .iter()
                        .map(|&s| tb.score(problem, prep, s, e))
                        .sum(),
                    e,
                )
            })
            .collect();
        cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let cand: Vec<usize> = cand.into_iter().map(|(_, e)| e).collect();
        clusters_of_group[gi] =
            split_greedy(problem, g, &cand, &mut cpu_left, &mut mem_left, &mut shares)?;
    }
    let plain: Vec<usize> = (0..prep.groups.len())
        .filter(|&gi| !prep.groups[gi].split)
        .collect();
    let mut usable: Vec<Vec<usize>> = vec![Vec::new(); prep.groups.len()];
    for &gi in &plain {
        usable[gi] = allowed(prep, gi, &clusters_of_group);
        if usable[gi].is_empty() {
            return None;
        }
    }
    // Overflow in comparable units: each resource over its largest cluster.
    let norm = |caps: &[f64]| caps.iter().copied().fold(0.0, f64::max).max(1e-9);
    let (cpu_norm, mem_norm) = (norm(&prep.cpu_cap), norm(&prep.mem_cap));
    let excess = |left: f64, cap: f64| (-left - 1e-9 * cap.abs().max(1.0)).max(0.0);
    let over = |e: usize, cpu_left: f64, mem_left: f64| {
        excess(cpu_left, prep.cpu_cap[e]) / cpu_norm + excess(mem_left, prep.mem_cap[e]) / mem_norm
    };

    // Largest first, each to its current cluster, the tightest fit or the least overflow.
    let mut order = plain.clone();
    let size = |gi: usize| {
        let g = &prep.groups[gi];
        g.cpu / cpu_norm + g.memory / mem_norm
    };
    order.sort_by(|&a, &b| {
        usable[a]
            .len()
            .cmp(&usable[b].len())
            .then(size(b).total_cmp(&size(a)))
            .then(a.cmp(&b))
    });
    // Where each group runs now, if it may stay there: it starts there if it fits, and the
    // search prefers moves towards it.
    let home: Vec<Option<usize>> = (0..prep.groups.len())
        .map(|gi| home_of(prep, gi, &usable[gi]))
        .collect();
    let mut on = vec![usize::MAX; prep.groups.len()];
    let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); m];
    for gi in order {
        let g = &prep.groups[gi];
        let fits_on = |e: usize| fits(g.cpu, cpu_left[e]) && fits(g.memory, mem_left[e]);
        let e = home[gi].filter(|&h| fits_on(h)).unwrap_or_else(|| {
            let key = |e: usize| {
                let (c, k) = (cpu_left[e] - g.cpu, mem_left[e] - g.memory);
                let overflow = over(e, c, k) - over(e, cpu_left[e], mem_left[e]);
                (overflow, c.max(0.0) / cpu_norm + k.max(0.0) / mem_norm)
            };
            *usable[gi]
                .iter()
                .min_by(|&&a, &&b| {
                    let (ka, kb) = (key(a), key(b));
                    ka.0.total_cmp(&kb.0)
                        .then(ka.1.total_cmp(&kb.1))
                        .then(a.cmp(&b))
                })
                .expect("usable is not empty")
        });
        cpu_left[e] -= g.cpu;
        mem_left[e] -= g.memory;
        on[gi] = e;
        members_of[e].push(gi);
    }

    let mut pk = Packing {
        cpu_left,
        mem_left,
        on,
        members_of,
    };
    let mut total: f64 = (0..m)
        .map(|e| over(e, pk.cpu_left[e], pk.mem_left[e]))
        .sum();
    let mut best_total = total;
    let mut tabu_until = vec![0usize; prep.groups.len()];
    // Seeded, as the benchmark instances are (SplitMix64): equal inputs, equal plans.
    let mut rng = Rng(0x5EED_0FC0_FFEE);
    for step in 0..REPAIR_STEPS {
        let overflowing: Vec<usize> = (0..m)
            .filter(|&e| over(e, pk.cpu_left[e], pk.mem_left[e]) > 0.0)
            .collect();
        if overflowing.is_empty() {
            break;
        }
        let e = overflowing[rng.below(overflowing.len() as u64) as usize];
        // (change in total overflow, in groups away from home, group out of e, its new cluster,
        // group into e if a swap): least overflow first, then fewest away.
        let mut best: Option<(f64, i32, usize, usize, Option<usize>)> = None;
        let homeward = |g: usize, from: usize, to: usize| {
            i32::from(home[g] == Some(from)) - i32::from(home[g] == Some(to))
        };
        let before_e = over(e, pk.cpu_left[e], pk.mem_left[e]);
        for &g in &pk.members_of[e] {
            let gg = &prep.groups[g];
            for &f in &usable[g] {
                if f == e {
                    continue;
                }
                let before = before_e + over(f, pk.cpu_left[f], pk.mem_left[f]);
                let mut consider = |delta: f64, h: Option<usize>| {
                    let away = homeward(g, e, f) + h.map_or(0, |h| homeward(h, f, e));
                    let tabu = tabu_until[g] > step || h.is_some_and(|h| tabu_until[h] > step);
                    if tabu && total + delta >= best_total - 1e-12 {
                        return;
                    }
                    let better = |b: &(f64, i32, usize, usize, Option<usize>)| {
                        delta < b.0 - 1e-12 || (prefer_home && delta <= b.0 + 1e-12 && away < b.1)
                    };
                    if best.as_ref().is_none_or(better) {
                        best = Some((delta, away, g, f, h));
                    }
                };
                let after = over(e, pk.cpu_left[e] + gg.cpu, pk.mem_left[e] + gg.memory)
                    + over(f, pk.cpu_left[f] - gg.cpu, pk.mem_left[f] - gg.memory);
                consider(after - before, None);
                for &h in &pk.members_of[f] {
                    if usable[h].binary_search(&e).is_err() {
                        continue;
                    }
                    let gh = &prep.groups[h];
                    let after = over(
                        e,
                        pk.cpu_left[e] + gg.cpu - gh.cpu,
                        pk.mem_left[e] + gg.memory - gh.memory,
                    ) + over(
                        f,
                        pk.cpu_left[f] - gg.cpu + gh.cpu,
                        pk.mem_left[f] - gg.memory + gh.memory,
                    );
                    consider(after - before, Some(h));
                }
            }
        }
        let Some((delta, _, g, f, h)) = best else {
            continue;
        };
        for (gi, to) in [(g, f)].into_iter().chain(h.map(|h| (h, e))) {
            pk.shift(prep, gi, to);
            tabu_until[gi] = step + 5 + rng.below(10) as usize;
        }
        total += delta;
        best_total = best_total.min(total);
    }
    if (0..m).any(|e| over(e, pk.cpu_left[e], pk.mem_left[e]) > 0.0) {
        return None;
    }

    for gi in plain {
        for &s in &prep.groups[gi].members {
            shares[s] = vec![(pk.on[gi], problem.services[s].replicas)];
        }
    }
    Some(Plan { shares })
}

/// Plain groups on clusters and what is left of each cluster: the state the search and
/// [`bring_home`] move groups around in.
struct Packing {
    cpu_left: Vec<f64>,
    mem_left: Vec<f64>,
    /// The cluster of each plain group (`usize::MAX` for the others).
    on: Vec<usize>,
    /// The plain groups on each cluster.
    members_of: Vec<Vec<usize>>,
}

impl Packing {
    /// Moves plain group `gi` from its cluster to `to`, with what is left on both.
    fn shift(&mut self, prep: &Prepared, gi: usize, to: usize) {
        let (g, from) = (&prep.groups[gi], self.on[gi]);
        self.cpu_left[from] += g.cpu;
        self.mem_left[from] += g.memory;
        self.cpu_left[to] -= g.cpu;
        self.mem_left[to] -= g.memory;
        self.members_of[from].retain(|&x| x != gi);
        self.members_of[to].push(gi);
        self.on[gi] = to;
    }
}

/// The cluster group `gi` runs on now among `usable`, if any (the one with most of its members).
fn home_of(prep: &Prepared, gi: usize, usable: &[usize]) -> Option<usize> {
    let g = &prep.groups[gi];
    usable
        .iter()
        .map(|&e| {
            let kept = g.members.iter().filter(|&&s| prep.current[s].contains(&e));
            (kept.count(), e)
        })
        .filter(|&(k, _)| k > 0)
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, e)| e)
}

/// `plan` with groups brought back to the cluster they run on wherever that keeps it feasible:
/// directly, in exchange for a group that is away from home there too, or after such a group
/// makes way to a third cluster. The greedies and the search place for room, not for moves;
/// from their placements HiGHS could not improve in 60 s on some tight re-placements (seed 39
/// of `--headroom 1.05`: 141 moves where 15 suffice). Split groups stay where they are.
pub(crate) fn bring_home(problem: &Problem, prep: &Prepared, mut plan: Plan) -> Plan {
    let m = problem.clusters.len();
    let (used_cpu, used_mem) = super::model::loads(problem, &plan);
    let cpu_left: Vec<f64> = (0..m).map(|e| prep.cpu_cap[e] - used_cpu[e]).collect();
    let mem_left: Vec<f64> = (0..m).map(|e| prep.mem_cap[e] - used_mem[e]).collect();
    let clusters_of_group: Vec<Vec<usize>> = prep
        .groups
        .iter()
        .map(|g| plan.shares[g.members[0]].iter().map(|&(e, _)| e).collect())
        .collect();
    let plain: Vec<usize> = (0..prep.groups.len())
        .filter(|&gi| !prep.groups[gi].split && clusters_of_group[gi].len() == 1)
        .collect();
    let mut pk = Packing {
        cpu_left,
        mem_left,
        on: vec![usize::MAX; prep.groups.len()],
        members_of: vec![Vec::new(); m],
    };
    let mut usable: Vec<Vec<usize>> = vec![Vec::new(); prep.groups.len()];
    let mut home = vec![None; prep.groups.len()];
    for &gi in &plain {
        let e = clusters_of_group[gi][0];
        pk.on[gi] = e;
        pk.members_of[e].push(gi);
        usable[gi] = allowed(prep, gi, &clusters_of_group);
        home[gi] = home_of(prep, gi, &usable[gi]);
    }
    let away = |gi: usize, on: &[usize]| home[gi].is_some_and(|h| on[gi] != h);
    let room = |gi: usize, e: usize, cpu: f64, mem: f64| {
        let g = &prep.groups[gi];
        fits(g.cpu, cpu) && fits(g.memory, mem) && usable[gi].binary_search(&e).is_ok()
    };
    let mut improved = true;
    while improved {
        improved = false;
        for &g in &plain {
            let Some(h) = home[g].filter(|_| away(g, &pk.on)) else {
                continue;
            };
            let from = pk.on[g];
            let (gc, gm) = (prep.groups[g].cpu, prep.groups[g].memory);
            let step = if room(g, h, pk.cpu_left[h], pk.mem_left[h]) {
                Some(None)
            } else {
                pk.members_of[h]
                    .iter()
                    .copied()
                    .filter(|&k| away(k, &pk.on))
                    .find_map(|k| {
                        let (kc, km) = (prep.groups[k].cpu, prep.groups[k].memory);
                        if !room(g, h, pk.cpu_left[h] + kc, pk.mem_left[h] + km) {
                            return None;
                        }
                        if room(k, from, pk.cpu_left[from] + gc, pk.mem_left[from] + gm) {
                            return Some(Some((k, from)));
                        }
                        usable[k]
                            .iter()
                            .copied()
                            .find(|&f| {
                                f != h && f != from && room(k, f, pk.cpu_left[f], pk.mem_left[f])
                            })
                            .map(|f| Some((k, f)))
                    })
            };
            let Some(making_way) = step else { continue };
            for (gi, to) in making_way.into_iter().chain([(g, h)]) {
                pk.shift(prep, gi, to);
            }
            improved = true;
        }
    }
    for gi in plain {
        for &s in &prep.groups[gi].members {
            plan.shares[s] = vec![(pk.on[gi], problem.services[s].replicas)];
        }
    }
    plan
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
