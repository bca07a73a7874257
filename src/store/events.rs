//! Alert events recorded for conditional services, and the ones still firing.

use super::*;

/// Records an Alertmanager notification for an event of a pending conditional service: a firing
/// event is kept (first firing time wins), a resolved one forgotten. Returns the events now
/// firing for that service.
pub async fn note_event(
    conn: &mut PgConnection,
    graph_id: Uuid,
    service: &str,
    event: &str,
    firing: bool,
    now: DateTime<Utc>,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    if firing {
        sqlx::query(
            "INSERT INTO smo.event_firings (graph_id, service, event, fired_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (graph_id, service, event) DO NOTHING",
        )
        .bind(graph_id)
        .bind(service)
        .bind(event)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query(
            "DELETE FROM smo.event_firings WHERE graph_id = $1 AND service = $2 AND event = $3",
        )
        .bind(graph_id)
        .bind(service)
        .bind(event)
        .execute(&mut *conn)
        .await?;
    }
    firing_events(conn, graph_id, service).await
}

/// The events currently firing for a service.
pub async fn firing_events(
    conn: &mut PgConnection,
    graph_id: Uuid,
    service: &str,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT event FROM smo.event_firings WHERE graph_id = $1 AND service = $2",
    )
    .bind(graph_id)
    .bind(service)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Forgets a service's firing events (it deployed: the next activation starts afresh).
pub async fn clear_events(
    conn: &mut PgConnection,
    graph_id: Uuid,
    service: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM smo.event_firings WHERE graph_id = $1 AND service = $2")
        .bind(graph_id)
        .bind(service)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
