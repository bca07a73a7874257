//! LISTEN/NOTIFY, River's notifier: wakes the claim loop when a job of our kinds is enqueued or
//! jobs are handed back.

use std::{collections::HashSet, sync::Arc, time::Duration};

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::NOTIFY_CHANNEL;

/// Wakes the claim loop when a job of one of our kinds is enqueued.
pub(super) async fn listen(
    pool: sqlx::PgPool,
    kinds: HashSet<String>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut listener = loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                Ok(()) => break l,
                Err(e) => tracing::warn!(error = %e, "LISTEN failed; polling meanwhile"),
            },
            Err(e) => tracing::warn!(error = %e, "listener connection failed; polling meanwhile"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    };
    loop {
        tokio::select! {
            n = listener.recv() => match n {
                Ok(n) => {
                    let k = n.payload();
                    if k == "reaped" || kinds.contains(k) {
                        wake.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listener lost its connection; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = stop.cancelled() => return,
        }
    }
}
