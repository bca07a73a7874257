use apalis::layers::{TimeoutLayer, WorkerBuilderExt};
use apalis_core::worker::{builder::WorkerBuilder, ext::parallelize::ParallelizeExt};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::{Error, JobService, PgBackend, Queue, Registry, WorkerConfig};

/// A worker process's job runner: an apalis worker over [`PgBackend`] running the kinds of a
/// [`Registry`].
///
/// apalis drives it; the layers are apalis/tower's own: a concurrency limit, one spawned task per
/// job (a panic fails the job, not the worker), tracing, and the per-attempt timeout. Retries are
/// not a layer: they are stored in the job's row ([`Backoff`](crate::Backoff)) so that any
/// worker — not the one that failed — runs the next attempt, after a crash too.
pub struct Worker {
    queue: Queue,
    registry: Registry,
    config: WorkerConfig,
}

impl Worker {
    /// A worker over `queue` running the kinds of `registry`.
    pub fn new(queue: Queue, registry: Registry, config: WorkerConfig) -> Self {
        Self {
            queue,
            registry,
            config,
        }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets in-flight jobs finish for up
    /// to `shutdown_grace`, hands the rest back to the queue and deregisters.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let cfg = self.config;
        let grace = CancellationToken::new();
        let backend = PgBackend::for_registry(self.queue, cfg.clone(), &self.registry);
        let service = JobService::new(self.registry).with_grace(grace.clone());
        let worker = WorkerBuilder::new(cfg.name.as_str())
            .backend(backend)
            .concurrency(cfg.concurrency.max(1))
            .parallelize(tokio::spawn)
            .option_layer(cfg.job_timeout.map(TimeoutLayer::new))
            .enable_tracing()
            .build(service);
        let period = cfg.shutdown_grace;
        let signal = async move {
            shutdown.cancelled().await;
            tracing::info!(worker = %cfg.name, "worker stopping");
            tokio::spawn(async move {
                tokio::time::sleep(period).await;
                grace.cancel();
            });
            Ok::<(), std::io::Error>(())
        };
        // Boxed where its type is concrete: proving `Send` for it inside this async fn's own
        // future trips the compiler's higher-ranked lifetime check (rust-lang/rust#102211).
        let run: BoxFuture<'static, Result<(), apalis_core::error::WorkerError>> =
            Box::pin(worker.run_until(signal));
        run.await.map_err(|e| Error::Worker(e.to_string()))
    }
}
