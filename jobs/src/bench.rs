//! `smo-admin bench`: throughput and latency of the engine, and of plain apalis-postgres on the
//! same server in the same run, in one or both [`Baseline`] configurations, so the two are
//! comparable.

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

/// A steady load: a fixed offered rate for a while.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyOptions {
    /// Jobs offered per second, spread evenly (enqueued every 5 ms, whatever is due).
    pub rate: f64,
    /// For how long.
    pub seconds: f64,
    pub workers: usize,
    pub concurrency: usize,
    pub batch_size: usize,
    /// Retention on: every 10 s, prune finished jobs older than this many seconds (what smo's
    /// `retention` cron job runs) and sample the table's and its indexes' size.
    pub retention: Option<f64>,
}

/// The job table's size at one moment of a steady load with retention.
#[derive(Debug, Clone, Serialize)]
pub struct SizeSample {
    /// Seconds into the load.
    pub at_secs: f64,
    /// Rows in `smo_jobs.jobs`.
    pub rows: i64,
    /// The table's heap (`pg_relation_size`).
    pub table_bytes: i64,
    /// Its indexes (`pg_indexes_size`).
    pub index_bytes: i64,
}

/// What a steady load measured.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyReport {
    pub options: SteadyOptions,
    /// Jobs enqueued (and all of them run).
    pub jobs: usize,
    /// Jobs enqueued per second over the offering window.
    pub enqueued_per_sec: f64,
    /// Enqueue (the insert's transaction time) → start (the claim's), in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The floor measured in the same run: one `SELECT 1` round trip to the same server, p50 and
    /// p99 (an enqueue→start takes at least a notification and a claim).
    pub round_trip_p50_ms: f64,
    pub round_trip_p99_ms: f64,
    /// With retention: the table's size every 10 s (empty without).
    pub sizes: Vec<SizeSample>,
}

#[derive(Serialize, Deserialize)]
struct BenchSteady {}

impl JobArgs for BenchSteady {
    const KIND: &'static str = "bench.steady";
}

/// Offers `opts.rate` jobs/s for `opts.seconds` to running workers and measures each job's
/// enqueue→start latency from the database's own timestamps.
pub async fn steady(
    pool: PgPool,
    opts: SteadyOptions,
    progress: impl Fn(&str),
) -> Result<SteadyReport, Error> {
    if !(opts.rate.is_finite() && opts.rate > 0.0 && opts.seconds.is_finite() && opts.seconds > 0.0)
        || opts.workers == 0
        || opts.concurrency == 0
        || opts.batch_size == 0
    {
        return Err(Error::Config(
            "rate and seconds must be positive; workers, concurrency and batch size at least 1"
                .into(),
        ));
    }
    crate::migrate(&pool).await?;
    sqlx::query("DELETE FROM smo_jobs.jobs WHERE kind LIKE 'bench.%'")
        .execute(&pool)
        .await?;
    let queue = Queue::new(pool.clone());
    // The floor: round trips to the same server, before the load.
    let mut trips = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        sqlx::query("SELECT 1").execute(&pool).await?;
        trips.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    trips.sort_by(f64::total_cmp);
    let at = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let registry = Registry::new().register(move |_: BenchSteady, _: JobContext| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    });
    let (stop, handles) = start_workers(
        &queue,
        &registry,
        "bench-steady",
        (opts.workers, opts.concurrency, opts.batch_size),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    progress(&format!(
        "offering {} jobs/s for {} s to {} workers × {}…",
        opts.rate, opts.seconds, opts.workers, opts.concurrency
    ));
    let total = (opts.rate * opts.seconds).round() as usize;
    let started = tokio::time::Instant::now();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut retention = opts.retention.map(|secs| Retention::new(&queue, secs));
    let mut next_prune = started + Duration::from_secs(10);
    while sent < total {
        tick.tick().await;
        if let Some(r) = retention.as_mut()
            && tokio::time::Instant::now() >= next_prune
        {
            next_prune += Duration::from_secs(10);
            // Inline: what is due comes from the clock, so the offer catches up after a slow
            // prune (a short burst), and the total offered is the same.
            r.step(&pool, started.elapsed().as_secs_f64(), &progress)
                .await?;
        }
        let due = ((started.elapsed().as_secs_f64() * opts.rate) as usize).min(total);
        if due > sent {
            let batch: Vec<NewJob> = (sent..due)
                .map(|_| NewJob::from_args(&BenchSteady {}))
                .collect::<Result<_, _>>()?;
            for chunk in batch.chunks(5_000) {
                queue.enqueue_many(chunk).await?;
            }
            sent = due;
        }
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    let (p50, p99, max, sizes) = match retention {
        None => {
            wait_until(
                &pool,
                "smo-jobs: steady-load jobs succeeded",
                "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'bench.steady' AND state = 'succeeded'",
                total,
            )
            .await?;
            let (p50, p99, max) = start_latency(&pool, BenchSteady::KIND).await?;
            (p50, p99, max, Vec::new())
        }
        Some(mut r) => {
            // Pruned rows cannot be counted: the handlers count, then no row may be left live.
            while ran.load(Ordering::Relaxed) < total {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let live: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'bench.steady' AND state <> 'succeeded'",
                )
                .fetch_one(&pool)
                .await?;
                if live == 0 {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(Error::Config(format!(
                        "steady load: {live} jobs ran but were not acknowledged within 60 s"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r.step(&pool, started.elapsed().as_secs_f64(), &progress)
                .await?;
            let (p50, p99, max) = r.latency();
            (p50, p99, max, r.sizes)
        }
    };
    finish(&pool, stop, handles, "bench-steady").await?;
    Ok(SteadyReport {
        options: opts,
        jobs: total,
        enqueued_per_sec: total as f64 / enqueue_secs,
        p50_ms: p50,
        p99_ms: p99,
        max_ms: max,
        round_trip_p50_ms: at(&trips, 0.5),
        round_trip_p99_ms: at(&trips, 0.99),
        sizes,
    })
}

/// Retention during a steady load: every step reads the start latency of the jobs finished since
/// the last (before any can be pruned), prunes what is older than the retention, and samples the
/// table's size.
struct Retention {
    queue: Queue,
    keep: chrono::Duration,
    since: Option<chrono::DateTime<chrono::Utc>>,
    latencies: Vec<f64>,
    sizes: Vec<SizeSample>,
}

impl Retention {
    fn new(queue: &Queue, secs: f64) -> Retention {
        Retention {
            queue: queue.clone(),
            keep: chrono::Duration::milliseconds((secs * 1000.0) as i64),
            since: None,
            latencies: Vec::new(),
            sizes: Vec::new(),
        }
    }

    async fn step(
        &mut self,
        pool: &PgPool,
        at_secs: f64,
        progress: &impl Fn(&str),
    ) -> Result<(), Error> {
        let now: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
        let ms: Vec<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000
               FROM smo_jobs.jobs
              WHERE kind = 'bench.steady' AND state = 'succeeded'
                AND finished_at > coalesce($1, '-infinity'::timestamptz) AND finished_at <= $2",
        )
        .bind(self.since)
        .bind(now)
        .fetch_all(pool)
        .await?;
        self.latencies.extend(ms);
        self.since = Some(now);
        let pruned = self.queue.prune(self.keep).await?;
        let (rows, table_bytes, index_bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM smo_jobs.jobs),
                    pg_relation_size('smo_jobs.jobs'), pg_indexes_size('smo_jobs.jobs')",
        )
        .fetch_one(pool)
        .await?;
        if self.sizes.len().is_multiple_of(6) {
            progress(&format!(
                "{at_secs:.0} s: {rows} rows, table {} MB, indexes {} MB ({pruned} pruned this step)",
                table_bytes / 1_000_000,
                index_bytes / 1_000_000
            ));
        }
        self.sizes.push(SizeSample {
            at_secs,
            rows,
            table_bytes,
            index_bytes,
        });
        Ok(())
    }

    fn latency(&mut self) -> (f64, f64, f64) {
        self.latencies.sort_by(f64::total_cmp);
        let v = &self.latencies;
        if v.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.99), v[v.len() - 1])
    }
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

/// apalis-postgres's queue (`job_type`) for the baselines.
const APALIS_QUEUE: &str = "smo_bench_apalis";
/// Prefix of the baselines' apalis worker names.
const APALIS_WORKERS: &str = "apalis-bench";

/// Removes what a baseline leaves in apalis's tables: its jobs and its workers' rows.
async fn clear_apalis(pool: &PgPool) -> Result<(), Error> {
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1")
        .bind(APALIS_QUEUE)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM apalis.workers WHERE starts_with(id, $1)")
        .bind(APALIS_WORKERS)
        .execute(pool)
        .await?;
    Ok(())
}

/// `opts.apalis_jobs` no-op jobs through plain apalis-postgres in `baseline`'s configuration,
/// measured as smo-jobs is: from worker start until every job ran and is acknowledged.
async fn apalis_baseline(
    pool: &PgPool,
    baseline: Baseline,
    opts: &BenchOptions,
    progress: &impl Fn(&str),
) -> Result<Figures, Error> {
    use apalis::prelude::{
        BackendExt, BoxDynError, Data, Strategy, TaskSink, WorkerBuilder, WorkerBuilderExt,
    };
    use apalis_postgres::PostgresStorage;

    let n = opts.apalis_jobs;
    let label = format!("apalis-postgres ({baseline})");
    PostgresStorage::setup(pool)
        .await
        .map_err(|e| Error::Config(format!("apalis setup: {e}")))?;
    clear_apalis(pool).await?;
    // Each baseline starts on a table without the previous run's dead rows in its indexes.
    if let Err(e) = sqlx::query("VACUUM (ANALYZE) apalis.jobs")
        .execute(pool)
        .await
    {
        progress(&format!(
            "VACUUM apalis.jobs failed ({e}); measuring on the table as it is"
        ));
    }
    let config = baseline.config(opts);
    let mut storage = PostgresStorage::<u64>::new(pool).with_config(config.clone());
    let started = Instant::now();
    let all: Vec<u64> = (0..n as u64).collect();
    for chunk in all.chunks(5_000) {
        storage
            .push_bulk(chunk.to_vec())
            .await
            .map_err(|e| Error::Config(format!("apalis push: {e}")))?;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();

    async fn noop(_: u64, done: Data<Arc<AtomicUsize>>) -> Result<(), BoxDynError> {
        done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..opts.workers {
        let name = worker_name(&format!("{APALIS_WORKERS}{w}"));
        let storage = PostgresStorage::<u64>::new(pool).with_config(config.clone());
        let worker = WorkerBuilder::new(name);
        handles.push(match baseline {
            Baseline::Default => tokio::spawn(
                worker
                    .backend(storage)
                    .data(done.clone())
                    .concurrency(opts.concurrency)
                    .build(noop)
                    .run(),
            ),
            Baseline::Tuned => {
                let poll = Strategy::new().interval(WorkerConfig::default().poll_interval);
                tokio::spawn(
                    worker
                        .backend(storage.with_pubsub().poll_with_strategy(poll))
                        .data(done.clone())
                        .concurrency(opts.concurrency)
                        .build(noop)
                        .run(),
                )
            }
        });
    }
    // Every job ran in the handler, then every row is acknowledged: `done_at` is set by
    // `handle_result.sql` alone, whatever the outcome (a `status = 'Done'` count alone would
    // wait forever if acknowledgements were off, as they are with `persist_results(false)`).
    let stopped = |got: usize| {
        if handles.iter().any(|h| h.is_finished()) {
            Err(Error::Worker(format!(
                "{label}: an apalis worker stopped after {got} of {n} jobs"
            )))
        } else {
            Ok(got)
        }
    };
    let outcome = async {
        wait_progress(
            &format!("{label}: jobs run by the handler"),
            n,
            Duration::from_millis(5),
            || std::future::ready(stopped(done.load(Ordering::Relaxed))),
        )
        .await?;
        wait_progress(
            &format!("{label}: jobs acknowledged (done_at set; all {n} ran in the handler)"),
            n,
            Duration::from_millis(10),
            || {
                let alive = stopped(done.load(Ordering::Relaxed));
                async move {
                    alive?;
                    let acked: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND done_at IS NOT NULL",
                    )
                    .bind(APALIS_QUEUE)
                    .fetch_one(pool)
                    .await?;
                    Ok(acked.max(0) as usize)
                }
            },
        )
        .await
    }
    .await;
    let process_secs = started.elapsed().as_secs_f64();
    // Why workers stopped on their own; the others are stopped here, and gone before the cleanup.
    let mut why = Vec::new();
    for h in handles {
        let early = h.is_finished();
        h.abort();
        match (early, h.await) {
            (false, _) => {}
            (true, Ok(Ok(()))) => why.push("a worker returned".to_string()),
            (true, Ok(Err(e))) => why.push(e.to_string()),
            (true, Err(e)) => why.push(e.to_string()),
        }
    }
    let finished: Result<i64, Error> = match outcome {
        Ok(()) => sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'",
        )
        .bind(APALIS_QUEUE)
        .fetch_one(pool)
        .await
        .map_err(Error::from),
        Err(e) if why.is_empty() => Err(e),
        Err(e) => Err(Error::Config(format!("{e}: {}", why.join("; ")))),
    };
    clear_apalis(pool).await?;
    let finished = finished?;
    if finished as usize != n {
        return Err(Error::Config(format!(
            "{label}: {n} jobs acknowledged but {finished} as Done"
        )));
    }
    Ok(Figures {
        jobs: n,
        enqueue_per_sec: n as f64 / enqueue_secs,
        processed_per_sec: n as f64 / process_secs,
    })
}
