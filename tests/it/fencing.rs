//! Partitions and pauses across real network hosts (network namespaces made here): PostgreSQL,
//! the sim and two worker processes each on a host of their own, the API in the test process.
//! A worker is cut off (from PostgreSQL; from the sim and then PostgreSQL) or paused mid-deploy
//! for longer than its lease, the other worker takes the job over and finishes, the link heals.
//! Then: the federation holds exactly what the newest attempt decided, the stale worker's
//! writes all reached the sim before its renew deadline (or were refused by the fence policy),
//! the two attempts never interleaved, and nothing was lost.

use std::{path::PathBuf, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::Value;
use smo::federation::Federation;
use smo_sim::WriteRecord;

use crate::{
    crash::many_services,
    stack::{Api, wait_job},
    support::netns::{Host, Net, signal},
};

/// The workers' heartbeat: lease 1.5 s (× 3), renew deadline 1 s (two thirds of it).
const HEARTBEAT: &str = "500ms";
const RENEW_DEADLINE: Duration = Duration::from_millis(1000);
/// Time between a lease check passing and the request being logged by the sim (one veth hop).
const IN_FLIGHT: Duration = Duration::from_millis(150);
const SERVICES: usize = 12;

struct Cluster {
    net: Net,
    pg: Host,
    sim: Host,
    w1: Host,
    w2: Host,
    db_url: String,
    sim_url: String,
    kubeconfig: PathBuf,
    client: Api,
    federation: Federation,
    http: reqwest::Client,
    _api: tokio_util::sync::DropGuard,
}

fn smo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_smo"))
}

impl Cluster {
    /// The hosts, or `None` where network namespaces cannot be made: `Net::new` says so through
    /// `support::require`, which fails the test instead under `CI=true`.
    async fn start() -> Option<Cluster> {
        smo::install_crypto_provider();
        let mut net = Net::new()?;
        let (pg, sim, w1, w2) = (
            net.host("pg", 2),
            net.host("sim", 3),
            net.host("w1", 4),
            net.host("w2", 5),
        );
        let db_url = net.postgres(&pg);
        let home = net.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let kubeconfig = net.dir.join("sim.kubeconfig");
        let mut cmd = net.command(&sim, &smo_bin());
        cmd.args(["sim", "--listen", &format!("{}:6443", sim.ip)])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(["--write-latency", "150ms"])
            .env("HOME", &home)
            .env("RUST_LOG", "warn");
        net.spawn(cmd);
        let sim_url = format!("http://{}:6443", sim.ip);

        let pool = connect(&db_url).await;
        smo::server::migrate(&pool).await.expect("migrations");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if kubeconfig.exists()
                && http
                    .get(format!("{sim_url}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let federation = Federation::from_kubeconfig(&kubeconfig)
            .await
            .expect("sim kubeconfig");
        let stop = tokio_util::sync::CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(smo::server::serve_api_on(
            pool,
            listener,
            None,
            Default::default(),
            Default::default(),
            None,
            stop.clone(),
        ));
        Some(Cluster {
            net,
            pg,
            sim,
            w1,
            w2,
            db_url,
            sim_url,
            kubeconfig,
            client: Api(smo_sdk::Client::with_config(smo_sdk::Config::new(&api))),
            federation,
            http,
            _api: stop.drop_guard(),
        })
    }

    /// Starts a worker process on `host`; its name (and User-Agent) begins with the host's name.
    fn worker(&mut self, host: &Host) -> u32 {
        let home = self.net.dir.join(format!("home-{}", host.name));
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = self.net.command(host, &smo_bin());
        cmd.args(["run", "--role", "worker", "--database-url", &self.db_url])
            .arg("--karmada-kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--heartbeat-interval", HEARTBEAT])
            .args(["--worker-prefix", &host.name])
            .env("HOME", &home)
            .env("RUST_LOG", "warn")
            .env_remove("SMO_DATABASE_URL")
            .env_remove("SMO_API_URL");
        self.net.spawn(cmd)
    }

    async fn writes(&self) -> Vec<WriteRecord> {
        self.http
            .get(format!("{}/sim/writes", self.sim_url))
            .send()
            .await
            .expect("sim reachable")
            .json()
            .await
            .expect("write log")
    }

    /// Writes of the worker on `host` to the graph's namespace.
    async fn writes_of(&self, host: &Host) -> Vec<WriteRecord> {
        let tag = format!("({}-", host.name);
        self.writes()
            .await
            .into_iter()
            .filter(|w| w.source.contains(&tag) && w.path.contains("/namespaces/fence"))
            .collect()
    }

    /// Waits until the worker on `host` has written at least `n` objects of the graph.
    async fn until_written(&self, host: &Host, n: usize) {
        for _ in 0..600 {
            if self.writes_of(host).await.len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} never wrote {n} objects", host.name);
    }

    /// The fencing token on a live object of the graph.
    async fn token_of(&self, kind_path: &str, name: &str) -> i64 {
        let v: Value = self
            .http
            .get(format!("{}{kind_path}/{name}", self.sim_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["metadata"]["annotations"][smo::federation::FENCE_ANNOTATION]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no fencing token on {v}"))
    }

    async fn wait_job(&self, id: &str) -> Value {
        wait_job(&self.client, id).await
    }

    /// Deploys the test graph; returns the job id.
    async fn deploy(&self) -> String {
        let answer = self
            .client
            .deploy_graph("fence", None, many_services(SERVICES))
            .await
            .expect("deploy accepted");
        let smo_sdk::DeployGraphResponse::Accepted(a) = answer else {
            panic!("not accepted")
        };
        serde_json::to_value(a).unwrap()["job_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// What every scenario must end with, once the stale worker (`w1`) is back.
    async fn verify(&self, job: &str, stale_token: i64, stale_deadline: DateTime<Utc>) {
        let job = self.wait_job(job).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert!(
            job["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["lost"] == true)),
            "the first attempt was lost: {job}"
        );

        // The federation holds exactly the newest attempt's objects, all written under its token.
        let objects = self
            .federation
            .list_labelled("fence", "wide")
            .await
            .unwrap();
        let mut expected: Vec<(String, String)> = (0..SERVICES)
            .flat_map(|i| {
                ["Deployment", "PropagationPolicy", "Service"]
                    .map(|k| (k.to_string(), format!("wide-s{i}")))
            })
            .collect();
        expected.sort();
        assert_eq!(objects, expected);
        // The write log, in the order the sim applied the writes: each object created once,
        // written once per attempt, never with an older token after a newer one; the stale
        // attempt's writes all under its token, and none after the new attempt's first.
        let log = self.writes().await;
        let attempts = crate::crash::check_writes(&log, "fence", &expected);
        assert_eq!(attempts[0], stale_token, "{attempts:?}");
        for w in log
            .iter()
            .filter(|w| w.namespace == "fence" && w.fence.is_some())
        {
            if w.source.contains(&format!("({}-", self.w1.name)) {
                assert_eq!(w.fence, Some(stale_token), "{w:?}");
            } else {
                assert!(w.fence > Some(stale_token), "{w:?}");
            }
        }
        let mut tokens = Vec::new();
        for i in 0..SERVICES {
            let name = format!("wide-s{i}");
            tokens.push(
                self.token_of("/apis/apps/v1/namespaces/fence/deployments", &name)
                    .await,
            );
            tokens.push(
                self.token_of("/api/v1/namespaces/fence/services", &name)
                    .await,
            );
            tokens.push(
                self.token_of(
                    "/apis/policy.karmada.io/v1alpha1/namespaces/fence/propagationpolicies",
                    &name,
                )
                .await,
            );
        }
        tokens.dedup();
        assert_eq!(tokens.len(), 1, "one writer's token everywhere: {tokens:?}");
        assert!(
            tokens[0] > stale_token,
            "the newest holder wrote last: {} vs {stale_token}",
            tokens[0]
        );

        // The stale worker: every write it got accepted arrived before its renew deadline; the
        // new worker's writes all came after the stale one's last.
        let stale = self.writes_of(&self.w1).await;
        let fresh = self.writes_of(&self.w2).await;
        let accepted = |w: &WriteRecord| w.status < 400;
        let limit = stale_deadline + chrono::Duration::from_std(IN_FLIGHT).unwrap();
        for w in stale.iter().filter(|w| accepted(w)) {
            assert!(
                received(w) <= limit,
                "the stale worker wrote after its renew deadline ({stale_deadline}): {w:?}"
            );
        }
        for w in stale.iter().filter(|w| !accepted(w)) {
            assert_eq!(w.status, 403, "only the fence refuses a stale write: {w:?}");
        }
        let last_stale = stale
            .iter()
            .filter(|w| accepted(w))
            .map(received)
            .max()
            .unwrap();
        let first_fresh = fresh.iter().map(received).min().expect("w2 wrote");
        assert!(
            first_fresh > last_stale,
            "the attempts interleaved: w2 from {first_fresh}, w1 until {last_stale}"
        );

        // Recorded once, by the newest attempt.
        let g: Value = self.client.get("/graphs/wide").await.unwrap();
        assert_eq!(g["status"], "Running", "{g}");
        let decisions: Vec<Value> = self.client.get("/graphs/wide/history").await.unwrap();
        assert_eq!(
            decisions.iter().filter(|d| d["kind"] == "deploy").count(),
            1,
            "the stale attempt recorded nothing: {decisions:?}"
        );
    }
}

async fn connect(url: &str) -> sqlx::PgPool {
    for _ in 0..200 {
        if let Ok(p) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("PostgreSQL at {url} did not come up");
}

/// When the sim received a write.
fn received(w: &WriteRecord) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&w.received)
        .unwrap()
        .with_timezone(&Utc)
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/fence/deployments";

/// A deploy that w1 alone has begun: the job, w1's fencing token on what it wrote, w1's pid.
struct Begun {
    job: String,
    stale_token: i64,
    w1: u32,
}

impl Cluster {
    async fn begin_on_w1(&mut self) -> Begun {
        let job = self.deploy().await;
        let w1 = self.worker(&self.w1.clone());
        self.until_written(&self.w1, 4).await;
        let stale_token = self.token_of(DEPLOYMENTS, "wide-s0").await;
        Begun {
            job,
            stale_token,
            w1,
        }
    }
}

#[tokio::test]
async fn a_worker_cut_off_from_postgres_stops_writing_at_its_deadline_and_the_other_finishes() {
    let Some(mut c) = Cluster::start().await else {
        return;
    };
    let Begun {
        job, stale_token, ..
    } = c.begin_on_w1().await;

    // The last heartbeat that reached PostgreSQL was sent before this moment, so the stale
    // worker's renew deadline is at most this plus the renew deadline.
    c.net.cut(&c.w1, &c.pg);
    let cut = Utc::now();
    c.worker(&c.w2.clone());
    let done = c.wait_job(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    // w1 still reached the sim: it went on writing until its deadline, not until the cut.
    let after_cut = c
        .writes_of(&c.w1)
        .await
        .iter()
        .filter(|w| received(w) > cut && w.status < 400)
        .count();
    println!("w1 wrote {after_cut} objects between the cut and its deadline");
    assert!(
        after_cut > 0,
        "w1 kept its lease for a while after the cut, and used it"
    );

    c.net.heal(&c.w1, &c.pg);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.verify(&job, stale_token, cut + RENEW_DEADLINE).await;
}

#[tokio::test]
async fn a_write_held_up_in_a_partition_is_refused_by_the_federation_when_it_arrives() {
    let Some(mut c) = Cluster::start().await else {
        return;
    };
    let Begun {
        job, stale_token, ..
    } = c.begin_on_w1().await;

    // First the sim: w1's next write hangs in its socket. Then PostgreSQL: its lease lapses.
    c.net.cut(&c.w1, &c.sim);
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.net.cut(&c.w1, &c.pg);
    let cut = Utc::now();
    c.worker(&c.w2.clone());
    let done = c.wait_job(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");

    // Heal: TCP delivers the held-up write now, long after w1's deadline, carrying w1's older
    // token over objects w2 wrote. The federation must refuse it.
    c.net.heal(&c.w1, &c.sim);
    c.net.heal(&c.w1, &c.pg);
    let mut refused = Vec::new();
    for _ in 0..600 {
        refused = c
            .writes_of(&c.w1)
            .await
            .into_iter()
            .filter(|w| w.status == 403)
            .collect();
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !refused.is_empty(),
        "the held-up write arrived and was refused"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.verify(&job, stale_token, cut + RENEW_DEADLINE).await;
}

#[tokio::test]
async fn a_worker_paused_past_its_lease_wakes_up_fenced() {
    let Some(mut c) = Cluster::start().await else {
        return;
    };
    let Begun {
        job,
        stale_token,
        w1,
    } = c.begin_on_w1().await;

    // What a long GC pause or a VM stall looks like from outside.
    signal(w1, "STOP");
    let paused = Utc::now();
    c.worker(&c.w2.clone());
    let done = c.wait_job(&job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let woke = Utc::now();
    signal(w1, "CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let after_wake: Vec<WriteRecord> = c
        .writes_of(&c.w1)
        .await
        .into_iter()
        .filter(|w| received(w) > woke)
        .collect();
    assert!(
        after_wake.is_empty(),
        "the woken worker wrote again: {after_wake:?}"
    );
    // Paused, it could not even reach its deadline: nothing arrived after the pause began.
    c.verify(&job, stale_token, paused).await;
}
