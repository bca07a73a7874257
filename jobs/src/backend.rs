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

use std::{
    any::TypeId,
    collections::{HashSet, VecDeque},
    marker::PhantomData,
    pin::Pin,
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
    error::BoxDynError,
    task::{Task, builder::TaskBuilder, task_id::TaskId},
    worker::context::WorkerContext,
};
use chrono::{DateTime, Utc};
use futures::{FutureExt, future::BoxFuture, task::AtomicWaker};
use serde_json::Value;
use sqlx::{Connection, PgConnection, postgres::PgListener};
use sync_wrapper::SyncWrapper;
use tokio::{
    sync::{Notify, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    Error, JobArgs, JobContext, JobError, NOTIFY_CHANNEL, NewJob, Queue, Registry,
    lease::LeaseState, metrics, worker::WorkerConfig,
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

/// A claimed row, before it becomes a task.
struct Claimed {
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

    /// Turns a claimed row into an apalis task carrying its [`JobContext`].
    fn task_of(&self, c: Claimed) -> Task<Value> {
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
    fn free_slots(&self) -> usize {
        self.config
            .concurrency
            .saturating_sub(self.shared.in_flight.load(Ordering::Acquire) + self.buffer.len())
    }

    /// Until a NOTIFY for our kinds (or a reap) arrives, or the poll interval passes.
    fn idle_wait(&self) -> Fut<()> {
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
    fn undecodable(&self, task: &Task<Value>) -> Option<String> {
        if TypeId::of::<Args>() == TypeId::of::<Value>() {
            return None;
        }
        let decoded: Result<Args, _> = Codec::<Args>::decode(&self.codec, &task.args);
        decoded.err().map(|e| format!("bad arguments: {e}"))
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

/// Pushing through apalis (`TaskSink::push`, `push_bulk`, …): tasks are buffered and inserted by
/// one statement per flush. The kind is the task's apalis queue, else the backend's one kind; an
/// idempotency key is the job's unique key. To enqueue inside your own transaction use
/// [`Queue::enqueue_in`], which apalis has no notion of.
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

/// The backend's middleware: it sees every task's outcome after the user's layers and queues
/// the acknowledgement (success, failure with backoff or death, snooze, abandonment) for the
/// batched writer; it also frees the task's claim slot.
#[derive(Clone)]
pub struct AckLayer {
    shared: Arc<Shared>,
    job_timeout: Option<Duration>,
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

/// Stops a handler at the end of the shutdown grace period; the job is handed back unspent.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: the worker is shutting down")]
pub(crate) struct Interrupted;

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

struct Completion {
    id: Uuid,
    epoch: i64,
    attempt: u32,
    max_attempts: u32,
    result: Result<(), JobError>,
}

impl Completion {
    fn of(ctx: &JobContext, result: Result<(), JobError>) -> Self {
        Self {
            id: ctx.id,
            epoch: ctx.epoch,
            attempt: ctx.attempt,
            max_attempts: ctx.max_attempts,
            result,
        }
    }
}

enum AckMsg {
    Done(Completion),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

pub(crate) async fn register_worker(
    queue: Queue,
    cfg: WorkerConfig,
    kinds: Arc<Vec<String>>,
) -> Result<(), Error> {
    let now = queue.now();
    sqlx::query(
        "INSERT INTO smo_jobs.workers (name, host, pid, kinds, concurrency, started_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (name) DO UPDATE SET started_at = $6, heartbeat_at = $6, stopped_at = NULL,
             stop_reason = NULL, kinds = $4, concurrency = $5",
    )
    .bind(&cfg.name)
    .bind(std::env::var("HOSTNAME").unwrap_or_else(|_| cfg.name.clone()))
    .bind(std::process::id() as i32)
    .bind(kinds.as_slice())
    .bind(cfg.concurrency as i32)
    .bind(now)
    .execute(&queue.pool)
    .await?;
    Ok(())
}

async fn fetch(
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

/// Most successes one acknowledgement statement carries.
const ACK_CHUNK: usize = 1024;

/// Writes outcomes in batches: one statement acknowledges every success that arrived meanwhile
/// (up to [`ACK_CHUNK`] per statement).
async fn ack_loop(queue: Queue, cfg: WorkerConfig, mut rx: mpsc::UnboundedReceiver<AckMsg>) {
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

/// "The job is running", written so that the planner cannot answer it from `jobs_running_idx`:
/// statements that find jobs by id must probe the primary key. When the statistics lag behind a
/// burst (a freshly filled queue: "about one running job" while 90,000 run), a plain
/// `state = 'running'` made the planner scan every running job through that partial index for
/// each acknowledgement; each took seconds while more piled up behind it, and `smo-admin bench`
/// fell from ~50,000 to ~1,500 jobs/s.
pub(crate) const RUNNING_BY_ID: &str = "coalesce(j.state = 'running', false)";

/// The acknowledgement: `$1` ids, `$2` their epochs, `$3` now.
fn ack_sql() -> String {
    format!(
        "UPDATE smo_jobs.jobs j SET state = 'succeeded', finished_at = $3
           FROM unnest($1::uuid[], $2::bigint[]) AS a(id, epoch)
          WHERE j.id = a.id AND j.epoch = a.epoch AND {RUNNING_BY_ID}"
    )
}

/// Marks `ids` succeeded where they still run under `epochs`, on the acknowledger's own
/// connection (opened on first use, reopened after an error; retried as [`with_retries`] does).
///
/// That connection plans with `plan_cache_mode = force_generic_plan`: planned for the array it
/// is given, the statement takes a scan of the whole table over one primary-key probe per id
/// whenever the statistics think the table small; the generic plan probes, whatever they say
/// (see [`RUNNING_BY_ID`]).
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
                sqlx::query("SET plan_cache_mode = force_generic_plan")
                    .execute(&mut c)
                    .await?;
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

/// The `SET` clause that gives a lost attempt back (to a job aliased `j`): the attempt is not
/// spent but counted in `lost`, and the job goes dead after `max_lost` losses. `$1` is now, `$2`
/// `max_lost`; `error` and `worker` are SQL expressions for the error entry. One rule for a
/// worker reaped by its peers and for an attempt that abandoned itself.
fn give_back_lost(error: &str, worker: &str) -> String {
    format!(
        "state = CASE WHEN j.lost + 1 >= $2 THEN 'dead'
                      WHEN j.attempt > 1 THEN 'retrying' ELSE 'queued' END,
         finished_at = CASE WHEN j.lost + 1 >= $2 THEN $1 END,
         attempt = j.attempt - 1, lost = j.lost + 1, run_at = $1, locked_by = NULL,
         errors = j.errors || jsonb_build_array(jsonb_build_object(
             'attempt', j.attempt, 'at', $1, 'lost', true, 'error', {error},
             'permanent', false, 'worker', {worker}))"
    )
}

/// Wakes idle workers: jobs were handed back.
async fn notify_reaped(conn: impl sqlx::PgExecutor<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, 'reaped')")
        .bind(NOTIFY_CHANNEL)
        .execute(conn)
        .await?;
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

/// Proves liveness and hands the running jobs of workers that stopped heartbeating to others.
///
/// The heartbeat has its own connection, outside the pool the jobs use: a burst that keeps every
/// pooled connection busy must never make a live worker look dead to its peers.
async fn heartbeat_loop(
    queue: Queue,
    cfg: WorkerConfig,
    lease: Arc<LeaseState>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<PgConnection> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        if conn.is_none() {
            match PgConnection::connect_with(&queue.pool.connect_options()).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat connection failed; retrying next tick");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // Past the renew deadline an answer no longer extends anything worth having, and a
        // connection cut mid-query would otherwise hang here until TCP gives up.
        let limit = cfg.renew_deadline().max(cfg.heartbeat_interval);
        match tokio::time::timeout(limit, heartbeat_once(c, &queue, &cfg, &lease)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "heartbeat failed; reconnecting");
                conn = None;
            }
            Err(_) => {
                tracing::warn!(after = ?limit, "heartbeat got no answer; reconnecting");
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

async fn heartbeat_once(
    conn: &mut PgConnection,
    queue: &Queue,
    cfg: &WorkerConfig,
    lease: &LeaseState,
) -> Result<(), Error> {
    // Taken before the query is sent: peers measure the lease from the `heartbeat_at` written
    // now, so the renewed deadline must not count the time the answer took to come back.
    let sent = tokio::time::Instant::now();
    let now = queue.now();
    let r = sqlx::query(
        "UPDATE smo_jobs.workers SET heartbeat_at = $2 WHERE name = $1 AND stopped_at IS NULL",
    )
    .bind(&cfg.name)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        // Declared dead by a peer (e.g. after a long pause): our jobs were handed out
        // already, our late acknowledgements will be ignored. Come back to life.
        tracing::warn!(worker = %cfg.name, "this worker was declared lost; its running attempts are fenced; re-registering");
        lease.revoke();
        sqlx::query("UPDATE smo_jobs.workers SET stopped_at = NULL, stop_reason = NULL, heartbeat_at = $2 WHERE name = $1")
            .bind(&cfg.name)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    lease.renewed(sent, cfg.renew_deadline());
    match reap(&mut *conn, now, cfg.lease(), cfg.max_lost, &cfg.name).await? {
        0 => {}
        n => tracing::warn!(jobs = n, "handed back jobs of lost workers"),
    }
    Ok(())
}

/// Marks workers whose heartbeat is older than `lease` as lost and re-queues their running jobs.
/// The attempt they were on is given back and counted in `lost` instead: a job goes dead from
/// losses only after `max_lost` of them. Returns the number of jobs touched.
///
/// The jobs of `reaper` itself are left alone: a worker that heartbeats is alive. Declared lost
/// by a peer between its heartbeat's write and this reap (and claiming again meanwhile), it
/// would otherwise take its new attempts from itself; its next heartbeat re-registers it, and
/// until then its peers' reaps still see it lost.
pub(crate) async fn reap(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: Duration,
    max_lost: u32,
    reaper: &str,
) -> Result<u64, Error> {
    let cutoff = now - chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    let res = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH lost AS (
             UPDATE smo_jobs.workers SET stopped_at = $1, stop_reason = 'heartbeat lapsed'
              WHERE stopped_at IS NULL AND heartbeat_at < $3
             RETURNING name)
         UPDATE smo_jobs.jobs j SET {}
          WHERE j.state = 'running' AND j.locked_by IS DISTINCT FROM $4
            AND (j.locked_by IN (SELECT name FROM lost)
                 OR NOT EXISTS (SELECT 1 FROM smo_jobs.workers w
                                 WHERE w.name = j.locked_by AND w.stopped_at IS NULL))",
        give_back_lost(
            "'worker ' || j.locked_by || ' was lost (no heartbeat) while running this job'",
            "j.locked_by"
        )
    )))
    .bind(now)
    .bind(max_lost.max(1) as i32)
    .bind(cutoff)
    .bind(reaper)
    .execute(&mut *conn)
    .await?;
    if res.rows_affected() > 0 {
        notify_reaped(&mut *conn).await?;
    }
    Ok(res.rows_affected())
}

/// Wakes the claim loop when a job of one of our kinds is enqueued.
async fn listen(
    pool: sqlx::PgPool,
    kinds: HashSet<String>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut listener = loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                Ok(()) => break l,
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; polling meanwhile"),
            },
            Err(e) => tracing::warn!(error = %e, "listener connection failed; polling meanwhile"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    };
    loop {
        tokio::select! {
            n = listener.recv() => match n {
                Ok(n) => {
                    let k = n.payload();
                    if k == "reaped" || kinds.contains(k) {
                        wake.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listener lost its connection; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    /// Peers measure a worker's lease from the `heartbeat_at` its heartbeat writes, so the worker
    /// must measure its renew deadline from when that heartbeat was sent: an answer that comes
    /// late (here the worker's row is locked, as a slow database would hold it) must not stretch
    /// the worker's trust by the wait.
    #[tokio::test]
    async fn a_heartbeat_renews_the_lease_from_when_it_was_sent_not_when_it_was_answered() {
        let db = TestDb::new().await;
        let queue = db.queue();
        let cfg = crate::testing::fast_worker_config("w-slow");
        register_worker(queue.clone(), cfg.clone(), Arc::new(vec!["noop".into()]))
            .await
            .unwrap();
        let lease = LeaseState::new(cfg.renew_deadline());
        let first = lease.deadline();
        let mut lock = db.pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM smo_jobs.workers WHERE name = $1 FOR UPDATE")
            .bind(&cfg.name)
            .execute(&mut *lock)
            .await
            .unwrap();
        let holder: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *lock)
            .await
            .unwrap();
        let beat = tokio::spawn({
            let (queue, cfg, lease, url) =
                (queue.clone(), cfg.clone(), lease.clone(), db.url.clone());
            async move {
                let mut conn = PgConnection::connect(&url).await?;
                heartbeat_once(&mut conn, &queue, &cfg, &lease).await
            }
        });
        // Once the heartbeat waits for the lock, it has been sent.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let waiting: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                 WHERE datname = current_database() AND $1 = ANY(pg_blocking_pids(pid)))",
            )
            .bind(holder)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            if waiting {
                break;
            }
            assert!(
                !beat.is_finished(),
                "the heartbeat did not wait for the locked row"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "the heartbeat never ran"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent_by = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        lock.rollback().await.unwrap();
        beat.await.unwrap().unwrap();
        assert!(lease.deadline() > first, "the heartbeat renewed the lease");
        assert!(
            lease.deadline() <= sent_by + cfg.renew_deadline(),
            "the lease was renewed from the answer, {:?} after the heartbeat was sent",
            lease.deadline() - (sent_by + cfg.renew_deadline())
        );
    }

    /// A heartbeat never hands back its own worker's running jobs (see [`reap`]); a peer's
    /// reap of the same rows does.
    #[tokio::test]
    async fn a_heartbeat_never_reaps_its_own_workers_jobs() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.unwrap();
        // Worker w, declared lost a moment ago by a peer, has claimed a job since.
        sqlx::query(
            "INSERT INTO smo_jobs.workers (name, host, pid, kinds, concurrency, started_at,
                                           heartbeat_at, stopped_at, stop_reason)
             VALUES ('w', 'h', 1, '{noop}', 1, now(), now(), now(), 'heartbeat lapsed')",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO smo_jobs.jobs (id, kind, args, state, attempt, max_attempts, run_at,
                                        created_at, started_at, locked_by, epoch)
             VALUES (gen_random_uuid(), 'noop', '{}', 'running', 1, 3, now(), now(), now(), 'w', 2)",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let lease = Duration::from_secs(30);
        assert_eq!(reap(&mut conn, Utc::now(), lease, 3, "w").await.unwrap(), 0);
        assert_eq!(
            reap(&mut conn, Utc::now(), lease, 3, "peer").await.unwrap(),
            1
        );
    }

    /// The acknowledgement as the acknowledger plans it, when the statistics were taken before
    /// 20,000 queued jobs were claimed (a freshly filled queue being drained).
    #[tokio::test]
    async fn acknowledgements_probe_the_primary_key_even_when_the_statistics_lag() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.unwrap();
        // A queue filled in bulk and analysed (no job running yet)…
        sqlx::query(
            "INSERT INTO smo_jobs.jobs (id, kind, args, max_attempts, run_at, created_at)
             SELECT gen_random_uuid(), 'noop', '{}', 3, now(), now()
               FROM generate_series(1, 20000)",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query("ANALYZE smo_jobs.jobs")
            .execute(&mut *conn)
            .await
            .unwrap();
        // …then claimed: all of it runs, the statistics still say none does.
        sqlx::query(
            "UPDATE smo_jobs.jobs SET state = 'running', locked_by = 'w', attempt = 1, epoch = 1",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *conn)
            .await
            .unwrap();
        let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM smo_jobs.jobs LIMIT 500")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        // Planned as the acknowledger's prepared statement is (a generic plan), for real ids.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PREPARE ack_probe(uuid[], bigint[], timestamptz) AS {}",
            ack_sql()
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN EXECUTE ack_probe('{{{}}}', '{{{}}}', now())",
            list.join(","),
            vec!["1"; ids.len()].join(",")
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("jobs_pkey"), "{plan}");
        // One job by id, as failures, snoozes, hand-backs and `JobContext::fence` find it.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PREPARE one_probe(uuid, bigint) AS
               SELECT j.epoch FROM smo_jobs.jobs j WHERE j.id = $1 AND j.epoch = $2 AND {RUNNING_BY_ID}"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        let one: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN EXECUTE one_probe('{}', 1)",
            ids[0]
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let one = one.join("\n");
        assert!(
            one.contains("jobs_pkey") && !one.contains("jobs_running_idx"),
            "{one}"
        );
        assert!(
            !plan.contains("jobs_running_idx") && !plan.contains("Seq Scan on jobs"),
            "{plan}"
        );
    }
}
