//! A whole smo in one test process: real PostgreSQL, the simulated federation, the REST API on a
//! free port and a worker — the same pieces `smo run` wires together.

use std::{ops::Deref, path::PathBuf, time::Duration};

use serde::de::DeserializeOwned;
use serde_json::Value;
use smo::{
    federation::Federation,
    reconcile::{self, App},
};
use smo_jobs::{Queue, Worker, testing::fast_worker_config};
use smo_sim::{Sim, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

use crate::support::test_db;

pub struct Stack {
    pub db: smo_jobs::testing::TestDb,
    pub client: Api,
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

    /// Everything, with the worker's Helm runner calling `binary` (a stand-in `helm`).
    pub async fn with_helm(binary: &std::path::Path) -> Stack {
        let make = |kubeconfig: &std::path::Path| smo::federation::helm::HelmRunner {
            binary: binary.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            plain_http: false,
            timeout: Duration::from_secs(30),
        };
        Self::start_full(true, SimConfig::demo(), Some(&make)).await
    }

    /// Everything, with a Helm runner built from the stack's kubeconfig by `helm`.
    pub async fn start_full(
        worker: bool,
        sim: SimConfig,
        helm: Option<&dyn Fn(&std::path::Path) -> smo::federation::helm::HelmRunner>,
    ) -> Stack {
        Self::start_inner(worker, sim, helm, None).await
    }

    /// Everything, with the API (and the console) behind the bearer token `token`; the stack's
    /// SDK client sends it.
    pub async fn with_token(token: &str) -> Stack {
        Self::start_inner(true, SimConfig::demo(), None, Some(token.to_string())).await
    }

    /// Everything, with the worker's failover settings (thresholds of a second, say).
    pub async fn with_failover(failover: smo::settings::FailoverSettings) -> Stack {
        Self::start_inner_with(true, SimConfig::demo(), None, None, failover).await
    }

    async fn start_inner(
        worker: bool,
        sim: SimConfig,
        helm: Option<&dyn Fn(&std::path::Path) -> smo::federation::helm::HelmRunner>,
        token: Option<String>,
    ) -> Stack {
        Self::start_inner_with(worker, sim, helm, token, Default::default()).await
    }

    async fn start_inner_with(
        worker: bool,
        sim: SimConfig,
        helm: Option<&dyn Fn(&std::path::Path) -> smo::federation::helm::HelmRunner>,
        token: Option<String>,
        failover: smo::settings::FailoverSettings,
    ) -> Stack {
        smo::install_crypto_provider();
        let db = test_db().await;
        // Every write smo makes is checked against Kubernetes' own schemas (and the real CRDs'
        // when ../shared is there), as a real API server checks it.
        let mut sim = sim;
        if sim.schemas.is_empty() {
            sim.schemas = crate::support::real_schemas();
        }
        let sim = Sim::new(sim);
        let (addr, handle) = sim.spawn_on("127.0.0.1:0").expect("sim starts");
        let sim_url = format!("http://{addr}");
        let kubeconfig = std::env::temp_dir().join(format!("{}.kubeconfig", db.name));
        std::fs::write(&kubeconfig, smo_sim::kubeconfig_yaml(&sim_url)).unwrap();
        let federation = Federation::from_kubeconfig(&kubeconfig)
            .await
            .expect("federation client");
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(smo::server::serve_api_on(
            db.pool.clone(),
            listener,
            token.clone(),
            Default::default(),
            Default::default(),
            None,
            stop.clone(),
        ));
        if worker {
            let registry = reconcile::registry(App {
                pool: db.pool.clone(),
                federation: Some(federation.clone()),
                monitoring: Default::default(),
                helm: helm.map(|h| h(&kubeconfig)),
                failover,
            });
            let w = Worker::new(
                Queue::new(db.pool.clone()),
                registry,
                fast_worker_config(&format!("it-{}", db.name)),
            );
            tokio::spawn(w.run(stop.clone()));
        }
        Stack {
            client: Api(smo_sdk::Client::with_config(
                smo_sdk::Config::new(&api).token(token),
            )),
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
        wait_job(&self.client, accepted["job_id"].as_str().expect("job id")).await
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

/// The stack's API client: the SDK (its typed methods through `Deref`), plus by-path helpers on the
/// SDK's raw `request_json` for tests that look at answers as JSON.
#[derive(Clone)]
pub struct Api(pub smo_sdk::Client);

impl Deref for Api {
    type Target = smo_sdk::Client;

    fn deref(&self) -> &smo_sdk::Client {
        &self.0
    }
}

impl Api {
    /// GET `path` (with any query string) as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, smo_sdk::Error> {
        self.0.request_json(smo_sdk::Method::GET, path, None).await
    }

    /// POST `path` without a body.
    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T, smo_sdk::Error> {
        self.0.request_json(smo_sdk::Method::POST, path, None).await
    }

    /// POST `path` with a JSON body.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, smo_sdk::Error> {
        let body = serde_json::to_vec(body).expect("JSON");
        self.0
            .request_json(
                smo_sdk::Method::POST,
                path,
                Some(("application/json", body)),
            )
            .await
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, smo_sdk::Error> {
        self.0
            .request_json(smo_sdk::Method::DELETE, path, None)
            .await
    }

    /// `deployGraph` through the SDK, its answer (accepted job or dry run) as JSON.
    pub async fn deploy(
        &self,
        project: &str,
        body: Vec<u8>,
        dry_run: bool,
    ) -> Result<Value, smo_sdk::Error> {
        let answer = self
            .0
            .deploy_graph(project, dry_run.then_some(true), body)
            .await?;
        Ok(match answer {
            smo_sdk::DeployGraphResponse::Accepted(a) => serde_json::to_value(a),
            smo_sdk::DeployGraphResponse::Ok(d) => serde_json::to_value(d),
        }
        .expect("JSON"))
    }
}

/// Polls job `id` through `client` until it ends (for up to a minute); its final document.
pub async fn wait_job(client: &Api, id: &str) -> Value {
    for _ in 0..1200 {
        let job = serde_json::to_value(client.get_job(id).await.expect("job")).unwrap();
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
