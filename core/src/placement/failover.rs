//! Failover as one decision: when clusters are lost, every graph with a service on one of them is
//! re-placed in **one joint solve** against the remaining capacity, so evicted graphs cannot all
//! pile onto the cluster that looked emptiest (the failure Karmada users report when each
//! workload is rescheduled alone against stale estimates, karmada-io/karmada#6518). Graphs with
//! nothing on a lost cluster are not in the problem, so they never move. Services of an affected
//! graph that run on a surviving cluster keep their place unless moving them is needed (each
//! move costs `weights.replace`).
//!
//! When the affected graphs cannot all fit, graphs are admitted one at a time (by name) while
//! a placement of the graph alone (first fit, else the solver) fits in the capacity the admitted
//! ones leave; the rest are reported with the reason the solver gives. The joint solve then runs
//! over the admitted graphs only — their placements together prove it feasible, so capacity
//! holds by construction.
//!
//! Pure: the caller times the solve and applies the answer.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    CurrentPlacement, PlacementError, Problem, Service, SolveStatus, Weights, first_fit,
    own_usage_from_current, replan,
};

/// One graph of the fleet as failover sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetGraph {
    /// Its name (unique in the fleet).
    pub name: String,
    /// Its services, with names local to the graph (`co_locate_with` too).
    pub services: Vec<Service>,
    /// service → cluster it runs on now.
    pub current: BTreeMap<String, String>,
}

/// What failover decided for one graph it moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphFailover {
    /// The graph.
    pub graph: String,
    /// service → cluster, for every service of the graph.
    pub placement: BTreeMap<String, String>,
    /// Services whose cluster changes: (service, from, to).
    pub moves: Vec<(String, String, String)>,
}

/// A graph failover could not place, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stranded {
    /// The graph.
    pub graph: String,
    /// The constraint that does not hold, in words.
    pub reason: String,
}

/// The answer of [`failover`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverPlan {
    /// The graphs that move, by name.
    pub moved: Vec<GraphFailover>,
    /// The graphs that do not fit anywhere left.
    pub stranded: Vec<Stranded>,
    /// The joint solve's status (`heuristic` when only the first fit could be used).
    pub status: SolveStatus,
    /// Services in the joint problem.
    pub services: usize,
}

/// The problem's name for `service` of `graph`: unique across the fleet.
fn joint(graph: &str, service: &str) -> String {
    format!("{graph}/{service}")
}

/// Re-places every graph of `fleet` that has a service on a cluster of `clusters` marked not
/// ready, in one solve. `clusters` carry their *free* capacity (what every running graph
/// already uses is subtracted, as Karmada reports it); lost clusters stay listed with
/// `ready: false`.
pub fn failover(
    clusters: &[super::Cluster],
    fleet: &[FleetGraph],
    time_limit_secs: f64,
) -> Result<FailoverPlan, PlacementError> {
    let lost: BTreeSet<&str> = clusters
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let known: BTreeSet<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    let mut affected: Vec<&FleetGraph> = fleet
        .iter()
        .filter(|g| g.current.values().any(|c| lost.contains(c.as_str())))
        .collect();
    affected.sort_by(|a, b| a.name.cmp(&b.name));

    // Admission: each graph alone against what the graphs admitted before it leave.
    let mut residual = clusters.to_vec();
    let (mut admitted, mut stranded) = (Vec::new(), Vec::new());
    for g in affected {
        match fit_into(g, &mut residual, &known, time_limit_secs) {
            Ok(_) => admitted.push(g),
            Err(why) => stranded.push(Stranded {
                graph: g.name.clone(),
                reason: why.to_string(),
            }),
        }
    }
    if admitted.is_empty() {
        return Ok(FailoverPlan {
            moved: Vec::new(),
            stranded,
            status: SolveStatus::Optimal { gap: 0.0 },
            services: 0,
        });
    }

    // One solve over every admitted graph, from where its services run now.
    let mut problem = Problem {
        clusters: clusters.to_vec(),
        services: Vec::new(),
        current: BTreeMap::new(),
        weights: Weights::default(),
        time_limit_secs: Some(time_limit_secs),
        mip_gap: None,
    };
    for g in &admitted {
        let one = graph_problem(g, clusters, &known, time_limit_secs);
        for mut s in one.services {
            let local = s.name.clone();
            s.name = joint(&g.name, &local);
            s.co_locate_with = s.co_locate_with.iter().map(|o| joint(&g.name, o)).collect();
            problem.services.push(s);
        }
        for (s, c) in one.current {
            problem.current.insert(joint(&g.name, &s), c);
        }
    }
    let usage = own_usage_from_current(&problem);
    let services = problem.services.len();
    let (placement, status) = match replan(&problem, &usage) {
        Ok(r) => {
            let status = r.solution.status.clone();
            let placed: BTreeMap<String, String> = r
                .solution
                .placement
                .iter()
                .filter_map(|p| {
                    let c = p.clusters.iter().max_by_key(|c| c.replicas)?;
                    Some((p.service.clone(), c.cluster.clone()))
                })
                .collect();
            (placed, status)
        }
        // The admission proved a placement exists; a solver that still fails (e.g. its time
        // limit before any incumbent) leaves the first fits, which respect every constraint.
        Err(_) => (
            first_fits(&admitted, clusters, &known, time_limit_secs)?,
            SolveStatus::Heuristic,
        ),
    };
    let moved = admitted
        .iter()
        .map(|g| {
            let placement: BTreeMap<String, String> = g
                .services
                .iter()
                .filter_map(|s| {
                    placement
                        .get(&joint(&g.name, &s.name))
                        .map(|c| (s.name.clone(), c.clone()))
                })
                .collect();
            let moves = placement
                .iter()
                .filter_map(|(s, to)| {
                    let from = g.current.get(s)?;
                    (from != to).then(|| (s.clone(), from.clone(), to.clone()))
                })
                .collect();
            GraphFailover {
                graph: g.name.clone(),
                placement,
                moves,
            }
        })
        .collect();
    Ok(FailoverPlan {
        moved,
        stranded,
        status,
        services,
    })
}

/// One graph alone over `clusters`, from where it runs now (clusters the fleet does not know
/// are left out of `current`, as if the service had no place).
fn graph_problem(
    g: &FleetGraph,
    clusters: &[super::Cluster],
    known: &BTreeSet<&str>,
    time_limit_secs: f64,
) -> Problem {
    Problem {
        clusters: clusters.to_vec(),
        services: g.services.clone(),
        current: g
            .current
            .iter()
            .filter(|(s, c)| known.contains(c.as_str()) && g.services.iter().any(|x| &x.name == *s))
            .map(|(s, c)| (s.clone(), CurrentPlacement::One(c.clone())))
            .collect(),
        weights: Weights::default(),
        time_limit_secs: Some(time_limit_secs),
        mip_gap: None,
    }
}

/// Places `g` alone on `residual` (its own usage there added back): a first fit, or the solver
/// when the first fit finds no room; on success `residual` loses what the placement uses.
fn fit_into(
    g: &FleetGraph,
    residual: &mut [super::Cluster],
    known: &BTreeSet<&str>,
    time_limit_secs: f64,
) -> Result<super::Solution, PlacementError> {
    let mut alone = graph_problem(g, residual, known, time_limit_secs);
    let usage = own_usage_from_current(&alone);
    for c in &mut alone.clusters {
        if let Some(u) = usage.get(&c.name) {
            c.cpu += u.cpu;
            c.memory += u.memory;
        }
    }
    let fit = first_fit(&alone).or_else(|_| super::solve_problem(&alone))?;
    for (c, load) in residual.iter_mut().zip(&fit.clusters) {
        let own = usage.get(&c.name).cloned().unwrap_or_default();
        c.cpu += own.cpu - load.cpu_used;
        c.memory += own.memory - load.memory_used;
    }
    Ok(fit)
}

/// The admission's placements again, graph after graph: the fallback when the joint solve fails.
fn first_fits(
    admitted: &[&FleetGraph],
    clusters: &[super::Cluster],
    known: &BTreeSet<&str>,
    time_limit_secs: f64,
) -> Result<BTreeMap<String, String>, PlacementError> {
    let mut residual = clusters.to_vec();
    let mut out = BTreeMap::new();
    for g in admitted {
        let fit = fit_into(g, &mut residual, known, time_limit_secs)?;
        for p in &fit.placement {
            if let Some(c) = p.clusters.iter().max_by_key(|c| c.replicas) {
                out.insert(joint(&g.name, &p.service), c.cluster.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::placement::Cluster;

    fn cluster(name: &str, cpu: f64) -> Cluster {
        Cluster {
            name: name.into(),
            cpu,
            memory: 1e6,
            gpus: 0,
            accelerator: None,
            cost: 0.0,
            carbon: 0.0,
            ready: true,
            labels: BTreeMap::new(),
        }
    }

    fn service(name: &str, cpu: f64, memory: f64, replicas: u32) -> Service {
        Service {
            name: name.into(),
            cpu,
            memory,
            gpu: false,
            replicas,
            allowed_clusters: None,
            excluded_clusters: Vec::new(),
            co_locate_with: Vec::new(),
            ha: false,
        }
    }

    fn one_service_graphs(n: usize, on: &str) -> Vec<FleetGraph> {
        (0..n)
            .map(|i| FleetGraph {
                name: format!("g{i:02}"),
                services: vec![service("web", 1.0, 100.0, 1)],
                current: [("web".to_string(), on.to_string())].into(),
            })
            .collect()
    }

    /// karmada-io/karmada#6518: 15 workloads evicted from a lost cluster, two clusters that fit
    /// 10 each. Rescheduled one by one against the same stale estimate they all land on one
    /// cluster; solved jointly, neither is over-committed.
    #[test]
    fn fifteen_evicted_graphs_spread_over_two_clusters_that_fit_ten_each() {
        let mut lost = cluster("lost", 0.0);
        lost.ready = false;
        let clusters = [lost, cluster("a", 10.0), cluster("b", 10.0)];
        let plan = failover(&clusters, &one_service_graphs(15, "lost"), 10.0).unwrap();
        assert!(plan.stranded.is_empty(), "{:?}", plan.stranded);
        assert_eq!(plan.moved.len(), 15);
        for c in ["a", "b"] {
            let n = plan
                .moved
                .iter()
                .filter(|g| g.placement["web"] == c)
                .count();
            assert!(n <= 10, "{n} graphs on {c}, which fits 10");
        }
        assert!(plan.moved.iter().all(|g| g.moves.len() == 1));
    }

    #[test]
    fn graphs_that_do_not_fit_are_stranded_with_a_reason_and_the_rest_still_move() {
        let mut lost = cluster("lost", 0.0);
        lost.ready = false;
        let clusters = [lost, cluster("a", 10.0), cluster("b", 10.0)];
        let plan = failover(&clusters, &one_service_graphs(25, "lost"), 10.0).unwrap();
        assert_eq!(plan.moved.len(), 20);
        assert_eq!(plan.stranded.len(), 5);
        // Admission is by name: the last five are the ones left.
        let left: Vec<&str> = plan.stranded.iter().map(|s| s.graph.as_str()).collect();
        assert_eq!(left, ["g20", "g21", "g22", "g23", "g24"]);
        assert!(
            plan.stranded[0].reason.contains("cpu") || plan.stranded[0].reason.contains("CPU"),
            "{}",
            plan.stranded[0].reason
        );
    }

    #[test]
    fn a_service_on_a_surviving_cluster_stays_and_co_located_services_move_together() {
        let mut lost = cluster("lost", 0.0);
        lost.ready = false;
        let clusters = [lost, cluster("a", 4.0), cluster("b", 8.0)];
        let mut db = service("db", 1.0, 100.0, 1);
        db.co_locate_with = vec!["cache".into()];
        let g = FleetGraph {
            name: "shop".into(),
            services: vec![
                service("front", 1.0, 100.0, 1),
                db,
                service("cache", 1.0, 100.0, 1),
            ],
            current: [
                ("front".to_string(), "a".to_string()),
                ("db".to_string(), "lost".to_string()),
                ("cache".to_string(), "lost".to_string()),
            ]
            .into(),
        };
        let plan = failover(&clusters, &[g], 10.0).unwrap();
        let moved = &plan.moved[0];
        assert_eq!(
            moved.placement["front"], "a",
            "not on the lost cluster: stays"
        );
        assert_eq!(moved.placement["db"], moved.placement["cache"]);
        assert_ne!(moved.placement["db"], "lost");
        assert_eq!(moved.moves.len(), 2);
    }

    /// A fleet: capacities, graphs placed by first fit, the clusters' free capacity after them.
    fn fleet() -> impl Strategy<Value = (Vec<Cluster>, Vec<FleetGraph>, Vec<(f64, f64)>)> {
        let clusters = prop::collection::vec((2.0f64..24.0, 2048.0f64..32768.0), 2..5);
        let graphs = prop::collection::vec(
            prop::collection::vec((0.1f64..3.0, 64.0f64..2048.0, 1u32..3), 1..4),
            1..10,
        );
        (clusters, graphs, any::<u64>()).prop_map(|(caps, graphs, seed)| {
            let mut free: Vec<(f64, f64)> = caps.clone();
            let mut fleet = Vec::new();
            for (gi, svcs) in graphs.into_iter().enumerate() {
                let mut g = FleetGraph {
                    name: format!("g{gi}"),
                    services: Vec::new(),
                    current: BTreeMap::new(),
                };
                for (si, (cpu, mem, r)) in svcs.into_iter().enumerate() {
                    let (tc, tm) = (cpu * f64::from(r), mem * f64::from(r));
                    // Start at a seeded cluster, take the first with room.
                    let n = free.len();
                    let start = (seed as usize).wrapping_add(gi * 7 + si) % n;
                    let Some(e) = (0..n)
                        .map(|k| (start + k) % n)
                        .find(|&e| free[e].0 >= tc && free[e].1 >= tm)
                    else {
                        continue;
                    };
                    free[e].0 -= tc;
                    free[e].1 -= tm;
                    let name = format!("s{si}");
                    g.services.push(service(&name, cpu, mem, r));
                    g.current.insert(name, format!("c{e}"));
                }
                if !g.services.is_empty() {
                    fleet.push(g);
                }
            }
            let clusters = free
                .iter()
                .enumerate()
                .map(|(e, (c, m))| Cluster {
                    memory: *m,
                    ..cluster(&format!("c{e}"), *c)
                })
                .collect();
            (clusters, fleet, caps)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the fleet and whichever cluster is lost: no surviving cluster ends over its
        /// capacity, nothing lands on the lost cluster, a graph with nothing there does not move,
        /// and every affected graph either moves or is reported stranded.
        #[test]
        fn the_joint_solve_never_overcommits_and_moves_only_affected_graphs(
            (mut clusters, fleet, caps) in fleet(),
            which in any::<prop::sample::Index>(),
        ) {
            let lost = which.index(clusters.len());
            clusters[lost].ready = false;
            let lost_name = clusters[lost].name.clone();
            let plan = failover(&clusters, &fleet, 10.0).unwrap();
            let affected: BTreeSet<&str> = fleet
                .iter()
                .filter(|g| g.current.values().any(|c| *c == lost_name))
                .map(|g| g.name.as_str())
                .collect();
            let decided: BTreeSet<&str> = plan
                .moved
                .iter()
                .map(|g| g.graph.as_str())
                .chain(plan.stranded.iter().map(|s| s.graph.as_str()))
                .collect();
            prop_assert_eq!(&decided, &affected);
            // The final usage of every cluster: each graph where failover put it, or where it was.
            let mut used = vec![(0.0f64, 0.0f64); clusters.len()];
            for g in &fleet {
                let placed = plan.moved.iter().find(|m| m.graph == g.name);
                for s in &g.services {
                    let at = placed.map_or(&g.current[&s.name], |m| &m.placement[&s.name]);
                    if placed.is_some() {
                        prop_assert_ne!(at, &lost_name);
                    }
                    let e: usize = at[1..].parse().unwrap();
                    used[e].0 += s.total_cpu();
                    used[e].1 += s.total_memory();
                }
            }
            for (e, ((cpu, mem), (cap_cpu, cap_mem))) in used.iter().zip(&caps).enumerate() {
                if e != lost {
                    prop_assert!(*cpu <= cap_cpu + 1e-6, "c{e}: {cpu} cores of {cap_cpu}");
                    prop_assert!(*mem <= cap_mem + 1e-6, "c{e}: {mem} MiB of {cap_mem}");
                }
            }
        }

        /// With room to spare everywhere, no affected graph is stranded.
        #[test]
        fn with_room_to_spare_every_affected_graph_moves(
            (mut clusters, fleet, _caps) in fleet(),
            which in any::<prop::sample::Index>(),
        ) {
            for c in &mut clusters {
                c.cpu += 1000.0;
                c.memory += 1e6;
            }
            let lost = which.index(clusters.len());
            clusters[lost].ready = false;
            let plan = failover(&clusters, &fleet, 10.0).unwrap();
            prop_assert!(plan.stranded.is_empty(), "{:?}", plan.stranded);
        }
    }
}
