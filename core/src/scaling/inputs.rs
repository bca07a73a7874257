//! A scaling round's inputs, without I/O: from the running services as loaded (each with its
//! stored `intent.scaling`) to the query each one's rate comes from, and — once Prometheus has
//! answered — to the [`RoundService`]s the round solves. The `scale-fanout` job only loads,
//! queries and enqueues.

use std::collections::HashMap;

use super::{RoundService, ScaleService, defaults_for};
use crate::{hdag::Scaling, manifests, monitoring};

/// A running, placed service as the round loads it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundRow {
    /// Graph name.
    pub graph: String,
    /// Graph's project.
    pub project: String,
    /// The descriptor's graph id (objects are named `<id>-<service>`).
    pub graph_id: String,
    /// Service id.
    pub service: String,
    /// Cluster it runs on.
    pub cluster: String,
    /// Replicas set now.
    pub replicas: i32,
    /// CPU per replica.
    pub cpu_millis: i64,
    /// Needs an accelerator.
    pub gpu: bool,
    /// The service's `deployment.intent.scaling`, as stored.
    pub scaling: Option<serde_json::Value>,
}

/// One service's rate source.
#[derive(Debug, Clone, PartialEq)]
pub struct RateInput {
    /// The service.
    pub row: RoundRow,
    /// Its Deployment's name.
    pub deployment: String,
    /// Its decoded scaling intent.
    pub intent: Option<Scaling>,
    /// The PromQL its rate comes from (kept in the decision's inputs).
    pub query: String,
}

impl RateInput {
    /// Whether its rate needs a query of its own (a custom metric template); otherwise the one
    /// fleet-wide query of the default metric answers for it.
    pub fn custom(&self) -> bool {
        self.intent
            .as_ref()
            .and_then(|s| s.metric.as_deref())
            .is_some_and(|m| !m.trim().is_empty())
    }
}

/// Decodes each service's intent and builds its rate query over `window`. A service whose stored
/// intent does not decode is left alone, and why is pushed to `skipped`.
pub fn rate_inputs(rows: Vec<RoundRow>, window: &str, skipped: &mut Vec<String>) -> Vec<RateInput> {
    let mut inputs = Vec::with_capacity(rows.len());
    for mut row in rows {
        let deployment = manifests::object_name(&row.graph_id, &row.service);
        let intent = match row
            .scaling
            .take()
            .map(serde_json::from_value::<Scaling>)
            .transpose()
        {
            Ok(s) => s,
            Err(e) => {
                skipped.push(format!(
                    "{}/{}: scaling intent: {e}",
                    row.graph, row.service
                ));
                continue;
            }
        };
        let query = monitoring::rate_query(
            intent.as_ref().and_then(|s| s.metric.as_deref()),
            &row.project,
            &deployment,
            &row.service,
            window,
        );
        inputs.push(RateInput {
            row,
            deployment,
            intent,
            query,
        });
    }
    inputs
}

/// The round's services from their inputs and Prometheus's answers: `fleet` the default metric's
/// rate per (namespace, Deployment) (`None`: an infinite rate, a broken series), `custom` the
/// rate of each input with a template of its own, by index. No series means no traffic (SPEC §3:
/// empty → 0); an infinite rate leaves the service alone, said in `skipped`.
pub fn round_services(
    inputs: Vec<RateInput>,
    fleet: &HashMap<(String, String), Option<f64>>,
    custom: &HashMap<usize, f64>,
    skipped: &mut Vec<String>,
) -> Vec<RoundService> {
    let mut services = Vec::with_capacity(inputs.len());
    for (k, input) in inputs.into_iter().enumerate() {
        let rate = if input.custom() {
            custom.get(&k).copied().unwrap_or(0.0)
        } else {
            match fleet.get(&(input.row.project.clone(), input.deployment)) {
                Some(Some(r)) => *r,
                Some(None) => {
                    let row = &input.row;
                    skipped.push(format!("{}/{}: rate is infinite", row.graph, row.service));
                    continue;
                }
                None => 0.0,
            }
        };
        let row = input.row;
        let cpu = row.cpu_millis as f64 / 1000.0;
        let (alpha, beta, min, max) = match &input.intent {
            Some(s) => (s.alpha, s.beta, s.min_replicas, s.max_replicas),
            None => defaults_for(cpu),
        };
        services.push(RoundService {
            graph: row.graph,
            project: row.project,
            cluster: row.cluster,
            query: input.query,
            service: ScaleService {
                name: row.service,
                rate,
                current: row.replicas.max(0) as u32,
                cpu,
                alpha,
                beta,
                min,
                max,
                gpu: row.gpu,
            },
        });
    }
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(graph: &str, service: &str, scaling: Option<serde_json::Value>) -> RoundRow {
        RoundRow {
            graph: graph.into(),
            project: "p".into(),
            graph_id: graph.into(),
            service: service.into(),
            cluster: "a".into(),
            replicas: 2,
            cpu_millis: 500,
            gpu: false,
            scaling,
        }
    }

    #[test]
    fn intents_decode_or_are_skipped_and_rates_come_from_the_right_query() {
        let custom_intent = serde_json::json!({
            "minReplicas": 1, "maxReplicas": 5, "alpha": 2.0, "beta": 0.5,
            "metric": "sum(rate(hits{deployment=\"{deployment}\"}[{window}]))"
        });
        let rows = vec![
            row("g", "default", None),
            row("g", "custom", Some(custom_intent)),
            row(
                "g",
                "broken",
                Some(serde_json::json!({"minReplicas": "many"})),
            ),
            row("g", "silent", None),
            row("g", "infinite", None),
        ];
        let mut skipped = Vec::new();
        let inputs = rate_inputs(rows, "1m", &mut skipped);
        assert_eq!(inputs.len(), 4);
        assert!(
            skipped[0].starts_with("g/broken: scaling intent:"),
            "{skipped:?}"
        );
        assert!(!inputs[0].custom() && inputs[1].custom());
        assert!(inputs[1].query.contains("g-custom"), "{}", inputs[1].query);

        let fleet: HashMap<_, _> = [
            (("p".to_string(), "g-default".to_string()), Some(3.0)),
            (("p".to_string(), "g-infinite".to_string()), None),
        ]
        .into();
        let custom: HashMap<_, _> = [(1, 7.0)].into();
        let services = round_services(inputs, &fleet, &custom, &mut skipped);
        let rate = |name: &str| {
            services
                .iter()
                .find(|s| s.service.name == name)
                .map(|s| s.service.rate)
        };
        assert_eq!(rate("default"), Some(3.0));
        assert_eq!(rate("custom"), Some(7.0));
        assert_eq!(rate("silent"), Some(0.0), "no series is no traffic");
        assert_eq!(rate("infinite"), None);
        assert_eq!(skipped[1], "g/infinite: rate is infinite");
        let custom = services
            .iter()
            .find(|s| s.service.name == "custom")
            .unwrap();
        assert_eq!((custom.service.min, custom.service.max), (1, 5));
        let default = services
            .iter()
            .find(|s| s.service.name == "default")
            .unwrap();
        assert_eq!(
            (
                default.service.alpha,
                default.service.beta,
                default.service.min,
                default.service.max
            ),
            defaults_for(0.5)
        );
    }
}
