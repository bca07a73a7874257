//! `smo status` and `smo cluster …`.

use clap::Subcommand;
use serde_json::json;
use smo_sdk::Client;

use crate::cli::Output;

#[derive(Subcommand)]
pub(super) enum ClusterCmd {
    /// Refresh clusters from Karmada (a `cluster-sync` job).
    Sync {
        /// Wait for the job to finish.
        #[arg(long)]
        wait: bool,
    },
    /// List clusters with free capacity.
    List,
    /// Health history: Ready transitions, a cluster lost and the failover that moved its
    /// graphs, back and the fail-back (newest first).
    History {
        /// Only this cluster's.
        cluster: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// `smo status`: three questions to the API (live? ready? the queue?), one line each.
pub(super) async fn status(client: &Client, api_url: &str, out: Output) -> anyhow::Result<u8> {
    client.healthz().await?;
    let ready = match client.readyz().await {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(503) => Err(e
            .problem()
            .map(|p| p.detail.clone())
            .unwrap_or_else(|| e.to_string())),
        Err(e) => return Err(e.into()),
    };
    // The queue is read from /metrics, which a viewer's or deployer's token may not read: then
    // say so, and judge by readiness alone.
    let health = match client.metrics().await {
        Ok(text) => Some(crate::metrics::QueueHealth::from_exposition(&text)),
        Err(e) if e.status() == Some(403) => None,
        Err(e) => return Err(e.into()),
    };
    let healthy = ready.is_ok() && health.as_ref().is_none_or(|h| h.workers_alive > 0);
    let Some(health) = health else {
        const HIDDEN: &str = "not visible to this token: /metrics needs the metrics or admin role";
        if out == Output::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "api": api_url,
                    "ready": ready.is_ok(),
                    "not_ready_because": ready.as_ref().err(),
                    "workers_alive": null,
                    "waiting": null,
                    "queue": HIDDEN,
                    "healthy": healthy,
                }))?
            );
        } else {
            println!("api       {api_url}: up");
            match &ready {
                Ok(()) => println!("database  ready"),
                Err(why) => println!("database  NOT ready: {why}"),
            }
            println!("workers   {HIDDEN}");
        }
        return Ok(u8::from(!healthy));
    };
    if out == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "api": api_url,
                "ready": ready.is_ok(),
                "not_ready_because": ready.as_ref().err(),
                "workers_alive": health.workers_alive,
                "waiting": health.waiting.iter().map(|(k, (n, age))| {
                    (k.clone(), json!({ "jobs": n, "oldest_seconds": age }))
                }).collect::<serde_json::Map<_, _>>(),
                "healthy": healthy,
            }))?
        );
        return Ok(u8::from(!healthy));
    }
    println!("api       {api_url}: up");
    match &ready {
        Ok(()) => println!("database  ready"),
        Err(why) => println!("database  NOT ready: {why}"),
    }
    match health.workers_alive {
        0 => println!(
            "workers   none alive: jobs wait until a worker runs (`smo run --role worker`)"
        ),
        n => println!("workers   {n} alive"),
    }
    if health.waiting.is_empty() {
        println!("queue     nothing waiting");
    } else {
        let total: u64 = health.waiting.values().map(|(n, _)| n).sum();
        let oldest = health.waiting.values().map(|(_, a)| *a).fold(0.0, f64::max);
        let per_kind: Vec<String> = health
            .waiting
            .iter()
            .map(|(k, (n, _))| format!("{k} {n}"))
            .collect();
        println!(
            "queue     {total} waiting ({}); oldest {oldest:.1}s",
            per_kind.join(", ")
        );
    }
    Ok(u8::from(!healthy))
}
