//! Pushing through apalis' `Sink` (`TaskSink`): tasks buffered and inserted as jobs on flush.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use apalis_core::task::Task;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde_json::Value;

use super::{PgBackend, fut};
use crate::{Error, NewJob};

/// Pushing through apalis (`TaskSink::push`, `push_bulk`, …): tasks are buffered and inserted by
/// one statement per flush. The kind is the task's apalis queue, else the backend's one kind; an
/// idempotency key is the job's unique key. To enqueue inside your own transaction use
/// [`Queue::enqueue_in`](crate::Queue::enqueue_in), which apalis has no notion of.
impl<Args> futures::Sink<Task<Value>> for PgBackend<Args> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, task: Task<Value>) -> Result<(), Error> {
        self.get_mut().outbox.push(task);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.pushing.is_none() {
            if this.outbox.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let jobs = std::mem::take(&mut this.outbox)
                .into_iter()
                .map(|t| this.new_job(t))
                .collect::<Result<Vec<_>, _>>()?;
            let queue = this.queue.clone();
            this.pushing = Some(fut(
                async move { queue.enqueue_many(&jobs).await.map(drop) },
            ));
        }
        let pushing = this.pushing.as_mut().expect("set above");
        let res = futures::ready!(pushing.get_mut().poll_unpin(cx));
        this.pushing = None;
        Poll::Ready(res)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

impl<Args> PgBackend<Args> {
    fn new_job(&self, task: Task<Value>) -> Result<NewJob, Error> {
        let kind = match (task.queue(), self.kinds.as_slice()) {
            (Some(q), _) => q.as_ref().to_string(),
            (None, [one]) => one.clone(),
            (None, _) => {
                return Err(Error::Config(
                    "a task pushed to a backend of several kinds must name its kind as its queue"
                        .into(),
                ));
            }
        };
        let unique_key = match task.idempotency_key() {
            Some(k) => Some(k.to_string()),
            None => self.unique_key.and_then(|f| f(&task.args)),
        };
        let run_at = task
            .run_at()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s as i64, 0))
            .filter(|at| *at > self.queue.now());
        Ok(NewJob {
            kind,
            unique_key,
            max_attempts: task
                .max_attempts()
                .map(|m| m as u32)
                .unwrap_or(self.max_attempts),
            priority: task
                .priority()
                .map(|p| p.min(i16::MAX as usize) as i16)
                .unwrap_or(0),
            run_at,
            args: task.args,
        })
    }
}
