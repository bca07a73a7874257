//! The integration tests' harness.

pub mod browser;
pub mod crd;
pub mod netns;

use std::{
    path::{Path, PathBuf},
    process::Child,
    time::Duration,
};

/// `../shared` beside the checkout, when present (CI always has it: there its absence fails the
/// test, see [`require`]).
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    require(
        &format!("{} (beside the checkout)", dir.display()),
        dir.is_dir(),
    )
    .then_some(dir)
}

/// True when the test may run: `available`, or else (after saying so) false, and under
/// `CI=true` a failure naming `what` instead — no test passes in CI without running.
pub fn require(what: &str, available: bool) -> bool {
    if !available {
        smo_jobs::testing::missing_prerequisite(what);
    }
    available
}

/// A fixture of this repository.
pub fn fixture(path: &str) -> Vec<u8> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fresh database with the engine's and smo's migrations.
pub async fn test_db() -> smo_jobs::testing::TestDb {
    smo_jobs::testing::TestDb::with_template(
        &format!("smo_{}", smo_migrations_key()),
        |pool| async move { smo::server::migrate(&pool).await.map_err(|e| e.to_string()) },
    )
    .await
}

fn smo_migrations_key() -> String {
    // The template must change whenever smo's migrations do.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        for b in std::fs::read(&f).unwrap_or_default() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// An example graph of `examples/graphs/`.
pub fn example(name: &str) -> Vec<u8> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/graphs")).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn binary(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

pub async fn wait_http(url: &str) {
    for _ in 0..200 {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

pub async fn until<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {secs}s waiting for {what}");
}

/// Starts the real Prometheus (Debian package) on a free loopback port with `config` as its
/// prometheus.yml in `dir`; returns the process (killed on drop) and its base URL.
pub fn spawn_prometheus(dir: &Path, config: &str) -> (Proc, String) {
    spawn_prometheus_with(dir, config, &[])
}

/// [`spawn_prometheus`] with extra command-line arguments (e.g. `--web.config.file=…`).
pub fn spawn_prometheus_with(dir: &Path, config: &str, extra: &[String]) -> (Proc, String) {
    let Some(bin) = binary("prometheus") else {
        panic!("prometheus is required: run scripts/setup");
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let child = std::process::Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-lifecycle")
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus starts");
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// True for the kinds Kubernetes itself defines (core and `*.k8s.io` groups, apps, batch, …):
/// the ones the real schemas of kubernetes-validate describe. Custom kinds (Karmada, MCS,
/// prometheus-operator) are checked against their CRDs instead.
pub fn is_built_in(object: &serde_json::Value) -> bool {
    let api = object["apiVersion"].as_str().unwrap_or_default();
    match api.split_once('/') {
        None => !api.is_empty(),
        Some((group, _)) => {
            !group.contains('.')
                || group.ends_with(".k8s.io") && !group.starts_with("multicluster.")
        }
    }
}

/// Validates every object against the real Kubernetes 1.37 JSON schemas, strictly (unknown fields
/// refused), with kubernetes-validate (the PyPI package scripts/setup installs); panics with its
/// report on any failure, or when an object was not checked at all.
pub fn validate_against_kubernetes(objects: &[serde_json::Value]) {
    let bin = std::env::var("SMO_KUBERNETES_VALIDATE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/py/bin/kubernetes-validate"
        )
        .to_string()
    });
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} is missing: run scripts/setup (it installs kubernetes-validate into a venv)"
    );
    assert!(!objects.is_empty(), "nothing to validate");
    let dir = std::env::temp_dir().join(format!(
        "smo-k8s-validate-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        assert!(is_built_in(o), "not a built-in kind: {o}");
        let f = dir.join(format!("{i:04}.json"));
        std::fs::write(&f, serde_json::to_vec_pretty(o).unwrap()).unwrap();
        files.push(f);
    }
    let out = std::process::Command::new(&bin)
        .args(["--strict", "-k", "1.37.0"])
        .args(&files)
        .output()
        .expect("kubernetes-validate runs");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "kubernetes-validate refused:\n{report}"
    );
    let passed = report
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(
        passed,
        objects.len(),
        "not every object was validated:\n{report}"
    );
}

/// The kubernetes-validate package's `v1.37.0-local` schema directory in the venv scripts/setup
/// makes (whatever Python minor version made it).
pub fn kubernetes_schema_dir() -> PathBuf {
    let lib = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/py/lib"));
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup", lib.display()))
        .filter_map(Result::ok)
        .map(|e| {
            e.path()
                .join("site-packages/kubernetes_validate/kubernetes-json-schema/v1.37.0-local")
        })
        .find(|p| p.is_dir())
        .expect("kubernetes-validate is installed in target/py: run scripts/setup")
}

/// Kubernetes' own schemas of the built-in kinds and, when `../shared` is beside the checkout,
/// the real CRDs' schemas: what a Stack's sim validates writes against. Loaded once, shared by
/// every sim.
pub fn real_schemas() -> std::sync::Arc<std::collections::BTreeMap<String, serde_json::Value>> {
    static SCHEMAS: std::sync::OnceLock<
        std::sync::Arc<std::collections::BTreeMap<String, serde_json::Value>>,
    > = std::sync::OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            let mut s = smo_sim::kubernetes_schemas(&kubernetes_schema_dir())
                .expect("Kubernetes' schemas load");
            let crds = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/crds"));
            if crds.is_dir() {
                s.extend(smo_sim::crd_schemas(&crds).expect("the CRDs load"));
            }
            std::sync::Arc::new(s)
        })
        .clone()
}
