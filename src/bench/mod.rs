//! `smo bench …`: figures for the README, each from real code paths. `scale-round` times scaling
//! rounds over many running graphs with the real job engine and round code (store, Prometheus
//! client, optimiser, shards, federation client) against a stub Prometheus that answers the
//! fleet query as a real one does, and the simulated federation.

mod console;
mod deploy;
mod descriptor;
mod failover;
mod placement;
mod reads;
mod scale;

pub use console::*;
pub use deploy::*;
pub use descriptor::*;
pub use failover::{FailoverBench, FailoverReport, failover};
pub use placement::*;
pub use reads::*;
pub use scale::*;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use poem::{EndpointExt, Route, handler, listener::TcpAcceptor, web::Data};
use serde::Serialize;
use smo_jobs::{JobContext, Queue, Worker, WorkerConfig, worker_name};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    federation::Federation,
    monitoring::io::Prometheus,
    reconcile::{self, App, Monitoring, RoundReport, RulesTarget, ScaleFanoutJob},
};

/// The `q` quantile (0–1) of ascending `sorted` values, by nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Serves the API (default settings, no token) on a free loopback port over `pool`, as
/// `smo run --role api` does; its base URL and what stops it.
async fn spawn_api(pool: &PgPool) -> anyhow::Result<(String, CancellationToken)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    tokio::spawn(crate::server::serve_api_on(
        pool.clone(),
        listener,
        None,
        Default::default(),
        Default::default(),
        None,
        stop.clone(),
    ));
    Ok((base, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_descriptor_is_accepted_and_one_more_service_is_refused_naming_services() {
        let doc = worst_descriptor();
        assert!(doc.len() <= crate::hdag::MAX_DESCRIPTOR_BYTES);
        let parsed = crate::hdag::parse(&doc).expect("the worst accepted input is accepted");
        assert_eq!(parsed.graph.services.len(), crate::hdag::MAX_SERVICES);
        // One service more (a small one, so the size limit is not what refuses it).
        let mut more = String::from_utf8(doc).unwrap();
        more.push_str(
            "    - id: extra\n      deployment:\n        trigger:\n          auto:\n            dependencies: []\n        \
             intent:\n          compute:\n            cpu: 10m\n            ram: 16Mi\n            storage: light\n      \
             artifact:\n        image: ghcr.io/example/extra:1\n",
        );
        match crate::hdag::parse(more.as_bytes()) {
            Err(crate::hdag::DescriptorError::Invalid(p)) => {
                assert_eq!(p.len(), 1, "{p:?}");
                assert_eq!(p[0].path, "services");
                assert!(p[0].message.contains("at most 1000 services"), "{p:?}");
            }
            other => panic!("expected the service limit, got {other:?}"),
        }
    }
}
