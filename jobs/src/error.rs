use uuid::Uuid;

/// Errors of the engine itself (storage, unknown ids, bad requests), as opposed to [`JobError`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or a query failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Job arguments could not be (de)serialised.
    #[error("job arguments: {0}")]
    Args(#[from] serde_json::Error),
    /// No job has this id.
    #[error("no job with id {0}")]
    NotFound(Uuid),
    /// The request does not fit the job's current state (e.g. retrying a running job).
    #[error("job {id} is {state}: {message}")]
    InvalidState {
        /// The job.
        id: Uuid,
        /// Its current state.
        state: String,
        /// What could not be done.
        message: String,
    },
    /// A cron expression did not parse.
    #[error("cron schedule {schedule:?}: {message}")]
    Schedule {
        /// The expression.
        schedule: String,
        /// The parser's message.
        message: String,
    },
    /// A configuration value is out of range.
    #[error("{0}")]
    Config(String),
    /// The apalis worker stopped with an error.
    #[error("worker: {0}")]
    Worker(String),
}

/// What a job handler returns when it fails; the variant decides whether the job is retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth retrying after a backoff: network errors, 5xx, conflicts.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (bad arguments, a resource that will never exist): the job goes dead.
    #[error("{0}")]
    Permanent(String),
    /// Not a failure: the job cannot start yet (another job holds what it needs). It runs again
    /// after the delay without spending an attempt and without an entry in its errors.
    #[error("snoozed for {0:?}")]
    Snooze(std::time::Duration),
    /// This attempt no longer owns the job: its worker's lease lapsed, or a newer attempt claimed
    /// the job. It stops at once and writes nothing more; the job is handed back (or already
    /// was) without spending an attempt, and the loss is counted apart.
    #[error("fenced: {0}")]
    Fenced(String),
}

impl JobError {
    /// A retryable failure from anything displayable.
    pub fn transient(e: impl std::fmt::Display) -> Self {
        Self::Transient(e.to_string())
    }
    /// A final failure from anything displayable.
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        Self::Permanent(e.to_string())
    }
    /// Re-schedules the job after `delay` without spending an attempt.
    pub fn snooze(delay: std::time::Duration) -> Self {
        Self::Snooze(delay)
    }
    /// True for a snooze (the job waits; it did not fail).
    pub fn is_snooze(&self) -> bool {
        matches!(self, Self::Snooze(_))
    }
    /// True when the attempt lost its job (see [`JobError::Fenced`]).
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced(_))
    }
    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}
