//! What the in-process metrics cost a worker: one counter increment (one label, the per-job
//! hot path), one histogram observation (two labels), both from 4 threads at once, and one
//! render of a busy process (50 kinds).
//!
//! `cargo bench -p smo-jobs --bench metrics -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use smo_jobs::metrics::{CounterVec, DURATION_BUCKETS, HistogramVec};

static COUNTER: CounterVec = CounterVec::new("bench_total", "Bench.", &["kind"]);
static HISTOGRAM: HistogramVec = HistogramVec::new(
    "bench_seconds",
    "Bench.",
    &["kind", "outcome"],
    DURATION_BUCKETS,
);

fn bench(c: &mut Criterion) {
    c.bench_function("counter inc (1 label)", |b| {
        b.iter(|| COUNTER.inc(black_box(&["deploy"])))
    });
    c.bench_function("histogram observe (2 labels)", |b| {
        b.iter(|| HISTOGRAM.observe(black_box(&["deploy", "succeeded"]), black_box(0.042)))
    });
    c.bench_function(
        "counter inc + observe, 4 threads contending (per pair)",
        |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..4 {
                        s.spawn(|| {
                            for _ in 0..iters / 4 + 1 {
                                COUNTER.inc(&["scale-shard"]);
                                HISTOGRAM.observe(&["scale-shard", "succeeded"], 0.001);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        },
    );
    for k in 0..50 {
        let kind = format!("kind-{k}");
        COUNTER.inc(&[&kind]);
        HISTOGRAM.observe(&[&kind, "succeeded"], 0.01 * k as f64);
    }
    c.bench_function("render 50 kinds (counter + histogram)", |b| {
        b.iter(|| {
            let mut out = String::new();
            COUNTER.render(&mut out);
            HISTOGRAM.render(&mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
