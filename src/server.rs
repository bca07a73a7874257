//! The long-running roles — api, worker, scheduler — started alone or together by `smo run`.
//! Each takes its dependencies and a shutdown token, so tests start exactly what the binary does.

use std::time::Duration;

use poem::{EndpointExt, Route, listener::TcpListener};
use poem_openapi::{ApiResponse, OpenApi, OpenApiService, payload::PlainText};
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

/// The job kinds smo's workers run.
pub fn registry() -> Registry {
    Registry::new()
}

/// smo's periodic work.
pub fn cron_entries(settings: &ServerSettings) -> anyhow::Result<Vec<CronEntry>> {
    Ok(vec![CronEntry::new(
        "jobs.prune",
        "0 17 * * * *",
        &PruneJob {
            retention_secs: settings.retention.as_secs(),
        },
    )?])
}

/// Health and readiness endpoints.
pub struct HealthApi {
    pool: PgPool,
}

#[derive(ApiResponse)]
enum Ready {
    /// The database answers.
    #[oai(status = 200)]
    Ok(PlainText<String>),
    /// The database does not answer.
    #[oai(status = 503)]
    Unavailable(PlainText<String>),
}

#[OpenApi]
impl HealthApi {
    /// Liveness: the process serves HTTP.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness: the database answers within a second.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> Ready {
        let ping = tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await;
        match ping {
            Ok(Ok(_)) => Ready::Ok(PlainText("ready".into())),
            Ok(Err(e)) => Ready::Unavailable(PlainText(format!("database: {e}"))),
            Err(_) => Ready::Unavailable(PlainText("database: timed out".into())),
        }
    }
}

/// The OpenAPI service (also used to export api/openapi.yaml).
pub fn api_service(pool: PgPool) -> OpenApiService<HealthApi, ()> {
    OpenApiService::new(HealthApi { pool }, "smo", env!("CARGO_PKG_VERSION")).server("/")
}

/// Serves the API on `listener` until `shutdown`.
pub async fn serve_api(
    pool: PgPool,
    listen: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api = api_service(pool);
    let ui = api.swagger_ui();
    let spec = api.spec_endpoint_yaml();
    let app = Route::new()
        .nest("/", api)
        .nest("/ui", ui)
        .at("/openapi.yaml", spec)
        .with(poem::middleware::Tracing);
    tracing::info!(%listen, "api listening; Swagger UI at /ui");
    poem::Server::new(TcpListener::bind(listen))
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
    let pool = crate::cli::connect(&settings.database_url, 32).await?;
    migrate(&pool).await?;
    let has = |r: Role| roles.contains(&r) || roles.contains(&Role::All);
    let queue = Queue::new(pool.clone());
    let mut tasks = tokio::task::JoinSet::new();
    if has(Role::Worker) {
        let cfg = WorkerConfig {
            name: smo_jobs::worker_name(&settings.worker_prefix),
            concurrency: settings.worker_concurrency,
            batch_size: settings.worker_batch,
            shutdown_grace: settings.shutdown_grace,
            ..WorkerConfig::default()
        };
        let worker = Worker::new(queue.clone(), registry(), cfg);
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
    if has(Role::Api) {
        let (p, l, s) = (pool.clone(), settings.listen.clone(), shutdown.clone());
        tasks.spawn(async move { serve_api(p, &l, s).await });
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
