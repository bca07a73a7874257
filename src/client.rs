//! A small typed client of smo's REST API, used by the `smo` CLI (and by tests).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// What went wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer.
    #[error(
        "cannot reach smo at {url}: {message} (is `smo run` running? set api_url in ~/.smo/config.yaml)"
    )]
    Unreachable {
        /// Base URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The API answered with a problem document.
    #[error("{detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's detail line.
        detail: String,
        /// Listed problems (`path: message`).
        problems: Vec<String>,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from smo: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Exit code for the CLI: 2 for bad input (400/413/422), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Problem {
                status: 400 | 413 | 422,
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// The API client.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = rb.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            message: root_cause(&e),
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let detail = v["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
            let problems = v["problems"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "{}: {}",
                                p["path"].as_str().unwrap_or("?"),
                                p["message"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(ClientError::Problem {
                status: status.as_u16(),
                detail,
                problems,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    /// POST without a body.
    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.req(reqwest::Method::POST, path)).await
    }

    /// POST a JSON body.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ClientError> {
        self.send(self.req(reqwest::Method::POST, path).json(body))
            .await
    }

    /// DELETE.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }

    /// POST a descriptor (YAML or JSON) to a project.
    pub async fn deploy(
        &self,
        project: &str,
        body: Vec<u8>,
        dry_run: bool,
    ) -> Result<Value, ClientError> {
        let ct = if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            "application/json"
        } else {
            "application/yaml"
        };
        let mut path = format!("/project/{project}/graphs");
        if dry_run {
            path.push_str("?dry_run=true");
        }
        self.send(
            self.req(reqwest::Method::POST, &path)
                .header("content-type", ct)
                .body(body),
        )
        .await
    }
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut src: &dyn std::error::Error = e;
    while let Some(next) = src.source() {
        src = next;
    }
    src.to_string()
}
