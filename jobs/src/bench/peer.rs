//! Plain apalis-postgres under the same load, the engine's peer: its tuned and default
//! configurations (see [`Baseline`]).

use super::*;

/// apalis-postgres's queue (`job_type`) for the baselines.
pub(super) const APALIS_QUEUE: &str = "smo_bench_apalis";
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
pub(super) async fn apalis_baseline(
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
