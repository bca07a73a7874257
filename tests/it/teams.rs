//! Teams: tokens scoped to projects with a role, checked on every route, and an audit log of every
//! change. The matrix below is generated from the route table (the OpenAPI document's operations
//! with the grant each declares, and the console's table): every route × every kind of caller,
//! against graphs of two projects, each answer checked against the declared grant.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use smo::access::{self, Role};

use crate::{stack::Stack, support::example};

const ADMIN: &str = "teams-bootstrap-token";

/// Creates a token straight in the store of `pool` (as `smo-admin tokens create` does) and
/// returns it.
pub async fn mint_in(
    pool: &sqlx::PgPool,
    name: &str,
    role: Role,
    projects: Option<&[&str]>,
    expires_in: Option<chrono::Duration>,
) -> String {
    let (token, presented) = access::new_token();
    let projects: Option<Vec<String>> =
        projects.map(|ps| ps.iter().map(|p| p.to_string()).collect());
    let mut conn = pool.acquire().await.unwrap();
    smo::store::create_token(
        &mut conn,
        &smo::store::NewToken {
            name,
            presented: &presented,
            role,
            projects: projects.as_deref(),
            expires_at: expires_in.map(|d| Utc::now() + d),
        },
        Utc::now(),
    )
    .await
    .unwrap();
    token
}

/// A token in `stack`'s store (see [`mint_in`]).
async fn mint(
    stack: &Stack,
    name: &str,
    role: Role,
    projects: Option<&[&str]>,
    expires_in: Option<chrono::Duration>,
) -> String {
    mint_in(&stack.db.pool, name, role, projects, expires_in).await
}

/// A graph `name` in `project`, deployed and running.
async fn graph_in(stack: &Stack, project: &str, name: &str) -> String {
    let yaml = String::from_utf8(example("hello.yaml"))
        .unwrap()
        .replace("id: hello\n", &format!("id: {name}\n"));
    let a = stack
        .client
        .deploy(project, yaml.into_bytes(), false)
        .await
        .unwrap();
    stack.succeed(&a).await;
    a["job_id"].as_str().unwrap().to_string()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Sends `method path` as `token` (none: no header); status, `Location` and body.
async fn send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> (u16, String, String) {
    let mut r = http().request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some((ct, b)) = body {
        r = r.header("content-type", ct).body(b);
    } else if method != "GET" {
        r = r.body("");
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location, resp.text().await.unwrap_or_default())
}

/// A caller of the matrix: its name, token and what it holds.
struct Who {
    label: &'static str,
    token: Option<String>,
    role: Option<Role>,
    projects: Option<Vec<&'static str>>,
}

impl Who {
    /// May it, by the declared grant (`None`: open), in `project`?
    fn may(&self, grant: Option<&str>, project: Option<&str>) -> Result<(), u16> {
        let Some(grant) = grant else { return Ok(()) };
        let Some(role) = self.role else {
            return Err(401);
        };
        let granted = match grant {
            "token" => true,
            "viewer" => matches!(role, Role::Viewer | Role::Deployer | Role::Admin),
            "deployer" => matches!(role, Role::Deployer | Role::Admin),
            "admin" => role == Role::Admin,
            "alerts" => matches!(role, Role::Alerts | Role::Admin),
            "metrics" => matches!(role, Role::Metrics | Role::Admin),
            other => panic!("unknown grant {other}"),
        };
        if !granted {
            return Err(403);
        }
        match (&self.projects, project) {
            (Some(ps), Some(p)) if !ps.contains(&p) => Err(403),
            _ => Ok(()),
        }
    }
}

/// One request of the matrix: method, concrete path, the project it acts in, the grant declared
/// for its route (`None`: open), and a body.
struct Cell {
    method: String,
    path: String,
    project: Option<&'static str>,
    grant: Option<String>,
    body: Option<(&'static str, String)>,
    console: bool,
}

/// Every route of the server, from its own tables, made concrete for graphs `ga` (project a) and
/// `gb` (project b) and a job of each. Panics when an operation declares no grant.
fn cells(job_a: &str, job_b: &str) -> Vec<Cell> {
    let doc: Value = serde_norway::from_str(&smo::http::openapi_yaml()).unwrap();
    let mut out = Vec::new();
    let open = ["/healthz", "/readyz"];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let grant = op["x-smo-grant"].as_str().map(str::to_string);
            assert!(
                grant.is_some() || open.contains(&path.as_str()),
                "{method} {path} declares no grant (x-smo-grant)"
            );
            if let Some(g) = &grant {
                let roles: Vec<&str> = op["x-smo-roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect();
                assert!(
                    roles.contains(&"admin") || g == "token",
                    "{path}: {roles:?}"
                );
            }
            let method = method.to_uppercase();
            for (project, name, job) in [("a", "ga", job_a), ("b", "gb", job_b)] {
                let concrete = path
                    .replace("{project}", project)
                    .replace("{name}", name)
                    .replace("{id}", job);
                let acts_in = (concrete != *path).then_some(project);
                let body = match (method.as_str(), path.as_str()) {
                    // Bodies that pass the guard but not validation: nothing is changed by them.
                    ("POST", "/project/{project}/graphs") => {
                        Some(("application/yaml", "hdaGraph: 1".to_string()))
                    }
                    ("POST", "/alerts") => Some(("application/json", "{}".to_string())),
                    _ => None,
                };
                if !out
                    .iter()
                    .any(|c: &Cell| c.method == method && c.path == concrete)
                {
                    out.push(Cell {
                        method: method.clone(),
                        path: concrete,
                        project: acts_in,
                        grant: grant.clone(),
                        body,
                        console: false,
                    });
                }
            }
        }
    }
    for path in ["/openapi.yaml", "/ui/", "/docs/"] {
        out.push(Cell {
            method: "GET".into(),
            path: path.into(),
            project: None,
            grant: Some("token".into()),
            body: None,
            console: false,
        });
    }
    for (method, path, need) in smo::http::console::route_table() {
        let grant = need
            .role()
            .map(|r| r.as_str().to_string())
            .or_else(|| (need != access::Need::Open).then(|| "token".to_string()));
        if path.ends_with("/logout") || path.ends_with("/login") {
            continue; // sessions, not resources: tests/it/auth.rs walks them
        }
        for (project, name, job) in [("a", "ga", job_a), ("b", "gb", job_b)] {
            let concrete = path
                .replace(":name", name)
                .replace(":id", job)
                .replace("/confirm/:action", "/confirm/stop")
                .replace(
                    ":action",
                    if path.contains("jobs") {
                        "retry"
                    } else {
                        "stop"
                    },
                );
            let acts_in = (concrete != path || path.ends_with("/deploy") && method == "POST")
                .then_some(project);
            let body = (method == "POST").then(|| {
                (
                    "application/x-www-form-urlencoded",
                    format!("project={project}&descriptor=hdaGraph%3A+1&action=dry-run"),
                )
            });
            if !out
                .iter()
                .any(|c: &Cell| c.method == method && c.path == concrete)
            {
                out.push(Cell {
                    method: method.to_string(),
                    path: concrete,
                    project: acts_in.filter(|_| !path.contains(":id")),
                    grant: grant.clone(),
                    body,
                    console: true,
                });
            }
        }
    }
    // Removal last: a graph removed early would answer later cells with 404.
    out.sort_by_key(|c| c.method == "DELETE");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_its_declared_grant_says() {
    let stack = Stack::with_token(ADMIN).await;
    let job_a = graph_in(&stack, "a", "ga").await;
    let job_b = graph_in(&stack, "b", "gb").await;
    let who = [
        Who {
            label: "no token",
            token: None,
            role: None,
            projects: None,
        },
        Who {
            label: "metrics",
            token: Some(mint(&stack, "scrape", Role::Metrics, None, None).await),
            role: Some(Role::Metrics),
            projects: None,
        },
        Who {
            label: "alerts",
            token: Some(mint(&stack, "alertmanager", Role::Alerts, None, None).await),
            role: Some(Role::Alerts),
            projects: None,
        },
        Who {
            label: "viewer of a",
            token: Some(mint(&stack, "view-a", Role::Viewer, Some(&["a"]), None).await),
            role: Some(Role::Viewer),
            projects: Some(vec!["a"]),
        },
        Who {
            label: "deployer of b",
            token: Some(mint(&stack, "deploy-b", Role::Deployer, Some(&["b"]), None).await),
            role: Some(Role::Deployer),
            projects: Some(vec!["b"]),
        },
        Who {
            label: "deployer of a",
            token: Some(mint(&stack, "deploy-a", Role::Deployer, Some(&["a"]), None).await),
            role: Some(Role::Deployer),
            projects: Some(vec!["a"]),
        },
        Who {
            label: "admin",
            token: Some(mint(&stack, "root", Role::Admin, None, None).await),
            role: Some(Role::Admin),
            projects: None,
        },
    ];
    let cells = cells(&job_a, &job_b);
    assert!(cells.len() > 40, "{}", cells.len());
    let mut wrong = Vec::new();
    let mut checked = 0;
    for c in &cells {
        // Callers refused first: an allowed removal must not turn a later refusal into a 404.
        let mut order: Vec<&Who> = who.iter().collect();
        order.sort_by_key(|w| w.may(c.grant.as_deref(), c.project).is_ok());
        for w in order {
            let expected = w.may(c.grant.as_deref(), c.project);
            let (status, location, body) = send(
                &stack.api,
                &c.method,
                &c.path,
                w.token.as_deref(),
                c.body.clone(),
            )
            .await;
            checked += 1;
            let to_login = status == 303 && location.ends_with("/console/login");
            let ok = match expected {
                Err(401) if c.console => to_login,
                Err(code) => status == code,
                Ok(()) => status != 401 && status != 403 && !to_login,
            };
            if !ok {
                wrong.push(format!(
                    "{} {} as {}: got {status} {location}, expected {expected:?}: {}",
                    c.method,
                    c.path,
                    w.label,
                    body.chars().take(200).collect::<String>()
                ));
            }
            // A refusal names the grant that is missing.
            if expected == Err(403) && !c.console {
                let p: Value = serde_json::from_str(&body).unwrap_or_default();
                let detail = p["detail"].as_str().unwrap_or_default();
                if p["type"] != "urn:smo:problem:forbidden" || !detail.contains("needs the grant") {
                    wrong.push(format!("{} {} as {}: {body}", c.method, c.path, w.label));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked}:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_only_the_callers_projects() {
    let stack = Stack::with_token(ADMIN).await;
    graph_in(&stack, "a", "ga").await;
    graph_in(&stack, "b", "gb").await;
    let view_a = mint(&stack, "view-a", Role::Viewer, Some(&["a"]), None).await;
    let all = mint(&stack, "view-all", Role::Viewer, None, None).await;
    let names = |body: &str| -> Vec<String> {
        serde_json::from_str::<Vec<Value>>(body)
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, body) = send(&stack.api, "GET", "/graphs", Some(&view_a), None).await;
    assert_eq!(names(&body), ["ga"]);
    let (_, _, body) = send(&stack.api, "GET", "/graphs?limit=1", Some(&view_a), None).await;
    assert_eq!(names(&body), ["ga"]);
    let (_, _, body) = send(&stack.api, "GET", "/graphs", Some(&all), None).await;
    assert_eq!(names(&body), ["ga", "gb"]);
    let (_, _, body) = send(&stack.api, "GET", "/graphs", Some(ADMIN), None).await;
    assert_eq!(names(&body), ["ga", "gb"]);
    // The console's list too, and a viewer is offered no action and no deploy.
    let (status, _, page) = send(&stack.api, "GET", "/console", Some(&view_a), None).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-graph=\"ga\"") && !page.contains("data-graph=\"gb\""));
    assert!(!page.contains("href=\"/console/deploy\""), "{page}");
    assert!(!page.contains("href=\"/console/queue\""));
    assert!(
        page.contains("view-a") && page.contains("viewer of a"),
        "{page}"
    );
    let (_, _, page) = send(&stack.api, "GET", "/console/graphs/ga", Some(&view_a), None).await;
    assert!(page.contains("<h1"), "{page}");
    assert!(!page.contains("/confirm/stop"), "a viewer sees no actions");
    let (status, _, page) = send(&stack.api, "GET", "/console/deploy", Some(&view_a), None).await;
    assert_eq!(status, 403);
    assert!(page.contains("needs the grant deployer"), "{page}");
    // A deployer of a sees the actions on its graph, and the deploy page.
    let deploy_a = mint(&stack, "deploy-a", Role::Deployer, Some(&["a"]), None).await;
    let (_, _, page) = send(
        &stack.api,
        "GET",
        "/console/graphs/ga",
        Some(&deploy_a),
        None,
    )
    .await;
    assert!(page.contains("/confirm/stop"));
    let (_, _, page) = send(&stack.api, "GET", "/console", Some(&deploy_a), None).await;
    assert!(page.contains("href=\"/console/deploy\""));
    assert!(!page.contains("href=\"/console/queue\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_are_refused_at_once_and_no_token_leaks() {
    let stack = Stack::with_token(ADMIN).await;
    graph_in(&stack, "a", "ga").await;
    let live = mint(&stack, "live", Role::Deployer, Some(&["a"]), None).await;
    let soon = mint(
        &stack,
        "later",
        Role::Viewer,
        Some(&["a"]),
        Some(chrono::Duration::hours(1)),
    )
    .await;
    let past = mint(
        &stack,
        "past",
        Role::Admin,
        None,
        Some(chrono::Duration::seconds(-1)),
    )
    .await;
    let whoami = |t: String| {
        let base = stack.api.clone();
        async move { send(&base, "GET", "/whoami", Some(&t), None).await }
    };
    let (status, _, body) = whoami(live.clone()).await;
    assert_eq!(status, 200, "{body}");
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["name"], "live");
    assert_eq!(me["role"], "deployer");
    assert_eq!(me["projects"], serde_json::json!(["a"]));
    assert_eq!(whoami(soon.clone()).await.0, 200);
    assert_eq!(whoami(past.clone()).await.0, 401, "expired");
    // Revoked: refused on the very next request (no cache in between).
    let mut conn = stack.db.pool.acquire().await.unwrap();
    assert!(
        smo::store::revoke_token(&mut conn, "live", Utc::now())
            .await
            .unwrap()
    );
    assert_eq!(whoami(live.clone()).await.0, 401, "revoked");
    // A token with one character changed is someone else's guess.
    let mut forged = soon.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(whoami(forged.clone()).await.0, 401);

    // Changes were made and refused with these tokens; none of them, and no digest, shows up
    // in /metrics, a problem or the audit log.
    let (_, _, refused) = send(&stack.api, "POST", "/graphs/ga/stop", Some(&live), None).await;
    let (_, _, forbidden) = send(&stack.api, "POST", "/graphs/ga/stop", Some(&soon), None).await;
    let (_, _, metrics) = send(&stack.api, "GET", "/metrics", Some(ADMIN), None).await;
    let (_, _, audit) = send(&stack.api, "GET", "/audit?limit=1000", Some(ADMIN), None).await;
    assert!(audit.contains("\"token\":\"later\""), "{audit}");
    let digests: Vec<String> = [live.as_str(), soon.as_str(), past.as_str(), ADMIN]
        .iter()
        .map(|t| {
            access::digest(t)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .collect();
    for text in [&refused, &forbidden, &metrics, &audit] {
        for secret in [&live, &soon, &past, &forged, &ADMIN.to_string()]
            .into_iter()
            .chain(&digests)
        {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
            // The secret half alone neither.
            let tail = &secret[secret.len() - 20..];
            assert!(!text.contains(tail), "{tail} in {text}");
        }
    }
}

/// The server as a process, with debug logs: no token and no digest reaches its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_log_holds_no_token() {
    smo::install_crypto_provider();
    let db = crate::support::test_db().await;
    let port = crate::support::free_port();
    let home = std::env::temp_dir().join(format!("{}-home", db.name));
    std::fs::create_dir_all(&home).unwrap();
    let log = std::env::temp_dir().join(format!("{}-api.log", db.name));
    let mut child = crate::stack::smo_process(
        &[
            "run",
            "--role",
            "api",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &home,
    )
    .env("SMO_DATABASE_URL", &db.url)
    .env("SMO_API_TOKEN", ADMIN)
    .env("RUST_LOG", "debug")
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..600 {
        if http()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    let token = mint_in(&db.pool, "logged", Role::Viewer, Some(&["a"]), None).await;
    let presented = access::presented(&token).expect("one of ours");
    let wrong = format!("{}0", &token[..token.len() - 1]);
    for t in [ADMIN, token.as_str(), wrong.as_str()] {
        for (m, p) in [
            ("GET", "/graphs"),
            ("POST", "/clusters/sync"),
            ("GET", "/nope"),
        ] {
            send(&base, m, p, Some(t), None).await;
        }
        let _ = http()
            .post(format!("{base}/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={t}"))
            .send()
            .await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 5, "debug logs were written: {text}");
    for secret in [
        ADMIN,
        token.as_str(),
        &token[token.len() - 20..],
        &wrong[wrong.len() - 20..],
    ] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    let digest: String = presented
        .digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!text.contains(&digest));
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_leaves_exactly_one_audit_row_naming_its_token() {
    let stack = Stack::with_token(ADMIN).await;
    let deployer = mint(&stack, "ci-a", Role::Deployer, Some(&["a"]), None).await;
    let alerts = mint(&stack, "alertmanager", Role::Alerts, None, None).await;
    let viewer = mint(&stack, "view-a", Role::Viewer, Some(&["a"]), None).await;
    let as_ = |t: &str| {
        smo_sdk::Client::with_config(smo_sdk::Config::new(&stack.api).token(Some(t.to_string())))
    };
    let ci = as_(&deployer);
    let yaml = String::from_utf8(example("hello.yaml"))
        .unwrap()
        .replace("id: hello\n", "id: ga\n");
    // (token, operation, graph): what each change must leave.
    let mut expected: Vec<(&str, &str, Option<&str>)> = Vec::new();
    let wait = |id: String| {
        let c = as_(ADMIN);
        async move { crate::stack::wait_job(&crate::stack::Api(c), &id).await }
    };
    let d = ci
        .deploy_graph("a", Some(false), yaml.into_bytes())
        .await
        .unwrap();
    let smo_sdk::DeployGraphResponse::Accepted(d) = d else {
        panic!("{d:?}")
    };
    wait(d.job_id.clone()).await;
    expected.push(("ci-a", "POST /project/{project}/graphs", Some("ga")));
    for (op, f) in [
        ("POST /graphs/{name}/stop", 0),
        ("POST /graphs/{name}/start", 1),
        ("POST /graphs/{name}/placement", 2),
    ] {
        let a = match f {
            0 => ci.stop_graph("ga").await,
            1 => ci.start_graph("ga").await,
            _ => ci.replace_graph("ga").await,
        }
        .unwrap();
        wait(a.job_id).await;
        expected.push(("ci-a", op, Some("ga")));
    }
    // Refused changes are recorded too, with their 403.
    let err = as_(&viewer).stop_graph("ga").await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    expected.push(("view-a", "POST /graphs/{name}/stop", Some("ga")));
    let sync = as_(ADMIN).sync_clusters().await.unwrap();
    expected.push(("api_token", "POST /clusters/sync", None));
    wait(sync.job_id).await;
    as_(&alerts)
        .post_alerts(br#"{"alerts":[]}"#.to_vec())
        .await
        .unwrap();
    expected.push(("alertmanager", "POST /alerts", None));
    // The console, signed in with the deployer's token: one stop.
    let login = http()
        .post(format!("{}/console/login", stack.api))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={deployer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(
        !cookie.contains(&deployer[4..]),
        "the cookie holds no token"
    );
    let r = http()
        .post(format!("{}/console/graphs/ga/stop", stack.api))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    expected.push(("ci-a", "POST /console/graphs/:name/:action", Some("ga")));
    // smo-admin, with its own name.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smo-admin"))
        .args([
            "tokens",
            "revoke",
            "view-a",
            "--database-url",
            &stack.db.url,
        ])
        .env("USER", "ops")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expected.push(("smo-admin:ops", "tokens revoke", None));
    let rm = ci.remove_graph("ga").await.unwrap();
    wait(rm.job_id).await;
    expected.push(("ci-a", "DELETE /graphs/{name}", Some("ga")));
    // Reads left none.
    ci.list_graphs(None, None).await.unwrap();
    ci.whoami().await.unwrap();

    let rows = smo::store::audit_log(
        &stack.db.pool,
        &smo::store::AuditFilter {
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got: Vec<(String, String, Option<String>)> = rows
        .iter()
        .rev()
        .map(|r| (r.token.clone(), r.operation.clone(), r.graph.clone()))
        .collect();
    let want: Vec<(String, String, Option<String>)> = expected
        .iter()
        .map(|(t, o, g)| (t.to_string(), o.to_string(), g.map(str::to_string)))
        .collect();
    assert_eq!(got, want, "{rows:#?}");
    for r in &rows {
        match r.source.as_str() {
            "admin" => assert_eq!(r.status, 0),
            _ => {
                assert!(
                    r.request_id.as_deref().is_some_and(|id| !id.is_empty()),
                    "{r:?}"
                );
                assert!(r.status >= 200);
            }
        }
        if r.graph.as_deref() == Some("ga") {
            assert_eq!(r.project.as_deref(), Some("a"), "{r:?}");
        }
        if r.status == 202 {
            assert!(r.job_id.is_some(), "{r:?}");
        }
    }
    assert_eq!(rows.iter().filter(|r| r.status == 403).count(), 1);
}

#[test]
fn smo_admin_makes_lists_and_revokes_tokens_and_smo_whoami_shows_them() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stack = rt.block_on(Stack::with_token(ADMIN));
    let admin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_smo-admin"))
            .args(args)
            .args(["--database-url", &stack.db.url])
            .output()
            .unwrap()
    };
    let home = std::env::temp_dir().join(format!("{}-whoami", stack.db.name));
    std::fs::create_dir_all(&home).unwrap();
    let whoami = |token: &str| {
        crate::stack::smo_process(&["whoami", "--output", "json"], &home)
            .env("SMO_API_URL", &stack.api)
            .env("SMO_API_TOKEN", token)
            .output()
            .unwrap()
    };
    // Bad input: exit 2, one line per problem, nothing stored.
    let out = admin(&[
        "tokens",
        "create",
        "--name",
        "x",
        "--role",
        "root",
        "--project",
        "Bad_Name",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.contains("--role") && err.contains("--project \"Bad_Name\""),
        "{err}"
    );
    let out = admin(&["tokens", "list", "--output", "json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    let out = admin(&[
        "tokens",
        "create",
        "--name",
        "ci",
        "--role",
        "deployer",
        "--project",
        "a",
        "--project",
        "b",
        "--expires",
        "30d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(access::presented(&token).is_some(), "{token}");
    let me = whoami(&token);
    assert!(
        me.status.success(),
        "{}",
        String::from_utf8_lossy(&me.stderr)
    );
    let me: Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(
        me,
        serde_json::json!({"name": "ci", "role": "deployer", "projects": ["a", "b"]})
    );
    // The same name twice: refused, exit 2.
    let again = admin(&[
        "tokens",
        "create",
        "--name",
        "ci",
        "--role",
        "viewer",
        "--all-projects",
    ]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let list = admin(&["tokens", "list", "--output", "json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["name"], "ci");
    assert_eq!(list[0]["role"], "deployer");
    assert!(
        !list.to_string().contains(&token[4..]),
        "the list never shows a token"
    );
    assert!(admin(&["tokens", "revoke", "ci"]).status.success());
    let refused = whoami(&token);
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("unknown, revoked or expired"), "{said}");
    assert_eq!(
        admin(&["tokens", "revoke", "ci"]).status.code(),
        Some(2),
        "revoked twice"
    );
    // The audit log, through smo-admin.
    let audit = admin(&["audit", "--output", "json"]);
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let ops: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["tokens revoke", "tokens revoke", "tokens create"],
        "{audit}"
    );
    let bootstrap = whoami(ADMIN);
    let me: Value = serde_json::from_slice(&bootstrap.stdout).unwrap();
    assert_eq!(me["name"], "api_token");
    assert_eq!(me["role"], "admin");
    drop(stack);
    drop(rt);
}

/// The audit log is kept by the retention job that prunes finished jobs (`jobs.prune`), after its
/// own period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_job_prunes_the_audit_log_after_its_own_period() {
    let stack = Stack::with_token(ADMIN).await;
    let mut conn = stack.db.pool.acquire().await.unwrap();
    for (days, op) in [(100, "old"), (10, "recent")] {
        smo::store::audit(
            &mut conn,
            &smo::store::AuditRecord {
                at: Utc::now() - chrono::Duration::days(days),
                token: "t".into(),
                source: "api".into(),
                operation: op.into(),
                status: 202,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    drop(conn);
    let queue = smo_jobs::Queue::new(stack.db.pool.clone());
    let job = queue
        .enqueue(&smo::reconcile::RetentionJob {
            retention_secs: 7 * 86_400,
            audit_retention_secs: Some(90 * 86_400),
        })
        .await
        .unwrap();
    let done = crate::stack::wait_job(&stack.client, &job.id.to_string()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let left: Vec<String> = smo::store::audit_log(
        &stack.db.pool,
        &smo::store::AuditFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.operation)
    .collect();
    assert_eq!(left, ["recent"]);
    // And the cron entry the scheduler installs is this job, with the configured period.
    let settings =
        smo::settings::ServerSettings::resolve(&Default::default(), stack.db.url.clone()).unwrap();
    let entries = smo::server::cron_entries(&settings).unwrap();
    let prune = entries.iter().find(|e| e.name == "jobs.prune").unwrap();
    assert_eq!(
        prune.job.args["audit_retention_secs"],
        serde_json::json!(90 * 86_400)
    );
}

/// `smo status` with a viewer's token: the queue is not the viewer's to see (/metrics needs the
/// metrics or admin role), so status says so and judges by readiness, instead of failing on 403.
#[test]
fn smo_status_with_a_viewer_token_says_the_queue_is_not_its_to_see() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stack = rt.block_on(Stack::with_token(ADMIN));
    let viewer = rt.block_on(mint(&stack, "look", Role::Viewer, Some(&["a"]), None));
    let home = std::env::temp_dir().join(format!("{}-status", stack.db.name));
    std::fs::create_dir_all(&home).unwrap();
    let status = |token: &str, json: bool| {
        let mut args = vec!["status"];
        if json {
            args.extend(["--output", "json"]);
        }
        crate::stack::smo_process(&args, &home)
            .env("SMO_API_URL", &stack.api)
            .env("SMO_API_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = status(&viewer, false);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("database  ready"), "{said}");
    assert!(
        said.contains("workers   not visible to this token"),
        "{said}"
    );
    let v: Value = serde_json::from_slice(&status(&viewer, true).stdout).unwrap();
    assert_eq!(v["healthy"], true, "{v}");
    assert!(v["workers_alive"].is_null(), "{v}");
    // An admin sees the workers (the stack runs one).
    let v: Value = serde_json::from_slice(&status(ADMIN, true).stdout).unwrap();
    assert!(v["workers_alive"].as_u64().unwrap() >= 1, "{v}");
    drop(stack);
    drop(rt);
}
