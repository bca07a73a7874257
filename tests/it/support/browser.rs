//! A real browser for tests: Debian's chromium driven through chromedriver's W3C WebDriver API
//! (plain JSON over loopback HTTP; both installed by scripts/setup).

use std::{path::PathBuf, process::Command, time::Duration};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Proc, free_port};

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    /// Where screenshots go.
    pub shots: PathBuf,
    _driver: Proc,
    _profile: PathBuf,
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

impl Browser {
    /// A headless chromium with a fresh profile; screenshots go to `target/console-screenshots`.
    pub async fn start() -> Browser {
        let driver_bin = program("SMO_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("SMO_CHROMIUM", "/usr/bin/chromium");
        assert!(
            std::path::Path::new(&driver_bin).exists() && std::path::Path::new(&chromium).exists(),
            "{driver_bin} or {chromium} is missing: scripts/setup installs chromium and chromium-driver"
        );
        let port = free_port();
        let driver = Proc(
            Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let base = format!("http://127.0.0.1:{port}");
        super::wait_http(&format!("{base}/status")).await;
        let profile = std::env::temp_dir().join(format!("smo-chromium-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let http = reqwest::Client::new();
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"));
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            http,
            session: format!("{base}/session/{id}"),
            shots,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.session))
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver json");
        if let Some(err) = r["value"].get("error") {
            panic!("webdriver {path}: {err} {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// A string the session reports at `path`.
    async fn get_text(&self, path: &str) -> String {
        self.call(reqwest::Method::GET, path, None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn url(&self) -> String {
        self.get_text("/url").await
    }

    pub async fn title(&self) -> String {
        self.get_text("/title").await
    }

    /// The page's HTML as it is now (after scripts).
    pub async fn source(&self) -> String {
        self.get_text("/source").await
    }

    async fn find(&self, css: &str) -> String {
        self.find_by("css selector", css).await
    }

    async fn find_by(&self, using: &str, value: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": using, "value": value})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {value}: {v}"))
            .to_string()
    }

    /// Clicks the first element whose own text is `text` (a tab, a button of an app whose markup
    /// the test does not own).
    pub async fn click_text(&self, text: &str) {
        let id = self
            .find_by("xpath", &format!("//*[normalize-space(text())='{text}']"))
            .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.get_text(&format!("/element/{id}/text")).await
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks something that loads a new page (a link, a form's button) and waits until the new
    /// page has loaded: chromedriver may return from the click before the navigation starts.
    pub async fn click_to_page(&self, css: &str) {
        self.script("window.__smoOldPage = true;", json!([])).await;
        self.click(css).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let fresh = self
                .script(
                    "return window.__smoOldPage === undefined && document.readyState === 'complete';",
                    json!([]),
                )
                .await;
            if fresh == Value::Bool(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "clicking {css} loaded no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Types into a field, as a user would (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Pastes a long text into a field (a script sets its value: typing megabytes key by key
    /// would only test the driver).
    pub async fn paste(&self, css: &str, text: &str) {
        self.script(
            "document.querySelector(arguments[0]).value = arguments[1];",
            json!([css, text]),
        )
        .await;
    }

    /// Saves a PNG of the viewport as `name.png` in [`Browser::shots`].
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64"))
            .expect("png");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits until the page source contains `needle`, checking every half second; with `reload`
    /// the test reloads the page, without it the page must update itself.
    pub async fn wait_for(&self, what: &str, secs: u64, needle: &str, reload: bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let src = self.source().await;
            if src.contains(needle) {
                return src;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out after {secs}s waiting for {what}; page:\n{src}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            if reload {
                self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
                    .await;
            }
        }
    }
}

impl Browser {
    /// Ends the session: chromium exits.
    pub async fn quit(&self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked never called quit: end its chromium by its own profile dir.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(format!("user-data-dir={}", self._profile.display()))
            .status();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}
