//! Typed errors: invalid input, infeasible problems (with reasons a user can act on), solver trouble.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One invalid field, e.g. `services[3].cpu: must be a finite number ≥ 0, got NaN`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// JSON-style path of the field.
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

/// CPU or memory, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// CPU cores.
    Cpu,
    /// Memory in MiB.
    Memory,
}

impl Resource {
    /// Formats an amount with its unit ("18.5 cores", "2048 MiB").
    pub fn amount(self, v: f64) -> String {
        match self {
            Resource::Cpu => {
                let n = fmt_num(v);
                if n == "1" {
                    "1 core".into()
                } else {
                    format!("{n} cores")
                }
            }
            Resource::Memory => format!("{} MiB", fmt_num(v)),
        }
    }

    fn upper(self) -> &'static str {
        match self {
            Resource::Cpu => "CPU",
            Resource::Memory => "memory",
        }
    }
}

/// Prints a number without noise: 12 → "12", 18.5 → "18.5", 1/3 → "0.333".
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let r = (v * 1000.0).round() / 1000.0;
    if r == r.trunc() && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        let s = format!("{r:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Why no placement exists. Each variant names the services and the constraint involved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Infeasibility {
    /// A GPU service while no usable cluster has accelerators.
    GpuUnavailable {
        /// The service.
        service: String,
    },
    /// Every cluster is ruled out for the service by readiness, exclusions or its allow-list.
    NoUsableCluster {
        /// The service.
        service: String,
        /// `cluster: reason` for every cluster.
        reasons: Vec<String>,
    },
    /// The service alone is bigger than the largest usable cluster.
    ServiceTooLarge {
        /// The service.
        service: String,
        /// The binding resource.
        resource: Resource,
        /// Its total demand (all replicas, or one replica for split services).
        need: f64,
        /// Replicas the demand counts.
        replicas: u32,
        /// The largest free amount among the clusters it may use.
        largest_free: f64,
        /// That cluster.
        largest_cluster: String,
    },
    /// Enough CPU somewhere and enough memory somewhere, but not on the same cluster.
    NoClusterFitsBoth {
        /// The service.
        service: String,
        /// CPU need.
        cpu: f64,
        /// Memory need.
        memory: f64,
    },
    /// Total demand over all services is more than the free capacity of all Ready clusters.
    TotalDemandExceedsCapacity {
        /// The resource.
        resource: Resource,
        /// Σ demand.
        demand: f64,
        /// Σ free capacity.
        capacity: f64,
        /// Number of Ready clusters counted.
        clusters: usize,
    },
    /// GPU services together need more than the GPU clusters have free.
    GpuDemandExceedsCapacity {
        /// The GPU services.
        services: Vec<String>,
        /// The resource.
        resource: Resource,
        /// Σ demand of the GPU services.
        demand: f64,
        /// Σ free capacity of the Ready GPU clusters.
        capacity: f64,
    },
    /// Services that must share a cluster have no usable cluster in common.
    CoLocationNoCommonCluster {
        /// The co-located services.
        services: Vec<String>,
        /// Per service, the clusters it could use on its own.
        usable: Vec<String>,
    },
    /// Co-located services together are bigger than every cluster they could all use.
    CoLocationTooLarge {
        /// The co-located services.
        services: Vec<String>,
        /// The binding resource.
        resource: Resource,
        /// Their summed demand.
        need: f64,
        /// The largest free amount among their common clusters.
        largest_free: f64,
        /// That cluster.
        largest_cluster: String,
    },
    /// A split (HA) service cannot be spread over two clusters.
    HighAvailabilityUnsatisfiable {
        /// The service(s) (several when HA services are co-located).
        services: Vec<String>,
        /// Replicas to place.
        replicas: u32,
        /// Max replicas per cluster.
        per_cluster: u32,
        /// Usable clusters and how many replicas each could hold.
        room: Vec<String>,
    },
    /// The cheap checks passed but the solver proved that no placement satisfies all constraints together.
    Combination {
        /// Free capacity per Ready cluster and the largest demands, to help the user decide what to change.
        detail: String,
    },
}

impl fmt::Display for Infeasibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Infeasibility::GpuUnavailable { service } => write!(
                f,
                "service {service} needs a GPU; no available cluster has one \
                 (add an accelerator to a Ready cluster, or disable gpu for the service)"
            ),
            Infeasibility::NoUsableCluster { service, reasons } => write!(
                f,
                "service {service} cannot use any cluster ({}); \
                 make one Ready or widen its allowed_clusters/excluded_clusters",
                reasons.join(", ")
            ),
            Infeasibility::ServiceTooLarge {
                service,
                resource,
                need,
                replicas,
                largest_free,
                largest_cluster,
            } => {
                let per = if *replicas > 1 {
                    format!(
                        " ({replicas} replicas × {})",
                        resource.amount(need / f64::from(*replicas))
                    )
                } else {
                    String::new()
                };
                write!(
                    f,
                    "service {service} needs {}{per} but the largest cluster it may use \
                     ({largest_cluster}) has {} free; lower its replicas or size, or add capacity",
                    resource.amount(*need),
                    resource.amount(*largest_free)
                )
            }
            Infeasibility::NoClusterFitsBoth {
                service,
                cpu,
                memory,
            } => write!(
                f,
                "service {service} needs {} and {} on one cluster, but no cluster it may use \
                 has both free",
                Resource::Cpu.amount(*cpu),
                Resource::Memory.amount(*memory)
            ),
            Infeasibility::TotalDemandExceedsCapacity {
                resource,
                demand,
                capacity,
                clusters,
            } => write!(
                f,
                "total {} demand {} exceeds free capacity {} ({clusters} Ready cluster{})",
                resource.upper(),
                resource.amount(*demand),
                resource.amount(*capacity),
                if *clusters == 1 { "" } else { "s" }
            ),
            Infeasibility::GpuDemandExceedsCapacity {
                services,
                resource,
                demand,
                capacity,
            } => write!(
                f,
                "the services that need a GPU ({}) need {} of {} together, but the Ready GPU \
                 clusters have only {} free",
                services.join(", "),
                resource.amount(*demand),
                resource.upper(),
                resource.amount(*capacity)
            ),
            Infeasibility::CoLocationNoCommonCluster { services, usable } => write!(
                f,
                "services {} must be co-located but no cluster is usable by all of them ({})",
                services.join(", "),
                usable.join("; ")
            ),
            Infeasibility::CoLocationTooLarge {
                services,
                resource,
                need,
                largest_free,
                largest_cluster,
            } => write!(
                f,
                "co-located services {} need {} together but the largest cluster they may all \
                 use ({largest_cluster}) has {} free",
                services.join(", "),
                resource.amount(*need),
                resource.amount(*largest_free)
            ),
            Infeasibility::HighAvailabilityUnsatisfiable {
                services,
                replicas,
                per_cluster,
                room,
            } => write!(
                f,
                "service{} {} asks for high availability ({replicas} replicas over ≥ 2 clusters, \
                 at most {per_cluster} per cluster) but the usable clusters cannot hold them \
                 (room: {})",
                if services.len() > 1 { "s" } else { "" },
                services.join(", "),
                if room.is_empty() {
                    "none".to_string()
                } else {
                    room.join(", ")
                }
            ),
            Infeasibility::Combination { detail } => write!(
                f,
                "no placement satisfies all constraints at once: each service fits somewhere on \
                 its own and the totals fit, but not together (capacity is fragmented, or \
                 co-location/high-availability constraints collide); {detail}"
            ),
        }
    }
}

/// Everything that can go wrong in `solve_problem`, `first_fit` and `replan`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "details", rename_all = "snake_case")]
pub enum PlacementError {
    /// The problem is malformed; every offending field is listed.
    #[error("invalid placement problem: {}", join_fields(.0))]
    Invalid(Vec<FieldError>),
    /// No placement exists; every reason the cheap checks found is listed.
    #[error("no placement possible: {}", join_reasons(.0))]
    Infeasible(Vec<Infeasibility>),
    /// The solver hit its time limit before finding any placement.
    #[error(
        "the solver found no placement within the time limit of {time_limit_secs} s; \
         raise time_limit_secs or simplify the problem"
    )]
    NoSolutionWithinTimeLimit {
        /// The limit that was used.
        time_limit_secs: f64,
    },
    /// First-fit (the reference heuristic) could not place a service; a proper solve may still succeed.
    #[error("first-fit could not place service {service}: {reason}")]
    FirstFitFailed {
        /// The first service it could not place.
        service: String,
        /// Why.
        reason: String,
    },
    /// HiGHS reported an error, or returned a solution that violates a constraint.
    #[error("solver error: {0}")]
    Solver(String),
}

fn join_fields(v: &[FieldError]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn join_reasons(v: &[Infeasibility]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
