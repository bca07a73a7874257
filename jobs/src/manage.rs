//! apalis's management traits for [`PgBackend`]: what apalis-board and other apalis tools call to
//! list, inspect, reschedule and wait for jobs. Each maps onto the engine's own operations, so a
//! job handled through apalis keeps smo-jobs' rules (stored backoff, unique keys, dead state).
//!
//! Job states show as apalis statuses the way apalis's own SQL backends use them: queued and
//! retrying jobs are `Pending` (a filter on `Queued` finds first runs only), running `Running`,
//! succeeded `Done`, dead `Failed`, cancelled `Killed`. Statistics carry the titles apalis-board
//! knows (`TOTAL_JOBS`, `PENDING_JOBS`, …).

use std::{collections::HashMap, time::Duration};

use apalis_core::{
    backend::{
        FetchById, Filter, ListAllTasks, ListQueues, ListTasks, ListWorkers, Metrics, QueueInfo,
        Reschedule, ResumeAbandoned, ResumeById, RunningWorker, StatType, Statistic, TaskResult,
        Update, Vacuum, WaitForCompletion,
    },
    task::{Task, builder::TaskBuilder, status::Status, task_id::TaskId},
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, stream::BoxStream};
use serde_json::Value;
use uuid::Uuid;

use crate::{Error, JobRow, JobState, PgBackend, admin::JOB_COLUMNS, backend::register_worker};

/// The job states an apalis status stands for when filtering.
pub fn states_of(status: &Status) -> &'static [JobState] {
    match status {
        Status::Pending => &[JobState::Queued, JobState::Retrying],
        Status::Queued => &[JobState::Queued],
        Status::Running => &[JobState::Running],
        Status::Done => &[JobState::Succeeded],
        Status::Failed => &[JobState::Dead],
        Status::Killed => &[JobState::Cancelled],
        // A status added by a later apalis matches nothing here.
        _ => &[],
    }
}

/// The apalis status of a job state: waiting jobs (first run or retry) are `Pending`, as
/// apalis's own SQL backends store them.
pub fn status_of(state: JobState) -> Status {
    match state {
        JobState::Queued | JobState::Retrying => Status::Pending,
        JobState::Running => Status::Running,
        JobState::Succeeded => Status::Done,
        JobState::Dead => Status::Failed,
        JobState::Cancelled => Status::Killed,
    }
}

/// Every kind stored, run by a live worker or scheduled, and the built-in ones.
pub async fn known_kinds(queue: &crate::Queue) -> Result<Vec<String>, Error> {
    let mut kinds: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT kind FROM smo_jobs.jobs
         UNION SELECT unnest(kinds) FROM smo_jobs.workers WHERE stopped_at IS NULL
         UNION SELECT kind FROM smo_jobs.cron",
    )
    .fetch_all(queue.pool())
    .await?;
    kinds.extend([crate::NOOP_KIND.to_string(), crate::PRUNE_KIND.to_string()]);
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

fn secs(at: DateTime<Utc>) -> u64 {
    at.timestamp().max(0) as u64
}

/// A stored job as an apalis task (arguments as stored JSON).
pub fn task_of_row(row: &JobRow) -> Task<Value> {
    let state = row.job_state().unwrap_or(JobState::Queued);
    let mut b = TaskBuilder::new(row.args.clone())
        .task_id(TaskId::from_uuid(row.id))
        .queue(row.kind.as_str().into())
        .attempt(row.attempt.max(0) as usize)
        .max_attempts(row.max_attempts.max(1) as usize)
        .status(status_of(state))
        .run_at_timestamp(secs(row.run_at))
        .done_at(row.finished_at.map(secs))
        .lock_at(
            row.attempted_at
                .filter(|_| state == JobState::Running)
                .map(secs),
        )
        .lock_by(row.locked_by.clone())
        .priority(row.priority.max(0) as usize);
    if let Some(k) = &row.unique_key {
        b = b.idempotency_key(k);
    }
    b.build()
}

/// apalis-style statistics (titles apalis-board knows) of `kinds`, or of every kind, from
/// the engine's counts.
fn statistics_of(stats: &crate::Stats, kinds: Option<&[String]>) -> Vec<Statistic> {
    let mut per_state: HashMap<String, i64> = HashMap::new();
    let mut done_last_minute = 0;
    for k in &stats.kinds {
        if kinds.is_some_and(|ks| !ks.contains(&k.kind)) {
            continue;
        }
        for (state, n) in &k.states {
            *per_state.entry(state.clone()).or_default() += n;
        }
        done_last_minute += k.succeeded_last_minute;
    }
    let number = |title: &str, value: i64| Statistic {
        title: title.into(),
        stat_type: StatType::Number,
        value: value.to_string(),
        priority: None,
    };
    let n = |s: JobState| per_state.get(s.as_str()).copied().unwrap_or(0);
    vec![
        number("TOTAL_JOBS", per_state.values().sum()),
        number("PENDING_JOBS", n(JobState::Queued) + n(JobState::Retrying)),
        number("RUNNING_JOBS", n(JobState::Running)),
        number("DONE_JOBS", n(JobState::Succeeded)),
        number("FAILED_JOBS", n(JobState::Dead)),
        number("KILLED_JOBS", n(JobState::Cancelled)),
        number("RETRYING_JOBS", n(JobState::Retrying)),
        number("DONE_JOBS_PAST_MINUTE", done_last_minute),
        Statistic {
            title: "OLDEST_PENDING_JOB_SECS".into(),
            stat_type: StatType::Decimal,
            value: format!("{:.1}", stats.oldest_queued_secs.unwrap_or(0.0)),
            priority: None,
        },
    ]
}

/// The job id of a task handed back by an apalis tool.
fn task_uuid(task: &Task<Value>) -> Result<Uuid, Error> {
    uuid_of(
        task.task_id()
            .ok_or_else(|| Error::Config("the task has no id".into()))?,
    )
}

fn uuid_of(id: &TaskId) -> Result<Uuid, Error> {
    id.as_uuid()
        .or_else(|| id.as_string().and_then(|s| s.parse().ok()))
        .ok_or_else(|| Error::Config(format!("task id {id} is not a job id (a UUID)")))
}

impl<Args> PgBackend<Args> {
    async fn page(
        &self,
        kinds: Option<&[String]>,
        filter: &Filter,
    ) -> Result<Vec<Task<Value>>, Error> {
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM smo_jobs.jobs
              WHERE ($1::text[] IS NULL OR kind = ANY($1)) AND ($2::text[] IS NULL OR state = ANY($2))
              ORDER BY id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(kinds)
        .bind(filter.status.as_ref().map(|s| {
            states_of(s).iter().map(|st| st.as_str()).collect::<Vec<_>>()
        }))
        .bind(i64::from(filter.limit()))
        .bind(i64::from(filter.offset()))
        .fetch_all(&self.queue().pool)
        .await?;
        Ok(rows.iter().map(task_of_row).collect())
    }

    async fn statistics(&self, kinds: Option<&[String]>) -> Result<Vec<Statistic>, Error> {
        Ok(statistics_of(&self.queue().stats().await?, kinds))
    }
    /// `Ok` when a change meant for a waiting job touched it, else why not (its state).
    async fn waiting_or_refuse(&self, id: Uuid, touched: u64, what: &str) -> Result<(), Error> {
        if touched > 0 {
            return Ok(());
        }
        let row = self.queue().get(id).await?;
        Err(Error::InvalidState {
            id,
            state: row.state,
            message: format!("only a queued or retrying job can be {what}"),
        })
    }

    async fn running_workers(&self, all: bool) -> Result<Vec<RunningWorker>, Error> {
        let ws = self.queue().workers(false).await?;
        Ok(ws
            .into_iter()
            .filter(|w| all || w.kinds.iter().any(|k| self.kinds().contains(k)))
            .map(|w| RunningWorker {
                id: w.name,
                queue: w.kinds.join(","),
                backend: "smo-jobs (PostgreSQL)".into(),
                started_at: secs(w.started_at),
                last_heartbeat: secs(w.heartbeat_at),
                layers: format!("concurrency {}, {} in flight", w.concurrency, w.in_flight),
            })
            .collect())
    }
}

impl<Args: 'static> FetchById for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    async fn fetch_by_id(&mut self, task_id: &TaskId) -> Result<Option<Task<Value>>, Error> {
        match self.queue().get(uuid_of(task_id)?).await {
            Ok(row) => Ok(Some(task_of_row(&row))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<Args: 'static> Update for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    /// Changes a job that has not started yet: its arguments, attempts allowed, priority and
    /// `run_at`. A job that runs or has finished is refused.
    async fn update(&mut self, task: Task<Value>) -> Result<(), Error> {
        let id = task_uuid(&task)?;
        let run_at = task
            .run_at()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s as i64, 0));
        let res = sqlx::query(
            "UPDATE smo_jobs.jobs SET args = $2, max_attempts = coalesce($3, max_attempts),
                    priority = coalesce($4, priority), run_at = coalesce($5, run_at)
              WHERE id = $1 AND state IN ('queued', 'retrying')",
        )
        .bind(id)
        .bind(&task.args)
        .bind(task.max_attempts().map(|m| m.min(i32::MAX as usize) as i32))
        .bind(task.priority().map(|p| p.min(i16::MAX as usize) as i16))
        .bind(run_at)
        .execute(&self.queue().pool)
        .await?;
        self.waiting_or_refuse(id, res.rows_affected(), "updated")
            .await
    }
}

impl<Args: 'static> Reschedule for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    /// Moves a waiting job's next run to `wait` from now (its attempts are untouched).
    async fn reschedule(&mut self, task: Task<Value>, wait: Duration) -> Result<(), Error> {
        let id = task_uuid(&task)?;
        let at =
            self.queue().now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let res = sqlx::query(
            "UPDATE smo_jobs.jobs SET run_at = $2 WHERE id = $1 AND state IN ('queued', 'retrying')",
        )
        .bind(id)
        .bind(at)
        .execute(&self.queue().pool)
        .await?;
        self.waiting_or_refuse(id, res.rows_affected(), "rescheduled")
            .await
    }
}

impl<Args: 'static> ResumeById for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    /// Runs a dead, cancelled or retrying job again now, with fresh attempts ([`crate::Queue::retry`]).
    async fn resume_by_id(&mut self, id: TaskId) -> Result<bool, Error> {
        match self.queue().retry(uuid_of(&id)?).await {
            Ok(_) => Ok(true),
            Err(Error::InvalidState { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<Args: 'static> ResumeAbandoned for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    /// Reaps workers whose lease lapsed and hands their running jobs back (the attempt unspent,
    /// the loss counted), as every live worker's heartbeat does.
    async fn resume_abandoned(&mut self) -> Result<usize, Error> {
        let mut conn = self.queue().pool.acquire().await?;
        let cfg = self.config_ref();
        let n = crate::backend::reap(
            &mut conn,
            self.queue().now(),
            cfg.lease(),
            cfg.max_lost,
            &cfg.name,
        )
        .await?;
        Ok(n as usize)
    }
}

impl<Args: 'static> Vacuum for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    /// Deletes every finished job (succeeded, dead, cancelled).
    async fn vacuum(&mut self) -> Result<usize, Error> {
        Ok(self.queue().prune(chrono::Duration::zero()).await? as usize)
    }

    /// Deletes finished jobs that finished more than `duration` ago.
    async fn vacuum_before(&mut self, duration: Duration) -> Result<usize, Error> {
        let d = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        Ok(self.queue().prune(d).await? as usize)
    }
}

impl<Args: 'static> apalis_core::backend::RegisterWorker for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    /// Registers (or revives) a worker row under `worker_id` for this backend's kinds.
    async fn register_worker(&mut self, worker_id: String) -> Result<(), Error> {
        let mut cfg = self.config_ref().clone();
        cfg.name = worker_id;
        register_worker(self.queue().clone(), cfg, self.kinds_arc()).await
    }
}

impl<Args: 'static> ListWorkers for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Sync,
{
    async fn list_workers(&self) -> Result<Vec<RunningWorker>, Error> {
        self.running_workers(false).await
    }

    async fn list_all_workers(&self) -> Result<Vec<RunningWorker>, Error> {
        self.running_workers(true).await
    }
}

impl<Args: 'static> ListQueues for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Sync,
{
    /// One queue per job kind known to the table (stored, run by a live worker, scheduled, or
    /// this backend's), with its counts and the workers that run it.
    async fn list_queues(&self) -> Result<Vec<QueueInfo>, Error> {
        let stats = self.queue().stats().await?;
        let workers = self.queue().workers(false).await?;
        let mut kinds = known_kinds(self.queue()).await?;
        kinds.extend(self.kinds().iter().cloned());
        kinds.sort();
        kinds.dedup();
        let mut out = Vec::new();
        for kind in kinds {
            let one = [kind.clone()];
            let done = stats
                .kinds
                .iter()
                .find(|k| k.kind == kind)
                .map_or(0, |k| k.succeeded_last_minute);
            out.push(QueueInfo {
                stats: statistics_of(&stats, Some(&one)),
                workers: workers
                    .iter()
                    .filter(|w| w.kinds.contains(&kind))
                    .map(|w| w.name.clone())
                    .collect(),
                activity: vec![done.max(0) as usize],
                name: kind,
            });
        }
        Ok(out)
    }
}

impl<Args: 'static> ListTasks for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Sync,
{
    /// Jobs of this backend's kinds, newest first, paged by `filter`.
    async fn list_tasks(&self, filter: &Filter) -> Result<Vec<Task<Value>>, Error> {
        self.page(Some(self.kinds()), filter).await
    }
}

impl<Args: 'static> ListAllTasks for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Sync,
{
    /// Jobs of every kind, newest first, paged by `filter`.
    async fn list_all_tasks(&self, filter: &Filter) -> Result<Vec<Task<Value>>, Error> {
        self.page(None, filter).await
    }
}

impl<Args: 'static> Metrics for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Sync,
{
    async fn global(&self) -> Result<Vec<Statistic>, Error> {
        self.statistics(None).await
    }

    async fn fetch_by_queue(&self) -> Result<Vec<Statistic>, Error> {
        self.statistics(Some(self.kinds())).await
    }
}

impl<Args: 'static> WaitForCompletion<()> for PgBackend<Args>
where
    Self: apalis_core::backend::Backend<Task = Task<Value>, Error = Error>,
    Args: Send,
{
    type ResultStream = BoxStream<'static, Result<TaskResult<()>, Error>>;

    /// Yields each job's outcome once it is final (succeeded, dead or cancelled); the error of a
    /// dead job is its last one. Polls every 50 ms.
    fn wait_for(&mut self, task_ids: impl IntoIterator<Item = TaskId>) -> Self::ResultStream {
        let queue = self.queue().clone();
        let ids: Result<Vec<Uuid>, Error> = task_ids.into_iter().map(|t| uuid_of(&t)).collect();
        futures::stream::once(async move {
            let mut pending = ids?;
            let mut done = Vec::new();
            while !pending.is_empty() {
                let rows = queue.get_many(&pending).await?;
                for row in rows
                    .iter()
                    .filter(|r| r.job_state().is_some_and(JobState::is_final))
                {
                    pending.retain(|id| *id != row.id);
                    done.push(result_of(row));
                }
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok::<_, Error>(futures::stream::iter(done.into_iter().map(Ok)))
        })
        .map(|r| match r {
            Ok(s) => s.boxed(),
            Err(e) => futures::stream::iter([Err(e)]).boxed(),
        })
        .flatten()
        .boxed()
    }

    async fn check_status(
        &mut self,
        task_ids: impl IntoIterator<Item = TaskId> + Send,
    ) -> Result<Vec<TaskResult<()>>, Error> {
        let ids: Vec<Uuid> = task_ids
            .into_iter()
            .map(|t| uuid_of(&t))
            .collect::<Result<_, _>>()?;
        Ok(self
            .queue()
            .get_many(&ids)
            .await?
            .iter()
            .map(result_of)
            .collect())
    }
}

fn result_of(row: &JobRow) -> TaskResult<()> {
    let state = row.job_state().unwrap_or(JobState::Queued);
    TaskResult {
        task_id: TaskId::from_uuid(row.id),
        attempt: row.attempt.max(0) as usize,
        status: status_of(state),
        result: match state {
            JobState::Succeeded => Ok(()),
            JobState::Cancelled => Err("cancelled".into()),
            _ => Err(row.last_error().unwrap_or_else(|| state.as_str().into())),
        },
    }
}
