//! A whole smo in one test process: real PostgreSQL, the simulated federation, the REST API on a
//! free port and a worker — the same pieces `smo run` wires together.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;
use smo::{
    client::Client,
    federation::Federation,
    jobs::{self, App},
    sim::{Sim, SimConfig, SimHandle},
};
use smo_jobs::{Queue, Worker, testing::fast_worker_config};
use tokio_util::sync::CancellationToken;

use crate::support::test_db;

pub struct Stack {
    pub db: smo_jobs::testing::TestDb,
    pub client: Client,
    pub api: String,
    pub federation: Federation,
    pub kubeconfig: PathBuf,
    pub sim_url: String,
    pub stop: CancellationToken,
    _sim: SimHandle,
}

impl Stack {
    /// Everything, with an in-process worker.
    pub async fn start() -> Stack {
        Self::start_with(true, SimConfig::demo()).await
    }

    /// Everything; the worker only when `worker` (crash tests run worker processes instead).
    pub async fn start_with(worker: bool, sim: SimConfig) -> Stack {
        Self::start_full(worker, sim, None).await
    }

    /// Everything, with a Helm runner built from the stack's kubeconfig by `helm`.
    pub async fn start_full(
        worker: bool,
        sim: SimConfig,
        helm: Option<&dyn Fn(&std::path::Path) -> smo::federation::helm::HelmRunner>,
    ) -> Stack {
        smo::install_crypto_provider();
        let db = test_db().await;
        let sim = Sim::new(sim);
        let (addr, handle) = sim.spawn_on("127.0.0.1:0").expect("sim starts");
        let sim_url = format!("http://{addr}");
        let kubeconfig = std::env::temp_dir().join(format!("{}.kubeconfig", db.name));
        std::fs::write(&kubeconfig, smo::sim::kubeconfig_yaml(&sim_url)).unwrap();
        let federation = Federation::from_kubeconfig(&kubeconfig)
            .await
            .expect("federation client");
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(smo::server::serve_api_on(
            db.pool.clone(),
            listener,
            None,
            Default::default(),
            stop.clone(),
        ));
        if worker {
            let registry = jobs::registry(App {
                pool: db.pool.clone(),
                federation: Some(federation.clone()),
                monitoring: Default::default(),
                helm: helm.map(|h| h(&kubeconfig)),
            });
            let w = Worker::new(
                Queue::new(db.pool.clone()),
                registry,
                fast_worker_config(&format!("it-{}", db.name)),
            );
            tokio::spawn(w.run(stop.clone()));
        }
        Stack {
            client: Client::new(&api, None),
            api,
            db,
            federation,
            kubeconfig,
            sim_url,
            stop,
            _sim: handle,
        }
    }

    /// Polls a job until it ends; returns its final document.
    pub async fn wait_job(&self, accepted: &Value) -> Value {
        let id = accepted["job_id"].as_str().expect("job id");
        for _ in 0..600 {
            let job: Value = self.client.get(&format!("/jobs/{id}")).await.expect("job");
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "dead" | "cancelled")
            ) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }

    /// Waits for a job and asserts it succeeded.
    pub async fn succeed(&self, accepted: &Value) -> Value {
        let job = self.wait_job(accepted).await;
        assert_eq!(job["state"], "succeeded", "job failed: {job}");
        job
    }

    /// The objects of a graph in the federation: (kind, name), sorted.
    pub async fn objects(&self, project: &str, graph: &str) -> Vec<(String, String)> {
        self.federation
            .list_labelled(project, graph)
            .await
            .expect("list objects")
    }
}

/// Starts `smo` as a separate process with `args`, isolated from the user's config.
pub fn smo_process(args: &[&str], home: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_smo"));
    c.args(args)
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .env_remove("SMO_DATABASE_URL")
        .env_remove("SMO_API_URL");
    c
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}
