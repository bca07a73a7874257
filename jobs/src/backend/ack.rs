//! Acknowledging, River's completer: the backend's middleware sees every outcome, and one
//! writer records them in batches keyed by (id, epoch).

use std::{
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::{error::BoxDynError, task::Task};
use chrono::{DateTime, Utc};
use futures::{FutureExt, future::BoxFuture};
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    Shared, WorkerConfig,
    heartbeat::{give_back_lost, notify_reaped},
    service::Interrupted,
};
use crate::{JobContext, JobError, Queue, job::RUNNING_BY_ID, metrics};

/// The backend's middleware: it sees every task's outcome after the user's layers and queues
/// the acknowledgement (success, failure with backoff or death, snooze, abandonment) for the
/// batched writer; it also frees the task's claim slot.
#[derive(Clone)]
pub struct AckLayer {
    pub(super) shared: Arc<Shared>,
    pub(super) job_timeout: Option<Duration>,
}

impl<S> tower::Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> AckService<S> {
        AckService {
            inner,
            shared: self.shared.clone(),
            job_timeout: self.job_timeout,
        }
    }
}

/// See [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    shared: Arc<Shared>,
    job_timeout: Option<Duration>,
}

/// Frees a claim slot when the task's future ends, however it ends.
struct SlotGuard(Arc<Shared>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.slot.wake();
    }
}

impl<S, Args> tower::Service<Task<Args>> for AckService<S>
where
    S: tower::Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let ctx = task.data().get::<JobContext>().cloned();
        let guard = SlotGuard(self.shared.clone());
        let acks = self.shared.acks.clone();
        let timeout = self.job_timeout;
        let fut = self.inner.call(task);
        async move {
            let _guard = guard;
            let Some(ctx) = ctx else {
                return fut.await.map_err(Into::into);
            };
            metrics::STARTED.inc(&[&ctx.kind]);
            let started = std::time::Instant::now();
            let res: Result<S::Response, BoxDynError> = fut.await.map_err(Into::into);
            let (res, outcome) = match res {
                Ok(r) => (Ok(r), Ok(())),
                Err(e) => match outcome_of(e, timeout) {
                    // Interrupted by shutdown: left running, handed back on close.
                    Err(e) => return Err(e),
                    Ok(je) => (Err(Box::new(je.clone()) as BoxDynError), Err(je)),
                },
            };
            observe(&ctx, &outcome, started.elapsed().as_secs_f64());
            let _ = acks.send(AckMsg::Done(Completion::of(&ctx, outcome)));
            res
        }
        .boxed()
    }
}

/// What an error from the layers means for the job, or the error itself back when it is a
/// shutdown interruption (nothing is recorded then).
fn outcome_of(e: BoxDynError, timeout: Option<Duration>) -> Result<JobError, BoxDynError> {
    if e.is::<Interrupted>() {
        return Err(e);
    }
    if let Some(je) = e.downcast_ref::<JobError>() {
        return Ok(je.clone());
    }
    if e.is::<tower::timeout::error::Elapsed>() {
        let limit = timeout.map(|t| format!(" after {t:?}")).unwrap_or_default();
        return Ok(JobError::Transient(format!("timed out{limit}")));
    }
    if e.is::<apalis_core::error::AbortError>() {
        return Ok(JobError::Permanent(e.to_string()));
    }
    match e.downcast::<tokio::task::JoinError>() {
        Ok(join) if join.is_panic() => {
            let panic = join.into_panic();
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Ok(JobError::Transient(format!("handler panicked: {msg}")))
        }
        Ok(join) => Ok(JobError::Transient(format!("handler task ended: {join}"))),
        Err(e) => Ok(JobError::Transient(e.to_string())),
    }
}

fn observe(ctx: &JobContext, outcome: &Result<(), JobError>, secs: f64) {
    let kind = ctx.kind.as_str();
    match outcome {
        Ok(()) => {
            metrics::SUCCEEDED.inc(&[kind]);
            metrics::DURATION.observe(&[kind, "succeeded"], secs);
        }
        Err(JobError::Snooze(d)) => {
            tracing::debug!(job = %ctx.id, kind, delay = ?d, "job snoozed");
            metrics::SNOOZED.inc(&[kind]);
        }
        Err(JobError::Fenced(why)) => {
            tracing::warn!(job = %ctx.id, kind, epoch = ctx.epoch, %why, "attempt abandoned");
            metrics::FENCED.inc(&[kind]);
        }
        Err(e) => {
            tracing::warn!(job = %ctx.id, kind, attempt = ctx.attempt, error = %e, "job failed");
            metrics::FAILED.inc(&[kind]);
            metrics::DURATION.observe(&[kind, "failed"], secs);
            if is_final(e, ctx.attempt, ctx.max_attempts) {
                metrics::DEAD.inc(&[kind]);
            }
        }
    }
}

pub(super) struct Completion {
    id: Uuid,
    epoch: i64,
    attempt: u32,
    max_attempts: u32,
    result: Result<(), JobError>,
}

impl Completion {
    pub(super) fn of(ctx: &JobContext, result: Result<(), JobError>) -> Self {
        Self {
            id: ctx.id,
            epoch: ctx.epoch,
            attempt: ctx.attempt,
            max_attempts: ctx.max_attempts,
            result,
        }
    }
}

pub(super) enum AckMsg {
    Done(Completion),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// Most successes one acknowledgement statement carries.
const ACK_CHUNK: usize = 1024;

/// Writes outcomes in batches: one statement acknowledges every success that arrived meanwhile
/// (up to [`ACK_CHUNK`] per statement).
pub(super) async fn ack_loop(
    queue: Queue,
    cfg: WorkerConfig,
    mut rx: mpsc::UnboundedReceiver<AckMsg>,
) {
    let mut buf = Vec::with_capacity(4096);
    let mut ack_conn: Option<PgConnection> = None;
    while rx.recv_many(&mut buf, 4096).await > 0 {
        let (mut ok, mut ok_epochs) = (Vec::new(), Vec::new());
        let mut flushed = Vec::new();
        for msg in buf.drain(..) {
            let c = match msg {
                AckMsg::Done(c) => c,
                AckMsg::Flush(tx) => {
                    flushed.push(tx);
                    continue;
                }
            };
            match &c.result {
                Ok(()) => {
                    ok.push(c.id);
                    ok_epochs.push(c.epoch);
                }
                Err(JobError::Snooze(delay)) => {
                    let at = queue.now()
                        + chrono::Duration::from_std(*delay).unwrap_or(chrono::Duration::MAX);
                    if let Err(db) = with_retries(|| record_snooze(&queue, &c, at)).await {
                        tracing::error!(job = %c.id, error = %db, "could not snooze; the job will be reaped");
                    }
                }
                Err(JobError::Fenced(why)) => {
                    // Usually a no-op: a peer already reclaimed the job. If none did yet (the
                    // database was only briefly out of reach), hand it back at once.
                    if let Err(db) = with_retries(|| record_abandoned(&queue, &cfg, &c, why)).await
                    {
                        tracing::warn!(job = %c.id, error = %db, "could not hand back an abandoned attempt; the job will be reaped");
                    }
                }
                Err(e) => {
                    let now = queue.now();
                    if let Err(db) = with_retries(|| record_failure(&queue, &cfg, &c, e, now)).await
                    {
                        tracing::error!(job = %c.id, error = %db, "could not record failure; the job will be reaped");
                    }
                }
            }
        }
        let now = queue.now();
        for (ids, epochs) in ok.chunks(ACK_CHUNK).zip(ok_epochs.chunks(ACK_CHUNK)) {
            if let Err(e) = acknowledge(&mut ack_conn, &queue, ids, epochs, now).await {
                tracing::error!(error = %e, jobs = ids.len(), "could not acknowledge jobs; they will run again");
            }
        }
        for tx in flushed {
            let _ = tx.send(());
        }
    }
}

/// The acknowledgement: `$1` ids, `$2` their epochs, `$3` now.
pub(super) fn ack_sql() -> String {
    format!(
        "UPDATE smo_jobs.jobs j SET state = 'succeeded', finished_at = $3
           FROM unnest($1::uuid[], $2::bigint[]) AS a(id, epoch)
          WHERE j.id = a.id AND j.epoch = a.epoch AND {RUNNING_BY_ID}"
    )
}

/// How the acknowledger's connection plans, the acknowledgement being all it runs: one generic
/// plan (`force_generic_plan`), with no sequential scan, hash join or merge join to choose, so
/// the plan is one primary-key probe per id, at every size of the table and whatever its
/// statistics say.
///
/// Planned for the array it is given, the statement scanned the whole table whenever the
/// statistics thought the table small. A generic plan alone was not enough either: planned
/// when the statistics were taken of a nearly empty table (a queue just drained and vacuumed),
/// it was a sequential scan and a hash join, kept as the table grew to 600,000 rows, each
/// acknowledgement slower than the last (p99 enqueue→start rising from 1 to 21 ms in 60 s at
/// 10,000 jobs/s). See also [`RUNNING_BY_ID`].
pub(super) const ACK_SESSION: &str = "SET plan_cache_mode = force_generic_plan;
     SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off";

/// Marks `ids` succeeded where they still run under `epochs`, on the acknowledger's own
/// connection (opened on first use, reopened after an error; retried as [`with_retries`] does),
/// planned as [`ACK_SESSION`] says.
async fn acknowledge(
    conn: &mut Option<PgConnection>,
    queue: &Queue,
    ids: &[Uuid],
    epochs: &[i64],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut delay = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        let res = async {
            if conn.is_none() {
                let mut c = PgConnection::connect_with(&queue.pool.connect_options()).await?;
                sqlx::raw_sql(ACK_SESSION).execute(&mut c).await?;
                *conn = Some(c);
            }
            let c = conn.as_mut().expect("connected above");
            // Keyed by (id, epoch): the acknowledgement of an attempt that was superseded
            // meanwhile matches nothing.
            sqlx::query(sqlx::AssertSqlSafe(ack_sql()))
                .bind(ids)
                .bind(epochs)
                .bind(now)
                .execute(c)
                .await
        }
        .await;
        match res {
            Ok(_) => return Ok(()),
            Err(e) if tries < 5 => {
                tracing::warn!(error = %e, "acknowledging failed; reconnecting and retrying");
                *conn = None;
                tries += 1;
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                *conn = None;
                return Err(e);
            }
        }
    }
}

async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..5 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tracing::warn!(error = %e, "database write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    f().await
}

/// A failure is final when the error is permanent or no attempt is left.
pub(crate) fn is_final(e: &JobError, attempt: u32, max_attempts: u32) -> bool {
    e.is_permanent() || attempt >= max_attempts
}

/// Puts a snoozed job back without spending its attempt or recording an error.
async fn record_snooze(
    queue: &Queue,
    c: &Completion,
    run_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE smo_jobs.jobs j
            SET state = CASE WHEN attempt > 1 THEN 'retrying' ELSE 'queued' END,
                attempt = attempt - 1, run_at = $2, locked_by = NULL
          WHERE j.id = $1 AND j.epoch = $3 AND {RUNNING_BY_ID}"
    )))
    .bind(c.id)
    .bind(run_at)
    .bind(c.epoch)
    .execute(&queue.pool)
    .await?;
    Ok(())
}

/// Hands back a job whose attempt stopped because it lost its lease, like a loss to a dead
/// worker: the attempt is given back and counted in `lost`.
async fn record_abandoned(
    queue: &Queue,
    cfg: &WorkerConfig,
    c: &Completion,
    why: &str,
) -> Result<(), sqlx::Error> {
    let res = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE smo_jobs.jobs j SET {}
          WHERE j.id = $3 AND j.epoch = $4 AND {RUNNING_BY_ID}",
        give_back_lost("$5::text", "$6::text")
    )))
    .bind(queue.now())
    .bind(cfg.max_lost.max(1) as i32)
    .bind(c.id)
    .bind(c.epoch)
    .bind(format!("abandoned by worker {}: {why}", cfg.name))
    .bind(&cfg.name)
    .execute(&queue.pool)
    .await?;
    if res.rows_affected() > 0 {
        notify_reaped(&queue.pool).await?;
    }
    Ok(())
}

async fn record_failure(
    queue: &Queue,
    cfg: &WorkerConfig,
    c: &Completion,
    e: &JobError,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let dead = is_final(e, c.attempt, c.max_attempts);
    let run_at = if dead {
        now
    } else {
        now + chrono::Duration::from_std(cfg.backoff.delay(c.attempt, c.id))
            .unwrap_or(chrono::Duration::MAX)
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE smo_jobs.jobs j
            SET state = $2, run_at = $3, finished_at = CASE WHEN $2 = 'dead' THEN $4 END,
                errors = errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'at', $4, 'error', $5::text, 'permanent', $6, 'worker', $7::text))
          WHERE j.id = $1 AND j.epoch = $8 AND {RUNNING_BY_ID}"
    )))
    .bind(c.id)
    .bind(if dead { "dead" } else { "retrying" })
    .bind(run_at)
    .bind(now)
    .bind(e.to_string())
    .bind(e.is_permanent())
    .bind(&cfg.name)
    .bind(c.epoch)
    .execute(&queue.pool)
    .await?;
    Ok(())
}
