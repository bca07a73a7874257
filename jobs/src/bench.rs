//! `smo-admin bench`: throughput and latency of the engine, and of plain apalis-postgres with its
//! default configuration on the same server in the same run, so the two are comparable.

use std::{
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
    /// Jobs pushed through plain apalis-postgres for comparison (0 to skip).
    pub apalis_jobs: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            jobs: 100_000,
            workers: 2,
            concurrency: 512,
            batch_size: 1000,
            latency_samples: 200,
            apalis_jobs: 20_000,
        }
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
    /// Plain apalis-postgres, default `Config` (batch 10).
    pub apalis: Option<Figures>,
    /// smo processed/s ÷ apalis processed/s.
    pub processed_ratio: Option<f64>,
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
    opts: BenchOptions,
    progress: impl Fn(&str),
) -> Result<BenchReport, Error> {
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
    while done.load(Ordering::Relaxed) < opts.jobs {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until(
        &pool,
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
    let apalis = if opts.apalis_jobs > 0 {
        progress(&format!(
            "the same load through plain apalis-postgres (default Config: batch 10), {} jobs…",
            opts.apalis_jobs
        ));
        Some(apalis_baseline(&pool, opts.apalis_jobs, opts.workers, opts.concurrency).await?)
    } else {
        None
    };
    let processed_ratio = apalis
        .as_ref()
        .map(|a| smo.processed_per_sec / a.processed_per_sec);
    Ok(BenchReport {
        options: opts,
        smo,
        latency_p50_ms: p50,
        latency_p99_ms: p99,
        apalis,
        processed_ratio,
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
    let registry = Registry::new().register(|_: BenchSteady, _: JobContext| async { Ok(()) });
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
    while sent < total {
        tick.tick().await;
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
    wait_until(
        &pool,
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'bench.steady' AND state = 'succeeded'",
        total,
    )
    .await?;
    let (p50, p99, max) = start_latency(&pool, BenchSteady::KIND).await?;
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

async fn wait_until(pool: &PgPool, count_sql: &'static str, target: usize) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n: i64 = sqlx::query_scalar(count_sql).fetch_one(pool).await?;
        if n as usize >= target {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Config(format!(
                "benchmark stalled at {n} of {target} jobs"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn apalis_baseline(
    pool: &PgPool,
    n: usize,
    workers: usize,
    concurrency: usize,
) -> Result<Figures, Error> {
    use apalis::prelude::{BoxDynError, Data, TaskSink, WorkerBuilder, WorkerBuilderExt};
    use apalis_postgres::{Config, PostgresStorage};

    const QUEUE: &str = "smo_bench_apalis";
    PostgresStorage::setup(pool)
        .await
        .map_err(|e| Error::Config(format!("apalis setup: {e}")))?;
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1")
        .bind(QUEUE)
        .execute(pool)
        .await?;
    let config = Config::default().queue(QUEUE);
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

    async fn handle(_: u64, done: Data<Arc<AtomicUsize>>) -> Result<(), BoxDynError> {
        done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let storage = PostgresStorage::<u64>::new(pool).with_config(config.clone());
        let worker = WorkerBuilder::new(worker_name(&format!("apalis-bench{w}")))
            .backend(storage)
            .data(done.clone())
            .concurrency(concurrency)
            .build(handle);
        handles.push(tokio::spawn(worker.run()));
    }
    let done_sql =
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'smo_bench_apalis' AND status = 'Done'";
    let res = wait_until(pool, done_sql, n).await;
    let process_secs = started.elapsed().as_secs_f64();
    for h in handles {
        h.abort();
    }
    res?;
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1")
        .bind(QUEUE)
        .execute(pool)
        .await?;
    Ok(Figures {
        jobs: n,
        enqueue_per_sec: n as f64 / enqueue_secs,
        processed_per_sec: n as f64 / process_secs,
    })
}
