//! Alert rules for conditional services, and the Alertmanager webhook that reports them firing.
//!
//! A conditional service (`deployment.trigger.event`) is not deployed at first. Each of its
//! events becomes a Prometheus alerting rule; when Alertmanager posts the alert to
//! `POST /alerts`, the labels below (`service`, `graph`, `project`) say which service to deploy.
//! Rule labels override labels of the same name on the query's series, so they arrive intact.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::query::kind;
use super::{MonitoringError, fnv1a, prometheus_duration};
use crate::hdag::Graph;
use crate::manifests::{LABEL_GRAPH, LABEL_PROJECT};

/// `for` of an event whose `gracePeriod` cannot be read (only graphs that skipped validation
/// have one): a minute, so a typo neither fails the whole publish nor deploys at the first blip.
pub const DEFAULT_GRACE_PERIOD: &str = "1m";

/// Largest Alertmanager webhook body accepted (1 MiB); larger ones are refused unread.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// One Prometheus alerting rule, serialised as Prometheus and the `PrometheusRule` CRD want it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRule {
    /// The event id (SPEC §1): the `alertname` Alertmanager posts back.
    pub alert: String,
    /// The event's `promQuery`, trimmed.
    pub expr: String,
    /// The event's `gracePeriod`, normalised by [`prometheus_duration`]; `0s` when absent
    /// (Prometheus's own default: fire at the first evaluation).
    #[serde(rename = "for")]
    pub for_: String,
    /// `severity: critical`, `service`, `graph`, `project`.
    pub labels: BTreeMap<String, String>,
    /// `description` (the event's, or a generated one) and `summary`.
    pub annotations: BTreeMap<String, String>,
}

/// The rule group of a graph in smo's rule file: `smo-<project>-<graph>`, unique per graph.
pub fn rule_group_name(project: &str, graph_id: &str) -> String {
    format!("smo-{project}-{graph_id}")
}

/// One rule per event of every conditional service, in descriptor order. Never fails: a grace
/// period that cannot be read becomes [`DEFAULT_GRACE_PERIOD`] (use [`try_alert_rules`] to
/// refuse it instead).
///
/// `description` annotations are passed through verbatim, so a descriptor may use Prometheus
/// templates (`{{ $value }}`); a malformed template makes Prometheus refuse the rule.
pub fn alert_rules(project: &str, graph: &Graph) -> Vec<AlertRule> {
    rules(project, graph, |_, _| Ok(DEFAULT_GRACE_PERIOD.to_string()))
        .unwrap_or_else(|_| Vec::new())
}

/// [`alert_rules`], refusing a `gracePeriod` Prometheus would not accept even after normalising;
/// the error names its path (`services[2].deployment.trigger.event.events[0].condition.gracePeriod`).
pub fn try_alert_rules(project: &str, graph: &Graph) -> Result<Vec<AlertRule>, MonitoringError> {
    rules(project, graph, |path, e| {
        Err(MonitoringError::Malformed {
            what: "graph",
            path,
            message: e.to_string(),
        })
    })
}

fn rules(
    project: &str,
    graph: &Graph,
    on_bad_grace: impl Fn(String, MonitoringError) -> Result<String, MonitoringError>,
) -> Result<Vec<AlertRule>, MonitoringError> {
    let mut out = Vec::new();
    for (i, service) in graph.services.iter().enumerate() {
        let Some(trigger) = &service.deployment.trigger.event else {
            continue;
        };
        for (j, event) in trigger.events.iter().enumerate() {
            let c = &event.condition;
            let for_ = match &c.grace_period {
                None => "0s".to_string(),
                Some(g) => match prometheus_duration(g) {
                    Ok(d) => d,
                    Err(e) => on_bad_grace(
                        format!(
                            "services[{i}].deployment.trigger.event.events[{j}].condition.gracePeriod"
                        ),
                        e,
                    )?,
                },
            };
            let labels = BTreeMap::from([
                ("severity".to_string(), "critical".to_string()),
                ("service".to_string(), service.id.clone()),
                ("graph".to_string(), graph.id.clone()),
                ("project".to_string(), project.to_string()),
            ]);
            let description = c
                .description
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!(
                        "Event {} of conditional service {} (graph {}, project {project})",
                        event.id, service.id, graph.id
                    )
                });
            let summary = format!(
                "{}: smo deploys {} of {project}/{}",
                event.id, service.id, graph.id
            );
            out.push(AlertRule {
                alert: event.id.clone(),
                expr: c.prom_query.trim().to_string(),
                for_,
                labels,
                annotations: BTreeMap::from([
                    ("description".to_string(), description),
                    ("summary".to_string(), summary),
                ]),
            });
        }
    }
    Ok(out)
}

/// The graph's rules as a `monitoring.coreos.com/v1` `PrometheusRule` for the Prometheus
/// operator, in one group named `group`. Labelled like every object smo writes (`smo.io/graph`,
/// `smo.io/project`) so removal finds it by selector. A graph without conditional services gives
/// an empty group, which the CRD and Prometheus accept; the caller may delete the object instead.
///
/// The operator only loads rules its `Prometheus` selects (`ruleSelector`, often
/// `release: <helm release>`): add such labels to `metadata.labels` of the returned value.
pub fn prometheus_rule(
    project: &str,
    graph: &Graph,
    name: &str,
    namespace: &str,
    group: &str,
) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "smo",
                LABEL_PROJECT: project,
                LABEL_GRAPH: graph.id,
            },
        },
        "spec": {
            "groups": [{ "name": group, "rules": alert_rules(project, graph) }],
        },
    })
}

#[derive(Serialize)]
struct RuleFile<'a> {
    groups: Vec<RuleGroup<'a>>,
}

#[derive(Serialize)]
struct RuleGroup<'a> {
    name: &'a str,
    rules: Vec<&'a AlertRule>,
}

/// A plain Prometheus rule file (`groups: [{name, rules}]`) for a Prometheus without the
/// operator: the caller writes it where `rule_files` points and POSTs `/-/reload`. Use one
/// group per graph, named by [`rule_group_name`].
///
/// Prometheus refuses a file that repeats a group name, so groups of the same name are merged
/// (in order, at the first one's place); an empty name becomes `smo`. Every group, and so the
/// whole file, fails to load if one `expr` is not valid PromQL: writing one file per graph keeps
/// a bad descriptor from disabling the others' rules.
pub fn rule_file(groups: &[(String, Vec<AlertRule>)]) -> String {
    let mut merged: Vec<RuleGroup<'_>> = Vec::new();
    for (name, rules) in groups {
        let name = if name.trim().is_empty() {
            "smo"
        } else {
            name.as_str()
        };
        match merged.iter_mut().find(|g| g.name == name) {
            Some(g) => g.rules.extend(rules),
            None => merged.push(RuleGroup {
                name,
                rules: rules.iter().collect(),
            }),
        }
    }
    let yaml = serde_norway::to_string(&RuleFile { groups: merged })
        // Serialising strings and maps of strings cannot fail; keep an empty file if it did.
        .unwrap_or_else(|_| "groups: []\n".to_string());
    format!(
        "# Generated by smo: alert rules of conditional services. Edits are overwritten.\n{yaml}"
    )
}

/// An alert reported by Alertmanager (firing, or resolved when the receiver has
/// `send_resolved`), with the labels smo acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookAlert {
    /// The rule's `alert`, i.e. the event id.
    pub alertname: String,
    /// `firing` (true) or `resolved` (false): an `ALL` service needs every event firing at once.
    pub firing: bool,
    pub project: Option<String>,
    pub graph: Option<String>,
    /// The conditional service to deploy.
    pub service: Option<String>,
    /// Alertmanager's fingerprint of the label set; when absent (Alertmanager before 0.20), a
    /// stable hash of the labels, so it can still key idempotency.
    pub fingerprint: String,
    /// `startsAt` as sent (RFC 3339), when present: with the fingerprint it tells a repeat of the
    /// same firing from a new one.
    pub starts_at: Option<String>,
}

/// The alerts of an Alertmanager webhook body (`{version: "4", status, alerts: [...]}`), firing
/// and resolved, in body order.
///
/// Refused, with the path of the problem: bodies over [`MAX_WEBHOOK_BYTES`], non-JSON, a
/// missing `alerts` list, an alert without `labels.alertname`, non-string label values, and an
/// alert status other than `firing`/`resolved` (an alert without one takes the body's
/// `status`). Empty `project`/`graph`/`service` labels read as absent.
pub fn parse_alertmanager(body: &[u8]) -> Result<Vec<WebhookAlert>, MonitoringError> {
    const WHAT: &str = "Alertmanager webhook";
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(MonitoringError::TooLarge {
            what: WHAT,
            size: body.len(),
            limit: MAX_WEBHOOK_BYTES,
        });
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| MonitoringError::Json {
        what: WHAT,
        message: e.to_string(),
    })?;
    let malformed = |path: String, message: String| MonitoringError::Malformed {
        what: WHAT,
        path,
        message,
    };
    let Value::Object(top) = &v else {
        return Err(malformed(
            String::new(),
            format!("expected an object with an alerts list, got {}", kind(&v)),
        ));
    };
    let group_status = top.get("status").and_then(Value::as_str);
    let alerts = match top.get("alerts") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(malformed(
                "alerts".into(),
                format!("expected a list, got {}", kind(other)),
            ));
        }
        None => return Err(malformed("alerts".into(), "missing".into())),
    };
    let mut out = Vec::new();
    for (i, alert) in alerts.iter().enumerate() {
        let at = |field: &str| format!("alerts[{i}]{field}");
        let Value::Object(alert) = alert else {
            return Err(malformed(
                at(""),
                format!("expected an object, got {}", kind(alert)),
            ));
        };
        let status = match alert.get("status") {
            Some(Value::String(s)) => s.as_str(),
            None => group_status.ok_or_else(|| {
                malformed(at(".status"), "missing (and no status on the body)".into())
            })?,
            Some(other) => {
                return Err(malformed(
                    at(".status"),
                    format!("expected a string, got {}", kind(other)),
                ));
            }
        };
        let firing = match status {
            "firing" => true,
            "resolved" => false,
            other => {
                return Err(malformed(
                    at(".status"),
                    format!("expected \"firing\" or \"resolved\", got {other:?}"),
                ));
            }
        };
        let labels = match alert.get("labels") {
            Some(Value::Object(l)) => l,
            Some(other) => {
                return Err(malformed(
                    at(".labels"),
                    format!("expected an object, got {}", kind(other)),
                ));
            }
            None => return Err(malformed(at(".labels"), "missing".into())),
        };
        let mut strings = BTreeMap::new();
        for (k, v) in labels {
            let Value::String(s) = v else {
                return Err(malformed(
                    at(&format!(".labels.{k}")),
                    format!("expected a string, got {}", kind(v)),
                ));
            };
            strings.insert(k.as_str(), s.as_str());
        }
        let alertname = match strings.get("alertname") {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                return Err(malformed(
                    at(".labels.alertname"),
                    "missing or empty".into(),
                ));
            }
        };
        let label = |k: &str| {
            strings
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
        };
        let fingerprint = match alert.get("fingerprint").and_then(Value::as_str) {
            Some(f) if !f.is_empty() => f.to_string(),
            _ => {
                let parts: Vec<&str> = strings.iter().flat_map(|(k, v)| [*k, *v]).collect();
                format!("smo-{:016x}", fnv1a(&parts))
            }
        };
        out.push(WebhookAlert {
            firing,
            project: label("project"),
            graph: label("graph"),
            service: label("service"),
            alertname,
            fingerprint,
            starts_at: alert
                .get("startsAt")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hdag::parse;

    fn graph(grace: &str) -> Graph {
        let yaml = format!(
            r#"
hdaGraph:
  id: g
  version: "1"
  services:
    - id: web
      deployment:
        trigger: {{ auto: {{ dependencies: [] }} }}
      artifact: {{ ociImage: "oci://r/p/web" }}
    - id: alarm
      deployment:
        trigger:
          event:
            events:
              - id: hot
                condition: {{ promQuery: " max(t) > 80 ", gracePeriod: "{grace}" }}
              - id: quiet
                condition: {{ promQuery: "absent(up)" }}
      artifact: {{ ociImage: "oci://r/p/alarm" }}
"#
        );
        parse(yaml.as_bytes()).expect("valid graph").graph
    }

    #[test]
    fn one_rule_per_event_with_normalised_for() {
        let rules = alert_rules("proj", &graph("30s1m"));
        assert_eq!(rules.len(), 2);
        let hot = &rules[0];
        assert_eq!(hot.alert, "hot");
        assert_eq!(hot.expr, "max(t) > 80");
        assert_eq!(hot.for_, "1m30s");
        assert_eq!(
            hot.labels,
            BTreeMap::from([
                ("graph".into(), "g".into()),
                ("project".into(), "proj".into()),
                ("service".into(), "alarm".into()),
                ("severity".into(), "critical".into()),
            ])
        );
        assert!(hot.annotations["description"].contains("hot"));
        assert_eq!(rules[1].for_, "0s");
        let json = serde_json::to_value(hot).expect("json");
        assert_eq!(json["for"], "1m30s");
        assert!(json.get("for_").is_none());
    }

    #[test]
    fn unreadable_grace_periods_fall_back_or_are_refused() {
        let mut g = graph("1m");
        if let Some(e) = g.services[1].deployment.trigger.event.as_mut() {
            e.events[0].condition.grace_period = Some("two minutes".into());
        }
        assert_eq!(alert_rules("p", &g)[0].for_, DEFAULT_GRACE_PERIOD);
        let e = try_alert_rules("p", &g).expect_err("refused");
        assert!(
            e.to_string()
                .contains("services[1].deployment.trigger.event.events[0].condition.gracePeriod"),
            "{e}"
        );
        assert_eq!(try_alert_rules("p", &graph("2m")).map(|r| r.len()), Ok(2));
    }

    #[test]
    fn rule_file_merges_repeated_groups() {
        let rules = alert_rules("p", &graph("1m"));
        let text = rule_file(&[
            (rule_group_name("p", "g"), rules.clone()),
            (String::new(), vec![]),
            (rule_group_name("p", "g"), rules[..1].to_vec()),
        ]);
        let v: Value = serde_norway::from_str(&text).expect("yaml");
        let groups = v["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0]["name"], "smo-p-g");
        assert_eq!(groups[0]["rules"].as_array().map(Vec::len), Some(3));
        assert_eq!(groups[1]["name"], "smo");
        assert_eq!(groups[0]["rules"][0]["for"], "1m");
        assert_eq!(rule_file(&[]).lines().last(), Some("groups: []"));
    }

    #[test]
    fn webhook_alerts_keep_their_status() {
        let body = br#"{
          "version": "4", "status": "firing", "receiver": "smo", "groupKey": "{}:{}",
          "alerts": [
            {"status": "firing", "labels": {"alertname": "hot", "service": "alarm", "graph": "g", "project": "p", "severity": "critical"},
             "annotations": {"description": "x"}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "abc123"},
            {"status": "resolved", "labels": {"alertname": "cold", "service": "alarm"}, "fingerprint": "def"},
            {"labels": {"alertname": "bare", "service": ""}}
          ]
        }"#;
        let alerts = parse_alertmanager(body).expect("parsed");
        assert_eq!(alerts.len(), 3);
        assert_eq!(
            alerts[0],
            WebhookAlert {
                alertname: "hot".into(),
                firing: true,
                project: Some("p".into()),
                graph: Some("g".into()),
                service: Some("alarm".into()),
                fingerprint: "abc123".into(),
                starts_at: Some("2026-01-01T00:00:00Z".into()),
            }
        );
        assert_eq!(
            (alerts[1].alertname.as_str(), alerts[1].firing),
            ("cold", false)
        );
        // No status of its own: the body's; no fingerprint: a stable one; empty label: absent.
        assert_eq!(
            (alerts[2].alertname.as_str(), alerts[2].firing),
            ("bare", true)
        );
        assert_eq!(alerts[2].service, None);
        assert!(alerts[2].fingerprint.starts_with("smo-"));
        assert_eq!(
            parse_alertmanager(body).expect("again")[2].fingerprint,
            alerts[2].fingerprint
        );
        assert_eq!(parse_alertmanager(br#"{"alerts": []}"#), Ok(vec![]));
    }

    #[test]
    fn malformed_webhooks_are_refused_with_a_path() {
        let cases: [(&[u8], &str); 9] = [
            (b"{", "not valid JSON"),
            (b"[]", "webhook: expected an object with an alerts list"),
            (br#"{"status": "firing"}"#, "alerts: missing"),
            (br#"{"alerts": {}}"#, "alerts: expected a list"),
            (br#"{"alerts": [1]}"#, "alerts[0]: expected an object"),
            (
                br#"{"alerts": [{"labels": {"alertname": "a"}}]}"#,
                "alerts[0].status: missing",
            ),
            (
                br#"{"alerts": [{"status": "pending", "labels": {"alertname": "a"}}]}"#,
                "alerts[0].status: expected \"firing\" or \"resolved\"",
            ),
            (
                br#"{"alerts": [{"status": "firing", "labels": {"service": "s"}}]}"#,
                "alerts[0].labels.alertname: missing",
            ),
            (
                br#"{"alerts": [{"status": "firing", "labels": {"alertname": "a", "n": 1}}]}"#,
                "alerts[0].labels.n: expected a string",
            ),
        ];
        for (body, want) in cases {
            let e = parse_alertmanager(body).expect_err(want).to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        let mut big = br#"{"alerts": []}"#.to_vec();
        big.resize(MAX_WEBHOOK_BYTES + 1, b' ');
        let e = parse_alertmanager(&big).expect_err("too large");
        assert!(matches!(e, MonitoringError::TooLarge { .. }), "{e}");
    }
}
