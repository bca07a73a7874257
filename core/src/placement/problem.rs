//! The input of the optimiser (`Problem`) and its validation.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::error::{FieldError, PlacementError};

/// Largest number of services accepted: beyond this the model no longer fits in memory comfortably.
pub const MAX_SERVICES: usize = 100_000;
/// Largest number of clusters accepted.
pub const MAX_CLUSTERS: usize = 10_000;
/// Largest number of (service, cluster) decision variables accepted, so a hostile input cannot
/// make the solver allocate without bound.
pub const MAX_VARIABLES: usize = 10_000_000;
/// Largest replica count of one service.
pub const MAX_REPLICAS: u32 = 100_000;
/// Largest capacity, demand, cost or weight accepted: keeps the solver's numbers well scaled.
pub const MAX_QUANTITY: f64 = 1e12;
/// Validation stops listing errors after this many (the count of the rest is still given).
const MAX_REPORTED_ERRORS: usize = 100;

/// One member cluster as the optimiser sees it: its *free* capacity and its properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Karmada cluster name.
    pub name: String,
    /// Free CPU in cores (allocatable − allocated).
    pub cpu: f64,
    /// Free memory in MiB.
    pub memory: f64,
    /// Number of accelerators (e.g. allocatable `nvidia.com/gpu`); > 0 means the cluster has accelerators.
    #[serde(default)]
    pub gpus: u32,
    /// Explicit accelerator flag (e.g. from a cluster label); overrides `gpus` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<bool>,
    /// Price per core placed on this cluster (any unit; only used when `weights.cost > 0` and for tie-breaks).
    #[serde(default)]
    pub cost: f64,
    /// Carbon intensity (e.g. gCO₂/kWh) of this cluster; weighted per core placed.
    #[serde(default)]
    pub carbon: f64,
    /// Only Ready clusters receive services; a vanished cluster should stay listed with `ready: false`
    /// so that services leaving it are counted as moves.
    #[serde(default = "default_true")]
    pub ready: bool,
    /// Cluster labels, kept for explanations and callers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Cluster {
    /// Whether the cluster can run services that need a GPU.
    pub fn has_accelerator(&self) -> bool {
        self.accelerator.unwrap_or(self.gpus > 0)
    }
}

/// One service of the graph: its demand per replica and its placement constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Service id (unique in the problem).
    pub name: String,
    /// CPU cores per replica.
    pub cpu: f64,
    /// Memory in MiB per replica.
    #[serde(default)]
    pub memory: f64,
    /// Needs a cluster with accelerators.
    #[serde(default)]
    pub gpu: bool,
    /// Replica count (≥ 1).
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// If given, the only clusters this service may use (an allow-list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_clusters: Option<Vec<String>>,
    /// Clusters this service must not use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_clusters: Vec<String>,
    /// Services that must run on the same cluster(s) as this one (HDAG `coLocation`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub co_locate_with: Vec<String>,
    /// High availability: with `replicas ≥ 2` the replicas are split over ≥ 2 clusters, at most
    /// ⌈replicas/2⌉ on any one, so losing a cluster leaves at least half running.
    /// With `replicas < 2` the flag has no effect (scaling must raise the replicas first).
    #[serde(default)]
    pub ha: bool,
}

impl Service {
    /// Whether the service is split over several clusters (HA with at least two replicas).
    pub fn is_split(&self) -> bool {
        self.ha && self.replicas >= 2
    }

    /// At most this many replicas of a split service on one cluster.
    pub fn max_replicas_per_cluster(&self) -> u32 {
        if self.is_split() {
            self.replicas.div_ceil(2)
        } else {
            self.replicas
        }
    }

    /// Total CPU demand over all replicas.
    pub fn total_cpu(&self) -> f64 {
        self.cpu * f64::from(self.replicas)
    }

    /// Total memory demand over all replicas.
    pub fn total_memory(&self) -> f64 {
        self.memory * f64::from(self.replicas)
    }
}

/// Where a service runs now: one cluster, or several for a split (HA) service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CurrentPlacement {
    /// The usual case: one cluster.
    One(String),
    /// A service currently spread over several clusters.
    Many(Vec<String>),
}

impl CurrentPlacement {
    /// The cluster names, in the given order.
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            CurrentPlacement::One(c) => vec![c.as_str()],
            CurrentPlacement::Many(cs) => cs.iter().map(String::as_str).collect(),
        }
    }
}

/// Objective weights. Defaults reproduce the reference model (`deploy = replace = 1`, others 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// w_dep: weight of Σx, the number of (service, cluster) deployments.
    pub deploy: f64,
    /// w_re: weight of Σ y(y − x), the number of current (service, cluster) pairs given up.
    pub replace: f64,
    /// Weight of Σ cost_e × cores placed on e.
    pub cost: f64,
    /// Weight of Σ carbon_e × cores placed on e.
    pub carbon: f64,
    /// Weight of the highest CPU utilisation (0..1) over the clusters: spreads load.
    pub balance: f64,
    /// Total budget, in objective units, of the deterministic tie-break (least loaded, cheapest,
    /// then input order). It only decides between placements whose weighted objective differs by
    /// less than this, so keep it below the smallest difference you care about; 0 disables it.
    pub tie_break: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            deploy: 1.0,
            replace: 1.0,
            cost: 0.0,
            carbon: 0.0,
            balance: 0.0,
            tie_break: 0.01,
        }
    }
}

/// A placement problem: clusters, services, the current placement and solver settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// Candidate clusters, in a stable order (it is the last tie-break).
    pub clusters: Vec<Cluster>,
    /// Services of the graph, in descriptor order.
    pub services: Vec<Service>,
    /// Current placement, service → cluster(s); empty for a first deployment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub current: BTreeMap<String, CurrentPlacement>,
    /// Objective weights.
    #[serde(default)]
    pub weights: Weights,
    /// Solver time limit in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_secs: Option<f64>,
    /// Relative MIP gap at which the solver may stop and call the result optimal (default 1e-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mip_gap: Option<f64>,
}

/// Default solver time limit.
pub const DEFAULT_TIME_LIMIT_SECS: f64 = 30.0;
/// Default relative MIP gap (HiGHS' own default).
pub const DEFAULT_MIP_GAP: f64 = 1e-4;

fn default_true() -> bool {
    true
}

fn default_replicas() -> u32 {
    1
}

/// Collects field errors, keeping only the first `MAX_REPORTED_ERRORS`.
#[derive(Default)]
struct Errors {
    list: Vec<FieldError>,
    dropped: usize,
}

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        if self.list.len() < MAX_REPORTED_ERRORS {
            self.list.push(FieldError {
                path: path.into(),
                message: message.into(),
            });
        } else {
            self.dropped += 1;
        }
    }

    fn non_negative(&mut self, path: impl Into<String>, v: f64) {
        if !v.is_finite() || v < 0.0 {
            self.push(path, format!("must be a finite number ≥ 0, got {v}"));
        } else if v > MAX_QUANTITY {
            self.push(path, format!("must be at most {MAX_QUANTITY:e}, got {v}"));
        }
    }

    fn finish(mut self) -> Result<(), PlacementError> {
        if self.list.is_empty() {
            return Ok(());
        }
        if self.dropped > 0 {
            self.list.push(FieldError {
                path: "…".into(),
                message: format!("{} more errors not shown", self.dropped),
            });
        }
        Err(PlacementError::Invalid(self.list))
    }
}

impl Problem {
    /// Rejects inputs the optimiser cannot handle, naming every offending field at once,
    /// so a user can fix the whole file in one go.
    pub fn validate(&self) -> Result<(), PlacementError> {
        let mut errs = Errors::default();
        if self.clusters.is_empty() {
            errs.push("clusters", "must not be empty");
        }
        if self.clusters.len() > MAX_CLUSTERS {
            errs.push(
                "clusters",
                format!(
                    "at most {MAX_CLUSTERS} clusters are supported, got {}",
                    self.clusters.len()
                ),
            );
        }
        if self.services.is_empty() {
            errs.push("services", "must not be empty");
        }
        if self.services.len() > MAX_SERVICES {
            errs.push(
                "services",
                format!(
                    "at most {MAX_SERVICES} services are supported, got {}",
                    self.services.len()
                ),
            );
        }
        // Stop before walking giant lists: the size errors are the actionable ones.
        if self.clusters.len() > MAX_CLUSTERS || self.services.len() > MAX_SERVICES {
            return errs.finish();
        }

        let mut cluster_index: HashMap<&str, usize> = HashMap::new();
        for (i, c) in self.clusters.iter().enumerate() {
            let p = format!("clusters[{i}]");
            if c.name.trim().is_empty() {
                errs.push(format!("{p}.name"), "must not be empty");
            } else if let Some(first) = cluster_index.get(c.name.as_str()) {
                errs.push(
                    format!("{p}.name"),
                    format!(
                        "duplicate cluster name {:?} (first at clusters[{first}])",
                        c.name
                    ),
                );
            } else {
                cluster_index.insert(c.name.as_str(), i);
            }
            errs.non_negative(format!("{p}.cpu"), c.cpu);
            errs.non_negative(format!("{p}.memory"), c.memory);
            errs.non_negative(format!("{p}.cost"), c.cost);
            errs.non_negative(format!("{p}.carbon"), c.carbon);
        }

        let mut service_index: HashMap<&str, usize> = HashMap::new();
        for (j, s) in self.services.iter().enumerate() {
            let p = format!("services[{j}]");
            if s.name.trim().is_empty() {
                errs.push(format!("{p}.name"), "must not be empty");
            } else if let Some(first) = service_index.get(s.name.as_str()) {
                errs.push(
                    format!("{p}.name"),
                    format!(
                        "duplicate service name {:?} (first at services[{first}])",
                        s.name
                    ),
                );
            } else {
                service_index.insert(s.name.as_str(), j);
            }
            errs.non_negative(format!("{p}.cpu"), s.cpu);
            errs.non_negative(format!("{p}.memory"), s.memory);
            if s.replicas == 0 || s.replicas > MAX_REPLICAS {
                errs.push(
                    format!("{p}.replicas"),
                    format!("must be between 1 and {MAX_REPLICAS}, got {}", s.replicas),
                );
            }
        }

        // References need the complete name maps, hence a second pass.
        let mut variables: usize = 0;
        for (j, s) in self.services.iter().enumerate() {
            let p = format!("services[{j}]");
            if let Some(allowed) = &s.allowed_clusters {
                for (k, c) in allowed.iter().enumerate() {
                    if !cluster_index.contains_key(c.as_str()) {
                        errs.push(
                            format!("{p}.allowed_clusters[{k}]"),
                            format!("unknown cluster {c:?}"),
                        );
                    }
                }
            }
            for (k, c) in s.excluded_clusters.iter().enumerate() {
                if !cluster_index.contains_key(c.as_str()) {
                    errs.push(
                        format!("{p}.excluded_clusters[{k}]"),
                        format!("unknown cluster {c:?}"),
                    );
                }
            }
            for (k, other) in s.co_locate_with.iter().enumerate() {
                if !service_index.contains_key(other.as_str()) {
                    errs.push(
                        format!("{p}.co_locate_with[{k}]"),
                        format!("unknown service {other:?}"),
                    );
                }
            }
            let usable = match &s.allowed_clusters {
                Some(a) => a.len().min(self.clusters.len()),
                None => self.clusters.len(),
            };
            // x per usable cluster, plus a replica count per cluster for split services.
            let per_cluster = if s.is_split() { 2 } else { 1 };
            variables = variables.saturating_add(usable.saturating_mul(per_cluster));
        }
        if variables > MAX_VARIABLES {
            errs.push(
                "services",
                format!(
                    "problem too large: {variables} decision variables (services × usable clusters) \
                     exceed the limit of {MAX_VARIABLES}; split the graph or restrict allowed_clusters"
                ),
            );
        }

        for (service, placement) in &self.current {
            let p = format!("current.{service}");
            if !service_index.contains_key(service.as_str()) {
                errs.push(p.clone(), format!("unknown service {service:?}"));
            }
            for c in placement.clusters() {
                if !cluster_index.contains_key(c) {
                    errs.push(
                        p.clone(),
                        format!(
                            "unknown cluster {c:?} (list a cluster that went away with ready: false)"
                        ),
                    );
                }
            }
        }

        let w = &self.weights;
        errs.non_negative("weights.deploy", w.deploy);
        errs.non_negative("weights.replace", w.replace);
        errs.non_negative("weights.cost", w.cost);
        errs.non_negative("weights.carbon", w.carbon);
        errs.non_negative("weights.balance", w.balance);
        if !(w.tie_break == 0.0 || (1e-6..=1e3).contains(&w.tie_break)) {
            errs.push(
                "weights.tie_break",
                format!(
                    "must be 0 or between 0.000001 and 1000, got {}",
                    w.tie_break
                ),
            );
        }
        if let Some(t) = self.time_limit_secs
            && !(t.is_finite() && t > 0.0)
        {
            errs.push(
                "time_limit_secs",
                format!("must be a finite number > 0, got {t}"),
            );
        }
        if let Some(g) = self.mip_gap
            && !(g.is_finite() && (0.0..=1.0).contains(&g))
        {
            errs.push(
                "mip_gap",
                format!("must be a number between 0 and 1, got {g}"),
            );
        }
        errs.finish()
    }

    /// The time limit to use.
    pub fn effective_time_limit(&self) -> f64 {
        self.time_limit_secs.unwrap_or(DEFAULT_TIME_LIMIT_SECS)
    }

    /// The relative MIP gap to use.
    pub fn effective_mip_gap(&self) -> f64 {
        self.mip_gap.unwrap_or(DEFAULT_MIP_GAP)
    }
}
