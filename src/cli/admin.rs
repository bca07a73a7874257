//! `smo-admin` (the binary only calls [`main`]): operate smo's job queue — list, inspect, retry, cancel and purge jobs, see
//! statistics, live workers and the cron schedule, and benchmark the engine; manage the API's
//! tokens and read the audit log (`cli::teams`). Every change it makes is audited.

use std::process::ExitCode;

use crate::{
    cli::{CliError, Output, ago, connect, parse_duration, print_json, redact_url, table, until},
    settings,
};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use smo_jobs::{JobFilter, JobRow, JobState, NewJob, Queue, bench};
use uuid::Uuid;

/// smo-admin — operate smo's durable job queue, its API tokens and its audit log.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// PostgreSQL URL [default: from ~/.smo/config.yaml, else the scripts/dev-db server]
    #[arg(long, env = "SMO_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect and act on jobs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Counts per kind × state, throughput over the last minute, oldest queued age.
    Stats,
    /// Workers with their last heartbeat and the jobs they hold.
    Workers {
        /// Include stopped and lost workers.
        #[arg(long)]
        all: bool,
    },
    /// The cron entries and their next runs.
    Cron,
    /// The API's tokens: create (shown once), list, revoke.
    #[command(subcommand)]
    Tokens(super::teams::TokensCmd),
    /// The audit log: who changed what, newest first.
    Audit(super::teams::AuditArgs),
    /// Measure enqueue and processing throughput and enqueue→start latency, next to plain
    /// apalis-postgres. Uses a scratch database `<db>_bench` on the same server.
    Bench(BenchArgs),
    /// Serve apalis-board, apalis's own queue UI (at `/`) and REST API (at `/api/v1`), over this
    /// database until Ctrl-C. One apalis queue per job kind known at start.
    Board {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum JobsCmd {
    /// List jobs, newest first.
    List {
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only this state: queued, retrying, running, succeeded, dead, cancelled.
        #[arg(long)]
        state: Option<JobState>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Everything about one job: arguments, attempts, errors, timings.
    Show {
        /// Job id.
        id: Uuid,
    },
    /// Run a dead, cancelled or retrying job again now, with fresh attempts.
    Retry {
        /// Job id.
        id: Uuid,
    },
    /// Cancel a queued, retrying or running job.
    Cancel {
        /// Job id.
        id: Uuid,
    },
    /// Delete finished jobs.
    Purge {
        /// States to purge (comma-separated): succeeded, dead, cancelled.
        #[arg(long, value_delimiter = ',', required = true)]
        state: Vec<JobState>,
        /// Only jobs finished longer ago than this (e.g. 7d, 12h, 0s).
        #[arg(long, value_parser = parse_duration, default_value = "7d")]
        older_than: std::time::Duration,
    },
    /// Enqueue a job by kind with JSON arguments (e.g. `noop`).
    Enqueue {
        /// Job kind.
        kind: String,
        /// JSON arguments.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Unique key: refused (the live job is returned) while another job with it is live.
        #[arg(long)]
        unique_key: Option<String>,
        /// Attempts before the job goes dead.
        #[arg(long, default_value_t = 10)]
        max_attempts: u32,
    },
}

#[derive(Args)]
struct BenchArgs {
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

/// Runs `smo-admin` with the process's arguments.
pub async fn main() -> ExitCode {
    crate::install_crypto_provider();
    crate::cli::quiet_broken_pipe();
    crate::init_tracing("warn");
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(problems)) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let file = settings::load_file().map_err(CliError::Other)?;
    let url = settings::database_url(cli.database_url, &file);
    if let Command::Bench(args) = cli.command {
        return run_bench(&url, args, cli.output).await;
    }
    let pool = connect(&url, 4).await?;
    let q = Queue::new(pool);
    let out = cli.output;
    if let Command::Board { listen } = cli.command {
        return run_board(q, listen).await;
    }
    let audited = super::teams::audited;
    match cli.command {
        Command::Jobs(JobsCmd::List { kind, state, limit }) => {
            let rows = q
                .list(&JobFilter {
                    kind,
                    state,
                    unique_key_prefix: None,
                    limit: Some(limit),
                })
                .await?;
            if out == Output::Json {
                return print_json(&rows);
            }
            let now = Utc::now();
            let mut t = table(&["id", "kind", "state", "attempt", "created", "last error"]);
            for r in &rows {
                t.add_row(vec![
                    r.id.to_string(),
                    r.kind.clone(),
                    state_cell(r, now),
                    format!("{}/{}", r.attempt, r.max_attempts),
                    ago(r.created_at, now),
                    r.last_error().map(|e| truncate(&e, 60)).unwrap_or_default(),
                ]);
            }
            println!("{t}");
            if rows.is_empty() {
                println!("(no jobs)");
            }
        }
        Command::Jobs(JobsCmd::Show { id }) => show(&q.get(id).await?, out)?,
        Command::Jobs(JobsCmd::Retry { id }) => {
            let done = q.retry(id).await;
            audited(q.pool(), "jobs retry", Some(id), None, done.is_ok()).await?;
            report(&done?, out, "queued again")?;
        }
        Command::Jobs(JobsCmd::Cancel { id }) => {
            let done = q.cancel(id).await;
            audited(q.pool(), "jobs cancel", Some(id), None, done.is_ok()).await?;
            report(&done?, out, "cancelled")?;
        }
        Command::Tokens(cmd) => super::teams::tokens(q.pool(), cmd, out).await?,
        Command::Audit(a) => super::teams::audit(q.pool(), a, out).await?,
        Command::Jobs(JobsCmd::Purge { state, older_than }) => {
            let older = chrono::Duration::from_std(older_than)
                .map_err(|e| CliError::Other(e.to_string()))?;
            let n = q.purge(&state, older).await?;
            audited(
                q.pool(),
                "jobs purge",
                None,
                Some(format!(
                    "{n} jobs ({})",
                    state
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                )),
                true,
            )
            .await?;
            if out == Output::Json {
                return print_json(&serde_json::json!({ "purged": n }));
            }
            println!("purged {n} jobs");
        }
        Command::Jobs(JobsCmd::Enqueue {
            kind,
            args,
            unique_key,
            max_attempts,
        }) => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .map_err(|e| CliError::Other(format!("--args: not valid JSON: {e}")))?;
            if kind.trim().is_empty() {
                return Err(CliError::Other("kind: must not be empty".into()));
            }
            let job = NewJob {
                kind,
                args,
                unique_key,
                max_attempts: max_attempts.max(1),
                priority: 0,
                run_at: None,
            };
            let mut conn = q.pool().acquire().await.map_err(smo_jobs::Error::from)?;
            let e = q.enqueue_many_in(&mut conn, &[job]).await?.remove(0);
            drop(conn);
            audited(q.pool(), "jobs enqueue", Some(e.id), None, true).await?;
            if out == Output::Json {
                return print_json(&e);
            }
            if e.created {
                println!("enqueued {}", e.id);
            } else {
                println!("a job with this unique key is already live: {}", e.id);
            }
        }
        Command::Stats => {
            let s = q.stats().await?;
            if out == Output::Json {
                return print_json(&s);
            }
            let mut header = vec!["kind"];
            header.extend(JobState::ALL.iter().map(|s| s.as_str()));
            header.extend(["oldest queued", "done/min"]);
            let mut t = table(&header);
            for k in &s.kinds {
                let mut row = vec![k.kind.clone()];
                row.extend(
                    JobState::ALL
                        .iter()
                        .map(|st| k.states.get(st.as_str()).copied().unwrap_or(0).to_string()),
                );
                row.push(
                    k.oldest_queued_secs
                        .map(|a| format!("{a:.1}s"))
                        .unwrap_or_else(|| "-".into()),
                );
                row.push(k.succeeded_last_minute.to_string());
                t.add_row(row);
            }
            println!("{t}");
            println!(
                "throughput: {:.2} jobs/s over the last minute; oldest queued: {}",
                s.throughput_per_sec,
                s.oldest_queued_secs
                    .map(|a| format!("{a:.1}s"))
                    .unwrap_or_else(|| "none".into())
            );
        }
        Command::Workers { all } => {
            let rows = q.workers(all).await?;
            if out == Output::Json {
                return print_json(&rows);
            }
            let now = Utc::now();
            let mut t = table(&[
                "name",
                "status",
                "last heartbeat",
                "in flight",
                "concurrency",
                "kinds",
            ]);
            for w in &rows {
                let status = match (&w.stopped_at, &w.stop_reason) {
                    (None, _) => "alive".to_string(),
                    (Some(_), Some(r)) => format!("stopped ({r})"),
                    (Some(_), None) => "stopped".into(),
                };
                t.add_row(vec![
                    w.name.clone(),
                    status,
                    ago(w.heartbeat_at, now),
                    w.in_flight.to_string(),
                    w.concurrency.to_string(),
                    w.kinds.join(","),
                ]);
            }
            println!("{t}");
            if rows.is_empty() {
                println!("(no live workers; --all shows stopped ones)");
            }
        }
        Command::Cron => {
            let rows = q.cron_entries().await?;
            if out == Output::Json {
                return print_json(&rows);
            }
            let now = Utc::now();
            let mut t = table(&["name", "schedule", "kind", "next run", "then", "last run"]);
            for c in &rows {
                t.add_row(vec![
                    c.name.clone(),
                    c.schedule.clone(),
                    c.kind.clone(),
                    format!(
                        "{} ({})",
                        c.next_run_at.format("%H:%M:%S"),
                        until(c.next_run_at, now)
                    ),
                    c.then
                        .iter()
                        .map(|t| t.format("%H:%M:%S").to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    c.last_run_at
                        .map(|t| ago(t, now))
                        .unwrap_or_else(|| "never".into()),
                ]);
            }
            println!("{t}");
        }
        Command::Bench(_) | Command::Board { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn state_cell(r: &JobRow, now: chrono::DateTime<Utc>) -> String {
    if r.state.parse() == Ok(JobState::Retrying) {
        format!("retrying ({})", until(r.run_at, now))
    } else {
        r.state.clone()
    }
}

fn truncate(s: &str, n: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() <= n {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(n).collect::<String>())
    }
}

fn report(row: &JobRow, out: Output, what: &str) -> Result<(), CliError> {
    if out == Output::Json {
        return print_json(row);
    }
    println!("job {} ({}) {what}", row.id, row.kind);
    Ok(())
}

fn show(r: &JobRow, out: Output) -> Result<(), CliError> {
    if out == Output::Json {
        return print_json(r);
    }
    let now = Utc::now();
    let ts = |t: Option<chrono::DateTime<Utc>>| {
        t.map(|t| format!("{} ({})", t.to_rfc3339(), ago(t, now)))
            .unwrap_or_else(|| "-".into())
    };
    println!("id:          {}", r.id);
    println!("kind:        {}", r.kind);
    println!("state:       {}", state_cell(r, now));
    println!("attempts:    {} of {}", r.attempt, r.max_attempts);
    println!("priority:    {}", r.priority);
    println!("unique key:  {}", r.unique_key.as_deref().unwrap_or("-"));
    println!("worker:      {}", r.locked_by.as_deref().unwrap_or("-"));
    println!("created:     {}", ts(Some(r.created_at)));
    println!("run at:      {}", ts(Some(r.run_at)));
    println!("started:     {}", ts(r.started_at));
    println!("last start:  {}", ts(r.attempted_at));
    println!("finished:    {}", ts(r.finished_at));
    if let (Some(s), Some(f)) = (r.started_at, r.finished_at) {
        println!(
            "took:        {:.3}s (first start to finish)",
            (f - s).num_milliseconds() as f64 / 1000.0
        );
    }
    println!("args:        {}", r.args);
    let errors = r.errors.as_array().cloned().unwrap_or_default();
    if errors.is_empty() {
        println!("errors:      none");
    } else {
        println!("errors:");
        for e in errors {
            println!(
                "  attempt {} at {}{}: {}",
                e["attempt"],
                e["at"].as_str().unwrap_or("?"),
                if e["permanent"] == true {
                    " (permanent)"
                } else {
                    ""
                },
                e["error"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

async fn run_board(q: Queue, listen: std::net::SocketAddr) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Other(format!("cannot listen on {listen}: {e}")))?;
    let kinds = smo_jobs::board::kinds(&q).await?;
    eprintln!(
        "apalis-board at http://{}/ (API at /api/v1), {} queues: {}",
        listener.local_addr().unwrap_or(listen),
        kinds.len(),
        kinds.join(", ")
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    smo_jobs::board::serve(listener, q, stop).await?;
    Ok(())
}

async fn run_bench(url: &str, args: BenchArgs, out: Output) -> Result<(), CliError> {
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
