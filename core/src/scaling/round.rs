//! A scaling round over the whole fleet, as data: every running service with its request rate in,
//! per graph the replica changes (or the re-placement) and the decision to record out.
//!
//! Pure: the round job loads the services and clusters, asks Prometheus for the rates, calls
//! [`plan_round`], and hands the plans to shards that apply and record them. Graphs whose
//! replicas stay put get no plan, so a steady fleet costs one read, one query and one solve.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    GraphServices, Method, ScaleCluster, ScaleOutcome, ScaleService, SolveOptions, solve_cluster,
};

/// One running service as the round sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundService {
    /// Graph name.
    pub graph: String,
    /// Graph's project (its namespace).
    pub project: String,
    /// Cluster it runs on.
    pub cluster: String,
    /// Where its rate came from (kept in the decision's inputs).
    pub query: String,
    /// Its scaling inputs; `service.name` is the service id within the graph.
    pub service: ScaleService,
}

/// A cluster as the round sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundCluster {
    /// Cluster name.
    pub name: String,
    /// CPU cores free now (what the last cluster sync saw).
    pub cpu_free: f64,
    /// Has accelerators.
    pub accelerator: bool,
}

/// One service whose replicas change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChange {
    /// Service id.
    pub service: String,
    /// Cluster it runs on.
    pub cluster: String,
    /// Replicas the plan was made from (the shard skips the graph when they moved since).
    pub from: u32,
    /// Replicas to set.
    pub to: u32,
}

/// What the round decided for one graph: replica changes, or a re-placement, and the decision to
/// record (the same inputs and outcome a graph's scaling decision always had).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphPlan {
    /// Graph name.
    pub graph: String,
    /// Its project.
    pub project: String,
    /// Changes, in cluster then service order.
    pub changes: Vec<PlannedChange>,
    /// Per cluster where the graph cannot be served, why ("cluster: reason; reason").
    pub infeasible: Vec<String>,
    /// Why some of its services were left alone (invalid input; at apply time, a Deployment
    /// that is not there).
    pub notes: Vec<String>,
    /// `{rates, clusters, services}` as the decision log shows them.
    pub inputs: serde_json::Value,
    /// Outcome per cluster.
    pub outcome: BTreeMap<String, ScaleOutcome>,
}

impl GraphPlan {
    /// The decision message (the wording the per-graph tick used).
    pub fn message(&self) -> String {
        if !self.infeasible.is_empty() {
            return format!(
                "infeasible, re-placement enqueued: {}",
                self.infeasible.join(" | ")
            );
        }
        let changed: Vec<String> = self
            .changes
            .iter()
            .map(|c| format!("{} {}→{}", c.service, c.from, c.to))
            .collect();
        if changed.is_empty() {
            format!("not scaled: {}", self.notes.join("; "))
        } else {
            format!("scaled {}", changed.join(", "))
        }
    }
}

/// The round's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundPlan {
    /// Graphs to act on (changes or re-placement), in name order.
    pub graphs: Vec<GraphPlan>,
    /// Services whose cluster is unknown (not synced yet): left alone this round.
    pub unknown_cluster: usize,
    /// Services counted in the round.
    pub services: usize,
    /// "graph: cluster: scaling input: …" for graphs whose input no solve accepts (left alone).
    pub invalid: Vec<String>,
    /// One entry per cluster solved: how, over how many services, how long it took.
    pub cluster_solves: Vec<ClusterSolve>,
}

/// How one cluster's joint solve went.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSolve {
    pub cluster: String,
    /// Services solved together.
    pub services: usize,
    /// How (`None`: no graph on it could be solved, e.g. every input was infeasible).
    pub method: Option<Method>,
    /// Wall time of the solve, in microseconds.
    pub micros: u64,
}

/// Plans one round: per cluster, all its services solved together ([`solve_cluster`]) against
/// its free CPU plus what those services use now.
pub fn plan_round(
    services: Vec<RoundService>,
    clusters: &[RoundCluster],
    options: &SolveOptions,
) -> RoundPlan {
    let by_name: BTreeMap<&str, &RoundCluster> =
        clusters.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut plan = RoundPlan {
        services: services.len(),
        ..RoundPlan::default()
    };
    // cluster → graph → services, and graph → (project, [(service, query)]).
    let mut per_cluster: BTreeMap<String, BTreeMap<String, Vec<ScaleService>>> = BTreeMap::new();
    let mut queries: HashMap<String, (String, Vec<(String, String)>)> = HashMap::new();
    for s in services {
        if !by_name.contains_key(s.cluster.as_str()) {
            plan.unknown_cluster += 1;
            continue;
        }
        queries
            .entry(s.graph.clone())
            .or_insert_with(|| (s.project, Vec::new()))
            .1
            .push((s.service.name.clone(), s.query));
        per_cluster
            .entry(s.cluster)
            .or_default()
            .entry(s.graph)
            .or_default()
            .push(s.service);
    }
    // graph → cluster → (budget, services, outcome or input error)
    type Solved = (
        ScaleCluster,
        Vec<ScaleService>,
        Result<ScaleOutcome, String>,
    );
    let mut per_graph: BTreeMap<String, BTreeMap<String, Solved>> = BTreeMap::new();
    for (cluster, graphs) in per_cluster {
        let c = by_name[cluster.as_str()];
        let used: f64 = graphs
            .values()
            .flatten()
            .map(|s| s.cpu * f64::from(s.current))
            .sum();
        let budget = ScaleCluster {
            name: cluster.clone(),
            cpu: (c.cpu_free + used).max(0.0),
            accelerator: c.accelerator,
        };
        let list: Vec<GraphServices> = graphs
            .into_iter()
            .map(|(graph, services)| GraphServices { graph, services })
            .collect();
        let started = std::time::Instant::now();
        let mut outcomes = solve_cluster(&budget, &list, options);
        plan.cluster_solves.push(ClusterSolve {
            cluster: cluster.clone(),
            services: list.iter().map(|g| g.services.len()).sum(),
            method: outcomes.values().find_map(|o| match o {
                Ok(ScaleOutcome::Scaled { method, .. }) => Some(*method),
                _ => None,
            }),
            micros: started.elapsed().as_micros() as u64,
        });
        for g in list {
            let outcome = outcomes
                .remove(&g.graph)
                .expect("one outcome per graph")
                .map_err(|e| e.to_string());
            per_graph
                .entry(g.graph)
                .or_default()
                .insert(cluster.clone(), (budget.clone(), g.services, outcome));
        }
    }
    for (graph, solved) in per_graph {
        let mut gp = GraphPlan {
            graph: graph.clone(),
            project: String::new(),
            changes: Vec::new(),
            infeasible: Vec::new(),
            notes: Vec::new(),
            inputs: serde_json::Value::Null,
            outcome: BTreeMap::new(),
        };
        let mut budgets = Vec::new();
        let mut inputs: BTreeMap<String, Vec<ScaleService>> = BTreeMap::new();
        for (cluster, (budget, services, outcome)) in solved {
            match outcome {
                Err(e) => gp.notes.push(format!("{cluster}: scaling input: {e}")),
                Ok(o) => {
                    match &o {
                        ScaleOutcome::Scaled { changed, .. } => {
                            gp.changes.extend(changed.iter().map(|c| PlannedChange {
                                service: c.service.clone(),
                                cluster: cluster.clone(),
                                from: c.from,
                                to: c.to,
                            }))
                        }
                        ScaleOutcome::Infeasible { reasons, .. } => gp
                            .infeasible
                            .push(format!("{cluster}: {}", reasons.join("; "))),
                    }
                    gp.outcome.insert(cluster.clone(), o);
                }
            }
            budgets.push(budget);
            inputs.insert(cluster, services);
        }
        // Invalid input is reported by the round (a log line), not as a decision every interval.
        plan.invalid
            .extend(gp.notes.iter().map(|n| format!("{graph}: {n}")));
        if gp.changes.is_empty() && gp.infeasible.is_empty() {
            continue;
        }
        let (project, graph_queries) = queries.remove(&graph).unwrap_or_default();
        let rate_of: HashMap<&str, f64> = inputs
            .values()
            .flatten()
            .map(|s| (s.name.as_str(), s.rate))
            .collect();
        let rates: BTreeMap<&str, serde_json::Value> = graph_queries
            .iter()
            .map(|(service, query)| {
                let rate = rate_of.get(service.as_str()).copied().unwrap_or(f64::NAN);
                (service.as_str(), json!({ "query": query, "rate": rate }))
            })
            .collect();
        gp.project = project;
        gp.inputs = json!({ "rates": rates, "clusters": budgets, "services": inputs });
        plan.graphs.push(gp);
    }
    plan
}
