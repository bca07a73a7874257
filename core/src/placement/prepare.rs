//! Turns a validated `Problem` into index-based data for the model: usable clusters per service,
//! co-location groups, and the cheap infeasibility checks that give precise messages before the
//! solver runs.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{Infeasibility, Resource};
use super::problem::Problem;

/// Why a cluster cannot host a service; shown in explanations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ExclusionReason {
    /// The cluster is not Ready.
    NotReady,
    /// The service lists it in `excluded_clusters`.
    Excluded,
    /// The service has an allow-list without it.
    NotAllowed,
    /// The service needs a GPU and the cluster has none.
    NoGpu,
    /// Not enough free capacity for the service (all replicas, or one replica of a split service).
    TooSmall {
        /// The binding resource.
        resource: Resource,
        /// What the service needs.
        need: f64,
        /// What the cluster has free.
        free: f64,
    },
    /// The service must share a cluster with these services, and they cannot all run here.
    CoLocation {
        /// The co-located services.
        with: Vec<String>,
    },
}

impl fmt::Display for ExclusionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExclusionReason::NotReady => write!(f, "not ready"),
            ExclusionReason::Excluded => write!(f, "excluded for this service"),
            ExclusionReason::NotAllowed => write!(f, "not in allowed_clusters"),
            ExclusionReason::NoGpu => write!(f, "no GPU"),
            ExclusionReason::TooSmall {
                resource,
                need,
                free,
            } => write!(
                f,
                "too small (needs {}, {} free)",
                resource.amount(*need),
                resource.amount(*free)
            ),
            ExclusionReason::CoLocation { with } => {
                write!(f, "cannot also host co-located {}", with.join(", "))
            }
        }
    }
}

/// A set of services that must use exactly the same cluster(s); they share the x variables.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// Service indices, ascending.
    pub members: Vec<usize>,
    /// Split (HA) services; groups never mix split and non-split services.
    pub split: bool,
    /// Usable cluster indices, ascending.
    pub cand: Vec<usize>,
    /// Summed CPU of all replicas of all members (non-split groups).
    pub cpu: f64,
    /// Summed memory.
    pub memory: f64,
}

/// Index-based view of a validated problem.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub cpu_cap: Vec<f64>,
    pub mem_cap: Vec<f64>,
    pub group_of: Vec<usize>,
    pub groups: Vec<Group>,
    /// (non-split group, split group): the first's cluster must be one of the second's.
    pub mixed: Vec<(usize, usize)>,
    /// Per service: clusters it cannot use, with the reason.
    pub exclusions: Vec<Vec<(usize, ExclusionReason)>>,
    /// Per service: current cluster indices (y), ascending, deduplicated.
    pub current: Vec<Vec<usize>>,
}

/// Capacity comparisons tolerate rounding noise from summing floats.
pub(crate) fn fits(need: f64, free: f64) -> bool {
    need <= free + 1e-9 * free.abs().max(1.0)
}

/// How many replicas of (cpu, memory) fit into (free_cpu, free_mem), capped at `cap`.
pub(crate) fn replicas_that_fit(cpu: f64, mem: f64, free_cpu: f64, free_mem: f64, cap: u32) -> u32 {
    let by = |need: f64, free: f64| -> f64 {
        if need <= 0.0 {
            f64::INFINITY
        } else {
            ((free + 1e-9 * free.abs().max(1.0)) / need)
                .floor()
                .max(0.0)
        }
    };
    let n = by(cpu, free_cpu).min(by(mem, free_mem));
    if n >= f64::from(cap) { cap } else { n as u32 }
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut a: usize) -> usize {
        while self.0[a] != a {
            let up = self.0[self.0[a]];
            self.0[a] = up;
            a = up;
        }
        a
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The smaller index becomes the root so group numbering follows input order.
        if ra < rb {
            self.0[rb] = ra;
        } else if rb < ra {
            self.0[ra] = rb;
        }
    }
}

fn list_names(problem: &Problem, idx: &[usize], limit: usize) -> String {
    let mut v: Vec<&str> = idx
        .iter()
        .take(limit)
        .filter_map(|&e| problem.clusters.get(e).map(|c| c.name.as_str()))
        .collect();
    if idx.len() > limit {
        v.push("…");
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Builds the index view and runs the cheap feasibility checks. `problem` must be validated.
pub(crate) fn prepare(problem: &Problem) -> Result<Prepared, Vec<Infeasibility>> {
    let n = problem.services.len();
    let m = problem.clusters.len();
    let cluster_idx: HashMap<&str, usize> = problem
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let service_idx: HashMap<&str, usize> = problem
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let cpu_cap: Vec<f64> = problem.clusters.iter().map(|c| c.cpu).collect();
    let mem_cap: Vec<f64> = problem.clusters.iter().map(|c| c.memory).collect();
    let mut problems: Vec<Infeasibility> = Vec::new();

    // 1. Per service: usable clusters and reasons for the others.
    let mut cand: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut exclusions: Vec<Vec<(usize, ExclusionReason)>> = Vec::with_capacity(n);
    for svc in &problem.services {
        // Masks: allow-lists can be as long as the cluster list.
        let allowed: Option<Vec<bool>> = svc.allowed_clusters.as_ref().map(|a| {
            let mut mask = vec![false; m];
            for e in a.iter().filter_map(|c| cluster_idx.get(c.as_str())) {
                mask[*e] = true;
            }
            mask
        });
        let mut excluded = vec![false; m];
        for e in svc
            .excluded_clusters
            .iter()
            .filter_map(|c| cluster_idx.get(c.as_str()))
        {
            excluded[*e] = true;
        }
        let (need_cpu, need_mem) = if svc.is_split() {
            (svc.cpu, svc.memory)
        } else {
            (svc.total_cpu(), svc.total_memory())
        };
        let mut ok = Vec::new();
        let mut ex = Vec::new();
        for (e, c) in problem.clusters.iter().enumerate() {
            let reason = if !c.ready {
                Some(ExclusionReason::NotReady)
            } else if excluded[e] {
                Some(ExclusionReason::Excluded)
            } else if allowed.as_ref().is_some_and(|a| !a[e]) {
                Some(ExclusionReason::NotAllowed)
            } else if svc.gpu && !c.has_accelerator() {
                Some(ExclusionReason::NoGpu)
            } else if !fits(need_cpu, c.cpu) {
                Some(ExclusionReason::TooSmall {
                    resource: Resource::Cpu,
                    need: need_cpu,
                    free: c.cpu,
                })
            } else if !fits(need_mem, c.memory) {
                Some(ExclusionReason::TooSmall {
                    resource: Resource::Memory,
                    need: need_mem,
                    free: c.memory,
                })
            } else {
                None
            };
            match reason {
                Some(r) => ex.push((e, r)),
                None => ok.push(e),
            }
        }
        if ok.is_empty() {
            problems.push(no_cluster_reason(problem, svc, &ex, need_cpu, need_mem));
        }
        cand.push(ok);
        exclusions.push(ex);
    }

    // 2. Co-location groups: equality among services of the same kind, inclusion across kinds.
    let mut uf = UnionFind((0..n).collect());
    let mut mixed_pairs: Vec<(usize, usize)> = Vec::new(); // (non-split service, split service)
    for (a, svc) in problem.services.iter().enumerate() {
        for other in &svc.co_locate_with {
            let Some(&b) = service_idx.get(other.as_str()) else {
                continue;
            };
            if a == b {
                continue;
            }
            let (sa, sb) = (svc.is_split(), problem.services[b].is_split());
            if sa == sb {
                uf.union(a, b);
            } else if sa {
                mixed_pairs.push((b, a));
            } else {
                mixed_pairs.push((a, b));
            }
        }
    }
    let mut group_of = vec![usize::MAX; n];
    let mut groups: Vec<Group> = Vec::new();
    let mut root_group: HashMap<usize, usize> = HashMap::new();
    for (s, slot) in group_of.iter_mut().enumerate() {
        let r = uf.find(s);
        let g = *root_group.entry(r).or_insert_with(|| {
            groups.push(Group {
                members: Vec::new(),
                split: problem.services[s].is_split(),
                cand: Vec::new(),
                cpu: 0.0,
                memory: 0.0,
            });
            groups.len() - 1
        });
        *slot = g;
        groups[g].members.push(s);
        groups[g].cpu += problem.services[s].total_cpu();
        groups[g].memory += problem.services[s].total_memory();
    }
    let names = |members: &[usize]| -> Vec<String> {
        members
            .iter()
            .map(|&s| problem.services[s].name.clone())
            .collect()
    };
    for g in &mut groups {
        let mut common = cand[g.members[0]].clone();
        for &s in &g.members[1..] {
            common.retain(|e| cand[s].binary_search(e).is_ok());
        }
        if g.members.len() > 1 && g.members.iter().all(|&s| !cand[s].is_empty()) {
            if common.is_empty() {
                problems.push(Infeasibility::CoLocationNoCommonCluster {
                    services: names(&g.members),
                    usable: g
                        .members
                        .iter()
                        .map(|&s| {
                            format!(
                                "{}: {}",
                                problem.services[s].name,
                                list_names(problem, &cand[s], 5)
                            )
                        })
                        .collect(),
                });
            } else if !g.split {
                let all_fit: Vec<usize> = common
                    .iter()
                    .copied()
                    .filter(|&e| fits(g.cpu, cpu_cap[e]) && fits(g.memory, mem_cap[e]))
                    .collect();
                if all_fit.is_empty() {
                    problems.push(group_too_large(problem, g, &common, &names(&g.members)));
                }
                common = all_fit;
            }
        }
        g.cand = common;
    }

    // 3. Inclusion across kinds: a non-split group runs on one of its split partner's clusters.
    let mut mixed: Vec<(usize, usize)> = mixed_pairs
        .iter()
        .map(|&(a, b)| (group_of[a], group_of[b]))
        .collect();
    mixed.sort_unstable();
    mixed.dedup();
    for &(gn, gs) in &mixed {
        let allowed = groups[gs].cand.clone();
        let before = groups[gn].cand.len();
        groups[gn].cand.retain(|e| allowed.binary_search(e).is_ok());
        if before > 0 && !allowed.is_empty() && groups[gn].cand.is_empty() {
            let mut members = groups[gn].members.clone();
            members.extend(&groups[gs].members);
            problems.push(Infeasibility::CoLocationNoCommonCluster {
                services: names(&members),
                usable: members
                    .iter()
                    .map(|&s| {
                        format!(
                            "{}: {}",
                            problem.services[s].name,
                            list_names(problem, &cand[s], 5)
                        )
                    })
                    .collect(),
            });
        }
    }

    // 4. Split (HA) services: at least two clusters, enough room with the per-cluster cap.
    for g in groups.iter().filter(|g| g.split && !g.cand.is_empty()) {
        for &s in &g.members {
            let svc = &problem.services[s];
            let cap = svc.max_replicas_per_cluster();
            let room: Vec<(usize, u32)> = g
                .cand
                .iter()
                .map(|&e| {
                    (
                        e,
                        replicas_that_fit(svc.cpu, svc.memory, cpu_cap[e], mem_cap[e], cap),
                    )
                })
                .collect();
            let total: u64 = room.iter().map(|&(_, r)| u64::from(r)).sum();
            let hosts = room.iter().filter(|&&(_, r)| r > 0).count();
            if hosts < 2 || total < u64::from(svc.replicas) {
                problems.push(Infeasibility::HighAvailabilityUnsatisfiable {
                    services: names(&g.members),
                    replicas: svc.replicas,
                    per_cluster: cap,
                    room: room
                        .iter()
                        .take(10)
                        .map(|&(e, r)| format!("{} {r}", problem.clusters[e].name))
                        .collect(),
                });
                break;
            }
        }
    }

    // 5. Totals over Ready clusters, and over Ready GPU clusters for GPU services.
    let ready: Vec<usize> = (0..m).filter(|&e| problem.clusters[e].ready).collect();
    for res in [Resource::Cpu, Resource::Memory] {
        let cap = |e: usize| match res {
            Resource::Cpu => cpu_cap[e],
            Resource::Memory => mem_cap[e],
        };
        let need = |s: usize| match res {
            Resource::Cpu => problem.services[s].total_cpu(),
            Resource::Memory => problem.services[s].total_memory(),
        };
        let demand: f64 = (0..n).map(need).sum();
        let capacity: f64 = ready.iter().map(|&e| cap(e)).sum();
        if !fits(demand, capacity) {
            problems.push(Infeasibility::TotalDemandExceedsCapacity {
                resource: res,
                demand,
                capacity,
                clusters: ready.len(),
            });
        }
        let gpu_services: Vec<usize> = (0..n).filter(|&s| problem.services[s].gpu).collect();
        let gpu_capacity: f64 = ready
            .iter()
            .filter(|&&e| problem.clusters[e].has_accelerator())
            .map(|&e| cap(e))
            .sum();
        let gpu_demand: f64 = gpu_services.iter().map(|&s| need(s)).sum();
        if gpu_capacity > 0.0 && !fits(gpu_demand, gpu_capacity) {
            problems.push(Infeasibility::GpuDemandExceedsCapacity {
                services: names(&gpu_services),
                resource: res,
                demand: gpu_demand,
                capacity: gpu_capacity,
            });
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }

    // Clusters lost to co-location become explanations too.
    for g in &groups {
        for &s in &g.members {
            let mut with: Vec<String> = g
                .members
                .iter()
                .filter(|&&o| o != s)
                .map(|&o| problem.services[o].name.clone())
                .collect();
            for &(gn, gs) in &mixed {
                let other = if gn == group_of[s] {
                    gs
                } else if gs == group_of[s] {
                    gn
                } else {
                    continue;
                };
                with.extend(names(&groups[other].members));
            }
            for &e in &cand[s] {
                if g.cand.binary_search(&e).is_err() {
                    exclusions[s].push((e, ExclusionReason::CoLocation { with: with.clone() }));
                }
            }
            exclusions[s].sort_by_key(|(e, _)| *e);
        }
    }

    let current: Vec<Vec<usize>> = problem
        .services
        .iter()
        .map(|svc| {
            let mut v: Vec<usize> = problem
                .current
                .get(&svc.name)
                .map(|p| {
                    p.clusters()
                        .into_iter()
                        .filter_map(|c| cluster_idx.get(c).copied())
                        .collect()
                })
                .unwrap_or_default();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();

    Ok(Prepared {
        cpu_cap,
        mem_cap,
        group_of,
        groups,
        mixed,
        exclusions,
        current,
    })
}

fn no_cluster_reason(
    problem: &Problem,
    svc: &super::problem::Service,
    ex: &[(usize, ExclusionReason)],
    need_cpu: f64,
    need_mem: f64,
) -> Infeasibility {
    let too_small: Vec<usize> = ex
        .iter()
        .filter(|(_, r)| matches!(r, ExclusionReason::TooSmall { .. }))
        .map(|(e, _)| *e)
        .collect();
    if too_small.is_empty() {
        let gpu_blocked = ex.iter().any(|(_, r)| *r == ExclusionReason::NoGpu);
        if svc.gpu && gpu_blocked {
            return Infeasibility::GpuUnavailable {
                service: svc.name.clone(),
            };
        }
        let mut reasons: Vec<String> = ex
            .iter()
            .take(10)
            .map(|(e, r)| format!("{}: {r}", problem.clusters[*e].name))
            .collect();
        if ex.len() > 10 {
            reasons.push(format!("{} more", ex.len() - 10));
        }
        return Infeasibility::NoUsableCluster {
            service: svc.name.clone(),
            reasons,
        };
    }
    let replicas = if svc.is_split() { 1 } else { svc.replicas };
    let largest = |f: &dyn Fn(usize) -> f64| -> (f64, usize) {
        too_small
            .iter()
            .map(|&e| (f(e), e))
            .fold((f64::NEG_INFINITY, too_small[0]), |a, b| {
                if b.0 > a.0 { b } else { a }
            })
    };
    let (max_cpu, cpu_at) = largest(&|e| problem.clusters[e].cpu);
    let (max_mem, mem_at) = largest(&|e| problem.clusters[e].memory);
    if !fits(need_cpu, max_cpu) {
        Infeasibility::ServiceTooLarge {
            service: svc.name.clone(),
            resource: Resource::Cpu,
            need: need_cpu,
            replicas,
            largest_free: max_cpu,
            largest_cluster: problem.clusters[cpu_at].name.clone(),
        }
    } else if !fits(need_mem, max_mem) {
        Infeasibility::ServiceTooLarge {
            service: svc.name.clone(),
            resource: Resource::Memory,
            need: need_mem,
            replicas,
            largest_free: max_mem,
            largest_cluster: problem.clusters[mem_at].name.clone(),
        }
    } else {
        Infeasibility::NoClusterFitsBoth {
            service: svc.name.clone(),
            cpu: need_cpu,
            memory: need_mem,
        }
    }
}

fn group_too_large(
    problem: &Problem,
    g: &Group,
    common: &[usize],
    services: &[String],
) -> Infeasibility {
    let best = |f: &dyn Fn(usize) -> f64| -> (f64, usize) {
        common
            .iter()
            .map(|&e| (f(e), e))
            .fold((f64::NEG_INFINITY, common[0]), |a, b| {
                if b.0 > a.0 { b } else { a }
            })
    };
    let (max_cpu, cpu_at) = best(&|e| problem.clusters[e].cpu);
    let (max_mem, mem_at) = best(&|e| problem.clusters[e].memory);
    let (resource, need, free, at) = if !fits(g.cpu, max_cpu) {
        (Resource::Cpu, g.cpu, max_cpu, cpu_at)
    } else if !fits(g.memory, max_mem) {
        (Resource::Memory, g.memory, max_mem, mem_at)
    } else {
        // Each resource fits somewhere, but not both on one cluster: report CPU on the memory-richest.
        (Resource::Cpu, g.cpu, problem.clusters[mem_at].cpu, mem_at)
    };
    Infeasibility::CoLocationTooLarge {
        services: services.to_vec(),
        resource,
        need,
        largest_free: free,
        largest_cluster: problem.clusters[at].name.clone(),
    }
}
