//! Claiming, River's producer: batched `FOR UPDATE SKIP LOCKED` fetches sized to the free slots,
//! and the claimed rows turned into apalis tasks that carry their [`JobContext`].

use std::{
    any::TypeId,
    sync::{Arc, atomic::Ordering},
};

use apalis_codec::json::JsonCodec;
use apalis_core::{
    backend::codec::Codec,
    task::{Task, builder::TaskBuilder, task_id::TaskId},
};
use serde_json::Value;
use uuid::Uuid;

use super::{Fut, PgBackend, Phase, fut};
use crate::{Error, JobContext, JobError, Queue};

/// A claimed row, before it becomes a task.
pub(super) struct Claimed {
    id: Uuid,
    kind: String,
    args: Value,
    attempt: i32,
    max_attempts: i32,
    epoch: i64,
}

impl<Args: 'static> PgBackend<Args>
where
    JsonCodec<Value>: Codec<Args, Compact = Value>,
    <JsonCodec<Value> as Codec<Args>>::Error: std::fmt::Display,
{
    /// Turns a claimed row into an apalis task carrying its [`JobContext`].
    pub(super) fn task_of(&self, c: Claimed) -> Task<Value> {
        let lease = match &self.state {
            Phase::Running(bg) => bg.lease.hold(),
            // Claims happen only while running; anything else gets no lease to lose.
            _ => crate::Lease::unbounded(),
        };
        let attempt = c.attempt.max(1) as u32;
        let ctx = JobContext {
            id: c.id,
            kind: c.kind.clone(),
            attempt,
            max_attempts: c.max_attempts.max(1) as u32,
            worker: self.config.name.clone(),
            epoch: c.epoch,
            lease,
            queue: self.queue.clone(),
        };
        TaskBuilder::new(c.args)
            .task_id(TaskId::from_uuid(c.id))
            .queue(c.kind.into())
            // apalis counts the attempt up when the task is first polled.
            .attempt((attempt - 1) as usize)
            .max_attempts(ctx.max_attempts as usize)
            .lock_by(Some(self.config.name.clone()))
            .data(ctx)
            .build()
    }

    /// Slots neither running nor already claimed: the most the next claim may take.
    pub(super) fn free_slots(&self) -> usize {
        self.config
            .concurrency
            .saturating_sub(self.shared.in_flight.load(Ordering::Acquire) + self.buffer.len())
    }

    /// Until a NOTIFY for our kinds (or a reap) arrives, or the poll interval passes.
    pub(super) fn idle_wait(&self) -> Fut<()> {
        let wake = self.shared.wake.clone();
        let poll = self.config.poll_interval;
        fut(async move {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        })
    }

    /// A claimed task whose arguments cannot become `Args` never will: it goes dead here
    /// instead of failing the worker's poll.
    pub(super) fn undecodable(&self, task: &Task<Value>) -> Option<String> {
        if TypeId::of::<Args>() == TypeId::of::<Value>() {
            return None;
        }
        let decoded: Result<Args, _> = Codec::<Args>::decode(&self.codec, &task.args);
        decoded.err().map(|e| format!("bad arguments: {e}"))
    }
}

pub(super) async fn fetch(
    queue: Queue,
    worker: String,
    kinds: Arc<Vec<String>>,
    n: usize,
) -> Result<Vec<Claimed>, Error> {
    let now = queue.now();
    let rows: Vec<(Uuid, String, Value, i32, i32, i64)> = sqlx::query_as(
        "WITH next AS (
             SELECT id FROM smo_jobs.jobs
              WHERE state IN ('queued', 'retrying') AND run_at <= $1 AND kind = ANY($2)
              ORDER BY priority DESC, run_at, id
              LIMIT $3
              FOR UPDATE SKIP LOCKED)
         UPDATE smo_jobs.jobs j
            SET state = 'running', locked_by = $4, attempt = j.attempt + 1,
                epoch = j.epoch + 1,
                attempted_at = $1, started_at = coalesce(j.started_at, $1)
           FROM next WHERE j.id = next.id
         RETURNING j.id, j.kind, j.args, j.attempt, j.max_attempts, j.epoch",
    )
    .bind(now)
    .bind(kinds.as_slice())
    .bind(n as i64)
    .bind(&worker)
    .fetch_all(&queue.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, args, attempt, max_attempts, epoch)| Claimed {
            id,
            kind,
            args,
            attempt,
            max_attempts,
            epoch,
        })
        .collect())
}

/// Handlers of an apalis worker over [`crate::PgBackend`] take the context as an argument:
/// `async fn send(mail: Mail, ctx: JobContext) -> Result<(), JobError>`.
impl<Args: Sync> apalis_core::task::from_request::FromRequest<apalis_core::task::Task<Args>>
    for JobContext
{
    type Error = JobError;

    async fn from_request(task: &apalis_core::task::Task<Args>) -> Result<Self, JobError> {
        task.data().get::<JobContext>().cloned().ok_or_else(|| {
            JobError::Permanent("the task carries no JobContext: is its backend PgBackend?".into())
        })
    }
}
