//! The Helm runner for `implementer: HELM|WOT` services: `helm upgrade --install` with the
//! placement injected into the chart values (`clustersAffinity`, `serviceImportClusters`; under
//! `voChartOverwrite` for WOT charts), `helm uninstall` on stop/remove. Idempotent by construction
//! (upgrade --install), bounded by a timeout, helm's stderr carried into the error.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::Value;

pub use smo_core::manifests::values_for;

/// Why a Helm step failed.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// helm is not installed where smo looks.
    #[error(
        "helm is not installed or not on PATH ({0}): install helm 3 to deploy Helm-chart artifacts \
         (artifact.ociImage), or set helm_binary"
    )]
    Missing(String),
    /// helm did not finish in time (it was killed).
    #[error("helm {verb} {release} timed out after {secs} s")]
    Timeout {
        /// install or uninstall.
        verb: &'static str,
        /// Release.
        release: String,
        /// Limit.
        secs: u64,
    },
    /// helm exited non-zero; `stderr` is its own explanation.
    #[error("helm {verb} {release} failed: {stderr}")]
    Failed {
        /// install or uninstall.
        verb: &'static str,
        /// Release.
        release: String,
        /// helm's stderr, trimmed.
        stderr: String,
    },
    /// The values file could not be written.
    #[error("helm values file: {0}")]
    Io(#[from] std::io::Error),
}

impl HelmError {
    /// Timeouts and failures may be transient (the API server, the registry); a missing helm is not.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Missing(_))
    }
}

/// Whether helm reaches `chart`'s registry over plain HTTP: when configured, and always for a
/// registry on this machine (as Docker does, and as the reference's default config has it for its
/// local registry).
pub fn plain_http_for(chart: &str, configured: bool) -> bool {
    let host = chart
        .strip_prefix("oci://")
        .and_then(|rest| rest.split('/').next());
    configured || host.is_some_and(crate::settings::is_loopback)
}

/// Runs helm against the Karmada API server.
#[derive(Clone, Debug)]
pub struct HelmRunner {
    /// The helm executable (a name on PATH or a path).
    pub binary: PathBuf,
    /// Karmada's kubeconfig.
    pub kubeconfig: PathBuf,
    /// `--plain-http` for registries without TLS.
    pub plain_http: bool,
    /// Longest one helm call may take.
    pub timeout: Duration,
}

impl HelmRunner {
    /// Checks that the binary runs (`helm version --short`), so a missing helm is reported when a
    /// Helm descriptor arrives rather than as an obscure spawn error.
    pub async fn check(&self) -> Result<String, HelmError> {
        let out = tokio::process::Command::new(&self.binary)
            .args(["version", "--short"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| HelmError::Missing(format!("{}: {e}", self.binary.display())))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `helm upgrade --install <release> <chart> --namespace <ns> --create-namespace --kubeconfig …
    /// --values <file> [--plain-http]`. The values file is private (0600) and removed afterwards.
    pub async fn install(
        &self,
        release: &str,
        chart: &str,
        namespace: &str,
        values: &Value,
    ) -> Result<(), HelmError> {
        let dir = tempdir()?;
        let file = dir.join("values.json");
        write_private(
            &file,
            serde_json::to_vec_pretty(values)
                .unwrap_or_default()
                .as_slice(),
        )?;
        let mut args: Vec<String> = vec![
            "upgrade".into(),
            "--install".into(),
            release.into(),
            chart.into(),
            "--namespace".into(),
            namespace.into(),
            "--create-namespace".into(),
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
            "--values".into(),
            file.display().to_string(),
        ];
        if plain_http_for(chart, self.plain_http) {
            args.push("--plain-http".into());
        }
        let result = self.run("install", release, &args).await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// `helm uninstall <release> --namespace <ns> --kubeconfig …`; a release that is not there is fine.
    pub async fn uninstall(&self, release: &str, namespace: &str) -> Result<(), HelmError> {
        let args: Vec<String> = vec![
            "uninstall".into(),
            release.into(),
            "--namespace".into(),
            namespace.into(),
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
        ];
        match self.run("uninstall", release, &args).await {
            Err(HelmError::Failed { stderr, .. }) if stderr.contains("not found") => Ok(()),
            other => other,
        }
    }

    async fn run(
        &self,
        verb: &'static str,
        release: &str,
        args: &[String],
    ) -> Result<(), HelmError> {
        let child = tokio::process::Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HelmError::Missing(format!("{}: {e}", self.binary.display())))?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(HelmError::Timeout {
                    verb,
                    release: release.into(),
                    secs: self.timeout.as_secs(),
                });
            }
        };
        if out.status.success() {
            return Ok(());
        }
        let stderr: String = String::from_utf8_lossy(&out.stderr)
            .trim()
            .chars()
            .take(2000)
            .collect();
        Err(HelmError::Failed {
            verb,
            release: release.into(),
            stderr,
        })
    }
}

fn tempdir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("smo-helm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hdag::Service;
    use serde_json::json;

    fn service(yaml: &str) -> Service {
        let doc = format!(
            "hdaGraph:\n  id: g\n  version: '1.0.0'\n  services:\n    - id: s\n      deployment:\n        trigger: {{auto: {{dependencies: []}}}}\n        intent: {{compute: {{cpu: small, ram: small, storage: small, gpu: {{enabled: false}}}}}}\n      artifact:\n{yaml}"
        );
        crate::hdag::parse(doc.as_bytes())
            .expect("fixture parses")
            .graph
            .services
            .remove(0)
    }

    #[test]
    fn loopback_chart_registries_are_reached_over_plain_http() {
        assert!(plain_http_for("oci://127.0.0.1:5000/demo/web", false));
        assert!(plain_http_for("oci://localhost:5000/demo/web", false));
        assert!(!plain_http_for(
            "oci://registry.example.com:5000/demo/web",
            false
        ));
        assert!(plain_http_for("oci://registry.example.com/demo/web", true));
        assert!(!plain_http_for(
            "https://charts.example.com/web-1.0.0.tgz",
            false
        ));
    }

    #[test]
    fn helm_charts_get_the_placement_at_the_top_level() {
        let s =
            service("        ociImage: oci://r/c\n        valuesOverwrite: {replicaCount: 2}\n");
        let v = values_for(&s, "edge-a", &["edge-b".to_string()], false);
        assert_eq!(
            v,
            json!({"replicaCount": 2, "clustersAffinity": ["edge-a"], "serviceImportClusters": ["edge-b"]})
        );
        // useStaticPlacement: the values as written, nothing injected.
        let v = values_for(&s, "edge-a", &["edge-b".to_string()], true);
        assert_eq!(v, json!({"replicaCount": 2}));
    }

    #[test]
    fn wot_charts_get_it_under_vo_chart_overwrite() {
        let s = service(
            "        ociImage: oci://r/vo\n        ociConfig: {type: VO, implementer: WOT}\n        valuesOverwrite:\n          voDescriptorOverwrite: {x: 1}\n          voChartOverwrite: {keep: true}\n",
        );
        let v = values_for(&s, "edge-a", &[], false);
        assert_eq!(v["voDescriptorOverwrite"], json!({"x": 1}));
        assert_eq!(
            v["voChartOverwrite"],
            json!({"keep": true, "clustersAffinity": ["edge-a"], "serviceImportClusters": []})
        );
        assert!(v.get("clustersAffinity").is_none());
    }

    #[tokio::test]
    async fn a_missing_helm_is_a_clear_permanent_error() {
        let r = HelmRunner {
            binary: "/nonexistent/helm".into(),
            kubeconfig: "/tmp/k".into(),
            plain_http: false,
            timeout: Duration::from_secs(5),
        };
        let e = r
            .install("g-s", "oci://r/c", "p", &json!({}))
            .await
            .unwrap_err();
        assert!(
            matches!(e, HelmError::Missing(_)) && !e.is_transient(),
            "{e}"
        );
        assert!(e.to_string().contains("install helm 3"));
    }
}
