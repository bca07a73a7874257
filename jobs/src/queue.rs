use std::{fmt, str::FromStr, sync::Arc};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Clock, Error, JobArgs, NOTIFY_CHANNEL, SystemClock};

/// Where a job is in its life. `queued` and `retrying` are runnable once `run_at` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its first run.
    Queued,
    /// Failed, waiting for its backoff to pass.
    Retrying,
    /// Held by a worker.
    Running,
    /// Done.
    Succeeded,
    /// Out of attempts, or failed permanently; keeps its last error.
    Dead,
    /// Cancelled by an operator.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 6] = [
        Self::Queued,
        Self::Retrying,
        Self::Running,
        Self::Succeeded,
        Self::Dead,
        Self::Cancelled,
    ];
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }
    /// True for states a job never leaves by itself.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            format!("unknown state {s:?}; expected one of queued, retrying, running, succeeded, dead, cancelled")
        })
    }
}

/// An untyped job ready to insert; built from [`JobArgs`] or by admin tools.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Stable kind name.
    pub kind: String,
    /// JSON arguments.
    pub args: serde_json::Value,
    /// Uniqueness key among live jobs of the same kind.
    pub unique_key: Option<String>,
    /// Attempts before dead.
    pub max_attempts: u32,
    /// Higher runs first.
    pub priority: i16,
    /// Not before this instant (default: now).
    pub run_at: Option<DateTime<Utc>>,
}

impl NewJob {
    /// From typed arguments, with the kind's defaults.
    pub fn from_args<A: JobArgs>(args: &A) -> Result<Self, Error> {
        Ok(Self {
            kind: A::KIND.to_string(),
            args: serde_json::to_value(args)?,
            unique_key: args.unique_key(),
            max_attempts: A::MAX_ATTEMPTS,
            priority: 0,
            run_at: None,
        })
    }
    /// Delays the first run.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Sets the priority (higher first).
    pub fn priority(mut self, p: i16) -> Self {
        self.priority = p;
        self
    }
}

/// The outcome of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The new job, or the live job that already holds the unique key.
    pub id: Uuid,
    /// False when an existing live job with the same unique key was returned instead.
    pub created: bool,
}

/// A handle on the job table: enqueue (in the caller's transaction or alone) and administer.
#[derive(Clone)]
pub struct Queue {
    pub(crate) pool: PgPool,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Queue {
    /// A queue on `pool` with wall-clock time.
    pub fn new(pool: PgPool) -> Self {
        Self::with_clock(pool, Arc::new(SystemClock))
    }
    /// A queue with an injected clock (tests move time instead of sleeping).
    pub fn with_clock(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
    /// The pool the queue uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
    /// The queue's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
    /// The clock shared with workers and schedulers built from this queue.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Enqueues one job in its own transaction.
    pub async fn enqueue<A: JobArgs>(&self, args: &A) -> Result<Enqueued, Error> {
        let mut conn = self.pool.acquire().await?;
        self.enqueue_in(&mut conn, args).await
    }

    /// Enqueues one job on the caller's connection — pass `&mut *tx` to make the job commit or roll
    /// back together with the caller's own writes.
    pub async fn enqueue_in<A: JobArgs>(
        &self,
        conn: &mut PgConnection,
        args: &A,
    ) -> Result<Enqueued, Error> {
        let job = NewJob::from_args(args)?;
        let mut out = self
            .enqueue_many_in(conn, std::slice::from_ref(&job))
            .await?;
        Ok(out.remove(0))
    }

    /// Enqueues many jobs with one statement on the caller's connection. The result has one entry
    /// per input, in order; a job whose unique key is already live returns the live job's id.
    pub async fn enqueue_many_in(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
    ) -> Result<Vec<Enqueued>, Error> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
        let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
        let args: Vec<&serde_json::Value> = jobs.iter().map(|j| &j.args).collect();
        let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.unique_key.as_deref()).collect();
        let max: Vec<i32> = jobs
            .iter()
            .map(|j| j.max_attempts.clamp(1, i32::MAX as u32) as i32)
            .collect();
        let prio: Vec<i16> = jobs.iter().map(|j| j.priority).collect();
        let run_at: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.run_at.unwrap_or(now)).collect();
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO smo_jobs.jobs (id, kind, args, unique_key, max_attempts, priority, run_at, created_at)
             SELECT i, k, a, u, m, p, r, $8
               FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::int4[], $6::int2[], $7::timestamptz[])
                    AS t(i, k, a, u, m, p, r)
             ON CONFLICT (kind, unique_key)
                WHERE unique_key IS NOT NULL AND state IN ('queued', 'retrying', 'running')
                DO NOTHING
             RETURNING id",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&args)
        .bind(&keys)
        .bind(&max)
        .bind(&prio)
        .bind(&run_at)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;

        count_enqueued(jobs, &ids, &inserted);
        let mut kinds_to_wake: Vec<&str> = kinds.clone();
        kinds_to_wake.sort_unstable();
        kinds_to_wake.dedup();
        if !inserted.is_empty() {
            sqlx::query("SELECT pg_notify($1, k) FROM unnest($2::text[]) AS k")
                .bind(NOTIFY_CHANNEL)
                .bind(&kinds_to_wake)
                .execute(&mut *conn)
                .await?;
        }
        if inserted.len() == jobs.len() {
            return Ok(ids
                .into_iter()
                .map(|id| Enqueued { id, created: true })
                .collect());
        }
        // Some hit a live unique key: report the live job's id instead.
        let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        let mut out = Vec::with_capacity(jobs.len());
        for (job, id) in jobs.iter().zip(ids) {
            if inserted.contains(&id) {
                out.push(Enqueued { id, created: true });
                continue;
            }
            let existing: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM smo_jobs.jobs WHERE kind = $1 AND unique_key = $2
                   AND state IN ('queued', 'retrying', 'running') LIMIT 1",
            )
            .bind(&job.kind)
            .bind(&job.unique_key)
            .fetch_optional(&mut *conn)
            .await?;
            // Two identical keys inside one batch: the first one inserted is the live job.
            out.push(Enqueued {
                id: existing.unwrap_or(id),
                created: false,
            });
        }
        Ok(out)
    }

    /// Enqueues many jobs in one transaction; returns how many were created.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<usize, Error> {
        let mut tx = self.pool.begin().await?;
        let out = self.enqueue_many_in(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(out.iter().filter(|e| e.created).count())
    }
}

/// Counts the rows actually inserted, per kind, in this process's metrics.
fn count_enqueued(jobs: &[NewJob], ids: &[Uuid], inserted: &[Uuid]) {
    let mut per_kind: std::collections::BTreeMap<&str, u64> = Default::default();
    if inserted.len() == jobs.len() {
        for j in jobs {
            *per_kind.entry(j.kind.as_str()).or_default() += 1;
        }
    } else {
        let inserted: std::collections::HashSet<&Uuid> = inserted.iter().collect();
        for (j, id) in jobs.iter().zip(ids) {
            if inserted.contains(id) {
                *per_kind.entry(j.kind.as_str()).or_default() += 1;
            }
        }
    }
    for (kind, n) in per_kind {
        crate::metrics::ENQUEUED.inc_by(&[kind], n);
    }
}
