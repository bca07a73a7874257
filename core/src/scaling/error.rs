//! Invalid input. Infeasibility is not an error: it is a normal outcome
//! ([`super::ScaleOutcome::Infeasible`]) that the caller answers with a `re-place` job.

use serde::Serialize;

/// Input the scaler refuses to reason about. Every message names the field so the caller can
/// point at the descriptor key or the metric that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScalingError {
    /// One field of one service, e.g. `services[1] (api).alpha: must be a finite number > 0, got 0`.
    #[error("services[{index}] ({service}).{field}: {message}")]
    InvalidService {
        /// Position in the input slice.
        index: usize,
        /// Service name as given (may be empty when the name itself is the problem).
        service: String,
        /// Field of [`super::ScaleService`].
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// One field of the cluster, e.g. `cluster edge-a.cpu: must be a finite number, got NaN`.
    #[error("cluster {cluster}.{field}: {message}")]
    InvalidCluster {
        /// Cluster name as given.
        cluster: String,
        /// Field of [`super::ScaleCluster`].
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// Two services of one cluster share a name, so results could not be keyed by name.
    #[error(
        "services[{first}] and services[{second}] are both named {name:?}; names must be unique per cluster"
    )]
    DuplicateService {
        /// The shared name.
        name: String,
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },
    /// Guards the solver's run time; a graph this large should be split.
    #[error("cluster {cluster}: {count} services to scale, at most {limit} are supported per call")]
    TooManyServices {
        /// Cluster name.
        cluster: String,
        /// Services given.
        count: usize,
        /// [`super::MAX_SERVICES`].
        limit: usize,
    },
    /// [`super::solve_graph`]: services are listed for a cluster that is not in `clusters`.
    #[error("services are listed for cluster {cluster:?}, which is not among the clusters given")]
    UnknownCluster {
        /// The cluster name used as key.
        cluster: String,
    },
    /// [`super::solve_graph`]: the same cluster name appears twice in `clusters`.
    #[error("cluster {cluster:?} is listed more than once")]
    DuplicateCluster {
        /// The repeated name.
        cluster: String,
    },
}
