//! Synthetic metrics in the Prometheus text format, so a real Prometheus can scrape the sim
//! and smo's scaler sees `rate(flask_http_request_total[..])` equal to the configured load.

use std::{collections::BTreeMap, fmt::Write as _, time::Instant};

use serde_json::Value;

use super::{
    State,
    store::{Res, str_at},
};

type SvcKey = (String, String);

/// Request counters of one service, integrated piecewise: between two changes (of the rate or
/// of where its replicas are ready) every cluster's counter grows linearly, so the counters
/// never go down and their sum grows at exactly the configured rate.
#[derive(Clone)]
struct Flow {
    last: Instant,
    counters: BTreeMap<String, f64>,
    ready: BTreeMap<String, u32>,
}

impl Flow {
    fn values_at(&self, rate: f64, now: Instant) -> BTreeMap<String, f64> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let total: u32 = self.ready.values().sum();
        let mut out = self.counters.clone();
        for (cluster, r) in &self.ready {
            if total > 0 {
                *out.entry(cluster.clone()).or_default() +=
                    rate * dt * f64::from(*r) / f64::from(total);
            }
        }
        out
    }

    fn advance(&mut self, rate: f64, now: Instant) {
        self.counters = self.values_at(rate, now);
        self.last = now;
    }
}

/// Request rates per service and the counters they drive.
#[derive(Clone)]
pub(crate) struct Traffic {
    default_rate: f64,
    rates: BTreeMap<SvcKey, f64>,
    flows: BTreeMap<SvcKey, Flow>,
}

impl Traffic {
    pub fn new(default_rate: f64) -> Self {
        Traffic {
            default_rate,
            rates: BTreeMap::new(),
            flows: BTreeMap::new(),
        }
    }

    pub fn rate(&self, ns: &str, svc: &str) -> f64 {
        self.rates
            .get(&(ns.to_string(), svc.to_string()))
            .copied()
            .unwrap_or(self.default_rate)
    }

    /// Every explicitly set rate, for `/sim/state`.
    pub fn rates(&self) -> &BTreeMap<SvcKey, f64> {
        &self.rates
    }

    /// Sets the requests per second a service receives from `now` on.
    pub fn set_rate(&mut self, ns: &str, svc: &str, rate: f64, now: Instant) {
        let key = (ns.to_string(), svc.to_string());
        let old = self.rate(ns, svc);
        if let Some(f) = self.flows.get_mut(&key) {
            f.advance(old, now);
        }
        self.rates.insert(key, rate);
    }

    /// Records where a service's replicas are ready; traffic is split in proportion.
    pub fn set_ready(&mut self, ns: &str, svc: &str, ready: BTreeMap<String, u32>, now: Instant) {
        let rate = self.rate(ns, svc);
        let key = (ns.to_string(), svc.to_string());
        let f = self.flows.entry(key).or_insert_with(|| Flow {
            last: now,
            counters: BTreeMap::new(),
            ready: BTreeMap::new(),
        });
        f.advance(rate, now);
        f.ready = ready.into_iter().filter(|(_, r)| *r > 0).collect();
    }

    /// Forgets the counters of services that no longer exist (their rates are kept).
    pub fn retain(&mut self, keep: impl Fn(&SvcKey) -> bool) {
        self.flows.retain(|k, _| keep(k));
    }

    /// `(namespace, service, cluster, counter)` at `now`.
    pub fn samples(&self, now: Instant) -> Vec<(&str, &str, String, f64)> {
        let mut out = Vec::new();
        for ((ns, svc), f) in &self.flows {
            for (cluster, v) in f.values_at(self.rate(ns, svc), now) {
                out.push((ns.as_str(), svc.as_str(), cluster, v));
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(Vec<(&str, &str)>, f64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(out, "{name}{{{}}} {v}", labels.join(","));
    }
}

/// Renders `/metrics` at `now`.
pub(crate) fn render(st: &State, now: Instant) -> String {
    let mut out = String::new();
    let requests = st.traffic.samples(now);
    let samples: Vec<_> = requests
        .iter()
        .map(|(ns, svc, c, v)| {
            (
                vec![
                    ("service", *svc),
                    ("namespace", *ns),
                    ("cluster", c.as_str()),
                ],
                *v,
            )
        })
        .collect();
    family(
        &mut out,
        "flask_http_request_total",
        "counter",
        "Synthetic HTTP requests served.",
        &samples,
    );

    let deployments = st.store.list(Res::Deployment, None);
    let gauge = |pointer: &str| -> Vec<(Vec<(&str, &str)>, f64)> {
        deployments
            .iter()
            .map(|d| {
                let labels = vec![
                    ("namespace", str_at(d, "/metadata/namespace")),
                    ("deployment", str_at(d, "/metadata/name")),
                ];
                (
                    labels,
                    d.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0),
                )
            })
            .collect()
    };
    family(
        &mut out,
        "kube_deployment_status_replicas_ready",
        "gauge",
        "Ready replicas per deployment.",
        &gauge("/status/readyReplicas"),
    );
    family(
        &mut out,
        "kube_deployment_spec_replicas",
        "gauge",
        "Desired replicas per deployment.",
        &gauge("/spec/replicas"),
    );

    let per_cluster =
        |f: &dyn Fn(&super::simulate::ClusterState) -> f64| -> Vec<(Vec<(&str, &str)>, f64)> {
            st.clusters
                .iter()
                .map(|(n, c)| (vec![("cluster", n.as_str())], f(c)))
                .collect()
        };
    let cores = |m: u64| m as f64 / 1000.0;
    family(
        &mut out,
        "sim_cluster_ready",
        "gauge",
        "1 when the cluster is Ready.",
        &per_cluster(&|c| f64::from(u8::from(c.ready))),
    );
    family(
        &mut out,
        "sim_cluster_cpu_allocatable_cores",
        "gauge",
        "Allocatable CPU.",
        &per_cluster(&|c| cores(c.allocatable.cpu_milli)),
    );
    family(
        &mut out,
        "sim_cluster_cpu_allocated_cores",
        "gauge",
        "CPU requested by running replicas.",
        &per_cluster(&|c| cores(c.allocated.cpu_milli)),
    );
    family(
        &mut out,
        "sim_cluster_memory_allocatable_bytes",
        "gauge",
        "Allocatable memory.",
        &per_cluster(&|c| c.allocatable.memory as f64),
    );
    family(
        &mut out,
        "sim_cluster_memory_allocated_bytes",
        "gauge",
        "Memory requested by running replicas.",
        &per_cluster(&|c| c.allocated.memory as f64),
    );
    family(
        &mut out,
        "sim_cluster_gpu_allocatable",
        "gauge",
        "Allocatable GPUs.",
        &per_cluster(&|c| c.allocatable.gpu as f64),
    );
    family(
        &mut out,
        "sim_cluster_gpu_allocated",
        "gauge",
        "GPUs requested by running replicas.",
        &per_cluster(&|c| c.allocated.gpu as f64),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ready(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(c, r)| (c.to_string(), *r)).collect()
    }

    #[test]
    fn counters_grow_at_the_rate_and_never_decrease() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut t = Traffic::new(5.0);
        t.set_ready("p", "web", ready(&[("a", 1), ("b", 1)]), t0);
        let total = |t: &Traffic, now| t.samples(now).iter().map(|s| s.3).sum::<f64>();
        assert!((total(&t, at(10)) - 50.0).abs() < 1e-9);
        t.set_rate("p", "web", 42.0, at(10));
        assert!((total(&t, at(20)) - 470.0).abs() < 1e-9);
        // Replicas move entirely to b: a's counter freezes, b keeps counting.
        t.set_ready("p", "web", ready(&[("a", 0), ("b", 2)]), at(20));
        let s = t.samples(at(30));
        assert_eq!(s.len(), 2);
        assert!((s[0].3 - 235.0).abs() < 1e-9, "{s:?}");
        assert!((s[1].3 - 655.0).abs() < 1e-9, "{s:?}");
        t.retain(|_| false);
        assert!(t.samples(at(40)).is_empty());
        assert_eq!(t.rate("p", "web"), 42.0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
