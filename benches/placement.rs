//! Placement optimiser benchmarks: seeded random feasible instances (first placement and
//! re-placement from a perturbed current placement).
//!
//! `cargo bench --bench placement -- --warm-up-time 1 --measurement-time 5`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use smo::placement::{
    Cluster, Problem, Service, Weights, first_fit,
    instances::{self, Rng},
    own_usage_from_current, replan, solve_problem,
};

/// A feasible instance by construction: services are first planted on random compatible
/// clusters, then each cluster gets its planted load / 0.7 (+ a little) as free capacity.
fn instance(seed: u64, n: usize, m: usize) -> Problem {
    let mut rng = Rng(seed);
    let gpu: Vec<bool> = (0..m).map(|e| e == 0 || rng.chance(20)).collect();
    let gpu_clusters: Vec<usize> = (0..m).filter(|&e| gpu[e]).collect();
    let mut services: Vec<Service> = Vec::with_capacity(n);
    let mut planted: Vec<Vec<(usize, u32)>> = Vec::with_capacity(n);
    for s in 0..n {
        let mut svc = Service {
            name: format!("svc-{s}"),
            cpu: [0.25, 0.5, 1.0, 2.0][rng.below(4) as usize],
            memory: (256 * (1 + rng.below(8))) as f64,
            gpu: rng.chance(5),
            replicas: 1 + rng.below(3) as u32,
            allowed_clusters: None,
            excluded_clusters: Vec::new(),
            co_locate_with: Vec::new(),
            ha: false,
        };
        let pick = |rng: &mut Rng, gpu_needed: bool| -> usize {
            if gpu_needed {
                gpu_clusters[rng.below(gpu_clusters.len() as u64) as usize]
            } else {
                rng.below(m as u64) as usize
            }
        };
        if m >= 2 && !svc.gpu && rng.chance(5) {
            svc.ha = true;
            svc.replicas = svc.replicas.max(2);
            let a = pick(&mut rng, false);
            let b = (a + 1 + rng.below(m as u64 - 1) as usize) % m;
            let first = svc.replicas.div_ceil(2);
            planted.push(vec![(a, first), (b, svc.replicas - first)]);
        } else if s > 0 && rng.chance(3) {
            // Co-locate with an earlier ordinary service: plant on its cluster.
            let t = rng.below(s as u64) as usize;
            if !services[t].ha && (!svc.gpu || services[t].gpu) {
                svc.co_locate_with = vec![services[t].name.clone()];
                planted.push(vec![(planted[t][0].0, svc.replicas)]);
            } else {
                let e = pick(&mut rng, svc.gpu);
                planted.push(vec![(e, svc.replicas)]);
            }
        } else {
            let e = pick(&mut rng, svc.gpu);
            planted.push(vec![(e, svc.replicas)]);
        }
        if rng.chance(5) {
            // An exclusion that the planted placement does not use.
            let e = rng.below(m as u64) as usize;
            if !planted[s].iter().any(|&(f, _)| f == e) {
                svc.excluded_clusters = vec![format!("cluster-{e}")];
            }
        }
        services.push(svc);
    }
    let (mut cpu, mut mem) = (vec![0.0; m], vec![0.0; m]);
    for (svc, shares) in services.iter().zip(&planted) {
        for &(e, r) in shares {
            cpu[e] += svc.cpu * f64::from(r);
            mem[e] += svc.memory * f64::from(r);
        }
    }
    let clusters = (0..m)
        .map(|e| Cluster {
            name: format!("cluster-{e}"),
            cpu: (cpu[e] / 0.7 + 1.0).ceil(),
            memory: (mem[e] / 0.7 + 512.0).ceil(),
            gpus: u32::from(gpu[e]) * 4,
            accelerator: None,
            cost: (1 + rng.below(4)) as f64,
            carbon: (100 * (1 + rng.below(4))) as f64,
            ready: true,
            labels: BTreeMap::new(),
        })
        .collect();
    Problem {
        clusters,
        services,
        current: BTreeMap::new(),
        weights: Weights::default(),
        time_limit_secs: Some(60.0),
        mip_gap: None,
    }
}

/// A running graph to re-place: the first placement's optimum, perturbed
/// (`instances::perturbed`: a cluster down, one shrunk, 5 % of services elsewhere).
fn perturbed(seed: u64, base: &Problem) -> Problem {
    let first = solve_problem(base).expect("instance is feasible");
    instances::perturbed(seed, base, &first)
}

fn report(label: &str, p: &Problem) {
    let t = Instant::now();
    match solve_problem(p) {
        Ok(s) => eprintln!(
            "[placement] {label}: {:?} in {:.1} ms, objective {:.3}, first-fit {}",
            s.status,
            t.elapsed().as_secs_f64() * 1e3,
            s.objective.total,
            match first_fit(p) {
                Ok(ff) => format!("objective {:.3}", ff.objective.total),
                Err(e) => format!("failed ({e})"),
            }
        ),
        Err(e) => eprintln!("[placement] {label}: error {e}"),
    }
}

fn report_replan(label: &str, p: &Problem) {
    let t = Instant::now();
    match replan(p, &own_usage_from_current(p)) {
        Ok(r) => eprintln!(
            "[placement] {label}: {:?} in {:.1} ms, {} services moved, objective before {:?} after {:.3}, current violations {}",
            r.solution.status,
            t.elapsed().as_secs_f64() * 1e3,
            r.solution.moved.len(),
            r.objective_before.map(|o| o.total),
            r.objective_after.total,
            r.current_violations.len()
        ),
        Err(e) => eprintln!("[placement] {label}: error {e}"),
    }
}

fn benches(c: &mut Criterion) {
    let sizes = [(20usize, 5usize), (200, 50), (2000, 200)];
    let mut g = c.benchmark_group("solve");
    for &(n, m) in &sizes {
        let p = instance(7, n, m);
        report(&format!("solve {n}x{m}"), &p);
        if n >= 2000 {
            g.sample_size(10);
        }
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{n}x{m}")),
            &p,
            |b, p| b.iter(|| solve_problem(black_box(p)).expect("feasible")),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("replan");
    for &(n, m) in &sizes {
        let p = perturbed(11, &instance(7, n, m));
        report_replan(&format!("replan {n}x{m}"), &p);
        let usage = own_usage_from_current(&p);
        if n >= 2000 {
            g.sample_size(10);
        }
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{n}x{m}")),
            &p,
            |b, p| b.iter(|| replan(black_box(p), &usage).expect("feasible")),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("first_fit");
    for &(n, m) in &sizes {
        let p = instance(7, n, m);
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{n}x{m}")),
            &p,
            |b, p| b.iter(|| first_fit(black_box(p))),
        );
    }
    g.finish();
}

criterion_group! {
    name = placement;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(placement);
