//! ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1) as data, enforced the way
//! kube-apiserver enforces them. A `ValidatingAdmissionPolicy` names the requests it applies to
//! (`matchConstraints`, `matchConditions`) and the CEL expressions each must satisfy
//! (`validations`); a `ValidatingAdmissionPolicyBinding` whose `validationActions` hold `Deny`
//! puts it in force. A request that fails a validation is refused with the validation's
//! `messageExpression` (else `message`) and `reason`, worded as kube-apiserver words it.
//!
//! Policies are objects like any other (`kubectl apply` creates them); each is compiled once,
//! when it is written, and one whose expressions do not compile is refused with 422 as by a real
//! apiserver. Expressions are evaluated by the `cel` interpreter (the standard library and the
//! strings extension) with `object`, `oldObject`, `request`, `params` (always null) and
//! `variables` bound, and only for the requests a policy in force matches. The sim starts with
//! smo's own `deploy/fence-policy.yaml` ([`FENCE_POLICY_YAML`]).
//!
//! Not supported: `paramKind` and `paramRef` (refused on write), the `namespaceObject` and
//! `authorizer` variables, `request.userInfo`, the `Warn` and `Audit` actions (accepted, not acted
//! on), type checking and cost limits. Operations evaluated: CREATE, UPDATE (the main resource and
//! its `status` and `scale` subresources) and DELETE; the simulation's own status writes and the
//! objects a namespace's deletion removes are not admitted.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, LazyLock},
};

use serde_json::{Value, json};

use super::store::{ApiError, Requirement, Res, label_selector, matches_all, str_at};

/// smo's fencing policy and its binding (smo's `deploy/fence-policy.yaml`), in force from the
/// start: the sim behaves as a Karmada API server with that file applied.
pub(crate) const FENCE_POLICY_YAML: &str = include_str!("../../deploy/fence-policy.yaml");

/// The CEL environment every expression is compiled and evaluated in, built once.
static ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| {
    let mut env = cel::Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("the strings extension is declared once");
    Arc::new(env)
});

/// The documents of a multi-document YAML text (empty documents skipped).
pub(crate) fn documents(text: &str) -> Result<Vec<Value>, serde_norway::Error> {
    use serde::Deserialize;
    let docs: Result<Vec<Value>, _> = serde_norway::Deserializer::from_str(text)
        .map(Value::deserialize)
        .collect();
    Ok(docs?.into_iter().filter(|d| !d.is_null()).collect())
}

/// The operation a request performs on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// The request being admitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub op: Operation,
    pub res: Res,
    /// `""` for the main resource, else `status` or `scale`.
    pub sub: &'a str,
    pub ns: &'a str,
    pub name: &'a str,
}

/// One entry of `resourceRules` (or `excludeResourceRules`).
struct Rule {
    groups: Vec<String>,
    versions: Vec<String>,
    operations: Vec<String>,
    /// `deployments`, `deployments/status`, `deployments/*`, `*`, `*/*`.
    resources: Vec<String>,
    names: Vec<String>,
    /// `*`, `Cluster` or `Namespaced`.
    scope: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn items<'a>(v: &'a Value, field: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

impl Rule {
    fn parse(v: &Value, at: &str) -> Result<Rule, String> {
        let list = |field: &str| -> Result<Vec<String>, String> {
            let l = strings(&v[field]);
            if l.is_empty() {
                return Err(format!("{at}.{field}: Required value"));
            }
            Ok(l)
        };
        let operations = list("operations")?;
        if let Some(bad) = operations
            .iter()
            .find(|o| !matches!(o.as_str(), "*" | "CREATE" | "UPDATE" | "DELETE" | "CONNECT"))
        {
            return Err(format!(
                "{at}.operations: Unsupported value: {bad:?}: supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\""
            ));
        }
        Ok(Rule {
            groups: list("apiGroups")?,
            versions: list("apiVersions")?,
            operations,
            resources: list("resources")?,
            names: strings(&v["resourceNames"]),
            scope: v["scope"].as_str().unwrap_or("*").to_string(),
        })
    }

    fn matches(&self, req: &Request) -> bool {
        let m = req.res.meta();
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        let resource = |rule: &String| {
            let (r, s) = rule.split_once('/').unwrap_or((rule, ""));
            (r == "*" || r == m.plural) && (s == "*" || s == req.sub)
        };
        any(&self.groups, m.group)
            && any(&self.versions, m.version)
            && any(&self.operations, req.op.as_str())
            && self.resources.iter().any(resource)
            && (self.names.is_empty() || self.names.iter().any(|n| n == req.name))
            && match self.scope.as_str() {
                "Cluster" => !m.namespaced,
                "Namespaced" => m.namespaced,
                _ => true,
            }
    }
}

/// `matchConstraints` of a policy, `matchResources` of a binding.
struct Matcher {
    /// Empty: every resource (a binding's constraint); a policy needs at least one.
    rules: Vec<Rule>,
    exclude: Vec<Rule>,
    namespaces: Vec<Requirement>,
    objects: Vec<Requirement>,
}

impl Matcher {
    fn parse(v: &Value, at: &str) -> Result<Matcher, String> {
        let rules = |field: &str| {
            items(v, field)
                .map(|(i, r)| Rule::parse(r, &format!("{at}.{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let selector = |field: &str| {
            v.get(field).map_or(Ok(Vec::new()), |s| {
                label_selector(s).ok_or_else(|| {
                    format!("{at}.{field}.matchExpressions: Invalid value: unknown operator")
                })
            })
        };
        Ok(Matcher {
            rules: rules("resourceRules")?,
            exclude: rules("excludeResourceRules")?,
            namespaces: selector("namespaceSelector")?,
            objects: selector("objectSelector")?,
        })
    }

    /// Whether the request is selected. `namespace` is the object's Namespace, if any.
    fn matches(
        &self,
        req: &Request,
        object: Option<&Value>,
        old: Option<&Value>,
        namespace: Option<&Value>,
    ) -> bool {
        let labels = |o: Option<&Value>| o.map_or(Value::Null, |o| o["metadata"]["labels"].clone());
        // A namespaced object is selected by its Namespace's labels, a Namespace by its own;
        // the namespace selector does not apply to other cluster-scoped objects.
        let namespace_labels = if req.res.meta().namespaced {
            Some(labels(namespace))
        } else if req.res == Res::Namespace {
            Some(labels(object.or(old)))
        } else {
            None
        };
        (self.rules.is_empty() || self.rules.iter().any(|r| r.matches(req)))
            && !self.exclude.iter().any(|r| r.matches(req))
            && (self.namespaces.is_empty()
                || namespace_labels.is_none_or(|l| matches_all(&self.namespaces, &l)))
            && (self.objects.is_empty()
                || [object, old]
                    .into_iter()
                    .flatten()
                    .any(|o| matches_all(&self.objects, &o["metadata"]["labels"])))
    }
}

/// A compiled CEL expression and its source.
struct Expr {
    source: String,
    program: cel::Program,
}

impl Expr {
    fn compile(v: &Value, at: &str) -> Result<Expr, String> {
        let source = v.as_str().unwrap_or_default().to_string();
        if source.trim().is_empty() {
            return Err(format!("{at}: Required value"));
        }
        match ENV.compile(&source) {
            Ok(program) => Ok(Expr { source, program }),
            Err(e) => Err(format!(
                "{at}: Invalid value: {source:?}: compilation failed: {e}"
            )),
        }
    }

    fn error(&self, why: impl std::fmt::Display) -> String {
        format!("expression '{}' resulted in error: {why}", self.source)
    }

    /// `Ok(bool)` or the message of the error it evaluated to.
    fn test(&self, scope: &cel::Context) -> Result<bool, String> {
        match self.program.execute(scope) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => {
                Err(self.error(format_args!("no such overload: want bool, got {other:?}")))
            }
            Err(e) => Err(self.error(e)),
        }
    }
}

/// One entry of `validations`.
struct Validation {
    expr: Expr,
    message: Option<String>,
    message_expr: Option<Expr>,
    reason: &'static str,
}

impl Validation {
    /// What a failed validation answers: `messageExpression` when it evaluates to a non-empty
    /// single line, else `message`, else the expression.
    fn message(&self, scope: &cel::Context) -> String {
        let evaluated = self
            .message_expr
            .as_ref()
            .and_then(|m| match m.program.execute(scope) {
                Ok(cel::Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                    Some(s.trim().to_string())
                }
                _ => None,
            });
        evaluated
            .or_else(|| self.message.clone())
            .unwrap_or_else(|| format!("failed expression: {}", self.expr.source.trim()))
    }
}

/// A compiled `ValidatingAdmissionPolicy`.
pub(crate) struct Policy {
    ignore_failures: bool,
    matches: Matcher,
    conditions: Vec<Expr>,
    variables: Vec<(String, Expr)>,
    validations: Vec<Validation>,
}

/// A refusal: the message and the `Status` reason.
type Denial = (String, &'static str);

impl Policy {
    fn parse(obj: &Value) -> Result<Policy, String> {
        let spec = &obj["spec"];
        if !spec.get("paramKind").is_none_or(Value::is_null) {
            return Err(
                "spec.paramKind: Forbidden: smo sim does not support policy parameters".into(),
            );
        }
        let ignore_failures = match spec.get("failurePolicy").and_then(Value::as_str) {
            None | Some("Fail") => false,
            Some("Ignore") => true,
            Some(other) => {
                return Err(format!(
                    "spec.failurePolicy: Unsupported value: {other:?}: supported values: \"Fail\", \"Ignore\""
                ));
            }
        };
        let matches = Matcher::parse(&spec["matchConstraints"], "spec.matchConstraints")?;
        if matches.rules.is_empty() {
            return Err("spec.matchConstraints.resourceRules: Required value".into());
        }
        let conditions = items(spec, "matchConditions")
            .map(|(i, c)| {
                Expr::compile(
                    &c["expression"],
                    &format!("spec.matchConditions[{i}].expression"),
                )
            })
            .collect::<Result<_, _>>()?;
        let variables = items(spec, "variables")
            .map(|(i, v)| {
                let name = str_at(v, "/name");
                if name.is_empty() {
                    return Err(format!("spec.variables[{i}].name: Required value"));
                }
                let e =
                    Expr::compile(&v["expression"], &format!("spec.variables[{i}].expression"))?;
                Ok((name.to_string(), e))
            })
            .collect::<Result<_, String>>()?;
        let validations: Vec<Validation> = items(spec, "validations")
            .map(|(i, v)| {
                let at = format!("spec.validations[{i}]");
                let reason = match v.get("reason").and_then(Value::as_str) {
                    None | Some("Forbidden") => "Forbidden",
                    Some("Invalid") => "Invalid",
                    Some("Unauthorized") => "Unauthorized",
                    Some("RequestEntityTooLarge") => "RequestEntityTooLarge",
                    Some(other) => {
                        return Err(format!(
                            "{at}.reason: Unsupported value: {other:?}: supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\", \"Unauthorized\""
                        ));
                    }
                };
                Ok(Validation {
                    expr: Expr::compile(&v["expression"], &format!("{at}.expression"))?,
                    message: v.get("message").and_then(Value::as_str).map(String::from),
                    message_expr: v
                        .get("messageExpression")
                        .map(|m| Expr::compile(m, &format!("{at}.messageExpression")))
                        .transpose()?,
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        if validations.is_empty() && items(spec, "auditAnnotations").next().is_none() {
            return Err(
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item"
                    .into(),
            );
        }
        Ok(Policy {
            ignore_failures,
            matches,
            conditions,
            variables,
            validations,
        })
    }

    /// Evaluates the policy against a request that its constraints select; `None` admits it.
    fn evaluate(&self, root: &cel::Context) -> Option<Denial> {
        let failed = |message: String| (!self.ignore_failures).then_some((message, "Forbidden"));
        for c in &self.conditions {
            match c.test(root) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(message) => return failed(message),
            }
        }
        let mut scope = root.new_inner_scope();
        if !self.variables.is_empty() {
            // In order, each seeing those before it; one that fails to evaluate is left unset.
            let mut vars: HashMap<String, cel::Value> = HashMap::new();
            for (name, e) in &self.variables {
                scope.add_variable_from_value("variables", vars.clone());
                if let Ok(v) = e.program.execute(&scope) {
                    vars.insert(name.clone(), v);
                }
            }
            scope.add_variable_from_value("variables", vars);
        }
        for v in &self.validations {
            match v.expr.test(&scope) {
                Ok(true) => {}
                Ok(false) => return Some((v.message(&scope), v.reason)),
                Err(message) => {
                    if let Some(denial) = failed(message) {
                        return Some(denial);
                    }
                }
            }
        }
        None
    }
}

/// A parsed `ValidatingAdmissionPolicyBinding`.
pub(crate) struct Binding {
    policy: String,
    deny: bool,
    matches: Option<Matcher>,
}

impl Binding {
    fn parse(obj: &Value) -> Result<Binding, String> {
        let spec = &obj["spec"];
        let policy = str_at(spec, "/policyName");
        if policy.is_empty() {
            return Err("spec.policyName: Required value".into());
        }
        if !spec.get("paramRef").is_none_or(Value::is_null) {
            return Err(
                "spec.paramRef: Forbidden: smo sim does not support policy parameters".into(),
            );
        }
        let actions = strings(&spec["validationActions"]);
        if actions.is_empty() {
            return Err("spec.validationActions: Required value".into());
        }
        if let Some(bad) = actions
            .iter()
            .find(|a| !matches!(a.as_str(), "Deny" | "Warn" | "Audit"))
        {
            return Err(format!(
                "spec.validationActions: Unsupported value: {bad:?}: supported values: \"Audit\", \"Deny\", \"Warn\""
            ));
        }
        let deny = actions.iter().any(|a| a == "Deny");
        if deny && actions.iter().any(|a| a == "Warn") {
            return Err(
                "spec.validationActions: Invalid value: must not contain both Deny and Warn".into(),
            );
        }
        let matches = spec
            .get("matchResources")
            .filter(|m| !m.is_null())
            .map(|m| Matcher::parse(m, "spec.matchResources"))
            .transpose()?;
        Ok(Binding {
            policy: policy.to_string(),
            deny,
            matches,
        })
    }
}

/// What writing an admission object puts in force.
pub(crate) enum Definition {
    Policy(Arc<Policy>),
    Binding(Arc<Binding>),
}

/// Checks a `ValidatingAdmissionPolicy` or binding about to be written, as kube-apiserver does
/// (compiling every expression); `Ok(None)` for objects of other kinds.
pub(crate) fn definition(res: Res, obj: &Value) -> Result<Option<Definition>, String> {
    Ok(match res {
        Res::ValidatingAdmissionPolicy => Some(Definition::Policy(Arc::new(Policy::parse(obj)?))),
        Res::ValidatingAdmissionPolicyBinding => {
            Some(Definition::Binding(Arc::new(Binding::parse(obj)?)))
        }
        _ => None,
    })
}

/// The policies and bindings in force, compiled. Cheap to clone (a dry run clones the store).
#[derive(Clone, Default)]
pub(crate) struct Admission {
    policies: BTreeMap<String, Arc<Policy>>,
    bindings: BTreeMap<String, Arc<Binding>>,
}

impl Admission {
    /// Puts a written policy or binding named `name` in force (replacing the previous version).
    pub fn install(&mut self, name: &str, d: Definition) {
        match d {
            Definition::Policy(p) => {
                self.policies.insert(name.to_string(), p);
            }
            Definition::Binding(b) => {
                self.bindings.insert(name.to_string(), b);
            }
        }
    }

    /// Takes a deleted policy or binding out of force.
    pub fn remove(&mut self, res: Res, name: &str) {
        match res {
            Res::ValidatingAdmissionPolicy => {
                self.policies.remove(name);
            }
            Res::ValidatingAdmissionPolicyBinding => {
                self.bindings.remove(name);
            }
            _ => {}
        }
    }

    /// The policies in force whose rules select the request (selectors and conditions aside):
    /// nothing to evaluate when there are none.
    fn selected<'s>(
        &'s self,
        req: &Request,
    ) -> impl Iterator<Item = (&'s str, &'s Binding, &'s Policy)> {
        self.bindings.iter().filter_map(move |(name, b)| {
            let p = self.policies.get(&b.policy)?;
            let rules = |m: &Matcher| {
                (m.rules.is_empty() || m.rules.iter().any(|r| r.matches(req)))
                    && !m.exclude.iter().any(|r| r.matches(req))
            };
            (b.deny && rules(&p.matches) && b.matches.as_ref().is_none_or(rules)).then_some((
                name.as_str(),
                b.as_ref(),
                p.as_ref(),
            ))
        })
    }

    /// Whether any policy in force may apply to the request: its objects need building only then.
    pub fn may_apply(&self, req: &Request) -> bool {
        self.selected(req).next().is_some()
    }

    /// Admits the request or refuses it as kube-apiserver does. `object` is null for a DELETE and
    /// `old` for a CREATE; `namespace` is the object's Namespace, if it has one.
    pub fn check(
        &self,
        req: &Request,
        object: Option<&Value>,
        old: Option<&Value>,
        namespace: Option<&Value>,
    ) -> Result<(), ApiError> {
        let mut activation = None;
        for (binding, b, p) in self.selected(req) {
            let selects = |m: &Matcher| m.matches(req, object, old, namespace);
            if !selects(&p.matches) || !b.matches.as_ref().is_none_or(selects) {
                continue;
            }
            let root = activation.get_or_insert_with(|| bind(req, object, old));
            if let Some((message, reason)) = p.evaluate(root) {
                return Err(ApiError::Denied {
                    res: req.res,
                    name: req.name.to_string(),
                    policy: b.policy.clone(),
                    binding: binding.to_string(),
                    message,
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// The variables every expression of a request sees.
fn bind(
    req: &Request,
    object: Option<&Value>,
    old: Option<&Value>,
) -> cel::Context<'static, 'static> {
    let m = req.res.meta();
    let kind = if req.sub == "scale" {
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    } else {
        json!({"group": m.group, "version": m.version, "kind": m.kind})
    };
    let resource = json!({"group": m.group, "version": m.version, "resource": m.plural});
    let request = json!({
        "operation": req.op.as_str(), "name": req.name, "namespace": req.ns,
        "kind": kind, "requestKind": kind, "resource": resource, "requestResource": resource,
        "subResource": req.sub, "requestSubResource": req.sub,
    });
    let mut ctx = cel::Context::with_env(ENV.clone());
    ctx.add_variable_from_value("object", object.map_or(cel::Value::Null, to_cel));
    ctx.add_variable_from_value("oldObject", old.map_or(cel::Value::Null, to_cel));
    ctx.add_variable_from_value("request", to_cel(&request));
    ctx.add_variable_from_value("params", cel::Value::Null);
    ctx
}

/// A JSON value as CEL sees a Kubernetes object: integers are `int`, objects are maps.
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), to_cel(v)))
            .collect::<HashMap<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ObjKey, Part, PatchType, Store};

    /// The policies and bindings of a YAML text, in force as after `kubectl apply -f`.
    fn admission(yaml: &str) -> Admission {
        let mut a = Admission::default();
        for doc in documents(yaml).unwrap() {
            let res = Res::ALL
                .into_iter()
                .find(|r| r.meta().kind == doc["kind"])
                .unwrap();
            let d = definition(res, &doc).unwrap().unwrap();
            a.install(str_at(&doc, "/metadata/name"), d);
        }
        a
    }

    fn request(op: Operation, res: Res, sub: &'static str) -> Request<'static> {
        Request {
            op,
            res,
            sub,
            ns: "default",
            name: "web",
        }
    }

    fn update(res: Res) -> Request<'static> {
        request(Operation::Update, res, "")
    }

    fn tokened(token: Option<&str>) -> Value {
        let mut v = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {}});
        if let Some(t) = token {
            v["metadata"]["annotations"] = json!({"smo.io/fence": t, "other": "x"});
        }
        v
    }

    /// The message and reason a refusal carries, or `None` when admitted.
    fn verdict(
        a: &Admission,
        req: &Request,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Option<(String, u16, String)> {
        a.check(req, object, old, None).err().map(|e| match e {
            ApiError::Denied {
                ref message,
                ref policy,
                ref binding,
                ..
            } => (message.clone(), e.code(), format!("{policy}/{binding}")),
            other => panic!("{other:?}"),
        })
    }

    /// deploy/fence-policy.yaml, as shipped, evaluated by the CEL interpreter: a write may not
    /// lower the token an object carries; equal, higher or missing tokens pass, and the refusal
    /// is the policy's own messageExpression.
    #[test]
    fn the_shipped_fence_policy_refuses_a_lower_token_and_admits_an_equal_higher_or_missing_one() {
        let a = admission(FENCE_POLICY_YAML);
        let stale = |got: &str, had: &str| {
            Some((
                format!(
                    "stale writer: fencing token {got} is older than {had}, written by a newer holder of the lock"
                ),
                403,
                "smo-fence/smo-fence".to_string(),
            ))
        };
        let cases = [
            // (token the object has, token the write carries, verdict)
            (Some("5"), Some("3"), stale("3", "5")),
            // Compared as integers, not strings ("9" > "10" as text).
            (Some("10"), Some("9"), stale("9", "10")),
            (Some("5"), Some("5"), None),
            (Some("5"), Some("6"), None),
            (Some("9"), Some("10"), None),
            (Some("5"), None, None),
            (None, Some("3"), None),
            (None, None, None),
        ];
        for res in [
            Res::Service,
            Res::Deployment,
            Res::PropagationPolicy,
            Res::PrometheusRule,
        ] {
            for (had, got, want) in &cases {
                let (old, new) = (tokened(*had), tokened(*got));
                assert_eq!(
                    &verdict(&a, &update(res), Some(&new), Some(&old)),
                    want,
                    "{res:?}: {had:?} -> {got:?}"
                );
            }
        }
        // What the policy does not name: other kinds, creates and deletes, subresources.
        let (old, new) = (tokened(Some("5")), tokened(Some("3")));
        for req in [
            update(Res::ConfigMap),
            request(Operation::Create, Res::Service, ""),
            request(Operation::Update, Res::Deployment, "status"),
            request(Operation::Update, Res::Deployment, "scale"),
        ] {
            assert_eq!(verdict(&a, &req, Some(&new), Some(&old)), None, "{req:?}");
        }
        assert_eq!(
            verdict(
                &a,
                &request(Operation::Delete, Res::Service, ""),
                None,
                Some(&old)
            ),
            None
        );
    }

    const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replicas}
spec:
  matchConstraints:
    resourceRules:
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["deployments", "deployments/scale"]
  variables:
    - name: wanted
      expression: "request.subResource == 'scale' ? object.spec.replicas : object.spec.replicas"
    - name: limit
      expression: "variables.wanted <= 5 ? 5 : 3"
  validations:
    - expression: "variables.wanted <= variables.limit"
      messageExpression: "'at most ' + string(variables.limit) + ' replicas, not ' + string(variables.wanted)"
      reason: Invalid
    - expression: "oldObject == null || !has(object.metadata.labels) || object.metadata.labels.app == oldObject.metadata.labels.app"
      message: "the app label is immutable"
    - expression: "object.metadata.name.startsWith('web')"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replicas-binding}
spec:
  policyName: replicas
  validationActions: [Deny]
"#;

    fn deployment(name: &str, replicas: i64, app: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
               "spec": {"replicas": replicas}})
    }

    /// A refusal answers the messageExpression when it evaluates, else the message, else the
    /// failed expression; its code follows the validation's reason. Variables see the ones
    /// before them, `oldObject` is null on a create, and the scale subresource is admitted as
    /// the Scale objects it writes.
    #[test]
    fn a_refusal_carries_the_validations_message_and_reason() {
        let a = admission(POLICY);
        let create = request(Operation::Create, Res::Deployment, "");
        let d = |n: i64| deployment("web", n, "a");
        assert_eq!(verdict(&a, &create, Some(&d(3)), None), None);
        assert_eq!(
            verdict(&a, &create, Some(&d(7)), None),
            Some((
                "at most 3 replicas, not 7".into(),
                422,
                "replicas/replicas-binding".into()
            ))
        );
        let relabelled = deployment("web", 1, "b");
        assert_eq!(
            verdict(&a, &update(Res::Deployment), Some(&relabelled), Some(&d(1))),
            Some((
                "the app label is immutable".into(),
                403,
                "replicas/replicas-binding".into()
            ))
        );
        let other = deployment("api", 1, "a");
        assert_eq!(
            verdict(&a, &create, Some(&other), None).map(|v| v.0),
            Some("failed expression: object.metadata.name.startsWith('web')".into())
        );
        let scale =
            |n: i64| json!({"kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": n}});
        let req = request(Operation::Update, Res::Deployment, "scale");
        assert_eq!(
            verdict(&a, &req, Some(&scale(9)), Some(&scale(1))).map(|v| v.0),
            Some("at most 3 replicas, not 9".into())
        );
        // Not selected: other subresources, other groups.
        let req = request(Operation::Update, Res::Deployment, "status");
        assert_eq!(verdict(&a, &req, Some(&d(9)), Some(&d(1))), None);
        assert_eq!(
            verdict(&a, &update(Res::StatefulSet), Some(&d(9)), Some(&d(1))),
            None
        );
    }

    /// An expression that fails to evaluate refuses the request under `failurePolicy: Fail` (the
    /// default) and is skipped under `Ignore`; `matchConditions` narrow what a policy applies to.
    #[test]
    fn failure_policy_and_match_conditions_decide_what_an_error_or_a_mismatch_does() {
        let policy = |failure: &str| {
            format!(
                r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: p}}
spec:
  failurePolicy: {failure}
  matchConstraints:
    resourceRules:
      - {{apiGroups: [""], apiVersions: ["*"], operations: ["*"], resources: ["*"], scope: Namespaced}}
    excludeResourceRules:
      - {{apiGroups: [""], apiVersions: ["*"], operations: ["*"], resources: ["secrets"]}}
  matchConditions:
    - name: not-system
      expression: "request.namespace != 'kube-system'"
  validations:
    - expression: "object.spec.missing == 1"
    - expression: "object.spec.size < 10"
      message: too big
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: b}}
spec: {{policyName: p, validationActions: [Deny]}}
"#
            )
        };
        let small = json!({"metadata": {"name": "web"}, "spec": {"size": 1}});
        let big = json!({"metadata": {"name": "web"}, "spec": {"size": 11}});
        let fail = admission(&policy("Fail"));
        let message = verdict(&fail, &update(Res::Service), Some(&small), Some(&small))
            .unwrap()
            .0;
        assert!(
            message.starts_with("expression 'object.spec.missing == 1' resulted in error: "),
            "{message}"
        );
        let ignore = admission(&policy("Ignore"));
        assert_eq!(
            verdict(&ignore, &update(Res::Service), Some(&small), Some(&small)),
            None
        );
        assert_eq!(
            verdict(&ignore, &update(Res::Service), Some(&big), Some(&small)).map(|v| v.0),
            Some("too big".into())
        );
        let system = Request {
            ns: "kube-system",
            ..update(Res::Service)
        };
        for (req, why) in [
            (system, "a match condition is false"),
            (update(Res::Secret), "excluded"),
            (update(Res::Namespace), "cluster-scoped"),
            (update(Res::Deployment), "another group"),
        ] {
            assert_eq!(verdict(&fail, &req, Some(&big), Some(&big)), None, "{why}");
        }
    }

    /// A policy is in force only through a binding whose actions hold Deny; a binding's
    /// `matchResources` and selectors narrow it further.
    #[test]
    fn only_a_deny_binding_puts_a_policy_in_force_within_its_match_resources() {
        let policy = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: never}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: ["*"], apiVersions: ["*"], operations: ["UPDATE"], resources: ["*"]}
  validations: [{expression: "false", message: "no"}]
"#;
        let bound = |spec: &str| {
            admission(&format!(
                "{policy}---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: b}}\nspec: {spec}\n"
            ))
        };
        let web = json!({"metadata": {"name": "web", "labels": {"tier": "web"}}});
        let db = json!({"metadata": {"name": "web", "labels": {"tier": "db"}}});
        let refused =
            |a: &Admission, req: Request, o: &Value| verdict(a, &req, Some(o), Some(o)).is_some();
        assert!(
            !refused(&admission(policy), update(Res::Service), &web),
            "unbound"
        );
        for actions in ["[Warn]", "[Audit]", "[Warn, Audit]"] {
            let a = bound(&format!(
                "{{policyName: never, validationActions: {actions}}}"
            ));
            assert!(!refused(&a, update(Res::Service), &web), "{actions}");
        }
        let a = bound("{policyName: missing, validationActions: [Deny]}");
        assert!(!refused(&a, update(Res::Service), &web), "binds no policy");
        let a = bound("{policyName: never, validationActions: [Deny, Audit]}");
        assert!(refused(&a, update(Res::Service), &web));
        let a = bound(
            r#"{policyName: never, validationActions: [Deny], matchResources: {
                 resourceRules: [{apiGroups: ["apps"], apiVersions: ["*"], operations: ["*"], resources: ["deployments"], resourceNames: ["web"]}],
                 objectSelector: {matchLabels: {tier: web}}}}"#,
        );
        assert!(refused(&a, update(Res::Deployment), &web));
        assert!(!refused(&a, update(Res::Deployment), &db), "objectSelector");
        assert!(!refused(&a, update(Res::Service), &web), "resourceRules");
        let other = Request {
            name: "api",
            ..update(Res::Deployment)
        };
        assert!(!refused(&a, other, &web), "resourceNames");
        let a = bound(
            r#"{policyName: never, validationActions: [Deny], matchResources: {namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a]}]}}}"#,
        );
        let ns = |team: &str| json!({"metadata": {"name": "default", "labels": {"team": team}}});
        let req = update(Res::Service);
        assert!(verdict(&a, &req, Some(&web), Some(&web)).is_none());
        assert!(
            a.check(&req, Some(&web), Some(&web), Some(&ns("a")))
                .is_err()
        );
        assert!(
            a.check(&req, Some(&web), Some(&web), Some(&ns("b")))
                .is_ok()
        );
    }

    /// What kube-apiserver refuses to store is refused with 422 and the field at fault: an
    /// expression that does not compile, a missing rule, an unknown action; parameters, which
    /// the sim does not support, are refused rather than ignored.
    #[test]
    fn policies_that_do_not_compile_are_refused_when_written() {
        let mut docs = documents(FENCE_POLICY_YAML).unwrap();
        let (mut policy, mut binding) = (docs.remove(0), docs.remove(0));
        let refused = |res: Res, o: &Value| match definition(res, o) {
            Err(message) => message,
            Ok(_) => panic!("accepted: {o}"),
        };
        let good = policy.clone();
        policy["spec"]["validations"][0]["expression"] = json!("object.metadata.(");
        let m = refused(Res::ValidatingAdmissionPolicy, &policy);
        assert!(
            m.starts_with("spec.validations[0].expression: Invalid value: \"object.metadata.(\": compilation failed"),
            "{m}"
        );
        policy = good.clone();
        policy["spec"]["validations"][0]["messageExpression"] = json!("'a' +");
        let m = refused(Res::ValidatingAdmissionPolicy, &policy);
        assert!(
            m.starts_with("spec.validations[0].messageExpression"),
            "{m}"
        );
        policy = good.clone();
        policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"] = json!([]);
        assert_eq!(
            refused(Res::ValidatingAdmissionPolicy, &policy),
            "spec.matchConstraints.resourceRules[0].operations: Required value"
        );
        policy = good;
        policy["spec"]["paramKind"] = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert!(
            refused(Res::ValidatingAdmissionPolicy, &policy)
                .starts_with("spec.paramKind: Forbidden")
        );
        binding["spec"]["validationActions"] = json!(["Deny", "Warn"]);
        assert!(
            refused(Res::ValidatingAdmissionPolicyBinding, &binding)
                .starts_with("spec.validationActions")
        );
        binding["spec"]["validationActions"] = json!(["Block"]);
        assert!(
            refused(Res::ValidatingAdmissionPolicyBinding, &binding)
                .contains("Unsupported value: \"Block\"")
        );
    }

    /// The store admits creates (old object null), updates and deletes (object null) through
    /// the policies among its objects, and a policy is in force from its write to its delete.
    #[test]
    fn the_store_admits_creates_updates_and_deletes_through_the_policies_it_holds() {
        let mut s = Store::default();
        s.create(Res::Namespace, "", json!({"metadata": {"name": "default"}}))
            .unwrap();
        let policy = |name: &str, op: &str, expression: &str| {
            json!({"metadata": {"name": name}, "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": [op], "resources": ["configmaps"]}]},
                "validations": [{"expression": expression}]}})
        };
        let bind = |s: &mut Store, name: &str| {
            s.create(
                Res::ValidatingAdmissionPolicyBinding,
                "",
                json!({"metadata": {"name": name}, "spec": {"policyName": name, "validationActions": ["Deny"]}}),
            )
            .unwrap();
        };
        for (name, op, e) in [
            (
                "create",
                "CREATE",
                "oldObject == null && object.data.v != 'bad'",
            ),
            (
                "update",
                "UPDATE",
                "object.data.v != oldObject.data.v + '!'",
            ),
            (
                "delete",
                "DELETE",
                "object == null && oldObject.data.v != 'keep'",
            ),
        ] {
            s.create(Res::ValidatingAdmissionPolicy, "", policy(name, op, e))
                .unwrap();
            bind(&mut s, name);
        }
        let cm = |v: &str| json!({"metadata": {"name": "c"}, "data": {"v": v}});
        let key = ObjKey::new(Res::ConfigMap, "default", "c");
        assert_eq!(
            s.create(Res::ConfigMap, "default", cm("bad"))
                .unwrap_err()
                .code(),
            403
        );
        s.create(Res::ConfigMap, "default", cm("keep")).unwrap();
        let put = |s: &mut Store, v: &str| s.replace(&key, cm(v), None, Part::Main);
        assert_eq!(put(&mut s, "keep!").unwrap_err().code(), 403);
        let patched = s.patch(
            &key,
            PatchType::Merge,
            json!({"data": {"v": "keep!"}}),
            None,
            false,
            Part::Main,
        );
        assert_eq!(patched.unwrap_err().code(), 403, "a patch is an update too");
        assert_eq!(s.delete(&key).unwrap_err().code(), 403);
        assert!(s.get(&key).is_some());
        // Deleting the update policy takes it out of force; the delete policy still holds.
        s.delete(&ObjKey::new(Res::ValidatingAdmissionPolicy, "", "update"))
            .unwrap();
        put(&mut s, "keep!").unwrap();
        s.delete(&key).unwrap();
        // A policy updated in place is recompiled: the create policy now refuses everything.
        let pkey = ObjKey::new(Res::ValidatingAdmissionPolicy, "", "create");
        s.replace(&pkey, policy("create", "CREATE", "false"), None, Part::Main)
            .unwrap();
        let e = s.create(Res::ConfigMap, "default", cm("ok")).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "ValidatingAdmissionPolicy 'create' with binding 'create' denied request: failed expression: false"
            ),
            "{e}"
        );
        // One that does not compile is refused and the one in force stays.
        let broken = s.replace(&pkey, policy("create", "CREATE", "("), None, Part::Main);
        assert_eq!(broken.unwrap_err().code(), 422);
        assert_eq!(
            s.create(Res::ConfigMap, "default", cm("ok"))
                .unwrap_err()
                .code(),
            403
        );
        // The scale subresource is admitted as the Scale objects it reads and writes, and a
        // rule naming it does not select the main resource.
        s.create(
            Res::ValidatingAdmissionPolicy,
            "",
            json!({"metadata": {"name": "scale"}, "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                    "operations": ["UPDATE"], "resources": ["deployments/scale"]}]},
                "validations": [{"expression":
                    "object.kind == 'Scale' && oldObject.spec.replicas == 1 && object.spec.replicas <= 5"}]}}),
        )
        .unwrap();
        bind(&mut s, "scale");
        let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}});
        s.create(Res::Deployment, "default", d).unwrap();
        let dkey = ObjKey::new(Res::Deployment, "default", "d");
        let replicas = |n: i64| json!({"spec": {"replicas": n}});
        let scaled = |s: &mut Store, n: i64, part: Part| {
            s.patch(&dkey, PatchType::Merge, replicas(n), None, false, part)
                .map(|_| ())
                .map_err(|e| e.code())
        };
        assert_eq!(scaled(&mut s, 9, Part::Scale), Err(403));
        assert_eq!(scaled(&mut s, 4, Part::Scale), Ok(()));
        assert_eq!(
            scaled(&mut s, 9, Part::Main),
            Ok(()),
            "not the main resource"
        );
        // A restored store compiles what it restores.
        let mut restored = Store::default();
        restored.restore(&s.snapshot());
        assert_eq!(
            restored
                .create(Res::ConfigMap, "default", cm("ok"))
                .unwrap_err()
                .code(),
            403
        );
    }
}
