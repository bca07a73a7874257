//! One settings struct for every role, layered: defaults < `~/.smo/config.yaml` < `SMO_*`
//! environment < command-line flags (clap reads the last two).

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::credentials::{Secret, exposed};

/// The default database: the throwaway server `scripts/dev-db start` runs.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:55432/smo";

/// The default API address of the `smo` CLI.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

/// Settings read from `~/.smo/config.yaml` (the reference's settings plus smo's own); every field
/// optional so the file may be partial. Unknown keys are errors that name the key: a typo must
/// not silently fall back to a default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileSettings {
    /// PostgreSQL URL (server roles, smo-admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Where the `smo` CLI reaches the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Bearer token: required by the API when set there, sent by the CLI when set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<Secret>,
    /// API listen address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Kubeconfig of the Karmada API server (or of `smo sim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub karmada_kubeconfig: Option<PathBuf>,
    /// Prometheus base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
    /// Prometheus basic-auth user (Prometheus's `--web.config.file`, or a proxy in front).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_user: Option<String>,
    /// Prometheus basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_password: Option<Secret>,
    /// Bearer token sent to Prometheus (instead of user/password), e.g. for an auth proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_token: Option<Secret>,
    /// Grafana base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana_url: Option<String>,
    /// Where operators reach apalis-board (`smo-admin board`); the console's queue page links
    /// there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_url: Option<String>,
    /// Grafana basic-auth user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana_user: Option<String>,
    /// Grafana basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana_password: Option<Secret>,
    /// Grafana service-account token (instead of user/password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana_token: Option<Secret>,
    /// Where alert rules go: `prometheus-rule` (a PrometheusRule object through Karmada),
    /// `rule-file` (files in `rules_dir` + `POST /-/reload`) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_rules: Option<String>,
    /// Directory of rule files (`alert_rules: rule-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_dir: Option<PathBuf>,
    /// `rate()` window of the request-rate queries, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_window: Option<String>,
    /// How often member clusters' Ready conditions are read, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_health_interval: Option<String>,
    /// How long a cluster must stay NotReady or Unknown before failover moves its graphs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_failure_threshold: Option<String>,
    /// How long a lost cluster must stay Ready before graphs move back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_after: Option<String>,
    /// Graphs moved back per fail-back round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_max_moves: Option<usize>,
    /// The helm executable for Helm-chart artifacts (default `helm` on PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_binary: Option<PathBuf>,
    /// Reach OCI registries over plain HTTP (loopback registries always are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_plain_http: Option<bool>,
    /// OCI registry basic-auth user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_user: Option<String>,
    /// OCI registry basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_password: Option<Secret>,
    /// OCI registry bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_token: Option<Secret>,
    /// Pass `--plain-http` to helm for OCI registries without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_insecure_registry: Option<bool>,
    /// How often running graphs are rescaled, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_interval: Option<String>,
    /// Also serve this process's metrics here (worker and scheduler processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Jobs a worker runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_concurrency: Option<usize>,
    /// Database connections of a process (default: derived from its roles and concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_pool_size: Option<u32>,
    /// Time a client has to send a request's headers (and keep-alive idle time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_timeout: Option<String>,
    /// Time a client has to send a request's whole body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_body_timeout: Option<String>,
    /// Connections the API serves at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_max_connections: Option<usize>,
    /// Jobs a worker claims per fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_batch: Option<usize>,
    /// Worker name prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_prefix: Option<String>,
    /// How long finished jobs are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// How long the audit log keeps its rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_retention: Option<String>,
    /// How long in-flight jobs may run on after SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<String>,
    /// How often a worker heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<String>,
}

impl FileSettings {
    /// A copy fit for printing: secrets print as `***` by their type; the database URL loses
    /// its password.
    pub fn redacted(&self) -> Self {
        Self {
            database_url: self.database_url.as_deref().map(redact_url),
            ..self.clone()
        }
    }
}

/// Where the config file lives: `$SMO_CONFIG`, else `$SMO_DIR/config.yaml` (as the reference
/// CLI), else `~/.smo/config.yaml`.
pub fn config_path() -> PathBuf {
    if let Ok(p) = std::env::var("SMO_CONFIG") {
        return PathBuf::from(p);
    }
    if let Ok(d) = std::env::var("SMO_DIR") {
        return PathBuf::from(d).join("config.yaml");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".smo").join("config.yaml")
}

/// Reads the config file; a missing file is an empty one, a malformed one is an error naming it.
/// A file written by the reference SMO's CLI is read too (see [`parse_file`]); what it says that
/// smo cannot use is printed once as a warning.
pub fn load_file() -> Result<FileSettings, String> {
    let path = config_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (settings, warnings) =
                parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            for w in warnings {
                eprintln!("warning: {}: {w}", path.display());
            }
            Ok(settings)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileSettings::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl FileSettings {
    /// Every key of the file, as serde names them (so `SMO_<KEY>` variables need no list of
    /// their own that could drift from the struct).
    pub fn keys() -> &'static [&'static str] {
        struct Fields(Option<&'static [&'static str]>);
        impl<'de> serde::Deserializer<'de> for &mut Fields {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("fields only"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _name: &'static str,
                fields: &'static [&'static str],
                _visitor: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = Some(fields);
                Err(serde::de::Error::custom("fields only"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut f = Fields(None);
        let _ = FileSettings::deserialize(&mut f);
        f.0.unwrap_or(&[])
    }

    /// The file's settings with `SMO_<KEY>` environment variables laid over them: what the
    /// commands see, for `smo config` to print.
    pub fn with_env(self, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut map = self.to_map();
        for key in Self::keys() {
            let var = format!("SMO_{}", key.to_ascii_uppercase());
            // An empty variable is an unset one (how a chart renders a Secret key left out).
            let Some(text) = env(&var).filter(|t| !t.is_empty()) else {
                continue;
            };
            // A string first; a boolean or number when the key wants one.
            map.insert(key.to_string(), serde_json::Value::String(text.clone()));
            if serde_json::from_value::<Self>(serde_json::Value::Object(map.clone())).is_err() {
                let typed = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                map.insert(key.to_string(), typed);
            }
            serde_json::from_value::<Self>(serde_json::Value::Object(map.clone()))
                .map_err(|e| format!("{var}: {e}"))?;
        }
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())
    }
}

/// Parses a config file: smo's keys, and the keys the reference SMO's CLI writes (`db.url`,
/// `grafana.{host,username,password}`, `prometheus_host`, `helm.insecure_registry`,
/// `scaling.interval_seconds`) mapped onto smo's, with a warning for each of its settings smo
/// has no use for. Any other unknown key is still an error naming it (a typo must not pass).
pub fn parse_file(text: &str) -> Result<(FileSettings, Vec<String>), String> {
    use serde_json::Value;
    let mut warnings = Vec::new();
    let mut map = match serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())? {
        Value::Object(m) => m,
        Value::Null => serde_json::Map::new(),
        other => return Err(format!("expected a map of settings, got {other}")),
    };
    let set = |map: &mut serde_json::Map<String, Value>, key: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_null())
            && !map.contains_key(key)
        {
            map.insert(key.to_string(), v);
        }
    };
    let nested = |map: &mut serde_json::Map<String, Value>,
                  key: &str|
     -> Option<serde_json::Map<String, Value>> {
        match map.get(key) {
            Some(Value::Object(_)) => match map.remove(key) {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            },
            _ => None,
        }
    };
    if let Some(mut db) = nested(&mut map, "db") {
        match db.remove("url") {
            Some(Value::String(u)) if u.starts_with("postgres") => {
                set(&mut map, "database_url", Some(Value::String(u)));
            }
            Some(u) => warnings.push(format!(
                "db.url {u} is the reference SMO's database; smo keeps its state in PostgreSQL (set database_url)"
            )),
            None => {}
        }
        for k in db.keys() {
            warnings.push(format!("db.{k} has no meaning in smo (ignored)"));
        }
    }
    if let Some(mut g) = nested(&mut map, "grafana") {
        set(&mut map, "grafana_url", g.remove("host"));
        set(&mut map, "grafana_user", g.remove("username"));
        set(&mut map, "grafana_password", g.remove("password"));
        for k in g.keys() {
            warnings.push(format!("grafana.{k} has no meaning in smo (ignored)"));
        }
    }
    if let Some(p) = map.remove("prometheus_host") {
        set(&mut map, "prometheus_url", Some(p));
    }
    if let Some(mut h) = nested(&mut map, "helm") {
        set(
            &mut map,
            "helm_insecure_registry",
            h.remove("insecure_registry"),
        );
        for k in h.keys() {
            warnings.push(format!("helm.{k} has no meaning in smo (ignored)"));
        }
    }
    if let Some(mut sc) = nested(&mut map, "scaling") {
        let interval = sc.remove("interval_seconds").and_then(|v| v.as_f64());
        set(
            &mut map,
            "scaling_interval",
            interval.map(|i| Value::String(format!("{}s", i.round() as u64))),
        );
        for k in sc.keys() {
            warnings.push(format!(
                "scaling.{k} has no meaning in smo (ignored; smo's scaling reads each service's intent)"
            ));
        }
    }
    let settings = serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
    Ok((settings, warnings))
}

/// Resolves the database URL: flag/env (already merged by clap) < file < default.
impl FileSettings {
    /// `top` laid over `self`: every key `top` sets wins. The layers are defaults < file < env
    /// < flags: [`load_file`], then [`FileSettings::with_env`], then the command's flags as a
    /// `FileSettings` of their own, then [`ServerSettings::resolve`] fills in the defaults.
    pub fn overlay(self, top: &FileSettings) -> Result<Self, String> {
        let mut base = self.to_map();
        base.extend(top.to_map().into_iter().filter(|(_, v)| !v.is_null()));
        serde_json::from_value(serde_json::Value::Object(base)).map_err(|e| e.to_string())
    }

    /// The settings as a JSON map of the keys set, secrets included (the layers merge maps).
    fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match Secret::revealing(|| serde_json::to_value(self)) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }
}

pub fn database_url(flag_or_env: Option<String>, file: &FileSettings) -> String {
    flag_or_env
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
}

impl FileSettings {
    /// The OCI registry settings this file describes.
    pub fn registry(&self) -> RegistrySettings {
        // A half user/password pair stays anonymous here; the registry's 401 then says why.
        let auth = crate::credentials::Credentials::from_parts(
            exposed(&self.registry_token),
            self.registry_user.as_deref(),
            exposed(&self.registry_password),
        )
        .unwrap_or_default();
        RegistrySettings {
            plain_http: self.registry_plain_http.unwrap_or(false),
            auth,
        }
    }
}

/// How smo reaches OCI registries (deploy by reference, `smo graph push`).
#[derive(Clone, Default)]
pub struct RegistrySettings {
    /// Plain HTTP for every registry (loopback registries always are).
    pub plain_http: bool,
    /// Credentials.
    pub auth: crate::credentials::Credentials,
}

impl RegistrySettings {
    /// A client for a registry at `host`: plain HTTP when configured or when the host is this
    /// machine (as Docker does for localhost registries).
    pub fn client_for(&self, host: Option<&str>) -> crate::oci::Registry {
        let loopback = host.is_some_and(is_loopback);
        crate::oci::Registry::new(self.plain_http || loopback, self.auth.clone())
    }
}

/// Whether a registry host (with optional port) is on this machine.
pub fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    matches!(h, "localhost" | "[::1]") || h.starts_with("127.")
}

/// Writes the config file, creating `~/.smo`; refuses to overwrite unless `force`.
pub fn write_file(settings: &FileSettings, force: bool) -> Result<PathBuf, String> {
    let path = config_path();
    if path.exists() && !force {
        return Err(format!(
            "{} exists; use --force to overwrite it",
            path.display()
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text =
        Secret::revealing(|| serde_norway::to_string(settings)).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Settings of the long-running roles.
/// A duration setting: its value, else its default; an error names the key.
fn duration(key: &str, v: &Option<String>, default: &str) -> Result<Duration, String> {
    parse_duration(v.as_deref().unwrap_or(default)).map_err(|e| format!("{key}: {e}"))
}

impl ServerSettings {
    /// The server roles' settings from the layered settings: every default is stated here,
    /// once.
    pub fn resolve(s: &FileSettings, database_url: String) -> Result<ServerSettings, String> {
        Ok(ServerSettings {
            database_url,
            listen: s.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into()),
            metrics_listen: s.metrics_listen.clone().filter(|l| !l.is_empty()),
            worker_concurrency: s.worker_concurrency.unwrap_or(64),
            db_pool_size: s.db_pool_size,
            http: HttpLimits {
                header_read_timeout: duration(
                    "http_header_timeout",
                    &s.http_header_timeout,
                    "10s",
                )?,
                body_read_timeout: duration("http_body_timeout", &s.http_body_timeout, "30s")?,
                max_connections: s.http_max_connections.unwrap_or(1024),
            },
            worker_batch: s.worker_batch.unwrap_or(256),
            worker_prefix: s.worker_prefix.clone().unwrap_or_else(|| "smo".into()),
            retention: duration("retention", &s.retention, "7d")?,
            audit_retention: duration("audit_retention", &s.audit_retention, "90d")?,
            shutdown_grace: duration("shutdown_grace", &s.shutdown_grace, "30s")?,
            heartbeat_interval: duration("heartbeat_interval", &s.heartbeat_interval, "5s")?,
            karmada_kubeconfig: s.karmada_kubeconfig.clone(),
            api_token: s.api_token.clone(),
            registry: s.registry(),
            board_url: s.board_url.clone(),
            helm_binary: s
                .helm_binary
                .clone()
                .unwrap_or_else(|| PathBuf::from("helm")),
            helm_plain_http: s.helm_insecure_registry.unwrap_or(false),
            failover: {
                let scaling = duration("scaling_interval", &s.scaling_interval, "30s")?;
                FailoverSettings {
                    health_interval: duration(
                        "cluster_health_interval",
                        &s.cluster_health_interval,
                        "10s",
                    )?,
                    failure_threshold: duration(
                        "cluster_failure_threshold",
                        &s.cluster_failure_threshold,
                        "30s",
                    )?,
                    // Two scaling intervals, unless set.
                    failback_after: match &s.failback_after {
                        Some(_) => duration("failback_after", &s.failback_after, "60s")?,
                        None => scaling * 2,
                    },
                    failback_max_moves: s.failback_max_moves.unwrap_or(20),
                    ..FailoverSettings::default()
                }
            },
            monitoring: MonitoringSettings {
                prometheus_url: s.prometheus_url.clone(),
                grafana_url: s.grafana_url.clone(),
                prometheus_user: s.prometheus_user.clone(),
                prometheus_password: s.prometheus_password.clone(),
                prometheus_token: s.prometheus_token.clone(),
                grafana_user: s.grafana_user.clone(),
                grafana_password: s.grafana_password.clone(),
                grafana_token: s.grafana_token.clone(),
                alert_rules: s
                    .alert_rules
                    .clone()
                    .unwrap_or_else(|| "prometheus-rule".into()),
                rules_dir: s.rules_dir.clone(),
                scaling_interval: duration("scaling_interval", &s.scaling_interval, "30s")?,
                rate_window: s.rate_window.clone().unwrap_or_else(|| "1m".into()),
            },
        })
    }
}

#[derive(Clone)]
pub struct ServerSettings {
    /// PostgreSQL URL.
    pub database_url: String,
    /// API listen address.
    pub listen: String,
    /// Where this process also serves its own /metrics (worker and scheduler pods).
    pub metrics_listen: Option<String>,
    /// Jobs each worker runs at once (bounded by what the pool can serve; see `server::pool_plan`).
    pub worker_concurrency: usize,
    /// Database connections of the process; `None` derives it from the roles and concurrency.
    pub db_pool_size: Option<u32>,
    /// The API server's timeouts and connection cap.
    pub http: HttpLimits,
    /// Jobs claimed per fetch.
    pub worker_batch: usize,
    /// Prefix of the worker name (the pod name in Kubernetes).
    pub worker_prefix: String,
    /// Finished jobs are kept this long.
    pub retention: Duration,
    /// Audit rows are kept this long (pruned by the same `jobs.prune` job).
    pub audit_retention: Duration,
    /// In-flight jobs may take this long to finish on SIGTERM.
    pub shutdown_grace: Duration,
    /// Worker heartbeat period.
    pub heartbeat_interval: Duration,
    /// Kubeconfig of the Karmada API server; jobs that need it fail clearly without it.
    pub karmada_kubeconfig: Option<PathBuf>,
    /// Bearer token the API requires (none: open).
    pub api_token: Option<Secret>,
    /// Prometheus, Grafana, alert rules, scaling.
    pub monitoring: MonitoringSettings,
    /// Cluster health, failover and fail-back.
    pub failover: FailoverSettings,
    /// OCI registries (deploy by reference).
    pub registry: RegistrySettings,
    /// apalis-board's address, linked from the console's queue page.
    pub board_url: Option<String>,
    /// The helm executable.
    pub helm_binary: PathBuf,
    /// `--plain-http` for helm.
    pub helm_plain_http: bool,
}

/// Cluster health, failover and fail-back (README: "Losing a cluster").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailoverSettings {
    /// How often the clusters' Ready conditions are read (one list call).
    pub health_interval: Duration,
    /// NotReady or Unknown this long, continuously, and the cluster is lost (Karmada's
    /// `--cluster-failure-threshold` default).
    pub failure_threshold: Duration,
    /// Ready this long, continuously, after being lost, and graphs move back.
    pub failback_after: Duration,
    /// Graphs moved back per fail-back round.
    pub failback_max_moves: usize,
    /// Time limit of the joint failover solve, in seconds.
    pub solve_time_limit_secs: f64,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_secs(10),
            failure_threshold: Duration::from_secs(30),
            failback_after: Duration::from_secs(60),
            failback_max_moves: 20,
            solve_time_limit_secs: 10.0,
        }
    }
}

/// The monitoring stack's settings.
#[derive(Debug, Clone, Default)]
pub struct MonitoringSettings {
    /// Prometheus base URL (scaling reads request rates there).
    pub prometheus_url: Option<String>,
    /// Prometheus basic auth.
    pub prometheus_user: Option<String>,
    /// Prometheus basic auth.
    pub prometheus_password: Option<Secret>,
    /// Prometheus bearer token.
    pub prometheus_token: Option<Secret>,
    /// Grafana base URL (dashboards).
    pub grafana_url: Option<String>,
    /// Grafana basic auth.
    pub grafana_user: Option<String>,
    /// Grafana basic auth.
    pub grafana_password: Option<Secret>,
    /// Grafana token.
    pub grafana_token: Option<Secret>,
    /// `prometheus-rule`, `rule-file` or `none`.
    pub alert_rules: String,
    /// Directory of rule files.
    pub rules_dir: Option<PathBuf>,
    /// How often running graphs are rescaled.
    pub scaling_interval: Duration,
    /// `rate()` window.
    pub rate_window: String,
}

/// Hides the password of a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Parses `90s`, `15m`, `12h`, `7d` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 90s, 15m, 12h or 7d"))?;
    if unit == "ms" {
        return Ok(Duration::from_millis(n));
    }
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use s, m, h, d or w"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

/// Limits of the API's HTTP server (settings `http_*`, see README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, counted from when the server waits for
    /// them; it also closes keep-alive connections idle that long.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's whole body.
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert!(parse_duration("7y").unwrap_err().contains("unit"));
        assert!(
            parse_duration("abc")
                .unwrap_err()
                .contains("invalid duration")
        );
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://smo:secret@db:5432/smo"),
            "postgres://smo:***@db:5432/smo"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/smo"),
            "postgres://postgres@127.0.0.1/smo"
        );
    }

    #[test]
    fn failover_keys_have_their_defaults_and_failback_follows_the_scaling_interval() {
        let (file, _) = parse_file("scaling_interval: 20s\n").unwrap();
        let s = ServerSettings::resolve(&file, "postgres://x".into()).unwrap();
        assert_eq!(s.failover.health_interval, Duration::from_secs(10));
        assert_eq!(s.failover.failure_threshold, Duration::from_secs(30));
        assert_eq!(s.failover.failback_after, Duration::from_secs(40));
        assert_eq!(s.failover.failback_max_moves, 20);
        let (file, _) = parse_file(
            "cluster_failure_threshold: 45s\nfailback_after: 5m\nfailback_max_moves: 3\ncluster_health_interval: 2s\n",
        )
        .unwrap();
        let s = ServerSettings::resolve(&file, "postgres://x".into()).unwrap();
        assert_eq!(s.failover.failure_threshold, Duration::from_secs(45));
        assert_eq!(s.failover.failback_after, Duration::from_secs(300));
        assert_eq!(s.failover.failback_max_moves, 3);
        assert_eq!(s.failover.health_interval, Duration::from_secs(2));
        let (file, _) = parse_file("cluster_failure_threshold: soon\n").unwrap();
        let e = ServerSettings::resolve(&file, "postgres://x".into())
            .err()
            .unwrap();
        assert!(e.starts_with("cluster_failure_threshold"), "{e}");
    }

    #[test]
    fn a_config_written_by_the_reference_cli_is_read_and_what_smo_cannot_use_is_named() {
        let text = r#"
db: {url: "sqlite:////home/u/.smo/smo.db"}
karmada_kubeconfig: /home/u/.kube/karmada-apiserver.config
grafana: {host: "http://localhost:3000", username: admin, password: s3cret}
prometheus_host: "http://localhost:9090"
helm: {insecure_registry: true}
scaling: {interval_seconds: 30, cooldown: 60}
"#;
        let (s, warnings) = parse_file(text).unwrap();
        assert_eq!(s.database_url, None);
        assert_eq!(
            s.karmada_kubeconfig.as_deref(),
            Some(std::path::Path::new(
                "/home/u/.kube/karmada-apiserver.config"
            ))
        );
        assert_eq!(s.grafana_url.as_deref(), Some("http://localhost:3000"));
        assert_eq!(s.grafana_user.as_deref(), Some("admin"));
        assert_eq!(exposed(&s.grafana_password), Some("s3cret"));
        assert_eq!(s.prometheus_url.as_deref(), Some("http://localhost:9090"));
        assert_eq!(s.helm_insecure_registry, Some(true));
        assert_eq!(s.scaling_interval.as_deref(), Some("30s"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("db.url"), "{warnings:?}");
        assert!(warnings[1].contains("scaling.cooldown"), "{warnings:?}");
        // smo's own keys win over the reference's, and a typo is still an error naming it.
        let (s, _) =
            parse_file("grafana_url: http://mine\ngrafana: {host: http://theirs}\n").unwrap();
        assert_eq!(s.grafana_url.as_deref(), Some("http://mine"));
        let e = parse_file("grafana_ulr: http://x\n").unwrap_err();
        assert!(e.contains("grafana_ulr"), "{e}");
        assert!(parse_file("").unwrap().1.is_empty());
    }

    #[test]
    fn smo_variables_override_the_file_for_every_key_with_its_type() {
        assert!(FileSettings::keys().contains(&"database_url"));
        assert!(FileSettings::keys().contains(&"registry_plain_http"));
        let file = FileSettings {
            api_url: Some("http://file:8080".into()),
            grafana_url: Some("http://grafana-from-file".into()),
            ..Default::default()
        };
        let env = |k: &str| match k {
            "SMO_API_URL" => Some("http://env:9090".to_string()),
            "SMO_REGISTRY_PLAIN_HTTP" => Some("true".to_string()),
            "SMO_API_TOKEN" => Some("1234".to_string()),
            _ => None,
        };
        let s = file.with_env(env).unwrap();
        assert_eq!(s.api_url.as_deref(), Some("http://env:9090"));
        assert_eq!(s.grafana_url.as_deref(), Some("http://grafana-from-file"));
        assert_eq!(s.registry_plain_http, Some(true));
        assert_eq!(
            exposed(&s.api_token),
            Some("1234"),
            "a numeric-looking token stays text"
        );
        let bad = FileSettings::default()
            .with_env(|k| (k == "SMO_REGISTRY_PLAIN_HTTP").then(|| "maybe".to_string()))
            .unwrap_err();
        assert!(bad.contains("SMO_REGISTRY_PLAIN_HTTP"), "{bad}");
    }

    /// Defaults < file < env < flags, for every key alike. The file's `listen` (and every other
    /// server key) used to lose to the flag's built-in default even with no flag given.
    #[test]
    fn layers_apply_in_order_and_defaults_come_last() {
        let (file, _) = parse_file(
            "listen: 0.0.0.0:9000\nshutdown_grace: 45s\nworker_batch: 8\ngrafana_token: from-file\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "SMO_WORKER_BATCH" => Some("16".to_string()),
            "SMO_RETENTION" => Some("".to_string()), // empty = unset
            _ => None,
        };
        let flags = FileSettings {
            shutdown_grace: Some("90s".into()),
            ..Default::default()
        };
        let s = file.with_env(env).unwrap().overlay(&flags).unwrap();
        let r = ServerSettings::resolve(&s, "postgres://x".into()).unwrap();
        assert_eq!(r.listen, "0.0.0.0:9000", "the file, no flag or env");
        assert_eq!(r.worker_batch, 16, "env over file");
        assert_eq!(r.shutdown_grace, Duration::from_secs(90), "flag over file");
        assert_eq!(r.retention, Duration::from_secs(7 * 86_400), "default");
        assert_eq!(
            r.audit_retention,
            Duration::from_secs(90 * 86_400),
            "default"
        );
        assert_eq!(
            exposed(&r.monitoring.grafana_token),
            Some("from-file"),
            "secrets layer too"
        );
        let d = ServerSettings::resolve(&FileSettings::default(), String::new()).unwrap();
        assert_eq!(d.listen, "127.0.0.1:8080");
        assert_eq!(d.worker_concurrency, 64);
        let bad = FileSettings {
            heartbeat_interval: Some("soon".into()),
            ..Default::default()
        };
        let e = ServerSettings::resolve(&bad, String::new()).err().unwrap();
        assert!(e.starts_with("heartbeat_interval:"), "{e}");
    }
}
