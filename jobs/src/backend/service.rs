//! The apalis service that runs a [`Registry`]'s handlers over a `for_registry` backend, and the
//! interruption that stops them when the shutdown grace ends.

use std::task::{Context, Poll};

use apalis_core::{error::BoxDynError, task::Task};
use futures::{FutureExt, future::BoxFuture};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{JobContext, JobError, Registry};

/// Stops a handler at the end of the shutdown grace period; the job is handed back unspent.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: the worker is shutting down")]
pub(crate) struct Interrupted;
/// The apalis service that runs a [`Registry`]'s handler for each task of a
/// `PgBackend::for_registry` backend: the task's kind picks the handler, its [`JobContext`]
/// travels with it.
#[derive(Clone)]
pub struct JobService {
    registry: Registry,
    grace: CancellationToken,
}

impl JobService {
    /// Runs the handlers of `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            grace: CancellationToken::new(),
        }
    }

    /// Handlers still running when `grace` is cancelled stop, and their jobs are handed back
    /// unspent when the backend closes.
    pub fn with_grace(mut self, grace: CancellationToken) -> Self {
        self.grace = grace;
        self
    }
}

impl tower::Service<Task<Value>> for JobService {
    type Response = ();
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<(), BoxDynError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Value>) -> Self::Future {
        let ctx = task.data().get::<JobContext>().cloned();
        let (args, _) = task.take();
        let Some(ctx) = ctx else {
            return futures::future::ready(Err(JobError::Permanent(
                "a task without its job context".into(),
            )
            .into()))
            .boxed();
        };
        let run = self.registry.call(&ctx.kind.clone(), args, ctx);
        let grace = self.grace.clone();
        async move {
            tokio::select! {
                r = run => r.map_err(Into::into),
                _ = grace.cancelled() => Err(Interrupted.into()),
            }
        }
        .boxed()
    }
}
