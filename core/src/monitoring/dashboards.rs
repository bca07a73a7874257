//! Grafana dashboards (SPEC §6): one per graph (with a `service` variable), one per service, one
//! per cluster.
//!
//! Uids are hashes of the names, so re-publishing overwrites the same dashboard and removal can
//! compute what to delete without asking Grafana. Every query uses a `datasource` variable, so
//! the dashboards work with whatever Prometheus data source the Grafana has.

use serde::Serialize;
use serde_json::{Value, json};

use super::fnv1a;
use super::query::{promql_string, regex_escape};
use crate::hdag::Graph;
use crate::manifests::object_name;

/// Grafana's dashboard JSON schema version the models are written in (Grafana 10.x/11.x
/// migrate it forward on load).
pub const SCHEMA_VERSION: u32 = 39;

/// Rate window of the dashboards' `rate()`s: four scrapes at Prometheus's default 15 s.
const WINDOW: &str = "1m";

/// A dashboard ready for Grafana.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    /// Deterministic, ≤ 40 characters (Grafana's limit): `smo-<kind>-<16 hex>`.
    pub uid: String,
    pub title: String,
    /// The dashboard JSON model (what goes under `dashboard` in `POST /api/dashboards/db`).
    pub model: Value,
}

/// The dashboards of one graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardSet {
    /// All services, chosen with the `service` variable.
    pub graph: Dashboard,
    /// One per service, in descriptor order.
    pub services: Vec<Dashboard>,
}

impl DashboardSet {
    /// The graph's dashboard, then the services'.
    pub fn iter(&self) -> impl Iterator<Item = &Dashboard> {
        std::iter::once(&self.graph).chain(&self.services)
    }
}

/// Uid of a graph's dashboard.
pub fn graph_dashboard_uid(project: &str, graph_id: &str) -> String {
    format!("smo-g-{:016x}", fnv1a(&["graph", project, graph_id]))
}

/// Uid of a service's dashboard.
pub fn service_dashboard_uid(project: &str, graph_id: &str, service_id: &str) -> String {
    format!(
        "smo-s-{:016x}",
        fnv1a(&["service", project, graph_id, service_id])
    )
}

/// Uid of a cluster's dashboard.
pub fn cluster_dashboard_uid(cluster: &str) -> String {
    format!("smo-c-{:016x}", fnv1a(&["cluster", cluster]))
}

/// The body of `POST /api/dashboards/db`: overwrite whatever has the same uid (publishing is
/// idempotent), in `folder_uid` when given (Grafana's General folder otherwise).
pub fn grafana_payload(d: &Dashboard, folder_uid: Option<&str>) -> Value {
    let mut body = json!({
        "dashboard": d.model,
        "overwrite": true,
        "message": format!("Published by smo: {}", d.title),
    });
    if let Some(folder) = folder_uid {
        body["folderUid"] = json!(folder);
    }
    body
}

/// The label matchers that pick the monitored workloads out of the metrics: either every
/// service selected in the `$service` variable or one fixed Deployment.
struct Scope {
    /// `namespace="<project>"`.
    namespace: String,
    /// Matcher on kube-state-metrics' `deployment` label.
    deployment: String,
    /// Matcher on the flask exporter's `service` label (the Deployment name).
    service: String,
    /// Matcher on cAdvisor's `pod` label, restricted to real containers: cAdvisor also reports
    /// the pod's own cgroup (`container=""`) and the pause container (`POD`), which would count
    /// everything twice.
    pod: String,
}

/// Pods of a Deployment are `<deployment>-<template hash>-<suffix>`. Matching exactly two more
/// segments (rather than `<deployment>-.*`) keeps `g-a` from also matching the pods of `g-a-b`.
const POD_SUFFIX: &str = "-[a-z0-9]+-[a-z0-9]+";

impl Scope {
    fn variable(project: &str) -> Self {
        Scope {
            namespace: format!("namespace={}", promql_string(project)),
            deployment: "deployment=~\"$service\"".to_string(),
            service: "service=~\"$service\"".to_string(),
            pod: format!("pod=~\"${{service}}{POD_SUFFIX}\",container!=\"\",container!=\"POD\""),
        }
    }

    fn fixed(project: &str, deployment: &str) -> Self {
        Scope {
            namespace: format!("namespace={}", promql_string(project)),
            deployment: format!("deployment={}", promql_string(deployment)),
            service: format!("service={}", promql_string(deployment)),
            pod: format!(
                "pod=~{},container!=\"\",container!=\"POD\"",
                promql_string(&format!("{}{POD_SUFFIX}", regex_escape(deployment)))
            ),
        }
    }
}

/// What one panel shows.
struct PanelSpec {
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    /// Percentages are 0..1 (`percentunit`).
    ratio: bool,
    targets: Vec<(String, &'static str)>,
}

fn workload_panels(s: &Scope) -> Vec<PanelSpec> {
    let (ns, pod) = (&s.namespace, &s.pod);
    vec![
        PanelSpec {
            title: "Ready pods",
            description: "Ready replicas against the desired count (kube-state-metrics).",
            unit: "short",
            ratio: false,
            targets: vec![
                (
                    format!(
                        "sum by (deployment) (kube_deployment_status_replicas_ready{{{ns},{}}})",
                        s.deployment
                    ),
                    "{{deployment}} ready",
                ),
                (
                    format!(
                        "sum by (deployment) (kube_deployment_spec_replicas{{{ns},{}}})",
                        s.deployment
                    ),
                    "{{deployment}} desired",
                ),
            ],
        },
        PanelSpec {
            title: "Request rate",
            description: "Requests per second: the λ smo's scaler sizes replicas for.",
            unit: "reqps",
            ratio: false,
            targets: vec![(
                format!(
                    "sum by (service) (rate(flask_http_request_total{{{ns},{}}}[{WINDOW}]))",
                    s.service
                ),
                "{{service}}",
            )],
        },
        PanelSpec {
            title: "CPU utilisation vs limit",
            description: "CPU used as a fraction of the pod's CPU limit (quota / period); \
                          near 100% the pod is throttled.",
            unit: "percentunit",
            ratio: true,
            targets: vec![(
                format!(
                    "sum by (pod) (rate(container_cpu_usage_seconds_total{{{ns},{pod}}}[{WINDOW}])) \
                     / sum by (pod) (container_spec_cpu_quota{{{ns},{pod}}} \
                     / container_spec_cpu_period{{{ns},{pod}}})"
                ),
                "{{pod}}",
            )],
        },
        PanelSpec {
            title: "Memory working set",
            description: "Memory the kernel cannot reclaim: what the OOM killer compares \
                          with the limit.",
            unit: "bytes",
            ratio: false,
            targets: vec![(
                format!("sum by (pod) (container_memory_working_set_bytes{{{ns},{pod}}})"),
                "{{pod}}",
            )],
        },
        PanelSpec {
            title: "CPU throttling",
            description: "Fraction of CFS periods in which the pod was throttled: a CPU \
                          limit too low for the load.",
            unit: "percentunit",
            ratio: true,
            targets: vec![(
                format!(
                    "sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{{{ns},{pod}}}[{WINDOW}])) \
                     / sum by (pod) (rate(container_cpu_cfs_periods_total{{{ns},{pod}}}[{WINDOW}]))"
                ),
                "{{pod}}",
            )],
        },
    ]
}

fn node_panels(cluster: &str) -> Vec<PanelSpec> {
    let c = format!("cluster={}", promql_string(cluster));
    let fs = format!("{c},fstype!~\"tmpfs|overlay|squashfs|ramfs|nsfs\"");
    vec![
        PanelSpec {
            title: "Node CPU utilisation",
            description: "Fraction of CPU time not idle, per node.",
            unit: "percentunit",
            ratio: true,
            targets: vec![(
                format!(
                    "1 - avg by (instance) (rate(node_cpu_seconds_total{{{c},mode=\"idle\"}}[{WINDOW}]))"
                ),
                "{{instance}}",
            )],
        },
        PanelSpec {
            title: "Node memory used",
            description: "1 − MemAvailable / MemTotal, per node.",
            unit: "percentunit",
            ratio: true,
            targets: vec![(
                format!(
                    "1 - sum by (instance) (node_memory_MemAvailable_bytes{{{c}}}) \
                     / sum by (instance) (node_memory_MemTotal_bytes{{{c}}})"
                ),
                "{{instance}}",
            )],
        },
        PanelSpec {
            title: "Node disk used",
            description: "1 − available / size, per node and mount point (real file systems).",
            unit: "percentunit",
            ratio: true,
            targets: vec![(
                format!(
                    "1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}"
                ),
                "{{instance}} {{mountpoint}}",
            )],
        },
        PanelSpec {
            title: "Node network",
            description: "Bytes per second received and sent, per node (loopback excluded).",
            unit: "Bps",
            ratio: false,
            targets: vec![
                (
                    format!(
                        "sum by (instance) (rate(node_network_receive_bytes_total{{{c},device!=\"lo\"}}[{WINDOW}]))"
                    ),
                    "{{instance}} received",
                ),
                (
                    format!(
                        "sum by (instance) (rate(node_network_transmit_bytes_total{{{c},device!=\"lo\"}}[{WINDOW}]))"
                    ),
                    "{{instance}} sent",
                ),
            ],
        },
    ]
}

/// Time series panels, two per row, ids from 1.
fn panels(specs: Vec<PanelSpec>) -> Value {
    let panels: Vec<Value> = specs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let targets: Vec<Value> = p
                .targets
                .into_iter()
                .zip('A'..='Z')
                .map(|((expr, legend), ref_id)| {
                    json!({
                        "datasource": datasource(),
                        "expr": expr,
                        "legendFormat": legend,
                        "refId": ref_id.to_string(),
                        "range": true,
                    })
                })
                .collect();
            let mut defaults = json!({ "unit": p.unit, "min": 0 });
            if p.ratio {
                defaults["max"] = json!(1);
            }
            json!({
                "id": i + 1,
                "type": "timeseries",
                "title": p.title,
                "description": p.description,
                "datasource": datasource(),
                "gridPos": { "h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8 },
                "fieldConfig": { "defaults": defaults, "overrides": [] },
                "options": {
                    "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                    "tooltip": { "mode": "multi", "sort": "desc" },
                },
                "targets": targets,
            })
        })
        .collect();
    Value::Array(panels)
}

fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

fn datasource_variable() -> Value {
    json!({
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": false,
        "multi": false,
        "options": [],
        "refresh": 1,
        "regex": "",
    })
}

/// `service`: the graph's Deployments, all selected at first. Grafana joins a multi-value
/// selection into a regex `(a|b)`, hence `=~` in every matcher.
fn service_variable(deployments: &[String]) -> Value {
    let mut options = vec![json!({ "selected": true, "text": "All", "value": "$__all" })];
    options.extend(
        deployments
            .iter()
            .map(|d| json!({ "selected": false, "text": d, "value": d })),
    );
    json!({
        "name": "service",
        "label": "Service",
        "type": "custom",
        "query": deployments.join(","),
        "current": { "selected": true, "text": ["All"], "value": ["$__all"] },
        "hide": 0,
        "includeAll": true,
        "multi": true,
        "options": options,
        "skipUrlSync": false,
    })
}

fn model(
    uid: &str,
    title: &str,
    description: &str,
    tags: &[&str],
    variables: Vec<Value>,
    links: Vec<Value>,
    specs: Vec<PanelSpec>,
) -> Value {
    json!({
        "id": null,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "editable": true,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": { "from": "now-1h", "to": "now" },
        "annotations": { "list": [] },
        "templating": { "list": variables },
        "links": links,
        "panels": panels(specs),
    })
}

/// The graph's dashboard and one per service, in namespace `project`.
pub fn render_graph_dashboards(project: &str, graph: &Graph) -> DashboardSet {
    let g = graph.id.as_str();
    let tags = ["smo", project, g];
    // Every dashboard of the graph lists the others, by their shared tags.
    let links = vec![json!({
        "type": "dashboards",
        "title": "Graph dashboards",
        "tags": tags,
        "asDropdown": true,
        "includeVars": false,
        "keepTime": true,
    })];
    let deployments: Vec<String> = graph
        .services
        .iter()
        .map(|s| object_name(g, &s.id))
        .collect();

    let uid = graph_dashboard_uid(project, g);
    let title = format!("smo / {project} / {g}");
    let graph_dashboard = Dashboard {
        model: model(
            &uid,
            &title,
            &format!(
                "Services of graph {g} in project {project}. Generated by smo; edits are \
                 overwritten when smo publishes again."
            ),
            &tags,
            vec![datasource_variable(), service_variable(&deployments)],
            links.clone(),
            workload_panels(&Scope::variable(project)),
        ),
        uid,
        title,
    };

    let services = graph
        .services
        .iter()
        .zip(&deployments)
        .map(|(s, deployment)| {
            let uid = service_dashboard_uid(project, g, &s.id);
            let title = format!("smo / {project} / {g} / {}", s.id);
            let conditional = if s.is_conditional() {
                " It is conditional: deployed when one of its events fires, empty until then."
            } else {
                ""
            };
            Dashboard {
                model: model(
                    &uid,
                    &title,
                    &format!(
                        "Service {} (Deployment {deployment}) of graph {g} in project {project}.\
                         {conditional} Generated by smo; edits are overwritten when smo publishes \
                         again.",
                        s.id
                    ),
                    &["smo", project, g, &s.id],
                    vec![datasource_variable()],
                    links.clone(),
                    workload_panels(&Scope::fixed(project, deployment)),
                ),
                uid,
                title,
            }
        })
        .collect();

    DashboardSet {
        graph: graph_dashboard,
        services,
    }
}

/// A member cluster's nodes: CPU, memory, disk and network from node_exporter, picked by the
/// `cluster` label the federation's Prometheus puts on each member's series.
pub fn render_cluster_dashboard(cluster: &str) -> Dashboard {
    let uid = cluster_dashboard_uid(cluster);
    let title = format!("smo / cluster / {cluster}");
    Dashboard {
        model: model(
            &uid,
            &title,
            &format!(
                "Nodes of member cluster {cluster} (series with cluster=\"{cluster}\"). Generated by \
                 smo; edits are overwritten when smo publishes again."
            ),
            &["smo", "cluster", cluster],
            vec![datasource_variable()],
            vec![],
            node_panels(cluster),
        ),
        uid,
        title,
    }
}

/// Uid of smo's own dashboard (fixed: there is one smo per Grafana, or its copies agree).
pub const SMO_DASHBOARD_UID: &str = "smo-self";

/// smo's own health: the job queue, the workers, the API and the optimizers, from the series of
/// [`crate::metrics`]. Queue gauges are read from the database by every API replica, hence
/// `max`; counters and histograms come from each pod, hence `sum`. The chart ships this model
/// (`charts/smo/dashboards/smo.json`, regenerated by `smo dashboard`).
pub fn render_smo_dashboard() -> Dashboard {
    let q = |expr: &str, legend: &'static str| (expr.to_string(), legend);
    let p99 = |family: &str, by: &str| {
        format!("histogram_quantile(0.99, sum by (le, {by}) (rate({family}_bucket[{WINDOW}])))")
    };
    let p50 = |family: &str, by: &str| {
        format!("histogram_quantile(0.5, sum by (le, {by}) (rate({family}_bucket[{WINDOW}])))")
    };
    let specs = vec![
        PanelSpec {
            title: "Queue depth",
            description: "Jobs waiting to run (queued or retrying) per kind.",
            unit: "short",
            ratio: false,
            targets: vec![q("max by (kind) (smo_queue_depth)", "{{kind}}")],
        },
        PanelSpec {
            title: "Oldest waiting job",
            description: "Age of the oldest runnable queued job per kind: growing means the \
                          workers do not keep up.",
            unit: "s",
            ratio: false,
            targets: vec![q("max by (kind) (smo_queue_oldest_seconds)", "{{kind}}")],
        },
        PanelSpec {
            title: "Jobs per second",
            description: "Enqueued and succeeded jobs per second, all kinds.",
            unit: "ops",
            ratio: false,
            targets: vec![
                q(
                    &format!("sum by (kind) (rate(smo_jobs_enqueued_total[{WINDOW}]))"),
                    "enqueued {{kind}}",
                ),
                q(
                    &format!("sum by (kind) (rate(smo_jobs_succeeded_total[{WINDOW}]))"),
                    "succeeded {{kind}}",
                ),
            ],
        },
        PanelSpec {
            title: "Failures",
            description: "Failed attempts per second (each retry counts), jobs that died \
                          (permanent error or last attempt) in the last 5 minutes, jobs \
                          snoozed per second (waiting for a graph lock; no attempt spent), and \
                          attempts abandoned because their worker's lease lapsed (fenced).",
            unit: "short",
            ratio: false,
            targets: vec![
                q(
                    &format!("sum by (kind) (rate(smo_jobs_failed_total[{WINDOW}]))"),
                    "failed/s {{kind}}",
                ),
                q(
                    "sum by (kind) (increase(smo_jobs_dead_total[5m]))",
                    "dead {{kind}}",
                ),
                q(
                    &format!("sum by (kind) (rate(smo_jobs_snoozed_total[{WINDOW}]))"),
                    "snoozed/s {{kind}}",
                ),
                q(
                    "sum by (kind) (increase(smo_jobs_fenced_total[5m]))",
                    "fenced {{kind}}",
                ),
            ],
        },
        PanelSpec {
            title: "Job duration",
            description: "Run time of one attempt per kind, median and 99th percentile.",
            unit: "s",
            ratio: false,
            targets: vec![
                q(&p50("smo_job_duration_seconds", "kind"), "p50 {{kind}}"),
                q(&p99("smo_job_duration_seconds", "kind"), "p99 {{kind}}"),
            ],
        },
        PanelSpec {
            title: "Workers and scheduler",
            description: "Workers with a live heartbeat, attempts they start per second, and cron \
                          slots the schedulers fired in the last 5 minutes.",
            unit: "short",
            ratio: false,
            targets: vec![
                q("max(smo_workers_alive)", "alive"),
                q(
                    &format!("sum(rate(smo_jobs_started_total[{WINDOW}]))"),
                    "started/s",
                ),
                q(
                    "sum by (entry) (increase(smo_cron_fired_total[5m]))",
                    "cron {{entry}} /5m",
                ),
            ],
        },
        PanelSpec {
            title: "API requests",
            description: "Requests per second by status.",
            unit: "reqps",
            ratio: false,
            targets: vec![q(
                &format!(
                    "sum by (status) (rate(smo_http_request_duration_seconds_count[{WINDOW}]))"
                ),
                "{{status}}",
            )],
        },
        PanelSpec {
            title: "API latency (p99)",
            description: "99th percentile request latency per route template.",
            unit: "s",
            ratio: false,
            targets: vec![q(
                &p99("smo_http_request_duration_seconds", "route"),
                "{{route}}",
            )],
        },
        PanelSpec {
            title: "Optimizer solve time",
            description: "Placement, re-placement, failover and scaling solves: median and 99th percentile.",
            unit: "s",
            ratio: false,
            targets: vec![
                q(
                    &p50("smo_solve_duration_seconds", "problem"),
                    "p50 {{problem}}",
                ),
                q(
                    &p99("smo_solve_duration_seconds", "problem"),
                    "p99 {{problem}}",
                ),
            ],
        },
        PanelSpec {
            title: "Failover",
            description: "Clusters lost, and graphs moved off them, stranded (no room left) and moved back once their cluster recovered, per interval.",
            unit: "short",
            ratio: false,
            targets: vec![q(
                &format!("sum by (event) (increase(smo_failover_total[{WINDOW}]))"),
                "{{event}}",
            )],
        },
    ];
    let title = "smo / smo itself".to_string();
    Dashboard {
        model: model(
            SMO_DASHBOARD_UID,
            &title,
            "The job queue, workers, API and optimizers of smo. Generated by `smo dashboard`.",
            &["smo", "smo-self"],
            vec![datasource_variable()],
            vec![],
            specs,
        ),
        uid: SMO_DASHBOARD_UID.to_string(),
        title,
    }
}

/// Every PromQL expression of a dashboard model, in panel order (for checks against Prometheus).
pub fn dashboard_queries(model: &Value) -> Vec<String> {
    model["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_short_distinct_and_stable() {
        let uids = [
            graph_dashboard_uid("p", "g"),
            service_dashboard_uid("p", "g", "s"),
            cluster_dashboard_uid("c"),
            graph_dashboard_uid("p-g", ""),
            graph_dashboard_uid("p", "g-"),
            service_dashboard_uid("p", "g-s", ""),
        ];
        for (i, a) in uids.iter().enumerate() {
            assert!(a.len() <= 40 && a.starts_with("smo-"), "{a}");
            for b in &uids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let long = "x".repeat(300);
        assert_eq!(service_dashboard_uid(&long, &long, &long).len(), 22);
    }

    #[test]
    fn payload_overwrites_and_names_the_folder() {
        let d = render_cluster_dashboard("edge-1");
        let p = grafana_payload(&d, Some("smo"));
        assert_eq!(p["overwrite"], true);
        assert_eq!(p["folderUid"], "smo");
        assert_eq!(p["dashboard"]["uid"], d.uid.as_str());
        assert!(grafana_payload(&d, None).get("folderUid").is_none());
    }

    #[test]
    fn fixed_scope_escapes_names() {
        let s = Scope::fixed("p\"q", "a.b");
        assert_eq!(s.namespace, r#"namespace="p\"q""#);
        assert!(s.pod.starts_with(r#"pod=~"a\\.b-[a-z0-9]+"#), "{}", s.pod);
    }
}
