//! The long-running roles — api, worker, scheduler — started alone or together by `smo run`.
//! Each takes its dependencies and a shutdown token, so tests start exactly what the binary does.

use std::time::Duration;

use poem::listener::TcpAcceptor;
use smo_jobs::{
    CronEntry, PruneJob, Queue, Registry, Scheduler, SchedulerConfig, Worker, WorkerConfig,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::settings::ServerSettings;

/// Which roles a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The REST API.
    Api,
    /// A job worker.
    Worker,
    /// The cron scheduler (safe to run on several replicas).
    Scheduler,
    /// All three in one process: the demo and small installations.
    All,
}

/// Applies the engine's and smo's migrations.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    smo_jobs::migrate(pool).await?;
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// The job kinds smo's workers run, bound to the database and (when configured) the federation.
pub async fn registry(pool: PgPool, settings: &ServerSettings) -> anyhow::Result<Registry> {
    let federation = match &settings.karmada_kubeconfig {
        Some(path) => Some(crate::federation::Federation::from_kubeconfig(path).await?),
        None => {
            tracing::warn!(
                "no karmada_kubeconfig configured: graph jobs will fail until one is set"
            );
            None
        }
    };
    let monitoring = monitoring(&settings.monitoring)?;
    let helm = settings
        .karmada_kubeconfig
        .as_ref()
        .map(|k| crate::federation::helm::HelmRunner {
            binary: settings.helm_binary.clone(),
            kubeconfig: k.clone(),
            plain_http: settings.helm_plain_http,
            timeout: Duration::from_secs(300),
        });
    if let Some(h) = &helm
        && let Err(e) = h.check().await
    {
        tracing::warn!("{e}; Helm-chart services will fail until it is installed");
    }
    Ok(crate::jobs::registry(crate::jobs::App {
        pool,
        federation,
        monitoring,
        helm,
    }))
}

/// The monitoring clients from settings.
pub fn monitoring(
    m: &crate::settings::MonitoringSettings,
) -> anyhow::Result<crate::jobs::Monitoring> {
    use crate::credentials::Credentials;
    use crate::monitoring::io::{Grafana, Prometheus};
    let timeout = Duration::from_secs(10);
    let grafana_auth = Credentials::from_parts(
        m.grafana_token.as_deref(),
        m.grafana_user.as_deref(),
        m.grafana_password.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("grafana credentials: {e}"))?;
    let prometheus_auth = Credentials::from_parts(
        m.prometheus_token.as_deref(),
        m.prometheus_user.as_deref(),
        m.prometheus_password.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("prometheus credentials: {e}"))?;
    let rules = match m.alert_rules.as_str() {
        "none" | "" => crate::jobs::RulesTarget::None,
        "prometheus-rule" => crate::jobs::RulesTarget::PrometheusRule {
            namespace: None,
            group: None,
        },
        "rule-file" => crate::jobs::RulesTarget::RuleFile {
            dir: m
                .rules_dir
                .clone()
                .ok_or_else(|| anyhow::anyhow!("alert_rules: rule-file needs rules_dir"))?,
        },
        other => {
            anyhow::bail!("alert_rules: expected prometheus-rule, rule-file or none, got {other:?}")
        }
    };
    Ok(crate::jobs::Monitoring {
        prometheus: m
            .prometheus_url
            .as_deref()
            .map(|u| Prometheus::new(u, timeout).with_auth(prometheus_auth)),
        grafana: m
            .grafana_url
            .as_deref()
            .map(|u| Grafana::new(u, grafana_auth, timeout)),
        rules,
        rate_window: m.rate_window.clone(),
    })
}

/// smo's periodic work.
pub fn cron_entries(settings: &ServerSettings) -> anyhow::Result<Vec<CronEntry>> {
    Ok(vec![
        CronEntry::new(
            "jobs.prune",
            "0 17 * * * *",
            &PruneJob {
                retention_secs: settings.retention.as_secs(),
            },
        )?,
        CronEntry::new(
            "cluster-sync",
            "0 */5 * * * *",
            &crate::jobs::ClusterSyncJob {},
        )?,
        CronEntry::new(
            "scale-fanout",
            &crate::jobs::cron_schedule_for(settings.monitoring.scaling_interval),
            &crate::jobs::ScaleFanoutJob {},
        )?,
    ])
}

async fn bind(listen: &str, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for {what}: {e}"))
}

/// Serves the API on an already bound listener until `shutdown` (`run` binds before it
/// connects; tests bind port 0).
pub async fn serve_api_on(
    pool: PgPool,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    registry: crate::settings::RegistrySettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let app = crate::http::app(pool, token, registry);
    tracing::info!(%addr, "api listening; Swagger UI at /ui");
    poem::Server::new_with_acceptor(TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(
            app,
            shutdown.cancelled_owned(),
            Some(Duration::from_secs(10)),
        )
        .await?;
    Ok(())
}

/// Runs the chosen roles until `shutdown` (SIGTERM/SIGINT in the binary).
pub async fn run(
    settings: ServerSettings,
    roles: &[Role],
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let has = |r: Role| roles.contains(&r) || roles.contains(&Role::All);
    // Bind the listeners first: a bad or taken address fails before anything registers or runs.
    let api_listener = match has(Role::Api) {
        true => Some(bind(&settings.listen, "the API").await?),
        false => None,
    };
    let metrics_listener = match &settings.metrics_listen {
        Some(l) => Some(bind(l, "metrics").await?),
        None => None,
    };
    let pool = crate::cli::connect(&settings.database_url, 32).await?;
    migrate(&pool).await?;
    let queue = Queue::new(pool.clone());
    let mut tasks = tokio::task::JoinSet::new();
    if has(Role::Worker) {
        let cfg = WorkerConfig {
            name: smo_jobs::worker_name(&settings.worker_prefix),
            concurrency: settings.worker_concurrency,
            batch_size: settings.worker_batch,
            shutdown_grace: settings.shutdown_grace,
            heartbeat_interval: settings.heartbeat_interval,
            ..WorkerConfig::default()
        };
        let worker = Worker::new(queue.clone(), registry(pool.clone(), &settings).await?, cfg);
        let s = shutdown.clone();
        tasks.spawn(async move { worker.run(s).await.map_err(anyhow::Error::from) });
    }
    if has(Role::Scheduler) {
        let mut scheduler = Scheduler::new(queue.clone(), SchedulerConfig::default());
        for e in cron_entries(&settings)? {
            scheduler = scheduler.with_entry(e);
        }
        let s = shutdown.clone();
        tasks.spawn(async move { scheduler.run(s).await.map_err(anyhow::Error::from) });
    }
    if let Some(listener) = api_listener {
        let (p, t, s) = (pool.clone(), settings.api_token.clone(), shutdown.clone());
        let r = settings.registry.clone();
        tasks.spawn(async move { serve_api_on(p, listener, t, r, s).await });
    }
    if let Some(listener) = metrics_listener {
        let s = shutdown.clone();
        tasks.spawn(async move { crate::metrics::serve_on(listener, s).await });
    }
    // The first role to fail stops the others: a half-running process is worse than a restart.
    let mut result = Ok(());
    while let Some(r) = tasks.join_next().await {
        let r = r.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = r {
            tracing::error!(error = %e, "a role stopped with an error; shutting down");
            shutdown.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    t.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}
