//! The backend against PostgreSQL: the heartbeat's lease and reap, the acknowledger's plans.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    ack::{ACK_SESSION, ack_sql},
    heartbeat::{heartbeat_once, reap, register_worker},
};
use crate::testing::TestDb;
use crate::{job::RUNNING_BY_ID, lease::LeaseState};

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
        let (queue, cfg, lease, url) = (queue.clone(), cfg.clone(), lease.clone(), db.url.clone());
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

/// Sets `conn` up as the acknowledger's connection is and prepares the acknowledgement there.
async fn prepare_ack(conn: &mut PgConnection) {
    sqlx::raw_sql(ACK_SESSION)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE ack_probe(uuid[], bigint[], timestamptz) AS {}",
        ack_sql()
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// The prepared acknowledgement's plan (generic: made on its first execution, then kept) for
/// the first 500 running jobs.
async fn ack_plan(conn: &mut PgConnection) -> String {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM smo_jobs.jobs WHERE state = 'running' LIMIT 500")
            .fetch_all(&mut *conn)
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
    plan.join("\n")
}

/// Inserts `n` queued jobs.
async fn enqueue_noops(conn: &mut PgConnection, n: i64) {
    sqlx::query(
        "INSERT INTO smo_jobs.jobs (id, kind, args, max_attempts, run_at, created_at)
         SELECT gen_random_uuid(), 'noop', '{}', 3, now(), now() FROM generate_series(1, $1)",
    )
    .bind(n)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Marks every job running (claimed, attempt 1).
async fn claim_all(conn: &mut PgConnection) {
    sqlx::query(
        "UPDATE smo_jobs.jobs SET state = 'running', locked_by = 'w', attempt = 1, epoch = 1",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Inserts `n` jobs and marks every job running.
async fn fill_running(conn: &mut PgConnection, n: i64) {
    enqueue_noops(conn, n).await;
    claim_all(conn).await;
}

fn probes_the_primary_key(plan: &str) -> bool {
    plan.contains("jobs_pkey") && !plan.contains("jobs_running_idx") && !plan.contains("Seq Scan")
}

/// The acknowledgement as the acknowledger plans it, when the statistics were taken before
/// 20,000 queued jobs were claimed (a freshly filled queue being drained).
#[tokio::test]
async fn acknowledgements_probe_the_primary_key_even_when_the_statistics_lag() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    // A queue filled in bulk and analysed (no job running yet)…
    enqueue_noops(&mut conn, 20_000).await;
    sqlx::query("ANALYZE smo_jobs.jobs")
        .execute(&mut *conn)
        .await
        .unwrap();
    // …then claimed: all of it runs, the statistics still say none does.
    claim_all(&mut conn).await;
    prepare_ack(&mut conn).await;
    let plan = ack_plan(&mut conn).await;
    assert!(probes_the_primary_key(&plan), "{plan}");
    sqlx::query("RESET ALL").execute(&mut *conn).await.unwrap();
    // One job by id, as failures, snoozes, hand-backs and `JobContext::fence` find it, on any
    // connection of the pool.
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    let id: Uuid = sqlx::query_scalar("SELECT id FROM smo_jobs.jobs LIMIT 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE one_probe(uuid, bigint) AS
           SELECT j.epoch FROM smo_jobs.jobs j WHERE j.id = $1 AND j.epoch = $2 AND {RUNNING_BY_ID}"
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    let one: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN EXECUTE one_probe('{id}', 1)"
    )))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let one = one.join("\n");
    assert!(
        one.contains("jobs_pkey") && !one.contains("jobs_running_idx"),
        "{one}"
    );
}

/// The acknowledgement as the acknowledger plans it when the statistics were taken of a
/// nearly empty table (a queue drained and vacuumed) that then filled: still a probe per id,
/// never a scan of the table for each batch.
#[tokio::test]
async fn acknowledgements_probe_the_primary_key_when_the_statistics_saw_an_empty_table() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    fill_running(&mut conn, 50).await;
    sqlx::query("VACUUM (ANALYZE) smo_jobs.jobs")
        .execute(&mut *conn)
        .await
        .unwrap();
    // The acknowledger plans its first batch on the small table…
    prepare_ack(&mut conn).await;
    let small = ack_plan(&mut conn).await;
    assert!(probes_the_primary_key(&small), "{small}");
    // …and keeps that plan as the table grows (no statistics taken meanwhile).
    fill_running(&mut conn, 20_000).await;
    let plan = ack_plan(&mut conn).await;
    assert_eq!(
        plan, small,
        "the plan made on the small table is the one kept"
    );
}
