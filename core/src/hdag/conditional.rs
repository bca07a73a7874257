//! When an event-triggered service deploys, in one place for the webhook and the job.
//!
//! `condition: ANY` (the default): any one of its events firing deploys it. `condition: ALL`:
//! every one of its events must be firing at once, so each notification — firing or resolved —
//! is recorded, and the set is checked both when an alert arrives and again when the
//! `deploy-conditional` job runs (an event may have resolved in between).

use std::collections::BTreeSet;

use super::Service;

/// What one Alertmanager notification means for a pending conditional service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnAlert {
    /// Not one of the service's events (of an ALL service): nothing to do.
    Ignore,
    /// Record this event's state (ALL services), then decide with [`after_recording`].
    Record,
    /// Deploy now (ANY service, firing alert).
    Deploy,
    /// A resolved alert of an ANY service: nothing to do.
    Resolved,
}

/// The first step for an alert named `alert` (firing or not) about `service`.
pub fn on_alert(service: &Service, alert: &str, firing: bool) -> OnAlert {
    let together = service.events_required_together();
    match (together.is_empty(), firing) {
        (false, _) if !together.contains(&alert) => OnAlert::Ignore,
        (false, _) => OnAlert::Record,
        (true, true) => OnAlert::Deploy,
        (true, false) => OnAlert::Resolved,
    }
}

/// For an ALL service whose event states were just recorded (`firing` = the events firing now):
/// the events still missing; deploy when empty and the alert itself is firing.
pub fn missing<'a>(service: &'a Service, firing: &BTreeSet<String>) -> Vec<&'a str> {
    service
        .events_required_together()
        .into_iter()
        .filter(|e| !firing.contains(*e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hdag::Graph;

    /// The fixture's `failover` service (events `web-slow` and `web-erroring`) with `condition`.
    fn graph(condition: &str) -> Graph {
        let text = include_str!("../../../tests/fixtures/hdag/all-events.yaml")
            .replace("condition: ALL", &format!("condition: {condition}"));
        crate::hdag::parse(text.as_bytes()).expect("valid").graph
    }

    #[test]
    fn any_deploys_on_the_first_firing_event_and_ignores_resolutions() {
        let g = graph("ANY");
        let s = g.service("failover").unwrap();
        assert_eq!(on_alert(s, "web-slow", true), OnAlert::Deploy);
        assert_eq!(on_alert(s, "web-slow", false), OnAlert::Resolved);
        assert!(
            missing(s, &BTreeSet::new()).is_empty(),
            "ANY waits for nothing"
        );
    }

    #[test]
    fn all_records_each_of_its_events_and_deploys_once_every_one_fires() {
        let g = graph("ALL");
        let s = g.service("failover").unwrap();
        assert_eq!(on_alert(s, "web-down", true), OnAlert::Ignore);
        assert_eq!(on_alert(s, "web-slow", true), OnAlert::Record);
        assert_eq!(on_alert(s, "web-slow", false), OnAlert::Record);
        let firing: BTreeSet<String> = ["web-slow".to_string()].into();
        assert_eq!(missing(s, &firing), ["web-erroring"]);
        let firing: BTreeSet<String> = ["web-slow".to_string(), "web-erroring".to_string()].into();
        assert!(missing(s, &firing).is_empty());
    }
}
