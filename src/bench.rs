//! `smo bench scale-round`: how long one scale-tick round takes for many running graphs, with the
//! real job engine, the real tick code (Prometheus client, optimiser, store) and a stub Prometheus
//! answering a fixed request rate.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use poem::{Route, handler, listener::TcpAcceptor};
use serde::Serialize;
use smo_jobs::{JobContext, NewJob, Queue, Worker, WorkerConfig, worker_name};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    jobs::{self, App, Monitoring, RulesTarget, ScaleFanoutJob, ScaleTickJob},
    monitoring::io::Prometheus,
};

/// The figures of one round.
#[derive(Debug, Serialize)]
pub struct ScaleRoundReport {
    /// Running graphs.
    pub graphs: usize,
    /// Services per graph.
    pub services_per_graph: usize,
    /// Worker instances × concurrency.
    pub workers: usize,
    /// Jobs each worker runs at once.
    pub concurrency: usize,
    /// Seconds to set the graphs up (not part of the round).
    pub setup_secs: f64,
    /// Seconds from the fan-out job's enqueue to the last tick's acknowledgement.
    pub round_secs: f64,
    /// Ticks per second.
    pub ticks_per_sec: f64,
}

#[handler]
fn stub_query() -> poem::web::Json<serde_json::Value> {
    // 5 req/s: with α = 10 req/s per replica the services keep their single replica.
    poem::web::Json(serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "5"]}]}
    }))
}

/// Runs one round over `graphs` running graphs of three services each, on `pool` (a scratch
/// database: its smo tables are emptied).
pub async fn scale_round(
    pool: PgPool,
    graphs: usize,
    workers: usize,
    concurrency: usize,
    progress: impl Fn(&str),
) -> anyhow::Result<ScaleRoundReport> {
    anyhow::ensure!(
        graphs > 0 && workers > 0 && concurrency > 0,
        "graphs, workers and concurrency must be at least 1"
    );
    crate::server::migrate(&pool).await?;
    sqlx::raw_sql(
        "TRUNCATE smo.graphs, smo.services, smo.clusters, smo.graph_jobs, smo.decisions, smo.projects CASCADE;
         DELETE FROM smo_jobs.jobs WHERE kind IN ('scale-tick', 'scale-fanout');",
    )
    .execute(&pool)
    .await?;

    progress(&format!("creating {graphs} running graphs of 3 services…"));
    let started = Instant::now();
    let now = chrono::Utc::now();
    sqlx::query(
        "INSERT INTO smo.clusters (name, ready, cpu_allocatable, cpu_free, memory_allocatable, memory_free, gpus, synced_at)
         SELECT 'c' || i, true, 100000, 100000, 1099511627776, 1099511627776, 0, $1 FROM generate_series(0, 2) i",
    )
    .bind(now)
    .execute(&pool)
    .await?;
    sqlx::query("INSERT INTO smo.projects (name, created_at) VALUES ('bench', $1)")
        .bind(now)
        .execute(&pool)
        .await?;
    let descriptor = serde_json::json!({
        "id": "g", "version": "1.0.0",
        "services": (0..3).map(|i| serde_json::json!({
            "id": format!("s{i}"),
            "deployment": {"trigger": {"auto": {"dependencies": []}}, "intent": {"compute": {"cpu": "100m", "ram": "64Mi", "storage": "light", "gpu": {"enabled": false}}, "scaling": {"minReplicas": 1, "maxReplicas": 10, "alpha": 10.0, "beta": 0.0}}},
            "artifact": {"image": "example/s:1"}
        })).collect::<Vec<_>>()
    });
    sqlx::query(
        "INSERT INTO smo.graphs (id, project, name, version, descriptor, source, desired, status, placement, created_at, updated_at)
         SELECT gen_random_uuid(), 'bench', 'g' || i, '1.0.0', jsonb_set($1, '{id}', to_jsonb('g' || i)), '', 'running', 'Running',
                jsonb_build_object('s0', 'c' || (i % 3), 's1', 'c' || (i % 3), 's2', 'c' || (i % 3)), $2, $2
           FROM generate_series(0, $3 - 1) i",
    )
    .bind(&descriptor)
    .bind(now)
    .bind(graphs as i64)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO smo.services (graph_id, name, position, status, cluster, replicas, ready, conditional, cpu_millis,
                                   memory_bytes, gpu, updated_at)
         SELECT g.id, 's' || k, k, 'Running', g.placement->>('s' || k), 1, 1, false, 100, 67108864, false, $1
           FROM smo.graphs g, generate_series(0, 2) k",
    )
    .bind(now)
    .execute(&pool)
    .await?;
    let setup_secs = started.elapsed().as_secs_f64();

    // A stub Prometheus on a free port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let prom_url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server = poem::Server::new_with_acceptor(TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(
            Route::new().at("/api/v1/query", stub_query),
            stop.clone().cancelled_owned(),
            None,
        );
    tokio::spawn(server);

    let app = App {
        pool: pool.clone(),
        federation: None,
        monitoring: Monitoring {
            prometheus: Some(Prometheus::new(&prom_url, Duration::from_secs(10))),
            grafana: None,
            rules: RulesTarget::None,
            rate_window: "1m".into(),
        },
        helm: None,
    };
    let done = Arc::new(AtomicUsize::new(0));
    let queue = Queue::new(pool.clone());
    let mut handles = Vec::new();
    for w in 0..workers {
        let d = done.clone();
        let inner = jobs::registry(app.clone());
        // Count finished ticks through the real handler.
        let app_w = app.clone();
        let registry = inner.register(move |j: ScaleTickJob, ctx: JobContext| {
            let (d, app) = (d.clone(), app_w.clone());
            async move {
                let r = jobs::scale_tick_for_bench(&app, &j.graph, &ctx).await;
                d.fetch_add(1, Ordering::Relaxed);
                r
            }
        });
        let cfg = WorkerConfig {
            name: worker_name(&format!("scale-bench{w}")),
            concurrency,
            batch_size: concurrency,
            ..WorkerConfig::default()
        };
        handles.push(tokio::spawn(
            Worker::new(queue.clone(), registry, cfg).run(stop.clone()),
        ));
    }
    progress(&format!(
        "one round: fan-out + {graphs} scale ticks on {workers} workers × {concurrency}…"
    ));
    let started = Instant::now();
    queue
        .enqueue_many(&[NewJob::from_args(&ScaleFanoutJob {})?])
        .await?;
    while done.load(Ordering::Relaxed) < graphs {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'scale-tick' AND state <> 'succeeded'",
    )
    .fetch_one(&pool)
    .await?;
    let round_secs = started.elapsed().as_secs_f64();
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    anyhow::ensure!(
        dead == 0 || dead as usize <= graphs / 100,
        "{dead} ticks did not succeed"
    );
    Ok(ScaleRoundReport {
        graphs,
        services_per_graph: 3,
        workers,
        concurrency,
        setup_secs,
        round_secs,
        ticks_per_sec: graphs as f64 / round_secs,
    })
}
