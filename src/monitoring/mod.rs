//! Monitoring: what smo publishes to Grafana and Prometheus, and what it reads back from
//! Prometheus and Alertmanager (SPEC §3, §4 `publish-dashboards`/`deploy-conditional`, §6).
//!
//! The pure half lives in smo-core (re-exported here): everything but [`io`] is pure (no I/O), so the jobs that talk to the outside world stay thin and
//! every byte smo sends is covered by snapshot tests:
//! - [`render_graph_dashboards`], [`render_cluster_dashboard`], [`grafana_payload`]: Grafana
//!   dashboard models with deterministic uids, ready for `POST /api/dashboards/db`;
//! - [`alert_rules`], [`prometheus_rule`], [`rule_file`]: one alert rule per event of every
//!   conditional service, as a `PrometheusRule` object or as a plain Prometheus rule file;
//! - [`parse_alertmanager`]: the firing and resolved alerts of an Alertmanager webhook body (`POST /alerts`);
//! - [`rate_query`], [`parse_query_result`]: the scaler's request-rate query and its answer.
//!
//! Names follow [`crate::federation::manifests`]: a service's Deployment is
//! `object_name(graph, service)` (`<graph>-<service>`) in the namespace named after the project.

pub mod io;

#[cfg(test)]
mod tests;

pub use smo_core::monitoring::*;
