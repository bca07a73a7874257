//! The long-running roles — api, worker, scheduler — started alone or together by `smo run`.
//! Each takes its dependencies and a shutdown token, so tests start exactly what the binary does.

use std::time::Duration;

use smo_jobs::{CronEntry, Queue, Registry, Scheduler, SchedulerConfig, Worker, WorkerConfig};
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

/// The job kinds smo's workers run, bound to the database and (when configured) the federation;
/// `agent` (the worker's name) goes into the User-Agent of its federation requests.
pub async fn registry(
    pool: PgPool,
    settings: &ServerSettings,
    agent: Option<&str>,
) -> anyhow::Result<Registry> {
    let federation = match &settings.karmada_kubeconfig {
        Some(path) => Some(crate::federation::Federation::from_kubeconfig_as(path, agent).await?),
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
    Ok(crate::reconcile::registry(crate::reconcile::App {
        pool,
        federation,
        monitoring,
        helm,
        failover: settings.failover,
    }))
}

/// The monitoring clients from settings.
pub fn monitoring(
    m: &crate::settings::MonitoringSettings,
) -> anyhow::Result<crate::reconcile::Monitoring> {
    use crate::credentials::Credentials;
    use crate::monitoring::io::{Grafana, Prometheus};
    let timeout = Duration::from_secs(10);
    let grafana_auth = Credentials::from_parts(
        crate::credentials::exposed(&m.grafana_token),
        m.grafana_user.as_deref(),
        crate::credentials::exposed(&m.grafana_password),
    )
    .map_err(|e| anyhow::anyhow!("grafana credentials: {e}"))?;
    let prometheus_auth = Credentials::from_parts(
        crate::credentials::exposed(&m.prometheus_token),
        m.prometheus_user.as_deref(),
        crate::credentials::exposed(&m.prometheus_password),
    )
    .map_err(|e| anyhow::anyhow!("prometheus credentials: {e}"))?;
    let rules = match m.alert_rules.as_str() {
        "none" | "" => crate::reconcile::RulesTarget::None,
        "prometheus-rule" => crate::reconcile::RulesTarget::PrometheusRule {
            namespace: None,
            group: None,
        },
        "rule-file" => crate::reconcile::RulesTarget::RuleFile {
            dir: m
                .rules_dir
                .clone()
                .ok_or_else(|| anyhow::anyhow!("alert_rules: rule-file needs rules_dir"))?,
        },
        other => {
            anyhow::bail!("alert_rules: expected prometheus-rule, rule-file or none, got {other:?}")
        }
    };
    Ok(crate::reconcile::Monitoring {
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
            &crate::reconcile::RetentionJob {
                retention_secs: settings.retention.as_secs(),
                audit_retention_secs: Some(settings.audit_retention.as_secs()),
            },
        )?,
        CronEntry::new(
            "cluster-sync",
            "0 */5 * * * *",
            &crate::reconcile::ClusterSyncJob {},
        )?,
        CronEntry::new(
            "drift-fanout",
            "30 */5 * * * *",
            &crate::reconcile::DriftFanoutJob {},
        )?,
        CronEntry::new(
            "cluster-health",
            &crate::reconcile::cron_schedule_for(settings.failover.health_interval),
            &crate::reconcile::ClusterHealthJob {},
        )?,
        CronEntry::new(
            "scale-fanout",
            &crate::reconcile::cron_schedule_for(settings.monitoring.scaling_interval),
            &crate::reconcile::ScaleFanoutJob {},
        )?,
    ])
}

/// How a process sizes its database pool and how many jobs its worker may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPlan {
    /// Connections in the pool.
    pub size: u32,
    /// Jobs the worker runs at once (0 without the worker role).
    pub concurrency: usize,
}

/// Connections the API keeps for its requests.
const API_CONNECTIONS: u32 = 12;
/// The scheduler's claim-and-enqueue transaction.
const SCHEDULER_CONNECTIONS: u32 = 2;
/// The worker's claim loop and acknowledger, besides its jobs.
const WORKER_OVERHEAD: u32 = 2;
/// At most this many connections serve a worker's jobs by default: a job holds one only for its
/// short reads and its closing write (never across a call to the federation or Helm), so many
/// jobs share few connections, and PostgreSQL's own limit is shared by every replica.
const WORKER_JOB_CONNECTIONS: u32 = 16;
/// Jobs one job connection can serve: concurrency beyond this waits on the pool, not on work.
const JOBS_PER_CONNECTION: usize = 4;

/// Derives the pool size from the roles and the configured concurrency (or takes `size` as
/// given), and bounds the worker's concurrency by what its share of the pool can serve. The
/// heartbeat and the LISTEN connection are outside the pool, so a busy pool never makes a live
/// worker look dead.
pub fn pool_plan(roles: &[Role], concurrency: usize, size: Option<u32>) -> PoolPlan {
    let has = |r: Role| roles.contains(&r) || roles.contains(&Role::All);
    let fixed = if has(Role::Api) { API_CONNECTIONS } else { 0 }
        + if has(Role::Scheduler) {
            SCHEDULER_CONNECTIONS
        } else {
            0
        };
    if !has(Role::Worker) {
        return PoolPlan {
            size: size.unwrap_or(fixed.max(2)).max(1),
            concurrency: 0,
        };
    }
    let wanted = (concurrency.max(1) as u32).min(WORKER_JOB_CONNECTIONS);
    let size = size.unwrap_or(fixed + WORKER_OVERHEAD + wanted).max(1);
    let job_connections = size.saturating_sub(fixed + WORKER_OVERHEAD).max(1) as usize;
    PoolPlan {
        size,
        concurrency: concurrency.clamp(1, job_connections * JOBS_PER_CONNECTION),
    }
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
    limits: crate::http::HttpLimits,
    console: impl Into<crate::http::console::ConsoleSettings>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let app = crate::http::app(
        pool,
        token,
        registry,
        limits.body_read_timeout,
        console.into(),
    );
    tracing::info!(%addr, "api listening; Swagger UI at /ui");
    crate::http::serve(listener, app, limits, shutdown, Duration::from_secs(10)).await?;
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
    let plan = pool_plan(roles, settings.worker_concurrency, settings.db_pool_size);
    if has(Role::Worker) && plan.concurrency < settings.worker_concurrency {
        tracing::warn!(
            configured = settings.worker_concurrency,
            concurrency = plan.concurrency,
            pool = plan.size,
            "worker concurrency lowered to what the database pool can serve"
        );
    }
    let pool = crate::store::connect(&settings.database_url, plan.size).await?;
    migrate(&pool).await?;
    let queue = Queue::new(pool.clone());
    let mut tasks = tokio::task::JoinSet::new();
    if has(Role::Worker) {
        let cfg = WorkerConfig {
            name: smo_jobs::worker_name(&settings.worker_prefix),
            concurrency: plan.concurrency,
            batch_size: settings.worker_batch,
            shutdown_grace: settings.shutdown_grace,
            heartbeat_interval: settings.heartbeat_interval,
            ..WorkerConfig::default()
        };
        let registry = registry(pool.clone(), &settings, Some(&cfg.name)).await?;
        let worker = Worker::new(queue.clone(), registry, cfg);
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
        let t = crate::credentials::exposed(&settings.api_token).map(str::to_string);
        let (p, s) = (pool.clone(), shutdown.clone());
        let (r, l) = (settings.registry.clone(), settings.http);
        // The console charts replicas from the same Prometheus the scaler reads.
        let console = crate::http::console::ConsoleSettings {
            prometheus: monitoring(&settings.monitoring)?.prometheus,
            board_url: settings.board_url.clone(),
        };
        tasks.spawn(async move { serve_api_on(p, listener, t, r, l, console, s).await });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_sized_from_roles_and_concurrency_and_bounds_it() {
        // Defaults: a worker of 64 jobs gets 16 job connections plus its own two.
        let w = pool_plan(&[Role::Worker], 64, None);
        assert_eq!(
            w,
            PoolPlan {
                size: 18,
                concurrency: 64
            }
        );
        // Small concurrency: no idle connections.
        assert_eq!(pool_plan(&[Role::Worker], 4, None).size, 6);
        // Everything in one process: the API's and the scheduler's share come on top.
        let all = pool_plan(&[Role::All], 64, None);
        assert_eq!(all.size, 12 + 2 + 2 + 16);
        // A pool set too small for the concurrency lowers the concurrency, never the reverse.
        assert_eq!(
            pool_plan(&[Role::Worker], 64, Some(6)),
            PoolPlan {
                size: 6,
                concurrency: 16
            }
        );
        // No worker: no concurrency, the API's share.
        assert_eq!(
            pool_plan(&[Role::Api], 64, None),
            PoolPlan {
                size: 12,
                concurrency: 0
            }
        );
    }
}
