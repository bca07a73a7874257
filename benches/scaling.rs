//! Scaling benchmarks: one tick on one cluster with 5, 50 and 500 services, with room (closed
//! form) and with a binding CPU row (HiGHS), and before that one "round": 10,000 graphs of 3
//! services each, timed on 1 and 2 threads (the scale-tick cost of 10,000 running graphs).
//!
//! `cargo bench --bench scaling -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use smo::scaling::{
    Method, ScaleCluster, ScaleOutcome, ScaleService, SolveOptions, solve, solve_with,
};

/// SplitMix64: deterministic across machines, no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A feasible tick. Each service runs a few replicas more than its load needs; `binding`
/// sets the cluster CPU 30 % of the way from the cores at the needed replicas to the cores now
/// in use, so services usually must give up replicas (HiGHS); otherwise there is ample room.
fn tick(seed: u64, n: usize, binding: bool) -> (ScaleCluster, Vec<ScaleService>) {
    let mut rng = Rng(seed);
    let mut need_cores = 0.0;
    let mut now_cores = 0.0;
    let services: Vec<ScaleService> = (0..n)
        .map(|i| {
            let cpu = [0.25, 0.5, 1.0, 2.0][rng.below(4) as usize];
            let alpha = 5.0 + 45.0 * rng.unit();
            let beta = 10.0 * rng.unit();
            let max = 5 + rng.below(16) as u32;
            let min = 1 + rng.below(2) as u32;
            let need = min + rng.below(u64::from(max - min)) as u32;
            // A rate that needs exactly `need` replicas.
            let rate = alpha * (f64::from(need) - 0.5) + beta;
            let current = (need + rng.below(4) as u32).min(max);
            need_cores += cpu * f64::from(need);
            now_cores += cpu * f64::from(current);
            ScaleService {
                name: format!("svc-{i}"),
                rate,
                current,
                cpu,
                alpha,
                beta,
                min,
                max,
                gpu: false,
            }
        })
        .collect();
    let cpu = if binding {
        need_cores + 0.3 * (now_cores - need_cores)
    } else {
        services
            .iter()
            .map(|s| s.cpu * f64::from(s.max))
            .sum::<f64>()
            + 1.0
    };
    let cluster = ScaleCluster {
        name: "edge".into(),
        cpu,
        accelerator: false,
    };
    (cluster, services)
}

fn method(out: &ScaleOutcome) -> Method {
    match out {
        ScaleOutcome::Scaled { method, .. } => *method,
        ScaleOutcome::Infeasible { reasons, .. } => panic!("infeasible: {reasons:?}"),
    }
}

/// Solves every graph; returns how many went to HiGHS.
fn run(graphs: &[(ScaleCluster, Vec<ScaleService>)], opts: &SolveOptions) -> usize {
    graphs
        .iter()
        .filter(|(c, s)| {
            method(&solve_with(c, s, opts).expect("valid input")) != Method::ClosedForm
        })
        .count()
}

/// One round of 10,000 small graphs, on 1 thread and split over 2.
fn round() {
    const GRAPHS: usize = 10_000;
    let forced = SolveOptions {
        closed_form: false,
        ..SolveOptions::default()
    };
    let cases: [(&str, bool, &SolveOptions); 3] = [
        ("room (closed form)", false, &SolveOptions::default()),
        ("CPU row binds (HiGHS)", true, &SolveOptions::default()),
        ("room, closed form off (HiGHS)", false, &forced),
    ];
    for (label, binding, opts) in cases {
        let graphs: Vec<_> = (0..GRAPHS as u64).map(|g| tick(g, 3, binding)).collect();
        let t = Instant::now();
        let milp = run(&graphs, opts);
        let one = t.elapsed();
        let t = Instant::now();
        let (a, b) = graphs.split_at(GRAPHS / 2);
        std::thread::scope(|sc| {
            let h = sc.spawn(|| run(a, opts));
            run(b, opts);
            let _ = h.join();
        });
        let two = t.elapsed();
        eprintln!(
            "[scaling] round of {GRAPHS} graphs x 3 services, {label}: {:.2} s on 1 thread, {:.2} s on 2 threads ({milp} solved by HiGHS, {:.0} µs/graph)",
            one.as_secs_f64(),
            two.as_secs_f64(),
            one.as_secs_f64() * 1e6 / GRAPHS as f64
        );
    }
}

fn benches(c: &mut Criterion) {
    round();
    for (group, binding) in [("tick_room", false), ("tick_binding", true)] {
        let mut g = c.benchmark_group(group);
        for n in [5usize, 50, 500] {
            // For the binding group, the first seed whose tick really goes to HiGHS.
            let (cluster, services) = (42..)
                .map(|seed| tick(seed, n, binding))
                .find(|(c, s)| {
                    let m = method(&solve(c, s).expect("valid input"));
                    (m == Method::Milp) == binding
                })
                .expect("some seed binds");
            let out = solve(&cluster, &services).expect("valid input");
            eprintln!("[scaling] {group} {n}: {:?}", method(&out));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| solve(black_box(&cluster), black_box(&services)).expect("valid"))
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = scaling;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(scaling);
