//! `/alerts`: the Alertmanager webhook that deploys event-triggered services.

use super::*;
use smo_core::model::ProblemKind;

route_type!(
    /// `/alerts` routes.
    AlertsApi
);

#[OpenApi]
impl AlertsApi {
    /// Alertmanager webhook: a firing alert whose labels name a graph and one of its pending
    /// conditional services enqueues `deploy-conditional` for it (once: repeats find the job or
    /// the service already deployed). For a `condition: ALL` service each event's firing and
    /// resolved notifications are recorded, and the job is enqueued only once every event is
    /// firing (configure Alertmanager with `send_resolved: true`). Other alerts are ignored and
    /// counted.
    #[oai(path = "/alerts", method = "post", operation_id = "postAlerts")]
    async fn alerts(&self, body: Binary<Vec<u8>>) -> ApiResult<Json<AlertsAccepted>> {
        let alerts = crate::monitoring::parse_alertmanager(&body.0).map_err(|e| {
            ApiError::invalid(
                format!("not an Alertmanager webhook: {e}"),
                vec![ProblemItem {
                    path: "body".into(),
                    message: e.to_string(),
                }],
            )
            .kind(ProblemKind::InvalidWebhook)
        })?;
        // Parsed (and size-checked) above; NUL cannot reach a label column.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body.0) {
            problem::no_nul_in(&v)?;
        }
        let mut jobs = Vec::new();
        let (mut ignored, mut waiting) = (0, Vec::new());
        let mut tx = self.pool.begin().await?;
        let now = self.queue.now();
        let mut ambiguous = Vec::new();
        for a in &alerts {
            let Some(service) = &a.service else {
                ignored += 1;
                continue;
            };
            let graph = match &a.graph {
                Some(g) => g.clone(),
                // The reference's rules label only the service (`alertname` = the event id):
                // the graph is the one whose pending service waits for that event.
                None => {
                    let owners: Vec<String> = store::graphs_awaiting(&mut tx, service)
                        .await?
                        .into_iter()
                        .filter(|g| {
                            readable(g)
                                .and_then(|d| {
                                    d.service(service).map(|s| s.is_triggered_by(&a.alertname))
                                })
                                .unwrap_or(false)
                        })
                        .map(|g| g.name.into())
                        .collect();
                    match owners.as_slice() {
                        [] => {
                            ignored += 1;
                            continue;
                        }
                        [one] => one.clone(),
                        many => {
                            ambiguous.push(format!(
                                "{service}: event {} is awaited by graphs {}; add a graph label to the rule",
                                a.alertname,
                                many.join(", ")
                            ));
                            continue;
                        }
                    }
                }
            };
            let graph = &graph;
            let Some(g) = store::find_graph(&mut tx, graph).await? else {
                ignored += 1;
                continue;
            };
            let services = store::services(&mut tx, g.id).await?;
            if !services
                .iter()
                .any(|s| &s.name == service && s.conditional && s.status == ServiceStatus::Pending)
            {
                ignored += 1;
                continue;
            }
            // ANY / ALL: `hdag::conditional` decides.
            let descriptor = readable(&g);
            let Some(spec) = descriptor.as_ref().and_then(|d| d.service(service)) else {
                ignored += 1;
                continue;
            };
            match conditional::on_alert(spec, &a.alertname, a.firing) {
                conditional::OnAlert::Ignore => {
                    ignored += 1;
                    continue;
                }
                conditional::OnAlert::Resolved => continue,
                conditional::OnAlert::Deploy => {}
                conditional::OnAlert::Record => {
                    let firing =
                        store::note_event(&mut tx, g.id, service, &a.alertname, a.firing, now)
                            .await?;
                    if !a.firing {
                        continue;
                    }
                    if !conditional::missing(spec, &firing).is_empty() {
                        waiting.push(format!("{graph}/{service}: {}", a.alertname));
                        continue;
                    }
                }
            }
            let args = reconcile::DeployConditionalJob {
                graph: g.name.clone(),
                service: service.clone(),
                alert: a.alertname.clone(),
            };
            jobs.push(self.accept(graph, args, vec![], &mut tx).await?);
        }
        tx.commit().await?;
        let firing = alerts.iter().filter(|a| a.firing).count();
        Ok(Json(AlertsAccepted {
            firing,
            resolved: alerts.len() - firing,
            ignored,
            waiting,
            jobs,
            ambiguous,
        }))
    }
}

/// A stored graph's descriptor, or `None` (logged: a fault of smo) when it no longer loads; the
/// webhook then treats the graph as not waiting for the alert instead of failing every alert.
fn readable(g: &store::GraphRecord) -> Option<Graph> {
    g.graph()
        .map_err(|e| tracing::error!(error = %e, "alert ignored for a graph whose descriptor does not load"))
        .ok()
}
