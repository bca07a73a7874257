//! A conditional service's deploy: whether it goes ahead (its events, `condition: ALL`), then its
//! placement beside the services already running.

use super::*;

/// Whether a conditional service's deploy goes ahead, before any cluster is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Already deployed, or not conditional: exactly once, nothing to do.
    Done,
    /// `condition: ALL` and some events stopped firing since the webhook: record why it waits.
    Waits(Outcome),
    /// Place and deploy it.
    Go,
}

/// The gate of a conditional deploy of `service` after `alert`, given the events firing now.
pub fn conditional_gate(
    graph: &Graph,
    services: &[ServiceRecord],
    service: &str,
    alert: &str,
    firing: &BTreeSet<String>,
) -> Result<Gate, PlanError> {
    let Some(record) = services.iter().find(|s| s.name == service) else {
        return Err(PlanError::NoService {
            graph: graph.id.clone(),
            service: service.into(),
        });
    };
    if !record.conditional || record.status != ServiceStatus::Pending {
        return Ok(Gate::Done);
    }
    let missing = graph
        .service(service)
        .map(|s| conditional::missing(s, firing))
        .unwrap_or_default();
    if missing.is_empty() {
        return Ok(Gate::Go);
    }
    Ok(Gate::Waits(Outcome {
        decisions: vec![Decision::new(
            DecisionKind::DeployConditional,
            format!(
                "{service} waits: condition ALL and {} not firing any more",
                missing.join(", ")
            ),
            json!({ "alert": alert, "firing": firing }),
            json!({ "deployed": false, "missing": missing }),
        )],
        ..Outcome::default()
    }))
}

/// A conditional service whose event fired: place it beside the graph's running services and
/// apply it alone.
pub fn conditional(s: &Snapshot<'_>, trigger: Trigger, helm: bool) -> Result<Deploy, PlanError> {
    let service = trigger.service.as_str();
    let placement = place(
        s.graph,
        &wanted(s.services, Some(service)),
        s.clusters,
        s.current,
        false,
    )?;
    let Some(cluster) = placement.placement.get(service).cloned() else {
        return Err(PlanError::Unplaced(service.into()));
    };
    let svc = s
        .graph
        .service(service)
        .ok_or_else(|| PlanError::NoService {
            graph: s.graph.id.clone(),
            service: service.into(),
        })?;
    let mut work = Vec::new();
    if !manifests::is_native(svc) {
        if helm {
            work.push(Work::Helm(helm_release(
                s.graph,
                svc,
                &cluster,
                &placement.placement,
            )));
        }
    } else {
        let replicas = desired_replicas(s.services);
        let input = RenderInput {
            graph: s.graph,
            project: s.project,
            placement: &placement.placement,
            replicas: &replicas,
        };
        let objects = manifests::render_service(&input, svc, &cluster);
        work.push(Work::Apply {
            service: service.into(),
            cluster,
            objects,
        });
    }
    Ok(Deploy {
        placement,
        work,
        waits_for_helm: Vec::new(),
        observe: vec![service.into()],
        force: false,
        trigger: Some(trigger),
        placement_decision: None,
    })
}
