//! [`JobArgs`], the typed arguments of a kind: apart from the handlers so that the queue, which
//! enqueues them, and the registry, which decodes them, share it without an import circle.

use serde::{Serialize, de::DeserializeOwned};

/// Typed job arguments with a stable kind name.
///
/// The kind is what is stored and routed on; it is a string chosen once and never derived from a
/// Rust type name, so renaming a type never orphans queued jobs. Arguments should carry ids, not
/// whole documents: a job is re-read from the database when it runs.
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name stored in `smo_jobs.jobs.kind`.
    const KIND: &'static str;
    /// Attempts before the job goes dead.
    const MAX_ATTEMPTS: u32 = 10;
    /// At most one job of this kind with this key is queued, retrying or running.
    fn unique_key(&self) -> Option<String> {
        None
    }
}
