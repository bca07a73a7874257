//! `smo-admin bench --rate R --seconds S [--retention D]`: a steady offered load, its
//! enqueue→start latency beside a round trip to the same server, and with retention on the job
//! table's size over time.

use super::*;

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
    /// Without retention: p99 of the jobs enqueued in each 10 s of the load, in order (a tail
    /// that sits in one window is a pause of the server, a checkpoint say, not the queue's path).
    pub p99_by_window_ms: Vec<f64>,
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
    // What a previous benchmark left (hundreds of thousands of rows deleted at its end, and
    // those just deleted) is vacuumed away first, as autovacuum would have by the time a
    // server's load is steady: each run starts from the same table, whatever ran before.
    sqlx::query("VACUUM (ANALYZE) smo_jobs.jobs")
        .execute(&pool)
        .await?;
    let queue = Queue::new(pool.clone());
    // The floor: round trips to the same server, before the load.
    let trips = round_trips(&pool).await?;
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
    let (p50, p99, max, sizes, windows) = match retention {
        None => {
            wait_until(
                &pool,
                "smo-jobs: steady-load jobs succeeded",
                "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'bench.steady' AND state = 'succeeded'",
                total,
            )
            .await?;
            let (p50, p99, max) = start_latency(&pool, BenchSteady::KIND).await?;
            let windows: Vec<f64> = sqlx::query_scalar(
                "WITH j AS (SELECT created_at, extract(epoch FROM started_at - created_at)::float8 * 1000 AS ms
                              FROM smo_jobs.jobs WHERE kind = $1),
                      t0 AS (SELECT min(created_at) AS t FROM j)
                 SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
                   FROM j, t0 GROUP BY floor(extract(epoch FROM j.created_at - t0.t) / 10) ORDER BY 1",
            )
            .bind(BenchSteady::KIND)
            .fetch_all(&pool)
            .await?;
            (p50, p99, max, Vec::new(), windows)
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
            (p50, p99, max, r.sizes, Vec::new())
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
        round_trip_p50_ms: quantile(&trips, 0.5),
        round_trip_p99_ms: quantile(&trips, 0.99),
        sizes,
        p99_by_window_ms: windows,
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
        let max = v.last().copied().unwrap_or(f64::NAN);
        (quantile(v, 0.5), quantile(v, 0.99), max)
    }
}
