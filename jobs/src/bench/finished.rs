//! `smo-admin bench --finished N`: the queue's read paths with N finished jobs in the table —
//! [`Queue::stats`] (what `smo-admin stats`, the console's queue page and apalis-board's counts
//! read) and [`Queue::list`] by state (`smo-admin jobs list --state …`) — beside a round trip to
//! the same server.

use super::*;
use crate::{JobFilter, JobState};

/// How one read answered over repeated calls.
#[derive(Debug, Clone, Serialize)]
pub struct ReadTimes {
    /// What was read.
    pub what: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What the reads took with the table filled.
#[derive(Debug, Clone, Serialize)]
pub struct FinishedReport {
    /// Finished jobs in the table (99 % succeeded, 0.9 % dead, 0.1 % cancelled, finished over
    /// the last day), plus 1,000 queued.
    pub finished: usize,
    /// Seconds to insert and analyse them (not part of the reads).
    pub fill_secs: f64,
    /// The table and its indexes, in bytes.
    pub table_bytes: i64,
    pub index_bytes: i64,
    pub reads: Vec<ReadTimes>,
    /// The floor measured in the same run: one `SELECT 1` round trip, p50 and p99.
    pub round_trip_p50_ms: f64,
    pub round_trip_p99_ms: f64,
}

/// Calls of each read.
const CALLS: usize = 50;
/// Rows inserted per statement while filling.
const FILL_CHUNK: usize = 1_000_000;

/// Fills the table with `n` finished jobs of kind `bench.finished` (and 1,000 queued ones that
/// never run), times each read [`CALLS`] times, and deletes them again.
pub async fn finished(
    pool: PgPool,
    n: usize,
    progress: impl Fn(&str),
) -> Result<FinishedReport, Error> {
    crate::migrate(&pool).await?;
    sqlx::query("DELETE FROM smo_jobs.jobs WHERE kind LIKE 'bench.%'")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let chunk = FILL_CHUNK.min(n - done);
        // One in a hundred dead, one in a thousand cancelled; finished over the last day.
        sqlx::query(
            "INSERT INTO smo_jobs.jobs (id, kind, args, state, attempt, max_attempts, run_at, created_at,
                                        started_at, attempted_at, finished_at)
             SELECT gen_random_uuid(), 'bench.finished', '{}',
                    CASE WHEN i % 1000 = 0 THEN 'cancelled' WHEN i % 100 = 0 THEN 'dead' ELSE 'succeeded' END,
                    1, 3, t, t, t, t, t
               FROM generate_series($1::bigint, $2::bigint) i,
                    LATERAL (SELECT now() - (i % 86400) * interval '1 second' AS t) x",
        )
        .bind(done as i64)
        .bind((done + chunk - 1) as i64)
        .execute(&pool)
        .await?;
        done += chunk;
        progress(&format!("{done}/{n} finished jobs inserted"));
    }
    sqlx::query(
        "INSERT INTO smo_jobs.jobs (id, kind, args, max_attempts, run_at, created_at)
         SELECT gen_random_uuid(), 'bench.finished', '{}', 3, now() + interval '1 day', now()
           FROM generate_series(1, 1000)",
    )
    .execute(&pool)
    .await?;
    progress("analysing…");
    sqlx::query("VACUUM (ANALYZE) smo_jobs.jobs")
        .execute(&pool)
        .await?;
    let fill_secs = started.elapsed().as_secs_f64();
    let (table_bytes, index_bytes): (i64, i64) = sqlx::query_as(
        "SELECT pg_relation_size('smo_jobs.jobs'), pg_indexes_size('smo_jobs.jobs')",
    )
    .fetch_one(&pool)
    .await?;

    let trips = round_trips(&pool).await?;
    let queue = Queue::new(pool.clone());
    let mut reads = vec![
        time("stats", || async {
            let s = queue.stats().await?;
            // The counts must see the table, or the timing means nothing.
            let ours = s.kinds.iter().find(|k| k.kind == "bench.finished");
            let finished = ours.map_or(0, |k| {
                ["succeeded", "dead", "cancelled"]
                    .iter()
                    .map(|s| k.states.get(*s).copied().unwrap_or(0))
                    .sum::<i64>()
            });
            match ours {
                Some(_) if finished == n as i64 => Ok(()),
                _ => Err(Error::Config(format!(
                    "stats do not count the {n} finished jobs: {ours:?}"
                ))),
            }
        })
        .await?,
    ];
    for state in [
        JobState::Dead,
        JobState::Cancelled,
        JobState::Succeeded,
        JobState::Queued,
        JobState::Running,
    ] {
        let filter = JobFilter {
            state: Some(state),
            ..JobFilter::default()
        };
        reads.push(
            time(&format!("list --state {}", state.as_str()), || async {
                queue.list(&filter).await.map(|_| ())
            })
            .await?,
        );
    }
    progress("deleting them…");
    sqlx::query("DELETE FROM smo_jobs.jobs WHERE kind = 'bench.finished'")
        .execute(&pool)
        .await?;
    Ok(FinishedReport {
        finished: n,
        fill_secs,
        table_bytes,
        index_bytes,
        reads,
        round_trip_p50_ms: quantile(&trips, 0.5),
        round_trip_p99_ms: quantile(&trips, 0.99),
    })
}

/// Times `read` over [`CALLS`] calls (after one that warms the plan and the cache).
async fn time<F, Fut>(what: &str, read: F) -> Result<ReadTimes, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    read().await?;
    let mut ms = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        read().await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ReadTimes {
        what: what.to_string(),
        p50_ms: quantile(&ms, 0.5),
        p99_ms: quantile(&ms, 0.99),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
    })
}
