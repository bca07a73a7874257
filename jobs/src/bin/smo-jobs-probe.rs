//! A worker process used by the crash-recovery test: it runs `probe` jobs. Each attempt records
//! its start in `probe_runs`, works for JOB_MS, then records its effect in `probe_effects` with a
//! plain insert. Neither table has a key: an effect recorded twice for one job shows as two rows,
//! which is what the test counts.
//!
//! usage: smo-jobs-probe DATABASE_URL WORKER_NAME HEARTBEAT_MS JOB_MS

use std::time::Duration;

use serde::{Deserialize, Serialize};
use smo_jobs::{JobArgs, JobContext, JobError, Queue, Registry, Worker};
use tokio_util::sync::CancellationToken;

/// How long an attempt works is the worker's (JOB_MS), not the job's: a test gives the worker it
/// kills an attempt that cannot end first.
#[derive(Serialize, Deserialize)]
struct Probe {}

impl JobArgs for Probe {
    const KIND: &'static str = "probe";
}

const USAGE: &str = "usage: smo-jobs-probe DATABASE_URL WORKER_NAME HEARTBEAT_MS JOB_MS";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ms = |a: &str| -> u64 {
        a.parse().unwrap_or_else(|_| {
            eprintln!("{USAGE}");
            std::process::exit(2);
        })
    };
    let [_, url, name, heartbeat_ms, job_ms] = args.as_slice() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let (heartbeat_ms, job_ms) = (ms(heartbeat_ms), ms(job_ms));
    let pool = match sqlx::PgPool::connect(url).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("smo-jobs-probe: cannot connect: {e}");
            std::process::exit(1);
        }
    };
    let registry = Registry::new().register(move |_: Probe, ctx: JobContext| async move {
        let pool = ctx.queue.pool().clone();
        sqlx::query("INSERT INTO probe_runs (job_id, worker) VALUES ($1, $2)")
            .bind(ctx.id)
            .bind(&ctx.worker)
            .execute(&pool)
            .await
            .map_err(JobError::transient)?;
        tokio::time::sleep(Duration::from_millis(job_ms)).await;
        sqlx::query("INSERT INTO probe_effects (job_id, worker) VALUES ($1, $2)")
            .bind(ctx.id)
            .bind(&ctx.worker)
            .execute(&pool)
            .await
            .map_err(JobError::transient)?;
        Ok(())
    });
    let mut cfg = smo_jobs::testing::fast_worker_config(name);
    cfg.heartbeat_interval = Duration::from_millis(heartbeat_ms);
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    if let Err(e) = Worker::new(Queue::new(pool), registry, cfg).run(stop).await {
        eprintln!("smo-jobs-probe: {e}");
        std::process::exit(1);
    }
}
