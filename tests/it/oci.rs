//! Deploy by reference: `smo graph push` puts a packaged descriptor into a real OCI registry
//! (Debian's docker-registry, started here on loopback), `POST /project/{p}/graphs` with
//! `{"artifact": "oci://…"}` pulls it natively and the graph runs on the sim.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::stack::{Stack, smo_process};

pub(crate) struct Registry {
    child: Child,
    dir: PathBuf,
    pub addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `smo args` from a blocking section (the stack's API runs on this runtime) and asserts
/// it succeeded.
fn smo_ok(args: &[&str], home: &std::path::Path) -> std::process::Output {
    let out = tokio::task::block_in_place(|| smo_process(args, home).output().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) async fn start_registry() -> Registry {
    smo::install_crypto_provider();
    let bin = "/usr/bin/docker-registry";
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} is missing: run scripts/setup (Debian package docker-registry)"
    );
    let dir =
        std::env::temp_dir().join(format!("smo-it-registry-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    let reg = Registry { child, dir, addr };
    for _ in 0..200 {
        if reqwest::get(format!("http://{}/v2/", reg.addr))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return reg;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("docker-registry never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_descriptor_deploys_by_reference_and_bad_references_store_nothing() {
    let reg = start_registry().await;
    let s = Stack::start().await;
    let home = std::env::temp_dir().join(format!("{}-oci", s.db.name));
    std::fs::create_dir_all(&home).unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/graphs/hello.yaml");
    let reference = format!("oci://{}/graphs/hello:1.0.0", reg.addr);

    // Package, then push with the CLI: no hdarctl, no helm.
    let tgz = home.join("hello.tgz");
    smo_ok(
        &["graph", "package", example, "-O", tgz.to_str().unwrap()],
        &home,
    );
    let out = smo_ok(&["graph", "push", tgz.to_str().unwrap(), &reference], &home);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sha256:"));

    // Deploy by reference through the API.
    let body = serde_json::to_vec(&serde_json::json!({ "artifact": reference })).unwrap();
    let accepted = s.client.deploy("byref", body, false).await.unwrap();
    s.succeed(&accepted).await;
    let g: Value = s.client.get("/graphs/hello").await.unwrap();
    assert_eq!(g["status"], "Running");
    assert_eq!(s.objects("byref", "hello").await.len(), 3);

    // The CLI takes a reference in place of a file.
    smo_ok(
        &[
            "--api-url",
            &s.api,
            "graph",
            "deploy",
            &reference,
            "-p",
            "byref",
            "--wait",
        ],
        &home,
    );

    // A missing tag, a registry that is not there, garbage: clear errors, nothing stored.
    for (artifact, status) in [
        (format!("oci://{}/graphs/hello:9.9.9", reg.addr), 422),
        ("oci://127.0.0.1:9/graphs/x:1".to_string(), 502),
        ("not a reference".to_string(), 422),
    ] {
        let body = serde_json::to_vec(&serde_json::json!({ "artifact": artifact })).unwrap();
        let err = s.client.deploy("other", body, false).await.unwrap_err();
        assert!(
            matches!(&err, smo_sdk::Error::Api { status: st, .. } if *st == status),
            "{artifact}: {err}"
        );
    }
    let graphs: Vec<Value> = s.client.get("/project/other/graphs").await.unwrap();
    assert!(graphs.is_empty());
    let _ = std::fs::remove_dir_all(&home);
}
