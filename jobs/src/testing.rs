//! Test support: a fresh database per test, cloned from a migrated template, and a way to drain
//! the queue deterministically instead of sleeping.
//!
//! The server is the throwaway PostgreSQL that `scripts/dev-db start` runs; its admin URL comes
//! from `SMO_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:55432/postgres`).

use std::{future::Future, time::Duration};

use sqlx::{Connection, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio_util::sync::CancellationToken;

pub use crate::lease::ManualLease;
use crate::{Error, Queue, Registry, Worker, WorkerConfig};

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var("SMO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432/postgres".into())
}

fn with_db(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if !url[..i].ends_with('/') => format!("{}/{db}", &url[..i]),
        _ => format!("{url}/{db}"),
    }
}

/// A database of one's own for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
    /// A pool on it.
    pub pool: PgPool,
}

impl TestDb {
    /// A fresh database with the engine's migrations.
    pub async fn new() -> TestDb {
        Self::with_template("jobs", |pool| async move {
            crate::migrate(&pool).await.map_err(|e| e.to_string())
        })
        .await
    }

    /// A fresh database cloned from template `smo_tpl_<key>`, which `migrate` creates once per
    /// server (serialised by an advisory lock, so parallel test processes agree). `key` must change
    /// whenever the migrations do: callers derive it from their migration checksums.
    pub async fn with_template<F, Fut>(key: &str, migrate: F) -> TestDb
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL at {admin}: {e}\nstart it with: scripts/dev-db start")
        });
        let template = format!(
            "smo_tpl_{}",
            sanitize(&format!("{key}_{}", migrations_key()))
        );
        sqlx::query("SELECT pg_advisory_lock(774201)")
            .execute(&mut conn)
            .await
            .expect("advisory lock");
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut conn)
                .await
                .expect("query pg_database");
        if !exists {
            let building = format!("{template}_building");
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {building}"
            )))
            .execute(&mut conn)
            .await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
                .execute(&mut conn)
                .await
                .expect("create template");
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect(&with_db(&admin, &building))
                .await
                .expect("connect template");
            migrate(pool.clone())
                .await
                .unwrap_or_else(|e| panic!("migrating the test template: {e}"));
            pool.close().await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {building} RENAME TO {template}"
            )))
            .execute(&mut conn)
            .await
            .expect("rename template");
        }
        drop_stale_databases(&mut conn).await;
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("t_{created}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .execute(&mut conn)
        .await
        .expect("create test database");
        sqlx::query("SELECT pg_advisory_unlock(774201)")
            .execute(&mut conn)
            .await
            .expect("unlock");
        let url = with_db(&admin, &name);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await
            .expect("connect test db");
        TestDb { url, name, pool }
    }

    /// A queue on this database.
    pub fn queue(&self) -> Queue {
        Queue::new(self.pool.clone())
    }
}

/// Test databases are never dropped by their test (a process may die anywhere), so each new one
/// first drops those older than an hour (their names carry their creation time) and the
/// unnamed-age ones of older versions (`t_<uuid>`), unless something still uses them: a
/// developer's server otherwise fills its disk, some 460 databases (7 GB) a run.
async fn drop_stale_databases(conn: &mut PgConnection) {
    // A whole suite runs in minutes: an hour-old test database belongs to no running test.
    const STALE_AFTER: u64 = 3600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let rest = &name[2..];
        let stale = match rest.split_once('_') {
            Some((secs, _)) => secs
                .parse::<u64>()
                .is_ok_and(|t| now.saturating_sub(t) > STALE_AFTER),
            None => rest.len() == 32,
        };
        if stale && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // In use (a test still running): the drop fails and the database stays.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(50)
        .collect()
}

fn migrations_key() -> String {
    let m = sqlx::migrate!("./migrations");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for mig in m.iter() {
        for b in mig.checksum.iter() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// A worker configuration for tests: short intervals, no jitter.
pub fn fast_worker_config(name: &str) -> WorkerConfig {
    WorkerConfig {
        name: name.to_string(),
        concurrency: 8,
        batch_size: 16,
        poll_interval: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(100),
        // A lease of 600 ms (renew deadline 400 ms): short, yet a heartbeat delayed by a loaded
        // test machine does not fence the jobs of a live worker.
        missed_heartbeats: 6,
        renew_deadline: None,
        max_lost: 5,
        backoff: crate::Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(1),
            jitter: false,
        },
        shutdown_grace: Duration::from_secs(5),
        job_timeout: Some(Duration::from_secs(30)),
    }
}

/// Runs a worker until no job of its kinds is runnable now or running, then stops it.
///
/// Jobs whose `run_at` lies in the future (backoff) are left alone: that is the point.
pub async fn work_until_idle(
    queue: &Queue,
    registry: Registry,
    config: WorkerConfig,
) -> Result<(), Error> {
    let kinds = registry.kinds();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::new(queue.clone(), registry, config).run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM smo_jobs.jobs WHERE kind = ANY($1)
               AND (state = 'running' OR (state IN ('queued', 'retrying') AND run_at <= $2)))",
        )
        .bind(&kinds)
        .bind(queue.now())
        .fetch_one(queue.pool())
        .await?;
        if !busy || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    stop.cancel();
    worker
        .await
        .map_err(|e| Error::Config(format!("worker task failed: {e}")))?
}

/// What a test does when something it needs is missing (network namespaces, `../shared`, a
/// tool): under `CI=true`, which CI sets, that is a failure naming what is missing, so a test
/// never passes without running there; elsewhere the test is skipped with a message. Returns
/// only when skipping is allowed.
pub fn missing_prerequisite(what: &str) {
    missing_prerequisite_in(what, std::env::var("CI").is_ok_and(|v| v == "true"));
}

/// [`missing_prerequisite`] with CI's flag given (testable without touching the environment).
pub fn missing_prerequisite_in(what: &str, ci: bool) {
    assert!(!ci, "CI=true and a prerequisite is missing: {what}");
    eprintln!("skipped (CI is not set): {what}");
}

#[cfg(test)]
mod prerequisite_tests {
    use super::missing_prerequisite_in;

    #[test]
    #[should_panic(expected = "CI=true and a prerequisite is missing: ../shared")]
    fn a_missing_prerequisite_fails_under_ci() {
        missing_prerequisite_in("../shared", true);
    }

    #[test]
    fn a_missing_prerequisite_skips_outside_ci() {
        missing_prerequisite_in("../shared", false);
    }
}

#[cfg(test)]
mod cleanup_tests {
    use super::*;

    /// A test database older than an hour is dropped when the next one is made; a young one and
    /// one still in use stay.
    #[tokio::test]
    async fn a_new_test_database_drops_stale_ones_and_keeps_young_and_busy_ones() {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("test PostgreSQL");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let id = || uuid::Uuid::new_v4().simple().to_string();
        let stale = format!("t_{}_{}", now - 7200, id());
        let young = format!("t_{}_{}", now - 60, id());
        let busy = format!("t_{}_{}", now - 7200, id());
        // Under the lock test databases are made (and stale ones dropped) with, so no parallel
        // test drops `busy` before it is held.
        sqlx::query("SELECT pg_advisory_lock(774201)")
            .execute(&mut conn)
            .await
            .unwrap();
        for name in [&stale, &young, &busy] {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let holder = PgConnection::connect(&with_db(&admin, &busy))
            .await
            .unwrap();
        sqlx::query("SELECT pg_advisory_unlock(774201)")
            .execute(&mut conn)
            .await
            .unwrap();
        let db = TestDb::new().await;
        let exists = |name: String| {
            let admin = admin.clone();
            async move {
                let mut c = PgConnection::connect(&admin).await.unwrap();
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                )
                .bind(name)
                .fetch_one(&mut c)
                .await
                .unwrap()
            }
        };
        assert!(!exists(stale.clone()).await, "{stale} is over an hour old");
        assert!(
            exists(young.clone()).await,
            "{young} may belong to a running test"
        );
        assert!(exists(busy.clone()).await, "{busy} is in use");
        assert!(exists(db.name.clone()).await);
        drop(holder);
        for name in [&young, &busy] {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut conn)
            .await;
        }
    }
}
