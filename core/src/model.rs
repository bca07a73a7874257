//! smo's vocabulary beyond the descriptor: what a graph and its services are in, what the user
//! asked for, what a job decided and what it records. Plain data, so the planner, the store, the
//! API and the console all speak it without depending on each other.
//!
//! Every kind is an enum with one stored (and wire) name per variant: a misspelt kind cannot
//! compile, and a name the enum does not know, read from the database or a request, is an error
//! rather than a silent mismatch. The store binds them as text (`as_str`) and reads them back
//! through `TryFrom<String>`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stored (and wire) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("{other:?} is not a {}", stringify!($name))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

named_enum!(
    /// What the user asked a graph to be.
    Desired {
        /// Deployed and running.
        Running = "running",
        /// Kept, but its workloads removed.
        Stopped = "stopped",
        /// Gone.
        Removed = "removed",
    }
);

named_enum!(
    /// What the last job of a graph achieved (the reference's names).
    GraphStatus {
        /// Stored, waiting for its deploy job.
        Pending = "Pending",
        /// A deploy job is applying it.
        Deploying = "Deploying",
        /// Every non-conditional service is applied.
        Running = "Running",
        /// A stop job is removing its workloads.
        Stopping = "Stopping",
        /// Workloads removed; the graph is kept.
        Stopped = "Stopped",
        /// A remove job is deleting it.
        Removing = "Removing",
        /// The last job failed; see `status_message` and the job.
        Failed = "Failed",
    }
);

named_enum!(
    /// Where one service is.
    ServiceStatus {
        /// Not applied: waiting for its graph's deploy, or a conditional service whose event
        /// has not fired.
        Pending = "Pending",
        /// Applied; not every replica ready yet (or a Helm release, whose pods smo does not
        /// watch).
        Deployed = "Deployed",
        /// Every replica ready when last observed.
        Running = "Running",
        /// Its graph was stopped.
        Stopped = "Stopped",
        /// Its deploy failed.
        Failed = "Failed",
    }
);

impl ServiceStatus {
    /// What the federation reports for a native service (desired, ready replicas).
    pub fn observed(observed: Observed) -> ServiceStatus {
        match observed {
            Some((want, ready)) if ready >= want => ServiceStatus::Running,
            Some(_) => ServiceStatus::Deployed,
            None => ServiceStatus::Pending,
        }
    }

    /// Whether its objects are meant to be in the federation now.
    pub fn is_deployed(self) -> bool {
        !matches!(self, ServiceStatus::Pending | ServiceStatus::Stopped)
    }
}

named_enum!(
    /// What a decision in the log is about (`GET /graphs/{name}/decisions`, the console).
    DecisionKind {
        /// The solver placed the graph's services.
        Placement = "placement",
        /// A deploy applied the graph.
        Deploy = "deploy",
        /// A forced re-placement (or a failed one: nothing moved).
        RePlace = "re-place",
        /// A conditional service was deployed, or waits.
        DeployConditional = "deploy-conditional",
        /// A stop removed the graph's workloads.
        Stop = "stop",
        /// A remove deleted the graph.
        Remove = "remove",
        /// Drift repair re-applied what had changed.
        Drift = "drift",
        /// Dashboards and alert rules were published.
        Publish = "publish",
        /// The scaling round changed replicas.
        Scaling = "scaling",
        /// Services moved off a lost cluster.
        Failover = "failover",
        /// Services went home to a cluster that came back.
        Failback = "failback",
        /// A graph could not be moved off a lost cluster.
        Infeasible = "infeasible",
    }
);

named_enum!(
    /// The stable `type` of an API problem document (`urn:smo:problem:<kind>`): clients and
    /// scripts branch on these, so each is listed once here and in the README's error table.
    ProblemKind {
        /// Malformed request (bad path parameter, unreadable body).
        BadRequest = "bad-request",
        /// Missing or refused bearer token.
        Unauthorized = "unauthorized",
        /// The token lacks the role or project grant.
        Forbidden = "forbidden",
        /// No such graph, job, cluster or token.
        NotFound = "not-found",
        /// The request conflicts with the current state.
        Conflict = "conflict",
        /// The name is taken (a graph in another project, a token).
        NameTaken = "name-taken",
        /// The graph is being removed.
        GraphRemoving = "graph-removing",
        /// The job is not in a state the operation applies to.
        InvalidJobState = "invalid-job-state",
        /// Another request changed the same record first; retry.
        ConcurrentChange = "concurrent-change",
        /// The body did not arrive in time.
        BodyTimeout = "body-timeout",
        /// The body is over the limit.
        TooLarge = "too-large",
        /// The descriptor (or another input) is invalid; every problem is listed.
        InvalidDescriptor = "invalid-descriptor",
        /// A value PostgreSQL cannot store (a NUL character, …).
        UnstorableValue = "unstorable-value",
        /// A graph, project or cluster name that is not a DNS label.
        InvalidName = "invalid-name",
        /// A name smo keeps for itself.
        ReservedName = "reserved-name",
        /// The operation needs a running graph.
        GraphNotRunning = "graph-not-running",
        /// No placement satisfies the intents.
        PlacementInfeasible = "placement-infeasible",
        /// An Alertmanager webhook body smo cannot read.
        InvalidWebhook = "invalid-webhook",
        /// An artifact reference that does not parse.
        InvalidReference = "invalid-reference",
        /// An artifact that is not a packaged descriptor.
        InvalidArtifact = "invalid-artifact",
        /// A registry or Prometheus smo depends on failed.
        BadGateway = "bad-gateway",
        /// Not supported by this server.
        NotImplemented = "not-implemented",
        /// The route exists for other methods (the problem names them).
        MethodNotAllowed = "method-not-allowed",
        /// The body's content type is not one the route takes.
        UnsupportedMediaType = "unsupported-media-type",
        /// A bug: logged with its detail.
        Internal = "internal",
        /// A dependency (the database) is down.
        Unavailable = "unavailable",
    }
);

/// (desired, ready) replicas of a Deployment as the federation reports them.
pub type Observed = Option<(i32, i32)>;

/// A decision to append to the log; the writer adds graph, project, job id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What it is about.
    pub kind: DecisionKind,
    /// One line for people.
    pub message: String,
    /// What it was based on.
    pub inputs: Value,
    /// What it decided.
    pub outcome: Value,
}

impl Decision {
    /// A decision of `kind`.
    pub fn new(kind: DecisionKind, message: String, inputs: Value, outcome: Value) -> Decision {
        Decision {
            kind,
            message,
            inputs,
            outcome,
        }
    }
}

/// What a graph job records, in one transaction, after applying: the plan's last word. The
/// store has one writer for it, so every job's record looks the same.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The graph's new status and its message.
    pub status: Option<(GraphStatus, Option<String>)>,
    /// Service statuses, with (desired, ready) replicas when observed.
    pub services: Vec<(String, ServiceStatus, Observed)>,
    /// The new placement.
    pub placement: Option<BTreeMap<String, String>>,
    /// A conditional service deployed: its recorded events are spent.
    pub clear_events: Option<String>,
    /// Published dashboards (title → URL).
    pub dashboards: Option<BTreeMap<String, String>>,
    /// Decision log entries, in order.
    pub decisions: Vec<Decision>,
    /// Enqueue `publish-dashboards` for the graph.
    pub publish: bool,
}

/// A service as stored: its place in the descriptor, where it runs and what it needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRecord {
    /// Service id.
    pub name: String,
    /// Order in the descriptor.
    pub position: i32,
    /// Where it is.
    pub status: ServiceStatus,
    /// Where it runs.
    pub cluster: Option<String>,
    /// Desired replicas.
    pub replicas: i32,
    /// Ready replicas when last observed.
    pub ready: i32,
    /// Deployed only when its alert fires.
    pub conditional: bool,
    /// CPU per replica.
    pub cpu_millis: i64,
    /// Memory per replica.
    pub memory_bytes: i64,
    /// Needs an accelerator.
    pub gpu: bool,
}

/// A service as stored on upload.
#[derive(Debug, Clone)]
pub struct NewService {
    /// Service id.
    pub name: String,
    /// Deployed only when its alert fires.
    pub conditional: bool,
    /// CPU per replica.
    pub cpu_millis: i64,
    /// Memory per replica.
    pub memory_bytes: i64,
    /// Needs an accelerator.
    pub gpu: bool,
    /// Initial replicas.
    pub replicas: i32,
}

impl NewService {
    /// The services of a descriptor as stored on upload.
    pub fn of_graph(graph: &crate::hdag::Graph) -> Vec<NewService> {
        graph
            .services
            .iter()
            .map(|s| {
                let r = s.resources();
                let min = s
                    .deployment
                    .intent
                    .scaling
                    .as_ref()
                    .map(|sc| sc.min_replicas)
                    .unwrap_or(1);
                NewService {
                    name: s.id.clone(),
                    conditional: s.is_conditional(),
                    cpu_millis: r.cpu_millis.min(i64::MAX as u64) as i64,
                    memory_bytes: r.memory_bytes.min(i64::MAX as u64) as i64,
                    gpu: r.gpu,
                    replicas: min.clamp(1, 10_000) as i32,
                }
            })
            .collect()
    }
}

/// A member cluster as last read from Karmada.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterRecord {
    /// Name.
    pub name: crate::hdag::ClusterName,
    /// Ready condition.
    pub ready: bool,
    /// Allocatable cores.
    pub cpu_allocatable: f64,
    /// Free cores (allocatable − allocated).
    pub cpu_free: f64,
    /// Allocatable bytes.
    pub memory_allocatable: i64,
    /// Free bytes.
    pub memory_free: i64,
    /// Accelerators (e.g. `nvidia.com/gpu`).
    pub gpus: i32,
    /// Labels.
    pub labels: serde_json::Value,
    /// Readiness message.
    pub message: Option<String>,
    /// When read.
    pub synced_at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for s in GraphStatus::ALL {
            assert_eq!(s.as_str().parse::<GraphStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in ServiceStatus::ALL {
            assert_eq!(s.as_str().parse::<ServiceStatus>().unwrap(), *s);
        }
        for d in Desired::ALL {
            assert_eq!(d.as_str().parse::<Desired>().unwrap(), *d);
        }
        for k in DecisionKind::ALL {
            assert_eq!(DecisionKind::try_from(k.to_string()).unwrap(), *k);
        }
        for k in ProblemKind::ALL {
            assert_eq!(k.as_str().parse::<ProblemKind>().unwrap(), *k);
        }
        assert!("running".parse::<GraphStatus>().is_err());
        assert!("Running".parse::<Desired>().is_err());
        assert!(DecisionKind::try_from("scale".to_string()).is_err());
    }

    #[test]
    fn a_service_is_running_when_every_replica_is_ready() {
        assert_eq!(
            ServiceStatus::observed(Some((3, 3))),
            ServiceStatus::Running
        );
        assert_eq!(
            ServiceStatus::observed(Some((3, 2))),
            ServiceStatus::Deployed
        );
        assert_eq!(ServiceStatus::observed(None), ServiceStatus::Pending);
        assert!(!ServiceStatus::Stopped.is_deployed());
        assert!(ServiceStatus::Failed.is_deployed());
    }
}
