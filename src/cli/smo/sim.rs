//! `smo sim`: the simulated Karmada federation (and its load generator).

use std::{path::PathBuf, time::Duration};

use clap::Subcommand;

#[derive(clap::Args)]
pub(super) struct SimArgs {
    #[command(subcommand)]
    cmd: Option<SimCmd>,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// Member clusters (YAML: `clusters: [{name, cpu, memory, gpus, labels, ready}]`) [default: three demo clusters]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write the kubeconfig smo uses to reach the sim.
    #[arg(long, default_value_t = default_sim_kubeconfig())]
    kubeconfig_out: String,
    /// A directory of CustomResourceDefinition files (Karmada, MCS, Prometheus operator): their
    /// schemas are served in /openapi/v3, so `kubectl explain` works [default: open schemas]
    #[arg(long)]
    crds: Option<PathBuf>,
    /// Kubernetes' own schemas of the built-in kinds: a `kubernetes-json-schema/v1.37.0-local`
    /// directory of the kubernetes-validate package (scripts/setup installs it under
    /// target/py); served in /openapi/v3, so `kubectl explain deployment.spec` works [default:
    /// open schemas]
    #[arg(long)]
    kubernetes_schemas: Option<PathBuf>,
    /// Keep the federation's objects in FILE across restarts (read at start, written within a
    /// second of every change) [default: in memory only]
    #[arg(long)]
    state: Option<PathBuf>,
    /// Delay every write by this long (`150ms`, `2s`), as a loaded API server would: makes a
    /// deploy slow enough to interrupt in tests and demos.
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "0ms")]
    write_latency: Duration,
}

#[derive(Subcommand)]
enum SimCmd {
    /// Set the synthetic request rate of a service (its Deployment name) in a running sim.
    Load {
        /// Deployment name (`<graph>-<service>`).
        service: String,
        /// Requests per second.
        rate: f64,
        /// Namespace (= project).
        #[arg(long, short)]
        namespace: String,
        /// The sim's URL.
        #[arg(long, default_value = "http://127.0.0.1:6443")]
        sim_url: String,
    },
}

fn default_sim_kubeconfig() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    format!("{home}/.smo/karmada-sim.kubeconfig")
}

pub(super) async fn sim(a: SimArgs) -> anyhow::Result<u8> {
    if let Some(SimCmd::Load {
        service,
        rate,
        namespace,
        sim_url,
    }) = a.cmd
    {
        if !rate.is_finite() || rate < 0.0 {
            anyhow::bail!("rate: must be a finite number >= 0, got {rate}");
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/sim/load", sim_url.trim_end_matches('/')))
            .json(&serde_json::json!({"service": service, "namespace": namespace, "rate": rate}))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the sim at {sim_url}: {e}"))?;
        if !resp.status().is_success() {
            anyhow::bail!("the sim refused: {}", resp.text().await.unwrap_or_default());
        }
        println!("{namespace}/{service}: {rate} requests/s");
        return Ok(0);
    }
    let config = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            smo_sim::SimConfig::from_yaml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => smo_sim::SimConfig::demo(),
    };
    let mut config = config;
    config.state_file = a.state.clone();
    config.write_latency_ms = u64::try_from(a.write_latency.as_millis()).unwrap_or(u64::MAX);
    let mut schemas = std::collections::BTreeMap::new();
    if let Some(dir) = &a.crds {
        schemas = smo_sim::crd_schemas(dir)
            .map_err(|e| anyhow::anyhow!("--crds {}: {e}", dir.display()))?;
    }
    if let Some(dir) = &a.kubernetes_schemas {
        schemas.extend(
            smo_sim::kubernetes_schemas(dir)
                .map_err(|e| anyhow::anyhow!("--kubernetes-schemas {}: {e}", dir.display()))?,
        );
    }
    if !schemas.is_empty() {
        config.schemas = std::sync::Arc::new(schemas);
    }
    let listener = std::net::TcpListener::bind(&a.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", a.listen))?;
    let addr = listener.local_addr()?;
    let path = PathBuf::from(&a.kubeconfig_out);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, smo_sim::kubeconfig_yaml(&format!("http://{addr}")))?;
    eprintln!(
        "smo sim: {} member clusters ({}) on http://{addr}; kubeconfig written to {}",
        config.clusters.len(),
        config
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        path.display()
    );
    let shutdown = crate::server::shutdown_on_signals();
    smo_sim::serve(
        smo_sim::Sim::new(config),
        listener,
        shutdown.cancelled_owned(),
    )
    .await?;
    Ok(0)
}
