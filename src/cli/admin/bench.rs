//! `smo-admin bench`: the engine's throughput, latency and steady-load figures beside plain
//! apalis-postgres (feature `bench`).

use super::*;
use crate::cli::redact_url;
use clap::Args;
use smo_jobs::bench;

#[derive(Args)]
pub(super) struct BenchArgs {
    /// No-op jobs enqueued and drained.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker instances.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Jobs each worker runs at once.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Jobs claimed per fetch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Single jobs enqueued into an idle queue to measure latency.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Jobs pushed through plain apalis-postgres per baseline [default: --jobs] (0 skips the
    /// baselines).
    #[arg(long)]
    apalis_jobs: Option<usize>,
    /// apalis-postgres configurations to compare with, run in this order (repeat the flag or
    /// separate with commas); each prints its figures and the ratio smo÷apalis.
    #[arg(
        long = "baseline",
        value_enum,
        value_delimiter = ',',
        default_values = ["tuned", "default"]
    )]
    baselines: Vec<BaselineArg>,
    /// Benchmark this database instead of `<db>_bench` (it is written to!).
    #[arg(long)]
    bench_database_url: Option<String>,
    /// Steady load instead: offer this many jobs/s (evenly) to the workers for `--seconds`, and
    /// print enqueue→start p50/p99/max beside a round trip to the same server (goal: p99 ≤ 5 ms
    /// at 10,000 jobs/s on 2 cores).
    #[arg(long)]
    rate: Option<f64>,
    /// How long the steady load lasts.
    #[arg(long, default_value_t = 60.0, requires = "rate")]
    seconds: f64,
    /// With the steady load, retention on: every 10 s prune finished jobs older than this
    /// (`90s`, `5m`; what smo's retention job runs) and print the table's and its indexes' size.
    #[arg(long, value_parser = crate::cli::parse_duration, requires = "rate")]
    retention: Option<std::time::Duration>,
    /// The queue's reads with this many finished jobs in the table instead (10000000 for the
    /// goal of < 100 ms): `stats` (what `smo-admin stats`, the console's queue page and
    /// apalis-board's counts read) and `jobs list` by state, beside a round trip to the same
    /// server. The jobs are inserted first (about a minute per 2 million) and deleted after.
    #[arg(long, conflicts_with = "rate")]
    finished: Option<usize>,
}

/// `--baseline`'s values: [`bench::Baseline`] (smo-jobs has no clap).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BaselineArg {
    /// smo-jobs' settings where apalis-postgres 1.0 has them: fetch batch = --batch-size, same
    /// workers × concurrency, LISTEN/NOTIFY plus smo-jobs' poll interval, smo-jobs' heartbeat and
    /// lease (persist_results and lock_tasks stay on: see `bench::Baseline`).
    Tuned,
    /// apalis-postgres's `Config::default()`: fetch batch 10, no LISTEN/NOTIFY, same workers ×
    /// concurrency.
    Default,
}

impl From<BaselineArg> for bench::Baseline {
    fn from(b: BaselineArg) -> Self {
        match b {
            BaselineArg::Tuned => bench::Baseline::Tuned,
            BaselineArg::Default => bench::Baseline::Default,
        }
    }
}

pub(super) async fn run_bench(url: &str, args: BenchArgs, out: Output) -> Result<(), CliError> {
    let bench_url = match args.bench_database_url {
        Some(u) => u,
        None => crate::cli::scratch_database(url).await?,
    };
    let pool = connect(&bench_url, (args.workers as u32 * 3 + 6).max(8)).await?;
    let (durable_fsync, sync_commit): (String, String) =
        sqlx::query_as("SELECT current_setting('fsync'), current_setting('synchronous_commit')")
            .fetch_one(&pool)
            .await
            .map_err(smo_jobs::Error::from)?;
    if let Some(n) = args.finished {
        let r = bench::finished(pool, n, |m| eprintln!("… {m}")).await?;
        if out == Output::Json {
            return print_json(&r);
        }
        println!(
            "{} finished jobs (table {:.0} MB, indexes {:.0} MB; inserted and analysed in {:.0} s):",
            r.finished,
            r.table_bytes as f64 / 1e6,
            r.index_bytes as f64 / 1e6,
            r.fill_secs
        );
        for t in &r.reads {
            println!(
                "  {:<24} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   ({:.0}× a round trip; goal < 100 ms)",
                t.what,
                t.p50_ms,
                t.p99_ms,
                t.max_ms,
                t.p50_ms / r.round_trip_p50_ms
            );
        }
        println!(
            "  floor, same run: one round trip to the server p50 {:.2} ms, p99 {:.2} ms",
            r.round_trip_p50_ms, r.round_trip_p99_ms
        );
        return Ok(());
    }
    if let Some(rate) = args.rate {
        let opts = bench::SteadyOptions {
            rate,
            seconds: args.seconds,
            workers: args.workers,
            concurrency: args.concurrency,
            batch_size: args.batch_size,
            retention: args.retention.map(|d| d.as_secs_f64()),
        };
        let r = bench::steady(pool, opts, |m| eprintln!("… {m}")).await?;
        if out == Output::Json {
            return print_json(&r);
        }
        println!(
            "steady load: {} jobs/s offered for {} s ({} jobs, enqueued at {:.0}/s) on {} workers × {}, batch {}",
            r.options.rate,
            r.options.seconds,
            r.jobs,
            r.enqueued_per_sec,
            r.options.workers,
            r.options.concurrency,
            r.options.batch_size
        );
        println!(
            "  enqueue→start   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (goal: p99 ≤ 5 ms)",
            r.p50_ms, r.p99_ms, r.max_ms
        );
        println!(
            "  floor, same run: one round trip to the server p50 {:.2} ms, p99 {:.2} ms (ratio p99/round-trip p99: {:.1}×)",
            r.round_trip_p50_ms,
            r.round_trip_p99_ms,
            r.p99_ms / r.round_trip_p99_ms
        );
        if !r.p99_by_window_ms.is_empty() {
            let w: Vec<String> = r
                .p99_by_window_ms
                .iter()
                .map(|ms| format!("{ms:.1}"))
                .collect();
            println!("  p99 by 10 s window (ms): {}", w.join(" "));
        }
        if let (Some(first), Some(last)) = (r.sizes.first(), r.sizes.last()) {
            let max = |f: fn(&bench::SizeSample) -> i64| r.sizes.iter().map(f).max().unwrap_or(0);
            let mb = |b: i64| b as f64 / 1e6;
            println!(
                "  retention {:.0} s: table {:.1} MB at {:.0} s, {:.1} MB at the end, {:.1} MB at most; indexes {:.1} → {:.1} MB, {:.1} MB at most; rows {} → {}",
                r.options.retention.unwrap_or_default(),
                mb(first.table_bytes),
                first.at_secs,
                mb(last.table_bytes),
                mb(max(|s| s.table_bytes)),
                mb(first.index_bytes),
                mb(last.index_bytes),
                mb(max(|s| s.index_bytes)),
                first.rows,
                last.rows
            );
        }
        return Ok(());
    }
    let opts = bench::BenchOptions {
        jobs: args.jobs,
        workers: args.workers,
        concurrency: args.concurrency,
        batch_size: args.batch_size,
        latency_samples: args.latency_samples,
        apalis_jobs: args.apalis_jobs.unwrap_or(args.jobs),
        baselines: args.baselines.into_iter().map(Into::into).collect(),
    };
    eprintln!(
        "benchmarking on {} (fsync={durable_fsync}, synchronous_commit={sync_commit}, {} cpus)",
        redact_url(&bench_url),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let report = bench::run(pool, opts, |m| eprintln!("… {m}")).await?;
    if out == Output::Json {
        return print_json(&report);
    }
    let s = &report.smo;
    println!(
        "smo-jobs ({} jobs, {} workers × {} concurrency, batch {}):",
        s.jobs, report.options.workers, report.options.concurrency, report.options.batch_size
    );
    println!(
        "  enqueue (bulk)         {:>10.0} jobs/s",
        s.enqueue_per_sec
    );
    println!(
        "  processed end to end   {:>10.0} jobs/s",
        s.processed_per_sec
    );
    println!(
        "  enqueue→start latency  p50 {:.2} ms   p99 {:.2} ms   (idle queue, {} samples)",
        report.latency_p50_ms, report.latency_p99_ms, report.options.latency_samples
    );
    for b in &report.baselines {
        let a = &b.apalis;
        println!(
            "plain apalis-postgres, {} baseline ({} jobs): {}",
            b.baseline, a.jobs, b.note
        );
        println!(
            "  enqueue (push_bulk)    {:>10.0} jobs/s",
            a.enqueue_per_sec
        );
        println!(
            "  processed end to end   {:>10.0} jobs/s",
            a.processed_per_sec
        );
        println!(
            "  ratio processed smo/apalis ({}): {:.1}×",
            b.baseline, b.processed_ratio
        );
    }
    if report.baselines.len() > 1 {
        println!(
            "ratios processed smo/apalis: {}",
            report
                .baselines
                .iter()
                .map(|b| format!("{} {:.1}×", b.baseline, b.processed_ratio))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
