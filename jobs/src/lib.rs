//! smo-jobs — a durable job engine on PostgreSQL, delivered as an apalis 1.0 backend, with no
//! knowledge of what the jobs do.
//!
//! [`PgBackend`] implements apalis-core's `Backend` (claims as a stream, woken by
//! `LISTEN/NOTIFY`), `TaskSink` (through its `Sink`), the backend middleware that acknowledges
//! in batches ([`AckLayer`]), and the management traits ([`manage`]): an apalis `WorkerBuilder`
//! runs jobs from it like from any apalis backend, apalis-cron drives the [`Scheduler`], and
//! apalis-board shows it ([`board`]). Underneath it closes the gaps the plain apalis-postgres
//! storage leaves open for an orchestrator:
//!
//! | gap in plain apalis-postgres           | what this crate does                                        |
//! |----------------------------------------|-------------------------------------------------------------|
//! | a failed job is re-fetched at once     | exponential backoff stored in `run_at` ([`Backoff`])         |
//! | no enqueue inside the caller's tx      | [`Queue::enqueue_in`] on the caller's connection             |
//! | idempotency keys are permanent         | unique keys among live jobs only ([`JobArgs::unique_key`])   |
//! | cron on several instances duplicates   | apalis-cron fires, a row claim keeps each slot single        |
//! | no fencing of a paused worker          | leases with a renew deadline, an epoch per attempt ([`Lease`]) |
//! | finished rows are never deleted        | a built-in `jobs.prune` job on a cron ([`PruneJob`])         |
//! | hstore/pgcrypto extensions required    | none: plain `jsonb`, ids generated client side (UUIDv7)      |
//!
//! Entry points: [`Queue`] to enqueue (inside the caller's transaction) and administer,
//! [`Registry`] + [`Worker`] to run jobs (an apalis worker over [`PgBackend`]), or
//! [`PgBackend`] with your own apalis `WorkerBuilder`; [`Scheduler`] for periodic work,
//! [`bench`] for figures.

mod admin;
mod args;
mod backend;
#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "board")]
pub mod board;
mod clock;
mod error;
mod job;
mod lease;
pub mod manage;
pub mod metrics;
mod queue;
mod scheduler;
pub mod testing;
mod worker;

pub use admin::{CronRow, JobFilter, JobRow, KindStats, Stats, WorkerRow};
pub use args::JobArgs;
pub use backend::{
    AckLayer, AckService, Backoff, JobService, PgBackend, WorkerConfig, worker_name,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, JobError};
pub use job::{Handler, JobContext, NOOP_KIND, NoopJob, PRUNE_KIND, PruneJob, Registry};
pub use lease::Lease;
pub use queue::{Enqueued, JobState, NewJob, Queue};
pub use scheduler::{CronEntry, Scheduler, SchedulerConfig};
pub use worker::Worker;

/// The channel `LISTEN`ed to by idle workers; the payload is the job kind.
pub const NOTIFY_CHANNEL: &str = "smo_jobs";

/// Applies the engine's migrations (schema `smo_jobs`, its own migration table).
///
/// Kept apart from the application's migrations so the engine can be reused and upgraded alone.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), Error> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.create_schema("smo_jobs");
    migrator.dangerous_set_table_name("smo_jobs._sqlx_migrations");
    migrator.run(pool).await.map_err(Error::Migrate)
}
