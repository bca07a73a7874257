//! Operator queries over the job tables: what `smo-admin` and the REST API show.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Error, JobState, Queue, scheduler::upcoming};

/// One job as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobRow {
    /// Id.
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// State name (see [`JobState`]).
    pub state: String,
    /// Arguments.
    pub args: serde_json::Value,
    /// Attempts started.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Attempts lost to dead workers (not counted in `attempt`; bounded by the worker's `max_lost`).
    pub lost: i32,
    /// Priority.
    pub priority: i16,
    /// Uniqueness key.
    pub unique_key: Option<String>,
    /// Not run before.
    pub run_at: DateTime<Utc>,
    /// Enqueued at.
    pub created_at: DateTime<Utc>,
    /// First started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Latest attempt started at.
    pub attempted_at: Option<DateTime<Utc>>,
    /// Reached a final state at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Worker holding or last holding it.
    pub locked_by: Option<String>,
    /// Every failure: `[{attempt, at, error, permanent, worker}]`.
    pub errors: serde_json::Value,
}

impl JobRow {
    /// The most recent error message, if any.
    pub fn last_error(&self) -> Option<String> {
        self.errors
            .as_array()?
            .last()?
            .get("error")?
            .as_str()
            .map(str::to_string)
    }
    /// The parsed state.
    pub fn job_state(&self) -> Option<JobState> {
        self.state.parse().ok()
    }
}

/// Filters for [`Queue::list`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only jobs whose unique key starts with this.
    pub unique_key_prefix: Option<String>,
    /// At most this many (newest first); default 50.
    pub limit: Option<i64>,
}

/// Counts of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindStats {
    /// Kind.
    pub kind: String,
    /// Jobs per state name (all states present, zeros included).
    pub states: BTreeMap<String, i64>,
    /// Age in seconds of the oldest runnable queued job.
    pub oldest_queued_secs: Option<f64>,
    /// Jobs of this kind that succeeded in the last minute.
    pub succeeded_last_minute: i64,
}

/// Queue-wide statistics.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Per kind.
    pub kinds: Vec<KindStats>,
    /// Succeeded jobs per second over the last minute.
    pub throughput_per_sec: f64,
    /// Age in seconds of the oldest runnable queued job of any kind.
    pub oldest_queued_secs: Option<f64>,
}

/// A worker as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkerRow {
    /// Unique name.
    pub name: String,
    /// Host (pod) name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// Kinds it runs.
    pub kinds: Vec<String>,
    /// Jobs it runs at once.
    pub concurrency: i32,
    /// Started at.
    pub started_at: DateTime<Utc>,
    /// Latest heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Stopped (or declared lost) at.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Why it stopped.
    pub stop_reason: Option<String>,
    /// Jobs it holds now.
    pub in_flight: i64,
}

/// A cron entry as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CronRow {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub schedule: String,
    /// Kind it enqueues.
    pub kind: String,
    /// Next due.
    pub next_run_at: DateTime<Utc>,
    /// Last fired.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Job it last enqueued.
    pub last_job_id: Option<Uuid>,
    /// The following runs after `next_run_at`.
    #[sqlx(skip)]
    pub then: Vec<DateTime<Utc>>,
}

/// kind, state, count, oldest runnable run_at, succeeded in the last minute.
type StatsRow = (String, String, i64, Option<DateTime<Utc>>, i64);

pub(crate) const JOB_COLUMNS: &str = "id, kind, state, args, attempt, max_attempts, lost, priority, unique_key, run_at, \
     created_at, started_at, attempted_at, finished_at, locked_by, errors";

impl Queue {
    /// Jobs matching `filter`, newest first.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<JobRow>, Error> {
        // The state is written into the statement (one of six fixed names, never user text), so
        // the planner sees it and picks the partial index that holds that state's rows: with a
        // parameter, a generic plan walks the whole primary key to find 50 dead jobs.
        let state = match filter.state {
            Some(s) => format!("state = '{}'", s.as_str()),
            None => "true".to_string(),
        };
        let rows = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM smo_jobs.jobs
              WHERE ($1::text IS NULL OR kind = $1) AND {state}
                AND ($2::text IS NULL OR starts_with(unique_key, $2))
              ORDER BY id DESC LIMIT $3"
        )))
        .bind(&filter.kind)
        .bind(&filter.unique_key_prefix)
        .bind(filter.limit.unwrap_or(50).clamp(1, 100_000))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// One job, or [`Error::NotFound`].
    pub async fn get(&self, id: Uuid) -> Result<JobRow, Error> {
        sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM smo_jobs.jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound(id))
    }

    /// Several jobs by id (unknown ids are skipped), newest first.
    pub async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<JobRow>, Error> {
        Ok(sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM smo_jobs.jobs WHERE id = ANY($1) ORDER BY id DESC"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Runs a dead or cancelled job again, now, with a fresh set of attempts (its error history
    /// is kept).
    pub async fn retry(&self, id: Uuid) -> Result<JobRow, Error> {
        let job = self.get(id).await?;
        if !matches!(
            job.job_state(),
            Some(JobState::Dead | JobState::Cancelled | JobState::Retrying)
        ) {
            return Err(Error::InvalidState {
                id,
                state: job.state,
                message: "only dead, cancelled or retrying jobs can be retried".into(),
            });
        }
        let res = sqlx::query(
            "UPDATE smo_jobs.jobs SET state = 'queued', attempt = 0, run_at = $2, finished_at = NULL,
                    locked_by = NULL
              WHERE id = $1 AND state IN ('dead', 'cancelled', 'retrying')",
        )
        .bind(id)
        .bind(self.now())
        .execute(&self.pool)
        .await;
        match res {
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(Error::InvalidState {
                    id,
                    state: job.state,
                    message: format!(
                        "another {} job with unique key {:?} is already queued or running",
                        job.kind,
                        job.unique_key.unwrap_or_default()
                    ),
                });
            }
            r => r?,
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::NOTIFY_CHANNEL)
            .bind(&job.kind)
            .execute(&self.pool)
            .await?;
        self.get(id).await
    }

    /// Cancels a job that has not finished. A running job's handler is not interrupted, but its
    /// outcome is ignored and it is not retried.
    pub async fn cancel(&self, id: Uuid) -> Result<JobRow, Error> {
        let res = sqlx::query(
            "UPDATE smo_jobs.jobs SET state = 'cancelled', finished_at = $2
              WHERE id = $1 AND state IN ('queued', 'retrying', 'running')",
        )
        .bind(id)
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        let job = self.get(id).await?;
        if res.rows_affected() == 0 {
            return Err(Error::InvalidState {
                id,
                state: job.state,
                message: "only queued, retrying or running jobs can be cancelled".into(),
            });
        }
        Ok(job)
    }

    /// Deletes finished jobs in `states` that finished more than `older_than` ago.
    pub async fn purge(
        &self,
        states: &[JobState],
        older_than: chrono::Duration,
    ) -> Result<u64, Error> {
        if let Some(s) = states.iter().find(|s| !s.is_final()) {
            return Err(Error::Config(format!(
                "cannot purge {s} jobs: only succeeded, dead and cancelled jobs can be purged"
            )));
        }
        let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let res =
            sqlx::query("DELETE FROM smo_jobs.jobs WHERE state = ANY($1) AND finished_at < $2")
                .bind(&names)
                .bind(self.now() - older_than)
                .execute(&self.pool)
                .await?;
        Ok(res.rows_affected())
    }

    /// Retention: deletes every finished job, and every stopped worker, older than `older_than`.
    pub async fn prune(&self, older_than: chrono::Duration) -> Result<u64, Error> {
        let n = self
            .purge(
                &[JobState::Succeeded, JobState::Dead, JobState::Cancelled],
                older_than,
            )
            .await?;
        sqlx::query("DELETE FROM smo_jobs.workers WHERE stopped_at < $1")
            .bind(self.now() - older_than)
            .execute(&self.pool)
            .await?;
        Ok(n)
    }

    /// Counts per kind × state, throughput over the last minute, oldest queued age.
    pub async fn stats(&self) -> Result<Stats, Error> {
        let now = self.now();
        // Live jobs are counted from the table (few rows, reached through the partial indexes of
        // queued/retrying and running jobs); finished ones from the counts their trigger keeps,
        // so that millions of finished rows cost nothing here; the last minute's successes
        // through the index of finished jobs.
        let rows: Vec<StatsRow> = sqlx::query_as(
            "SELECT kind, state, count(*), min(run_at) FILTER (WHERE run_at <= $1), 0::bigint
               FROM smo_jobs.jobs WHERE state IN ('queued', 'retrying') GROUP BY kind, state
             UNION ALL
             SELECT kind, state, count(*), NULL, 0 FROM smo_jobs.jobs WHERE state = 'running'
              GROUP BY kind, state
             UNION ALL
             SELECT kind, state, n, NULL, 0 FROM smo_jobs.finished_counts WHERE n <> 0
             UNION ALL
             SELECT kind, 'succeeded', 0, NULL, count(*) FROM smo_jobs.jobs
              WHERE state = 'succeeded' AND finished_at > $1 - interval '1 minute' GROUP BY kind
             ORDER BY 1, 2",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut kinds: BTreeMap<String, KindStats> = BTreeMap::new();
        for (kind, state, count, oldest, recent) in rows {
            let k = kinds.entry(kind.clone()).or_insert_with(|| KindStats {
                kind,
                states: JobState::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), 0))
                    .collect(),
                oldest_queued_secs: None,
                succeeded_last_minute: 0,
            });
            *k.states.entry(state).or_insert(0) += count;
            k.succeeded_last_minute += recent;
            if let Some(o) = oldest {
                let age = (now - o).num_milliseconds() as f64 / 1000.0;
                k.oldest_queued_secs = Some(k.oldest_queued_secs.map_or(age, |a: f64| a.max(age)));
            }
        }
        let kinds: Vec<KindStats> = kinds.into_values().collect();
        let done: i64 = kinds.iter().map(|k| k.succeeded_last_minute).sum();
        let oldest = kinds
            .iter()
            .filter_map(|k| k.oldest_queued_secs)
            .reduce(f64::max);
        Ok(Stats {
            kinds,
            throughput_per_sec: done as f64 / 60.0,
            oldest_queued_secs: oldest,
        })
    }

    /// Workers, live first, with the jobs each holds.
    pub async fn workers(&self, include_stopped: bool) -> Result<Vec<WorkerRow>, Error> {
        Ok(sqlx::query_as::<_, WorkerRow>(
            "SELECT w.name, w.host, w.pid, w.kinds, w.concurrency, w.started_at, w.heartbeat_at,
                    w.stopped_at, w.stop_reason,
                    (SELECT count(*) FROM smo_jobs.jobs j WHERE j.state = 'running' AND j.locked_by = w.name) AS in_flight
               FROM smo_jobs.workers w
              WHERE $1 OR w.stopped_at IS NULL
              ORDER BY w.stopped_at IS NOT NULL, w.heartbeat_at DESC",
        )
        .bind(include_stopped)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Cron entries with their next runs.
    pub async fn cron_entries(&self) -> Result<Vec<CronRow>, Error> {
        let mut rows = sqlx::query_as::<_, CronRow>(
            "SELECT name, schedule, kind, next_run_at, last_run_at, last_job_id FROM smo_jobs.cron ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in &mut rows {
            r.then = upcoming(&r.schedule, r.next_run_at, 3);
        }
        Ok(rows)
    }
}
