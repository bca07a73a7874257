//! A scaling shard's plan and record, without I/O: which of the round's plans still describe
//! their graph when the shard runs, and — once the federation has answered for every change —
//! what to record. The `scale-shard` job only loads, calls the federation and writes.

use std::collections::{BTreeMap, HashMap};

use super::{GraphPlan, PlannedChange};
use crate::model::{Decision, DecisionKind};

/// A graph as the shard finds it: whether it may still be scaled, and where each service runs
/// with how many replicas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphNow {
    /// Its row id (replicas are recorded against it).
    pub row: uuid::Uuid,
    /// The descriptor's graph id (object names).
    pub object_graph: String,
    /// Running, wanted running, and not yet recorded by this job (an earlier attempt of the same
    /// shard did its work).
    pub open: bool,
    /// service → (cluster, replicas).
    pub services: HashMap<String, (Option<String>, i32)>,
}

/// The plans that still describe their graph: held by this shard (`now` has only those), open,
/// every changed service on the cluster and at the count the round saw. Another job (a deploy, a
/// re-place, a stop) that ran in between decided otherwise; the next round starts from what it
/// left.
pub fn still_current<'a>(
    plans: &'a [GraphPlan],
    now: &HashMap<String, GraphNow>,
) -> Vec<&'a GraphPlan> {
    plans
        .iter()
        .filter(|g| {
            now.get(&g.graph).is_some_and(|n| {
                n.open
                    && g.changes.iter().all(|c| {
                        n.services
                            .get(&c.service)
                            .is_some_and(|(cluster, replicas)| {
                                cluster.as_deref() == Some(c.cluster.as_str())
                                    && *replicas == c.from as i32
                            })
                    })
            })
        })
        .collect()
}

/// What the federation answered for one planned change.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Set: the replicas it reports ready now.
    Set {
        /// Ready replicas.
        ready: i32,
    },
    /// The Deployment is not there (a chart that names it otherwise): a note, not a failure.
    Missing(String),
    /// The call failed: the graph is left for the shard's retry.
    Failed,
}

/// What a shard records in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardRecord {
    /// (graph row, service, replicas set, ready now).
    pub replicas: Vec<(uuid::Uuid, String, i32, i32)>,
    /// (graph, project, decision): one scaling decision per graph that changed or must move.
    pub decisions: Vec<(String, String, Decision)>,
    /// Graphs to re-place (infeasible where they are).
    pub re_place: Vec<String>,
    /// Graphs not recorded because a call failed (the shard is retried for them).
    pub failed: usize,
}

/// The record of a shard, all or nothing per graph: `results[(g, c)]` is the answer for change
/// `c` of `current[g]`; a graph with a failed call records nothing.
pub fn record(
    current: &[&GraphPlan],
    now: &HashMap<String, GraphNow>,
    results: &BTreeMap<(usize, usize), Applied>,
) -> ShardRecord {
    let mut out = ShardRecord::default();
    for (gi, g) in current.iter().enumerate() {
        let answers: Vec<(&PlannedChange, Option<&Applied>)> = g
            .changes
            .iter()
            .enumerate()
            .map(|(ci, c)| (c, results.get(&(gi, ci))))
            .collect();
        if answers
            .iter()
            .any(|(_, a)| matches!(a, None | Some(Applied::Failed)))
        {
            out.failed += 1;
            continue;
        }
        let mut applied = (*g).clone();
        applied.changes.clear();
        for (c, a) in answers {
            match a {
                Some(Applied::Set { ready }) => {
                    let row = now.get(&g.graph).map(|n| n.row).unwrap_or_default();
                    out.replicas
                        .push((row, c.service.clone(), c.to as i32, *ready));
                    applied.changes.push(c.clone());
                }
                Some(Applied::Missing(why)) => applied.notes.push(why.clone()),
                Some(Applied::Failed) | None => {
                    unreachable!("graphs with a failed call were skipped")
                }
            }
        }
        if applied.changes.is_empty() && applied.infeasible.is_empty() {
            continue;
        }
        if !applied.infeasible.is_empty() {
            out.re_place.push(g.graph.clone());
        }
        out.decisions.push((
            g.graph.clone(),
            g.project.clone(),
            Decision::new(
                DecisionKind::Scaling,
                applied.message(),
                g.inputs.clone(),
                serde_json::to_value(&g.outcome).unwrap_or_default(),
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(graph: &str, changes: &[(&str, &str, u32, u32)]) -> GraphPlan {
        GraphPlan {
            graph: graph.into(),
            project: "p".into(),
            changes: changes
                .iter()
                .map(|(s, c, from, to)| PlannedChange {
                    service: s.to_string(),
                    cluster: c.to_string(),
                    from: *from,
                    to: *to,
                })
                .collect(),
            infeasible: Vec::new(),
            notes: Vec::new(),
            inputs: serde_json::json!({}),
            outcome: Default::default(),
        }
    }

    fn row(graph: &str) -> uuid::Uuid {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, graph.as_bytes())
    }

    fn now(graph: &str, open: bool, services: &[(&str, &str, i32)]) -> (String, GraphNow) {
        (
            graph.to_string(),
            GraphNow {
                row: row(graph),
                object_graph: graph.into(),
                open,
                services: services
                    .iter()
                    .map(|(s, c, r)| (s.to_string(), (Some(c.to_string()), *r)))
                    .collect(),
            },
        )
    }

    #[test]
    fn a_plan_is_current_only_while_its_graph_is_open_and_unmoved() {
        let plans = [
            plan("same", &[("web", "a", 2, 4)]),
            plan("moved", &[("web", "a", 2, 4)]),
            plan("rescaled", &[("web", "a", 2, 4)]),
            plan("recorded", &[("web", "a", 2, 4)]),
            plan("not-held", &[("web", "a", 2, 4)]),
        ];
        let now: HashMap<_, _> = [
            now("same", true, &[("web", "a", 2)]),
            now("moved", true, &[("web", "b", 2)]),
            now("rescaled", true, &[("web", "a", 3)]),
            now("recorded", false, &[("web", "a", 2)]),
        ]
        .into();
        let current: Vec<&str> = still_current(&plans, &now)
            .iter()
            .map(|g| g.graph.as_str())
            .collect();
        assert_eq!(current, ["same"]);
    }

    #[test]
    fn a_graph_with_a_failed_call_records_nothing_and_a_missing_deployment_is_a_note() {
        let plans = [
            plan("ok", &[("web", "a", 2, 4), ("api", "a", 1, 2)]),
            plan("broken", &[("web", "a", 2, 4), ("api", "a", 1, 2)]),
            plan("chart", &[("web", "a", 2, 4)]),
        ];
        let now: HashMap<_, _> = [
            now("ok", true, &[("web", "a", 2), ("api", "a", 1)]),
            now("broken", true, &[("web", "a", 2), ("api", "a", 1)]),
            now("chart", true, &[("web", "a", 2)]),
        ]
        .into();
        let current: Vec<&GraphPlan> = plans.iter().collect();
        let results: BTreeMap<_, _> = [
            ((0, 0), Applied::Set { ready: 3 }),
            ((0, 1), Applied::Set { ready: 2 }),
            ((1, 0), Applied::Set { ready: 4 }),
            ((1, 1), Applied::Failed),
            (
                (2, 0),
                Applied::Missing("web: no Deployment chart-web to scale".into()),
            ),
        ]
        .into();
        let r = record(&current, &now, &results);
        assert_eq!(r.failed, 1);
        assert_eq!(
            r.replicas,
            [
                (row("ok"), "web".to_string(), 4, 3),
                (row("ok"), "api".to_string(), 2, 2)
            ]
        );
        // "chart" changed nothing: no decision, no replicas.
        assert_eq!(r.decisions.len(), 1);
        assert_eq!(r.decisions[0].0, "ok");
        assert_eq!(r.decisions[0].2.kind, DecisionKind::Scaling);
        assert!(r.re_place.is_empty());
    }

    #[test]
    fn an_infeasible_graph_is_re_placed_and_says_why() {
        let mut p = plan("tight", &[]);
        p.infeasible.push("a: needs 3 cores, 1 free".into());
        let now: HashMap<_, _> = [now("tight", true, &[])].into();
        let r = record(&[&p], &now, &BTreeMap::new());
        assert_eq!(r.re_place, ["tight"]);
        assert!(
            r.decisions[0].2.message.contains("infeasible"),
            "{:?}",
            r.decisions
        );
    }
}
