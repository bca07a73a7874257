//! smo-jobs — a durable job engine on PostgreSQL, with no knowledge of what the jobs do.
//!
//! It keeps apalis's model (typed arguments, a worker per process, a Postgres-backed queue polled
//! with `FOR UPDATE SKIP LOCKED` and woken by `LISTEN/NOTIFY`) and closes the gaps the plain
//! apalis-postgres storage leaves open for an orchestrator:
//!
//! | gap in plain apalis-postgres          | what this crate does                                        |
//! |---------------------------------------|-------------------------------------------------------------|
//! | a failed job is re-fetched at once     | exponential backoff stored in `run_at` ([`Backoff`])         |
//! | worker names must be unique            | names carry host, pid and a random suffix ([`worker_name`])  |
//! | cron on several instances duplicates   | schedule rows claimed with `SKIP LOCKED` ([`Scheduler`])     |
//! | finished rows are never deleted        | a built-in `jobs.prune` job on a cron ([`PruneJob`])         |
//! | hstore/pgcrypto extensions required    | none: plain `jsonb`, ids generated client side (UUIDv7)      |
//!
//! Entry points: [`Queue`] to enqueue (inside the caller's transaction) and administer,
//! [`Registry`] + [`Worker`] to run jobs, [`Scheduler`] for periodic work, [`bench`] for figures.

mod admin;
mod backend;
pub mod bench;
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
pub use backend::{AckLayer, AckService, PgBackend};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, JobError};
pub use job::{Handler, JobArgs, JobContext, NOOP_KIND, NoopJob, PRUNE_KIND, PruneJob, Registry};
pub use lease::Lease;
pub use queue::{Enqueued, JobState, NewJob, Queue};
pub use scheduler::{CronEntry, Scheduler, SchedulerConfig};
pub use worker::{Backoff, JobService, Worker, WorkerConfig, worker_name};

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
