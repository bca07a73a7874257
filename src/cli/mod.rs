//! Helpers shared by the `smo` and `smo-admin` command lines: output format, durations, a
//! database connection with an error a person can act on.

pub mod admin;
pub mod smo;
mod teams;

use std::time::Duration;

use sqlx::{Connection, PgPool, postgres::PgPoolOptions};

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
    #[error(
        "cannot reach the database at {url}: {message} (is it running? try scripts/dev-db start)"
    )]
    Unreachable {
        /// The URL, password hidden.
        url: String,
        /// Why.
        message: String,
    },
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

/// Hides the password of a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Connects with a short timeout, so a wrong URL fails in seconds with a clear message.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, CliError> {
    // One direct connection first: its error says what went wrong (refused, auth, unknown db),
    // where a pool only reports a timeout.
    let unreachable = |message: String| CliError::Unreachable {
        url: redact_url(url),
        message,
    };
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => drop(conn),
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable("timed out after 5s".into())),
    }
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .map_err(|e| unreachable(e.to_string()))?
        // Timestamps PostgreSQL writes into JSON itself (graph lists) are in UTC, whatever the
        // server's default time zone, as the API's own are.
        .options([("TimeZone", "UTC")]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| CliError::Unreachable {
            url: redact_url(url),
            message: e.to_string(),
        })
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

/// Parses `90s`, `15m`, `12h`, `7d` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 90s, 15m, 12h or 7d"))?;
    if unit == "ms" {
        return Ok(Duration::from_millis(n));
    }
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use s, m, h, d or w"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert!(parse_duration("7y").unwrap_err().contains("unit"));
        assert!(
            parse_duration("abc")
                .unwrap_err()
                .contains("invalid duration")
        );
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://smo:secret@db:5432/smo"),
            "postgres://smo:***@db:5432/smo"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/smo"),
            "postgres://postgres@127.0.0.1/smo"
        );
    }
}
