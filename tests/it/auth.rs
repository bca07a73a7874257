//! With `api_token` set, nothing answers without it but an explicit list: the health checks and
//! the console's sign-in page with its two assets. The walk covers the server's whole route
//! table — every operation of the OpenAPI document, every console route (from the table the
//! console's router is built from), the document itself, Swagger UI and `/metrics` — so a route
//! added later is walked too. Path parameters take the values that opened the console before:
//! graphs named `assets` and `login`.

use std::time::Duration;

use serde_json::Value;

use crate::{stack::Stack, support::example};

const TOKEN: &str = "auth-walk-token";

/// The routes open without a token or session: the whole list. Anything added to the server's
/// open list must be added here too, on purpose.
const OPEN: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/assets/console.css"),
    ("GET", "/console/assets/console.js"),
];

/// Every (method, concrete path) the server serves, for each value of the path parameters.
fn every_route() -> Vec<(String, String)> {
    let doc: Value = serde_norway::from_str(&smo::http::openapi_yaml()).unwrap();
    let mut templates: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().unwrap().keys() {
            templates.push((method.to_uppercase(), path.clone()));
        }
    }
    for (method, path, _) in smo::http::console::route_table() {
        templates.push((method.to_string(), path));
    }
    for path in ["/openapi.yaml", "/ui", "/ui/", "/docs", "/docs/"] {
        templates.push(("GET".into(), path.into()));
    }
    assert!(
        templates.iter().any(|(_, p)| p == "/metrics"),
        "the walk covers /metrics"
    );
    let job = "0190f3a4-0000-7000-8000-000000000001";
    let mut routes = Vec::new();
    for (method, path) in templates {
        for name in ["assets", "login", "hello"] {
            let concrete = path
                .replace("{name}", name)
                .replace(":name", name)
                .replace("{project}", "demo")
                .replace("{id}", job)
                .replace(":id", job)
                .replace("/confirm/:action", "/confirm/stop");
            for action in ["stop", "start", "remove", "re-place", "cancel", "retry"] {
                let c = concrete.replace(":action", action);
                if !routes.contains(&(method.clone(), c.clone())) {
                    routes.push((method.clone(), c));
                }
            }
        }
    }
    routes
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends `method path` with the given extra headers; returns status and `Location`.
async fn send(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut r = http.request(method.parse().unwrap(), format!("{base}{path}"));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if method == "POST" {
        r = r
            .header("content-type", "application/x-www-form-urlencoded")
            .body("");
    }
    let resp = r.send().await.unwrap();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (resp.status().as_u16(), location)
}

/// A console session cookie from signing in to `stack` with `token`.
async fn session(stack: &Stack, token: &str) -> String {
    let r = client()
        .post(format!("{}/console/login", stack.api))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_the_open_list_needs_the_token_or_a_session() {
    let stack = Stack::with_token(TOKEN).await;
    // Graphs whose names once opened the console (`…/assets/…`, `…/login`).
    for name in ["assets", "login"] {
        let yaml = String::from_utf8(example("hello.yaml"))
            .unwrap()
            .replace("id: hello\n", &format!("id: {name}\n"));
        let a = stack
            .client
            .deploy("demo", yaml.into_bytes(), false)
            .await
            .unwrap();
        stack.succeed(&a).await;
    }
    // A cookie from before a token change: signed in when the token was another one.
    let before = Stack::with_token("the-token-before-rotation").await;
    let stale = session(&before, "the-token-before-rotation").await;
    let forged = "smo_console=0000000000000000000000000000000000000000000000000000000000000000";

    let http = client();
    let routes = every_route();
    assert!(routes.len() > 40, "{routes:?}");
    let mut wrong = Vec::new();
    for (method, path) in &routes {
        let open = OPEN.iter().any(|(m, p)| m == method && p == path);
        for (who, headers) in [
            ("no token", vec![]),
            ("a forged cookie", vec![("cookie", forged)]),
            ("a stale cookie", vec![("cookie", stale.as_str())]),
            (
                "a wrong token",
                vec![("authorization", "Bearer auth-walk-tokem")],
            ),
            (
                "a longer token",
                vec![("authorization", "Bearer auth-walk-token2")],
            ),
        ] {
            let (status, location) = send(&http, &stack.api, method, path, &headers).await;
            let refused = if path.starts_with("/console") {
                status == 303 && location == "/console/login"
            } else {
                status == 401
            };
            if open == refused {
                wrong.push(format!(
                    "{method} {path} with {who}: {status} {location} (open: {open})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "routes answered against the open list:\n{}",
        wrong.join("\n")
    );
    // Nothing happened to the graphs that share their names with open paths.
    for name in ["assets", "login"] {
        let g = stack.client.get_graph(name).await.unwrap();
        assert_eq!(g.desired, "running", "{name}");
    }

    // The same walk with the token (API) or a session (console) gets past the guard on every
    // route that only reads: the refusals above were the guard, not a missing route.
    let cookie = session(&stack, TOKEN).await;
    let bearer = format!("Bearer {TOKEN}");
    for (method, path) in routes.iter().filter(|(m, _)| m == "GET") {
        let headers: Vec<(&str, &str)> = if path.starts_with("/console") {
            vec![("cookie", cookie.as_str())]
        } else {
            vec![("authorization", bearer.as_str())]
        };
        let (status, location) = send(&http, &stack.api, method, path, &headers).await;
        assert!(
            status != 401 && location != "/console/login",
            "{method} {path} refused with the token: {status}"
        );
    }
    // `/metrics` in particular answers a scrape that sends the token.
    let metrics = http
        .get(format!("{}/metrics", stack.api))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("smo_"));
}
