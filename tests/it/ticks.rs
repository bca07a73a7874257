//! Two schedulers, several graphs: each running graph gets exactly one scale tick per interval.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use chrono::{TimeZone, Utc};
use smo::{
    jobs::{self, App, ScaleFanoutJob, ScaleTickJob},
    store,
};
use smo_jobs::{
    CronEntry, JobContext, ManualClock, Queue, Scheduler, SchedulerConfig,
    testing::{fast_worker_config, work_until_idle},
};

use crate::support::test_db;

#[tokio::test]
async fn two_schedulers_give_each_running_graph_one_tick_per_interval() {
    let db = test_db().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
    let queue = Queue::with_clock(db.pool.clone(), Arc::new(clock.clone()));
    let graphs = ["g1", "g2", "g3"];
    for (i, name) in graphs.iter().enumerate() {
        let mut tx = db.pool.begin().await.unwrap();
        let (g, _) = store::upsert_graph(
            &mut tx,
            "p",
            name,
            "1.0.0",
            &serde_json::json!({}),
            "",
            &[],
            queue.now(),
        )
        .await
        .unwrap();
        // g3 is stopped: it gets no ticks.
        let status = if i < 2 {
            store::status::RUNNING
        } else {
            store::status::STOPPED
        };
        store::set_status(&mut tx, g.id, status, None, queue.now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let app = App {
        pool: db.pool.clone(),
        federation: None,
        // A Prometheus must be configured for ticks to be fanned out; the counting tick below never queries it.
        monitoring: jobs::Monitoring {
            prometheus: Some(smo::monitoring::io::Prometheus::new(
                "http://127.0.0.1:9",
                std::time::Duration::from_secs(1),
            )),
            ..Default::default()
        },
        helm: None,
    };
    // The real fan-out; the tick itself only counts (its work is tested end to end elsewhere).
    let registry = jobs::registry(app).register(move |_: ScaleTickJob, _: JobContext| {
        let t = t.clone();
        async move {
            t.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let entry = CronEntry::new("scale-fanout", "*/30 * * * * *", &ScaleFanoutJob {}).unwrap();
    let a = Scheduler::new(queue.clone(), SchedulerConfig::default()).with_entry(entry.clone());
    let b = Scheduler::new(queue.clone(), SchedulerConfig::default()).with_entry(entry);
    a.register().await.unwrap();
    b.register().await.unwrap();
    for _ in 0..5 {
        clock.advance(chrono::Duration::seconds(30));
        let (x, y) = tokio::join!(a.tick(), b.tick());
        assert_eq!(
            x.unwrap().len() + y.unwrap().len(),
            1,
            "one fan-out per interval"
        );
        work_until_idle(&queue, registry.clone(), fast_worker_config("ticks"))
            .await
            .unwrap();
    }
    let per_graph: Vec<(String, i64)> = sqlx::query_as(
        "SELECT args->>'graph', count(*) FROM smo_jobs.jobs WHERE kind = 'scale-tick' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        per_graph,
        vec![("g1".to_string(), 5), ("g2".to_string(), 5)]
    );
    assert_eq!(ticks.load(Ordering::SeqCst), 10);
}
