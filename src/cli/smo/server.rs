//! `smo run`: the server roles, their flags laid over the config file's settings.

use std::{path::PathBuf, time::Duration};

use crate::{
    cli::parse_duration,
    settings::{FileSettings, ServerSettings},
};

use super::parse_duration_ms;
use crate::credentials::Secret;
use crate::server::{self, Role};

#[derive(clap::Args)]
pub(super) struct RunArgs {
    /// Roles to run (repeatable or comma-separated).
    #[arg(
        long = "role",
        value_enum,
        value_delimiter = ',',
        default_value = "all"
    )]
    roles: Vec<Role>,
    /// API listen address.
    #[arg(long, env = "SMO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Also serve this process's metrics on this address (GET /metrics): for worker and
    /// scheduler processes, whose series the API's /metrics cannot carry. [default: none]
    #[arg(long, env = "SMO_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Jobs this worker runs at once.
    #[arg(long, env = "SMO_WORKER_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// Database connections of this process (default: derived from its roles and concurrency).
    #[arg(long, env = "SMO_DB_POOL_SIZE")]
    db_pool_size: Option<u32>,
    /// Time a client has to send a request's headers; also closes keep-alive connections idle
    /// that long.
    #[arg(long, env = "SMO_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration_ms)]
    http_header_timeout: Duration,
    /// Time a client has to send a request's whole body (then 408).
    #[arg(long, env = "SMO_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration_ms)]
    http_body_timeout: Duration,
    /// Connections the API serves at once; more wait in the listen backlog.
    #[arg(long, env = "SMO_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    http_max_connections: usize,
    /// Jobs claimed per fetch.
    #[arg(long, env = "SMO_WORKER_BATCH", default_value_t = 256)]
    batch: usize,
    /// Worker name prefix; the host (pod) name, pid and a random suffix are appended.
    #[arg(long, env = "SMO_WORKER_PREFIX", default_value = "smo")]
    worker_prefix: String,
    /// Finished jobs are pruned after this long (e.g. 7d, 12h).
    #[arg(long, env = "SMO_RETENTION", default_value = "7d", value_parser = parse_duration)]
    retention: Duration,
    /// On SIGTERM, in-flight jobs may take this long before being handed back.
    #[arg(long, env = "SMO_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// How often the worker heartbeats; its jobs go to other workers after 3 missed beats.
    #[arg(long, env = "SMO_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration_ms)]
    heartbeat_interval: Duration,
    /// Prometheus URL (request rates; rule reloads) [default: config prometheus_url]
    #[arg(long, env = "SMO_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Grafana URL (dashboards) [default: config grafana_url]
    #[arg(long, env = "SMO_GRAFANA_URL")]
    grafana_url: Option<String>,
    /// apalis-board URL (`smo-admin board`), linked from the console's queue page [default: config board_url]
    #[arg(long, env = "SMO_BOARD_URL")]
    board_url: Option<String>,
    /// Where alert rules go: prometheus-rule, rule-file or none [default: config alert_rules, else prometheus-rule]
    #[arg(long, env = "SMO_ALERT_RULES")]
    alert_rules: Option<String>,
    /// Rule-file directory for --alert-rules rule-file [default: config rules_dir]
    #[arg(long, env = "SMO_RULES_DIR")]
    rules_dir: Option<PathBuf>,
    /// How often running graphs are rescaled [default: config scaling_interval, else 30s]
    #[arg(long, env = "SMO_SCALING_INTERVAL", value_parser = parse_duration)]
    scaling_interval: Option<Duration>,
    /// rate() window of request-rate queries [default: config rate_window, else 1m]
    #[arg(long, env = "SMO_RATE_WINDOW")]
    rate_window: Option<String>,
    /// Karmada kubeconfig [default: ~/.smo/config.yaml's karmada_kubeconfig]
    #[arg(long, env = "SMO_KARMADA_KUBECONFIG")]
    karmada_kubeconfig: Option<PathBuf>,
    /// Bearer token the API requires [default: ~/.smo/config.yaml's api_token; none = open]
    #[arg(long, env = "SMO_API_TOKEN")]
    api_token: Option<String>,
}

/// Runs the roles until a signal stops them.
pub(super) async fn run(
    a: RunArgs,
    file: FileSettings,
    database_url: String,
) -> anyhow::Result<u8> {
    let settings = ServerSettings {
        database_url,
        listen: a.listen,
        metrics_listen: a.metrics_listen.filter(|l| !l.is_empty()),
        worker_concurrency: a.concurrency,
        db_pool_size: a.db_pool_size,
        http: crate::http::HttpLimits {
            header_read_timeout: a.http_header_timeout,
            body_read_timeout: a.http_body_timeout,
            max_connections: a.http_max_connections,
        },
        worker_batch: a.batch,
        worker_prefix: a.worker_prefix,
        retention: a.retention,
        shutdown_grace: a.shutdown_grace,
        heartbeat_interval: a.heartbeat_interval,
        karmada_kubeconfig: a.karmada_kubeconfig.or(file.karmada_kubeconfig.clone()),
        api_token: a.api_token.map(Secret::new).or(file.api_token.clone()),
        registry: file.registry(),
        board_url: a.board_url.or(file.board_url.clone()),
        helm_binary: std::env::var_os("SMO_HELM_BINARY")
            .map(PathBuf::from)
            .or(file.helm_binary.clone())
            .unwrap_or_else(|| PathBuf::from("helm")),
        helm_plain_http: file.helm_insecure_registry.unwrap_or(false),
        monitoring: crate::settings::MonitoringSettings {
            prometheus_url: a.prometheus_url.or(file.prometheus_url.clone()),
            grafana_url: a.grafana_url.or(file.grafana_url.clone()),
            prometheus_user: env_text("SMO_PROMETHEUS_USER", &file.prometheus_user),
            prometheus_password: env_or("SMO_PROMETHEUS_PASSWORD", &file.prometheus_password),
            prometheus_token: env_or("SMO_PROMETHEUS_TOKEN", &file.prometheus_token),
            grafana_user: env_text("SMO_GRAFANA_USER", &file.grafana_user),
            grafana_password: env_or("SMO_GRAFANA_PASSWORD", &file.grafana_password),
            grafana_token: env_or("SMO_GRAFANA_TOKEN", &file.grafana_token),
            alert_rules: a
                .alert_rules
                .or(file.alert_rules.clone())
                .unwrap_or_else(|| "prometheus-rule".into()),
            rules_dir: a.rules_dir.or(file.rules_dir.clone()),
            scaling_interval: match a.scaling_interval {
                Some(d) => d,
                None => file
                    .scaling_interval
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("scaling_interval: {e}"))?
                    .unwrap_or(Duration::from_secs(30)),
            },
            rate_window: a
                .rate_window
                .or(file.rate_window.clone())
                .unwrap_or_else(|| "1m".into()),
        },
    };
    server::run(settings, &a.roles, server::shutdown_on_signals()).await?;
    Ok(0)
}

/// A secret from the environment (how the chart passes Secrets), else from the config file.
fn env_or(var: &str, file: &Option<Secret>) -> Option<Secret> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .or_else(|| file.clone())
}

/// A setting from the environment, else from the config file.
fn env_text(var: &str, file: &Option<String>) -> Option<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| file.clone())
}
