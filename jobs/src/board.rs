//! apalis-board — apalis's own web UI and REST API for queues — over the job table.
//!
//! Each job kind is one apalis queue backed by a [`PgBackend`]; the UI (a prebuilt WebAssembly
//! app that ships inside the apalis-board-api crate) is served at `/` and its API at `/api/v1`.
//! The UI loads its files from absolute paths, so it needs a listener of its own.

use std::sync::{Arc, Mutex};

use apalis_board_api::{
    framework::{ApiBuilder, RegisterRoute},
    sse::TracingBroadcaster,
    ui::ServeUI,
};
use axum::{Extension, Router};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{Error, PgBackend, Queue, WorkerConfig};

/// The kinds the board shows (see [`crate::manage::known_kinds`]). Read once: a kind that first
/// appears later shows after a restart.
pub async fn kinds(queue: &Queue) -> Result<Vec<String>, Error> {
    crate::manage::known_kinds(queue).await
}

/// The board's routes for `kinds`: `/api/v1/…` (queues, tasks, workers, overview, and the
/// `events` stream the UI's health light listens to; per queue its tasks, stats, workers, a task
/// by id, and `PUT tasks` to push one) and the UI everywhere else. The events stream carries no
/// log lines: workers log in their own processes.
pub fn router(queue: &Queue, kinds: &[String]) -> Router {
    let mut api = ApiBuilder::new(Router::new());
    for kind in kinds {
        let backend =
            PgBackend::for_kinds(queue.clone(), WorkerConfig::default(), vec![kind.clone()]);
        api = RegisterRoute::<PgBackend<Value>, Value>::register(api, kind, backend);
    }
    let events: Arc<Mutex<TracingBroadcaster>> = TracingBroadcaster::create();
    Router::new()
        .nest("/api/v1", api.build().layer(Extension(events)))
        .fallback_service(ServeUI::new())
}

/// Serves the board on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    queue: Queue,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let kinds = kinds(&queue).await?;
    axum::serve(listener, router(&queue, &kinds))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| Error::Config(format!("apalis-board server: {e}")))
}
