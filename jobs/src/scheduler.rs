use std::{str::FromStr, sync::Arc, time::Duration};

use apalis_core::worker::builder::WorkerBuilder;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
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

/// How the scheduler behaves besides the cron streams.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often a catch-up pass fires entries whose slot passed unclaimed (every replica was
    /// down, or the database was, when the cron stream fired). Slots fire from apalis-cron's
    /// stream on time; this pass only mops up.
    pub tick: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(15),
        }
    }
}

/// Enqueues periodic jobs, safely from any number of replicas.
///
/// Each entry runs as an apalis worker over apalis-cron's `CronScheduler`, which fires on every
/// replica that runs it. What keeps a slot single is the claim behind the handler: each entry is
/// a row; a replica locks the row while its slot is due, enqueues and moves `next_run_at` in the
/// same transaction, so each slot is enqueued once however many schedulers run (a claim that
/// waited for another's lock would find the slot moved on and fire nothing). The lock is taken
/// with `SKIP LOCKED` so that a replica never waits on another's claim: it skips that slot (the
/// other replica fires it, or the catch-up pass does if that transaction fails) and goes on with
/// its other entries. Late slots (a replica that was down) are coalesced into one.
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
            if let Some(enq) = self.fire(e, self.queue.now()).await? {
                fired.push((e.name.clone(), enq));
            }
        }
        Ok(fired)
    }

    /// Claims `e`'s slot if one is due at `at` and enqueues its job, in one transaction; `None`
    /// when no slot is due or another replica holds the claim.
    async fn fire(&self, e: &CronEntry, at: DateTime<Utc>) -> Result<Option<Enqueued>, Error> {
        let now = self.queue.now().max(at);
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
            return Ok(None);
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
        tracing::debug!(entry = %e.name, job = %enq.id, created = enq.created, "cron fired");
        Ok(Some(enq))
    }

    /// Registers the entries, fires what is overdue, then runs one apalis-cron worker per entry
    /// (plus the catch-up pass) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        self.register().await?;
        tracing::info!(entries = self.entries.len(), "scheduler started");
        let this = Arc::new(self);
        let mut runs: Vec<BoxFuture<'static, ()>> = Vec::new();
        for i in 0..this.entries.len() {
            runs.push(Box::pin(this.clone().run_entry(i, shutdown.clone())));
        }
        runs.push(Box::pin(this.clone().catch_up(shutdown.clone())));
        futures::future::join_all(runs).await;
        tracing::info!("scheduler stopped");
        Ok(())
    }

    /// Mops up slots no cron stream claimed (see [`SchedulerConfig::tick`]).
    async fn catch_up(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "scheduler catch-up pass failed");
            }
        }
    }

    /// The apalis worker of entry `i`: apalis-cron's stream fires the slot on this replica, the
    /// claim in [`Self::fire`] makes it single. A stream that ends early (a tick computed in the
    /// past after a stall) is started again.
    async fn run_entry(self: Arc<Self>, i: usize, shutdown: CancellationToken) {
        let name = self.entries[i].name.clone();
        while !shutdown.is_cancelled() {
            let schedule = match parse_schedule(&self.entries[i].schedule) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(entry = %name, error = %e, "bad cron schedule");
                    return;
                }
            };
            let this = self.clone();
            let worker = WorkerBuilder::new(format!("cron-{name}"))
                .backend(CronScheduler::new(schedule))
                .build(move |tick: Tick| {
                    let this = this.clone();
                    async move {
                        let at = DateTime::<Utc>::from_timestamp(tick.get_timestamp() as i64, 0)
                            .unwrap_or_else(|| this.queue.now());
                        this.fire(&this.entries[i], at)
                            .await
                            .map(drop)
                            .map_err(|e| {
                                tracing::warn!(entry = %this.entries[i].name, error = %e, "cron slot not enqueued; the catch-up pass retries it");
                                e
                            })
                    }
                });
            let stop = shutdown.clone();
            let run: BoxFuture<'static, Result<(), apalis_core::error::WorkerError>> =
                Box::pin(worker.run_until(async move {
                    stop.cancelled().await;
                    Ok::<(), std::io::Error>(())
                }));
            if let Err(e) = run.await {
                tracing::warn!(entry = %name, error = %e, "cron stream stopped; restarting it");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}
