//! How a worker behaves: [`WorkerConfig`], the [`Backoff`] stored between attempts, and unique
//! worker names; the backend's configuration, read by the worker that builds it.

use std::time::Duration;

use uuid::Uuid;

/// Exponential backoff between attempts, stored in the job's `run_at` so that every worker
/// (not just the one that saw the failure) respects it.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound.
    pub max: Duration,
    /// Adds up to +25% derived from the job id, so a burst of failures does not retry in lockstep
    /// while each job's delay stays reproducible.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(600),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The delay before attempt `failed_attempt + 1`: base × 2^(failed_attempt − 1), capped.
    pub fn delay(&self, failed_attempt: u32, id: Uuid) -> Duration {
        let exp = failed_attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        if !self.jitter {
            return raw;
        }
        let frac = (id.as_u128() % 1000) as f64 / 4000.0;
        raw.mul_f64(1.0 + frac).min(self.max)
    }
}

/// How a worker process behaves. Defaults suit production; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per process; see [`worker_name`].
    pub name: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Most jobs claimed by one fetch: the knob that matters most for throughput.
    pub batch_size: usize,
    /// How often an idle worker looks for delayed or retrying jobs (new jobs wake it at once).
    pub poll_interval: Duration,
    /// How often the worker proves it is alive (and reaps jobs of workers that are not).
    pub heartbeat_interval: Duration,
    /// Heartbeats a worker may miss before its running jobs are handed to others: the lease is
    /// `heartbeat_interval × missed_heartbeats`.
    pub missed_heartbeats: u32,
    /// How long after its last successful heartbeat was sent the worker still trusts its lease
    /// and writes; shorter than the lease by a margin for clock skew and writes in flight.
    /// `None`: two thirds of the lease (Kubernetes leader election uses 10 s of 15 s).
    pub renew_deadline: Option<Duration>,
    /// Times a job may be lost to dead workers before it goes dead. Counted apart from
    /// `max_attempts`, which are meant for the job's own errors.
    pub max_lost: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// On shutdown, how long in-flight jobs may take before they are handed back.
    pub shutdown_grace: Duration,
    /// Longest one attempt may run; `None` for no limit.
    pub job_timeout: Option<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            name: worker_name("worker"),
            concurrency: 64,
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 3,
            renew_deadline: None,
            max_lost: 5,
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
            job_timeout: Some(Duration::from_secs(600)),
        }
    }
}

impl WorkerConfig {
    /// After how long without a heartbeat peers hand this worker's jobs to others.
    pub fn lease(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats.max(1)
    }

    /// Until when after a heartbeat is sent the worker writes (see [`Self::renew_deadline`]).
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
            .unwrap_or_else(|| self.lease().mul_f64(2.0 / 3.0))
    }
}

/// A worker name that is unique per process: `<prefix>-<host>-<pid>-<random>`.
///
/// apalis refuses to start a second worker with a live name; deriving the name from the host (a
/// pod name in Kubernetes), the pid and a random suffix makes restarts and replicas safe.
pub fn worker_name(prefix: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let rand: u16 = rand::random();
    format!("{prefix}-{host}-{}-{rand:04x}", std::process::id())
}
