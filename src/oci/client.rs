//! The registry client: pull and push packaged descriptors over the OCI distribution API, and
//! fetch plain-URL artifacts. Every request has a timeout and every body a byte cap.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{OciError, OciRef, Source, UnpackLimits, unpack};
use crate::credentials::Credentials;

/// The layer media type smo writes and looks for first.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.hdag.descriptor.v1.tar+gzip";
/// The config media type smo writes (the config blob is `{}`).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.hdag.config.v1+json";
/// Blobs above this are refused before downloading: a descriptor package is kilobytes.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 20 * 1024 * 1024;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Manifests are small JSON documents; anything bigger is not one of ours.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Token endpoint answers are small too.
const MAX_TOKEN_BYTES: u64 = 1024 * 1024;

/// An OCI distribution client for packaged HDAG descriptors.
#[derive(Debug)]
pub struct Registry {
    /// `http://` instead of `https://` (a local registry in development and tests).
    pub plain_http: bool,
    /// Credentials.
    pub auth: Credentials,
    /// Per-request timeout, from connecting to the last body byte.
    pub timeout: Duration,
    /// Largest blob (or plain-URL artifact) accepted.
    pub max_blob_bytes: u64,
    /// Bounds for unpacking the artifact.
    pub limits: UnpackLimits,
    http: reqwest::Client,
    /// The last token from a Bearer challenge, reused until a 401 asks for another scope.
    token: TokenCache,
}

/// The cached bearer token; its Debug never shows it.
#[derive(Default)]
struct TokenCache(Mutex<Option<String>>);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache(***)")
    }
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// `sha256:<hex>` of some bytes.
pub(super) fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The parameters of a `WWW-Authenticate: Bearer k="v",…` challenge (values may hold commas).
fn bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = params.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Some(out)
}

fn is_gzip(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
}

impl Registry {
    /// A client with a 30 s timeout, the default size limits and the given credentials.
    ///
    /// Installs rustls' ring provider as the process default if none is installed yet (a no-op
    /// in the binaries, which install it first): without one, reqwest would panic here.
    pub fn new(plain_http: bool, auth: Credentials) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            plain_http,
            auth,
            timeout: Duration::from_secs(30),
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            limits: UnpackLimits::default(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            token: TokenCache::default(),
        }
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn base(&self, r: &OciRef) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", r.registry, r.repository)
    }

    fn net_error(&self, url: &str, e: reqwest::Error) -> OciError {
        if e.is_timeout() {
            OciError::Timeout {
                url: url.to_string(),
                seconds: self.timeout.as_secs().max(1),
            }
        } else {
            let mut message = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                message.push_str(": ");
                message.push_str(&s.to_string());
                src = s.source();
            }
            OciError::Unreachable {
                url: url.to_string(),
                message,
            }
        }
    }

    fn cached_token(&self) -> Option<String> {
        self.token.0.lock().ok().and_then(|t| t.clone())
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(t) = self.cached_token() {
            return rb.bearer_auth(t);
        }
        self.auth.apply(rb)
    }

    /// Sends a request; on a 401 with a Bearer challenge, fetches a token and retries once.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(reqwest::header::HeaderName, &str)],
        body: Option<&[u8]>,
    ) -> Result<reqwest::Response, OciError> {
        let build = || {
            let mut rb = self.http.request(method.clone(), url).timeout(self.timeout);
            for (k, v) in headers {
                rb = rb.header(k, *v);
            }
            if let Some(b) = body {
                rb = rb.body(b.to_vec());
            }
            self.authorize(rb)
        };
        let resp = build().send().await.map_err(|e| self.net_error(url, e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_challenge);
        let Some(params) = challenge else {
            return Err(OciError::Unauthorized {
                url: url.to_string(),
                status: 401,
            });
        };
        let token = self.fetch_token(url, &params).await?;
        if let Ok(mut t) = self.token.0.lock() {
            *t = Some(token);
        }
        let resp = build().send().await.map_err(|e| self.net_error(url, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(OciError::Unauthorized {
                url: url.to_string(),
                status: 401,
            });
        }
        Ok(resp)
    }

    /// The token dance of the distribution spec: GET realm?service=…&scope=…, with the Basic
    /// credentials if any.
    async fn fetch_token(
        &self,
        url: &str,
        params: &[(String, String)],
    ) -> Result<String, OciError> {
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let Some(realm) = get("realm").filter(|r| r.starts_with("http")) else {
            return Err(OciError::Unauthorized {
                url: url.to_string(),
                status: 401,
            });
        };
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = get("service") {
            query.push(("service", s));
        }
        if let Some(s) = get("scope") {
            query.push(("scope", s));
        }
        let mut rb = self.http.get(realm).query(&query).timeout(self.timeout);
        if let Credentials::Basic { user, password } = &self.auth {
            rb = rb.basic_auth(user, Some(password));
        }
        let resp = rb.send().await.map_err(|e| self.net_error(realm, e))?;
        let status = resp.status();
        if matches!(status.as_u16(), 401 | 403) {
            return Err(OciError::Unauthorized {
                url: realm.to_string(),
                status: status.as_u16(),
            });
        }
        let bytes = self
            .read_capped(resp, MAX_TOKEN_BYTES, realm, "the token answer")
            .await?;
        if !status.is_success() {
            return Err(status_error(realm, status, &bytes));
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&bytes).map_err(|e| OciError::Unreachable {
                url: realm.to_string(),
                message: format!("the token server's answer is not JSON: {e}"),
            })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OciError::Unreachable {
                url: realm.to_string(),
                message: "the token server's answer holds no token".into(),
            })
    }

    /// Reads a body, refusing more than `cap` bytes (checked against Content-Length first, then
    /// while streaming, since a server can lie or omit it).
    async fn read_capped(
        &self,
        mut resp: reqwest::Response,
        cap: u64,
        url: &str,
        what: &str,
    ) -> Result<Vec<u8>, OciError> {
        let too_large = || OciError::TooLarge {
            what: format!("{what} at {url}"),
            limit: cap,
        };
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.net_error(url, e))? {
            if out.len() as u64 + chunk.len() as u64 > cap {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Pulls `r` and returns the descriptor inside (YAML or JSON bytes, as packaged).
    pub async fn pull_descriptor(&self, r: &OciRef) -> Result<Vec<u8>, OciError> {
        let url = format!("{}/manifests/{}", self.base(r), r.reference);
        let accept = format!("{OCI_MANIFEST}, {DOCKER_MANIFEST}");
        let resp = self
            .send(Method::GET, &url, &[(ACCEPT, &accept)], None)
            .await?;
        let status = resp.status();
        let bytes = self
            .read_capped(resp, MAX_MANIFEST_BYTES, &url, "the manifest")
            .await?;
        check_status(&url, status, &bytes, || r.to_string())?;
        if r.is_digest() {
            let actual = sha256_digest(&bytes);
            if actual != r.reference {
                return Err(OciError::DigestMismatch {
                    what: format!("manifest of {r}"),
                    expected: r.reference.clone(),
                    actual,
                });
            }
        }
        let bad = |reason: String| OciError::BadManifest {
            reference: r.to_string(),
            reason,
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("the manifest is not valid JSON: {e}")))?;
        if let Some(mt) = &manifest.media_type
            && (mt.contains("index") || mt.contains("manifest.list"))
        {
            return Err(bad(format!(
                "this is a multi-platform index ({mt}), not a packaged HDAG descriptor"
            )));
        }
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == LAYER_MEDIA_TYPE)
            .or_else(|| {
                manifest.layers.iter().find(|l| {
                    l.media_type == OCI_LAYER
                        || l.media_type.ends_with("tar+gzip")
                        || l.media_type.ends_with("tar.gzip")
                })
            })
            .ok_or_else(|| {
                let types: Vec<&str> = manifest
                    .layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect();
                bad(format!(
                    "no gzip'd tar layer (expected {LAYER_MEDIA_TYPE}); layers: [{}]",
                    types.join(", ")
                ))
            })?;
        if layer.size > self.max_blob_bytes {
            return Err(OciError::TooLarge {
                what: format!("layer {} of {r} ({} bytes)", layer.digest, layer.size),
                limit: self.max_blob_bytes,
            });
        }
        let hex_ok = layer
            .digest
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !hex_ok {
            return Err(bad(format!(
                "layer digest {:?} is not sha256:<64 hex digits>",
                layer.digest
            )));
        }
        let blob_url = format!("{}/blobs/{}", self.base(r), layer.digest);
        let resp = self.send(Method::GET, &blob_url, &[], None).await?;
        let status = resp.status();
        let blob = self
            .read_capped(
                resp,
                layer.size,
                &blob_url,
                "the layer (bigger than its manifest says)",
            )
            .await?;
        check_status(&blob_url, status, &blob, || {
            format!("layer {} of {r}", layer.digest)
        })?;
        let actual = sha256_digest(&blob);
        if actual != layer.digest.to_ascii_lowercase() {
            return Err(OciError::DigestMismatch {
                what: format!("layer of {r}"),
                expected: layer.digest.clone(),
                actual,
            });
        }
        unpack(&blob, self.limits)
    }

    /// Uploads a blob unless the registry has it already; monolithic (POST then PUT ?digest=).
    async fn upload_blob(&self, r: &OciRef, data: &[u8]) -> Result<String, OciError> {
        let digest = sha256_digest(data);
        let head_url = format!("{}/blobs/{digest}", self.base(r));
        let head = self.send(Method::HEAD, &head_url, &[], None).await?;
        if head.status().is_success() {
            return Ok(digest);
        }
        let start_url = format!("{}/blobs/uploads/", self.base(r));
        let resp = self.send(Method::POST, &start_url, &[], None).await?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = self
            .read_capped(resp, MAX_MANIFEST_BYTES, &start_url, "the answer")
            .await?;
        check_status(&start_url, status, &bytes, || {
            format!("repository {}", r.repository)
        })?;
        let location = location.ok_or_else(|| OciError::Status {
            url: start_url.clone(),
            status: status.as_u16(),
            body: "the upload answer has no Location header".into(),
        })?;
        let mut put_url = Url::parse(&start_url)
            .and_then(|base| base.join(&location))
            .map_err(|e| OciError::Status {
                url: start_url.clone(),
                status: status.as_u16(),
                body: format!("bad upload Location {location:?}: {e}"),
            })?;
        put_url.query_pairs_mut().append_pair("digest", &digest);
        let put_url = put_url.to_string();
        let resp = self
            .send(
                Method::PUT,
                &put_url,
                &[(CONTENT_TYPE, "application/octet-stream")],
                Some(data),
            )
            .await?;
        let status = resp.status();
        let bytes = self
            .read_capped(resp, MAX_MANIFEST_BYTES, &put_url, "the answer")
            .await?;
        check_status(&put_url, status, &bytes, || {
            format!("upload to {}", r.repository)
        })?;
        Ok(digest)
    }

    /// Pushes a packaged descriptor (see [`crate::oci::package`]) as `r` and returns the
    /// manifest digest, with which the exact artifact can be deployed (`oci://…@sha256:…`).
    pub async fn push_descriptor(&self, r: &OciRef, tgz: &[u8]) -> Result<String, OciError> {
        if r.is_digest() {
            return Err(OciError::InvalidReference {
                reference: r.to_string(),
                reason: "push needs a tag, not a digest".into(),
            });
        }
        // Refuse to publish what nobody could pull.
        unpack(tgz, self.limits)?;
        if tgz.len() as u64 > self.max_blob_bytes {
            return Err(OciError::TooLarge {
                what: "the package".into(),
                limit: self.max_blob_bytes,
            });
        }
        let config = b"{}";
        let config_digest = self.upload_blob(r, config).await?;
        let layer_digest = self.upload_blob(r, tgz).await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": LAYER_MEDIA_TYPE,
                "digest": layer_digest,
                "size": tgz.len(),
            }],
        });
        let body = serde_json::to_vec(&manifest).map_err(|e| OciError::Package(e.to_string()))?;
        let url = format!("{}/manifests/{}", self.base(r), r.reference);
        let resp = self
            .send(
                Method::PUT,
                &url,
                &[(CONTENT_TYPE, OCI_MANIFEST)],
                Some(&body),
            )
            .await?;
        let status = resp.status();
        let bytes = self
            .read_capped(resp, MAX_MANIFEST_BYTES, &url, "the answer")
            .await?;
        check_status(&url, status, &bytes, || r.to_string())?;
        Ok(sha256_digest(&body))
    }

    /// Fetches a plain `http(s)://` artifact: unpacked when gzip'd, else taken as the descriptor.
    pub async fn fetch_url(&self, url: &str) -> Result<Vec<u8>, OciError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(OciError::InvalidReference {
                reference: url.to_string(),
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        let resp = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.net_error(url, e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(OciError::NotFound {
                what: url.to_string(),
            });
        }
        let bytes = self
            .read_capped(resp, self.max_blob_bytes, url, "the artifact")
            .await?;
        check_status(url, status, &bytes, || url.to_string())?;
        if is_gzip(&bytes) {
            return unpack(&bytes, self.limits);
        }
        if bytes.len() as u64 > self.limits.max_total_bytes {
            return Err(OciError::TooLarge {
                what: format!("the descriptor at {url}"),
                limit: self.limits.max_total_bytes,
            });
        }
        Ok(bytes)
    }

    /// Fetches the descriptor behind a user's reference, `oci://…` or `http(s)://…`.
    pub async fn fetch_source(&self, source: &Source) -> Result<Vec<u8>, OciError> {
        match source {
            Source::Oci(r) => self.pull_descriptor(r).await,
            Source::Url(u) => self.fetch_url(u).await,
        }
    }
}

fn status_error(url: &str, status: StatusCode, body: &[u8]) -> OciError {
    OciError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}

/// Maps a non-success status to an error: 404 names `what`, 401/403 ask for credentials.
fn check_status(
    url: &str,
    status: StatusCode,
    body: &[u8],
    what: impl FnOnce() -> String,
) -> Result<(), OciError> {
    match status.as_u16() {
        s if status.is_success() || s == 304 => Ok(()),
        404 => Err(OciError::NotFound { what: what() }),
        s @ (401 | 403) => Err(OciError::Unauthorized {
            url: url.to_string(),
            status: s,
        }),
        _ => Err(status_error(url, status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_commas_in_quotes() {
        let p = bearer_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .expect("bearer");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.example.com/token".into()),
                ("service".into(), "registry.example.com".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        assert!(bearer_challenge(r#"Basic realm="x""#).is_none());
    }

    #[test]
    fn digests_and_redaction() {
        assert_eq!(
            sha256_digest(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let dbg = format!(
            "{:?}",
            Registry::new(
                false,
                Credentials::Basic {
                    user: "u".into(),
                    password: "hunter2".into()
                }
            )
        );
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
