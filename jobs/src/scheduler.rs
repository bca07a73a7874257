use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{Enqueued, Error, JobArgs, NewJob, Queue};

/// A periodic job: every time `schedule` (a 6-field cron expression with seconds, as apalis-cron
/// uses, e.g. `*/30 * * * * *`) comes due, one job is enqueued.
#[derive(Debug, Clone)]
pub struct CronEntry {
    /// Stable name; the row in `smo_jobs.cron`.
    pub name: String,
    /// Cron expression.
    pub schedule: String,
    /// The job to enqueue; its unique key defaults to `cron:<name>` so a slow job never piles up.
    pub job: NewJob,
}

impl CronEntry {
    /// An entry enqueuing `args` on `schedule`.
    pub fn new<A: JobArgs>(name: &str, schedule: &str, args: &A) -> Result<Self, Error> {
        let mut job = NewJob::from_args(args)?;
        if job.unique_key.is_none() {
            job.unique_key = Some(format!("cron:{name}"));
        }
        parse_schedule(schedule)?;
        Ok(Self {
            name: name.into(),
            schedule: schedule.into(),
            job,
        })
    }
}

/// Parses a cron expression, with an error that names it.
pub(crate) fn parse_schedule(s: &str) -> Result<cron::Schedule, Error> {
    cron::Schedule::from_str(s).map_err(|e| Error::Schedule {
        schedule: s.into(),
        message: e.to_string(),
    })
}

/// The next instants a schedule fires after `after`.
pub(crate) fn upcoming(s: &str, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    parse_schedule(s)
        .map(|sc| sc.after(&after).take(n).collect())
        .unwrap_or_default()
}

/// How the scheduler loop behaves.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often due entries are checked.
    pub tick: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(500),
        }
    }
}

/// Enqueues periodic jobs, safely from any number of replicas.
///
/// apalis-cron fires on every instance that runs it. Here each entry is a row; a replica claims a
/// due row with `FOR UPDATE SKIP LOCKED`, enqueues and moves `next_run_at` in the same
/// transaction, so each slot is enqueued exactly once however many schedulers run.
pub struct Scheduler {
    queue: Queue,
    entries: Vec<CronEntry>,
    config: SchedulerConfig,
}

impl Scheduler {
    /// A scheduler with no entries.
    pub fn new(queue: Queue, config: SchedulerConfig) -> Self {
        Self {
            queue,
            entries: Vec::new(),
            config,
        }
    }

    /// Adds an entry.
    pub fn with_entry(mut self, entry: CronEntry) -> Self {
        self.entries.push(entry);
        self
    }

    /// Writes the entries' rows; a changed schedule takes effect from now.
    pub async fn register(&self) -> Result<(), Error> {
        let now = self.queue.now();
        for e in &self.entries {
            let next = parse_schedule(&e.schedule)?
                .after(&now)
                .next()
                .unwrap_or(now);
            sqlx::query(
                "INSERT INTO smo_jobs.cron (name, schedule, kind, next_run_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET
                     next_run_at = CASE WHEN smo_jobs.cron.schedule <> EXCLUDED.schedule
                                        THEN EXCLUDED.next_run_at ELSE smo_jobs.cron.next_run_at END,
                     schedule = EXCLUDED.schedule, kind = EXCLUDED.kind, updated_at = EXCLUDED.updated_at",
            )
            .bind(&e.name)
            .bind(&e.schedule)
            .bind(&e.job.kind)
            .bind(next)
            .bind(now)
            .execute(&self.queue.pool)
            .await?;
        }
        Ok(())
    }

    /// One pass over the entries: enqueues every due one this replica could claim.
    pub async fn tick(&self) -> Result<Vec<(String, Enqueued)>, Error> {
        let mut fired = Vec::new();
        for e in &self.entries {
            let now = self.queue.now();
            let mut tx = self.queue.pool.begin().await?;
            let due: Option<(DateTime<Utc>,)> = sqlx::query_as(
                "SELECT next_run_at FROM smo_jobs.cron WHERE name = $1 AND next_run_at <= $2
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(&e.name)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if due.is_none() {
                continue;
            }
            let enq = self
                .queue
                .enqueue_many_in(&mut tx, std::slice::from_ref(&e.job))
                .await?
                .remove(0);
            let next = parse_schedule(&e.schedule)?
                .after(&now)
                .next()
                .unwrap_or(now);
            sqlx::query(
                "UPDATE smo_jobs.cron SET next_run_at = $2, last_run_at = $3, last_job_id = $4 WHERE name = $1",
            )
            .bind(&e.name)
            .bind(next)
            .bind(now)
            .bind(enq.id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            crate::metrics::CRON_FIRED.inc(&[&e.name]);
            fired.push((e.name.clone(), enq));
        }
        Ok(fired)
    }

    /// Registers the entries, then ticks until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        self.register().await?;
        tracing::info!(entries = self.entries.len(), "scheduler started");
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            match self.tick().await {
                Ok(fired) => {
                    for (name, enq) in fired {
                        tracing::debug!(entry = %name, job = %enq.id, created = enq.created, "cron fired");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
            }
        }
        tracing::info!("scheduler stopped");
        Ok(())
    }
}
