//! The sim's configuration: its member clusters (capacity, labels, taints, readiness), how it
//! simulates (write latency, pull rates), and the schemas it validates writes against.

use super::*;

/// The member clusters of a simulated federation and how the simulation behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimConfig {
    /// Member clusters, registered as Karmada `Cluster` objects.
    #[serde(default)]
    pub clusters: Vec<SimCluster>,
    /// Create a missing namespace on a namespaced write instead of answering 404.
    #[serde(default)]
    pub auto_create_namespaces: bool,
    /// Requests per second every running service receives until `/sim/load` says otherwise.
    #[serde(default = "default_rate")]
    pub default_rate: f64,
    /// Delay added to every API write (POST/PUT/PATCH/DELETE), in milliseconds: a slow API
    /// server, so tests can interrupt a job mid-way.
    #[serde(default)]
    pub write_latency_ms: u64,
    /// OpenAPI v3 schemas of the custom kinds, keyed `group/version/Kind`, served in
    /// `/openapi/v3` (what `kubectl explain` reads); kinds without one get an open object.
    /// Filled from real CRD files by [`crd_schemas`] (`smo sim --crds DIR`).
    /// Shared, not copied: Kubernetes' own schemas are megabytes once inlined.
    #[serde(skip)]
    pub schemas: Arc<BTreeMap<String, serde_json::Value>>,
    /// Where the objects are kept across restarts (`smo sim --state FILE`), with the clusters added,
    /// the readiness and the load set at run time: read at start when it exists, written within a
    /// second of every change and at shutdown.
    #[serde(skip)]
    pub state_file: Option<std::path::PathBuf>,
}

/// Kubernetes' own schemas of the built-in kinds the sim serves (Deployment, Service, …), keyed
/// `group/version/Kind`, from a `kubernetes-json-schema/v<version>-local` directory of the
/// `kubernetes-validate` package (its `_definitions.json`); what `smo sim --kubernetes-schemas`
/// loads, so `kubectl explain deployment.spec` works as against a real apiserver.
pub fn kubernetes_schemas(
    dir: &std::path::Path,
) -> std::io::Result<BTreeMap<String, serde_json::Value>> {
    schemas::load(dir)
}

/// The `openAPIV3Schema` of every served version of the CustomResourceDefinitions in `dir`
/// (`*.yaml`, one document each), keyed `group/version/Kind`. Files that are not CRDs are skipped.
pub fn crd_schemas(dir: &std::path::Path) -> std::io::Result<BTreeMap<String, serde_json::Value>> {
    let mut out = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for f in files {
        let Ok(crd) = serde_norway::from_str::<serde_json::Value>(&std::fs::read_to_string(&f)?)
        else {
            continue;
        };
        if crd["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let (group, kind) = (
            crd["spec"]["group"].as_str().unwrap_or_default(),
            crd["spec"]["names"]["kind"].as_str().unwrap_or_default(),
        );
        for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
            if let (Some(version), Some(schema)) =
                (v["name"].as_str(), v.pointer("/schema/openAPIV3Schema"))
            {
                out.insert(format!("{group}/{version}/{kind}"), schema.clone());
            }
        }
    }
    Ok(out)
}

pub(crate) fn default_rate() -> f64 {
    5.0
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            clusters: Vec::new(),
            auto_create_namespaces: false,
            default_rate: default_rate(),
            write_latency_ms: 0,
            schemas: Arc::default(),
            state_file: None,
        }
    }
}

/// One simulated member cluster: its capacity, labels and readiness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimCluster {
    /// Cluster name (a DNS-1123 label of at most 48 characters, as Karmada requires).
    pub name: String,
    /// Allocatable CPU cores.
    pub cpu: f64,
    /// Allocatable memory: a Kubernetes quantity (`16Gi`) or a number of bytes.
    #[serde(deserialize_with = "quantity_string")]
    pub memory: String,
    /// Allocatable `nvidia.com/gpu`.
    #[serde(default)]
    pub gpus: u32,
    /// Labels of the Cluster object (placement can select on them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether the Ready condition is True.
    #[serde(default = "yes")]
    pub ready: bool,
    /// Nodes reported in `nodeSummary` (110 pods each).
    #[serde(default = "one")]
    pub nodes: u32,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn quantity_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Q {
        Int(u64),
        Float(f64),
        Text(String),
    }
    Ok(match Q::deserialize(d)? {
        Q::Int(n) => n.to_string(),
        Q::Float(f) => f.to_string(),
        Q::Text(s) => s,
    })
}

/// Why a sim configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SimConfigError {
    /// Not valid YAML/JSON for [`SimConfig`].
    #[error("sim config: {0}")]
    Parse(#[from] serde_norway::Error),
    /// A cluster's values are out of range.
    #[error("sim config: cluster {name:?}: {message}")]
    Invalid {
        /// The cluster.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Two clusters share a name.
    #[error("sim config: duplicate cluster name {0:?}")]
    Duplicate(String),
}

impl SimCluster {
    fn new(name: &str, cpu: f64, memory: &str, gpus: u32, labels: &[(&str, &str)]) -> Self {
        SimCluster {
            name: name.into(),
            cpu,
            memory: memory.into(),
            gpus,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ready: true,
            nodes: 1,
        }
    }

    /// Checks the name and that the capacities are non-negative quantities.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        let invalid = |message: &str| SimConfigError::Invalid {
            name: self.name.clone(),
            message: message.into(),
        };
        let n = &self.name;
        let label_ok = !n.is_empty()
            && n.len() <= 48
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !n.starts_with('-')
            && !n.ends_with('-');
        if !label_ok {
            return Err(invalid(
                "name must be a lowercase DNS-1123 label of at most 48 characters",
            ));
        }
        if !self.cpu.is_finite() || self.cpu < 0.0 {
            return Err(invalid("cpu must be a number of cores >= 0"));
        }
        if simulate::parse_quantity(&self.memory).is_none() {
            return Err(invalid(
                "memory must be a quantity such as 16Gi or a number of bytes",
            ));
        }
        Ok(())
    }
}

impl SimConfig {
    /// Three clusters of different sizes, one with GPUs: enough to exercise placement.
    pub fn demo() -> Self {
        SimConfig {
            clusters: vec![
                SimCluster::new(
                    "edge-a",
                    8.0,
                    "16Gi",
                    0,
                    &[("tier", "edge"), ("region", "eu-west")],
                ),
                SimCluster::new(
                    "edge-b",
                    16.0,
                    "32Gi",
                    0,
                    &[("tier", "edge"), ("region", "eu-south")],
                ),
                SimCluster::new(
                    "cloud-gpu",
                    32.0,
                    "64Gi",
                    2,
                    &[("tier", "cloud"), ("accelerator", "nvidia")],
                ),
            ],
            ..SimConfig::default()
        }
    }

    /// Parses YAML (or JSON) and validates it.
    pub fn from_yaml(text: &str) -> Result<Self, SimConfigError> {
        let c: SimConfig = serde_norway::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    /// Validates every cluster and the uniqueness of names.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.clusters {
            c.validate()?;
            if !seen.insert(c.name.as_str()) {
                return Err(SimConfigError::Duplicate(c.name.clone()));
            }
        }
        if !self.default_rate.is_finite() || self.default_rate < 0.0 {
            return Err(SimConfigError::Invalid {
                name: String::new(),
                message: "default_rate must be >= 0".into(),
            });
        }
        Ok(())
    }
}
