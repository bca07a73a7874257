//! The job engine against a real PostgreSQL (started by `scripts/dev-db start`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use apalis_core::{
    backend::{
        FetchById, Filter, ListAllTasks, ListQueues, ListTasks, ListWorkers, Metrics,
        RegisterWorker, Reschedule, ResumeAbandoned, ResumeById, Statistic, TaskSink, Update,
        Vacuum, WaitForCompletion,
    },
    task::{data::Data, status::Status, task_id::TaskId},
    worker::{builder::WorkerBuilder, ext::parallelize::ParallelizeExt},
};
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use smo_jobs::{
    Clock, CronEntry, Error, JobArgs, JobContext, JobError, JobFilter, JobState, Lease,
    ManualClock, NoopJob, PgBackend, PruneJob, Queue, Registry, Scheduler, SchedulerConfig, Worker,
    testing::{TestDb, fast_worker_config, work_until_idle},
};
use tokio_util::sync::CancellationToken;

#[derive(Serialize, Deserialize)]
struct Flaky {
    /// Fails while the shared counter is below this.
    fail_times: u32,
    permanent: bool,
}

impl JobArgs for Flaky {
    const KIND: &'static str = "test.flaky";
    const MAX_ATTEMPTS: u32 = 3;
}

#[derive(Serialize, Deserialize)]
struct Keyed {
    key: String,
}

impl JobArgs for Keyed {
    const KIND: &'static str = "test.keyed";
    fn unique_key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

#[derive(Serialize, Deserialize)]
struct Sleepy {
    ms: u64,
}

impl JobArgs for Sleepy {
    const KIND: &'static str = "test.sleepy";
}

fn flaky_registry(calls: Arc<AtomicU32>) -> Registry {
    Registry::new().register(move |j: Flaky, _ctx: JobContext| {
        let calls = calls.clone();
        async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < j.fail_times {
                if j.permanent {
                    return Err(JobError::permanent(format!("permanent failure {n}")));
                }
                return Err(JobError::transient(format!("transient failure {n}")));
            }
            Ok(())
        }
    })
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn manual(db: &TestDb) -> (Queue, ManualClock) {
    let clock = ManualClock::new(t0());
    (
        Queue::with_clock(db.pool.clone(), Arc::new(clock.clone())),
        clock,
    )
}

#[tokio::test]
async fn enqueue_commits_or_rolls_back_with_the_callers_transaction() {
    let db = TestDb::new().await;
    let q = db.queue();
    let mut tx = db.pool.begin().await.unwrap();
    let rolled = q.enqueue_in(&mut tx, &NoopJob::default()).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(q.get(rolled.id).await, Err(Error::NotFound(_))));

    let mut tx = db.pool.begin().await.unwrap();
    let kept = q
        .enqueue_in(
            &mut tx,
            &NoopJob {
                note: Some("kept".into()),
            },
        )
        .await
        .unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let job = q.get(kept.id).await.unwrap();
    assert_eq!(job.state, "queued");
    assert_eq!(job.args["note"], "kept");
    assert_eq!(q.list(&JobFilter::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_unique_key_admits_one_live_job_then_frees_up_when_it_finishes() {
    let db = TestDb::new().await;
    let q = db.queue();
    let a = q
        .enqueue(&Keyed {
            key: "graph-1".into(),
        })
        .await
        .unwrap();
    let b = q
        .enqueue(&Keyed {
            key: "graph-1".into(),
        })
        .await
        .unwrap();
    let c = q
        .enqueue(&Keyed {
            key: "graph-2".into(),
        })
        .await
        .unwrap();
    assert!(a.created && !b.created && c.created);
    assert_eq!(a.id, b.id);

    let registry = Registry::new().register(|_: Keyed, _: JobContext| async { Ok(()) });
    work_until_idle(&q, registry, fast_worker_config("w-unique"))
        .await
        .unwrap();
    assert_eq!(q.get(a.id).await.unwrap().state, "succeeded");
    let d = q
        .enqueue(&Keyed {
            key: "graph-1".into(),
        })
        .await
        .unwrap();
    assert!(d.created);
    assert_ne!(d.id, a.id);
}

#[tokio::test]
async fn a_failed_job_waits_for_its_stored_backoff() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let calls = Arc::new(AtomicU32::new(0));
    let job = q
        .enqueue(&Flaky {
            fail_times: 2,
            permanent: false,
        })
        .await
        .unwrap();
    let drain = || {
        work_until_idle(
            &q,
            flaky_registry(calls.clone()),
            fast_worker_config("w-backoff"),
        )
    };

    drain().await.unwrap();
    let row = q.get(job.id).await.unwrap();
    assert_eq!((row.state.as_str(), row.attempt), ("retrying", 1));
    // Base 50 ms, no jitter: the retry is stored 50 ms after the failure.
    assert_eq!(row.run_at, t0() + chrono::Duration::milliseconds(50));
    assert_eq!(row.last_error().as_deref(), Some("transient failure 0"));

    clock.advance(chrono::Duration::milliseconds(49));
    drain().await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "fetched before its backoff"
    );

    clock.advance(chrono::Duration::milliseconds(1));
    drain().await.unwrap();
    let row = q.get(job.id).await.unwrap();
    assert_eq!((row.state.as_str(), row.attempt), ("retrying", 2));
    // Second failure doubles the delay.
    assert_eq!(row.run_at, t0() + chrono::Duration::milliseconds(50 + 100));

    clock.advance(chrono::Duration::milliseconds(100));
    drain().await.unwrap();
    let row = q.get(job.id).await.unwrap();
    assert_eq!((row.state.as_str(), row.attempt), ("succeeded", 3));
    assert_eq!(row.errors.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_job_goes_dead_after_max_attempts_keeping_its_errors_and_can_be_retried() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let calls = Arc::new(AtomicU32::new(0));
    let job = q
        .enqueue(&Flaky {
            fail_times: 3,
            permanent: false,
        })
        .await
        .unwrap();
    for _ in 0..4 {
        work_until_idle(
            &q,
            flaky_registry(calls.clone()),
            fast_worker_config("w-dead"),
        )
        .await
        .unwrap();
        clock.advance(chrono::Duration::seconds(10));
    }
    let row = q.get(job.id).await.unwrap();
    assert_eq!(row.state, "dead");
    assert_eq!(row.attempt, 3);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "no attempt beyond max_attempts"
    );
    assert_eq!(row.last_error().as_deref(), Some("transient failure 2"));
    assert!(row.finished_at.is_some());

    // An operator retries it: a fresh set of attempts, and it now succeeds.
    let retried = q.retry(job.id).await.unwrap();
    assert_eq!((retried.state.as_str(), retried.attempt), ("queued", 0));
    work_until_idle(
        &q,
        flaky_registry(calls.clone()),
        fast_worker_config("w-dead"),
    )
    .await
    .unwrap();
    let row = q.get(job.id).await.unwrap();
    assert_eq!(row.state, "succeeded");
    assert_eq!(
        row.errors.as_array().unwrap().len(),
        3,
        "history kept across the retry"
    );
    // Retrying a succeeded job is refused with a reason.
    let err = q.retry(job.id).await.unwrap_err();
    assert!(
        err.to_string().contains("only dead, cancelled or retrying"),
        "{err}"
    );
}

#[derive(Serialize, Deserialize)]
struct Waits {
    /// Snoozes while the shared counter is below this.
    snoozes: u32,
}

impl JobArgs for Waits {
    const KIND: &'static str = "test.waits";
    const MAX_ATTEMPTS: u32 = 2;
}

#[tokio::test]
async fn a_snoozed_job_runs_again_later_without_spending_an_attempt_or_recording_an_error() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let calls = Arc::new(AtomicU32::new(0));
    let registry = || {
        let calls = calls.clone();
        Registry::new().register(move |j: Waits, _ctx: JobContext| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) < j.snoozes {
                    return Err(JobError::snooze(Duration::from_secs(5)));
                }
                Ok(())
            }
        })
    };
    // More snoozes than attempts: a job waiting for a lock must never go dead for it.
    let job = q.enqueue(&Waits { snoozes: 4 }).await.unwrap();
    work_until_idle(&q, registry(), fast_worker_config("w-snooze"))
        .await
        .unwrap();
    let row = q.get(job.id).await.unwrap();
    assert_eq!((row.state.as_str(), row.attempt), ("queued", 0));
    assert_eq!(row.run_at, q.now() + chrono::Duration::seconds(5));
    for _ in 0..4 {
        clock.advance(chrono::Duration::seconds(5));
        work_until_idle(&q, registry(), fast_worker_config("w-snooze"))
            .await
            .unwrap();
    }
    let row = q.get(job.id).await.unwrap();
    assert_eq!(row.state, "succeeded");
    assert_eq!(row.attempt, 1, "snoozes spend no attempt");
    assert_eq!(
        row.errors,
        serde_json::json!([]),
        "a snooze is not an error"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_job_lost_to_dead_workers_is_given_its_attempt_back_until_max_lost() {
    let db = TestDb::new().await;
    let q = db.queue();
    let once = q.enqueue(&NoopJob::default()).await.unwrap();
    let often = q
        .enqueue(&NoopJob {
            note: Some("often".into()),
        })
        .await
        .unwrap();
    // Both are running on a worker that no longer exists; `often` was lost four times before.
    sqlx::query(
        "UPDATE smo_jobs.jobs SET state = 'running', attempt = 1, locked_by = 'ghost',
                lost = CASE WHEN args->>'note' = 'often' THEN 4 ELSE 0 END",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut cfg = fast_worker_config("w-reaper");
    cfg.max_lost = 5;
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::new(q.clone(), Registry::new(), cfg).run(stop.clone()));
    wait_for_state(&q, once.id, "succeeded").await;
    wait_for_state(&q, often.id, "dead").await;
    stop.cancel();
    worker.await.unwrap().unwrap();
    let row = q.get(once.id).await.unwrap();
    assert_eq!(
        (row.attempt, row.lost),
        (1, 1),
        "the lost attempt was given back"
    );
    let row = q.get(often.id).await.unwrap();
    assert_eq!((row.attempt, row.lost), (0, 5));
    assert!(row.last_error().unwrap().contains("ghost was lost"));
}

#[tokio::test]
async fn a_claim_skips_rows_another_worker_has_locked_instead_of_waiting_for_them() {
    let db = TestDb::new().await;
    let q = db.queue();
    let held = q.enqueue(&NoopJob::default()).await.unwrap();
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(q.enqueue(&NoopJob::default()).await.unwrap());
    }
    // Another worker's claim in flight: the first job's row is locked until its transaction ends.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM smo_jobs.jobs WHERE id = $1 FOR UPDATE")
        .bind(held.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(q.clone(), Registry::new(), fast_worker_config("w-skip")).run(stop.clone()),
    );
    // Every unlocked job runs while the lock is held; a claim that waited would run none.
    let all_ran = tokio::time::timeout(Duration::from_secs(20), async {
        for o in &others {
            wait_for_state(&q, o.id, "succeeded").await;
        }
    })
    .await;
    assert_eq!(q.get(held.id).await.unwrap().state, "queued");
    tx.rollback().await.unwrap();
    assert!(
        all_ran.is_ok(),
        "the claim waited on a row another worker had locked"
    );
    wait_for_state(&q, held.id, "succeeded").await;
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_permanent_error_stops_retrying_at_once() {
    let db = TestDb::new().await;
    let q = db.queue();
    let calls = Arc::new(AtomicU32::new(0));
    let job = q
        .enqueue(&Flaky {
            fail_times: 5,
            permanent: true,
        })
        .await
        .unwrap();
    work_until_idle(
        &q,
        flaky_registry(calls.clone()),
        fast_worker_config("w-perm"),
    )
    .await
    .unwrap();
    let row = q.get(job.id).await.unwrap();
    assert_eq!((row.state.as_str(), row.attempt), ("dead", 1));
    assert_eq!(row.errors[0]["permanent"], true);
}

#[tokio::test]
async fn a_cancelled_job_never_runs() {
    let db = TestDb::new().await;
    let q = db.queue();
    let calls = Arc::new(AtomicU32::new(0));
    let job = q
        .enqueue(&Flaky {
            fail_times: 0,
            permanent: false,
        })
        .await
        .unwrap();
    let row = q.cancel(job.id).await.unwrap();
    assert_eq!(row.state, "cancelled");
    work_until_idle(
        &q,
        flaky_registry(calls.clone()),
        fast_worker_config("w-cancel"),
    )
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(matches!(
        q.cancel(job.id).await,
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        q.cancel(uuid::Uuid::now_v7()).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn prune_deletes_only_finished_jobs_older_than_the_retention() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let old = q.enqueue(&NoopJob::default()).await.unwrap();
    work_until_idle(&q, Registry::new(), fast_worker_config("w-prune"))
        .await
        .unwrap();
    clock.advance(chrono::Duration::days(8));
    let recent = q.enqueue(&NoopJob::default()).await.unwrap();
    work_until_idle(&q, Registry::new(), fast_worker_config("w-prune2"))
        .await
        .unwrap();
    let waiting = q.enqueue(&Keyed { key: "k".into() }).await.unwrap();

    // Retention runs as the built-in job, like the scheduler enqueues it.
    q.enqueue(&PruneJob {
        retention_secs: 7 * 86_400,
    })
    .await
    .unwrap();
    work_until_idle(&q, Registry::new(), fast_worker_config("w-prune3"))
        .await
        .unwrap();
    assert!(matches!(q.get(old.id).await, Err(Error::NotFound(_))));
    assert_eq!(q.get(recent.id).await.unwrap().state, "succeeded");
    assert_eq!(q.get(waiting.id).await.unwrap().state, "queued");
}

#[tokio::test]
async fn two_schedulers_enqueue_each_slot_once() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let entry = CronEntry::new("tick-all", "*/30 * * * * *", &NoopJob::default()).unwrap();
    let a = Scheduler::new(q.clone(), SchedulerConfig::default()).with_entry(entry.clone());
    let b = Scheduler::new(q.clone(), SchedulerConfig::default()).with_entry(entry);
    a.register().await.unwrap();
    b.register().await.unwrap();
    let fired_before = smo_jobs::metrics::CRON_FIRED.get(&["tick-all"]);
    let mut fired = 0;
    for _ in 0..6 {
        clock.advance(chrono::Duration::seconds(30));
        let (x, y) = tokio::join!(a.tick(), b.tick());
        fired += x.unwrap().len() + y.unwrap().len();
        // Drain so that each slot creates a new job rather than meeting the live one.
        work_until_idle(&q, Registry::new(), fast_worker_config("w-cron"))
            .await
            .unwrap();
    }
    assert_eq!(fired, 6);
    assert_eq!(
        smo_jobs::metrics::CRON_FIRED.get(&["tick-all"]) - fired_before,
        6,
        "the cron counter counts claimed slots, once each"
    );
    let jobs = q
        .list(&JobFilter {
            kind: Some("noop".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 6);
    let cron = q.cron_entries().await.unwrap();
    assert_eq!(cron[0].next_run_at, t0() + chrono::Duration::seconds(210));
    assert_eq!(cron[0].then.len(), 3);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_jobs_within_the_grace_period() {
    let db = TestDb::new().await;
    let q = db.queue();
    // The handler says when it starts: a claimed row is `running` before apalis has called the
    // handler, and a shutdown in that gap rightly hands the job back instead of finishing it
    // (the soak caught this test cancelling there on a loaded machine).
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<uuid::Uuid>();
    let registry = Registry::new().register(move |s: Sleepy, ctx: JobContext| {
        let started_tx = started_tx.clone();
        async move {
            let _ = started_tx.send(ctx.id);
            tokio::time::sleep(Duration::from_millis(s.ms)).await;
            Ok(())
        }
    });
    let quick = q.enqueue(&Sleepy { ms: 300 }).await.unwrap();
    let stop = CancellationToken::new();
    // A lease of seconds, not the fast config's 600 ms: on a loaded machine a late heartbeat
    // would fence the job and hand it back, which is not what this half of the test is about.
    let mut patient = fast_worker_config("w-grace");
    patient.missed_heartbeats = 50;
    let w = tokio::spawn(Worker::new(q.clone(), registry.clone(), patient).run(stop.clone()));
    let first = tokio::time::timeout(Duration::from_secs(30), started.recv())
        .await
        .expect("the handler starts within 30 s");
    assert_eq!(first, Some(quick.id));
    stop.cancel();
    w.await.unwrap().unwrap();
    assert_eq!(q.get(quick.id).await.unwrap().state, "succeeded");

    // A job longer than the grace period is handed back, not lost and not counted as an attempt.
    let slow = q.enqueue(&Sleepy { ms: 60_000 }).await.unwrap();
    let mut cfg = fast_worker_config("w-grace2");
    cfg.shutdown_grace = Duration::from_millis(100);
    let stop = CancellationToken::new();
    let w = tokio::spawn(Worker::new(q.clone(), registry, cfg).run(stop.clone()));
    wait_for_state(&q, slow.id, "running").await;
    stop.cancel();
    w.await.unwrap().unwrap();
    let row = q.get(slow.id).await.unwrap();
    assert_eq!(
        (row.state.as_str(), row.attempt, row.locked_by),
        ("queued", 0, None)
    );
    let workers = q.workers(true).await.unwrap();
    assert!(
        workers
            .iter()
            .all(|w| w.stopped_at.is_some() && w.stop_reason.as_deref() == Some("shutdown"))
    );
}

/// Waits for a job to reach `state`, as long as a loaded machine may need.
async fn wait_for_state(q: &Queue, id: uuid::Uuid, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if q.get(id).await.unwrap().state == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never reached {state}");
}

/// The probe's effect is a row in a table without a key: were the job's handler to run to the end
/// twice, there would be two rows for it, and the count below would say so.
#[tokio::test]
async fn a_worker_process_killed_mid_job_loses_nothing_and_the_effect_happens_once() {
    let db = TestDb::new().await;
    let q = db.queue();
    sqlx::raw_sql(
        "CREATE TABLE probe_runs (job_id uuid NOT NULL, worker text NOT NULL);
         CREATE TABLE probe_effects (job_id uuid NOT NULL, worker text NOT NULL);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let job = q
        .enqueue_many(&[smo_jobs::NewJob {
            kind: "probe".into(),
            args: serde_json::json!({}),
            unique_key: None,
            max_attempts: 5,
            priority: 0,
            run_at: None,
        }])
        .await
        .unwrap();
    assert_eq!(job, 1);
    let bin = env!("CARGO_BIN_EXE_smo-jobs-probe");
    // The first worker's attempt would work for ten minutes: it is killed long before its effect.
    let mut first = std::process::Command::new(bin)
        .args([&db.url, "probe-a", "100", "600000"])
        .spawn()
        .unwrap();
    let mut runs = 0i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        runs = sqlx::query_scalar("SELECT count(*) FROM probe_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if runs > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs, 1, "the first worker never started the job");
    first.kill().unwrap(); // SIGKILL: no shutdown code runs
    first.wait().unwrap();

    let mut second = std::process::Command::new(bin)
        .args([&db.url, "probe-b", "100", "100"])
        .spawn()
        .unwrap();
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM smo_jobs.jobs WHERE kind = 'probe'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let mut state = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        state = q.get(id).await.unwrap().state;
        if state == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A while longer, so that a second run the engine wrongly started would end and be counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = second.kill();
    let _ = second.wait();
    let effects: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT job_id, worker FROM probe_effects")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        effects,
        [(id, "probe-b".to_string())],
        "exactly one effect for the job, by the worker that finished it"
    );
    assert_eq!(state, "succeeded");
    let runs: Vec<String> = sqlx::query_scalar("SELECT worker FROM probe_runs ORDER BY worker")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(runs, vec!["probe-a", "probe-b"]);
    let row = q.get(id).await.unwrap();
    // The attempt the dead worker was on is given back and counted as lost, apart from the
    // attempts meant for the job's own errors.
    assert_eq!(
        row.attempt, 1,
        "a SIGKILLed worker must not cost the job an attempt"
    );
    assert_eq!(row.lost, 1);
    assert_eq!(row.locked_by.as_deref(), Some("probe-b"));
    assert!(
        row.last_error().unwrap().contains("probe-a was lost"),
        "{:?}",
        row.errors
    );
    let workers = q.workers(true).await.unwrap();
    let a = workers.iter().find(|w| w.name == "probe-a").unwrap();
    assert_eq!(a.stop_reason.as_deref(), Some("heartbeat lapsed"));
}

#[tokio::test]
async fn stats_count_per_kind_and_state() {
    let db = TestDb::new().await;
    let q = db.queue();
    for _ in 0..3 {
        q.enqueue(&NoopJob::default()).await.unwrap();
    }
    q.enqueue(&Keyed { key: "x".into() }).await.unwrap();
    work_until_idle(&q, Registry::new(), fast_worker_config("w-stats"))
        .await
        .unwrap();
    let s = q.stats().await.unwrap();
    let noop = s.kinds.iter().find(|k| k.kind == "noop").unwrap();
    assert_eq!(noop.states["succeeded"], 3);
    assert_eq!(noop.succeeded_last_minute, 3);
    let keyed = s.kinds.iter().find(|k| k.kind == "test.keyed").unwrap();
    assert_eq!(keyed.states["queued"], 1);
    assert!(keyed.oldest_queued_secs.unwrap() >= 0.0);
    assert!(s.throughput_per_sec > 0.0);
    assert_eq!(JobState::ALL.len(), noop.states.len());
}

/// Finished jobs are counted by a trigger rather than by scanning (stats stay fast at millions
/// of rows): after every way a job can finish or leave — success, death, cancellation, a retry
/// of a dead job, pruning — the counts are exactly what counting the table says.
#[tokio::test]
async fn finished_counts_match_the_table_after_every_way_a_job_finishes_or_leaves() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    for _ in 0..4 {
        q.enqueue(&Counted { fail: false }).await.unwrap();
    }
    let doomed = q.enqueue(&Counted { fail: true }).await.unwrap();
    let cancelled = q.enqueue(&NoopJob::default()).await.unwrap();
    q.cancel(cancelled.id).await.unwrap();
    for _ in 0..3 {
        work_until_idle(&q, counted_registry(), fast_worker_config("w-fin"))
            .await
            .unwrap();
        clock.advance(chrono::Duration::seconds(10));
    }
    let matches_table = |when: &str| {
        let q = q.clone();
        let when = when.to_string();
        async move {
            let table: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT kind, state, count(*) FROM smo_jobs.jobs
                  WHERE state IN ('succeeded', 'dead', 'cancelled') GROUP BY kind, state",
            )
            .fetch_all(q.pool())
            .await
            .unwrap();
            let s = q.stats().await.unwrap();
            for (kind, state, n) in &table {
                let k = s.kinds.iter().find(|k| &k.kind == kind).unwrap();
                assert_eq!(k.states[state.as_str()], *n, "{when}: {kind} {state}");
            }
            let counted: i64 = s
                .kinds
                .iter()
                .flat_map(|k| ["succeeded", "dead", "cancelled"].map(|st| k.states[st]))
                .sum();
            assert_eq!(counted, table.iter().map(|t| t.2).sum::<i64>(), "{when}");
            table
        }
    };
    let table = matches_table("finished").await;
    assert_eq!(table.iter().map(|t| t.2).sum::<i64>(), 6, "{table:?}");
    q.retry(doomed.id).await.unwrap();
    matches_table("a dead job retried").await;
    clock.advance(chrono::Duration::days(30));
    assert!(q.prune(chrono::Duration::days(1)).await.unwrap() >= 5);
    let table = matches_table("pruned").await;
    assert!(table.is_empty(), "{table:?}");
}

#[derive(Serialize, Deserialize)]
struct Counted {
    fail: bool,
}

impl JobArgs for Counted {
    const KIND: &'static str = "test.counted";
    const MAX_ATTEMPTS: u32 = 2;
}

/// Runs `Counted`: fails (transiently) when asked to, else succeeds.
fn counted_registry() -> Registry {
    Registry::new().register(|j: Counted, _ctx: JobContext| async move {
        if j.fail {
            Err(JobError::transient("always fails"))
        } else {
            Ok(())
        }
    })
}

#[tokio::test]
async fn the_process_counts_every_enqueue_attempt_outcome_and_death_per_kind() {
    use smo_jobs::metrics::{DEAD, DURATION, ENQUEUED, FAILED, STARTED, SUCCEEDED};
    let k = [Counted::KIND];
    let before = [&ENQUEUED, &STARTED, &SUCCEEDED, &FAILED, &DEAD].map(|c| c.get(&k));
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    q.enqueue(&Counted { fail: false }).await.unwrap();
    let doomed = q.enqueue(&Counted { fail: true }).await.unwrap();
    for _ in 0..3 {
        work_until_idle(&q, counted_registry(), fast_worker_config("w-count"))
            .await
            .unwrap();
        clock.advance(chrono::Duration::seconds(10));
    }
    assert_eq!(q.get(doomed.id).await.unwrap().state, "dead");
    let after = [&ENQUEUED, &STARTED, &SUCCEEDED, &FAILED, &DEAD].map(|c| c.get(&k));
    let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    // enqueued 2; started 3 (1 + 2 attempts); succeeded 1; failed 2 (each attempt); dead 1.
    assert_eq!(delta, [2, 3, 1, 2, 1]);
    assert!(DURATION.count(&[Counted::KIND, "succeeded"]) >= 1);
    assert!(DURATION.count(&[Counted::KIND, "failed"]) >= 2);
    // Rendered in the exposition format under the documented names.
    let mut text = String::new();
    smo_jobs::metrics::render(&mut text);
    for family in [
        "smo_jobs_enqueued_total",
        "smo_jobs_started_total",
        "smo_jobs_succeeded_total",
        "smo_jobs_failed_total",
        "smo_jobs_dead_total",
    ] {
        assert!(
            text.contains(&format!("{family}{{kind=\"test.counted\"}}")),
            "{family} missing:\n{text}"
        );
    }
    assert!(
        text.contains("smo_job_duration_seconds_count{kind=\"test.counted\",outcome=\"failed\"}")
    );
}

#[derive(Serialize, Deserialize)]
struct Probe {
    n: u32,
}

impl JobArgs for Probe {
    const KIND: &'static str = "test.fence";
}

/// What one attempt of a `Probe` saw: its epoch, whether its lease still looked valid, and what
/// `fence` answered inside its transaction.
type Seen = Arc<std::sync::Mutex<Vec<(i64, bool, Result<(), String>)>>>;

/// A clock that moves only when told to, except that every reading is a microsecond later than
/// the one before: each timestamp the engine writes is later than those it wrote earlier, so a
/// test can tell a worker's first heartbeat from its registration.
struct Ticking(ManualClock);

impl Clock for Ticking {
    fn now(&self) -> chrono::DateTime<Utc> {
        self.0.advance(chrono::Duration::microseconds(1));
        self.0.now()
    }
}

/// The next message, waiting as long as a loaded machine may need.
async fn next<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} in 30 s"))
        .unwrap_or_else(|| panic!("no {what}: the sender is gone"))
}

#[tokio::test]
async fn an_attempt_superseded_while_it_ran_can_neither_record_nor_acknowledge() {
    let db = TestDb::new().await;
    // Worker A and its peer share one clock, moved by the test only: A's lease lapses for its
    // peers when the test says so, never because a loaded machine delayed something.
    let clock = ManualClock::new(t0());
    let q = Queue::with_clock(db.pool.clone(), Arc::new(Ticking(clock.clone())));
    let fenced_before = smo_jobs::metrics::FENCED.get(&[Probe::KIND]);
    let seen: Seen = Arc::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let registry = {
        let (seen, release, pool) = (seen.clone(), release.clone(), db.pool.clone());
        Registry::new().register(move |_: Probe, ctx: JobContext| {
            let (seen, release, pool, started_tx, done_tx) = (
                seen.clone(),
                release.clone(),
                pool.clone(),
                started_tx.clone(),
                done_tx.clone(),
            );
            async move {
                let _ = started_tx.send(ctx.epoch);
                if ctx.epoch == 1 {
                    release.notified().await;
                }
                let mut tx = pool.begin().await.map_err(JobError::transient)?;
                let fenced = ctx.fence(&mut tx).await;
                seen.lock().unwrap().push((
                    ctx.epoch,
                    ctx.lease.check().is_ok(),
                    fenced.clone().map_err(|e| e.to_string()),
                ));
                let _ = done_tx.send(ctx.epoch);
                fenced?;
                tx.commit().await.map_err(JobError::transient)?;
                Ok(())
            }
        })
    };
    // Worker A heartbeats as it starts and then not for an hour: after that first heartbeat
    // nothing but the database can tell it that it lost the job.
    let mut cfg = fast_worker_config("w-a");
    cfg.heartbeat_interval = Duration::from_secs(3600);
    let stop = CancellationToken::new();
    let a = tokio::spawn(Worker::new(q.clone(), registry, cfg).run(stop.clone()));
    let job = q.enqueue(&Probe { n: 1 }).await.unwrap();
    assert_eq!(next(&mut started, "first attempt").await, 1);

    // A's first heartbeat is sent whenever its own connection opens, which a loaded machine
    // delays. Acting before it is written would race it: a heartbeat written after the peer
    // declared A lost tells A so (its lease is revoked, and the fence is no longer the only thing
    // that stops the attempt). Written later than the registration, it is seen here.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let beat: bool = sqlx::query_scalar(
            "SELECT heartbeat_at > started_at FROM smo_jobs.workers WHERE name = 'w-a'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if beat {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A's first heartbeat was not written in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // An hour later A's heartbeat has lapsed for its peers, though not for A (it measures its
    // lease on its own monotonic clock). A peer hands the job out again; A claims it anew (epoch
    // 2) and that attempt finishes while the first is still running.
    clock.advance(chrono::Duration::hours(1));
    let mut peer = PgBackend::<Probe>::new(q.clone(), fast_worker_config("w-b"));
    assert_eq!(peer.resume_abandoned().await.unwrap(), 1, "the one job");
    assert_eq!(next(&mut started, "second attempt").await, 2);
    assert_eq!(next(&mut done, "second attempt's end").await, 2);
    wait_for_state(&q, job.id, "succeeded").await;

    // Now the first attempt tries to record its outcome. Stopping the worker writes every
    // outcome it saw before it returns.
    release.notify_one();
    assert_eq!(next(&mut done, "first attempt's end").await, 1);
    stop.cancel();
    a.await.unwrap().unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (epoch, lease_ok, fenced) = &seen[1];
    assert_eq!(*epoch, 1);
    assert!(
        *lease_ok,
        "A's own lease still looked valid: only the fence could stop it"
    );
    assert!(
        fenced
            .as_ref()
            .is_err_and(|e| e.contains("fenced") && e.contains("superseded")),
        "{fenced:?}"
    );
    assert_eq!(seen[0], (2, true, Ok(())));
    let row = q.get(job.id).await.unwrap();
    assert_eq!(row.state, "succeeded", "the stale attempt changed nothing");
    assert_eq!((row.attempt, row.lost), (1, 1));
    assert_eq!(
        row.errors.as_array().map(Vec::len),
        Some(1),
        "only the loss: {}",
        row.errors
    );
    assert_eq!(
        smo_jobs::metrics::FENCED.get(&[Probe::KIND]) - fenced_before,
        1,
        "smo_jobs_fenced_total counts the abandoned attempt"
    );
}

/// Waits until a session of this database waits for a lock that backend `holder` holds (`true`),
/// or until `task` finishes without having waited (`false`). Either answer is observed, never
/// guessed from a timeout: a task that waits for `holder` cannot finish while `holder` holds on.
async fn waits_for<T>(pool: &sqlx::PgPool, holder: i32, task: &tokio::task::JoinHandle<T>) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE datname = current_database() AND $1 = ANY(pg_blocking_pids(pid)))",
        )
        .bind(holder)
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting {
            return true;
        }
        if task.is_finished() {
            return false;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task neither waited for the lock nor finished in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// `fence` share-locks the job's row until the caller's transaction ends: a peer that finds the
/// attempt's worker lost waits for that transaction before it takes the job, so nothing can
/// supersede the attempt between its check and the commit of what it recorded.
#[tokio::test]
async fn a_peer_cannot_take_a_job_between_an_attempts_fence_and_its_commit() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let mut peer = PgBackend::<Probe>::new(q.clone(), fast_worker_config("w-b"));
    // Worker A, registered at t0, runs the job's first attempt (epoch 1).
    peer.register_worker("w-a".into()).await.unwrap();
    let job = q.enqueue(&Probe { n: 1 }).await.unwrap();
    sqlx::query(
        "UPDATE smo_jobs.jobs SET state = 'running', locked_by = 'w-a', attempt = 1, epoch = 1
          WHERE id = $1",
    )
    .bind(job.id)
    .execute(&db.pool)
    .await
    .unwrap();
    let ctx = JobContext {
        id: job.id,
        kind: Probe::KIND.into(),
        attempt: 1,
        max_attempts: Probe::MAX_ATTEMPTS,
        worker: "w-a".into(),
        epoch: 1,
        lease: Lease::unbounded(),
        queue: q.clone(),
    };
    let mut tx = db.pool.begin().await.unwrap();
    ctx.fence(&mut tx).await.unwrap();
    let holder = backend_pid(&mut tx).await;

    // An hour on, A's lease has lapsed for its peers; one looks for abandoned jobs while the
    // attempt's transaction is still open.
    clock.advance(chrono::Duration::hours(1));
    let reaping = tokio::spawn(async move { peer.resume_abandoned().await });
    let waited = waits_for(&db.pool, holder, &reaping).await;
    tx.commit().await.unwrap();
    assert!(
        waited,
        "the peer took the job while the attempt's fence held it"
    );
    assert_eq!(reaping.await.unwrap().unwrap(), 1, "then it takes it");
    let mut tx = db.pool.begin().await.unwrap();
    assert!(ctx.fence(&mut tx).await.unwrap_err().is_fenced());
}

/// The cron claim's `SKIP LOCKED`: a scheduler never waits on another's claim. A slot another
/// replica is claiming (its transaction still open) is skipped at once, and the entries after
/// it are not held up behind it. Firing each slot once does not rest on it: a claim that waited
/// would find the slot moved on when the lock is released and fire nothing.
#[tokio::test]
async fn a_scheduler_skips_a_slot_another_is_claiming_instead_of_waiting_for_it() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let held = CronEntry::new("held", "*/30 * * * * *", &NoopJob::default()).unwrap();
    let free = CronEntry::new("free", "*/30 * * * * *", &NoopJob::default()).unwrap();
    let b = Scheduler::new(q.clone(), SchedulerConfig::default())
        .with_entry(held)
        .with_entry(free);
    b.register().await.unwrap();
    clock.advance(chrono::Duration::seconds(30));
    // Another replica's claim of `held`, its transaction open.
    let mut claim = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM smo_jobs.cron WHERE name = 'held' FOR UPDATE")
        .execute(&mut *claim)
        .await
        .unwrap();
    let holder = backend_pid(&mut claim).await;
    let ticking = tokio::spawn(async move {
        let fired = b.tick().await;
        (b, fired)
    });
    let waited = waits_for(&db.pool, holder, &ticking).await;
    claim.rollback().await.unwrap();
    assert!(!waited, "the scheduler waited on another's claim");
    let (b, fired) = ticking.await.unwrap();
    let names =
        |f: Vec<(String, smo_jobs::Enqueued)>| f.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names(fired.unwrap()), ["free"]);
    // The other replica gave up its claim: the slot is still due, and the next pass fires it.
    assert_eq!(names(b.tick().await.unwrap()), ["held"]);
}

/// A typed kind run by a hand-built apalis worker, as an apalis user would write it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Mail {
    to: String,
}

impl JobArgs for Mail {
    const KIND: &'static str = "test.mail";
    fn unique_key(&self) -> Option<String> {
        self.to.starts_with("once-").then(|| self.to.clone())
    }
}

type Sent = Arc<std::sync::Mutex<Vec<(String, u32)>>>;

/// Fails the first attempt of a mail to "flaky"; records every attempt.
async fn send_mail(mail: Mail, ctx: JobContext, seen: Data<Sent>) -> Result<(), JobError> {
    seen.lock().unwrap().push((mail.to.clone(), ctx.attempt));
    if mail.to == "flaky" && ctx.attempt == 1 {
        return Err(JobError::transient("smtp said 421"));
    }
    Ok(())
}

#[tokio::test]
async fn an_apalis_worker_over_the_backend_runs_typed_jobs_pushed_through_its_task_sink() {
    let db = TestDb::new().await;
    let q = db.queue();
    let mut backend = PgBackend::<Mail>::new(q.clone(), fast_worker_config("w-apalis"));
    for to in ["ann", "flaky", "once-bob", "once-bob"] {
        backend.push(Mail { to: to.into() }).await.unwrap();
    }
    // The unique key still holds when pushing through apalis: one live "once-bob".
    let mails = q
        .list(&JobFilter {
            kind: Some(Mail::KIND.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mails.len(), 3);
    let ids: Vec<TaskId> = mails.iter().map(|m| TaskId::from_uuid(m.id)).collect();

    let seen: Sent = Default::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("w-apalis")
        .backend(backend.clone())
        .data(seen.clone())
        .parallelize(tokio::spawn)
        .build(send_mail);
    let s = stop.clone();
    let run = tokio::spawn(worker.run_until(async move {
        s.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));
    let results: Vec<_> = tokio::time::timeout(
        Duration::from_secs(20),
        backend.wait_for(ids).collect::<Vec<_>>(),
    )
    .await
    .expect("every mail finishes");
    stop.cancel();
    run.await.unwrap().unwrap();

    assert_eq!(results.len(), 3);
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().status == Status::Done),
        "{results:?}"
    );
    let flaky = mails.iter().find(|m| m.args["to"] == "flaky").unwrap();
    let row = q.get(flaky.id).await.unwrap();
    assert_eq!((row.state.as_str(), row.attempt), ("succeeded", 2));
    assert_eq!(row.last_error().as_deref(), Some("smtp said 421"));
    let mut attempts = seen.lock().unwrap().clone();
    attempts.sort();
    assert_eq!(
        attempts,
        [
            ("ann".into(), 1),
            ("flaky".into(), 1),
            ("flaky".into(), 2),
            ("once-bob".into(), 1)
        ]
    );
    // The worker registered under its apalis name and deregistered on shutdown.
    let w = q.workers(true).await.unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].name.as_str(), w[0].stop_reason.as_deref()),
        ("w-apalis", Some("shutdown"))
    );
}

#[tokio::test]
async fn apalis_management_traits_act_on_the_job_table_by_its_rules() {
    let db = TestDb::new().await;
    let (q, clock) = manual(&db);
    let mut b = PgBackend::<Mail>::new(q.clone(), fast_worker_config("w-manage"));
    let ann = q.enqueue(&Mail { to: "ann".into() }).await.unwrap().id;
    let dead = q.enqueue(&Mail { to: "dead".into() }).await.unwrap().id;
    q.enqueue(&NoopJob::default()).await.unwrap();
    sqlx::query("UPDATE smo_jobs.jobs SET state = 'dead', finished_at = $2 WHERE id = $1")
        .bind(dead)
        .bind(t0())
        .execute(&db.pool)
        .await
        .unwrap();

    // Listing: this backend's kind only, or every kind; filtered by apalis status.
    let all = Filter {
        status: None,
        page: 1,
        page_size: Some(10),
    };
    assert_eq!(b.list_tasks(&all).await.unwrap().len(), 2);
    assert_eq!(b.list_all_tasks(&all).await.unwrap().len(), 3);
    let failed = b
        .list_tasks(&Filter {
            status: Some(Status::Failed),
            page: 1,
            page_size: None,
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].task_id().unwrap().to_uuid(), dead);
    let t = b
        .fetch_by_id(&TaskId::from_uuid(ann))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            t.args["to"].as_str(),
            t.status(),
            t.queue().map(|q| q.as_ref().to_string())
        ),
        (Some("ann"), Status::Pending, Some(Mail::KIND.to_string()))
    );
    assert!(
        b.fetch_by_id(&TaskId::from_uuid(uuid::Uuid::now_v7()))
            .await
            .unwrap()
            .is_none()
    );

    // Update and reschedule a waiting job; a finished one is refused.
    let mut t2 = t.clone();
    t2.args = serde_json::json!({"to": "anna"});
    b.update(t2).await.unwrap();
    b.reschedule(t.clone(), Duration::from_secs(90))
        .await
        .unwrap();
    let row = q.get(ann).await.unwrap();
    assert_eq!(
        (row.args["to"].as_str(), row.run_at),
        (Some("anna"), t0() + chrono::Duration::seconds(90))
    );
    let dead_task = b
        .fetch_by_id(&TaskId::from_uuid(dead))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        b.reschedule(dead_task, Duration::ZERO).await,
        Err(Error::InvalidState { .. })
    ));

    // Resume a dead job: fresh attempts, queued now.
    assert!(b.resume_by_id(TaskId::from_uuid(dead)).await.unwrap());
    assert_eq!(q.get(dead).await.unwrap().state, "queued");
    assert!(
        !b.resume_by_id(TaskId::from_uuid(dead)).await.unwrap(),
        "a queued job is not resumed"
    );

    // Queues and metrics count per kind and state.
    let queues = b.list_queues().await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["jobs.prune", "noop", "test.mail"]);
    let queued = |stats: &[Statistic]| {
        stats
            .iter()
            .find(|s| s.title == "PENDING_JOBS")
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(queued(&b.fetch_by_queue().await.unwrap()), "2");
    assert_eq!(queued(&b.global().await.unwrap()), "3");

    // A worker that stopped heartbeating: resume_abandoned hands its job back, the loss counted.
    b.register_worker("ghost".into()).await.unwrap();
    assert_eq!(b.list_workers().await.unwrap().len(), 1);
    sqlx::query("UPDATE smo_jobs.jobs SET state = 'running', locked_by = 'ghost', attempt = 1 WHERE id = $1")
        .bind(ann)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        b.resume_abandoned().await.unwrap(),
        0,
        "the ghost's lease still holds"
    );
    clock.advance(chrono::Duration::seconds(5));
    assert_eq!(b.resume_abandoned().await.unwrap(), 1);
    let row = q.get(ann).await.unwrap();
    assert_eq!(
        (row.state.as_str(), row.attempt, row.lost),
        ("queued", 0, 1)
    );
    assert!(b.list_workers().await.unwrap().is_empty());

    // Vacuum deletes finished jobs only.
    sqlx::query(
        "UPDATE smo_jobs.jobs SET state = 'succeeded', finished_at = $1 WHERE kind = 'noop'",
    )
    .bind(t0())
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(b.vacuum().await.unwrap(), 1);
    assert_eq!(b.list_all_tasks(&all).await.unwrap().len(), 2);
}

#[tokio::test]
async fn two_schedulers_on_apalis_cron_fire_each_wall_clock_slot_once() {
    let db = TestDb::new().await;
    let q = db.queue();
    let entry = CronEntry::new("every-second", "* * * * * *", &NoopJob::default()).unwrap();
    let before = smo_jobs::metrics::CRON_FIRED.get(&["every-second"]);
    let stop = CancellationToken::new();
    let config = SchedulerConfig {
        tick: Duration::from_secs(3600),
    };
    let started = std::time::Instant::now();
    let a = tokio::spawn(
        Scheduler::new(q.clone(), config.clone())
            .with_entry(entry.clone())
            .run(stop.clone()),
    );
    let b = tokio::spawn(
        Scheduler::new(q.clone(), config)
            .with_entry(entry)
            .run(stop.clone()),
    );
    tokio::time::sleep(Duration::from_millis(3300)).await;
    stop.cancel();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    let slots = started.elapsed().as_secs() + 1;
    let fired = smo_jobs::metrics::CRON_FIRED.get(&["every-second"]) - before;
    // Both replicas' cron streams fire every second; the claim lets one of them enqueue.
    assert!(fired >= 2, "the cron streams fired {fired} slots in 3.3 s");
    assert!(
        fired <= slots,
        "{fired} fires for at most {slots} slots: a slot fired twice"
    );
    let row = &q.cron_entries().await.unwrap()[0];
    assert!(row.last_run_at.is_some());
}
