//! The API's connection loop: hyper with the limits poem's own `Server` lacks. A client that
//! trickles its headers (slowloris) or sits idle on a keep-alive connection is cut off after
//! `header_read_timeout`; a body that trickles is cut off after `body_read_timeout` (in the
//! middleware, answered 408); and at most `max_connections` are served at once, so idle sockets
//! cannot exhaust file descriptors or memory.

use std::{convert::Infallible, sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use poem::{
    Endpoint, EndpointExt,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

pub use crate::settings::HttpLimits;

/// Serves `ep` on `listener` until `shutdown`, then lets open requests finish for up to `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    ep: E,
    limits: HttpLimits,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    let ep = Arc::new(ep.map_to_response().boxed());
    let local = LocalAddr(poem::Addr::SocketAddr(listener.local_addr()?));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (ep, local) = (ep.clone(), local.clone());
        let remote = RemoteAddr(poem::Addr::SocketAddr(peer));
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (ep, local, remote) = (ep.clone(), local.clone(), remote.clone());
                async move {
                    let req: poem::Request =
                        (req, local, remote, poem::http::uri::Scheme::HTTP).into();
                    Ok::<_, Infallible>(hyper::Response::from(ep.get_response(req).await))
                }
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the grace period");
    }
    Ok(())
}
