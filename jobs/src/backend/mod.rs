//! smo-jobs as an apalis 1.0 backend: [`PgBackend`] feeds an apalis `Worker` from the
//! `smo_jobs.jobs` table.
//!
//! What apalis drives: the worker loop (`poll_ready` → service ready → `poll_next` → call), the
//! tower layers around the handler (concurrency, timeout, tracing, spawning), graceful drain, and
//! `TaskSink` pushes. What this backend adds underneath, unchanged from the engine it replaces:
//! batched claims with `FOR UPDATE SKIP LOCKED` sized to the free slots and woken by
//! `LISTEN/NOTIFY`, a fencing epoch per claim, a heartbeat on its own connection that renews the
//! worker's lease and reaps dead peers, batched acknowledgements keyed by (id, epoch) through the
//! backend's middleware ([`AckLayer`]), stored backoff, snoozes, dead state with every error, and
//! on close the hand-back of whatever was claimed but not finished.
//!
//! Split the way River splits its engine: [`claim`] fetches (the producer), [`ack`] records
//! outcomes (the completer), [`heartbeat`] keeps the worker's row alive and reaps lost peers
//! (the rescuer), [`listen`](mod@listen) wakes the claim loop (the notifier), [`config`] holds
//! the knobs; [`push`] is apalis' `Sink`, [`service`] runs a [`Registry`]'s handlers.

mod ack;
mod claim;
mod config;
mod heartbeat;
mod listen;
mod push;
mod service;

use std::{
    collections::VecDeque,
    marker::PhantomData,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use apalis_codec::json::JsonCodec;
use apalis_core::{
    backend::{Backend, BackendConfig, WireFormatBackend, codec::Codec, finalize::Durable},
    task::Task,
    worker::context::WorkerContext,
};
use futures::{FutureExt, future::BoxFuture, task::AtomicWaker};
use serde_json::Value;
use sync_wrapper::SyncWrapper;
use tokio::{
    sync::{Notify, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) use self::heartbeat::{reap, register_worker};
pub use self::{
    ack::{AckLayer, AckService},
    config::{Backoff, WorkerConfig, worker_name},
    service::JobService,
};
use self::{
    ack::{AckMsg, Completion, ack_loop},
    claim::{Claimed, fetch},
    heartbeat::heartbeat_loop,
    listen::listen,
};
use crate::{
    Error, JobArgs, JobContext, JobError, NOTIFY_CHANNEL, Queue, Registry, lease::LeaseState,
};

/// An apalis backend over the `smo_jobs.jobs` table for the jobs of some kinds.
///
/// `Args` is what handlers receive after decoding: a [`JobArgs`] type for a worker of one kind
/// (`PgBackend::<MyJob>::new`), or raw JSON for a worker that serves a [`Registry`] of kinds
/// (`PgBackend::for_registry`; the kind travels as the task's apalis queue). Every task carries
/// its [`JobContext`] (an apalis `FromRequest` extractor), which holds the attempt's lease and
/// fencing epoch.
pub struct PgBackend<Args = Value> {
    queue: Queue,
    config: WorkerConfig,
    kinds: Arc<Vec<String>>,
    codec: JsonCodec<Value>,
    shared: Arc<Shared>,
    /// Outcomes for the acknowledger, handed to it when the backend starts.
    ack_rx: Option<mpsc::UnboundedReceiver<AckMsg>>,
    /// Tasks pushed through the apalis `Sink`, inserted on flush.
    outbox: Vec<Task<Value>>,
    /// Defaults of a typed kind for pushed tasks: attempts, and its unique key from the JSON.
    max_attempts: u32,
    unique_key: Option<fn(&Value) -> Option<String>>,
    state: Phase,
    buffer: VecDeque<Task<Value>>,
    /// A claim in flight, and how many jobs it asked for.
    fetching: Option<(Claim, usize)>,
    idle: Option<Fut<()>>,
    fetch_errors: u32,
    closing: Option<Fut<Result<(), Error>>>,
    pushing: Option<Fut<Result<(), Error>>>,
    _args: PhantomData<fn() -> Args>,
}

/// A boxed future the backend polls through `&mut self` only, so the backend stays `Sync` (apalis
/// tools share it behind a lock).
type Fut<T> = SyncWrapper<BoxFuture<'static, T>>;

/// A claim of jobs in flight.
type Claim = Fut<Result<Vec<Claimed>, Error>>;

fn fut<T>(f: impl std::future::Future<Output = T> + Send + 'static) -> Fut<T> {
    SyncWrapper::new(Box::pin(f))
}

enum Phase {
    New,
    Registering(Fut<Result<(), Error>>),
    Running(Background),
    Closed,
}

/// The tasks a running backend owns beside the claim loop.
struct Background {
    stop: CancellationToken,
    heartbeat: JoinHandle<()>,
    listener: JoinHandle<()>,
    acker: JoinHandle<()>,
    /// The worker's lease, renewed by the heartbeat; each claimed task holds it.
    lease: Arc<LeaseState>,
}

/// State shared by the backend and its acknowledgement middleware.
struct Shared {
    /// Tasks handed to the worker and not yet finished: the claim budget is what is left of
    /// `concurrency`, so a worker never claims a job it cannot start (peers may run it).
    in_flight: AtomicUsize,
    /// Woken when a task finishes and a slot frees up.
    slot: AtomicWaker,
    /// Woken by NOTIFY for our kinds (and by reaps).
    wake: Arc<Notify>,
    acks: mpsc::UnboundedSender<AckMsg>,
}

impl<Args> PgBackend<Args> {
    fn with_kinds(queue: Queue, config: WorkerConfig, kinds: Vec<String>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            queue,
            config,
            kinds: Arc::new(kinds),
            codec: JsonCodec::default(),
            shared: Arc::new(Shared {
                in_flight: AtomicUsize::new(0),
                slot: AtomicWaker::new(),
                wake: Arc::new(Notify::new()),
                acks: tx,
            }),
            ack_rx: Some(rx),
            outbox: Vec::new(),
            max_attempts: 10,
            unique_key: None,
            state: Phase::New,
            buffer: VecDeque::new(),
            fetching: None,
            idle: None,
            fetch_errors: 0,
            closing: None,
            pushing: None,
            _args: PhantomData,
        }
    }

    /// The kinds this backend claims.
    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }

    /// The queue (pool and clock) behind the backend.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub(crate) fn config_ref(&self) -> &WorkerConfig {
        &self.config
    }

    pub(crate) fn kinds_arc(&self) -> Arc<Vec<String>> {
        self.kinds.clone()
    }
}

impl<A: JobArgs> PgBackend<A> {
    /// A backend for the jobs of one typed kind, `A::KIND`.
    pub fn new(queue: Queue, config: WorkerConfig) -> Self {
        let mut b = Self::with_kinds(queue, config, vec![A::KIND.to_string()]);
        b.max_attempts = A::MAX_ATTEMPTS;
        b.unique_key = Some(|v| serde_json::from_value::<A>(v.clone()).ok()?.unique_key());
        b
    }
}

impl PgBackend<Value> {
    /// A backend for every kind of `registry`, handing raw JSON to [`crate::JobService`].
    pub fn for_registry(queue: Queue, config: WorkerConfig, registry: &Registry) -> Self {
        Self::with_kinds(queue, config, registry.kinds())
    }

    /// A backend for the given kinds, as raw JSON (what apalis-board and admin tools use).
    pub fn for_kinds(queue: Queue, config: WorkerConfig, kinds: Vec<String>) -> Self {
        Self::with_kinds(queue, config, kinds)
    }
}

impl<Args> Clone for PgBackend<Args> {
    /// A second handle on the same table and kinds, for pushing and administration; it claims
    /// and acknowledges on its own if polled.
    fn clone(&self) -> Self {
        let mut b = Self::with_kinds(
            self.queue.clone(),
            self.config.clone(),
            self.kinds.as_ref().clone(),
        );
        b.max_attempts = self.max_attempts;
        b.unique_key = self.unique_key;
        b
    }
}

impl<Args> Drop for PgBackend<Args> {
    fn drop(&mut self) {
        if let Phase::Running(bg) = &self.state {
            bg.stop.cancel();
        }
    }
}

impl<Args: 'static> PgBackend<Args>
where
    JsonCodec<Value>: Codec<Args, Compact = Value>,
    <JsonCodec<Value> as Codec<Args>>::Error: std::fmt::Display,
{
    /// Starts what runs beside the claim loop once the worker is registered.
    fn start_background(&mut self) -> Background {
        let cfg = &self.config;
        let lease = LeaseState::new(cfg.renew_deadline());
        let stop = CancellationToken::new();
        let rx = self.ack_rx.take().expect("a backend is started once");
        Background {
            listener: tokio::spawn(listen(
                self.queue.pool.clone(),
                self.kinds.iter().cloned().collect(),
                self.shared.wake.clone(),
                stop.clone(),
            )),
            heartbeat: tokio::spawn(heartbeat_loop(
                self.queue.clone(),
                cfg.clone(),
                lease.clone(),
                stop.clone(),
            )),
            lease,
            acker: tokio::spawn(ack_loop(self.queue.clone(), cfg.clone(), rx)),
            stop,
        }
    }
}

impl<Args: 'static> Backend for PgBackend<Args>
where
    JsonCodec<Value>: Codec<Args, Compact = Value>,
    <JsonCodec<Value> as Codec<Args>>::Error: std::fmt::Display,
{
    type Task = Task<Value>;
    type Error = Error;

    fn poll_ready(&mut self, cx: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Error>> {
        loop {
            match &mut self.state {
                Phase::Running(_) => return Poll::Ready(Ok(())),
                Phase::Closed => {
                    return Poll::Ready(Err(Error::Config("the backend was closed".into())));
                }
                Phase::New => {
                    let cfg = &self.config;
                    if cfg.concurrency == 0 || cfg.batch_size == 0 {
                        return Poll::Ready(Err(Error::Config(
                            "worker concurrency and batch size must be at least 1".into(),
                        )));
                    }
                    if cfg.renew_deadline() >= cfg.lease() || cfg.renew_deadline().is_zero() {
                        return Poll::Ready(Err(Error::Config(format!(
                            "the renew deadline ({:?}) must be positive and shorter than the lease \
                             ({:?} = heartbeat interval × missed heartbeats)",
                            cfg.renew_deadline(),
                            cfg.lease()
                        ))));
                    }
                    let fut = register_worker(self.queue.clone(), cfg.clone(), self.kinds.clone());
                    self.state = Phase::Registering(self::fut(fut));
                }
                Phase::Registering(fut) => match fut.get_mut().poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        self.state = Phase::Closed;
                        return Poll::Ready(Err(e));
                    }
                    Poll::Ready(Ok(())) => {
                        tracing::info!(worker = %self.config.name, kinds = ?self.kinds,
                            concurrency = self.config.concurrency, "worker started");
                        let bg = self.start_background();
                        self.state = Phase::Running(bg);
                    }
                },
            }
        }
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Task<Value>, Error>>> {
        loop {
            let busy = self.shared.in_flight.load(Ordering::Acquire);
            if busy < self.config.concurrency
                && let Some(task) = self.buffer.pop_front()
            {
                if let Some(why) = self.undecodable(&task) {
                    if let Some(ctx) = task.data().get::<JobContext>() {
                        let _ = self.shared.acks.send(AckMsg::Done(Completion::of(
                            ctx,
                            Err(JobError::Permanent(why)),
                        )));
                    }
                    continue;
                }
                self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
                return Poll::Ready(Some(Ok(task)));
            }
            if busy >= self.config.concurrency {
                // Woken by the acknowledgement middleware when a task finishes.
                self.shared.slot.register(cx.waker());
                if self.shared.in_flight.load(Ordering::Acquire) >= self.config.concurrency {
                    return Poll::Pending;
                }
                continue;
            }
            if let Some((fut, want)) = &mut self.fetching {
                let want = *want;
                match fut.get_mut().poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(claimed)) => {
                        self.fetching = None;
                        self.fetch_errors = 0;
                        // A short batch means the queue is drained for now: wait for a NOTIFY
                        // or the poll interval (delayed and retrying jobs come due silently).
                        if claimed.len() < want {
                            self.idle = Some(self.idle_wait());
                        }
                        for c in claimed {
                            let task = self.task_of(c);
                            self.buffer.push_back(task);
                        }
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        self.fetching = None;
                        self.fetch_errors += 1;
                        tracing::warn!(error = %e, "claiming jobs failed");
                        let pause =
                            Duration::from_millis(200 * u64::from(self.fetch_errors.min(25)));
                        self.idle = Some(self::fut(tokio::time::sleep(pause)));
                        continue;
                    }
                }
            }
            if let Some(idle) = &mut self.idle {
                match idle.get_mut().poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => self.idle = None,
                }
            }
            let want = self.free_slots().min(self.config.batch_size);
            if want == 0 {
                continue;
            }
            let fut = fetch(
                self.queue.clone(),
                self.config.name.clone(),
                self.kinds.clone(),
                want,
            );
            self.fetching = Some((self::fut(fut), want));
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Error>> {
        if self.closing.is_none() {
            let bg = match std::mem::replace(&mut self.state, Phase::Closed) {
                Phase::Running(bg) => bg,
                _ => return Poll::Ready(Ok(())),
            };
            self.fetching = None;
            self.buffer.clear();
            self.closing = Some(fut(close(
                self.queue.clone(),
                self.config.clone(),
                self.shared.clone(),
                bg,
            )));
        }
        let closing = self.closing.as_mut().expect("set above");
        let res = futures::ready!(closing.get_mut().poll_unpin(cx));
        self.closing = None;
        Poll::Ready(res)
    }
}

impl<Args> BackendConfig for PgBackend<Args> {
    type Args = Args;
    type Id = Uuid;
    type Kind = Durable;
    type Config = WorkerConfig;
    type Layer = AckLayer;

    fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// The worker's name becomes the backend's (it is what `locked_by` and the workers table
    /// record), and acknowledgements go through [`AckLayer`].
    fn middleware(&mut self, worker: &mut WorkerContext) -> AckLayer {
        if !worker.name().is_empty() {
            self.config.name = worker.name().to_string();
        }
        AckLayer {
            shared: self.shared.clone(),
            job_timeout: self.config.job_timeout,
        }
    }
}

impl<Args> WireFormatBackend for PgBackend<Args> {
    type Codec = JsonCodec<Value>;
    type Compact = Value;

    fn codec(&self) -> &JsonCodec<Value> {
        &self.codec
    }
}

/// The end of a worker: every outcome written, unfinished claims handed back, background
/// stopped, the worker marked stopped.
async fn close(
    queue: Queue,
    cfg: WorkerConfig,
    shared: Arc<Shared>,
    bg: Background,
) -> Result<(), Error> {
    let (tx, rx) = oneshot::channel();
    if shared.acks.send(AckMsg::Flush(tx)).is_ok() {
        let _ = rx.await;
    }
    bg.acker.abort();
    let handed_back = hand_back(&queue, &cfg.name).await?;
    if handed_back > 0 {
        tracing::warn!(worker = %cfg.name, handed_back, "in-flight jobs handed back to the queue");
    }
    bg.stop.cancel();
    let _ = bg.heartbeat.await;
    let _ = bg.listener.await;
    sqlx::query(
        "UPDATE smo_jobs.workers SET stopped_at = $2, stop_reason = 'shutdown' WHERE name = $1",
    )
    .bind(&cfg.name)
    .bind(queue.now())
    .execute(&queue.pool)
    .await?;
    tracing::info!(worker = %cfg.name, "worker stopped");
    Ok(())
}

/// Gives this worker's running jobs back unspent (claimed but never started, or interrupted).
async fn hand_back(queue: &Queue, worker: &str) -> Result<u64, Error> {
    let res = sqlx::query(
        "UPDATE smo_jobs.jobs
            SET state = CASE WHEN attempt > 1 THEN 'retrying' ELSE 'queued' END,
                attempt = attempt - 1, locked_by = NULL, run_at = $2
          WHERE locked_by = $1 AND state = 'running'",
    )
    .bind(worker)
    .bind(queue.now())
    .execute(&queue.pool)
    .await?;
    if res.rows_affected() > 0 {
        sqlx::query("SELECT pg_notify($1, kind) FROM (SELECT DISTINCT kind FROM smo_jobs.jobs WHERE state = 'queued') k")
            .bind(NOTIFY_CHANNEL)
            .execute(&queue.pool)
            .await?;
    }
    Ok(res.rows_affected())
}

#[cfg(test)]
mod tests;
