//! Helpers shared by the `smo` and `smo-admin` command lines: output format, durations, a
//! database connection with an error a person can act on.

pub mod admin;
pub mod smo;
mod teams;

pub use crate::settings::{parse_duration, redact_url};
pub use crate::store::connect;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    /// Human-readable tables.
    #[default]
    Table,
    /// One JSON document, for scripts.
    Json,
}

/// Errors a command line reports in one line before exiting non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The database is unreachable or refused us.
    #[error("{0}")]
    Unreachable(#[from] crate::store::Unreachable),
    /// A job-engine error.
    #[error("{0}")]
    Jobs(#[from] smo_jobs::Error),
    /// Output could not be serialised.
    #[error("output: {0}")]
    Json(#[from] serde_json::Error),
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Other(String),
    /// Bad input: every problem, one line each (exit 2).
    #[error("{}", .0.join("\n"))]
    Usage(Vec<String>),
}

/// Makes `smo … | head` end quietly: when stdout is closed early, exit like a Unix tool killed by
/// SIGPIPE (status 141) instead of printing a panic. Other panics keep the default report.
pub fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The URL of a scratch database `<db>_bench` beside `url` on the same server, created if
/// missing: benchmarks write there and never touch real jobs or graphs.
pub async fn scratch_database(url: &str) -> Result<String, CliError> {
    let db = url
        .rsplit('/')
        .next()
        .unwrap_or("smo")
        .split('?')
        .next()
        .unwrap_or("smo");
    let name = format!("{db}_bench");
    let admin = connect(url, 1).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&admin)
            .await
            .map_err(|e| CliError::Other(format!("cannot list databases: {e}")))?;
    if !exists {
        let ident = name.replace('"', "");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{ident}\"")))
            .execute(&admin)
            .await
            .map_err(|e| {
                CliError::Other(format!("cannot create the scratch database {name}: {e}"))
            })?;
    }
    Ok(format!(
        "{}/{name}",
        &url[..url.rfind('/').unwrap_or(url.len())]
    ))
}

/// Prints a serialisable value as pretty JSON.
pub fn print_json(v: &impl serde::Serialize) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A borderless table with a header row.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    t
}

/// "3.2s ago" style ages for tables.
pub fn ago(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    human((now - at).num_milliseconds(), "ago")
}

/// "in 3.2s" style for future instants.
pub fn until(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let ms = (at - now).num_milliseconds();
    if ms < 0 {
        human(-ms, "ago")
    } else {
        format!("in {}", human(ms, "").trim_end())
    }
}

fn human(ms: i64, suffix: &str) -> String {
    let s = ms as f64 / 1000.0;
    let v = if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{:.0}m", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    };
    format!("{v} {suffix}")
}
