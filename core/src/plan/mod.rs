//! `plan`: what a reconcile of one graph will do, decided without I/O.
//!
//! Every graph job is load → plan → apply → record. The job loads a [`Snapshot`] (the graph, its
//! stored services, fresh clusters, the current placement); this module turns it into a plan —
//! the placement with the solver's answer, the objects and Helm releases to apply, in deploy
//! order — and, once the job has applied it and read back what the federation reports, into the
//! [`Outcome`] to record: service and graph statuses, the placement, the decisions. The HTTP dry
//! run calls [`dry_run`] on a descriptor that is not stored yet. Nothing here reads a database, a
//! cluster or a clock (the caller times the solve: [`Deploy::solved`] says which ran), so every
//! decision is unit-tested with plain data.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    hdag::{Graph, Service, conditional},
    manifests::{self, RenderInput},
    model::{ClusterRecord, NewService, ServiceRecord},
    placement::{self, CurrentPlacement, PlacementError, Problem, Solution},
};

pub use crate::model::{Decision, DecisionKind, GraphStatus, Observed, Outcome, ServiceStatus};

mod drift;
mod lifecycle;
mod trigger;

pub use drift::*;
pub use lifecycle::*;
pub use trigger::*;

const MIB: f64 = 1024.0 * 1024.0;

/// What a job read before deciding.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// The stored descriptor.
    pub graph: &'a Graph,
    /// Its project (= namespace).
    pub project: &'a str,
    /// Its services as stored (status, replicas, demand).
    pub services: &'a [ServiceRecord],
    /// Member clusters, freshly synced.
    pub clusters: &'a [ClusterRecord],
    /// service → cluster, as last recorded.
    pub current: &'a BTreeMap<String, String>,
}

/// Why a plan cannot be made; every cause is permanent (retrying the same inputs fails again).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The optimiser found no placement (or refused the problem).
    #[error("placement: {0}")]
    Placement(#[from] SolveFailed),
    /// A conditional deploy names a service the graph does not have.
    #[error("graph {graph} has no service {service}")]
    NoService {
        /// Graph.
        graph: String,
        /// Service.
        service: String,
    },
    /// The optimiser's answer leaves the service to deploy without a cluster.
    #[error("placement left {0} unplaced")]
    Unplaced(String),
}

/// Which solve a plan ran: the caller times it (smo's `smo_solve_seconds{problem}`), so the
/// plan itself reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solve {
    /// A first placement.
    Placement,
    /// A re-placement against the current one.
    RePlacement,
}

impl Solve {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Solve::Placement => "placement",
            Solve::RePlacement => "re-placement",
        }
    }
}

/// A solve that found no placement (or refused the problem), and which solve it was.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SolveFailed {
    /// Which solve.
    pub solve: Solve,
    /// Why.
    #[source]
    pub error: PlacementError,
}

/// Where each service goes, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementPlan {
    /// service → cluster.
    pub placement: BTreeMap<String, String>,
    /// The solver's answer, when it ran (`None` when every service kept its cluster).
    pub solution: Option<Solution>,
    /// Which solve ran, if one did.
    #[serde(skip)]
    pub solved: Option<Solve>,
}

/// One step of applying a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Server-side apply these objects of a native service (deterministic names: idempotent).
    Apply {
        /// Service id.
        service: String,
        /// Its cluster.
        cluster: String,
        /// The Karmada objects (workload, service, propagation policy).
        objects: Vec<Value>,
    },
    /// Install or upgrade a Helm-chart service's release.
    Helm(HelmRelease),
}

/// A Helm release to install: `<graph>-<service>` in the project's namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct HelmRelease {
    /// Service id.
    pub service: String,
    /// Release name.
    pub release: String,
    /// Chart reference (`oci://…`).
    pub chart: String,
    /// Values, with the placement and the callers' clusters injected.
    pub values: Value,
}

/// The alert that triggered a conditional service.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// Service id.
    pub service: String,
    /// Alert name.
    pub alert: String,
}

/// A deploy, re-placement or conditional deploy: where services go and what to apply.
#[derive(Debug, Clone)]
pub struct Deploy {
    /// The placement and the solver's answer.
    pub placement: PlacementPlan,
    /// What to apply, in deploy order (a re-placement only what moved).
    pub work: Vec<Work>,
    /// Helm-chart services left Pending because no Helm runner is configured.
    pub waits_for_helm: Vec<String>,
    /// Native services whose Deployment is read back after applying, for their status.
    pub observe: Vec<String>,
    /// Re-placement: the current placement is only a baseline.
    pub force: bool,
    /// Set for a conditional deploy.
    pub trigger: Option<Trigger>,
    /// The `placement` decision to record, when the solver ran.
    placement_decision: Option<Decision>,
}

/// A service's demand, whether stored or only described (the dry run).
struct Demand<'a> {
    name: &'a str,
    cpu_millis: i64,
    memory_bytes: i64,
    gpu: bool,
    replicas: i32,
}

impl<'a> From<&'a ServiceRecord> for Demand<'a> {
    fn from(s: &'a ServiceRecord) -> Self {
        Demand {
            name: &s.name,
            cpu_millis: s.cpu_millis,
            memory_bytes: s.memory_bytes,
            gpu: s.gpu,
            replicas: s.replicas,
        }
    }
}

impl<'a> From<&'a NewService> for Demand<'a> {
    fn from(s: &'a NewService) -> Self {
        Demand {
            name: &s.name,
            cpu_millis: s.cpu_millis,
            memory_bytes: s.memory_bytes,
            gpu: s.gpu,
            replicas: s.replicas,
        }
    }
}

/// The services a placement covers: every non-conditional one, conditional ones already
/// deployed, and `trigger` (its event fired).
fn wanted<'a>(services: &'a [ServiceRecord], trigger: Option<&str>) -> Vec<Demand<'a>> {
    services
        .iter()
        .filter(|s| {
            !s.conditional || s.status != ServiceStatus::Pending || Some(s.name.as_str()) == trigger
        })
        .map(Demand::from)
        .collect()
}

/// The replicas each service's objects are rendered with (at least one).
fn desired_replicas(services: &[ServiceRecord]) -> BTreeMap<String, i32> {
    services
        .iter()
        .map(|s| (s.name.clone(), s.replicas.max(1)))
        .collect()
}

/// A member cluster as the optimiser sees it: its free capacity (MiB), readiness and labels.
pub fn problem_cluster(c: &ClusterRecord) -> placement::Cluster {
    placement::Cluster {
        name: c.name.to_string(),
        cpu: c.cpu_free.max(0.0),
        memory: (c.memory_free.max(0) as f64) / MIB,
        gpus: c.gpus.max(0) as u32,
        accelerator: None,
        cost: 0.0,
        carbon: 0.0,
        ready: c.ready,
        labels: serde_json::from_value(c.labels.clone()).unwrap_or_default(),
    }
}

/// Where the `wanted` services go (SPEC §2). Services keep their current cluster when it is still
/// usable and nothing else needs placing; `force` re-optimises everything (re-placement), with
/// the graph's own usage added back so it is not charged twice for itself.
fn place(
    graph: &Graph,
    wanted: &[Demand<'_>],
    clusters: &[ClusterRecord],
    current: &BTreeMap<String, String>,
    force: bool,
) -> Result<PlacementPlan, SolveFailed> {
    let usable = |c: &str| clusters.iter().any(|k| k.name == c && k.ready);
    let all_kept = wanted
        .iter()
        .all(|s| current.get(s.name).is_some_and(|c| usable(c)));
    if all_kept && !force {
        let placement = wanted
            .iter()
            .map(|s| (s.name.to_string(), current[s.name].clone()))
            .collect();
        return Ok(PlacementPlan {
            placement,
            solution: None,
            solved: None,
        });
    }
    let is_wanted = |name: &str| wanted.iter().any(|w| w.name == name);
    let problem = Problem {
        clusters: clusters.iter().map(problem_cluster).collect(),
        services: wanted
            .iter()
            .map(|s| placement::Service {
                name: s.name.to_string(),
                cpu: s.cpu_millis as f64 / 1000.0,
                memory: s.memory_bytes as f64 / MIB,
                gpu: s.gpu,
                replicas: s.replicas.max(1) as u32,
                allowed_clusters: None,
                excluded_clusters: Vec::new(),
                co_locate_with: graph
                    .service(s.name)
                    .map(|sv| {
                        sv.co_located_with()
                            .into_iter()
                            .filter(|o| is_wanted(o))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                ha: false,
            })
            .collect(),
        current: current
            .iter()
            .filter(|(s, c)| is_wanted(s) && clusters.iter().any(|k| &k.name == *c))
            .map(|(s, c)| (s.clone(), CurrentPlacement::One(c.clone())))
            .collect(),
        weights: Default::default(),
        time_limit_secs: Some(10.0),
        mip_gap: None,
    };
    let (solve, solved) = if problem.current.is_empty() {
        (Solve::Placement, placement::solve_problem(&problem))
    } else {
        let usage = placement::own_usage_from_current(&problem);
        let solved = placement::replan(&problem, &usage).map(|r| r.solution);
        (Solve::RePlacement, solved)
    };
    let solution = solved.map_err(|error| SolveFailed { solve, error })?;
    let placement = wanted
        .iter()
        .filter_map(|s| {
            solution
                .cluster_of(s.name)
                .map(|c| (s.name.to_string(), c.to_string()))
        })
        .collect();
    Ok(PlacementPlan {
        placement,
        solution: Some(solution),
        solved: Some(solve),
    })
}

/// The Helm release of a chart service on its cluster, with its callers' clusters injected.
fn helm_release(
    graph: &Graph,
    service: &Service,
    cluster: &str,
    placement: &BTreeMap<String, String>,
) -> HelmRelease {
    let mut importers: Vec<String> = graph
        .callers_of(&service.id)
        .iter()
        .filter_map(|c| placement.get(&c.id))
        .cloned()
        .collect();
    importers.sort();
    importers.dedup();
    HelmRelease {
        service: service.id.clone(),
        release: manifests::release_name(&graph.id, service),
        chart: service.artifact.oci_image.clone().unwrap_or_default(),
        values: manifests::values_for(
            service,
            cluster,
            &importers,
            graph.hda_graph_intent.use_static_placement,
        ),
    }
}

/// The `placement` decision of a plan whose solver ran: how many services are new or moved
/// against `current`, and what the solution was decided on.
fn placement_decision(
    plan: &PlacementPlan,
    current: &BTreeMap<String, String>,
    clusters: &[ClusterRecord],
    force: bool,
) -> Option<Decision> {
    let sol = plan.solution.as_ref()?;
    let placement = &plan.placement;
    let moved = placement
        .iter()
        .filter(|(s, c)| current.get(*s).is_some_and(|old| old != *c))
        .count();
    let new = placement
        .keys()
        .filter(|s| !current.contains_key(*s))
        .count();
    Some(Decision::new(
        DecisionKind::Placement,
        format!(
            "placed {} services ({new} new, {moved} moved), {}",
            placement.len(),
            if sol.status.is_optimal() {
                "proven optimal"
            } else {
                "not proven optimal"
            }
        ),
        json!({ "current": current, "clusters": clusters, "force": force }),
        serde_json::to_value(sol).unwrap_or_default(),
    ))
}

/// Deploy (or start) and re-placement: place, then apply every placed service in deploy order —
/// for a re-placement (`force`) only the services that moved. `helm` says whether a Helm runner
/// is configured; without one, chart services wait.
pub fn deploy(s: &Snapshot<'_>, force: bool, helm: bool) -> Result<Deploy, PlanError> {
    let placement = place(
        s.graph,
        &wanted(s.services, None),
        s.clusters,
        s.current,
        force,
    )?;
    let decision = placement_decision(&placement, s.current, s.clusters, force);
    Ok(apply_placement(s, placement, force, helm, decision))
}

/// Failover and fail-back: the graph's placement was decided for the whole fleet at once
/// ([`crate::placement::failover`], or fail-back's move budget), not for the graph alone. Its
/// services go where `pinned` says (the others stay); only what moves is applied, and `why` is
/// the decision recorded for the graph.
pub fn pinned(
    s: &Snapshot<'_>,
    pinned: &BTreeMap<String, String>,
    why: Decision,
    helm: bool,
) -> Deploy {
    let mut placement: BTreeMap<String, String> = wanted(s.services, None)
        .iter()
        .filter_map(|d| {
            s.current
                .get(d.name)
                .map(|c| (d.name.to_string(), c.clone()))
        })
        .collect();
    for (service, cluster) in pinned {
        if placement.contains_key(service) {
            placement.insert(service.clone(), cluster.clone());
        }
    }
    let plan = PlacementPlan {
        placement,
        solution: None,
        solved: None,
    };
    apply_placement(s, plan, true, helm, Some(why))
}

/// What to apply for `placement`, in deploy order (with `force` only the services that moved).
fn apply_placement(
    s: &Snapshot<'_>,
    placement: PlacementPlan,
    force: bool,
    helm: bool,
    placement_decision: Option<Decision>,
) -> Deploy {
    let replicas = desired_replicas(s.services);
    let input = RenderInput {
        graph: s.graph,
        project: s.project,
        placement: &placement.placement,
        replicas: &replicas,
    };
    let (mut work, mut waits_for_helm) = (Vec::new(), Vec::new());
    for service in s.graph.deploy_order() {
        let Some(cluster) = placement.placement.get(&service.id) else {
            continue;
        };
        if force && s.current.get(&service.id) == Some(cluster) {
            continue; // re-placement applies only what moved
        }
        if !manifests::is_native(service) {
            if helm {
                let release = helm_release(s.graph, service, cluster, &placement.placement);
                work.push(Work::Helm(release));
            } else {
                waits_for_helm.push(service.id.clone());
            }
            continue;
        }
        work.push(Work::Apply {
            service: service.id.clone(),
            cluster: cluster.clone(),
            objects: manifests::render_service(&input, service, cluster),
        });
    }
    let observe = s
        .graph
        .services
        .iter()
        .filter(|sv| manifests::is_native(sv) && placement.placement.contains_key(&sv.id))
        .map(|sv| sv.id.clone())
        .collect();
    Deploy {
        placement,
        work,
        waits_for_helm,
        observe,
        force,
        trigger: None,
        placement_decision,
    }
}

impl Deploy {
    /// Which solve the plan ran, if one did (the caller times it).
    pub fn solved(&self) -> Option<Solve> {
        self.placement.solved
    }

    /// Objects to apply (Helm releases not counted).
    pub fn objects(&self) -> usize {
        self.work
            .iter()
            .map(|w| match w {
                Work::Apply { objects, .. } => objects.len(),
                Work::Helm(_) => 0,
            })
            .sum()
    }

    fn helm_services(&self) -> impl Iterator<Item = &str> {
        self.work.iter().filter_map(|w| match w {
            Work::Helm(r) => Some(r.service.as_str()),
            Work::Apply { .. } => None,
        })
    }

    /// What to record once the work is applied, given the (desired, ready) replicas the
    /// federation reports for each observed service (`None`: no Deployment found).
    pub fn outcome(&self, observed: &BTreeMap<String, Observed>) -> Outcome {
        let placement = &self.placement.placement;
        let seen = |s: &str| observed.get(s).copied().flatten();
        if let Some(trigger) = &self.trigger {
            let service = trigger.service.as_str();
            // Applied, even when its pods are not there yet.
            let status = match ServiceStatus::observed(seen(service)) {
                ServiceStatus::Pending => ServiceStatus::Deployed,
                s => s,
            };
            let applied = self.objects() + self.helm_services().count();
            let cluster = placement.get(service).cloned().unwrap_or_default();
            return Outcome {
                services: vec![(service.into(), status, seen(service))],
                placement: Some(placement.clone()),
                clear_events: Some(service.into()),
                decisions: vec![Decision::new(
                    DecisionKind::DeployConditional,
                    format!(
                        "alert {} fired: deployed {service} on {cluster} ({applied} objects)",
                        trigger.alert
                    ),
                    json!({ "alert": trigger.alert }),
                    json!({ "cluster": cluster, "applied": applied }),
                )],
                ..Outcome::default()
            };
        }
        let mut decisions: Vec<Decision> = self.placement_decision.iter().cloned().collect();
        let mut services: Vec<_> = self
            .observe
            .iter()
            .map(|s| {
                let o = seen(s);
                (s.clone(), ServiceStatus::observed(o), o)
            })
            .collect();
        services.extend(
            self.helm_services()
                .map(|s| (s.to_string(), ServiceStatus::Deployed, None)),
        );
        let applied = self.objects();
        let message = if self.waits_for_helm.is_empty() {
            format!(
                "applied {applied} objects and {} Helm releases for {} services",
                self.helm_services().count(),
                placement.len()
            )
        } else {
            format!(
                "applied {applied} objects; Helm-chart services {} wait for the Helm runner",
                self.waits_for_helm.join(", ")
            )
        };
        let status_message = (!self.waits_for_helm.is_empty()).then(|| message.clone());
        decisions.push(Decision::new(
            if self.force {
                DecisionKind::RePlace
            } else {
                DecisionKind::Deploy
            },
            message,
            json!({ "placement": placement }),
            json!({ "applied": applied }),
        ));
        Outcome {
            status: Some((GraphStatus::Running, status_message)),
            services,
            placement: Some(placement.clone()),
            clear_events: None,
            dashboards: None,
            decisions,
            publish: !self.force,
        }
    }
}

/// What a dry run shows for a descriptor not stored yet: where its services would go on
/// `clusters` and every object that would be applied.
pub fn dry_run(
    graph: &Graph,
    clusters: &[ClusterRecord],
    project: &str,
) -> Result<(PlacementPlan, Vec<Value>), PlacementError> {
    let services = NewService::of_graph(graph);
    let wanted: Vec<Demand<'_>> = services
        .iter()
        .filter(|s| !s.conditional)
        .map(Demand::from)
        .collect();
    let plan = place(graph, &wanted, clusters, &BTreeMap::new(), false).map_err(|f| f.error)?;
    let replicas = services
        .iter()
        .map(|s| (s.name.clone(), s.replicas))
        .collect();
    let objects = manifests::render(&RenderInput {
        graph,
        project,
        placement: &plan.placement,
        replicas: &replicas,
    });
    Ok((plan, objects))
}

#[cfg(test)]
mod tests;
