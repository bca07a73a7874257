//! The monitoring stack's HTTP clients (reqwest): Prometheus queries and reloads, Grafana's
//! dashboard API. Timeouts everywhere: a hung Prometheus must fail a tick, not stall a worker.

use std::time::Duration;

use serde_json::Value;

use crate::credentials::Credentials;

/// Errors talking to Prometheus or Grafana. All are transient from a job's point of view except a
/// rejected request (4xx other than 404/408/429).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// No answer in time, or no connection.
    #[error("{service} at {url}: {message}")]
    Unreachable {
        /// Prometheus or Grafana.
        service: &'static str,
        /// Base URL.
        url: String,
        /// Why.
        message: String,
    },
    /// An HTTP error status.
    #[error("{service} answered {status}: {body}")]
    Status {
        /// Prometheus or Grafana.
        service: &'static str,
        /// The status.
        status: u16,
        /// The body, shortened.
        body: String,
    },
    /// The answer could not be understood.
    #[error("{0}")]
    Answer(String),
}

impl IoError {
    /// True when a retry can help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500 || matches!(status, 404 | 408 | 429),
            _ => true,
        }
    }
}

fn http(timeout: Duration) -> reqwest::Client {
    // reqwest is built without a bundled TLS provider: make sure the process has one.
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

async fn check(
    service: &'static str,
    url: &str,
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<Vec<u8>, IoError> {
    let resp = r.map_err(|e| IoError::Unreachable {
        service,
        url: url.to_string(),
        message: e.to_string(),
    })?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| IoError::Unreachable {
        service,
        url: url.to_string(),
        message: e.to_string(),
    })?;
    if !status.is_success() {
        let body: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
        return Err(IoError::Status {
            service,
            status: status.as_u16(),
            body,
        });
    }
    Ok(bytes.to_vec())
}

/// A Prometheus server's HTTP API.
#[derive(Clone)]
pub struct Prometheus {
    base: String,
    auth: Credentials,
    http: reqwest::Client,
}

impl Prometheus {
    /// A client of the Prometheus at `base` (e.g. `http://127.0.0.1:9090`), without credentials.
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            auth: Credentials::None,
            http: http(timeout),
        }
    }

    /// The same client sending `auth` with every request.
    pub fn with_auth(mut self, auth: Credentials) -> Self {
        self.auth = auth;
        self
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.auth
            .apply(self.http.request(m, format!("{}{path}", self.base)))
    }

    /// The raw answer to an instant query.
    async fn instant(&self, query: &str) -> Result<Vec<u8>, IoError> {
        check(
            "prometheus",
            &self.base,
            self.req(reqwest::Method::GET, "/api/v1/query")
                .query(&[("query", query)])
                .send()
                .await,
        )
        .await
    }

    /// Evaluates an instant query to one number (empty or NaN results are 0, as SPEC §3 says).
    pub async fn query(&self, query: &str) -> Result<f64, IoError> {
        let body = self.instant(query).await?;
        super::parse_query_result(&body).map_err(|e| IoError::Answer(format!("prometheus: {e}")))
    }

    /// Every default-metric service's request rate at once ([`super::fleet_rate_query`]), keyed
    /// `(namespace, service)`.
    pub async fn fleet_rates(
        &self,
        window: &str,
    ) -> Result<std::collections::HashMap<(String, String), Option<f64>>, IoError> {
        let body = self.instant(&super::fleet_rate_query(window)).await?;
        super::parse_fleet_rates(&body).map_err(|e| IoError::Answer(format!("prometheus: {e}")))
    }

    /// Evaluates a range query: every series with its samples from `start` to `end` (unix
    /// seconds) every `step` seconds.
    pub async fn query_range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<super::RangeSeries>, IoError> {
        let body = check(
            "prometheus",
            &self.base,
            self.req(reqwest::Method::GET, "/api/v1/query_range")
                .query(&[
                    ("query", query.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}")),
                ])
                .send()
                .await,
        )
        .await?;
        super::parse_range_result(&body).map_err(|e| IoError::Answer(format!("prometheus: {e}")))
    }

    /// Asks Prometheus to re-read its rule files (needs `--web.enable-lifecycle`).
    pub async fn reload(&self) -> Result<(), IoError> {
        check(
            "prometheus",
            &self.base,
            self.req(reqwest::Method::POST, "/-/reload").send().await,
        )
        .await?;
        Ok(())
    }

    /// Names of the loaded rule groups.
    pub async fn rule_groups(&self) -> Result<Vec<String>, IoError> {
        let body = check(
            "prometheus",
            &self.base,
            self.req(reqwest::Method::GET, "/api/v1/rules").send().await,
        )
        .await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| IoError::Answer(e.to_string()))?;
        Ok(v["data"]["groups"]
            .as_array()
            .map(|gs| {
                gs.iter()
                    .filter_map(|g| g["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Grafana's dashboard API.
#[derive(Clone)]
pub struct Grafana {
    base: String,
    auth: Credentials,
    http: reqwest::Client,
}

impl Grafana {
    /// A client of the Grafana at `base`.
    pub fn new(base: &str, auth: Credentials, timeout: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            auth,
            http: http(timeout),
        }
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.auth
            .apply(self.http.request(m, format!("{}{path}", self.base)))
    }

    /// Creates or overwrites a dashboard (`POST /api/dashboards/db`); returns its absolute URL.
    pub async fn upsert(&self, payload: &Value) -> Result<String, IoError> {
        let body = check(
            "grafana",
            &self.base,
            self.req(reqwest::Method::POST, "/api/dashboards/db")
                .json(payload)
                .send()
                .await,
        )
        .await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| IoError::Answer(e.to_string()))?;
        let path = v["url"]
            .as_str()
            .ok_or_else(|| IoError::Answer(format!("grafana: no url in {v}")))?;
        Ok(format!("{}{path}", self.base))
    }

    /// Deletes a dashboard; a missing one is fine.
    pub async fn delete(&self, uid: &str) -> Result<bool, IoError> {
        match check(
            "grafana",
            &self.base,
            self.req(
                reqwest::Method::DELETE,
                &format!("/api/dashboards/uid/{uid}"),
            )
            .send()
            .await,
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(IoError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether a dashboard exists.
    pub async fn exists(&self, uid: &str) -> Result<bool, IoError> {
        match check(
            "grafana",
            &self.base,
            self.req(reqwest::Method::GET, &format!("/api/dashboards/uid/{uid}"))
                .send()
                .await,
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(IoError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
