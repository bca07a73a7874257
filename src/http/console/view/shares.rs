//! Cluster shares (CPU, memory, GPU: used by this graph, by others, free) and their bars.

use super::*;

/// One resource of one cluster split three ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub this: f64,
    pub others: f64,
    pub total: f64,
}

impl Share {
    pub fn free(&self) -> f64 {
        (self.total - self.this - self.others).max(0.0)
    }
}

/// Per cluster: (cpu cores, memory GiB, GPUs) requested by this graph, by the others, and in all.
pub fn shares(clusters: &[ClusterRecord], usage: &[ClusterUsage]) -> Vec<(String, [Share; 3])> {
    clusters
        .iter()
        .map(|c| {
            let mut s = [
                Share {
                    this: 0.0,
                    others: 0.0,
                    total: c.cpu_allocatable,
                },
                Share {
                    this: 0.0,
                    others: 0.0,
                    total: c.memory_allocatable as f64 / GIB,
                },
                Share {
                    this: 0.0,
                    others: 0.0,
                    total: c.gpus as f64,
                },
            ];
            for u in usage.iter().filter(|u| u.cluster == c.name) {
                let used = [
                    u.cpu_millis as f64 / 1000.0,
                    u.memory_bytes as f64 / GIB,
                    u.gpus as f64,
                ];
                for (share, v) in s.iter_mut().zip(used) {
                    if u.mine {
                        share.this += v;
                    } else {
                        share.others += v;
                    }
                }
            }
            (c.name.to_string(), s)
        })
        .collect()
}

/// [`ClusterUsage`] summed from placed services (the clusters page has them anyway).
pub fn usage_of(placed: &[PlacedService], graph: &str) -> Vec<ClusterUsage> {
    let mut sums: BTreeMap<(String, bool), ClusterUsage> = BTreeMap::new();
    for p in placed {
        let mine = p.graph == graph;
        let u = sums
            .entry((p.cluster.clone(), mine))
            .or_insert_with(|| ClusterUsage {
                cluster: p.cluster.clone(),
                mine,
                cpu_millis: 0,
                memory_bytes: 0,
                gpus: 0,
            });
        let n = i64::from(p.replicas.max(0));
        u.cpu_millis += p.cpu_millis * n;
        u.memory_bytes += p.memory_bytes * n;
        u.gpus += if p.gpu { n } else { 0 };
    }
    sums.into_values().collect()
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

pub(super) fn bar(label: &str, unit: &str, s: &Share) -> String {
    let text = format!(
        "{label}: this graph {:.1}, others {:.1}, free {:.1} of {:.1} {unit}",
        s.this,
        s.others,
        s.free(),
        s.total
    );
    bar_with(&text, s)
}

/// A bar of what every graph requests on a cluster (the clusters page has no "this graph").
pub(super) fn bar_all(label: &str, unit: &str, s: &Share) -> String {
    let all = Share {
        this: 0.0,
        others: s.this + s.others,
        total: s.total,
    };
    let text = format!(
        "{label}: requested {:.1}, free {:.1} of {:.1} {unit}",
        all.others,
        all.free(),
        all.total
    );
    bar_with(&text, &all)
}

fn bar_with(text: &str, s: &Share) -> String {
    let pct = |v: f64| {
        if s.total > 0.0 {
            (v / s.total * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        }
    };
    format!(
        "<div class=\"res\"><div class=\"bar\" role=\"img\" aria-label=\"{t}\"><span class=\"seg this\" style=\"width:{:.1}%\"></span>\
<span class=\"seg others\" style=\"width:{:.1}%\"></span></div><div class=\"bar-text\">{t}</div></div>",
        pct(s.this),
        pct(s.others),
        t = esc(text)
    )
}
