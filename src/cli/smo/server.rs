//! `smo run`: the server roles, their flags laid over the config file's settings.

use std::path::PathBuf;

use crate::{
    cli::parse_duration,
    settings::{FileSettings, ServerSettings},
};

use crate::credentials::Secret;
use crate::server::{self, Role};

/// `smo run`'s flags: each is also read from its `SMO_*` variable, and each lays over the config
/// file's key of the same name (`ServerSettings::resolve` has the defaults).
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
    /// API listen address [default: config listen, else 127.0.0.1:8080]
    #[arg(long, env = "SMO_LISTEN")]
    listen: Option<String>,
    /// Also serve this process's metrics on this address (GET /metrics): for worker and
    /// scheduler processes, whose series the API's /metrics cannot carry. [default: none]
    #[arg(long, env = "SMO_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Jobs this worker runs at once [default: 64]
    #[arg(long, env = "SMO_WORKER_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Database connections of this process [default: derived from its roles and concurrency]
    #[arg(long, env = "SMO_DB_POOL_SIZE")]
    db_pool_size: Option<u32>,
    /// Time a client has to send a request's headers; also closes keep-alive connections idle
    /// that long [default: 10s]
    #[arg(long, env = "SMO_HTTP_HEADER_TIMEOUT", value_parser = duration_text)]
    http_header_timeout: Option<String>,
    /// Time a client has to send a request's whole body (then 408) [default: 30s]
    #[arg(long, env = "SMO_HTTP_BODY_TIMEOUT", value_parser = duration_text)]
    http_body_timeout: Option<String>,
    /// Connections the API serves at once; more wait in the listen backlog [default: 1024]
    #[arg(long, env = "SMO_HTTP_MAX_CONNECTIONS")]
    http_max_connections: Option<usize>,
    /// Jobs claimed per fetch [default: 256]
    #[arg(long, env = "SMO_WORKER_BATCH")]
    batch: Option<usize>,
    /// Worker name prefix; the host (pod) name, pid and a random suffix are appended
    /// [default: smo]
    #[arg(long, env = "SMO_WORKER_PREFIX")]
    worker_prefix: Option<String>,
    /// Finished jobs are pruned after this long (e.g. 7d, 12h) [default: 7d]
    #[arg(long, env = "SMO_RETENTION", value_parser = duration_text)]
    retention: Option<String>,
    /// The audit log's rows are pruned after this long [default: 90d]
    #[arg(long, env = "SMO_AUDIT_RETENTION", value_parser = duration_text)]
    audit_retention: Option<String>,
    /// On SIGTERM, in-flight jobs may take this long before being handed back [default: 30s]
    #[arg(long, env = "SMO_SHUTDOWN_GRACE", value_parser = duration_text)]
    shutdown_grace: Option<String>,
    /// How often the worker heartbeats; its jobs go to other workers after 3 missed beats
    /// [default: 5s]
    #[arg(long, env = "SMO_HEARTBEAT_INTERVAL", value_parser = duration_text)]
    heartbeat_interval: Option<String>,
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
    #[arg(long, env = "SMO_SCALING_INTERVAL", value_parser = duration_text)]
    scaling_interval: Option<String>,
    /// rate() window of request-rate queries [default: config rate_window, else 1m]
    #[arg(long, env = "SMO_RATE_WINDOW")]
    rate_window: Option<String>,
    /// Karmada kubeconfig [default: ~/.smo/config.yaml's karmada_kubeconfig]
    #[arg(long, env = "SMO_KARMADA_KUBECONFIG")]
    karmada_kubeconfig: Option<PathBuf>,
    /// Bearer token the API requires [default: ~/.smo/config.yaml's api_token; none = open]
    #[arg(long, env = "SMO_API_TOKEN")]
    api_token: Option<String>,
    /// The helm binary that installs Helm-chart services [default: config helm_binary, else helm]
    #[arg(long, env = "SMO_HELM_BINARY")]
    helm_binary: Option<PathBuf>,
}

/// A duration flag, checked when parsed and kept as written (it layers over the file's text).
fn duration_text(s: &str) -> Result<String, String> {
    parse_duration(s).map(|_| s.to_string())
}

impl RunArgs {
    /// The flags as a settings layer: only what was given (on the command line or in `SMO_*`).
    fn layer(&self) -> FileSettings {
        FileSettings {
            listen: self.listen.clone(),
            metrics_listen: self.metrics_listen.clone(),
            worker_concurrency: self.concurrency,
            db_pool_size: self.db_pool_size,
            http_header_timeout: self.http_header_timeout.clone(),
            http_body_timeout: self.http_body_timeout.clone(),
            http_max_connections: self.http_max_connections,
            worker_batch: self.batch,
            worker_prefix: self.worker_prefix.clone(),
            retention: self.retention.clone(),
            audit_retention: self.audit_retention.clone(),
            shutdown_grace: self.shutdown_grace.clone(),
            heartbeat_interval: self.heartbeat_interval.clone(),
            prometheus_url: self.prometheus_url.clone(),
            grafana_url: self.grafana_url.clone(),
            board_url: self.board_url.clone(),
            alert_rules: self.alert_rules.clone(),
            rules_dir: self.rules_dir.clone(),
            scaling_interval: self.scaling_interval.clone(),
            rate_window: self.rate_window.clone(),
            karmada_kubeconfig: self.karmada_kubeconfig.clone(),
            api_token: self.api_token.clone().map(Secret::new),
            helm_binary: self.helm_binary.clone(),
            ..FileSettings::default()
        }
    }
}

/// Runs the roles until a signal stops them: defaults < config file < `SMO_*` < flags.
pub(super) async fn run(
    a: RunArgs,
    file: FileSettings,
    database_url: String,
) -> anyhow::Result<u8> {
    let layered = file
        .with_env(|k| std::env::var(k).ok())
        .and_then(|s| s.overlay(&a.layer()))
        .map_err(anyhow::Error::msg)?;
    let settings = ServerSettings::resolve(&layered, database_url).map_err(anyhow::Error::msg)?;
    server::run(settings, &a.roles, server::shutdown_on_signals()).await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        args: RunArgs,
    }

    /// A flag given wins over the file; a flag not given leaves the file's value (and then the
    /// default) in place, for every key of `smo run`.
    #[test]
    fn given_flags_lay_over_the_file_and_absent_ones_do_not() {
        let run = Run::try_parse_from([
            "run",
            "--helm-binary",
            "/opt/helm",
            "--shutdown-grace",
            "90s",
            "--concurrency",
            "8",
        ])
        .unwrap();
        let (file, _) =
            crate::settings::parse_file("listen: 0.0.0.0:9000\nshutdown_grace: 45s\n").unwrap();
        let layered = file.overlay(&run.args.layer()).unwrap();
        let s = ServerSettings::resolve(&layered, String::new()).unwrap();
        assert_eq!(s.helm_binary, PathBuf::from("/opt/helm"));
        assert_eq!(s.shutdown_grace, std::time::Duration::from_secs(90));
        assert_eq!(s.worker_concurrency, 8);
        assert_eq!(s.listen, "0.0.0.0:9000", "no --listen: the file's");
        assert!(
            Run::try_parse_from(["run", "--retention", "soon"]).is_err(),
            "a bad duration is refused when parsed"
        );
    }
}
