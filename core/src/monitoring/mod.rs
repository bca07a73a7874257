//! Monitoring: what smo publishes to Grafana and Prometheus, and what it reads back from
//! Prometheus and Alertmanager (SPEC §3, §4 `publish-dashboards`/`deploy-conditional`, §6).
//!
//! Everything here is pure (no I/O; smo's `monitoring::io` holds the clients), so the jobs that
//! talk to the outside world stay thin and every byte smo sends is covered by snapshot tests:
//! - [`render_graph_dashboards`], [`render_cluster_dashboard`], [`grafana_payload`]: Grafana
//!   dashboard models with deterministic uids, ready for `POST /api/dashboards/db`;
//! - [`alert_rules`], [`prometheus_rule`], [`rule_file`]: one alert rule per event of every
//!   conditional service, as a `PrometheusRule` object or as a plain Prometheus rule file;
//! - [`parse_alertmanager`]: the firing and resolved alerts of an Alertmanager webhook body (`POST /alerts`);
//! - [`rate_query`], [`parse_query_result`]: the scaler's request-rate query and its answer.
//!
//! Names follow [`crate::manifests`]: a service's Deployment is
//! `object_name(graph, service)` (`<graph>-<service>`) in the namespace named after the project.

mod alerts;
mod dashboards;
mod duration;
mod query;

pub use alerts::{
    AlertRule, DEFAULT_GRACE_PERIOD, MAX_WEBHOOK_BYTES, WebhookAlert, alert_rules,
    parse_alertmanager, prometheus_rule, rule_file, rule_group_name, try_alert_rules,
};
pub use dashboards::{
    Dashboard, DashboardSet, SCHEMA_VERSION, SMO_DASHBOARD_UID, cluster_dashboard_uid,
    dashboard_queries, grafana_payload, graph_dashboard_uid, render_cluster_dashboard,
    render_graph_dashboards, render_smo_dashboard, service_dashboard_uid,
};
pub use duration::prometheus_duration;
pub use query::{
    DEFAULT_WINDOW, MAX_FLEET_QUERY_BYTES, MAX_QUERY_BYTES, RangeSeries, fleet_rate_query,
    parse_fleet_rates, parse_query_result, parse_range_result, promql_string, rate_query,
    regex_escape,
};

/// Why a body from Prometheus or Alertmanager, or a value destined for them, was refused.
/// Every message names what was being read and, where there is one, the path of the bad field,
/// so that a 400 from `POST /alerts` or a failed scale tick tells the operator what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitoringError {
    /// Refused before parsing, so an oversized body costs no memory beyond itself.
    #[error("{what} is {size} bytes; the limit is {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    /// Not JSON at all (serde_json's message carries line and column).
    #[error("{what} is not valid JSON: {message}")]
    Json { what: &'static str, message: String },
    /// JSON, but not of the expected shape; `path` is like `alerts[2].labels.alertname`.
    #[error("{}", at_path(what, path, message))]
    Malformed {
        what: &'static str,
        path: String,
        message: String,
    },
    /// Prometheus answered `status: "error"`; its own words are kept.
    #[error("Prometheus refused the query ({error_type}): {message}")]
    Prometheus { error_type: String, message: String },
    /// The query evaluated to ±Inf: a broken query (e.g. a division by zero), never a rate.
    #[error("Prometheus returned {value} for the query; a rate must be a finite number")]
    NotFinite { value: String },
    /// Not a duration Prometheus would accept, even after normalising.
    #[error("invalid duration {value:?}: {reason}")]
    InvalidDuration { value: String, reason: String },
}

fn at_path(what: &str, path: &str, message: &str) -> String {
    if path.is_empty() {
        format!("{what}: {message}")
    } else {
        format!("{what}: {path}: {message}")
    }
}

/// FNV-1a over the parts, each followed by a NUL byte (which no name contains), so that
/// `("a-b", "c")` and `("a", "b-c")` differ. Stable across machines and releases (std's hasher
/// is not), which is what makes uids deterministic.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}
