//! Scaling, dashboards and event-triggered services end to end, with a real Prometheus and a real
//! Alertmanager (Debian packages, started here on loopback) scraping the simulated federation.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use smo::{
    monitoring::io::{Grafana, Prometheus},
    reconcile::{self, App, Monitoring, RulesTarget, ScaleFanoutJob},
};
use smo_jobs::{CronEntry, Queue, Scheduler, SchedulerConfig, Worker, testing::fast_worker_config};

use crate::{
    stack::Stack,
    support::{Proc, binary, example, free_port, spawn_prometheus, until, wait_http},
};

async fn replicas(s: &Stack, service: &str) -> i64 {
    let g: Value = s.client.get("/graphs/autoscale").await.unwrap();
    g["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == service)
        .map(|x| x["replicas"].as_i64().unwrap())
        .unwrap()
}

async fn set_load(s: &Stack, rate: f64) {
    let r = reqwest::Client::new()
        .post(format!("{}/sim/load", s.sim_url))
        .json(&serde_json::json!({"service": "autoscale-web", "namespace": "demo", "rate": rate}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_load_an_alert_deploys_its_service_once_and_remove_cleans_up() {
    let Some(am_bin) = binary("prometheus-alertmanager") else {
        panic!("prometheus-alertmanager is required: run scripts/setup");
    };
    // The stack without its default worker: this one is wired to the monitoring stack.
    let s = Stack::start_with(false, smo_sim::SimConfig::demo()).await;
    let dir = std::env::temp_dir().join(format!("{}-mon", s.db.name));
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let am_port = free_port();
    let sim_target = s.sim_url.trim_start_matches("http://").to_string();
    let api_target = s.api.clone();
    let (_prom, prom_url) = spawn_prometheus(
        &dir,
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}/*.yml']\n\
             alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}\n\
             scrape_configs: [{{job_name: sim, static_configs: [{{targets: ['{sim_target}']}}]}}]\n",
            rules.display()
        ),
    );
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route: {{receiver: smo, group_by: [alertname, graph, service], group_wait: 1s, group_interval: 1s, repeat_interval: 2s}}\n\
             receivers: [{{name: smo, webhook_configs: [{{url: '{api_target}/alerts', send_resolved: false}}]}}]\n"
        ),
    )
    .unwrap();
    let _am = Proc(
        Command::new(am_bin)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("alertmanager starts"),
    );
    wait_http(&format!("{prom_url}/-/ready")).await;
    wait_http(&format!("http://127.0.0.1:{am_port}/-/ready")).await;

    let prometheus = Prometheus::new(&prom_url, Duration::from_secs(5));
    let grafana = Grafana::new(
        &s.sim_url,
        smo::credentials::Credentials::None,
        Duration::from_secs(5),
    );
    let monitoring = Monitoring {
        prometheus: Some(prometheus.clone()),
        grafana: Some(grafana.clone()),
        rules: RulesTarget::RuleFile { dir: rules.clone() },
        rate_window: "10s".into(),
    };
    let app = App {
        pool: s.db.pool.clone(),
        federation: Some(s.federation.clone()),
        monitoring,
        helm: None,
        failover: Default::default(),
    };
    let queue = Queue::new(s.db.pool.clone());
    let mut cfg = fast_worker_config(&format!("mon-{}", s.db.name));
    cfg.poll_interval = Duration::from_millis(100);
    tokio::spawn(Worker::new(queue.clone(), reconcile::registry(app), cfg).run(s.stop.clone()));
    let entry = CronEntry::new("scale-fanout", "* * * * * *", &ScaleFanoutJob {}).unwrap();
    let scheduler = Scheduler::new(
        queue.clone(),
        SchedulerConfig {
            tick: Duration::from_millis(200),
        },
    )
    .with_entry(entry);
    tokio::spawn(scheduler.run(s.stop.clone()));

    let accepted = s
        .client
        .deploy("demo", example("autoscale.yaml"), false)
        .await
        .unwrap();
    s.succeed(&accepted).await;
    until("the alert rule group to load", 30, || async {
        prometheus
            .rule_groups()
            .await
            .unwrap_or_default()
            .contains(&"smo-demo-autoscale".to_string())
    })
    .await;
    // The rule group loads before `publish-dashboards` records the dashboard URLs (it reloads
    // Prometheus first, then writes the graph): wait for the job, not for a side effect of it.
    let publish = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM smo_jobs.jobs WHERE kind = 'publish-dashboards' ORDER BY created_at LIMIT 1",
    )
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    s.succeed(&serde_json::json!({ "job_id": publish.to_string() }))
        .await;
    let g: Value = s.client.get("/graphs/autoscale").await.unwrap();
    let dashboards = g["dashboards"].as_object().cloned().unwrap_or_default();
    assert_eq!(dashboards.len(), 3, "graph + one per service: {g}");
    assert_eq!(replicas(&s, "web").await, 1);

    // Load up: 60 req/s at 10 req/s per replica → 6 replicas; and the overload alert fires.
    set_load(&s, 60.0).await;
    until("web to scale to 6 replicas", 90, || async {
        replicas(&s, "web").await == 6
    })
    .await;
    let objects = s.objects("demo", "autoscale").await;
    assert!(objects.iter().any(|(_, n)| n == "autoscale-web"));
    until("the alert to deploy burst-vo", 90, || async {
        s.objects("demo", "autoscale")
            .await
            .iter()
            .any(|(k, n)| k == "Deployment" && n == "autoscale-burst-vo")
    })
    .await;
    // Alertmanager repeats every 2 s: give it several repeats, then count.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let history: Vec<Value> = s
        .client
        .get("/graphs/autoscale/history?limit=1000")
        .await
        .unwrap();
    let conditional = history
        .iter()
        .filter(|d| d["kind"] == "deploy-conditional")
        .count();
    assert_eq!(
        conditional, 1,
        "deployed exactly once however often Alertmanager repeats"
    );
    let vo_objects = s
        .objects("demo", "autoscale")
        .await
        .into_iter()
        .filter(|(_, n)| n == "autoscale-burst-vo")
        .count();
    assert_eq!(vo_objects, 3, "Service, Deployment, PropagationPolicy");

    // The console of an API given this Prometheus charts the scale-up from its series.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = format!(
        "http://{}/console/graphs/autoscale",
        listener.local_addr().unwrap()
    );
    tokio::spawn(smo::server::serve_api_on(
        s.db.pool.clone(),
        listener,
        None,
        Default::default(),
        Default::default(),
        Some(Prometheus::new(&prom_url, Duration::from_secs(5))),
        s.stop.clone(),
    ));
    wait_http(&console).await;
    let page = reqwest::get(&console).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("From Prometheus"),
        "not charted from Prometheus"
    );
    let web_row = page
        .split("</tr>")
        .find(|row| row.contains("swatch") && row.contains(">web</th>"))
        .unwrap_or_else(|| panic!("no web series: {page}"));
    // Each point is "N <small>(time)</small>"; the scale-up (web went above 1) must be there.
    let charted: Vec<i64> = web_row
        .split(" <small>")
        .filter_map(|part| part.rsplit(['>', ' ']).next()?.trim().parse().ok())
        .collect();
    assert!(
        charted.iter().any(|n| *n > 1),
        "the scale-up is not charted: {web_row}"
    );
    // The stack's own API has no Prometheus: its console says so and uses the decision log.
    let own = reqwest::get(format!("{}/console/graphs/autoscale", s.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(own.contains("Prometheus is not configured"), "{own}");

    // Load down: back to one replica.
    set_load(&s, 5.0).await;
    until("web to scale back to 1 replica", 90, || async {
        replicas(&s, "web").await == 1
    })
    .await;
    let scaling = history_kinds(&s, "scaling").await;
    assert!(scaling >= 2, "every scaling step is in the decision log");

    // Remove: objects, rule group and dashboards are gone.
    let rm: Value = s.client.delete("/graphs/autoscale").await.unwrap();
    s.succeed(&rm).await;
    assert!(s.objects("demo", "autoscale").await.is_empty());
    until("the rule group to unload", 30, || async {
        !prometheus
            .rule_groups()
            .await
            .unwrap_or_default()
            .contains(&"smo-demo-autoscale".to_string())
    })
    .await;
    for d in smo::monitoring::render_graph_dashboards(
        "demo",
        &smo::hdag::parse(&example("autoscale.yaml")).unwrap().graph,
    )
    .iter()
    {
        assert!(
            !grafana.exists(&d.uid).await.unwrap(),
            "dashboard {} left behind",
            d.title
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn history_kinds(s: &Stack, kind: &str) -> usize {
    let history: Vec<Value> = s
        .client
        .get("/graphs/autoscale/history?limit=1000")
        .await
        .unwrap();
    history.iter().filter(|d| d["kind"] == kind).count()
}

#[tokio::test]
async fn a_prometheus_behind_basic_auth_is_reached_with_the_configured_credentials() {
    // Prometheus's own basic auth (--web.config.file), user smo / password s3cret (bcrypt).
    let dir = std::env::temp_dir().join(format!("smo-prom-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        "basic_auth_users:\n  smo: $2b$12$BsEXCLG42x/s7.2s6nwsXea38YBYA05ifZhsWpNvaQS.Gd2kwwTYa\n",
    )
    .unwrap();
    let (_prom, url) = crate::support::spawn_prometheus_with(
        &dir,
        "global: {scrape_interval: 1m}\n",
        &[format!("--web.config.file={}", web.display())],
    );
    let settings = |user: Option<&str>, password: Option<&str>| {
        smo::server::monitoring(&smo::settings::MonitoringSettings {
            prometheus_url: Some(url.clone()),
            prometheus_user: user.map(str::to_string),
            prometheus_password: password.map(smo::credentials::Secret::new),
            alert_rules: "none".into(),
            ..Default::default()
        })
    };
    let with = settings(Some("smo"), Some("s3cret"))
        .unwrap()
        .prometheus
        .unwrap();
    // Ready once it answers the authenticated query.
    until("Prometheus to answer with credentials", 30, || async {
        with.query("vector(1)").await.is_ok()
    })
    .await;
    assert_eq!(with.query("vector(42)").await.unwrap(), 42.0);
    let without = settings(None, None).unwrap().prometheus.unwrap();
    let err = without.query("vector(1)").await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let wrong = settings(Some("smo"), Some("nope"))
        .unwrap()
        .prometheus
        .unwrap();
    assert!(wrong.query("vector(1)").await.is_err());
    // Half a pair is a configuration error, named.
    let half = settings(Some("smo"), None).err().unwrap().to_string();
    assert!(half.contains("prometheus credentials"), "{half}");
}

/// Alert rules published as a PrometheusRule carry a fencing token like every object smo applies
/// for a graph: the token of the graph lock `publish-dashboards` holds, newer than the deploy's
/// that enqueued it. So the federation refuses a stale publisher's late write, as it refuses a
/// stale deploy's (the sim enforces smo's fence policy).
#[tokio::test]
async fn alert_rules_published_as_a_prometheus_rule_carry_the_graph_locks_fencing_token() {
    let s = Stack::start_with(false, smo_sim::SimConfig::demo()).await;
    let registry = reconcile::registry(App {
        pool: s.db.pool.clone(),
        federation: Some(s.federation.clone()),
        monitoring: Monitoring {
            rules: RulesTarget::PrometheusRule {
                namespace: None,
                group: None,
            },
            ..Default::default()
        },
        helm: None,
        failover: Default::default(),
    });
    s.client
        .deploy("demo", example("autoscale.yaml"), false)
        .await
        .unwrap();
    smo_jobs::testing::work_until_idle(&s.db.queue(), registry, fast_worker_config("rules"))
        .await
        .unwrap();
    assert_eq!(history_kinds(&s, "publish").await, 1);

    let sim = s.sim_url.clone();
    let get = |path: &str| {
        let url = format!("{sim}{path}");
        async move {
            let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            let token = v["metadata"]["annotations"][smo::federation::FENCE_ANNOTATION]
                .as_str()
                .and_then(|t| t.parse::<i64>().ok())
                .unwrap_or_else(|| panic!("no fencing token on {v}"));
            (v, token)
        }
    };
    const RULE: &str =
        "/apis/monitoring.coreos.com/v1/namespaces/demo/prometheusrules/autoscale-alerts";
    let (rule, token) = get(RULE).await;
    assert_eq!(rule["kind"], "PrometheusRule");
    let (_, deployed) = get("/apis/apps/v1/namespaces/demo/deployments/autoscale-web").await;
    assert!(
        token > deployed,
        "publishing held the graph lock after the deploy: {token} vs {deployed}"
    );

    // A late write of an older publisher is refused and changes nothing.
    let mut stale = rule.clone();
    stale["metadata"]["annotations"][smo::federation::FENCE_ANNOTATION] =
        Value::String((token - 1).to_string());
    stale["spec"]["groups"] = serde_json::json!([]);
    for k in [
        "managedFields",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
    ] {
        stale["metadata"].as_object_mut().unwrap().remove(k);
    }
    let r = reqwest::Client::new()
        .patch(format!("{}{RULE}?fieldManager=smo&force=true", s.sim_url))
        .header("content-type", "application/apply-patch+yaml")
        .body(stale.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (after, _) = get(RULE).await;
    assert_eq!(after["spec"], rule["spec"]);
}
