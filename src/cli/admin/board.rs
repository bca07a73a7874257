//! `smo-admin board`: apalis-board over the job table (feature `board`).

use super::*;

pub(super) async fn run_board(q: Queue, listen: std::net::SocketAddr) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Other(format!("cannot listen on {listen}: {e}")))?;
    let kinds = smo_jobs::board::kinds(&q).await?;
    eprintln!(
        "apalis-board at http://{}/ (API at /api/v1), {} queues: {}",
        listener.local_addr().unwrap_or(listen),
        kinds.len(),
        kinds.join(", ")
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    smo_jobs::board::serve(listener, q, stop).await?;
    Ok(())
}
