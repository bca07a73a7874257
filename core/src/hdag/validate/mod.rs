//! Phase two: a generic value → a typed [`Graph`], field by field, collecting every problem with
//! its path instead of stopping at the first (which is all serde's derive could do).

use super::model::*;
use super::quantity::{CpuSize, RamSize, StorageSize};
use super::{Problem, name::dns_label_problem, q};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

mod cross;
mod read;
mod resources;
mod sections;

use self::{cross::*, read::*, resources::*, sections::*};

/// Information-model versions smo was written against; others parse with a warning.
pub const KNOWN_IM_VERSIONS: &[&str] = &["0.4.0"];

#[derive(Default)]
struct Cx {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    /// References between services, checked once every id is known.
    refs: Vec<Ref>,
    /// Most services accepted ([`super::MAX_SERVICES`] by default).
    max_services: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefKind {
    ConnectionPoint,
    Dependency,
    CoLocation,
    EventSource,
    Latency,
}

struct Ref {
    from: usize,
    target: String,
    path: String,
    kind: RefKind,
}

impl Cx {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }
    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

/// Most problems listed (of each kind): a hostile document could otherwise produce hundreds of
/// thousands, and the first ones are what a user can act on.
pub const MAX_PROBLEMS: usize = 1000;

fn cap(problems: &mut Vec<Problem>) {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(Problem {
            path: String::new(),
            message: format!("… and {more} more not listed"),
        });
    }
}

/// Validates a loaded document (the whole file, with its `hdaGraph` key).
pub(super) fn validate(
    root: &Value,
    max_services: usize,
) -> Result<(Graph, Vec<Problem>), Vec<Problem>> {
    let mut cx = Cx {
        max_services,
        ..Cx::default()
    };
    let Value::Object(top) = root else {
        return Err(vec![Problem {
            path: String::new(),
            message: format!(
                "expected a map with the key hdaGraph, got {}",
                describe(root)
            ),
        }]);
    };
    for key in top.keys().filter(|k| *k != "hdaGraph") {
        cx.warn(key, "unknown top-level key next to hdaGraph (ignored)");
    }
    let Some(inner) = top.get("hdaGraph") else {
        return Err(vec![Problem {
            path: "hdaGraph".into(),
            message: "missing required key".into(),
        }]);
    };
    let Value::Object(map) = inner else {
        return Err(vec![Problem {
            path: "hdaGraph".into(),
            message: format!("expected a map, got {}", describe(inner)),
        }]);
    };
    let graph = graph(
        Obj {
            map,
            path: String::new(),
            known: Vec::new(),
        },
        &mut cx,
    );
    cap(&mut cx.errors);
    cap(&mut cx.warnings);
    match graph {
        Some(g) if cx.errors.is_empty() => Ok((g, cx.warnings)),
        _ => Err(cx.errors),
    }
}

/// Id and conditionality of a service item, as far as they could be read.
struct Seen {
    id: String,
    conditional: bool,
}
