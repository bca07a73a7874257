//! A worker process killed with SIGKILL in the middle of a deploy: another worker finishes the
//! job, and the federation ends with exactly the objects of the graph — none lost, none twice.
//! "None twice" is read off the sim's write log, not off its store (which keeps one object per
//! name whatever happened): each object created once, written once per attempt, never by an
//! older attempt after a newer one.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write,
    time::Duration,
};

use serde_json::Value;
use smo_sim::{Effect, SimConfig, WriteRecord};

use crate::stack::{Stack, smo_process};

/// A graph `wide` of `n` independent services (3 objects each).
pub(crate) fn many_services(n: usize) -> Vec<u8> {
    let mut y = String::from(
        "hdaGraph:\n  imVersion: 0.4.0\n  id: wide\n  version: \"1.0.0\"\n  services:\n",
    );
    for i in 0..n {
        let _ = write!(
            y,
            "    - id: s{i}\n      deployment:\n        trigger: {{auto: {{dependencies: []}}}}\n        intent:\n          \
             compute: {{cpu: 100m, ram: 64Mi, storage: light, gpu: {{enabled: false}}}}\n      artifact:\n        \
             image: ghcr.io/example/s{i}:1\n        ports: [{{port: 8080}}]\n"
        );
    }
    y.into_bytes()
}

/// The sim's write log (`GET /sim/writes`), in the order the writes were applied.
pub(crate) async fn sim_writes(sim_url: &str) -> Vec<WriteRecord> {
    reqwest::get(format!("{sim_url}/sim/writes"))
        .await
        .expect("sim reachable")
        .json()
        .await
        .expect("write log")
}

/// Checks the write log's story of the `expected` (kind, name) objects in `namespace`, and returns
/// the fencing tokens of the attempts that wrote them, oldest first. For every object: created
/// exactly once and never deleted; every accepted write carries a token; the tokens of accepted
/// writes never go down; no attempt wrote it twice; a refused write is the fence refusing an
/// older token (403). The newest attempt wrote every object, and no older attempt wrote anything
/// after the newest one's first write.
pub(crate) fn check_writes(
    log: &[WriteRecord],
    namespace: &str,
    expected: &[(String, String)],
) -> Vec<i64> {
    let wanted: BTreeSet<(&str, &str)> = expected
        .iter()
        .map(|(k, n)| (k.as_str(), n.as_str()))
        .collect();
    let mine: Vec<(usize, &WriteRecord)> = log
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            w.namespace == namespace && wanted.contains(&(w.kind.as_str(), w.name.as_str()))
        })
        .collect();
    let mut per_object: BTreeMap<(&str, &str), Vec<(usize, &WriteRecord)>> = BTreeMap::new();
    for &(i, w) in &mine {
        per_object
            .entry((w.kind.as_str(), w.name.as_str()))
            .or_default()
            .push((i, w));
    }
    let accepted = |w: &WriteRecord| w.status < 400;
    for (object, writes) in &per_object {
        let story = || {
            writes
                .iter()
                .map(|(_, w)| format!("{} {} {:?} {:?}", w.method, w.status, w.fence, w.effect))
                .collect::<Vec<_>>()
        };
        let created = writes
            .iter()
            .filter(|(_, w)| w.effect == Some(Effect::Created))
            .count();
        assert_eq!(
            created,
            1,
            "{object:?} created {created} times: {:?}",
            story()
        );
        assert!(
            writes
                .iter()
                .all(|(_, w)| w.effect != Some(Effect::Deleted)),
            "{object:?} deleted: {:?}",
            story()
        );
        let mut newest = i64::MIN;
        let mut per_token: BTreeMap<i64, usize> = BTreeMap::new();
        for (_, w) in writes {
            let token = w
                .fence
                .unwrap_or_else(|| panic!("{object:?}: a write without a token: {w:?}"));
            if accepted(w) {
                assert!(
                    token >= newest,
                    "{object:?}: token {token} written after {newest}: {:?}",
                    story()
                );
                newest = token;
                *per_token.entry(token).or_default() += 1;
            } else {
                assert!(
                    w.status == 403 && token < newest,
                    "{object:?}: refused other than by the fence: {:?}",
                    story()
                );
            }
        }
        assert!(
            per_token.values().all(|&n| n == 1),
            "{object:?} written twice by one attempt: {per_token:?} {:?}",
            story()
        );
    }
    let mut missing: Vec<_> = wanted
        .iter()
        .filter(|o| !per_object.contains_key(*o))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "never written: {missing:?}");

    let tokens: BTreeSet<i64> = mine
        .iter()
        .filter(|(_, w)| accepted(w))
        .filter_map(|(_, w)| w.fence)
        .collect();
    let newest = *tokens.last().expect("some write was accepted");
    let by_newest: Vec<usize> = mine
        .iter()
        .filter(|(_, w)| accepted(w) && w.fence == Some(newest))
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        by_newest.len(),
        wanted.len(),
        "the newest attempt ({newest}) wrote each object once"
    );
    let first = by_newest[0];
    let late: Vec<&WriteRecord> = mine
        .iter()
        .filter(|(i, w)| *i > first && accepted(w) && w.fence != Some(newest))
        .map(|(_, w)| *w)
        .collect();
    assert!(
        late.is_empty(),
        "an older attempt wrote after the newest ({newest}) began: {late:?}"
    );
    tokens.into_iter().collect()
}

#[tokio::test]
async fn a_worker_killed_mid_deploy_is_replaced_and_the_objects_end_up_exactly_once() {
    let sim = SimConfig {
        write_latency_ms: 60,
        ..SimConfig::demo()
    };
    let s = Stack::start_with(false, sim).await;
    let home = std::env::temp_dir().join(format!("{}-home", s.db.name));
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = s.kubeconfig.to_string_lossy().to_string();
    let worker = |name: &str| {
        smo_process(
            &[
                "run",
                "--role",
                "worker",
                "--database-url",
                &s.db.url,
                "--karmada-kubeconfig",
                &kubeconfig,
                "--heartbeat-interval",
                "200ms",
                "--worker-prefix",
                name,
            ],
            &home,
        )
        .spawn()
        .expect("worker process starts")
    };

    let accepted = s
        .client
        .deploy("crash", many_services(12), false)
        .await
        .unwrap();
    let mut first = worker("first");
    let mut seen = 0;
    for _ in 0..400 {
        seen = s.objects("crash", "wide").await.len();
        if seen >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        (4..36).contains(&seen),
        "kill should land mid-deploy, saw {seen} objects"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let mut second = worker("second");
    let job = s.wait_job(&accepted).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(job["state"], "succeeded", "{job}");
    // Run again after the first worker's lease lapsed, on the same attempt: a job lost to a dead
    // worker keeps the attempts meant for its own errors (the loss is counted apart).
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(job["errors"][0]["lost"], true, "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("was lost"),
        "{job}"
    );

    let objects = s.objects("crash", "wide").await;
    let mut expected: Vec<(String, String)> = (0..12)
        .flat_map(|i| {
            ["Deployment", "PropagationPolicy", "Service"]
                .map(|k| (k.to_string(), format!("wide-s{i}")))
        })
        .collect();
    expected.sort();
    assert_eq!(objects, expected);
    // None twice: two attempts, each under a token of its own, the killed one's older; each object
    // created once, and written once by each attempt that reached it.
    let log = sim_writes(&s.sim_url).await;
    let tokens = check_writes(&log, "crash", &expected);
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    let mut by_worker: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for w in log
        .iter()
        .filter(|w| w.namespace == "crash" && w.fence.is_some())
    {
        let worker = ["(first-", "(second-"]
            .into_iter()
            .find(|tag| w.source.contains(tag))
            .unwrap_or_else(|| panic!("a write of neither worker: {w:?}"));
        by_worker.entry(worker).or_default().extend(w.fence);
    }
    assert_eq!(
        by_worker,
        BTreeMap::from([
            ("(first-", BTreeSet::from([tokens[0]])),
            ("(second-", BTreeSet::from([tokens[1]])),
        ]),
        "the killed worker's attempt holds the older token"
    );
    let g: Value = s.client.get("/graphs/wide").await.unwrap();
    assert_eq!(g["status"], "Running");
    let decisions: Vec<Value> = s.client.get("/graphs/wide/history").await.unwrap();
    assert_eq!(
        decisions.iter().filter(|d| d["kind"] == "deploy").count(),
        1,
        "the crashed attempt recorded nothing"
    );
    let _ = std::fs::remove_dir_all(&home);
}
