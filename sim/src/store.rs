//! The object store: what an apiserver keeps and how it writes (metadata bookkeeping,
//! resourceVersion, optimistic concurrency, patches). Free of HTTP so it can be tested directly.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::{Map, Value, json};

use super::admission::{self, Admission, Definition, Operation, Request};

/// The kinds the simulated federation serves: what smo writes, plus the kinds Helm charts carry
/// (stored as given, like a real apiserver's generic registry) and the Secrets Helm keeps its
/// releases in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Res {
    Namespace,
    Service,
    Deployment,
    Cluster,
    PropagationPolicy,
    OverridePolicy,
    ServiceExport,
    ServiceImport,
    PrometheusRule,
    ConfigMap,
    Secret,
    ServiceAccount,
    PersistentVolumeClaim,
    StatefulSet,
    DaemonSet,
    Job,
    Ingress,
    Role,
    RoleBinding,
    PodDisruptionBudget,
    HorizontalPodAutoscaler,
    ServiceMonitor,
    ResourceBinding,
    ClusterRole,
    ClusterRoleBinding,
    NetworkPolicy,
    CronJob,
    StorageClass,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    ReplicaSet,
    Pod,
    CustomResourceDefinition,
    ClusterPropagationPolicy,
    Work,
    /// A kind a CustomResourceDefinition written through the API defines (see [`Res::custom`]).
    Custom(u16),
}

/// The short names and categories a real apiserver (or the kind's CRD) reports for a plural:
/// what `kubectl get deploy,svc,pp` and `kubectl get all` resolve through discovery.
pub(crate) fn short_names(plural: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match plural {
        "namespaces" => (&["ns"], &[]),
        "services" => (&["svc"], &["all"]),
        "deployments" => (&["deploy"], &["all"]),
        "propagationpolicies" => (&["pp"], &[]),
        "clusterpropagationpolicies" => (&["cpp"], &[]),
        "overridepolicies" => (&["op"], &[]),
        "prometheusrules" => (&["promrule"], &["prometheus-operator"]),
        "configmaps" => (&["cm"], &[]),
        "serviceaccounts" => (&["sa"], &[]),
        "persistentvolumeclaims" => (&["pvc"], &[]),
        "statefulsets" => (&["sts"], &["all"]),
        "customresourcedefinitions" => (&["crd", "crds"], &["api-extensions"]),
        "replicasets" => (&["rs"], &["all"]),
        "pods" => (&["po"], &["all"]),
        "daemonsets" => (&["ds"], &["all"]),
        "jobs" => (&[], &["all"]),
        "ingresses" => (&["ing"], &[]),
        "poddisruptionbudgets" => (&["pdb"], &[]),
        "horizontalpodautoscalers" => (&["hpa"], &["all"]),
        "servicemonitors" => (&["smon"], &["prometheus-operator"]),
        "resourcebindings" => (&["rb"], &[]),
        "networkpolicies" => (&["netpol"], &[]),
        "cronjobs" => (&["cj"], &["all"]),
        "storageclasses" => (&["sc"], &[]),
        "validatingadmissionpolicies" | "validatingadmissionpolicybindings" => {
            (&[], &["api-extensions"])
        }
        _ => (&[], &[]),
    }
}

/// Static facts of a kind, as discovery would report them.
pub(crate) struct KindMeta {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

const fn meta(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> KindMeta {
    KindMeta {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
    }
}

const NAMESPACE: KindMeta = meta("", "v1", "namespaces", "namespace", "Namespace", false);
const SERVICE: KindMeta = meta("", "v1", "services", "service", "Service", true);
const DEPLOYMENT: KindMeta = meta(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
);
const CLUSTER: KindMeta = meta(
    "cluster.karmada.io",
    "v1alpha1",
    "clusters",
    "cluster",
    "Cluster",
    false,
);
const PP: KindMeta = meta(
    "policy.karmada.io",
    "v1alpha1",
    "propagationpolicies",
    "propagationpolicy",
    "PropagationPolicy",
    true,
);
const CPP: KindMeta = meta(
    "policy.karmada.io",
    "v1alpha1",
    "clusterpropagationpolicies",
    "clusterpropagationpolicy",
    "ClusterPropagationPolicy",
    false,
);
const OP: KindMeta = meta(
    "policy.karmada.io",
    "v1alpha1",
    "overridepolicies",
    "overridepolicy",
    "OverridePolicy",
    true,
);
const SVCEX: KindMeta = meta(
    "multicluster.x-k8s.io",
    "v1alpha1",
    "serviceexports",
    "serviceexport",
    "ServiceExport",
    true,
);
const SVCIM: KindMeta = meta(
    "multicluster.x-k8s.io",
    "v1alpha1",
    "serviceimports",
    "serviceimport",
    "ServiceImport",
    true,
);
const PROMRULE: KindMeta = meta(
    "monitoring.coreos.com",
    "v1",
    "prometheusrules",
    "prometheusrule",
    "PrometheusRule",
    true,
);

const CONFIGMAP: KindMeta = meta("", "v1", "configmaps", "configmap", "ConfigMap", true);
const SECRET: KindMeta = meta("", "v1", "secrets", "secret", "Secret", true);
const SERVICEACCOUNT: KindMeta = meta(
    "",
    "v1",
    "serviceaccounts",
    "serviceaccount",
    "ServiceAccount",
    true,
);
const PVC: KindMeta = meta(
    "",
    "v1",
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    "PersistentVolumeClaim",
    true,
);
const STATEFULSET: KindMeta = meta(
    "apps",
    "v1",
    "statefulsets",
    "statefulset",
    "StatefulSet",
    true,
);
const DAEMONSET: KindMeta = meta("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true);
// A Karmada API server is a kube-apiserver: it serves ReplicaSets and Pods, though no controller
// makes any there. Status readers (Helm's `--wait`, kstatus) list them for a Deployment.
const REPLICASET: KindMeta = meta(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    true,
);
const POD: KindMeta = meta("", "v1", "pods", "pod", "Pod", true);
const CRD: KindMeta = meta(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "customresourcedefinition",
    "CustomResourceDefinition",
    false,
);

/// The kinds CustomResourceDefinitions defined, process-wide and append-only: a [`Res::Custom`]
/// indexes it. Each store serves only the kinds of its own CRDs ([`Store::serves`]).
static CUSTOM_KINDS: std::sync::RwLock<Vec<&'static KindMeta>> = std::sync::RwLock::new(Vec::new());
const JOB: KindMeta = meta("batch", "v1", "jobs", "job", "Job", true);
const INGRESS: KindMeta = meta(
    "networking.k8s.io",
    "v1",
    "ingresses",
    "ingress",
    "Ingress",
    true,
);
const ROLE: KindMeta = meta(
    "rbac.authorization.k8s.io",
    "v1",
    "roles",
    "role",
    "Role",
    true,
);
const ROLEBINDING: KindMeta = meta(
    "rbac.authorization.k8s.io",
    "v1",
    "rolebindings",
    "rolebinding",
    "RoleBinding",
    true,
);

const PDB: KindMeta = meta(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    true,
);
const HPA: KindMeta = meta(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "horizontalpodautoscaler",
    "HorizontalPodAutoscaler",
    true,
);
const SERVICEMONITOR: KindMeta = meta(
    "monitoring.coreos.com",
    "v1",
    "servicemonitors",
    "servicemonitor",
    "ServiceMonitor",
    true,
);

const WORK: KindMeta = meta("work.karmada.io", "v1alpha1", "works", "work", "Work", true);
const RESOURCEBINDING: KindMeta = meta(
    "work.karmada.io",
    "v1alpha2",
    "resourcebindings",
    "resourcebinding",
    "ResourceBinding",
    true,
);

const CLUSTERROLE: KindMeta = meta(
    "rbac.authorization.k8s.io",
    "v1",
    "clusterroles",
    "clusterrole",
    "ClusterRole",
    false,
);
const CLUSTERROLEBINDING: KindMeta = meta(
    "rbac.authorization.k8s.io",
    "v1",
    "clusterrolebindings",
    "clusterrolebinding",
    "ClusterRoleBinding",
    false,
);
const NETWORKPOLICY: KindMeta = meta(
    "networking.k8s.io",
    "v1",
    "networkpolicies",
    "networkpolicy",
    "NetworkPolicy",
    true,
);
const CRONJOB: KindMeta = meta("batch", "v1", "cronjobs", "cronjob", "CronJob", true);
const STORAGECLASS: KindMeta = meta(
    "storage.k8s.io",
    "v1",
    "storageclasses",
    "storageclass",
    "StorageClass",
    false,
);

const VAP: KindMeta = meta(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicies",
    "validatingadmissionpolicy",
    "ValidatingAdmissionPolicy",
    false,
);
const VAPB: KindMeta = meta(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicybindings",
    "validatingadmissionpolicybinding",
    "ValidatingAdmissionPolicyBinding",
    false,
);

impl Res {
    pub const ALL: [Res; 35] = [
        Res::Namespace,
        Res::Service,
        Res::Deployment,
        Res::Cluster,
        Res::PropagationPolicy,
        Res::OverridePolicy,
        Res::ServiceExport,
        Res::ServiceImport,
        Res::PrometheusRule,
        Res::ConfigMap,
        Res::Secret,
        Res::ServiceAccount,
        Res::PersistentVolumeClaim,
        Res::StatefulSet,
        Res::DaemonSet,
        Res::Job,
        Res::Ingress,
        Res::Role,
        Res::RoleBinding,
        Res::PodDisruptionBudget,
        Res::HorizontalPodAutoscaler,
        Res::ServiceMonitor,
        Res::ResourceBinding,
        Res::ClusterRole,
        Res::ClusterRoleBinding,
        Res::NetworkPolicy,
        Res::CronJob,
        Res::StorageClass,
        Res::ValidatingAdmissionPolicy,
        Res::ValidatingAdmissionPolicyBinding,
        Res::ReplicaSet,
        Res::Pod,
        Res::CustomResourceDefinition,
        Res::ClusterPropagationPolicy,
        Res::Work,
    ];

    pub fn meta(self) -> &'static KindMeta {
        match self {
            Res::Namespace => &NAMESPACE,
            Res::Service => &SERVICE,
            Res::Deployment => &DEPLOYMENT,
            Res::Cluster => &CLUSTER,
            Res::PropagationPolicy => &PP,
            Res::OverridePolicy => &OP,
            Res::ServiceExport => &SVCEX,
            Res::ServiceImport => &SVCIM,
            Res::PrometheusRule => &PROMRULE,
            Res::ConfigMap => &CONFIGMAP,
            Res::Secret => &SECRET,
            Res::ServiceAccount => &SERVICEACCOUNT,
            Res::PersistentVolumeClaim => &PVC,
            Res::StatefulSet => &STATEFULSET,
            Res::DaemonSet => &DAEMONSET,
            Res::Job => &JOB,
            Res::Ingress => &INGRESS,
            Res::Role => &ROLE,
            Res::RoleBinding => &ROLEBINDING,
            Res::PodDisruptionBudget => &PDB,
            Res::HorizontalPodAutoscaler => &HPA,
            Res::ServiceMonitor => &SERVICEMONITOR,
            Res::ResourceBinding => &RESOURCEBINDING,
            Res::ClusterRole => &CLUSTERROLE,
            Res::ClusterRoleBinding => &CLUSTERROLEBINDING,
            Res::NetworkPolicy => &NETWORKPOLICY,
            Res::CronJob => &CRONJOB,
            Res::StorageClass => &STORAGECLASS,
            Res::ValidatingAdmissionPolicy => &VAP,
            Res::ValidatingAdmissionPolicyBinding => &VAPB,
            Res::ReplicaSet => &REPLICASET,
            Res::Pod => &POD,
            Res::CustomResourceDefinition => &CRD,
            Res::ClusterPropagationPolicy => &CPP,
            Res::Work => &WORK,
            Res::Custom(i) => CUSTOM_KINDS
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)[usize::from(i)],
        }
    }

    pub fn api_version(self) -> String {
        let m = self.meta();
        if m.group.is_empty() {
            m.version.to_string()
        } else {
            format!("{}/{}", m.group, m.version)
        }
    }

    /// `deployments.apps`, `namespaces`: how Kubernetes names a resource in messages.
    pub fn group_resource(self) -> String {
        let m = self.meta();
        if m.group.is_empty() {
            m.plural.to_string()
        } else {
            format!("{}.{}", m.plural, m.group)
        }
    }

    /// The kind served at `group/version/plural`: a built-in one, else the latest custom kind
    /// registered there (whether a store serves it is [`Store::serves`]).
    pub fn find(group: &str, version: &str, plural: &str) -> Option<Res> {
        let is = |m: &KindMeta| m.group == group && m.version == version && m.plural == plural;
        Res::ALL.into_iter().find(|r| is(r.meta())).or_else(|| {
            let kinds = CUSTOM_KINDS
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            kinds
                .iter()
                .rposition(|m| is(m))
                .and_then(|i| u16::try_from(i).ok())
                .map(Res::Custom)
        })
    }

    /// The kind a CustomResourceDefinition defines, registered once per distinct definition.
    pub fn custom(m: &CustomNames) -> Option<Res> {
        let same = |k: &KindMeta| {
            k.group == m.group
                && k.version == m.version
                && k.plural == m.plural
                && k.singular == m.singular
                && k.kind == m.kind
                && k.namespaced == m.namespaced
        };
        let mut kinds = CUSTOM_KINDS
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = kinds.iter().position(|k| same(k)) {
            return u16::try_from(i).ok().map(Res::Custom);
        }
        let i = u16::try_from(kinds.len()).ok()?;
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        kinds.push(Box::leak(Box::new(KindMeta {
            group: leak(&m.group),
            version: leak(&m.version),
            plural: leak(&m.plural),
            singular: leak(&m.singular),
            kind: leak(&m.kind),
            namespaced: m.namespaced,
        })));
        Some(Res::Custom(i))
    }
}

/// The names a CustomResourceDefinition gives one served version of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomNames {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
}

/// The served versions of a CustomResourceDefinition: their names and `openAPIV3Schema`s.
pub(crate) fn crd_versions(crd: &Value) -> Vec<(CustomNames, Option<Value>)> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let group = spec["group"].as_str().unwrap_or_default();
    if plural.is_empty() || kind.is_empty() || group.is_empty() {
        return Vec::new();
    }
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != false)
        .filter_map(|v| {
            Some((
                CustomNames {
                    group: group.to_string(),
                    version: v["name"].as_str()?.to_string(),
                    plural: plural.to_string(),
                    singular: names["singular"]
                        .as_str()
                        .map_or_else(|| kind.to_ascii_lowercase(), str::to_string),
                    kind: kind.to_string(),
                    namespaced: spec["scope"] != "Cluster",
                },
                v.pointer("/schema/openAPIV3Schema").cloned(),
            ))
        })
        .collect()
}

/// Where an object lives; `ns` is empty for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjKey {
    pub res: Res,
    pub ns: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(res: Res, ns: &str, name: &str) -> Self {
        let ns = if res.meta().namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        ObjKey {
            res,
            ns,
            name: name.to_string(),
        }
    }
}

/// A request the apiserver refuses; each maps onto a Kubernetes `Status` (reason and code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{} \"{name}\" not found", .res.group_resource())]
    NotFound { res: Res, name: String },
    #[error("{} \"{name}\" already exists", .res.group_resource())]
    AlreadyExists { res: Res, name: String },
    #[error(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        .res.group_resource()
    )]
    Conflict { res: Res, name: String },
    /// Server-side apply of fields other managers own, with other values, without `force`.
    #[error("Apply failed with {} conflict{}: {}", .conflicts.len(), if .conflicts.len() == 1 { "" } else { "s" },
            .conflicts.iter().map(|c| format!("conflict with \"{}\" using {}: {}", c.manager, c.api_version, c.field)).collect::<Vec<_>>().join("\n"))]
    ApplyConflict {
        res: Res,
        name: String,
        conflicts: Vec<FieldConflict>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{}{} \"{name}\" is invalid: {message}", .res.meta().kind, group_suffix(.res))]
    Invalid {
        res: Res,
        name: String,
        message: String,
    },
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Refused by a ValidatingAdmissionPolicy, worded as kube-apiserver words it; `reason` is
    /// the validation's (`Forbidden` unless it says otherwise) and sets the code.
    #[error("{}{} \"{name}\" is forbidden: ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}", .res.meta().plural, group_suffix(.res))]
    Denied {
        res: Res,
        name: String,
        policy: String,
        binding: String,
        message: String,
        reason: &'static str,
    },
    #[error("the server could not find the requested resource")]
    NoRoute,
}

fn group_suffix(res: &Res) -> String {
    let g = res.meta().group;
    if g.is_empty() {
        String::new()
    } else {
        format!(".{g}")
    }
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => 404,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::BadRequest(_) => 400,
            ApiError::Invalid { .. } => 422,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Denied { reason, .. } => match *reason {
                "Unauthorized" => 401,
                "RequestEntityTooLarge" => 413,
                "Invalid" => 422,
                _ => 403,
            },
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Denied { reason, .. } => reason,
        }
    }

    /// The `Status` body kube-rs parses into `kube::Error::Api`.
    pub fn status_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.to_string(), "reason": self.reason(), "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { res, name }
            | ApiError::AlreadyExists { res, name }
            | ApiError::Conflict { res, name }
            | ApiError::Denied { res, name, .. } => {
                Some(json!({"name": name, "group": res.meta().group, "kind": res.meta().plural}))
            }
            // The field at fault as a cause, which is what kubectl prints after "is invalid: ".
            ApiError::Invalid { res, name, message } => {
                let (field, text) = message.split_once(": ").unwrap_or(("", message));
                let reason = match text.split(':').next().unwrap_or_default() {
                    "Required value" => "FieldValueRequired",
                    "Forbidden" => "FieldValueForbidden",
                    "Unsupported value" => "FieldValueNotSupported",
                    _ => "FieldValueInvalid",
                };
                Some(
                    json!({"name": name, "group": res.meta().group, "kind": res.meta().kind,
                            "causes": [{"reason": reason, "message": text, "field": field}]}),
                )
            }
            ApiError::ApplyConflict {
                res,
                name,
                conflicts,
            } => Some(json!({
                "name": name, "group": res.meta().group, "kind": res.meta().plural,
                "causes": conflicts.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

/// A field another manager owns with another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldConflict {
    pub manager: String,
    pub api_version: String,
    /// `.spec.replicas`
    pub field: String,
}

/// Which part of an object a write may change: the main resource never changes `status`,
/// the `/status` subresource changes nothing else (as with a real status subresource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
    /// `spec.replicas` through the `/scale` subresource: written as the main resource, admitted
    /// as the subresource.
    Scale,
}

impl Part {
    /// The subresource a write of this part is admitted as.
    pub fn subresource(self) -> &'static str {
        match self {
            Part::Main => "",
            Part::Status => "status",
            Part::Scale => "scale",
        }
    }
}

/// PATCH flavours, from the request's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Apply,
    /// JSON merge patch; strategic merge patch is treated the same way.
    Merge,
    Json,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                Some(PatchType::Merge)
            }
            "application/json-patch+json" => Some(PatchType::Json),
            _ => None,
        }
    }
}

/// A stored object and its creation order (the resourceVersion it was created at).
#[derive(Clone)]
pub(crate) struct Entry {
    pub obj: Value,
    pub seq: u64,
}

/// What a change did, as a watch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    /// The watch event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One change of one object, at the resourceVersion it made: what watches stream.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: ChangeKind,
    pub res: Res,
    pub obj: Value,
}

/// How many changes the store keeps for watches; a watch from an older resourceVersion gets
/// `410 Gone` and lists again, as from an apiserver whose watch cache moved on.
pub(crate) const CHANGE_WINDOW: usize = 8192;

/// All objects, keyed by kind, namespace and name, plus the global resourceVersion counter.
#[derive(Clone, Default)]
pub(crate) struct Store {
    rv: u64,
    objects: BTreeMap<ObjKey, Entry>,
    /// The latest changes, oldest first (at most [`CHANGE_WINDOW`]).
    changes: std::collections::VecDeque<Arc<Change>>,
    /// The resourceVersion of the newest change dropped from `changes` (0: none was).
    dropped_through: u64,
    /// The schemas writes are validated against, keyed `group/version/Kind` (see
    /// `SimConfig::schemas`); kinds without one are open.
    pub schemas: Arc<BTreeMap<String, Value>>,
    /// The current request asked for `fieldValidation=Strict`: unknown fields are refused.
    pub strict_fields: bool,
    /// The kinds this store's CustomResourceDefinitions define, and their schemas (keyed as
    /// `schemas`).
    custom: Vec<Res>,
    custom_schemas: BTreeMap<String, Value>,
    /// Create a missing namespace on a namespaced write instead of answering 404.
    pub auto_create_namespaces: bool,
    /// The ValidatingAdmissionPolicies and bindings among `objects`, compiled.
    admission: Admission,
    /// How many times saved objects were restored: restores bypass the change log, so whoever
    /// follows the log (the reconcile) starts over when this moves.
    pub restores: u64,
}

impl Store {
    /// Every object a restart should keep, with the version counter: Clusters come from the
    /// configuration and ResourceBindings and Works from the simulation, so none is saved.
    pub fn snapshot(&self) -> Value {
        let objects: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, _)| !matches!(k.res, Res::Cluster | Res::ResourceBinding | Res::Work))
            .map(|(_, e)| json!({"seq": e.seq, "object": e.obj}))
            .collect();
        json!({"resourceVersion": self.rv, "objects": objects})
    }

    /// Puts back what [`Store::snapshot`] saved (objects of kinds the sim no longer serves are
    /// dropped); returns how many objects were restored.
    pub fn restore(&mut self, saved: &Value) -> usize {
        self.restores += 1;
        let mut n = self.restore_kinds(saved, &Res::ALL);
        // The kinds the restored CRDs define, then their objects.
        self.reindex_crds();
        let custom = self.custom.clone();
        n += self.restore_kinds(saved, &custom);
        let saved_rv = saved["resourceVersion"].as_u64().unwrap_or(0);
        self.rv = self.rv.max(saved_rv);
        self.rebuild_admission();
        n
    }

    /// Restores the saved objects of `kinds`; how many.
    fn restore_kinds(&mut self, saved: &Value, kinds: &[Res]) -> usize {
        let mut n = 0;
        for item in saved["objects"].as_array().into_iter().flatten() {
            let obj = &item["object"];
            let (api_version, kind) = (str_at(obj, "/apiVersion"), str_at(obj, "/kind"));
            let Some(res) = kinds
                .iter()
                .copied()
                .find(|r| r.api_version() == api_version && r.meta().kind == kind)
            else {
                continue;
            };
            let key = ObjKey::new(
                res,
                str_at(obj, "/metadata/namespace"),
                str_at(obj, "/metadata/name"),
            );
            let seq = item["seq"].as_u64().unwrap_or(0);
            self.objects.insert(
                key,
                Entry {
                    obj: obj.clone(),
                    seq,
                },
            );
            n += 1;
        }
        n
    }

    /// Compiles every admission policy and binding anew (after a restore); one that no longer
    /// compiles is kept as an object but not enforced.
    fn rebuild_admission(&mut self) {
        self.admission = Admission::default();
        for (key, e) in &self.objects {
            match admission::definition(key.res, &e.obj) {
                Ok(Some(d)) => self.admission.install(&key.name, d),
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(name = %key.name, "admission object not enforced: {why}")
                }
            }
        }
    }

    /// A policy or binding about to be written, checked and compiled (422 when it is invalid).
    fn definition(key: &ObjKey, obj: &Value) -> Result<Option<Definition>, ApiError> {
        admission::definition(key.res, obj).map_err(|message| ApiError::Invalid {
            res: key.res,
            name: key.name.clone(),
            message,
        })
    }

    /// Runs the admission policies in force on a write of `key` (`object` null for a DELETE,
    /// `old` for a CREATE).
    fn admit(
        &self,
        op: Operation,
        key: &ObjKey,
        sub: &str,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let namespace = (!key.ns.is_empty())
            .then(|| self.get(&ObjKey::new(Res::Namespace, "", &key.ns)))
            .flatten();
        let req = Request {
            op,
            res: key.res,
            sub,
            ns: &key.ns,
            name: &key.name,
        };
        self.admission.check(&req, object, old, namespace)
    }
}

/// The annotation carrying a writer's fencing token (smo stamps it on everything it applies).
pub const FENCE_ANNOTATION: &str = "smo.io/fence";
/// The name of smo's fencing admission policy (and its binding), which the sim starts with:
/// smo's `deploy/fence-policy.yaml`, evaluated as written (see `admission`).
pub const FENCE_POLICY: &str = "smo-fence";

/// The fencing token an object carries (its [`FENCE_ANNOTATION`]), if any.
pub(crate) fn fence_token(v: &Value) -> Option<i64> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(FENCE_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<i64>().ok())
}

/// A Deployment as its `/scale` subresource reads (autoscaling/v1 `Scale`).
pub(crate) fn scale_of(d: &Value) -> Value {
    let selector: Vec<String> = d
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let meta = &d["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                     "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": d.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": d.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                   "selector": selector.join(",")},
    })
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Every kind this store serves: the built-in ones and those of its CRDs.
    pub fn kinds(&self) -> Vec<Res> {
        Res::ALL
            .into_iter()
            .chain(self.custom.iter().copied())
            .collect()
    }

    /// True when this store serves `res` (a custom kind only while its CRD exists here).
    pub fn serves(&self, res: Res) -> bool {
        !matches!(res, Res::Custom(_)) || self.custom.contains(&res)
    }

    /// Rebuilds the custom kinds from the CRDs in the store, marks new CRDs Established (as the
    /// apiextensions controller does) and deletes the objects of kinds no CRD defines any more.
    fn reindex_crds(&mut self) {
        let mut custom = Vec::new();
        let mut schemas = BTreeMap::new();
        let crds: Vec<(ObjKey, Value)> = self
            .objects
            .iter()
            .filter(|(k, _)| k.res == Res::CustomResourceDefinition)
            .map(|(k, e)| (k.clone(), e.obj.clone()))
            .collect();
        for (key, crd) in crds {
            for (names, schema) in crd_versions(&crd) {
                let Some(res) = Res::custom(&names) else {
                    continue;
                };
                custom.push(res);
                if let Some(s) = schema {
                    schemas.insert(
                        format!("{}/{}/{}", names.group, names.version, names.kind),
                        s,
                    );
                }
            }
            if crd.pointer("/status/conditions").is_none() {
                let names = &crd["spec"]["names"];
                let now = now_rfc3339();
                let cond = |t: &str, reason: &str, msg: &str| {
                    json!({"type": t, "status": "True", "reason": reason, "message": msg,
                           "lastTransitionTime": now})
                };
                self.set_status(
                    &key,
                    json!({
                        "acceptedNames": names,
                        "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten()
                            .filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
                        "conditions": [
                            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                        ],
                    }),
                );
            }
        }
        let gone: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| matches!(k.res, Res::Custom(_)) && !custom.contains(&k.res))
            .cloned()
            .collect();
        for k in gone {
            let _ = self.delete(&k);
        }
        self.custom = custom;
        self.custom_schemas = schemas;
    }

    /// The schema of `group/version/Kind`: a configured one, else that of one of this store's CRDs.
    pub fn schema(&self, id: &str) -> Option<&Value> {
        self.schemas.get(id).or_else(|| self.custom_schemas.get(id))
    }

    /// Refuses an object its kind's schema does not admit (422, every field named).
    fn validate(&self, key: &ObjKey, obj: &Value) -> Result<(), ApiError> {
        let m = key.res.meta();
        let Some(schema) = self.schema(&format!("{}/{}/{}", m.group, m.version, m.kind)) else {
            return Ok(());
        };
        let found = super::schemas::violations(schema, obj, self.strict_fields);
        if found.is_empty() {
            return Ok(());
        }
        Err(ApiError::Invalid {
            res: key.res,
            name: key.name.clone(),
            message: found.join(", "),
        })
    }

    /// Notes a change at the current resourceVersion, for watches.
    fn record(&mut self, kind: ChangeKind, res: Res, obj: &Value) {
        if self.changes.len() == CHANGE_WINDOW
            && let Some(old) = self.changes.pop_front()
        {
            self.dropped_through = old.rv;
        }
        self.changes.push_back(Arc::new(Change {
            rv: self.rv,
            kind,
            res,
            obj: obj.clone(),
        }));
    }

    /// The changes after resourceVersion `rv`, oldest first; `None` when some of them are no
    /// longer kept (the watch must list again: 410 Gone).
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.dropped_through {
            return None;
        }
        let from = self.changes.partition_point(|c| c.rv <= rv);
        Some(self.changes.range(from..).cloned().collect())
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key).map(|e| &e.obj)
    }

    pub fn entry(&self, key: &ObjKey) -> Option<&Entry> {
        self.objects.get(key)
    }

    /// Objects of one kind (in one namespace if given), in key order.
    pub fn entries(&self, res: Res, ns: Option<&str>) -> impl Iterator<Item = &Entry> {
        self.objects
            .iter()
            .filter(move |(k, _)| k.res == res && ns.is_none_or(|n| k.ns == n))
            .map(|(_, e)| e)
    }

    pub fn list(&self, res: Res, ns: Option<&str>) -> Vec<&Value> {
        self.entries(res, ns).map(|e| &e.obj).collect()
    }

    /// Creates `body` in `ns` (ignored for cluster-scoped kinds).
    pub fn create(&mut self, res: Res, ns: &str, body: Value) -> Result<Value, ApiError> {
        let mut obj = body;
        let name = match str_at(&obj, "/metadata/name") {
            "" => match str_at(&obj, "/metadata/generateName") {
                "" => {
                    return Err(ApiError::Invalid {
                        res,
                        name: String::new(),
                        message: "metadata.name: Required value: name or generateName is required"
                            .into(),
                    });
                }
                prefix => {
                    let suffix = uuid::Uuid::new_v4().simple().to_string();
                    format!("{prefix}{}", &suffix[..5])
                }
            },
            n => n.to_string(),
        };
        let key = ObjKey::new(res, ns, &name);
        check_identity(&key, &mut obj)?;
        if self.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists { res, name });
        }
        self.ensure_namespace(&key)?;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            m.insert("generation".into(), json!(1));
        }
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
        let seq = self.rv + 1;
        apply_defaults(res, &mut obj, None, seq);
        obj["metadata"]["resourceVersion"] = json!(seq.to_string());
        self.validate(&key, &obj)?;
        let definition = Self::definition(&key, &obj)?;
        self.admit(Operation::Create, &key, "", Some(&obj), None)?;
        self.rv = seq;
        if let Some(d) = definition {
            self.admission.install(&key.name, d);
        }
        self.record(ChangeKind::Added, res, &obj);
        self.objects.insert(
            key.clone(),
            Entry {
                obj: obj.clone(),
                seq: self.rv,
            },
        );
        if res == Res::CustomResourceDefinition {
            self.reindex_crds();
            return Ok(self.objects.get(&key).map_or(obj, |e| e.obj.clone()));
        }
        Ok(obj)
    }

    fn ensure_namespace(&mut self, key: &ObjKey) -> Result<(), ApiError> {
        if !key.res.meta().namespaced {
            return Ok(());
        }
        let ns_key = ObjKey::new(Res::Namespace, "", &key.ns);
        if self.objects.contains_key(&ns_key) {
            return Ok(());
        }
        if !self.auto_create_namespaces {
            return Err(ApiError::NotFound {
                res: Res::Namespace,
                name: key.ns.clone(),
            });
        }
        self.create(Res::Namespace, "", json!({"metadata": {"name": key.ns}}))
            .map(|_| ())
    }

    /// PUT: replaces the object (or only its status).
    pub fn replace(
        &mut self,
        key: &ObjKey,
        mut body: Value,
        manager: Option<&str>,
        part: Part,
    ) -> Result<Value, ApiError> {
        let old = self.existing(key)?;
        if !body.is_object() {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        take_update_ownership(key.res, &old, &mut body, manager, part);
        self.commit(key, &old, body, part)
    }

    /// PATCH in any supported flavour. Server-side apply creates a missing object.
    pub fn patch(
        &mut self,
        key: &ObjKey,
        ty: PatchType,
        body: Value,
        manager: Option<&str>,
        force: bool,
        part: Part,
    ) -> Result<Value, ApiError> {
        match ty {
            PatchType::Apply => self.apply(key, body, manager, force, part),
            PatchType::Merge => {
                if !body.is_object() {
                    return Err(ApiError::BadRequest(
                        "a merge patch must be a JSON object".into(),
                    ));
                }
                let old = self.existing(key)?;
                let mut new = old.clone();
                merge_patch(&mut new, &body);
                take_update_ownership(key.res, &old, &mut new, manager, part);
                self.commit(key, &old, new, part)
            }
            PatchType::Json => {
                let old = self.existing(key)?;
                let mut new = json_patch(&old, &body).map_err(ApiError::BadRequest)?;
                take_update_ownership(key.res, &old, &mut new, manager, part);
                self.commit(key, &old, new, part)
            }
        }
    }

    fn apply(
        &mut self,
        key: &ObjKey,
        mut body: Value,
        manager: Option<&str>,
        force: bool,
        part: Part,
    ) -> Result<Value, ApiError> {
        let Some(manager) = manager.filter(|m| !m.is_empty()) else {
            return Err(ApiError::BadRequest(
                "PATCH is not supported for apply requests without a fieldManager".into(),
            ));
        };
        let meta = body
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert(json!({})));
        let Some(m) = meta.and_then(Value::as_object_mut) else {
            return Err(ApiError::BadRequest(
                "an apply patch must be an object with object metadata".into(),
            ));
        };
        m.remove("managedFields");
        let fields = field_set(&body, part);
        let Some(old) = self.get(key).cloned() else {
            if part == Part::Status {
                return Err(ApiError::NotFound {
                    res: key.res,
                    name: key.name.clone(),
                });
            }
            if str_at(&body, "/metadata/name").is_empty() {
                body["metadata"]["name"] = json!(key.name);
            }
            check_identity(key, &mut body)?;
            body["metadata"]["managedFields"] =
                json!([managed_entry(key.res, manager, part, fields)]);
            return self.create(key.res, &key.ns, body);
        };
        let mut new = old.clone();
        let entries = old
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array);
        let mine = |e: &&Value| {
            str_at(e, "/manager") == manager
                && str_at(e, "/operation") == "Apply"
                && (str_at(e, "/subresource") == "status") == (part == Part::Status)
        };
        let previous = entries.and_then(|es| es.iter().find(mine)).cloned();
        // Fields other managers own with another value conflict, unless forced: then they
        // change hands (as a real apiserver's field manager does). Equal values are shared.
        let mut others: Vec<Value> = entries
            .map(|es| es.iter().filter(|e| !mine(e)).cloned().collect())
            .unwrap_or_default();
        let mut applied = Vec::new();
        leaves(&fields, &mut Vec::new(), &mut applied);
        let mut conflicts = Vec::new();
        for e in &mut others {
            for leaf in &applied {
                if has_leaf(&e["fieldsV1"], leaf) && value_at(&body, leaf) != value_at(&old, leaf) {
                    conflicts.push(FieldConflict {
                        manager: str_at(e, "/manager").to_string(),
                        api_version: str_at(e, "/apiVersion").to_string(),
                        field: leaf.iter().map(|k| format!(".{k}")).collect(),
                    });
                    if force {
                        remove_leaf(&mut e["fieldsV1"], leaf);
                    }
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(ApiError::ApplyConflict {
                res: key.res,
                name: key.name.clone(),
                conflicts,
            });
        }
        others.retain(|e| e["fieldsV1"].as_object().is_some_and(|o| !o.is_empty()));
        if let Some(prev) = &previous {
            prune(&mut new, &prev["fieldsV1"], &fields);
        }
        merge_patch(&mut new, &body);
        let content_changed = new != old;
        let mut entry = managed_entry(key.res, manager, part, fields);
        if let Some(prev) =
            previous.filter(|p| !content_changed && p["fieldsV1"] == entry["fieldsV1"])
        {
            entry["time"] = prev["time"].clone();
        }
        let mut list = others;
        list.push(entry);
        new["metadata"]["managedFields"] = Value::Array(list);
        self.commit(key, &old, new, part)
    }

    fn existing(&self, key: &ObjKey) -> Result<Value, ApiError> {
        self.get(key).cloned().ok_or_else(|| ApiError::NotFound {
            res: key.res,
            name: key.name.clone(),
        })
    }

    /// Stores `new` as the next version of `old`: checks identity and resourceVersion, keeps
    /// system metadata, bumps `generation` on spec changes, and skips no-op writes entirely.
    fn commit(
        &mut self,
        key: &ObjKey,
        old: &Value,
        mut new: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        check_identity(key, &mut new)?;
        let old_rv = str_at(old, "/metadata/resourceVersion");
        let new_rv = str_at(&new, "/metadata/resourceVersion");
        if !new_rv.is_empty() && new_rv != old_rv {
            return Err(ApiError::Conflict {
                res: key.res,
                name: key.name.clone(),
            });
        }
        let mut next = match part {
            Part::Main | Part::Scale => {
                set_or_remove(&mut new, "status", old.get("status"));
                new
            }
            Part::Status => {
                let mut o = old.clone();
                set_or_remove(&mut o, "status", new.get("status"));
                if let Some(mf) = new.pointer("/metadata/managedFields") {
                    o["metadata"]["managedFields"] = mf.clone();
                }
                o
            }
        };
        for f in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            set_or_remove(&mut next["metadata"], f, old["metadata"].get(f));
        }
        if next["metadata"].get("managedFields").is_none() {
            set_or_remove(
                &mut next["metadata"],
                "managedFields",
                old["metadata"].get("managedFields"),
            );
        }
        apply_defaults(key.res, &mut next, Some(old), self.rv + 1);
        if without_meta(&next) != without_meta(old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            next["metadata"]["generation"] = json!(generation + 1);
        }
        if part != Part::Status {
            self.validate(key, &next)?;
        }
        // Admission sees every update, a no-op too, as kube-apiserver's does; the scale
        // subresource is admitted as the Scale objects it reads and writes.
        let definition = match part {
            Part::Main => Self::definition(key, &next)?,
            Part::Status | Part::Scale => None,
        };
        if part == Part::Scale {
            let req = Request {
                op: Operation::Update,
                res: key.res,
                sub: part.subresource(),
                ns: &key.ns,
                name: &key.name,
            };
            // Scale objects are built only for a policy that may look at them.
            if self.admission.may_apply(&req) {
                let (scale, was) = (scale_of(&next), scale_of(old));
                self.admit(Operation::Update, key, req.sub, Some(&scale), Some(&was))?;
            }
        } else {
            self.admit(
                Operation::Update,
                key,
                part.subresource(),
                Some(&next),
                Some(old),
            )?;
        }
        if next == *old {
            return Ok(next);
        }
        self.rv += 1;
        next["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(ChangeKind::Modified, key.res, &next);
        if let Some(e) = self.objects.get_mut(key) {
            e.obj = next.clone();
        }
        if let Some(d) = definition {
            self.admission.install(&key.name, d);
        }
        if key.res == Res::CustomResourceDefinition && part == Part::Main {
            self.reindex_crds();
        }
        Ok(next)
    }

    /// Replaces an object's status on behalf of the simulation; bumps the version only on change.
    pub fn set_status(&mut self, key: &ObjKey, status: Value) -> bool {
        self.set_field(key, "status", status)
    }

    /// Sets one top-level field (the simulation's status and spec writes); no-op aware. Compares
    /// the field alone: the simulation rewrites every workload's status on each reconcile, and
    /// cloning whole objects to compare them made a write cost as much as the federation is big.
    pub fn set_field(&mut self, key: &ObjKey, field: &str, value: Value) -> bool {
        let Some(e) = self.objects.get_mut(key) else {
            return false;
        };
        if e.obj.get(field) == Some(&value) {
            return false;
        }
        e.obj[field] = value;
        self.rv += 1;
        e.obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let changed = e.obj.clone();
        self.record(ChangeKind::Modified, key.res, &changed);
        true
    }

    /// Lets the simulation edit an object in place (e.g. a Cluster's taints); no-op aware.
    pub fn update_with(&mut self, key: &ObjKey, f: impl FnOnce(&mut Value)) -> bool {
        let Some(e) = self.objects.get_mut(key) else {
            return false;
        };
        let mut next = e.obj.clone();
        f(&mut next);
        if next == e.obj {
            return false;
        }
        self.rv += 1;
        next["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        e.obj = next;
        let changed = e.obj.clone();
        self.record(ChangeKind::Modified, key.res, &changed);
        true
    }

    /// Deletes one object; deleting a namespace deletes everything in it at once.
    pub fn delete(&mut self, key: &ObjKey) -> Result<Value, ApiError> {
        let old = self.existing(key)?;
        self.admit(Operation::Delete, key, "", None, Some(&old))?;
        let Some(entry) = self.objects.remove(key) else {
            return Err(ApiError::NotFound {
                res: key.res,
                name: key.name.clone(),
            });
        };
        self.admission.remove(key.res, &key.name);
        if key.res == Res::Namespace {
            let inside: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|k| k.res.meta().namespaced && k.ns == key.name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(e) = self.objects.remove(&k) {
                    self.rv += 1;
                    let mut gone = e.obj;
                    gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                    self.record(ChangeKind::Deleted, k.res, &gone);
                }
            }
        }
        self.rv += 1;
        let mut obj = entry.obj;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(ChangeKind::Deleted, key.res, &obj);
        if key.res == Res::CustomResourceDefinition {
            self.reindex_crds();
        }
        Ok(obj)
    }
}

fn set_or_remove(target: &mut Value, field: &str, value: Option<&Value>) {
    match (value, target.as_object_mut()) {
        (Some(v), Some(o)) => {
            o.insert(field.to_string(), v.clone());
        }
        (None, Some(o)) => {
            o.remove(field);
        }
        _ => {}
    }
}

/// The object without `metadata` and `status`: what a `generation` bump is about.
fn without_meta(v: &Value) -> Map<String, Value> {
    let mut m = v.as_object().cloned().unwrap_or_default();
    m.remove("metadata");
    m.remove("status");
    m
}

/// Checks and fills `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` of a body
/// against where it is written, like the apiserver does.
fn check_identity(key: &ObjKey, obj: &mut Value) -> Result<(), ApiError> {
    let res = key.res;
    let Some(o) = obj.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    };
    for (field, want) in [
        ("apiVersion", res.api_version()),
        ("kind", res.meta().kind.to_string()),
    ] {
        match o.get(field).and_then(Value::as_str) {
            None | Some("") => {
                o.insert(field.into(), json!(want));
            }
            Some(got) if got != want => {
                return Err(ApiError::BadRequest(format!(
                    "the {field} of the object ({got}) does not match the expected {field} ({want})"
                )));
            }
            _ => {}
        }
    }
    if o.get("spec").is_some_and(|s| !s.is_object()) {
        return Err(ApiError::BadRequest("spec must be an object".into()));
    }
    let meta = o.entry("metadata").or_insert(json!({}));
    let Some(m) = meta.as_object_mut() else {
        return Err(ApiError::BadRequest("metadata must be an object".into()));
    };
    for field in ["labels", "annotations"] {
        let ok = m.get(field).is_none_or(|v| {
            v.is_null()
                || v.as_object()
                    .is_some_and(|o| o.values().all(Value::is_string))
        });
        if !ok {
            return Err(ApiError::BadRequest(format!(
                "metadata.{field} must map strings to strings"
            )));
        }
    }
    match m.get("name").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("name".into(), json!(key.name));
        }
        Some(n) if n != key.name => {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                key.name
            )));
        }
        _ => {}
    }
    if res.meta().namespaced {
        match m.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("namespace".into(), json!(key.ns));
            }
            Some(n) if n != key.ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                        .into(),
                ));
            }
            _ => {}
        }
    } else {
        m.remove("namespace");
    }
    if let Err(message) = validate_name(res, &key.name) {
        return Err(ApiError::Invalid {
            res,
            name: key.name.clone(),
            message,
        });
    }
    Ok(())
}

/// DNS-1123 subdomain for most kinds, a label for namespaces, a DNS-1035 label for services.
fn validate_name(res: Res, name: &str) -> Result<(), String> {
    let (max, dots, letter_first) = match res {
        Res::Namespace => (63, false, false),
        Res::Service => (63, false, true),
        _ => (253, true, false),
    };
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let first = name.chars().next();
    let valid = !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && first.is_some_and(|c| {
            if letter_first {
                c.is_ascii_lowercase()
            } else {
                alnum(c)
            }
        })
        && name.chars().last().is_some_and(alnum);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be a lowercase RFC 1123 {} of at most {max} characters",
            if dots { "subdomain" } else { "label" }
        ))
    }
}

/// Standard base64 with padding (what `data` of a Secret holds).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The few defaults an apiserver adds that clients read back.
fn apply_defaults(res: Res, obj: &mut Value, old: Option<&Value>, seq: u64) {
    match res {
        Res::Namespace => {
            let name = str_at(obj, "/metadata/name").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            if obj.get("status").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        Res::Service => {
            if obj.pointer("/spec/type").is_none() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            let external = str_at(obj, "/spec/type") == "ExternalName";
            if !external && obj.pointer("/spec/clusterIP").is_none() {
                let ip = old
                    .and_then(|o| o.pointer("/spec/clusterIP").cloned())
                    .unwrap_or_else(|| json!(format!("10.96.{}.{}", (seq >> 8) & 255, seq & 255)));
                obj["spec"]["clusterIPs"] = json!([ip]);
                obj["spec"]["clusterIP"] = ip;
            }
        }
        Res::Deployment if obj.pointer("/spec/replicas").is_none() => {
            obj["spec"]["replicas"] = json!(1);
        }
        // As the apiserver defaults them (what `kubectl rollout status` reads).
        Res::StatefulSet => {
            if obj.pointer("/spec/replicas").is_none() {
                obj["spec"]["replicas"] = json!(1);
            }
            if obj.pointer("/spec/updateStrategy/type").is_none() {
                obj["spec"]["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
            }
            if obj.pointer("/spec/podManagementPolicy").is_none() {
                obj["spec"]["podManagementPolicy"] = json!("OrderedReady");
            }
        }
        Res::DaemonSet => {
            if obj.pointer("/spec/updateStrategy/type").is_none() {
                obj["spec"]["updateStrategy"] = json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
            }
            if obj.pointer("/spec/revisionHistoryLimit").is_none() {
                obj["spec"]["revisionHistoryLimit"] = json!(10);
            }
        }
        // The sim runs no pods: a Job completes as soon as it exists (what Helm's hooks wait for).
        Res::Job if obj.get("status").is_none() => {
            let now = now_rfc3339();
            obj["status"] = json!({
                "succeeded": 1, "startTime": now, "completionTime": now,
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}],
            });
        }
        // A Secret's `stringData` is write-only: the apiserver folds it into `data` (base64).
        Res::Secret => {
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                for (k, v) in sd {
                    let text = v.as_str().unwrap_or_default().to_string();
                    obj["data"][k] = json!(base64_encode(text.as_bytes()));
                }
            }
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
        }
        _ => {}
    }
}

fn managed_entry(res: Res, manager: &str, part: Part, fields: Value) -> Value {
    let mut e = json!({
        "manager": manager, "operation": "Apply", "apiVersion": res.api_version(),
        "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields,
    });
    if part == Part::Status {
        e["subresource"] = json!("status");
    }
    e
}

/// The fields an apply body sets, in `fieldsV1` notation (`{"f:spec": {"f:replicas": {}}}`).
/// Lists are owned as a whole (no associative-list keys); metadata only through labels and
/// annotations, so that a later apply can never prune a name or uid.
pub(crate) fn field_set(body: &Value, part: Part) -> Value {
    fn walk(v: &Value) -> Value {
        match v.as_object() {
            Some(o) => Value::Object(o.iter().map(|(k, c)| (format!("f:{k}"), walk(c))).collect()),
            None => json!({}),
        }
    }
    let mut out = Map::new();
    for (k, v) in body.as_object().into_iter().flatten() {
        let wanted = match part {
            Part::Status => k == "status",
            Part::Main | Part::Scale => !matches!(k.as_str(), "apiVersion" | "kind" | "status"),
        };
        if !wanted {
            continue;
        }
        if k == "metadata" {
            let kept: Map<String, Value> = ["labels", "annotations"]
                .iter()
                .filter_map(|f| v.get(*f).map(|c| (format!("f:{f}"), walk(c))))
                .collect();
            if !kept.is_empty() {
                out.insert("f:metadata".into(), Value::Object(kept));
            }
        } else {
            out.insert(format!("f:{k}"), walk(v));
        }
    }
    Value::Object(out)
}

/// The leaf paths of a fieldsV1 set (`f:spec` → `f:replicas` → `["spec", "replicas"]`).
fn leaves(set: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(o) = set.as_object() else {
        return;
    };
    for (k, sub) in o {
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        path.push(name.to_string());
        if sub.as_object().is_some_and(|m| !m.is_empty()) {
            leaves(sub, path, out);
        } else {
            out.push(path.clone());
        }
        path.pop();
    }
}

/// Whether a fieldsV1 set owns `path` (or all of a field above it).
fn has_leaf(set: &Value, path: &[String]) -> bool {
    let mut node = set;
    for k in path {
        match node.get(format!("f:{k}")) {
            Some(sub) if sub.as_object().is_none_or(|m| m.is_empty()) => return true,
            Some(sub) => node = sub,
            None => return false,
        }
    }
    true
}

fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |node, k| node.get(k))
}

/// Takes `path` out of a fieldsV1 set, and the parents it leaves empty.
fn remove_leaf(set: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = format!("f:{first}");
    let Some(o) = set.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        o.remove(&key);
        return;
    }
    if let Some(sub) = o.get_mut(&key) {
        remove_leaf(sub, rest);
        if sub.as_object().is_some_and(|m| m.is_empty()) {
            o.remove(&key);
        }
    }
}

fn insert_leaf(set: &mut Value, path: &[String]) {
    let mut node = set;
    for k in path {
        if !node.is_object() {
            *node = json!({});
        }
        node = node
            .as_object_mut()
            .expect("an object")
            .entry(format!("f:{k}"))
            .or_insert(json!({}));
    }
}

/// The leaf paths whose values differ between `old` and `new` (lists compare whole); metadata
/// counts only for labels and annotations, and only the part being written counts.
fn changed_leaves(old: &Value, new: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match (old.as_object(), new.as_object()) {
        (Some(a), Some(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let top = path.is_empty();
                if top && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if path.len() == 1
                    && path[0] == "metadata"
                    && !matches!(k.as_str(), "labels" | "annotations")
                {
                    continue;
                }
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                if x != y {
                    path.push(k.clone());
                    changed_leaves(x, y, path, out);
                    path.pop();
                }
            }
        }
        _ if old != new && !path.is_empty() => out.push(path.clone()),
        _ => {}
    }
}

/// An update (PUT or a non-apply PATCH) with a `fieldManager` takes ownership of every field it
/// changes, from whoever owned it: updates never conflict, they record who changed what.
fn take_update_ownership(
    res: Res,
    old: &Value,
    new: &mut Value,
    manager: Option<&str>,
    part: Part,
) {
    let Some(manager) = manager.filter(|m| !m.is_empty()) else {
        return;
    };
    let scope = |v: &Value| match part {
        Part::Status => json!({"status": v.get("status").cloned().unwrap_or(Value::Null)}),
        Part::Main | Part::Scale => {
            let mut c = v.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("status");
            }
            c
        }
    };
    let mut changed = Vec::new();
    changed_leaves(&scope(old), &scope(new), &mut Vec::new(), &mut changed);
    if changed.is_empty() {
        return;
    }
    let status = part == Part::Status;
    let is_mine = |e: &Value| {
        str_at(e, "/manager") == manager
            && str_at(e, "/operation") == "Update"
            && (str_at(e, "/subresource") == "status") == status
    };
    let mut list: Vec<Value> = old
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut mine = list
        .iter()
        .position(is_mine)
        .map(|i| list.remove(i))
        .unwrap_or_else(|| {
            let mut e = managed_entry(res, manager, part, json!({}));
            e["operation"] = json!("Update");
            e
        });
    for e in &mut list {
        for leaf in &changed {
            remove_leaf(&mut e["fieldsV1"], leaf);
        }
    }
    list.retain(|e| e["fieldsV1"].as_object().is_some_and(|o| !o.is_empty()));
    for leaf in &changed {
        insert_leaf(&mut mine["fieldsV1"], leaf);
    }
    mine["time"] = json!(now_rfc3339());
    list.push(mine);
    new["metadata"]["managedFields"] = Value::Array(list);
}

/// Removes from `obj` the fields a manager set last time (`old`) but no longer sets (`new`):
/// how server-side apply lets a manager drop a label or a port.
pub(crate) fn prune(obj: &mut Value, old: &Value, new: &Value) {
    let (Some(target), Some(old)) = (obj.as_object_mut(), old.as_object()) else {
        return;
    };
    for (fk, old_sub) in old {
        let Some(k) = fk.strip_prefix("f:") else {
            continue;
        };
        match new.get(fk) {
            None => {
                target.remove(k);
            }
            Some(new_sub) => {
                if let Some(child) = target.get_mut(k) {
                    prune(child, old_sub, new_sub);
                }
            }
        }
    }
}

/// RFC 7386 JSON merge patch (also how applied fields land on the live object: objects merge
/// recursively, lists and scalars are replaced, `null` deletes).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
pub(crate) fn json_patch(doc: &Value, ops: &Value) -> Result<Value, String> {
    let Some(ops) = ops.as_array() else {
        return Err("a JSON patch must be an array of operations".into());
    };
    let mut doc = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or(format!("op {i}: missing path"))?;
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or(format!("op {i}: missing from"))
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or(format!("op {i}: missing value"))
        };
        match op.get("op").and_then(Value::as_str).unwrap_or("") {
            "add" => pointer_add(&mut doc, path, value()?)?,
            "remove" => {
                pointer_remove(&mut doc, path)?;
            }
            "replace" => {
                pointer_remove(&mut doc, path)?;
                pointer_add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = pointer_remove(&mut doc, from()?)?;
                pointer_add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or(format!("op {i}: from not found"))?;
                pointer_add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("op {i}: test failed at {path}"));
                }
            }
            other => return Err(format!("op {i}: unknown operation {other:?}")),
        }
    }
    Ok(doc)
}

fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..idx], last))
}

fn pointer_add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(o)) => {
            o.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let at = if last == "-" {
                a.len()
            } else {
                last.parse().map_err(|_| format!("bad index in {path}"))?
            };
            if at > a.len() {
                return Err(format!("index out of range in {path}"));
            }
            a.insert(at, value);
            Ok(())
        }
        _ => Err(format!("path not found: {path}")),
    }
}

fn pointer_remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let removed = match doc.pointer_mut(parent) {
        Some(Value::Object(o)) => o.remove(&last),
        Some(Value::Array(a)) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < a.len())
            .map(|i| a.remove(i)),
        _ => None,
    };
    removed.ok_or_else(|| format!("path not found: {path}"))
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        match self {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        }
    }
}

/// True when `labels` (a JSON object, or null) satisfies every requirement.
pub(crate) fn matches_all(reqs: &[Requirement], labels: &Value) -> bool {
    reqs.iter().all(|r| r.matches(labels))
}

/// Parses the `labelSelector` query syntax: `a=b,c==d,e!=f,g in (x,y),h notin (z),i,!j`.
pub(crate) fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    let mut out = Vec::new();
    for p in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'));
            let inner = inner.ok_or_else(|| format!("invalid selector term {p:?}"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        let req = if let Some((k, v)) = p.split_once("!=") {
            Requirement::NotEq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            Requirement::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            Requirement::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = p.split_once(" in ") {
            Requirement::In(k.trim().into(), set(rest)?)
        } else if let Some(k) = p.strip_prefix('!') {
            Requirement::NotExists(k.trim().into())
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Requirement::Exists(p.into())
        } else {
            return Err(format!("invalid selector term {p:?}"));
        };
        out.push(req);
    }
    Ok(out)
}

/// Converts a structured `LabelSelector` (`matchLabels`, `matchExpressions`); `None` when it
/// uses an unknown operator, which then matches nothing.
pub(crate) fn label_selector(sel: &Value) -> Option<Vec<Requirement>> {
    let mut out: Vec<Requirement> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| Requirement::Eq(k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(e, "/key").to_string();
        let values: Vec<String> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        out.push(match str_at(e, "/operator") {
            "In" => Requirement::In(key, values),
            "NotIn" => Requirement::NotIn(key, values),
            "Exists" => Requirement::Exists(key),
            "DoesNotExist" => Requirement::NotExists(key),
            _ => return None,
        });
    }
    Some(out)
}

/// Parses a `fieldSelector`; only `metadata.name` and `metadata.namespace` are supported, as
/// for custom resources. Each term is (JSON pointer, wanted value, equal?).
pub(crate) fn parse_field_selector(s: &str) -> Result<Vec<(&'static str, String, bool)>, String> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, eq) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(format!("invalid field selector term {term:?}"));
        };
        let pointer = match field.trim() {
            "metadata.name" => "/metadata/name",
            "metadata.namespace" => "/metadata/namespace",
            other => return Err(format!("field label not supported: {other}")),
        };
        out.push((pointer, value.trim().to_string(), eq));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let mut s = Store::default();
        s.create(Res::Namespace, "", json!({"metadata": {"name": "p"}}))
            .unwrap();
        s
    }

    fn deploy(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"a": "1"}},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
        let mut t = json!([1]);
        merge_patch(&mut t, &json!({"x": 1}));
        assert_eq!(t, json!({"x": 1}));
    }

    #[test]
    fn json_patch_ops() {
        let doc = json!({"a": [1, 2], "b": {"c": 1}});
        let ops = json!([
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "copy", "from": "/b", "path": "/d"},
            {"op": "remove", "path": "/a/0"},
            {"op": "move", "from": "/d/c", "path": "/e"},
            {"op": "test", "path": "/e", "value": 2},
        ]);
        assert_eq!(
            json_patch(&doc, &ops).unwrap(),
            json!({"a": [2, 3], "b": {"c": 2}, "d": {}, "e": 2})
        );
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&doc, &json!([{"op": "test", "path": "/b/c", "value": 9}])).is_err());
        assert!(json_patch(&doc, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let ok = |s: &str| matches_all(&parse_label_selector(s).unwrap(), &labels);
        assert!(ok("app=web,tier==front"));
        assert!(ok("app in (web, api),!gpu,tier"));
        assert!(ok("app notin (api),tier!=back"));
        assert!(!ok("app=api"));
        assert!(!ok("missing"));
        assert!(ok(""));
        assert!(parse_label_selector("a in b").is_err());
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]});
        assert!(matches_all(&label_selector(&sel).unwrap(), &labels));
        assert!(
            label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}))
                .is_none()
        );
        assert_eq!(
            parse_field_selector("metadata.name=x").unwrap(),
            vec![("/metadata/name", "x".into(), true)]
        );
        assert!(parse_field_selector("spec.x=1").is_err());
    }

    #[test]
    fn create_sets_metadata_and_conflicts() {
        let mut s = store();
        let d = s.create(Res::Deployment, "p", deploy("web")).unwrap();
        assert_eq!(d["metadata"]["namespace"], "p");
        assert_eq!(d["metadata"]["generation"], 1);
        assert!(d["metadata"]["uid"].is_string());
        assert_eq!(d["metadata"]["resourceVersion"], "2");
        let err = s.create(Res::Deployment, "p", deploy("web")).unwrap_err();
        assert_eq!(err.code(), 409);
        let err = s
            .create(Res::Deployment, "nope", deploy("web"))
            .unwrap_err();
        assert_eq!(
            err,
            ApiError::NotFound {
                res: Res::Namespace,
                name: "nope".into()
            }
        );
        assert_eq!(
            s.create(Res::Deployment, "p", deploy("Bad_Name"))
                .unwrap_err()
                .code(),
            422
        );
        let mut wrong = deploy("x");
        wrong["kind"] = json!("Service");
        assert_eq!(
            s.create(Res::Deployment, "p", wrong).unwrap_err().code(),
            400
        );
    }

    #[test]
    fn stale_resource_version_conflicts_and_noop_keeps_version() {
        let mut s = store();
        let d = s.create(Res::Deployment, "p", deploy("web")).unwrap();
        let key = ObjKey::new(Res::Deployment, "p", "web");
        let same = s.replace(&key, d.clone(), None, Part::Main).unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            d["metadata"]["resourceVersion"]
        );
        let mut stale = d.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(
            s.replace(&key, stale, None, Part::Main).unwrap_err().code(),
            409
        );
        let p = s
            .patch(
                &key,
                PatchType::Merge,
                json!({"spec": {"replicas": 5}}),
                None,
                true,
                Part::Main,
            )
            .unwrap();
        assert_eq!(p["metadata"]["generation"], 2);
        assert_ne!(
            p["metadata"]["resourceVersion"],
            d["metadata"]["resourceVersion"]
        );
        let st = s
            .patch(
                &key,
                PatchType::Merge,
                json!({"status": {"replicas": 1}}),
                None,
                true,
                Part::Main,
            )
            .unwrap();
        assert!(
            st.get("status").is_none(),
            "main resource writes ignore status"
        );
    }

    #[test]
    fn apply_conflicts_name_the_other_manager_and_field_and_force_takes_the_field() {
        let mut s = store();
        let key = ObjKey::new(Res::Deployment, "p", "web");
        let apply = |s: &mut Store, replicas: i64, who: &str, force: bool| {
            let mut d = deploy("web");
            d["spec"]["replicas"] = json!(replicas);
            s.patch(&key, PatchType::Apply, d, Some(who), force, Part::Main)
        };
        apply(&mut s, 2, "alice", false).unwrap();
        // The same value from another manager: shared, no conflict.
        apply(&mut s, 2, "bob", false).unwrap();
        let err = apply(&mut s, 3, "carol", false).unwrap_err();
        assert_eq!(err.code(), 409);
        let st = err.status_json();
        assert_eq!(st["reason"], "Conflict");
        let message = st["message"].as_str().unwrap();
        assert!(
            message.starts_with("Apply failed with 2 conflicts: "),
            "{message}"
        );
        assert!(
            message.contains("conflict with \"alice\" using apps/v1: .spec.replicas"),
            "{message}"
        );
        let causes = st["details"]["causes"].as_array().unwrap();
        assert!(
            causes
                .iter()
                .all(|c| c["reason"] == "FieldManagerConflict" && c["field"] == ".spec.replicas")
        );
        assert_eq!(
            s.get(&key).unwrap()["spec"]["replicas"],
            2,
            "a refused apply changes nothing"
        );
        // Forced: carol takes the field from both.
        let d = apply(&mut s, 3, "carol", true).unwrap();
        assert_eq!(d["spec"]["replicas"], 3);
        for e in d["metadata"]["managedFields"].as_array().unwrap() {
            let owns = has_leaf(&e["fieldsV1"], &["spec".into(), "replicas".into()]);
            assert_eq!(owns, e["manager"] == "carol", "{e}");
        }
        // An update takes ownership without conflict; an apply against it then conflicts.
        s.patch(
            &key,
            PatchType::Merge,
            json!({"spec": {"replicas": 5}}),
            Some("editor"),
            false,
            Part::Main,
        )
        .unwrap();
        let message = apply(&mut s, 3, "carol", false).unwrap_err().to_string();
        assert!(
            message.contains("conflict with \"editor\" using apps/v1: .spec.replicas"),
            "{message}"
        );
    }

    #[test]
    fn apply_creates_merges_and_prunes_own_fields() {
        let mut s = store();
        let key = ObjKey::new(Res::Deployment, "p", "web");
        let mut body = deploy("web");
        body["metadata"]["labels"]["b"] = json!("2");
        let first = s
            .patch(
                &key,
                PatchType::Apply,
                body.clone(),
                Some("smo"),
                true,
                Part::Main,
            )
            .unwrap();
        assert_eq!(first["metadata"]["managedFields"][0]["manager"], "smo");
        let again = s
            .patch(
                &key,
                PatchType::Apply,
                body.clone(),
                Some("smo"),
                true,
                Part::Main,
            )
            .unwrap();
        assert_eq!(first, again);
        s.patch(
            &key,
            PatchType::Merge,
            json!({"metadata": {"labels": {"other": "x"}}}),
            None,
            true,
            Part::Main,
        )
        .unwrap();
        let third = s
            .patch(
                &key,
                PatchType::Apply,
                deploy("web"),
                Some("smo"),
                true,
                Part::Main,
            )
            .unwrap();
        assert_eq!(
            third["metadata"]["labels"],
            json!({"a": "1", "other": "x"}),
            "b pruned, other kept"
        );
        assert_eq!(
            s.patch(
                &key,
                PatchType::Apply,
                deploy("web"),
                None,
                false,
                Part::Main
            )
            .unwrap_err()
            .code(),
            400
        );
    }

    #[test]
    fn delete_namespace_cascades() {
        let mut s = store();
        s.create(Res::Deployment, "p", deploy("web")).unwrap();
        s.delete(&ObjKey::new(Res::Namespace, "", "p")).unwrap();
        assert!(s.list(Res::Deployment, None).is_empty());
        assert_eq!(
            s.delete(&ObjKey::new(Res::Namespace, "", "p"))
                .unwrap_err()
                .code(),
            404
        );
    }

    #[test]
    fn status_json_shape() {
        let st = ApiError::NotFound {
            res: Res::Deployment,
            name: "x".into(),
        }
        .status_json();
        assert_eq!(st["message"], "deployments.apps \"x\" not found");
        assert_eq!(
            st["details"],
            json!({"name": "x", "group": "apps", "kind": "deployments"})
        );
        assert_eq!(st["code"], 404);
        let st = ApiError::Invalid {
            res: Res::ValidatingAdmissionPolicy,
            name: "p".into(),
            message: "spec.validations[0].expression: Invalid value: \"(\": compilation failed"
                .into(),
        }
        .status_json();
        assert_eq!(
            st["details"]["causes"],
            json!([{"reason": "FieldValueInvalid", "field": "spec.validations[0].expression",
                    "message": "Invalid value: \"(\": compilation failed"}])
        );
    }
}
