//! `smo`: the orchestrator's command line and its server roles.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use smo::{
    cli::{connect, parse_duration},
    server::{self, Role},
    settings::{self, ServerSettings},
};

/// smo — deploy application graphs onto a Karmada federation.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// PostgreSQL URL [default: from ~/.smo/config.yaml, else the scripts/dev-db server]
    #[arg(long, env = "SMO_DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run server roles until SIGTERM: api, worker, scheduler, or all.
    Run {
        /// Roles to run (repeatable or comma-separated).
        #[arg(
            long = "role",
            value_enum,
            value_delimiter = ',',
            default_value = "all"
        )]
        roles: Vec<Role>,
        /// API listen address.
        #[arg(long, env = "SMO_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Jobs this worker runs at once.
        #[arg(long, env = "SMO_WORKER_CONCURRENCY", default_value_t = 64)]
        concurrency: usize,
        /// Jobs claimed per fetch.
        #[arg(long, env = "SMO_WORKER_BATCH", default_value_t = 256)]
        batch: usize,
        /// Worker name prefix; the host (pod) name, pid and a random suffix are appended.
        #[arg(long, env = "SMO_WORKER_PREFIX", default_value = "smo")]
        worker_prefix: String,
        /// Finished jobs are pruned after this long (e.g. 7d, 12h).
        #[arg(long, env = "SMO_RETENTION", default_value = "7d", value_parser = parse_duration)]
        retention: std::time::Duration,
        /// On SIGTERM, in-flight jobs may take this long before being handed back.
        #[arg(long, env = "SMO_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
        shutdown_grace: std::time::Duration,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML) of the REST API.
    Openapi,
}

#[tokio::main]
async fn main() -> ExitCode {
    smo::install_crypto_provider();
    smo::init_tracing("info");
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = settings::load_file().map_err(anyhow::Error::msg)?;
    let database_url = settings::database_url(cli.database_url, &file);
    match cli.command {
        Command::Run {
            roles,
            listen,
            concurrency,
            batch,
            worker_prefix,
            retention,
            shutdown_grace,
        } => {
            let settings = ServerSettings {
                database_url,
                listen,
                worker_concurrency: concurrency,
                worker_batch: batch,
                worker_prefix,
                retention,
                shutdown_grace,
            };
            server::run(settings, &roles, server::shutdown_on_signals()).await
        }
        Command::Migrate => {
            let pool = connect(&database_url, 2).await?;
            server::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Openapi => {
            let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy(&database_url)?;
            print!("{}", server::api_service(pool).spec_yaml());
            Ok(())
        }
    }
}
