//! `smo bench descriptor`: the largest descriptor the API accepts, parsed and validated: time and
//! peak memory.

use super::*;

/// The figures of `smo bench descriptor`: the worst descriptor the API accepts, through what a
/// dry run does with it.
#[derive(Debug, Serialize)]
pub struct DescriptorReport {
    /// Services (the limit).
    pub services: usize,
    /// Descriptor size in bytes (near the body limit).
    pub bytes: usize,
    /// Seconds to parse and validate it.
    pub parse_secs: f64,
    /// The ceiling, same run: seconds for the YAML parser alone to read the same bytes into a
    /// generic value (no typed descriptor, no validation), and `parse_secs` ÷ it.
    pub yaml_only_secs: f64,
    pub parse_ratio: f64,
    /// Seconds to place and render it (the dry run's work).
    pub plan_secs: f64,
    /// Objects rendered.
    pub objects: usize,
    /// Resident memory before, in MiB.
    pub rss_before_mib: f64,
    /// Peak resident memory during parse, place and render, in MiB (Linux `VmHWM`, reset first).
    pub peak_rss_mib: f64,
}

/// The largest graph the API accepts: [`crate::hdag::MAX_SERVICES`] services in block YAML,
/// padded with descriptions up to the body limit, every service with ports and a dependency.
pub fn worst_descriptor() -> Vec<u8> {
    use std::fmt::Write;
    let n = crate::hdag::MAX_SERVICES;
    let budget = crate::hdag::MAX_DESCRIPTOR_BYTES - 64 * 1024;
    let per_service = budget / n;
    let mut y = String::from(
        "hdaGraph:\n  imVersion: 0.4.0\n  id: worst\n  version: \"1.0.0\"\n  services:\n",
    );
    for i in 0..n {
        let start = y.len();
        let deps = if i == 0 {
            " []".to_string()
        } else {
            format!("\n              - s{}", i - 1)
        };
        // Block style throughout: flow collections (`[…]`) are budgeted per byte of document.
        let _ = write!(
            y,
            "    - id: s{i}\n      deployment:\n        trigger:\n          auto:\n            dependencies:{deps}\n        \
             intent:\n          compute:\n            cpu: 10m\n            ram: 16Mi\n            storage: light\n            \
             gpu:\n              enabled: false\n      artifact:\n        image: ghcr.io/example/s{i}:1\n        ports:\n          \
             - port: 8080\n          - port: 9090\n      description: \""
        );
        let used = y.len() - start;
        y.push_str(&"x".repeat(per_service.saturating_sub(used + 2)));
        y.push_str("\"\n");
    }
    y.into_bytes()
}

fn proc_status_kib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parses, places and renders [`worst_descriptor`] on three roomy clusters, measuring time and
/// peak memory (run it in a fresh process: the peak is the process's).
pub fn descriptor() -> anyhow::Result<DescriptorReport> {
    let doc = worst_descriptor();
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_status_kib("VmRSS:").unwrap_or(0.0);
    let started = Instant::now();
    let parsed = crate::hdag::parse(&doc)?;
    let parse_secs = started.elapsed().as_secs_f64();
    let clusters: Vec<crate::store::ClusterRecord> = ["a", "b", "c"]
        .iter()
        .map(|n| crate::store::ClusterRecord {
            name: crate::hdag::ClusterName::parse(format!("bench-{n}")).expect("a label"),
            ready: true,
            cpu_allocatable: 64.0,
            cpu_free: 64.0,
            memory_allocatable: 64 << 30,
            memory_free: 64 << 30,
            gpus: 0,
            labels: serde_json::json!({}),
            message: None,
            synced_at: chrono::Utc::now(),
        })
        .collect();
    let started = Instant::now();
    let (plan, objects) = crate::plan::dry_run(&parsed.graph, &clusters, "bench")?;
    let plan_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(plan.placement.len() == parsed.graph.services.len());
    let peak = proc_status_kib("VmHWM:").unwrap_or(0.0);
    // After the peak is read: the ceiling's own memory is not the descriptor's.
    let started = Instant::now();
    let generic: serde_norway::Value = serde_norway::from_slice(&doc)?;
    let yaml_only_secs = started.elapsed().as_secs_f64();
    drop(generic);
    Ok(DescriptorReport {
        services: parsed.graph.services.len(),
        bytes: doc.len(),
        parse_secs,
        yaml_only_secs,
        parse_ratio: parse_secs / yaml_only_secs,
        plan_secs,
        objects: objects.len(),
        rss_before_mib: rss_before / 1024.0,
        peak_rss_mib: peak / 1024.0,
    })
}
