//! The worker's row and liveness, River's rescuer: registration, the heartbeat that renews the
//! lease, and the reaping of lost peers whose running jobs go back to the queue.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use super::WorkerConfig;
use crate::{Error, NOTIFY_CHANNEL, Queue, lease::LeaseState};

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

/// The `SET` clause that gives a lost attempt back (to a job aliased `j`): the attempt is not
/// spent but counted in `lost`, and the job goes dead after `max_lost` losses. `$1` is now, `$2`
/// `max_lost`; `error` and `worker` are SQL expressions for the error entry. One rule for a
/// worker reaped by its peers and for an attempt that abandoned itself.
pub(super) fn give_back_lost(error: &str, worker: &str) -> String {
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
pub(super) async fn notify_reaped(conn: impl sqlx::PgExecutor<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, 'reaped')")
        .bind(NOTIFY_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Proves liveness and hands the running jobs of workers that stopped heartbeating to others.
///
/// The heartbeat has its own connection, outside the pool the jobs use: a burst that keeps every
/// pooled connection busy must never make a live worker look dead to its peers.
pub(super) async fn heartbeat_loop(
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

pub(super) async fn heartbeat_once(
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
