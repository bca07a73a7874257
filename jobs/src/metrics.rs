//! In-process Prometheus metrics: labelled counters and histograms, and the engine's own series.
//!
//! Each process (API, worker, scheduler) counts what *it* did; Prometheus sums the pods. The
//! primitives are tiny on purpose (a mutex-guarded map per family, rendered in the text
//! exposition format) so the engine needs no metrics framework and the application can register
//! its own families ([`CounterVec`], [`HistogramVec`]) next to the engine's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A counter family: one monotonically increasing value per label set.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<String, u64>>,
}

impl CounterVec {
    /// A family named `name` (conventionally ending in `_total`) with these label names.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `n` to the series of `values` (one value per label name, in order).
    pub fn inc_by(&self, values: &[&str], n: u64) {
        let key = Key::of(values);
        let mut m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(key.as_str()) {
            Some(v) => *v += n,
            None => {
                m.insert(key.into_owned(), n);
            }
        }
    }

    /// Adds one.
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }

    /// The current value of one series (0 when never touched) — for tests and benchmarks.
    pub fn get(&self, values: &[&str]) -> u64 {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        m.get(Key::of(values).as_str()).copied().unwrap_or(0)
    }

    /// Appends the family in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        header(out, self.name, self.help, "counter");
        for (key, v) in m.iter() {
            let pairs = label_pairs(self.labels, key);
            let _ = writeln!(out, "{}{} {v}", self.name, braced(&pairs));
        }
    }
}

/// A histogram family: cumulative buckets, sum and count per label set.
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    series: Mutex<BTreeMap<String, Histogram>>,
}

#[derive(Default)]
struct Histogram {
    count: u64,
    sum: f64,
    /// Non-cumulative counts per bucket (made cumulative when rendered).
    buckets: Vec<u64>,
}

/// Buckets for work that takes milliseconds to minutes (jobs, solves, requests).
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

impl HistogramVec {
    /// A family named `name` (conventionally ending in `_seconds`) with these label names and
    /// ascending bucket bounds.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            buckets,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, values: &[&str], v: f64) {
        let key = Key::of(values);
        let mut m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if !m.contains_key(key.as_str()) {
            m.insert(
                key.as_str().to_string(),
                Histogram {
                    buckets: vec![0; self.buckets.len()],
                    ..Histogram::default()
                },
            );
        }
        let Some(h) = m.get_mut(key.as_str()) else {
            return;
        };
        h.count += 1;
        h.sum += v;
        if let Some(i) = self.buckets.iter().position(|b| v <= *b) {
            h.buckets[i] += 1;
        }
    }

    /// Observations recorded for one series — for tests and benchmarks.
    pub fn count(&self, values: &[&str]) -> u64 {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        m.get(Key::of(values).as_str())
            .map(|h| h.count)
            .unwrap_or(0)
    }

    /// Appends the family in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        header(out, self.name, self.help, "histogram");
        let bounds: Vec<String> = self.buckets.iter().map(f64::to_string).collect();
        for (key, h) in m.iter() {
            let pairs = label_pairs(self.labels, key);
            let sep = if pairs.is_empty() { "" } else { "," };
            let mut cumulative = 0;
            for (le, n) in bounds.iter().zip(&h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "{}_bucket{{{pairs}{sep}le=\"{le}\"}} {cumulative}",
                    self.name
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{{{pairs}{sep}le=\"+Inf\"}} {}",
                self.name, h.count
            );
            let l = braced(&pairs);
            let _ = writeln!(out, "{}_sum{l} {}", self.name, h.sum);
            let _ = writeln!(out, "{}_count{l} {}", self.name, h.count);
        }
    }
}

/// A series key: the label values joined by a separator that cannot occur in them sensibly
/// (U+001F). One label — the common case on the hot path — borrows instead of allocating.
enum Key<'a> {
    Borrowed(&'a str),
    Owned(String),
}

const SEP: char = '\u{1f}';

impl<'a> Key<'a> {
    fn of(values: &[&'a str]) -> Self {
        match values {
            [one] => Key::Borrowed(one),
            many => Key::Owned(many.join(&SEP.to_string())),
        }
    }
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
    fn into_owned(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_string(),
            Key::Owned(s) => s,
        }
    }
}

/// Appends the `# HELP` and `# TYPE` lines of a family (`kind`: counter, gauge, histogram).
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `a="x",b="y"`: the escaped label pairs of the series stored under `key`.
fn label_pairs(names: &[&str], key: &str) -> String {
    let mut pairs = String::new();
    for (n, v) in names.iter().zip(key.split(SEP)) {
        if !pairs.is_empty() {
            pairs.push(',');
        }
        let _ = write!(pairs, "{n}=\"{}\"", escape(v));
    }
    pairs
}

/// `{pairs}`, or nothing for a series without labels.
fn braced(pairs: &str) -> String {
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{pairs}}}")
    }
}

/// Escapes a label value as the exposition format requires.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Jobs this process enqueued (rows actually inserted; a live unique key counts nothing).
pub static ENQUEUED: CounterVec = CounterVec::new(
    "smo_jobs_enqueued_total",
    "Jobs enqueued by this process, by kind.",
    &["kind"],
);
/// Attempts this process's workers started.
pub static STARTED: CounterVec = CounterVec::new(
    "smo_jobs_started_total",
    "Job attempts started by this process's workers, by kind.",
    &["kind"],
);
/// Attempts that succeeded.
pub static SUCCEEDED: CounterVec = CounterVec::new(
    "smo_jobs_succeeded_total",
    "Job attempts that succeeded, by kind.",
    &["kind"],
);
/// Attempts that failed (each retry counts).
pub static FAILED: CounterVec = CounterVec::new(
    "smo_jobs_failed_total",
    "Job attempts that failed (each failed attempt counts), by kind.",
    &["kind"],
);
/// Jobs that failed for good (permanent error or attempts exhausted).
pub static DEAD: CounterVec = CounterVec::new(
    "smo_jobs_dead_total",
    "Jobs that failed for good (permanent error or last attempt), by kind.",
    &["kind"],
);
/// Attempts that snoozed (waited for something another job holds; no attempt spent).
pub static SNOOZED: CounterVec = CounterVec::new(
    "smo_jobs_snoozed_total",
    "Job attempts that snoozed (re-scheduled without spending an attempt), by kind.",
    &["kind"],
);
/// Attempts stopped because they no longer owned their job (lease lapsed or superseded).
pub static FENCED: CounterVec = CounterVec::new(
    "smo_jobs_fenced_total",
    "Job attempts abandoned because their worker's lease lapsed or a newer attempt took the job, by kind.",
    &["kind"],
);
/// Handler run time per attempt.
pub static DURATION: HistogramVec = HistogramVec::new(
    "smo_job_duration_seconds",
    "Run time of one job attempt, by kind and outcome (succeeded, failed).",
    &["kind", "outcome"],
    DURATION_BUCKETS,
);

/// Cron slots this process's scheduler claimed (each slot is claimed by one scheduler only).
pub static CRON_FIRED: CounterVec = CounterVec::new(
    "smo_cron_fired_total",
    "Cron slots this process's scheduler claimed and enqueued, by entry.",
    &["entry"],
);

/// Appends the engine's per-process series (counters and the duration histogram).
pub fn render(out: &mut String) {
    for c in [
        &ENQUEUED,
        &STARTED,
        &SUCCEEDED,
        &FAILED,
        &SNOOZED,
        &FENCED,
        &DEAD,
        &CRON_FIRED,
    ] {
        c.render(out);
    }
    DURATION.render(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_one_line_per_label_set() {
        static C: CounterVec = CounterVec::new("t_total", "Test.", &["kind", "x"]);
        C.inc(&["a", "1"]);
        C.inc_by(&["a", "1"], 4);
        C.inc(&["b\"q", "2"]);
        let mut out = String::new();
        C.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_total Test.\n# TYPE t_total counter\n\
             t_total{kind=\"a\",x=\"1\"} 5\nt_total{kind=\"b\\\"q\",x=\"2\"} 1\n"
        );
        assert_eq!(C.get(&["a", "1"]), 5);
        assert_eq!(C.get(&["z", "9"]), 0);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_equals_count() {
        static H: HistogramVec = HistogramVec::new("h_seconds", "Test.", &["k"], &[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 3.0] {
            H.observe(&["a"], v);
        }
        let mut out = String::new();
        H.render(&mut out);
        assert!(
            out.contains("h_seconds_bucket{k=\"a\",le=\"0.1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("h_seconds_bucket{k=\"a\",le=\"1\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("h_seconds_bucket{k=\"a\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("h_seconds_sum{k=\"a\"} 4.25\n"), "{out}");
        assert!(out.contains("h_seconds_count{k=\"a\"} 4\n"), "{out}");
        assert_eq!(H.count(&["a"]), 4);
    }
}
