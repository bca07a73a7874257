//! One settings struct for every role, layered: defaults < `~/.smo/config.yaml` < `SMO_*`
//! environment < command-line flags (clap reads the last two).

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// The default database: the throwaway server `scripts/dev-db start` runs.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:55432/smo";

/// Settings read from the config file; every field optional so the file may be partial.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileSettings {
    /// PostgreSQL URL.
    pub database_url: Option<String>,
    /// API listen address.
    pub listen: Option<String>,
    /// Jobs each worker runs at once.
    pub worker_concurrency: Option<usize>,
    /// Finished jobs are kept this many days.
    pub retention_days: Option<u64>,
}

/// Where the config file lives: `$SMO_CONFIG`, else `~/.smo/config.yaml`.
pub fn config_path() -> PathBuf {
    if let Ok(p) = std::env::var("SMO_CONFIG") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".smo").join("config.yaml")
}

/// Reads the config file; a missing file is an empty one, a malformed one is an error naming it.
pub fn load_file() -> Result<FileSettings, String> {
    let path = config_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileSettings::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Resolves the database URL: flag/env (already merged by clap) < file < default.
pub fn database_url(flag_or_env: Option<String>, file: &FileSettings) -> String {
    flag_or_env
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
}

/// Settings of the long-running roles.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// PostgreSQL URL.
    pub database_url: String,
    /// API listen address.
    pub listen: String,
    /// Jobs each worker runs at once.
    pub worker_concurrency: usize,
    /// Jobs claimed per fetch.
    pub worker_batch: usize,
    /// Prefix of the worker name (the pod name in Kubernetes).
    pub worker_prefix: String,
    /// Finished jobs are kept this long.
    pub retention: Duration,
    /// In-flight jobs may take this long to finish on SIGTERM.
    pub shutdown_grace: Duration,
}
