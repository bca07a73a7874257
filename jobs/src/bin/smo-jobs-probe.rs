//! A worker process used by the crash-recovery tests: it runs `probe` jobs, which record each
//! start in `probe_runs`, sleep, then record their effect idempotently in `probe_effects`.
//!
//! usage: smo-jobs-probe DATABASE_URL WORKER_NAME HEARTBEAT_MS

use std::time::Duration;

use serde::{Deserialize, Serialize};
use smo_jobs::{JobArgs, JobContext, JobError, Queue, Registry, Worker};
use tokio_util::sync::CancellationToken;

#[derive(Serialize, Deserialize)]
struct Probe {
    sleep_ms: u64,
}

impl JobArgs for Probe {
    const KIND: &'static str = "probe";
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: smo-jobs-probe DATABASE_URL WORKER_NAME HEARTBEAT_MS");
        std::process::exit(2);
    }
    let pool = match sqlx::PgPool::connect(&args[1]).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("smo-jobs-probe: cannot connect: {e}");
            std::process::exit(1);
        }
    };
    let heartbeat_ms: u64 = args[3].parse().unwrap_or(100);
    let registry = Registry::new().register(|p: Probe, ctx: JobContext| async move {
        let pool = ctx.queue.pool().clone();
        sqlx::query("INSERT INTO probe_runs (job_id, worker) VALUES ($1, $2)")
            .bind(ctx.id)
            .bind(&ctx.worker)
            .execute(&pool)
            .await
            .map_err(JobError::transient)?;
        tokio::time::sleep(Duration::from_millis(p.sleep_ms)).await;
        sqlx::query("INSERT INTO probe_effects (job_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(ctx.id)
            .execute(&pool)
            .await
            .map_err(JobError::transient)?;
        Ok(())
    });
    let mut cfg = smo_jobs::testing::fast_worker_config(&args[2]);
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
