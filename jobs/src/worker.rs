use std::{collections::HashSet, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sqlx::{Connection, PgConnection, postgres::PgListener};
use tokio::{
    sync::{Notify, Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    Error, JobContext, JobError, Lease, NOTIFY_CHANNEL, Queue, Registry, lease::LeaseState, metrics,
};

/// Exponential backoff between attempts, stored in the job's `run_at` so that every worker
/// (not just the one that saw the failure) respects it.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound.
    pub max: Duration,
    /// Adds up to +25% derived from the job id, so a burst of failures does not retry in lockstep
    /// while each job's delay stays reproducible.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(600),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The delay before attempt `failed_attempt + 1`: base × 2^(failed_attempt − 1), capped.
    pub fn delay(&self, failed_attempt: u32, id: Uuid) -> Duration {
        let exp = failed_attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        if !self.jitter {
            return raw;
        }
        let frac = (id.as_u128() % 1000) as f64 / 4000.0;
        raw.mul_f64(1.0 + frac).min(self.max)
    }
}

/// How a worker process behaves. Defaults suit production; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per process; see [`worker_name`].
    pub name: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Most jobs claimed by one fetch: the knob that matters most for throughput.
    pub batch_size: usize,
    /// How often an idle worker looks for delayed or retrying jobs (new jobs wake it at once).
    pub poll_interval: Duration,
    /// How often the worker proves it is alive (and reaps jobs of workers that are not).
    pub heartbeat_interval: Duration,
    /// Heartbeats a worker may miss before its running jobs are handed to others: the lease is
    /// `heartbeat_interval × missed_heartbeats`.
    pub missed_heartbeats: u32,
    /// How long after its last successful heartbeat was sent the worker still trusts its lease
    /// and writes; shorter than the lease by a margin for clock skew and writes in flight.
    /// `None`: two thirds of the lease (Kubernetes leader election uses 10 s of 15 s).
    pub renew_deadline: Option<Duration>,
    /// Times a job may be lost to dead workers before it goes dead. Counted apart from
    /// `max_attempts`, which are meant for the job's own errors.
    pub max_lost: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// On shutdown, how long in-flight jobs may take before they are handed back.
    pub shutdown_grace: Duration,
    /// Longest one attempt may run; `None` for no limit.
    pub job_timeout: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            name: worker_name("worker"),
            concurrency: 64,
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 3,
            renew_deadline: None,
            max_lost: 5,
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
            job_timeout: Some(Duration::from_secs(600)),
        }
    }
}

impl WorkerConfig {
    /// After how long without a heartbeat peers hand this worker's jobs to others.
    pub fn lease(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats.max(1)
    }

    /// Until when after a heartbeat is sent the worker writes (see [`Self::renew_deadline`]).
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
            .unwrap_or_else(|| self.lease().mul_f64(2.0 / 3.0))
    }
}

/// A worker name that is unique per process: `<prefix>-<host>-<pid>-<random>`.
///
/// apalis refuses to start a second worker with a live name; deriving the name from the host (a
/// pod name in Kubernetes), the pid and a random suffix makes restarts and replicas safe.
pub fn worker_name(prefix: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let rand: u16 = rand::random();
    format!("{prefix}-{host}-{}-{rand:04x}", std::process::id())
}

struct Claimed {
    id: Uuid,
    kind: String,
    args: serde_json::Value,
    attempt: i32,
    max_attempts: i32,
    epoch: i64,
}

struct Completion {
    id: Uuid,
    epoch: i64,
    attempt: u32,
    max_attempts: u32,
    result: Result<(), JobError>,
}

/// A worker process's job runner: claims batches, runs them concurrently, acknowledges in
/// batches, heartbeats, reaps the jobs of dead workers and shuts down gracefully.
pub struct Worker {
    queue: Queue,
    registry: Registry,
    config: WorkerConfig,
}

impl Worker {
    /// A worker over `queue` running the kinds of `registry`.
    pub fn new(queue: Queue, registry: Registry, config: WorkerConfig) -> Self {
        Self {
            queue,
            registry,
            config,
        }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets in-flight jobs finish for up
    /// to `shutdown_grace`, hands the rest back to the queue and deregisters.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let cfg = &self.config;
        if cfg.concurrency == 0 || cfg.batch_size == 0 {
            return Err(Error::Config(
                "worker concurrency and batch size must be at least 1".into(),
            ));
        }
        if cfg.renew_deadline() >= cfg.lease() || cfg.renew_deadline().is_zero() {
            return Err(Error::Config(format!(
                "the renew deadline ({:?}) must be positive and shorter than the lease ({:?} = \
                 heartbeat interval × missed heartbeats)",
                cfg.renew_deadline(),
                cfg.lease()
            )));
        }
        let lease = LeaseState::new(cfg.renew_deadline());
        let kinds = self.registry.kinds();
        self.register(&kinds).await?;
        tracing::info!(worker = %cfg.name, ?kinds, concurrency = cfg.concurrency, "worker started");

        let wake = Arc::new(Notify::new());
        let stop_bg = CancellationToken::new();
        let listener = tokio::spawn(listen(
            self.queue.pool.clone(),
            kinds.iter().cloned().collect(),
            wake.clone(),
            stop_bg.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat_loop(
            self.queue.clone(),
            cfg.clone(),
            lease.clone(),
            stop_bg.clone(),
        ));
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Completion>();
        let acker = tokio::spawn(ack_loop(self.queue.clone(), cfg.clone(), ack_rx));

        let sem = Arc::new(Semaphore::new(cfg.concurrency));
        let mut running = JoinSet::new();
        let mut fetch_errors = 0u32;
        loop {
            while running.try_join_next().is_some() {}
            if shutdown.is_cancelled() {
                break;
            }
            let avail = sem.available_permits();
            if avail == 0 {
                tokio::select! {
                    p = sem.acquire() => drop(p),
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            let want = avail.min(cfg.batch_size);
            let claimed = match self.fetch(&kinds, want).await {
                Ok(c) => {
                    fetch_errors = 0;
                    c
                }
                Err(e) => {
                    fetch_errors += 1;
                    tracing::warn!(error = %e, "claiming jobs failed");
                    let pause = Duration::from_millis(200 * u64::from(fetch_errors.min(25)));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    continue;
                }
            };
            let got = claimed.len();
            for job in claimed {
                let Ok(permit) = sem.clone().try_acquire_owned() else {
                    // Cannot happen: we claimed at most `avail` jobs and only this loop takes permits.
                    break;
                };
                running.spawn(run_one(
                    self.queue.clone(),
                    self.registry.clone(),
                    cfg.clone(),
                    lease.hold(),
                    job,
                    ack_tx.clone(),
                    permit,
                ));
            }
            if got == want {
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(cfg.poll_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }

        // Graceful shutdown: let in-flight jobs finish within the grace period.
        tracing::info!(worker = %cfg.name, in_flight = running.len(), "worker stopping");
        let drained = tokio::time::timeout(cfg.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        drop(ack_tx);
        let _ = acker.await;
        let handed_back = self.hand_back().await?;
        if handed_back > 0 {
            tracing::warn!(worker = %cfg.name, handed_back, "in-flight jobs handed back to the queue");
        }
        stop_bg.cancel();
        let _ = heartbeat.await;
        let _ = listener.await;
        sqlx::query(
            "UPDATE smo_jobs.workers SET stopped_at = $2, stop_reason = 'shutdown' WHERE name = $1",
        )
        .bind(&cfg.name)
        .bind(self.queue.now())
        .execute(&self.queue.pool)
        .await?;
        tracing::info!(worker = %cfg.name, "worker stopped");
        Ok(())
    }

    async fn register(&self, kinds: &[String]) -> Result<(), Error> {
        let now = self.queue.now();
        let host = self.config.name.clone();
        sqlx::query(
            "INSERT INTO smo_jobs.workers (name, host, pid, kinds, concurrency, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (name) DO UPDATE SET started_at = $6, heartbeat_at = $6, stopped_at = NULL,
                 stop_reason = NULL, kinds = $4, concurrency = $5",
        )
        .bind(&self.config.name)
        .bind(host_of(&host))
        .bind(std::process::id() as i32)
        .bind(kinds)
        .bind(self.config.concurrency as i32)
        .bind(now)
        .execute(&self.queue.pool)
        .await?;
        Ok(())
    }

    async fn fetch(&self, kinds: &[String], n: usize) -> Result<Vec<Claimed>, Error> {
        let now = self.queue.now();
        let rows: Vec<(Uuid, String, serde_json::Value, i32, i32, i64)> = sqlx::query_as(
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
        .bind(kinds)
        .bind(n as i64)
        .bind(&self.config.name)
        .fetch_all(&self.queue.pool)
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

    async fn hand_back(&self) -> Result<u64, Error> {
        let res = sqlx::query(
            "UPDATE smo_jobs.jobs
                SET state = CASE WHEN attempt > 1 THEN 'retrying' ELSE 'queued' END,
                    attempt = attempt - 1, locked_by = NULL, run_at = $2
              WHERE locked_by = $1 AND state = 'running'",
        )
        .bind(&self.config.name)
        .bind(self.queue.now())
        .execute(&self.queue.pool)
        .await?;
        if res.rows_affected() > 0 {
            sqlx::query("SELECT pg_notify($1, kind) FROM (SELECT DISTINCT kind FROM smo_jobs.jobs WHERE state = 'queued') k")
                .bind(NOTIFY_CHANNEL)
                .execute(&self.queue.pool)
                .await?;
        }
        Ok(res.rows_affected())
    }
}

fn host_of(name: &str) -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| name.to_string())
}

async fn run_one(
    queue: Queue,
    registry: Registry,
    cfg: WorkerConfig,
    lease: Lease,
    job: Claimed,
    ack: mpsc::UnboundedSender<Completion>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let attempt = job.attempt.max(1) as u32;
    let max_attempts = job.max_attempts.max(1) as u32;
    let ctx = JobContext {
        id: job.id,
        kind: job.kind.clone(),
        attempt,
        max_attempts,
        worker: cfg.name.clone(),
        epoch: job.epoch,
        lease,
        queue,
    };
    metrics::STARTED.inc(&[&job.kind]);
    let started = std::time::Instant::now();
    let fut = AssertUnwindSafe(registry.call(&job.kind, job.args, ctx)).catch_unwind();
    let result = match cfg.job_timeout {
        Some(limit) => match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Ok(Err(JobError::Transient(format!(
                "timed out after {limit:?}"
            )))),
        },
        None => fut.await,
    };
    let result = result.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(JobError::Transient(format!("handler panicked: {msg}")))
    });
    let secs = started.elapsed().as_secs_f64();
    match &result {
        Ok(()) => {
            metrics::SUCCEEDED.inc(&[&job.kind]);
            metrics::DURATION.observe(&[&job.kind, "succeeded"], secs);
        }
        Err(JobError::Snooze(d)) => {
            tracing::debug!(job = %job.id, kind = %job.kind, delay = ?d, "job snoozed");
            metrics::SNOOZED.inc(&[&job.kind]);
        }
        Err(JobError::Fenced(why)) => {
            tracing::warn!(job = %job.id, kind = %job.kind, epoch = job.epoch, %why, "attempt abandoned");
            metrics::FENCED.inc(&[&job.kind]);
        }
        Err(e) => {
            tracing::warn!(job = %job.id, kind = %job.kind, attempt, error = %e, "job failed");
            metrics::FAILED.inc(&[&job.kind]);
            metrics::DURATION.observe(&[&job.kind, "failed"], secs);
            if is_final(e, attempt, max_attempts) {
                metrics::DEAD.inc(&[&job.kind]);
            }
        }
    }
    let _ = ack.send(Completion {
        id: job.id,
        epoch: job.epoch,
        attempt,
        max_attempts,
        result,
    });
    drop(permit);
}

/// Writes outcomes in batches: one statement acknowledges every success that arrived meanwhile.
async fn ack_loop(queue: Queue, cfg: WorkerConfig, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut buf = Vec::with_capacity(4096);
    while rx.recv_many(&mut buf, 4096).await > 0 {
        let (mut ok, mut ok_epochs) = (Vec::new(), Vec::new());
        for c in buf.drain(..) {
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
        if !ok.is_empty() {
            let now = queue.now();
            let res = with_retries(|| async {
                // Keyed by (id, epoch): the acknowledgement of an attempt that was superseded
                // meanwhile matches nothing.
                sqlx::query(
                    "UPDATE smo_jobs.jobs j SET state = 'succeeded', finished_at = $3
                       FROM unnest($1::uuid[], $2::bigint[]) AS a(id, epoch)
                      WHERE j.id = a.id AND j.epoch = a.epoch AND j.state = 'running'",
                )
                .bind(&ok)
                .bind(&ok_epochs)
                .bind(now)
                .execute(&queue.pool)
                .await
            })
            .await;
            if let Err(e) = res {
                tracing::error!(error = %e, jobs = ok.len(), "could not acknowledge jobs; they will run again");
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
fn is_final(e: &JobError, attempt: u32, max_attempts: u32) -> bool {
    e.is_permanent() || attempt >= max_attempts
}

/// Puts a snoozed job back without spending its attempt or recording an error.
async fn record_snooze(
    queue: &Queue,
    c: &Completion,
    run_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE smo_jobs.jobs
            SET state = CASE WHEN attempt > 1 THEN 'retrying' ELSE 'queued' END,
                attempt = attempt - 1, run_at = $2, locked_by = NULL
          WHERE id = $1 AND state = 'running' AND epoch = $3",
    )
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
          WHERE j.id = $3 AND j.state = 'running' AND j.epoch = $4",
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
    sqlx::query(
        "UPDATE smo_jobs.jobs
            SET state = $2, run_at = $3, finished_at = CASE WHEN $2 = 'dead' THEN $4 END,
                errors = errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'at', $4, 'error', $5::text, 'permanent', $6, 'worker', $7::text))
          WHERE id = $1 AND state = 'running' AND epoch = $8",
    )
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
    match reap(&mut *conn, now, cfg.lease(), cfg.max_lost).await? {
        0 => {}
        n => tracing::warn!(jobs = n, "handed back jobs of lost workers"),
    }
    Ok(())
}

/// Marks workers whose heartbeat is older than `lease` as lost and re-queues their running jobs.
/// The attempt they were on is given back and counted in `lost` instead: a job goes dead from
/// losses only after `max_lost` of them. Returns the number of jobs touched.
pub(crate) async fn reap(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: Duration,
    max_lost: u32,
) -> Result<u64, Error> {
    let cutoff = now - chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    let res = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH lost AS (
             UPDATE smo_jobs.workers SET stopped_at = $1, stop_reason = 'heartbeat lapsed'
              WHERE stopped_at IS NULL AND heartbeat_at < $3
             RETURNING name)
         UPDATE smo_jobs.jobs j SET {}
          WHERE j.state = 'running'
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
