use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[allow(clippy::too_many_arguments)]
fn svc(
    name: &str,
    rate: f64,
    current: u32,
    cpu: f64,
    alpha: f64,
    beta: f64,
    min: u32,
    max: u32,
) -> ScaleService {
    ScaleService {
        name: name.into(),
        rate,
        current,
        cpu,
        alpha,
        beta,
        min,
        max,
        gpu: false,
    }
}

fn cl(name: &str, cpu: f64, accelerator: bool) -> ScaleCluster {
    ScaleCluster {
        name: name.into(),
        cpu,
        accelerator,
    }
}

fn milp_only() -> SolveOptions {
    SolveOptions {
        closed_form: false,
        ..SolveOptions::default()
    }
}

fn replicas(out: &ScaleOutcome) -> Vec<(String, u32)> {
    match out {
        ScaleOutcome::Scaled { replicas, .. } => {
            replicas.iter().map(|(k, v)| (k.clone(), *v)).collect()
        }
        ScaleOutcome::Infeasible { reasons, .. } => panic!("infeasible: {reasons:?}"),
    }
}

fn r(out: &ScaleOutcome) -> Vec<u32> {
    replicas(out).into_iter().map(|(_, v)| v).collect()
}

fn reasons(out: &ScaleOutcome) -> Vec<String> {
    match out {
        ScaleOutcome::Infeasible { reasons, .. } => reasons.clone(),
        ScaleOutcome::Scaled { replicas, .. } => panic!("expected infeasible, got {replicas:?}"),
    }
}

fn example() -> Vec<ScaleService> {
    vec![
        svc("a", 50.0, 1, 0.5, 30.0, 10.0, 1, 10),
        svc("b", 80.0, 1, 1.0, 25.0, 5.0, 1, 10),
    ]
}

#[test]
fn checked_example_spec_3() {
    let c = cl("edge", 10.0, false);
    let out = solve(&c, &example()).unwrap();
    assert_eq!(r(&out), vec![2, 3]);
    let ScaleOutcome::Scaled {
        changed,
        objective,
        method,
        optimal,
        notes,
        ..
    } = &out
    else {
        unreachable!()
    };
    assert_eq!(
        changed,
        &vec![
            Change {
                service: "a".into(),
                from: 1,
                to: 2
            },
            Change {
                service: "b".into(),
                from: 1,
                to: 3
            },
        ]
    );
    // M = 10; 0.4·(2·0.5 + 3·1)/10 + 0.4·(1/10 + 2/10) = 0.16 + 0.12.
    assert!((objective - 0.28).abs() < 1e-12, "{objective}");
    assert_eq!(*method, Method::ClosedForm);
    assert!(*optimal);
    assert!(notes.is_empty());

    let milp = solve_with(&c, &example(), &milp_only()).unwrap();
    assert_eq!(r(&milp), vec![2, 3]);
    assert!(matches!(
        milp,
        ScaleOutcome::Scaled {
            method: Method::Milp,
            optimal: true,
            ..
        }
    ));
}

#[test]
fn huge_load_respects_max_replicas_and_says_why() {
    let c = cl("edge-a", 100.0, false);
    let s = vec![svc("api", 95.0, 2, 1.0, 25.0, 5.0, 1, 3)];
    let why = reasons(&solve(&c, &s).unwrap());
    assert_eq!(
        why,
        vec!["service api needs 4 replicas for 95 req/s (α=25, β=5) but maxReplicas is 3"]
    );
    let s = vec![
        svc("api", 1e15, 2, 1.0, 25.0, 5.0, 1, 10),
        svc("web", 1.0, 1, 1.0, 25.0, 5.0, 1, 10),
    ];
    let why = reasons(&solve(&c, &s).unwrap());
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(
        why[0].starts_with("service api needs 4.000e13 replicas for 1.000e15 req/s")
            && why[0].ends_with("but maxReplicas is 10"),
        "{why:?}"
    );
}

#[test]
fn zero_load_goes_to_min_replicas() {
    let c = cl("edge", 100.0, false);
    // Fresh services (nothing running yet) start at their minimum.
    let s = vec![
        svc("a", 0.0, 0, 0.5, 10.0, 0.0, 2, 10),
        svc("b", 0.0, 0, 1.0, 10.0, 0.0, 0, 10),
    ];
    assert_eq!(r(&solve(&c, &s).unwrap()), vec![2, 1]);
    // A single service: going down is free in the objective and the tie-break prefers fewer cores.
    let s = vec![svc("a", 0.0, 6, 1.0, 10.0, 0.0, 2, 10)];
    assert_eq!(r(&solve(&c, &s).unwrap()), vec![2]);
    assert_eq!(r(&solve_with(&c, &s, &milp_only()).unwrap()), vec![2]);
}

#[test]
fn scale_down_after_load_drops() {
    let c = cl("edge", 100.0, false);
    // Equal maxReplicas·cpu: every replica less is free in the objective → down to the need.
    let busy = vec![
        svc("a", 200.0, 1, 1.0, 25.0, 0.0, 1, 10),
        svc("b", 180.0, 1, 1.0, 20.0, 0.0, 1, 10),
    ];
    let up = solve(&c, &busy).unwrap();
    assert_eq!(r(&up), vec![8, 9]);
    let mut quiet = busy.clone();
    quiet[0].rate = 30.0;
    quiet[0].current = 8;
    quiet[1].rate = 0.0;
    quiet[1].current = 9;
    let down = solve(&c, &quiet).unwrap();
    assert_eq!(r(&down), vec![2, 1]);
    assert_eq!(
        r(&solve_with(&c, &quiet, &milp_only()).unwrap()),
        vec![2, 1]
    );
}

#[test]
fn idle_service_scales_down_when_cpu_is_needed() {
    // "web" was busy (6 replicas) and went quiet; "api" now needs 8 cores on a 10-core cluster.
    let c = cl("edge", 10.0, false);
    let s = vec![
        svc("api", 200.0, 2, 1.0, 25.0, 0.0, 1, 10),
        svc("web", 0.0, 6, 0.5, 10.0, 0.0, 1, 10),
    ];
    let out = solve(&c, &s).unwrap();
    // 8 cores for api, 2 left → web at most 4 replicas; fewer would only cost change
    // (web's maxReplicas·cpu = 5 < M = 10, so each replica less costs more than it saves).
    assert_eq!(r(&out), vec![8, 4]);
    assert!(matches!(
        out,
        ScaleOutcome::Scaled {
            method: Method::Milp,
            optimal: true,
            ..
        }
    ));
}

#[test]
fn over_provisioned_service_stays_when_going_down_costs() {
    // The SPEC objective: 0.4·c/M per replica saved < 0.4/max per replica changed for "a"
    // (c·max = 5 < M = 10), so "a" keeps its 5 replicas while the cluster has room.
    let c = cl("edge", 100.0, false);
    let s = vec![
        svc("a", 0.0, 5, 0.5, 10.0, 0.0, 1, 10),
        svc("b", 0.0, 1, 1.0, 10.0, 0.0, 1, 10),
    ];
    assert_eq!(r(&solve(&c, &s).unwrap()), vec![5, 1]);
    assert_eq!(r(&solve_with(&c, &s, &milp_only()).unwrap()), vec![5, 1]);
}

#[test]
fn gpu_service_needs_an_accelerator() {
    let mut ml = svc("ml", 1.0, 1, 2.0, 10.0, 0.0, 1, 4);
    ml.gpu = true;
    let s = vec![ml, svc("web", 1.0, 1, 0.5, 10.0, 0.0, 1, 4)];
    let why = reasons(&solve(&cl("edge-a", 10.0, false), &s).unwrap());
    assert_eq!(why, vec!["service ml needs a GPU; cluster edge-a has none"]);
    assert_eq!(r(&solve(&cl("gpu-1", 10.0, true), &s).unwrap()), vec![1, 1]);
}

#[test]
fn not_enough_cpu_names_the_numbers() {
    let s = vec![
        svc("api", 95.0, 1, 2.5, 25.0, 5.0, 1, 10),
        svc("web", 0.0, 1, 0.5, 10.0, 0.0, 5, 10),
    ];
    let why = reasons(&solve(&cl("edge-a", 10.0, false), &s).unwrap());
    assert_eq!(
        why,
        vec![
            "the services need at least 12.5 cores (the fewest replicas that serve their load and \
             respect minReplicas) but cluster edge-a offers 10 cores: api 4 × 2.5 = 10 cores, \
             web 5 × 0.5 = 2.5 cores"
        ]
    );
    let mut neg = cl("edge-b", -3.0, false);
    let out = solve(&neg, &s).unwrap();
    let ScaleOutcome::Infeasible { reasons, notes } = out else {
        panic!()
    };
    assert!(reasons[0].contains("offers 0 cores"), "{reasons:?}");
    assert_eq!(
        notes,
        vec!["cluster edge-b: available CPU -3 cores counted as 0"]
    );
    neg.cpu = 12.5;
    assert_eq!(r(&solve(&neg, &s).unwrap()), vec![4, 5]);
}

#[test]
fn broken_rates_count_as_zero_with_a_note() {
    let c = cl("edge", 10.0, false);
    let s = vec![
        svc("a", f64::NAN, 1, 1.0, 10.0, 0.0, 1, 10),
        svc("b", -5.0, 1, 1.0, 10.0, 0.0, 1, 10),
        svc("c", f64::INFINITY, 1, 1.0, 10.0, 0.0, 1, 10),
    ];
    let out = solve(&c, &s).unwrap();
    assert_eq!(r(&out), vec![1, 1, 1]);
    let ScaleOutcome::Scaled { notes, changed, .. } = out else {
        unreachable!()
    };
    assert!(changed.is_empty());
    assert_eq!(
        notes,
        vec![
            "service a: request rate NaN counted as 0",
            "service b: request rate -5 counted as 0",
            "service c: request rate inf counted as 0",
        ]
    );
}

#[test]
fn current_above_max_is_brought_down_with_a_note() {
    let s = vec![svc("a", 10.0, 15, 1.0, 10.0, 0.0, 1, 10)];
    let out = solve(&cl("edge", 100.0, false), &s).unwrap();
    assert_eq!(r(&out), vec![1]);
    let ScaleOutcome::Scaled { notes, .. } = out else {
        unreachable!()
    };
    assert_eq!(
        notes,
        vec!["service a: 15 replicas run but maxReplicas is 10"]
    );
}

#[test]
fn invalid_input_is_an_error_naming_the_field() {
    let c = cl("edge", 10.0, false);
    let ok = svc("api", 1.0, 1, 1.0, 10.0, 0.0, 1, 10);
    let err = |f: &dyn Fn(&mut ScaleService)| {
        let mut s = ok.clone();
        f(&mut s);
        solve(&c, &[ok.clone().renamed("web"), s])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&|s| s.cpu = f64::NAN),
        "services[1] (api).cpu: must be a finite number of cores > 0, got NaN"
    );
    assert_eq!(
        err(&|s| s.alpha = 0.0),
        "services[1] (api).alpha: must be a finite number of req/s > 0, got 0"
    );
    assert_eq!(
        err(&|s| s.beta = -1.0),
        "services[1] (api).beta: must be a finite number of req/s ≥ 0, got -1"
    );
    assert_eq!(
        err(&|s| {
            s.min = 5;
            s.max = 3;
        }),
        "services[1] (api).min: minReplicas 5 exceeds maxReplicas 3"
    );
    assert_eq!(
        err(&|s| s.max = 0),
        "services[1] (api).max: maxReplicas must be between 1 and 100000, got 0"
    );
    assert_eq!(
        err(&|s| s.name = " ".into()),
        "services[1] ( ).name: must not be empty"
    );
    assert_eq!(
        err(&|s| s.name = "web".into()),
        "services[0] and services[1] are both named \"web\"; names must be unique per cluster"
    );
    assert_eq!(
        solve(&cl("edge", f64::NAN, false), std::slice::from_ref(&ok))
            .unwrap_err()
            .to_string(),
        "cluster edge.cpu: must be a finite number of cores, got NaN"
    );
    let many: Vec<ScaleService> = (0..=MAX_SERVICES)
        .map(|i| ok.clone().renamed(&format!("s{i}")))
        .collect();
    assert!(matches!(
        solve(&c, &many),
        Err(ScalingError::TooManyServices { count, .. }) if count == MAX_SERVICES + 1
    ));
}

impl ScaleService {
    fn renamed(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
}

#[test]
fn equal_input_in_any_order_gives_equal_output() {
    // Two identical idle services, one must give up two replicas' worth of CPU: the MILP
    // tie is settled the same way whatever the input order.
    let c = cl("edge", 8.0, false);
    let s = vec![
        svc("x", 0.0, 4, 1.0, 10.0, 0.0, 1, 10),
        svc("y", 0.0, 4, 1.0, 10.0, 0.0, 1, 10),
        svc("big", 0.0, 1, 2.0, 10.0, 0.0, 1, 10),
    ];
    let a = solve(&c, &s).unwrap();
    let mut rev = s.clone();
    rev.reverse();
    let b = solve(&c, &rev).unwrap();
    assert_eq!(a, b);
    let total: u32 = r(&a).iter().sum();
    assert_eq!(r(&a)[0], 1, "{a:?}");
    assert_eq!(total, 7, "{a:?}");
}

#[test]
fn solve_graph_per_cluster() {
    let clusters = vec![cl("edge-a", 10.0, false), cl("edge-b", 10.0, true)];
    let mut by = BTreeMap::new();
    by.insert("edge-a".to_string(), example());
    let mut ml = svc("ml", 1.0, 1, 2.0, 10.0, 0.0, 1, 4);
    ml.gpu = true;
    by.insert("edge-b".to_string(), vec![ml.clone()]);
    let out = solve_graph(&clusters, &by).unwrap();
    assert_eq!(r(&out["edge-a"]), vec![2, 3]);
    assert_eq!(r(&out["edge-b"]), vec![1]);

    by.insert("edge-a".to_string(), vec![ml]);
    let out = solve_graph(&clusters, &by).unwrap();
    assert!(out["edge-a"].is_infeasible());

    by.insert("gone".to_string(), example());
    assert_eq!(
        solve_graph(&clusters, &by).unwrap_err(),
        ScalingError::UnknownCluster {
            cluster: "gone".into()
        }
    );
    let dup = vec![cl("edge-a", 1.0, false), cl("edge-a", 2.0, false)];
    assert!(matches!(
        solve_graph(&dup, &BTreeMap::new()),
        Err(ScalingError::DuplicateCluster { .. })
    ));
}

#[test]
fn defaults_without_scaling_intent() {
    assert_eq!(defaults_for(0.5), (5.0, 0.0, 1, 10));
    assert_eq!(defaults_for(8.0), (80.0, 0.0, 1, 10));
    assert_eq!(defaults_for(f64::NAN), (10.0, 0.0, 1, 10));
    let s = ScaleService::with_defaults("web", 1.0, 25.0, 1);
    assert_eq!(r(&solve(&cl("e", 10.0, false), &[s]).unwrap()), vec![3]);
}

#[test]
fn empty_graph_is_trivially_scaled() {
    let out = solve(&cl("e", 0.0, false), &[]).unwrap();
    assert_eq!(
        out,
        ScaleOutcome::Scaled {
            replicas: BTreeMap::new(),
            changed: vec![],
            objective: 0.0,
            method: Method::ClosedForm,
            optimal: true,
            notes: vec![],
        }
    );
}

#[test]
fn serialises_for_the_decision_log() {
    let mut s = example();
    s[0].rate = f64::NAN;
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json[0]["rate"], serde_json::Value::Null);
    let back: Vec<ScaleService> = serde_json::from_value(json).unwrap();
    assert!(back[0].rate.is_nan());
    assert_eq!(back[1], s[1]);

    let out = solve(&cl("edge", 10.0, false), &example()).unwrap();
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["kind"], "scaled");
    assert_eq!(json["method"], "closed_form");
    assert_eq!(json["replicas"]["b"], 3);
    assert_eq!(json["changed"][1]["to"], 3);
    let back: ScaleOutcome = serde_json::from_value(json).unwrap();
    assert_eq!(back, out);

    let inf = solve(&cl("edge", 1.0, false), &example()).unwrap();
    assert_eq!(serde_json::to_value(&inf).unwrap()["kind"], "infeasible");
    let err = solve(&cl("", 1.0, false), &example()).unwrap_err();
    assert_eq!(
        serde_json::to_value(&err).unwrap()["kind"],
        "invalid_cluster"
    );
}

// ---- property tests ----

/// Every constraint of SPEC §3, checked from scratch (not through `Prepared`).
fn check_constraints(c: &ScaleCluster, s: &[ScaleService], rep: &BTreeMap<String, u32>) {
    let mut cores = 0.0;
    for x in s {
        let n = rep[&x.name];
        assert!(n >= x.min.max(1), "{}: {n} < min", x.name);
        assert!(n <= x.max, "{}: {n} > max", x.name);
        let lambda = if x.rate.is_finite() && x.rate >= 0.0 {
            x.rate
        } else {
            0.0
        };
        assert!(
            x.alpha * f64::from(n) + x.beta >= lambda - 1e-9,
            "{}: capacity {n}",
            x.name
        );
        assert!(!x.gpu || c.accelerator);
        cores += x.cpu * f64::from(n);
    }
    assert!(cores <= c.cpu.max(0.0) + 1e-7, "{cores} > {}", c.cpu);
}

/// The optimum by enumeration (tiny instances only).
fn brute_force(prep: &Prepared, s: &[ScaleService]) -> f64 {
    let mut best = f64::INFINITY;
    let mut r: Vec<u32> = prep.lo.clone();
    loop {
        if prep.fits(s, &r) {
            best = best.min(prep.objective(s, &r));
        }
        let mut k = 0;
        loop {
            if k == r.len() {
                return best;
            }
            if r[k] < prep.hi[k] {
                r[k] += 1;
                break;
            }
            r[k] = prep.lo[k];
            k += 1;
        }
    }
}

fn instance() -> impl Strategy<Value = (ScaleCluster, Vec<ScaleService>)> {
    let service = (
        0.0f64..300.0,
        0u32..9,
        prop::sample::select(vec![0.25, 0.5, 1.0, 2.0, 4.0]),
        1.0f64..60.0,
        0.0f64..20.0,
        0u32..3,
        3u32..8,
        prop::bool::weighted(0.1),
    );
    (prop::collection::vec(service, 1..5), 0.0f64..1.2).prop_map(|(raw, slack)| {
        let mut services: Vec<ScaleService> = raw
            .into_iter()
            .enumerate()
            .map(|(i, (rate, current, cpu, alpha, beta, min, max, gpu))| {
                let min = min.min(max);
                // Keep the load servable within maxReplicas.
                let rate = rate.min(alpha * f64::from(max) + beta);
                ScaleService {
                    name: format!("s{i}"),
                    rate,
                    current,
                    cpu,
                    alpha,
                    beta,
                    min,
                    max,
                    gpu,
                }
            })
            .collect();
        services.reverse();
        // Capacity between the cores at the lower bounds (always feasible) and a little above
        // the cores at the per-service targets, so the CPU row binds in most instances.
        let mut cluster = ScaleCluster {
            name: "edge".into(),
            cpu: 1e9,
            accelerator: true,
        };
        let prep = prepare(&cluster, &services);
        let lo = Prepared::cores(&services, &prep.lo);
        let top = Prepared::cores(&services, &prep.target(&services));
        cluster.cpu = lo + (top - lo) * slack;
        (cluster, services)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn feasible_instances_are_solved_optimally((c, s) in instance()) {
        let prep = prepare(&c, &s);
        prop_assert!(prep.reasons.is_empty(), "{:?}", prep.reasons);
        let fast = solve(&c, &s).unwrap();
        let milp = solve_with(&c, &s, &milp_only()).unwrap();
        for out in [&fast, &milp] {
            let ScaleOutcome::Scaled { replicas, objective, changed, optimal, .. } = out else {
                panic!("infeasible: {out:?}")
            };
            prop_assert!(*optimal);
            check_constraints(&c, &s, replicas);
            let rv: Vec<u32> = s.iter().map(|x| replicas[&x.name]).collect();
            prop_assert!((prep.objective(&s, &rv) - objective).abs() < 1e-12);
            // Never worse than the trivial feasible solutions: every service at its lower
            // bound, and the greedy reduction from the per-service targets.
            let greedy = prep.reduce_to_fit(&s, prep.target(&s));
            prop_assert!(prep.fits(&s, &greedy));
            prop_assert!(*objective <= prep.objective(&s, &prep.lo) + 1e-9);
            prop_assert!(*objective <= prep.objective(&s, &greedy) + 1e-9);
            // Optimal: equal to enumeration.
            let best = brute_force(&prep, &s);
            prop_assert!((objective - best).abs() < 1e-9, "{objective} vs {best}");
            prop_assert_eq!(
                changed.len(),
                s.iter().filter(|x| replicas[&x.name] != x.current).count()
            );
        }
        // Closed form and MILP agree on replicas whenever the closed form applies.
        if let ScaleOutcome::Scaled { method: Method::ClosedForm, .. } = fast {
            prop_assert_eq!(fast.replicas(), milp.replicas());
        }
    }

    /// maxReplicas is a hard bound whatever the load asks for: below `max`'s capacity every
    /// answer stays within it; beyond, the answer is infeasible and names maxReplicas, never a
    /// count above the bound (capacity is plentiful, so nothing else can be the reason).
    #[test]
    fn max_replicas_bounds_every_answer((c, s) in instance(), load in 0.0f64..50.0) {
        let loaded: Vec<ScaleService> = s
            .iter()
            .map(|x| ScaleService { rate: (x.alpha * f64::from(x.max) + x.beta) * load, ..x.clone() })
            .collect();
        let roomy = ScaleCluster { cpu: 1e6, ..c };
        for out in [solve(&roomy, &loaded).unwrap(), solve_with(&roomy, &loaded, &milp_only()).unwrap()] {
            match &out {
                ScaleOutcome::Scaled { replicas, .. } => {
                    for x in &loaded {
                        prop_assert!(replicas[&x.name] <= x.max, "{}: {:?}", x.name, out);
                    }
                }
                ScaleOutcome::Infeasible { reasons, .. } => {
                    prop_assert!(load > 1.0 - 1e-9, "within max, yet infeasible: {:?}", out);
                    prop_assert!(reasons.iter().any(|r| r.contains("maxReplicas")), "{:?}", out);
                }
            }
        }
    }

    #[test]
    fn infeasible_iff_minimum_does_not_fit((c, s) in instance(), cut in 0.0f64..1.0) {
        let prep = prepare(&c, &s);
        let min_cores = Prepared::cores(&s, &prep.lo);
        let tight = ScaleCluster { cpu: min_cores * cut - 1e-3, ..c };
        let out = solve(&tight, &s).unwrap();
        let why = reasons(&out);
        prop_assert_eq!(why.len(), 1);
        prop_assert!(why[0].starts_with("the services need at least"), "{:?}", why);
    }
}

fn graph(name: &str, services: Vec<ScaleService>) -> GraphServices {
    GraphServices {
        graph: name.into(),
        services,
    }
}

fn cores_of(services: &[ScaleService], out: &ScaleOutcome) -> f64 {
    let rep = out.replicas().expect("scaled");
    services
        .iter()
        .map(|s| s.cpu * f64::from(rep[&s.name]))
        .sum()
}

/// The over-commit the per-graph tick allowed, and the round that prevents it: two graphs on one
/// cluster each need 8 more cores while 10 are free.
#[test]
fn two_graphs_scaling_up_at_once_never_over_commit_their_cluster() {
    // Each: 2 replicas of 1 core now, load for 10 replicas (α = 10 req/s, 100 req/s).
    let a = vec![svc("web", 100.0, 2, 1.0, 10.0, 0.0, 1, 10)];
    let b = vec![svc("api", 100.0, 2, 1.0, 10.0, 0.0, 1, 10)];
    let (free, used) = (10.0, 4.0);
    // Alone, each graph sees the free CPU plus its own: both take 10 replicas, 20 cores on a
    // cluster that has 14 for them. That is what one tick per graph did.
    let alone: f64 = [&a, &b]
        .iter()
        .map(|s| cores_of(s, &solve(&cl("edge", free + 2.0, false), s).unwrap()))
        .sum();
    assert_eq!(alone, 20.0, "per-graph ticks over-commit");
    // Together, the budget is shared: the two loads cannot both be served here, so neither is
    // scaled (both keep their 2 replicas, 4 cores) and both are re-placed by the caller.
    let out = solve_cluster(
        &cl("edge", free + used, false),
        &[graph("ga", a.clone()), graph("gb", b.clone())],
        &SolveOptions::default(),
    );
    for g in ["ga", "gb"] {
        let why = reasons(out[g].as_ref().unwrap());
        assert!(why[0].contains("need at least 20 cores"), "{why:?}");
        assert!(why[0].contains("offers 14 cores"), "{why:?}");
    }
}

/// When the budget binds but can be met, the round trades replicas between graphs: a graph's
/// idle over-provisioned service gives back what another graph's load needs.
#[test]
fn a_binding_cluster_trades_replicas_between_graphs() {
    // shop: "big" 1 × 4 cores, "small" 5 × 1 core idle (going down costs: kept alone).
    let shop = vec![
        svc("big", 0.0, 1, 4.0, 10.0, 0.0, 1, 10),
        svc("small", 0.0, 5, 1.0, 10.0, 0.0, 1, 10),
    ];
    // blog: 1 replica, load for 6.
    let blog = vec![svc("web", 60.0, 1, 1.0, 10.0, 0.0, 1, 10)];
    let (free, used) = (2.0, 10.0);
    // Alone, blog sees 3 cores: infeasible, it would be re-placed.
    assert!(
        solve(&cl("edge", free + 1.0, false), &blog)
            .unwrap()
            .is_infeasible()
    );
    let out = solve_cluster(
        &cl("edge", free + used, false),
        &[graph("shop", shop.clone()), graph("blog", blog.clone())],
        &SolveOptions::default(),
    );
    let (o_shop, o_blog) = (out["shop"].as_ref().unwrap(), out["blog"].as_ref().unwrap());
    assert_eq!(r(o_blog), vec![6]);
    assert_eq!(r(o_shop), vec![1, 2]);
    assert_eq!(
        cores_of(&shop, o_shop) + cores_of(&blog, o_blog),
        free + used
    );
    let ScaleOutcome::Scaled {
        method, optimal, ..
    } = o_shop
    else {
        panic!()
    };
    assert_eq!((*method, *optimal), (Method::Milp, true));
}

/// A graph that cannot be served (a GPU service on a cluster without one) is infeasible alone:
/// it keeps its replicas, they count against the budget, and the other graph still scales.
#[test]
fn an_infeasible_graph_does_not_stop_the_others_on_its_cluster() {
    let mut gpu = svc("train", 5.0, 3, 2.0, 10.0, 0.0, 1, 10);
    gpu.gpu = true;
    let web = vec![svc("web", 40.0, 1, 1.0, 10.0, 0.0, 1, 10)];
    let out = solve_cluster(
        &cl("edge", 6.0 + 1.0 + 4.0, false),
        &[graph("ml", vec![gpu]), graph("shop", web.clone())],
        &SolveOptions::default(),
    );
    assert!(reasons(out["ml"].as_ref().unwrap())[0].contains("needs a GPU"));
    // 11 cores, 6 held by ml's replicas: web gets the 4 its load needs.
    assert_eq!(r(out["shop"].as_ref().unwrap()), vec![4]);
    // When even the fewest replicas do not fit, every feasible graph on the cluster says so.
    let out = solve_cluster(
        &cl("edge", 4.5, false),
        &[
            graph("shop", web),
            graph("blog", vec![svc("b", 0.0, 1, 1.0, 10.0, 0.0, 1, 3)]),
        ],
        &SolveOptions::default(),
    );
    for g in ["shop", "blog"] {
        assert!(reasons(out[g].as_ref().unwrap())[0].starts_with("the services need at least"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A cluster holding one graph scales it exactly as that graph's own solve does.
    #[test]
    fn a_round_over_one_graph_equals_its_own_solve((c, s) in instance()) {
        let own = solve(&c, &s).unwrap();
        let round = solve_cluster(&c, &[graph("g", s.clone())], &SolveOptions::default());
        prop_assert_eq!(round["g"].as_ref().unwrap(), &own);
    }

    /// Two graphs sharing a cluster: the round fits the cluster and is optimal for the sum of
    /// the graphs' own objectives (checked by enumeration).
    #[test]
    fn a_round_over_two_graphs_fits_and_is_optimal((c, s) in instance(), split in 0usize..5) {
        let k = split.min(s.len());
        let (a, b) = (s[..k].to_vec(), s[k..].to_vec());
        let graphs = [graph("ga", a.clone()), graph("gb", b.clone())];
        let out = solve_cluster(&c, &graphs, &SolveOptions::default());
        let group: Vec<usize> = (0..s.len()).map(|i| usize::from(i >= k)).collect();
        let prep = prepare_grouped(&c, &s, &group);
        let mut total = 0.0;
        let mut objective = 0.0;
        for (g, svcs) in [("ga", &a), ("gb", &b)] {
            if svcs.is_empty() {
                continue;
            }
            let o = out[g].as_ref().unwrap();
            let ScaleOutcome::Scaled { objective: x, optimal, .. } = o else {
                panic!("infeasible: {o:?}")
            };
            prop_assert!(*optimal);
            objective += x;
            total += cores_of(svcs, o);
        }
        prop_assert!(total <= c.cpu + 1e-9 * c.cpu.max(1.0), "{total} > {}", c.cpu);
        let best = brute_force(&prep, &s);
        prop_assert!((objective - best).abs() < 1e-9, "{objective} vs {best}");
    }
}
