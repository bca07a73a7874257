use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{JobArgs, JobError, Lease, Queue};

/// "The job is running", written so that the planner cannot answer it from `jobs_running_idx`:
/// statements that find jobs by id must probe the primary key. When the statistics lag behind a
/// burst (a freshly filled queue: "about one running job" while 90,000 run), a plain
/// `state = 'running'` made the planner scan every running job through that partial index for
/// each acknowledgement; each took seconds while more piled up behind it, and `smo-admin bench`
/// fell from ~50,000 to ~1,500 jobs/s.
pub(crate) const RUNNING_BY_ID: &str = "coalesce(j.state = 'running', false)";

/// What a running job knows about itself and how it reaches the queue (to enqueue follow-ups).
#[derive(Clone)]
pub struct JobContext {
    /// The job's id.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// The worker running it.
    pub worker: String,
    /// This attempt's fencing token: raised by every claim of the job.
    pub epoch: i64,
    /// The worker's lease as this attempt holds it: check it before every external write.
    pub lease: Lease,
    /// The queue, for follow-up jobs and admin work.
    pub queue: Queue,
}

impl JobContext {
    /// `Ok` while this attempt still owns the job, checked inside the caller's transaction
    /// (`conn` should be one): the lease has not lapsed and the job is still running under this
    /// attempt's epoch. The job's row stays share-locked until that transaction ends, so a peer
    /// cannot reclaim the job between this check and the commit of what the attempt records.
    pub async fn fence(&self, conn: &mut sqlx::PgConnection) -> Result<(), JobError> {
        self.lease.check()?;
        let current: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT j.epoch FROM smo_jobs.jobs j
              WHERE j.id = $1 AND j.epoch = $2 AND {} FOR SHARE",
            RUNNING_BY_ID
        )))
        .bind(self.id)
        .bind(self.epoch)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| JobError::Transient(format!("database: {e}")))?;
        match current {
            Some(_) => Ok(()),
            None => Err(JobError::Fenced(format!(
                "attempt {} (epoch {}) of job {} was superseded: the job was handed to another worker",
                self.attempt, self.epoch, self.id
            ))),
        }
    }
}

type BoxFut = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// Runs jobs of one kind. Implemented for every `Fn(Args, JobContext) -> impl Future`.
///
/// Handlers must be idempotent: a job whose worker died after the work but before the
/// acknowledgement runs again.
pub trait Handler<A: JobArgs>: Send + Sync + 'static {
    /// Does the work.
    fn run(&self, args: A, ctx: JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

impl<A, F, Fut> Handler<A> for F
where
    A: JobArgs,
    F: Fn(A, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn run(&self, args: A, ctx: JobContext) -> impl Future<Output = Result<(), JobError>> + Send {
        (self)(args, ctx)
    }
}

trait Erased: Send + Sync {
    fn call(&self, args: serde_json::Value, ctx: JobContext) -> BoxFut;
}

struct Typed<A, H>(Arc<H>, std::marker::PhantomData<fn(A)>);

impl<A: JobArgs, H: Handler<A>> Erased for Typed<A, H> {
    fn call(&self, args: serde_json::Value, ctx: JobContext) -> BoxFut {
        let handler = self.0.clone();
        Box::pin(async move {
            // Arguments that no longer deserialise will never do so: that is permanent.
            let args: A = serde_json::from_value(args)
                .map_err(|e| JobError::Permanent(format!("bad arguments for {}: {e}", A::KIND)))?;
            handler.run(args, ctx).await
        })
    }
}

/// The kinds a worker runs and their handlers. Always contains the built-in `noop` and
/// `jobs.prune` kinds.
#[derive(Clone)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn Erased>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry with the built-in kinds.
    pub fn new() -> Self {
        let r = Self {
            handlers: BTreeMap::new(),
        };
        r.register(|_: NoopJob, _ctx: JobContext| async { Ok(()) })
            .register(|job: PruneJob, ctx: JobContext| async move {
                let older_than = chrono::Duration::seconds(job.retention_secs as i64);
                let n = ctx
                    .queue
                    .prune(older_than)
                    .await
                    .map_err(JobError::transient)?;
                tracing::info!(pruned = n, "pruned finished jobs");
                Ok(())
            })
    }

    /// Adds (or replaces) the handler of `A::KIND`.
    pub fn register<A: JobArgs, H: Handler<A>>(mut self, handler: H) -> Self {
        self.handlers.insert(
            A::KIND,
            Arc::new(Typed::<A, H>(Arc::new(handler), Default::default())),
        );
        self
    }

    /// The kinds this registry runs, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().map(|k| k.to_string()).collect()
    }

    pub(crate) fn call(&self, kind: &str, args: serde_json::Value, ctx: JobContext) -> BoxFut {
        match self.handlers.get(kind) {
            Some(h) => h.call(args, ctx),
            None => {
                let kind = kind.to_string();
                Box::pin(
                    async move { Err(JobError::Permanent(format!("no handler for kind {kind}"))) },
                )
            }
        }
    }
}

/// Kind of the built-in job that does nothing: used by smoke tests and benchmarks.
pub const NOOP_KIND: &str = "noop";
/// Kind of the built-in retention job.
pub const PRUNE_KIND: &str = "jobs.prune";

/// A job that does nothing, successfully.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NoopJob {
    /// Free text, shown by the admin tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl JobArgs for NoopJob {
    const KIND: &'static str = NOOP_KIND;
}

/// Deletes finished (succeeded, dead, cancelled) jobs older than the retention period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneJob {
    /// Finished jobs older than this many seconds are deleted.
    pub retention_secs: u64,
}

impl JobArgs for PruneJob {
    const KIND: &'static str = PRUNE_KIND;
    const MAX_ATTEMPTS: u32 = 3;
    fn unique_key(&self) -> Option<String> {
        Some("prune".into())
    }
}
