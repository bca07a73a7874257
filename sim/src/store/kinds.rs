//! The kinds the sim serves and their static facts (discovery names, scope), and the key an
//! object is stored under.

use super::custom::CustomNames;

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
/// indexes it. Each store serves only the kinds of its own CRDs
/// ([`Store::serves`](super::Store::serves)).
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
    /// registered there (whether a store serves it is
    /// [`Store::serves`](super::Store::serves)).
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
