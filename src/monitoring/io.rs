//! The monitoring stack's HTTP clients (reqwest): Prometheus queries and reloads, Grafana's
//! dashboard API. Timeouts everywhere: a hung Prometheus must fail a tick, not stall a worker.

use std::time::Duration;

use serde_json::Value;

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
    auth: HttpAuth,
    http: reqwest::Client,
}

impl Prometheus {
    /// A client of the Prometheus at `base` (e.g. `http://127.0.0.1:9090`), without credentials.
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            auth: HttpAuth::None,
            http: http(timeout),
        }
    }

    /// The same client sending `auth` with every request.
    pub fn with_auth(mut self, auth: HttpAuth) -> Self {
        self.auth = auth;
        self
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.auth
            .apply(self.http.request(m, format!("{}{path}", self.base)))
    }

    /// Evaluates an instant query to one number (empty or NaN results are 0, as SPEC §3 says).
    pub async fn query(&self, query: &str) -> Result<f64, IoError> {
        let body = check(
            "prometheus",
            &self.base,
            self.req(reqwest::Method::GET, "/api/v1/query")
                .query(&[("query", query)])
                .send()
                .await,
        )
        .await?;
        super::parse_query_result(&body).map_err(|e| IoError::Answer(format!("prometheus: {e}")))
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

/// How smo authenticates to Prometheus or Grafana.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HttpAuth {
    /// No credentials (anonymous, or the sim).
    #[default]
    None,
    /// Basic auth (Prometheus's `--web.config.file`, a proxy, Grafana users).
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// A bearer token (a Grafana service-account token, a proxy in front of Prometheus).
    Bearer(String),
}

impl HttpAuth {
    /// From configured parts: a token wins; a user needs a password; nothing set means none.
    pub fn from_parts(
        token: Option<&str>,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self, String> {
        let nonempty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
        match (nonempty(token), nonempty(user), nonempty(password)) {
            (Some(t), _, _) => Ok(Self::Bearer(t)),
            (None, Some(user), Some(password)) => Ok(Self::Basic { user, password }),
            (None, Some(_), None) => Err("a user is set but no password".into()),
            (None, None, Some(_)) => Err("a password is set but no user".into()),
            (None, None, None) => Ok(Self::None),
        }
    }

    fn apply(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            HttpAuth::None => r,
            HttpAuth::Basic { user, password } => r.basic_auth(user, Some(password)),
            HttpAuth::Bearer(t) => r.bearer_auth(t),
        }
    }
}

/// Grafana's dashboard API.
#[derive(Clone)]
pub struct Grafana {
    base: String,
    auth: HttpAuth,
    http: reqwest::Client,
}

impl Grafana {
    /// A client of the Grafana at `base`.
    pub fn new(base: &str, auth: HttpAuth, timeout: Duration) -> Self {
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

#[cfg(test)]
mod tests {
    use super::HttpAuth;

    #[test]
    fn credentials_from_parts_prefer_a_token_and_refuse_half_pairs() {
        assert_eq!(
            HttpAuth::from_parts(Some("t"), Some("u"), Some("p")),
            Ok(HttpAuth::Bearer("t".into()))
        );
        assert_eq!(
            HttpAuth::from_parts(None, Some("u"), Some("p")),
            Ok(HttpAuth::Basic {
                user: "u".into(),
                password: "p".into()
            })
        );
        // Empty values (an unset Secret key rendered as "") count as unset.
        assert_eq!(
            HttpAuth::from_parts(Some(""), None, Some("")),
            Ok(HttpAuth::None)
        );
        assert!(
            HttpAuth::from_parts(None, Some("u"), None)
                .unwrap_err()
                .contains("no password")
        );
        assert!(
            HttpAuth::from_parts(None, None, Some("p"))
                .unwrap_err()
                .contains("no user")
        );
    }
}
