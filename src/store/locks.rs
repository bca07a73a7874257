//! Graph locks: the advisory row a job holds while it changes a graph, with its fencing token.

use super::*;

/// A graph lock's fencing token: drawn from one sequence, higher for every new holder, and
/// stamped on what the holder writes, so the federation refuses a write from an older holder.
/// A type of its own so that it is never mixed up with the attempt's epoch, the other number a
/// lock row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::Type)]
#[sqlx(transparent)]
pub struct FenceToken(i64);

impl FenceToken {
    /// A token known from elsewhere than the lock table (an object's annotation, a test).
    pub fn from_raw(token: i64) -> Self {
        Self(token)
    }
}

impl std::fmt::Display for FenceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Takes the graph's lock for one attempt of a job (`job`, `epoch`; re-entrant for that attempt)
/// and returns its fencing token. The lock is free when no row exists or the attempt holding it
/// is not running any more; an attempt that is itself superseded never gets it. `None` when
/// another running attempt holds it.
pub async fn try_lock_graph(
    conn: &mut PgConnection,
    graph: &str,
    job: Uuid,
    epoch: i64,
    now: DateTime<Utc>,
) -> Result<Option<FenceToken>, StoreError> {
    Ok(try_lock_graphs(conn, &[graph.to_string()], job, epoch, now)
        .await?
        .pop()
        .map(|(_, fence)| fence))
}

/// [`try_lock_graph`] for many graphs in one statement (a scaling shard's): the fencing token of
/// each graph no other running attempt holds. Names are locked in sorted order, so two callers
/// with overlapping sets cannot deadlock.
pub async fn try_lock_graphs(
    conn: &mut PgConnection,
    graphs: &[String],
    job: Uuid,
    epoch: i64,
    now: DateTime<Utc>,
) -> Result<Vec<(String, FenceToken)>, StoreError> {
    Ok(sqlx::query_as(
        "INSERT INTO smo.graph_locks AS l (graph, job_id, epoch, fence, locked_at)
         SELECT g, $2, $3, nextval('smo.graph_fence'), $4
           FROM (SELECT DISTINCT g FROM unnest($1::text[]) g ORDER BY g) n
          WHERE EXISTS (SELECT 1 FROM smo_jobs.jobs j
                         WHERE j.id = $2 AND j.epoch = $3 AND coalesce(j.state = 'running', false))
         ON CONFLICT (graph) DO UPDATE
            SET job_id = EXCLUDED.job_id, epoch = EXCLUDED.epoch, locked_at = EXCLUDED.locked_at,
                fence = CASE WHEN l.job_id = EXCLUDED.job_id AND l.epoch = EXCLUDED.epoch
                             THEN l.fence ELSE EXCLUDED.fence END
          WHERE (l.job_id = EXCLUDED.job_id AND l.epoch = EXCLUDED.epoch)
             OR NOT EXISTS (SELECT 1 FROM smo_jobs.jobs j
                             WHERE j.id = l.job_id AND j.epoch = l.epoch
                               AND coalesce(j.state = 'running', false))
         RETURNING graph, fence",
    )
    .bind(graphs)
    .bind(job)
    .bind(epoch)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?)
}

/// Releases the locks this attempt of `job` holds on `graphs`.
pub async fn unlock_graphs(
    conn: &mut PgConnection,
    graphs: &[String],
    job: Uuid,
    epoch: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM smo.graph_locks WHERE graph = ANY($1) AND job_id = $2 AND epoch = $3")
        .bind(graphs)
        .bind(job)
        .bind(epoch)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Releases the graph's lock if this attempt of `job` holds it (a superseded attempt never
/// releases its successor's lock).
pub async fn unlock_graph(
    conn: &mut PgConnection,
    graph: &str,
    job: Uuid,
    epoch: i64,
) -> Result<(), StoreError> {
    unlock_graphs(conn, &[graph.to_string()], job, epoch).await
}
