//! `/healthz`, `/readyz`, `/metrics`: is smo alive, can it serve, what it counts.

use super::*;

route_type!(
    /// `/healthz`, `/readyz`, `/metrics` routes.
    HealthApi
);

#[OpenApi]
impl HealthApi {
    /// Liveness: the process serves HTTP.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness: the database answers within a second.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Ready {
        match tokio::time::timeout(Duration::from_secs(1), store::ping(&self.pool)).await {
            Ok(Ok(_)) => Ready::Ok(PlainText("ready".into())),
            Ok(Err(e)) => Ready::Unavailable(PlainText(e.to_string())),
            Err(_) => Ready::Unavailable(PlainText("database: timed out".into())),
        }
    }

    /// smo's own metrics (Prometheus exposition): queue depth and oldest queued age per kind, jobs
    /// per kind × state and live workers (read from the database), plus this process's job
    /// counters (enqueued/started/succeeded/failed/dead), job duration, request latency by route
    /// and status, and placement/scaling solve-time histograms.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> ApiResult<PlainText<String>> {
        let mut out = crate::metrics::render_queue(&self.queue).await?;
        out.push_str(&crate::metrics::render_process());
        Ok(PlainText(out))
    }
}
