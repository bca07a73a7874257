//! The validated descriptor: typed, keyed like the YAML so that storing it as JSON gives back a
//! descriptor (`{"hdaGraph": graph}`) that parses to the same graph.
//!
//! These types derive `Deserialize` only to read back graphs smo stored itself; untrusted input
//! must go through [`crate::hdag::parse`], which validates everything and reports every problem.

use super::quantity::{CpuSize, RamSize, Resources, StorageSize};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Keys the information model does not define, kept verbatim for forward compatibility.
pub type Extra = BTreeMap<String, Value>;

/// An HDAG: the application graph smo places, deploys and scales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    /// Information-model version (`0.4.0`); absent in some hand-written descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_version: Option<String>,
    /// Graph name (DNS-1123 label), unique per project.
    pub id: String,
    /// Descriptor version; a re-deploy with a new version is an upgrade.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub designer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub hda_graph_intent: GraphIntent,
    /// The services, in descriptor order (which is the tie-break of every ordering smo makes).
    pub services: Vec<Service>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Graph-level intents.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphIntent {
    /// True: do not optimise; each service goes where its chart/values say.
    #[serde(default)]
    pub use_static_placement: bool,
    #[serde(default)]
    pub security: Toggle,
    #[serde(default)]
    pub high_availability: HighAvailability,
    #[serde(default)]
    pub high_performance: Toggle,
    #[serde(default)]
    pub energy_efficiency: Toggle,
    /// smo's extension: whether the graph moves back by itself once a cluster failover moved it
    /// from has recovered (`auto`, the default) or stays until an operator re-places it.
    #[serde(default, skip_serializing_if = "Failback::is_auto")]
    pub failback: Failback,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `hdaGraphIntent.failback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failback {
    /// Moved back home automatically, within the move budget of each round.
    #[default]
    Auto,
    /// Left where failover put it.
    Manual,
}

impl Failback {
    fn is_auto(&self) -> bool {
        *self == Failback::Auto
    }
}

/// An intent that is only switched on or off (`{enabled: True}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Toggle {
    #[serde(default)]
    pub enabled: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `highAvailability`: smo spreads replicas over clusters and bounds scaling with these.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HighAvailability {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas_overall: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_overall: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One service of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Service name (DNS-1123 label), unique inside the graph.
    pub id: String,
    pub deployment: Deployment,
    pub artifact: Artifact,
    #[serde(flatten)]
    pub extra: Extra,
}

/// When (trigger) and how (intent) a service is deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub trigger: Trigger,
    #[serde(default)]
    pub intent: Intent,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Exactly one of `auto` and `event` is set in a validated graph; a struct rather than an enum so
/// that unknown sibling keys survive.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoTrigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventTrigger>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Deploy at once, after the listed services.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AutoTrigger {
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Deploy only when one (or all, per `condition`) of the events fires as a Prometheus alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventTrigger {
    /// `ANY` (one firing event deploys the service, the default) or `ALL` (every event firing at
    /// once); stored as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    pub events: Vec<Event>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl EventTrigger {
    /// `condition: ALL` (any case): every event must be firing; anything else is `ANY`.
    pub fn requires_all(&self) -> bool {
        self.condition
            .as_deref()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("ALL"))
    }
}

/// One event: becomes a Prometheus alert rule named after `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub source: Vec<EventSource>,
    pub condition: EventCondition,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where an event's metric comes from (informational: may name a device outside the graph).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    pub service_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The alert rule body: `expr: promQuery`, `for: gracePeriod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCondition {
    pub prom_query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a service needs and whom it talks to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    #[serde(default)]
    pub compute: Compute,
    /// Services this one calls (the callee must be reachable from the caller's cluster).
    #[serde(default)]
    pub connection_points: Vec<String>,
    #[serde(default)]
    pub network: Network,
    /// Services that must run in the same cluster as this one.
    #[serde(default)]
    pub co_location: Vec<CoLocation>,
    #[serde(default)]
    pub metrics: Vec<Value>,
    /// smo extension: the capacity model and bounds used by the scaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Per-replica compute intent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Compute {
    #[serde(default)]
    pub cpu: CpuSize,
    #[serde(default)]
    pub ram: RamSize,
    #[serde(default)]
    pub storage: StorageSize,
    #[serde(default)]
    pub gpu: Toggle,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Network intents; stored and shown. Real descriptors put `connectionPoints`, `coLocation` and
/// `metrics` here as well as directly under the intent, so both places are read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    #[serde(default)]
    pub latencies: Vec<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_proximity: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_points: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub co_location: Vec<CoLocation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A latency requirement towards a connection point (`""` = the next service).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    #[serde(default)]
    pub connection_point: String,
    /// `ultralow` (< 10 ms), `low` (1 hop), `best-effort` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `coLocation: [{id: other}]`: same cluster as `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoLocation {
    pub id: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// smo extension: replicas r with `alpha·r + beta ≥ request rate`, `min ≤ r ≤ max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scaling {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Requests per second one replica serves.
    pub alpha: f64,
    /// Requests per second served regardless of replicas.
    pub beta: f64,
    /// PromQL for the request rate; the scaler's default query when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// How to run the service: a Helm chart in an OCI registry (`ociImage`) or, as an smo extension,
/// a plain container image (`image` + `ports`) for which smo generates the Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_config: Option<OciConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_run: Option<OciRun>,
    #[serde(default)]
    pub values_overwrite: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// smo: the Helm release to manage instead of `<graph>-<service>`, to adopt a release the
    /// reference SMO installed (it named them by service id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Artifact {
    /// Helm implementer; WOT charts take placement values under `voChartOverwrite`.
    pub fn implementer(&self) -> Implementer {
        self.oci_config
            .as_ref()
            .map(|c| c.implementer)
            .unwrap_or_default()
    }
}

/// `ociConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OciConfig {
    #[serde(rename = "type")]
    pub kind: ArtifactType,
    pub implementer: Implementer,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ociConfig.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ArtifactType {
    #[default]
    App,
    /// A virtual object (WoT thing).
    VO,
}

/// `ociConfig.implementer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Implementer {
    #[default]
    #[serde(rename = "HELM")]
    Helm,
    #[serde(rename = "WOT")]
    Wot,
}

/// `ociRun` (`{name: HELM, version: v3}`): stored.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OciRun {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A container port of a plain-image artifact; becomes a Service port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    TCP,
    UDP,
    SCTP,
}

impl Service {
    /// A conditional service is not deployed at first but when its event fires.
    pub fn is_conditional(&self) -> bool {
        self.deployment.trigger.event.is_some()
    }

    /// Whether `event` is one of the events this conditional service is triggered by.
    pub fn is_triggered_by(&self, event: &str) -> bool {
        self.deployment
            .trigger
            .event
            .as_ref()
            .is_some_and(|t| t.events.iter().any(|e| e.id == event))
    }

    /// The event ids that must all be firing at once before this conditional service deploys:
    /// every event for `condition: ALL`, none (any one event suffices) otherwise.
    pub fn events_required_together(&self) -> Vec<&str> {
        match &self.deployment.trigger.event {
            Some(t) if t.requires_all() => t.events.iter().map(|e| e.id.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// What one replica needs.
    pub fn resources(&self) -> Resources {
        let c = &self.deployment.intent.compute;
        Resources {
            cpu_millis: c.cpu.millis(),
            memory_bytes: c.ram.bytes(),
            storage_bytes: c.storage.bytes(),
            gpu: c.gpu.enabled,
        }
    }

    /// Services this one calls: `intent.connectionPoints` then `intent.network.connectionPoints`,
    /// without repeats.
    pub fn connection_points(&self) -> Vec<&str> {
        let i = &self.deployment.intent;
        dedup(
            i.connection_points
                .iter()
                .chain(&i.network.connection_points),
        )
    }

    /// Services that must share this one's cluster (`coLocation` in either place).
    pub fn co_located_with(&self) -> Vec<&str> {
        let i = &self.deployment.intent;
        dedup(
            i.co_location
                .iter()
                .chain(&i.network.co_location)
                .map(|c| &c.id),
        )
    }

    /// Services to deploy before this one.
    pub fn dependencies(&self) -> &[String] {
        self.deployment
            .trigger
            .auto
            .as_ref()
            .map_or(&[], |a| a.dependencies.as_slice())
    }
}

fn dedup<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    ids.map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect()
}

impl Graph {
    /// The services in descriptor order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service with this id.
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    /// Whether the service exists and waits for an event (unknown ids are not conditional).
    pub fn is_conditional(&self, id: &str) -> bool {
        self.service(id).is_some_and(Service::is_conditional)
    }

    /// Per-replica resources of the service.
    pub fn resources(&self, id: &str) -> Option<Resources> {
        self.service(id).map(Service::resources)
    }

    /// Services whose connection points include `id`: their clusters must import `id`.
    pub fn callers_of(&self, id: &str) -> Vec<&Service> {
        self.services
            .iter()
            .filter(|s| s.connection_points().contains(&id))
            .collect()
    }

    /// Every service, each after its dependencies; ties keep descriptor order. A validated graph
    /// has no dependency cycle; should a stored one have one, the services on it come last, in
    /// descriptor order, rather than being dropped.
    pub fn deploy_order(&self) -> Vec<&Service> {
        let n = self.services.len();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, s) in self.services.iter().enumerate() {
            index.entry(s.id.as_str()).or_insert(i);
        }
        // Kahn's algorithm; the ready set is ordered so ties keep descriptor order.
        let mut waiting_on = vec![0usize; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, s) in self.services.iter().enumerate() {
            for d in s.dependencies() {
                if let Some(&j) = index.get(d.as_str())
                    && j != i
                {
                    waiting_on[i] += 1;
                    dependents[j].push(i);
                }
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            placed[i] = true;
            order.push(&self.services[i]);
            for &k in &dependents[i] {
                waiting_on[k] -= 1;
                if waiting_on[k] == 0 {
                    ready.insert(k);
                }
            }
        }
        order.extend(
            self.services
                .iter()
                .zip(&placed)
                .filter(|(_, p)| !**p)
                .map(|(s, _)| s),
        );
        order
    }

    /// The services deployed at first (not conditional), in [`Graph::deploy_order`].
    pub fn initial_deploy_order(&self) -> Vec<&Service> {
        self.deploy_order()
            .into_iter()
            .filter(|s| !s.is_conditional())
            .collect()
    }
}
