//! Seeded random placement instances, for benchmarks (`smo bench placement`, `cargo bench`):
//! the reference SMO's family (CPU per replica from {0.5, 1, 4, 8} cores, 1–3 replicas, about
//! 10 % needing a GPU), feasible by construction, with capacity a chosen multiple of demand, and
//! a perturbed running placement for re-placement. Deterministic across machines (SplitMix64).

use std::collections::BTreeMap;

use super::{
    Cluster, CurrentPlacement, PlacementError, Problem, Service, Solution, Weights,
    own_usage_from_current, solve_problem,
};

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// `n` services on `m` clusters of the reference's kind. Every service is first planted on a
/// random cluster it may use; each cluster then gets `headroom` × its planted CPU and memory
/// (1.3: the reference's instances; 1.05: tight), so a placement always exists.
pub fn reference_family(seed: u64, n: usize, m: usize, headroom: f64) -> Problem {
    let mut rng = Rng(seed);
    let gpu: Vec<bool> = (0..m).map(|e| e == 0 || rng.chance(20)).collect();
    let gpu_clusters: Vec<usize> = (0..m).filter(|&e| gpu[e]).collect();
    let (mut cpu, mut mem, mut gpus) = (vec![0.0; m], vec![0.0; m], vec![0u32; m]);
    let services: Vec<Service> = (0..n)
        .map(|s| {
            let svc = Service {
                name: format!("svc-{s}"),
                cpu: [0.5, 1.0, 4.0, 8.0][rng.below(4) as usize],
                memory: (512 * (1 + rng.below(8))) as f64,
                gpu: rng.chance(10),
                replicas: 1 + rng.below(3) as u32,
                allowed_clusters: None,
                excluded_clusters: Vec::new(),
                co_locate_with: Vec::new(),
                ha: false,
            };
            let e = if svc.gpu {
                gpu_clusters[rng.below(gpu_clusters.len() as u64) as usize]
            } else {
                rng.below(m as u64) as usize
            };
            cpu[e] += svc.cpu * f64::from(svc.replicas);
            mem[e] += svc.memory * f64::from(svc.replicas);
            gpus[e] += u32::from(svc.gpu);
            svc
        })
        .collect();
    let clusters = (0..m)
        .map(|e| Cluster {
            name: format!("cluster-{e}"),
            cpu: (cpu[e] * headroom).ceil().max(1.0),
            memory: (mem[e] * headroom).ceil().max(512.0),
            gpus: if gpu[e] { gpus[e].max(1) * 8 } else { 0 },
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

/// A running graph to re-place, from `base` and its first placement `first`: 5 % of services sit
/// on another cluster, one cluster went NotReady and another lost 30 % of its CPU; capacities are
/// reduced by the graph's own usage, as Karmada reports them.
pub fn perturbed(seed: u64, base: &Problem, first: &Solution) -> Problem {
    let mut rng = Rng(seed ^ 0xABCD);
    let mut p = base.clone();
    let m = p.clusters.len();
    for sp in &first.placement {
        let clusters: Vec<String> = sp.clusters.iter().map(|c| c.cluster.clone()).collect();
        let cur = if clusters.len() == 1 && !rng.chance(5) {
            CurrentPlacement::One(clusters[0].clone())
        } else if clusters.len() == 1 {
            CurrentPlacement::One(format!("cluster-{}", rng.below(m as u64)))
        } else {
            CurrentPlacement::Many(clusters)
        };
        p.current.insert(sp.service.clone(), cur);
    }
    let usage = own_usage_from_current(&p);
    for c in &mut p.clusters {
        if let Some(u) = usage.get(&c.name) {
            c.cpu = (c.cpu - u.cpu).max(0.0);
            c.memory = (c.memory - u.memory).max(0.0);
        }
    }
    if m >= 2 {
        let down = rng.below(m as u64) as usize;
        p.clusters[down].ready = false;
        let shrink = (down + 1) % m;
        p.clusters[shrink].cpu *= 0.7;
    }
    p
}

/// The instance `smo bench placement` times as seed `seed`'s re-placement, as the solver sees
/// it: [`perturbed`] from `base`'s first placement, with the graph's own usage added back to the
/// capacities as [`super::replan`] adds it. Solving it with [`solve_problem`] is the re-placement's
/// solve; it is what a reference solver is given to compare on the same instance.
pub fn replacement(seed: u64, base: &Problem) -> Result<Problem, PlacementError> {
    let first = solve_problem(base)?;
    let mut p = perturbed(seed, base, &first);
    for (c, u) in own_usage_from_current(&p) {
        if let Some(cluster) = p.clusters.iter_mut().find(|k| k.name == c) {
            cluster.cpu += u.cpu;
            cluster.memory += u.memory;
        }
    }
    Ok(p)
}
