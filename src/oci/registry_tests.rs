//! End-to-end tests against a real registry (`docker-registry`, Debian's build of
//! distribution), plus a hanging server for timeouts. A missing binary fails the test (run
//! `scripts/setup`) unless `SMO_SKIP_REGISTRY_TESTS=1` says to skip it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::credentials::Credentials;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const GRAPH: &[u8] = include_bytes!("../../tests/fixtures/oci/graph.yaml");

/// A registry child process and its storage, both gone on drop.
struct LocalRegistry {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `docker-registry serve`, or returns None when the binary is absent and skipping is
/// allowed.
async fn start_registry() -> Option<LocalRegistry> {
    if !std::path::Path::new(REGISTRY_BIN).exists() {
        if std::env::var("SMO_SKIP_REGISTRY_TESTS").as_deref() == Ok("1") {
            // Never under CI=true: there a missing registry fails the test.
            smo_jobs::testing::missing_prerequisite(&format!(
                "{REGISTRY_BIN} (SMO_SKIP_REGISTRY_TESTS=1)"
            ));
            return None;
        }
        panic!(
            "{REGISTRY_BIN} is missing: run scripts/setup (Debian package docker-registry), \
             or set SMO_SKIP_REGISTRY_TESTS=1 to skip"
        );
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("smo-oci-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        dir.join("data").display()
    );
    let cfg = dir.join("config.yml");
    std::fs::write(&cfg, config).expect("config");
    let child = Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn docker-registry");
    let reg = LocalRegistry { child, dir, addr };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = http
            .get(format!("http://{}/v2/", reg.addr))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return Some(reg);
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not come up on {}",
            reg.addr
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn push_then_pull_round_trips_through_a_real_registry() {
    provider();
    let Some(reg) = start_registry().await else {
        return;
    };
    let client = Registry::new(true, Credentials::None).with_timeout(Duration::from_secs(10));
    let r = parse_ref(&format!("oci://{}/hdag/shop:2.1.0", reg.addr)).expect("ref");
    let tgz = package(GRAPH, "shop.yaml").expect("package");

    let digest = client.push_descriptor(&r, &tgz).await.expect("push");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(
        client.pull_descriptor(&r).await.expect("pull by tag"),
        GRAPH
    );

    // Pinned by digest; pushing the same package again gives the same digest.
    let pinned = parse_ref(&format!("oci://{}/hdag/shop@{digest}", reg.addr)).expect("ref");
    assert_eq!(
        client
            .pull_descriptor(&pinned)
            .await
            .expect("pull by digest"),
        GRAPH
    );
    assert_eq!(
        client.push_descriptor(&r, &tgz).await.expect("re-push"),
        digest
    );

    // fetch_source goes the same way.
    let src = parse_source(&pinned.to_string()).expect("source");
    assert_eq!(client.fetch_source(&src).await.expect("fetch"), GRAPH);

    // A missing tag and a missing repository are NotFound, naming what was asked for.
    for missing in ["hdag/shop:9.9.9", "hdag/nothing:1"] {
        let m = parse_ref(&format!("oci://{}/{missing}", reg.addr)).expect("ref");
        let e = client.pull_descriptor(&m).await.expect_err(missing);
        assert!(matches!(e, OciError::NotFound { .. }), "{missing}: {e}");
        assert!(e.to_string().contains(missing), "{e}");
    }

    // A blob larger than the limit is refused from the manifest, before downloading.
    let mut small = Registry::new(true, Credentials::None);
    small.max_blob_bytes = 10;
    let e = small.pull_descriptor(&r).await.expect_err("too large");
    assert!(matches!(e, OciError::TooLarge { limit: 10, .. }), "{e}");

    // Pushing something that is not a package is refused locally.
    let e = client
        .push_descriptor(&r, GRAPH)
        .await
        .expect_err("not a tgz");
    assert!(matches!(e, OciError::BadArchive(_)), "{e}");
}

#[tokio::test]
async fn plain_urls_are_unpacked_or_taken_as_is() {
    provider();
    let Some(reg) = start_registry().await else {
        return;
    };
    // The registry serves blobs at plain URLs: a handy http server holding a tgz.
    let client = Registry::new(true, Credentials::None).with_timeout(Duration::from_secs(10));
    let r = parse_ref(&format!("oci://{}/hdag/url:1", reg.addr)).expect("ref");
    let tgz = package(GRAPH, "g.yml").expect("package");
    client.push_descriptor(&r, &tgz).await.expect("push");
    let tgz_digest = super::client::sha256_digest(&tgz);
    let url = format!("http://{}/v2/hdag/url/blobs/{tgz_digest}", reg.addr);
    assert_eq!(client.fetch_url(&url).await.expect("tgz url"), GRAPH);
    let cfg = format!(
        "http://{}/v2/hdag/url/blobs/{}",
        reg.addr,
        super::client::sha256_digest(b"{}")
    );
    assert_eq!(client.fetch_url(&cfg).await.expect("plain url"), b"{}");
    let e = client
        .fetch_url(&format!("http://{}/nothing.tgz", reg.addr))
        .await
        .expect_err("404");
    assert!(matches!(e, OciError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn a_hanging_registry_times_out_naming_the_url() {
    provider();
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let client = Registry::new(true, Credentials::None).with_timeout(Duration::from_millis(500));
    let r = parse_ref(&format!("oci://{addr}/a/b:c")).expect("ref");
    let started = Instant::now();
    let e = client.pull_descriptor(&r).await.expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, OciError::Timeout { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("{addr}/v2/a/b/manifests/c")),
        "{e}"
    );
    let e = client
        .fetch_url(&format!("http://{addr}/x.tgz"))
        .await
        .expect_err("timeout");
    assert!(matches!(e, OciError::Timeout { .. }), "{e}");
    hold.abort();
}

/// A one-shot HTTP/1.1 server implementing the token dance: the registry answers 401 with a
/// Bearer challenge unless the request carries the token the realm hands out for Basic u:p.
async fn token_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let Ok((mut c, _)) = listener.accept().await else {
                break;
            };
            let mut buf = vec![0u8; 8192];
            let n = c.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = req.lines().next().unwrap_or_default().to_string();
            let auth = req
                .lines()
                .find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or(l.strip_prefix("Authorization: "))
                })
                .unwrap_or_default()
                .to_string();
            seen.push(format!("{line} | {auth}"));
            let (status, extra, body) = if line.contains("/token?") {
                // base64("u:p")
                if auth == "Basic dTpw" && line.contains("scope=repository%3Aa%2Fb%3Apull") {
                    ("200 OK", String::new(), r#"{"token":"T0K"}"#)
                } else {
                    ("401 Unauthorized", String::new(), "{}")
                }
            } else if auth == "Bearer T0K" {
                ("404 Not Found", String::new(), "{}")
            } else {
                (
                    "401 Unauthorized",
                    format!(
                        "WWW-Authenticate: Bearer realm=\"http://{addr}/token\",service=\"test\",scope=\"repository:a/b:pull\"\r\n"
                    ),
                    "{}",
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(resp.as_bytes()).await;
            let _ = c.shutdown().await;
        }
        seen
    });
    (addr, task)
}

#[tokio::test]
async fn bearer_challenges_fetch_a_token_with_basic_credentials_and_retry() {
    provider();
    let (addr, task) = token_server().await;
    let client = Registry::new(
        true,
        Credentials::Basic {
            user: "u".into(),
            password: "p".into(),
        },
    )
    .with_timeout(Duration::from_secs(5));
    let r = parse_ref(&format!("oci://{addr}/a/b:c")).expect("ref");
    // 401 → token → retry with the token → 404: NotFound proves the retry was authorized.
    let e = client.pull_descriptor(&r).await.expect_err("not found");
    assert!(matches!(e, OciError::NotFound { .. }), "{e}");
    let seen = task.await.expect("server");
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].ends_with("| Basic dTpw"), "{seen:?}");
    assert!(
        seen[1].contains("/token?") && seen[1].contains("service=test"),
        "{seen:?}"
    );
    assert!(seen[2].ends_with("| Bearer T0K"), "{seen:?}");
}

#[tokio::test]
async fn refused_credentials_are_unauthorized() {
    provider();
    let (addr, _task) = token_server().await;
    let client = Registry::new(
        true,
        Credentials::Basic {
            user: "u".into(),
            password: "wrong".into(),
        },
    )
    .with_timeout(Duration::from_secs(5));
    let r = parse_ref(&format!("oci://{addr}/a/b:c")).expect("ref");
    let e = client.pull_descriptor(&r).await.expect_err("denied");
    assert!(matches!(e, OciError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("credentials"), "{e}");
}
