//! The database connection every binary opens: a short timeout and an error a person can act on.

use std::time::Duration;

use sqlx::{Connection, PgPool, postgres::PgPoolOptions};

use crate::settings::redact_url;

/// The database is unreachable or refused us.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the database at {url}: {message} (is it running? try scripts/dev-db start)")]
pub struct Unreachable {
    /// The URL, password hidden.
    pub url: String,
    /// Why.
    pub message: String,
}

/// Connects with a short timeout, so a wrong URL fails in seconds with a clear message.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, Unreachable> {
    // One direct connection first: its error says what went wrong (refused, auth, unknown db),
    // where a pool only reports a timeout.
    let unreachable = |message: String| Unreachable {
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
        .map_err(|e| unreachable(e.to_string()))
}
