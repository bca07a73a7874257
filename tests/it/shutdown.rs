//! The process promises of `smo run`: SIGTERM ends it cleanly (a request in flight is answered,
//! the worker deregisters, the exit code is 0), and the API serves at most
//! `http_max_connections` connections at once (more wait in the backlog, and are served as
//! soon as a slot frees).

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Stdio,
    time::Duration,
};

use smo_sim::{Sim, SimConfig};

use crate::{
    stack::smo_process,
    support::{Proc, free_port, test_db, until, wait_http},
};

/// Reads from `s` until `want` shows or `secs` pass; returns what arrived.
fn read_for(s: &mut TcpStream, secs: u64, want: &str) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(want) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_request_in_flight_deregisters_the_worker_and_exits_zero() {
    smo::install_crypto_provider();
    let db = test_db().await;
    let home = std::env::temp_dir().join(format!("{}-term", db.name));
    std::fs::create_dir_all(&home).unwrap();
    let (sim_addr, _sim) = Sim::new(SimConfig::demo())
        .spawn_on("127.0.0.1:0")
        .expect("sim starts");
    let kubeconfig = home.join("karmada.kubeconfig");
    std::fs::write(
        &kubeconfig,
        smo_sim::kubeconfig_yaml(&format!("http://{sim_addr}")),
    )
    .unwrap();
    let port = free_port();
    let mut smo = Proc(
        smo_process(
            &[
                "run",
                "--role",
                "all",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--karmada-kubeconfig",
                kubeconfig.to_str().unwrap(),
            ],
            &home,
        )
        .env("SMO_DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smo run starts"),
    );
    wait_http(&format!("http://127.0.0.1:{port}/healthz")).await;
    // Workers registered and not stopped (a clean stop records `stopped_at` and its reason).
    let workers = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM smo_jobs.workers WHERE stopped_at IS NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    until("the worker to register", 60, || async {
        workers().await == 1
    })
    .await;

    // A deploy whose body is half sent when SIGTERM arrives.
    let body = crate::support::example("hello.yaml");
    let mut req = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        req,
        "POST /project/demo/graphs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    req.write_all(&body[..half]).unwrap();
    req.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = smo.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    req.write_all(&body[half..]).unwrap();
    let answer = tokio::task::block_in_place(|| read_for(&mut req, 30, "\r\n\r\n"));
    assert!(
        answer.starts_with("HTTP/1.1 202"),
        "the request in flight was answered: {answer:?}"
    );

    // The process ends by itself, with 0, and its worker is gone from the registry.
    let mut status = None;
    for _ in 0..240 {
        if let Some(s) = smo.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = status.expect("smo run exits within 60 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(workers().await, 0, "the worker deregistered on its way out");
    let reasons: Vec<Option<String>> =
        sqlx::query_scalar("SELECT stop_reason FROM smo_jobs.workers")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(reasons, [Some("shutdown".to_string())]);
    // What the answered request promised was recorded.
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM smo_jobs.jobs WHERE kind = 'deploy'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_at_most_max_connections_and_the_next_when_one_closes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = tokio_util::sync::CancellationToken::new();
    let limits = smo::http::HttpLimits {
        // Long enough that the idle connections below hold their slots for the whole test.
        header_read_timeout: Duration::from_secs(120),
        body_read_timeout: Duration::from_secs(30),
        max_connections: 2,
    };
    let ep = poem::endpoint::make_sync(|_| "served");
    let server = tokio::spawn(smo::http::serve(
        listener,
        ep,
        limits,
        stop.clone(),
        Duration::from_secs(1),
    ));
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    tokio::task::block_in_place(|| {
        // Two connections that send nothing take both slots.
        let idle1 = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _idle2 = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Both really are served: a request on a fourth would be, too, without the cap.
        std::thread::sleep(Duration::from_millis(300));
        let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
        third.write_all(get).unwrap();
        let early = read_for(&mut third, 3, "served");
        assert_eq!(
            early, "",
            "a third connection was served while two held both slots"
        );
        drop(idle1);
        let later = read_for(&mut third, 60, "served");
        assert!(
            later.starts_with("HTTP/1.1 200") && later.contains("served"),
            "the waiting connection is served once a slot frees: {later:?}"
        );
    });
    stop.cancel();
    server.await.unwrap().unwrap();
}
