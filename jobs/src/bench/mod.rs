//! `smo-admin bench`: throughput and latency of the engine, and of plain apalis-postgres on the
//! same server in the same run, in one or both [`Baseline`] configurations, so the two are
//! comparable.

mod finished;
mod peer;
mod steady;

pub use finished::*;
use peer::{APALIS_QUEUE, apalis_baseline};
pub use steady::*;

use std::{
    fmt,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    Error, JobArgs, JobContext, NewJob, Queue, Registry, Worker, WorkerConfig, worker_name,
};

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    /// No-op jobs enqueued and drained.
    pub jobs: usize,
    /// Worker instances (each with its own name and claim loop).
    pub workers: usize,
    /// Jobs each worker runs at once.
    pub concurrency: usize,
    /// Jobs claimed per fetch.
    pub batch_size: usize,
    /// Jobs enqueued one at a time into an idle queue to measure enqueue→start latency.
    pub latency_samples: usize,
    /// Jobs pushed through plain apalis-postgres per baseline (0 skips the baselines); the same
    /// as `jobs` unless told otherwise, so the ratios compare like with like.
    pub apalis_jobs: usize,
    /// The apalis-postgres configurations to compare with, in this order (repeats are dropped).
    pub baselines: Vec<Baseline>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            jobs: 100_000,
            workers: 2,
            concurrency: 512,
            batch_size: 1000,
            latency_samples: 200,
            apalis_jobs: 100_000,
            baselines: Baseline::ALL.to_vec(),
        }
    }
}

/// Which apalis-postgres 1.0 configuration smo-jobs is compared with. Both run the same number
/// of jobs with the same workers × concurrency, and both are measured the same way as smo-jobs:
/// from worker start until every job has run in the handler *and* its acknowledgement is in the
/// table (`done_at` set by apalis's `handle_result.sql`).
///
/// What [`Baseline::Tuned`] cannot match, and why (apalis-postgres 1.0.0's source):
/// - `persist_results` stays on. In 1.0.0 it gates the acknowledgement itself, not only the
///   result payload: `PostgresStorage::middleware` passes it to `TaskPersistLayer`
///   (`src/backend.rs:219`), which uses it as `should_ack` (apalis-core 1.0.0
///   `src/backend/persistence/service.rs:84`) and sends the only `TaskEvent::Complete` under
///   `if should_ack` (ibid. 140–155); `handle_events` acknowledges only `Complete` events
///   (`src/persistence.rs:93–102, 124–126`) through `queries/task/handle_result.sql`, the one
///   statement that sets `status` and `done_at` (lines 17–22). With it off a finished job stays
///   `Queued`/`Running` forever (and `reenqueue_orphaned.sql` runs it again once its worker
///   stops heartbeating). smo-jobs stores no result either, but always records the outcome;
///   apalis's extra cost here is `last_result = null` per row.
/// - `lock_tasks` stays on (its default): apalis's fetch marks rows `Queued`; the lock event's
///   second, batched `UPDATE` (`queries/task/lock_by_id.sql`) marks them `Running`, which
///   smo-jobs' claim does in the claiming statement itself. Turning it off would leave running
///   jobs reading `Queued`.
/// - Not configurable at all: the per-row `NOTIFY` trigger on `apalis.jobs` (it fires on every
///   insert, listened to or not, in both baselines), the table's indexes, and a fetch that only
///   starts when the previous batch has been handed out (apalis-core
///   `src/backend/persistence/mod.rs:316–366`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// smo-jobs' settings where apalis-postgres 1.0 has them: fetch batch = `batch_size`,
    /// LISTEN/NOTIFY (`with_pubsub`) plus smo-jobs' idle poll interval
    /// (`poll_with_strategy(Strategy::new().interval(..))`), smo-jobs' heartbeat interval and
    /// missed heartbeats (the lease).
    Tuned,
    /// `Config::default()`: fetch batch 10, no LISTEN/NOTIFY and no poll interval (an idle
    /// worker fetches again only on its 30 s heartbeat or when a job of its own finishes),
    /// heartbeat 30 s × 10.
    Default,
}

impl Baseline {
    /// Both, in the order `smo-admin bench` runs them unless told otherwise.
    pub const ALL: [Baseline; 2] = [Baseline::Tuned, Baseline::Default];

    /// The name on the command line and in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Baseline::Tuned => "tuned",
            Baseline::Default => "default",
        }
    }

    /// The apalis-postgres `Config` this baseline runs with.
    fn config(self, opts: &BenchOptions) -> apalis_postgres::Config {
        let base = apalis_postgres::Config::default().queue(APALIS_QUEUE);
        match self {
            Baseline::Default => base,
            Baseline::Tuned => {
                let smo = WorkerConfig::default();
                base.batch_size(opts.batch_size)
                    .heartbeat_interval(smo.heartbeat_interval)
                    .missed_heartbeats(smo.missed_heartbeats as usize)
                    .persist_results(true)
                    .lock_tasks(true)
            }
        }
    }

    /// Its configuration in one line, read from the `Config` it runs with.
    pub fn note(self, opts: &BenchOptions) -> String {
        let c = self.config(opts);
        let fetch = match self {
            Baseline::Tuned => format!(
                "LISTEN/NOTIFY + {:?} poll",
                WorkerConfig::default().poll_interval
            ),
            Baseline::Default => format!(
                "no LISTEN/NOTIFY, no poll interval (idle refetch on the {:?} heartbeat)",
                c.heartbeat_interval
            ),
        };
        format!(
            "fetch batch {}, {} workers × {}, {fetch}, heartbeat {:?} × {}, persist_results {}, lock_tasks {}",
            c.batch_size,
            opts.workers,
            opts.concurrency,
            c.heartbeat_interval,
            c.missed_heartbeats,
            on(c.persist_results),
            on(c.lock_tasks),
        )
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Baseline {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Baseline::ALL
            .into_iter()
            .find(|b| b.as_str() == s.trim())
            .ok_or_else(|| format!("{s:?}: expected tuned or default"))
    }
}

/// Figures for one engine.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Jobs measured.
    pub jobs: usize,
    /// Bulk enqueue rate.
    pub enqueue_per_sec: f64,
    /// End-to-end processing rate (claim, run, acknowledge), from worker start to the last ack.
    pub processed_per_sec: f64,
}

/// One apalis-postgres baseline, run on the same server after smo-jobs.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineRun {
    /// Which configuration.
    pub baseline: Baseline,
    /// That configuration in one line (fetch batch, workers × concurrency, LISTEN/NOTIFY or
    /// polling, heartbeat, `persist_results`, `lock_tasks`).
    pub note: String,
    /// What plain apalis-postgres did.
    pub apalis: Figures,
    /// smo processed/s ÷ this baseline's processed/s.
    pub processed_ratio: f64,
}

/// What `smo-admin bench` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The options used.
    pub options: BenchOptions,
    /// smo-jobs.
    pub smo: Figures,
    /// Enqueue→start latency on an idle queue, median.
    pub latency_p50_ms: f64,
    /// Enqueue→start latency on an idle queue, 99th percentile.
    pub latency_p99_ms: f64,
    /// Plain apalis-postgres, one entry per baseline run, in the order run (empty when skipped).
    pub baselines: Vec<BaselineRun>,
}

#[derive(Serialize, Deserialize)]
struct BenchNoop {
    n: u64,
}

impl JobArgs for BenchNoop {
    const KIND: &'static str = "bench.noop";
}

#[derive(Serialize, Deserialize)]
struct BenchLatency {}

impl JobArgs for BenchLatency {
    const KIND: &'static str = "bench.latency";
}

/// Runs the benchmark on `pool` (use a scratch database: it creates apalis's schema too) and
/// reports progress through `progress`.
pub async fn run(
    pool: PgPool,
    mut opts: BenchOptions,
    progress: impl Fn(&str),
) -> Result<BenchReport, Error> {
    let mut seen = Vec::new();
    opts.baselines.retain(|b| {
        let new = !seen.contains(b);
        seen.push(*b);
        new
    });
    if opts.jobs == 0 || opts.workers == 0 || opts.concurrency == 0 || opts.batch_size == 0 {
        return Err(Error::Config(
            "jobs, workers, concurrency and batch size must be at least 1".into(),
        ));
    }
    crate::migrate(&pool).await?;
    sqlx::query("DELETE FROM smo_jobs.jobs WHERE kind LIKE 'bench.%'")
        .execute(&pool)
        .await?;
    let queue = Queue::new(pool.clone());

    progress(&format!("enqueueing {} no-op jobs in bulk…", opts.jobs));
    let started = Instant::now();
    let chunk = 5_000;
    let mut i = 0usize;
    while i < opts.jobs {
        let end = (i + chunk).min(opts.jobs);
        let batch: Vec<NewJob> = (i..end)
            .map(|n| NewJob::from_args(&BenchNoop { n: n as u64 }))
            .collect::<Result<_, _>>()?;
        queue.enqueue_many(&batch).await?;
        i = end;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();

    progress(&format!(
        "draining with {} workers × {} concurrency, batch {}…",
        opts.workers, opts.concurrency, opts.batch_size
    ));
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let registry = Registry::new()
        .register(move |_: BenchNoop, _: JobContext| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        })
        .register(|_: BenchLatency, _: JobContext| async { Ok(()) });
    let started = Instant::now();
    let (stop, handles) = start_workers(
        &queue,
        &registry,
        "bench",
        (opts.workers, opts.concurrency, opts.batch_size),
    );
    wait_progress(
        "smo-jobs: jobs run by the handler",
        opts.jobs,
        Duration::from_millis(5),
        || std::future::ready(Ok(done.load(Ordering::Relaxed))),
    )
    .await?;
    wait_until(
        &pool,
        "smo-jobs: jobs acknowledged (state succeeded)",
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'bench.noop' AND state = 'succeeded'",
        opts.jobs,
    )
    .await?;
    let process_secs = started.elapsed().as_secs_f64();

    progress(&format!(
        "measuring enqueue→start latency over {} jobs on an idle queue…",
        opts.latency_samples
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..opts.latency_samples {
        queue.enqueue(&BenchLatency {}).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until(
        &pool,
        "smo-jobs: latency samples succeeded",
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'bench.latency' AND state = 'succeeded'",
        opts.latency_samples,
    )
    .await?;
    let (p50, p99, _) = start_latency(&pool, BenchLatency::KIND).await?;
    finish(&pool, stop, handles, "bench").await?;

    let smo = Figures {
        jobs: opts.jobs,
        enqueue_per_sec: opts.jobs as f64 / enqueue_secs,
        processed_per_sec: opts.jobs as f64 / process_secs,
    };
    let mut baselines = Vec::new();
    if opts.apalis_jobs > 0 {
        for b in opts.baselines.clone() {
            let note = b.note(&opts);
            progress(&format!(
                "the same load through plain apalis-postgres, {b} baseline ({note}), {} jobs…",
                opts.apalis_jobs
            ));
            let apalis = apalis_baseline(&pool, b, &opts, &progress).await?;
            baselines.push(BaselineRun {
                baseline: b,
                note,
                processed_ratio: smo.processed_per_sec / apalis.processed_per_sec,
                apalis,
            });
        }
    }
    Ok(BenchReport {
        options: opts,
        smo,
        latency_p50_ms: p50,
        latency_p99_ms: p99,
        baselines,
    })
}

/// Starts `workers` workers named `<prefix><n>` over `registry`; stopped through the token.
fn start_workers(
    queue: &Queue,
    registry: &Registry,
    prefix: &str,
    (workers, concurrency, batch_size): (usize, usize, usize),
) -> (
    CancellationToken,
    Vec<tokio::task::JoinHandle<Result<(), Error>>>,
) {
    let stop = CancellationToken::new();
    let handles = (0..workers)
        .map(|w| {
            let cfg = WorkerConfig {
                name: worker_name(&format!("{prefix}{w}")),
                concurrency,
                batch_size,
                ..WorkerConfig::default()
            };
            tokio::spawn(Worker::new(queue.clone(), registry.clone(), cfg).run(stop.clone()))
        })
        .collect();
    (stop, handles)
}

/// Stops the workers and removes what the benchmark left: its jobs and its workers' rows.
async fn finish(
    pool: &PgPool,
    stop: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<Result<(), Error>>>,
    prefix: &str,
) -> Result<(), Error> {
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    sqlx::query("DELETE FROM smo_jobs.jobs WHERE kind LIKE 'bench.%'")
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM smo_jobs.workers WHERE starts_with(name, $1)")
        .bind(prefix)
        .execute(pool)
        .await?;
    Ok(())
}

/// Enqueue→start of every job of `kind`, in milliseconds: p50, p99 and max.
async fn start_latency(pool: &PgPool, kind: &str) -> Result<(f64, f64, f64), Error> {
    let (p50, p99, max): (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
           FROM (SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS ms
                   FROM smo_jobs.jobs WHERE kind = $1) s",
    )
    .bind(kind)
    .fetch_one(pool)
    .await?;
    Ok((
        p50.unwrap_or(f64::NAN),
        p99.unwrap_or(f64::NAN),
        max.unwrap_or(f64::NAN),
    ))
}

/// A wait gives up when its count has not moved for this long…
const STALL: Duration = Duration::from_secs(60);
/// …or when it has taken this long in all.
const DEADLINE: Duration = Duration::from_secs(30 * 60);

/// Polls `probe` every `every` until it reports `target`; a stall (no progress for [`STALL`]) or
/// the [`DEADLINE`] is an error naming `what` and how far it got.
async fn wait_progress<F, Fut>(
    what: &str,
    target: usize,
    every: Duration,
    mut probe: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, Error>>,
{
    let start = Instant::now();
    let (mut best, mut moved) = (0, start);
    loop {
        let got = probe().await?;
        if got >= target {
            return Ok(());
        }
        if got > best {
            (best, moved) = (got, Instant::now());
        }
        let why = if moved.elapsed() >= STALL {
            format!("none more for {} s", STALL.as_secs())
        } else if start.elapsed() >= DEADLINE {
            format!("not done within {} min", DEADLINE.as_secs() / 60)
        } else {
            tokio::time::sleep(every).await;
            continue;
        };
        return Err(Error::Config(format!(
            "{what}: stalled at {got} of {target} ({why})"
        )));
    }
}

/// [`wait_progress`] on a `SELECT count(*)`.
async fn wait_until(
    pool: &PgPool,
    what: &str,
    count_sql: &'static str,
    target: usize,
) -> Result<(), Error> {
    wait_progress(what, target, Duration::from_millis(10), || async move {
        let n: i64 = sqlx::query_scalar(count_sql).fetch_one(pool).await?;
        Ok(n.max(0) as usize)
    })
    .await
}

/// The floor of a latency: 1,000 `SELECT 1` round trips to the server behind `pool`, in
/// milliseconds, sorted.
async fn round_trips(pool: &PgPool) -> Result<Vec<f64>, Error> {
    let mut trips = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        sqlx::query("SELECT 1").execute(pool).await?;
        trips.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    trips.sort_by(f64::total_cmp);
    Ok(trips)
}

/// The `q` quantile of `sorted` (nearest rank); NaN when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
