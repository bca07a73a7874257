//! HDAG descriptors: types, parsing and validation (pure: no I/O).
//!
//! [`parse`] turns the bytes of a descriptor (YAML or JSON) into a validated [`Graph`] in two
//! phases: the document is first loaded into a generic value under hard limits (size, nesting,
//! alias expansion), then read field by field so that *every* problem is reported at once with
//! its path, e.g. `services[2].deployment.intent.compute.cpu: expected one of
//! light|small|medium|large or a Kubernetes quantity, got "huge"`. Unknown keys are kept and
//! reported as warnings, for forward compatibility.
//!
//! Liberal where real descriptors are: booleans may be `True`/`False`, quoted, or YAML 1.1
//! words (`yes`/`off`); versions may be unquoted numbers (with a warning); `connectionPoints`,
//! `coLocation` and `metrics` are read both under `intent` and under `intent.network`; an event
//! source naming something outside the graph is a warning (the examples' `vo` is a device).
//!
//! smo extensions (optional; a descriptor without them behaves like the reference):
//! - `artifact.image` + `artifact.ports` (`[8080]` or `[{port, name, protocol}]`): a plain
//!   container image instead of a Helm chart (`ociImage`); exactly one of the two is required;
//! - `deployment.intent.scaling`: `{minReplicas (default 1), maxReplicas, alpha > 0,
//!   beta (default 0), metric}`, the scaler's capacity model;
//! - `compute.cpu|ram|storage` also take Kubernetes quantities (`250m`, `1.5Gi`).
//!
//! Hostile input is bounded before and while parsing: see [`Limits`].

pub mod conditional;
mod load;
mod model;
pub mod name;
mod quantity;
mod validate;

#[cfg(test)]
mod tests;

pub use model::*;
pub use name::{ClusterName, GraphName, NameError, ProjectName};
pub use quantity::{
    CpuSize, QuantityError, RamSize, Resources, StorageSize, cpu_millis, quantity_bytes,
    same_quantity,
};
pub use validate::{KNOWN_IM_VERSIONS, MAX_PROBLEMS};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest descriptor accepted (10 MiB): bodies beyond it are refused before any parsing.
pub const MAX_DESCRIPTOR_BYTES: usize = 10 * 1024 * 1024;
/// Most services a graph may have. Real graphs have a handful to a few dozen; beyond this,
/// placement, rendering and storage cost grows without serving anyone (a 50,000-service body
/// once cost a gigabyte of memory). Checked before any service is validated.
pub const MAX_SERVICES: usize = 1000;
/// Deepest nesting accepted; real descriptors are about 8 levels deep.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, lists, maps) a document may expand to, aliases included: bounds the
/// memory and time a YAML alias bomb can cost.
pub const MAX_NODES: usize = 500_000;

/// Budget for YAML flow collections (`[…]`, `{…}`): length × their number; at this budget the
/// worst case (11,500 nested `[`) takes 0.8 s in a debug build. A 100 kB descriptor may have 2,500 of them,
/// a 1 MB one 250; larger or more bracketed documents must use block style or JSON (which is
/// parsed without libyaml and is exempt).
pub const MAX_FLOW_WORK: u64 = 1 << 28;

/// Resource limits for untrusted descriptors; [`Limits::default`] is what [`parse`] uses.
///
/// Memory: serde_norway collects a YAML document's events before any limit on nodes can act,
/// so a 10 MiB YAML body of tiny scalars costs about 700 MB for the few seconds it takes to be
/// refused; a server taking concurrent uploads should bound concurrency or lower `max_bytes`.
/// JSON is streamed and costs about its own size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_flow_work: u64,
    pub max_services: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: MAX_DESCRIPTOR_BYTES,
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_flow_work: MAX_FLOW_WORK,
            max_services: MAX_SERVICES,
        }
    }
}

/// One problem with a descriptor, at a path relative to `hdaGraph` (`services[0].id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A validated graph and the warnings (unknown keys, assumed defaults) worth showing the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub graph: Graph,
    pub warnings: Vec<Problem>,
}

/// Why a descriptor was refused. Nothing may be stored or enqueued for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    #[error("descriptor is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("descriptor is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error("descriptor is empty")]
    Empty,
    /// `line` and `column` start at 1; 0 when the parser gave no position.
    #[error("{}", syntax_display(*line, *column, message))]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("descriptor nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("descriptor expands to more than {limit} nodes or too much text (YAML aliases?)")]
    TooManyNodes { limit: usize },
    /// Too many YAML flow collections (`[…]`, `{…}`) for its length; see [`MAX_FLOW_WORK`].
    #[error(
        "YAML descriptor has too many [..]/{{..}} collections for its size (work {work} > {limit}); \
         use block style or JSON"
    )]
    TooComplex { work: u64, limit: u64 },
    /// Every problem found, one per line when displayed.
    #[error("{}", lines(.0))]
    Invalid(Vec<Problem>),
}

fn syntax_display(line: usize, column: usize, message: &str) -> String {
    if line == 0 {
        format!("syntax error: {message}")
    } else {
        format!("syntax error at line {line}, column {column}: {message}")
    }
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl DescriptorError {
    /// The problems as a list, for APIs that report `{path, message}` items (RFC 7807 bodies).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            DescriptorError::Invalid(p) => p.clone(),
            other => vec![Problem {
                path: String::new(),
                message: other.to_string(),
            }],
        }
    }
}

/// Parses and validates a descriptor (YAML, or JSON when it starts with `{`) with default limits.
pub fn parse(bytes: &[u8]) -> Result<Parsed, DescriptorError> {
    parse_with_limits(bytes, &Limits::default())
}

/// [`parse`] with explicit limits (e.g. a smaller body limit configured for the API).
pub fn parse_with_limits(bytes: &[u8], limits: &Limits) -> Result<Parsed, DescriptorError> {
    let value = load::load(bytes, limits)?;
    if value.is_null() {
        return Err(DescriptorError::Empty);
    }
    let (graph, warnings) =
        validate::validate(&value, limits.max_services).map_err(DescriptorError::Invalid)?;
    Ok(Parsed { graph, warnings })
}

/// A user-supplied string quoted for a message, shortened so that a huge value cannot flood it.
pub(crate) fn q(s: &str) -> String {
    let mut shown: String = s.chars().take(80).collect();
    if shown.len() < s.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}
