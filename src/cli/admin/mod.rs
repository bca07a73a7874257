//! `smo-admin` (the binary only calls [`main`]): operate smo's job queue — list, inspect, retry, cancel and purge jobs, see
//! statistics, live workers and the cron schedule, and benchmark the engine; manage the API's
//! tokens and read the audit log (`cli::teams`). Every change it makes is audited.

#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "board")]
mod board;

use std::process::ExitCode;

use crate::{
    cli::{CliError, Output, ago, connect, parse_duration, print_json, table, until},
    settings,
};
use chrono::Utc;
use clap::{Parser, Subcommand};
use smo_jobs::{JobFilter, JobRow, JobState, NewJob, Queue};
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
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Serve apalis-board, apalis's own queue UI (at `/`) and REST API (at `/api/v1`), over this
    /// database until Ctrl-C. One apalis queue per job kind known at start.
    #[cfg(feature = "board")]
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
    #[cfg(feature = "bench")]
    if let Command::Bench(args) = cli.command {
        return bench::run_bench(&url, args, cli.output).await;
    }
    let pool = connect(&url, 4).await?;
    let q = Queue::new(pool);
    let out = cli.output;
    #[cfg(feature = "board")]
    if let Command::Board { listen } = cli.command {
        return board::run_board(q, listen).await;
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
        #[cfg(feature = "bench")]
        Command::Bench(_) => unreachable!("handled above"),
        #[cfg(feature = "board")]
        Command::Board { .. } => unreachable!("handled above"),
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
