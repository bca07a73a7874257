//! The policy index: which PropagationPolicies, ClusterPropagationPolicies and OverridePolicies
//! could select a workload, so that a change re-reads only the workloads it can affect.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::Workload;
use crate::store::{ObjKey, Res, Store, label_selector, matches_all, str_at};

/// Does this resource selector of a PropagationPolicy select the workload? Returns how specific
/// the match is (name 2, label selector 1, kind only 0), Karmada's tie-breaker.
fn selector_match(sel: &Value, w: &Workload) -> Option<u8> {
    let ns = str_at(sel, "/namespace");
    let ns_ok = ns.is_empty() || ns == w.key.ns;
    if str_at(sel, "/apiVersion") != "apps/v1"
        || str_at(sel, "/kind") != w.key.res.meta().kind
        || !ns_ok
    {
        return None;
    }
    match str_at(sel, "/name") {
        "" => {}
        n if n == w.key.name => return Some(2),
        _ => return None,
    }
    match sel.get("labelSelector") {
        None | Some(Value::Null) => Some(0),
        Some(ls) => label_selector(ls)
            .filter(|r| matches_all(r, &w.labels))
            .map(|_| 1),
    }
}

/// What a policy's resource selectors can select: workloads by name, and (`true`) any workload
/// of its namespace, by labels or kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Selects {
    pub(super) names: Vec<String>,
    pub(super) any: bool,
}

impl Selects {
    /// An OverridePolicy without resource selectors selects everything in its namespace.
    pub(super) fn of_override(policy: &Value) -> Selects {
        let mut s = Selects::of(policy);
        let none = policy
            .pointer("/spec/resourceSelectors")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        s.any |= none;
        s
    }

    pub(super) fn of(policy: &Value) -> Selects {
        let mut s = Selects::default();
        let sels = policy
            .pointer("/spec/resourceSelectors")
            .and_then(Value::as_array);
        for sel in sels.into_iter().flatten() {
            match str_at(sel, "/name") {
                "" => s.any = true,
                n => s.names.push(n.to_string()),
            }
        }
        s.names.sort_unstable();
        s.names.dedup();
        s
    }
}

/// The policies that could select a workload: by (namespace, workload name) for selectors that
/// name it, by namespace for those that select by labels or kind; cluster-wide policies sit under
/// namespace "". Kept up to date change by change (rebuilding it, or scanning every policy per
/// workload, made each write cost as much as the federation holds).
#[derive(Debug, Clone, Default)]
pub(super) struct PolicyIndex {
    by_name: HashMap<(String, String), BTreeSet<String>>,
    any: HashMap<String, BTreeSet<String>>,
    /// What each policy, by (namespace, name), put in the index.
    indexed: HashMap<(String, String), Selects>,
}

impl PolicyIndex {
    /// Replaces what the policy `ns/name` selects by `selects` (none: it is gone);
    /// returns what it selected before and what it selects now.
    pub(super) fn put(&mut self, ns: &str, name: &str, selects: Option<Selects>) -> [Selects; 2] {
        let id = (ns.to_string(), name.to_string());
        let old = self.indexed.remove(&id).unwrap_or_default();
        for n in &old.names {
            let slot = (ns.to_string(), n.clone());
            if let Some(set) = self.by_name.get_mut(&slot) {
                set.remove(name);
                if set.is_empty() {
                    self.by_name.remove(&slot);
                }
            }
        }
        if old.any
            && let Some(set) = self.any.get_mut(ns)
        {
            set.remove(name);
        }
        let present = selects.is_some();
        let new = selects.unwrap_or_default();
        for n in &new.names {
            self.by_name
                .entry((ns.to_string(), n.clone()))
                .or_default()
                .insert(name.to_string());
        }
        if new.any {
            self.any
                .entry(ns.to_string())
                .or_default()
                .insert(name.to_string());
        }
        if present {
            self.indexed.insert(id, new.clone());
        }
        [old, new]
    }

    /// Every OverridePolicy of `ns` that selects `w`, in the order they apply: the least
    /// specific selector first (so the most specific has the last word), then by name.
    pub(super) fn overriding<'s>(
        &self,
        store: &'s Store,
        ns: &str,
        w: &Workload,
    ) -> Vec<&'s Value> {
        let named = self.by_name.get(&(ns.to_string(), w.key.name.clone()));
        let mut found: Vec<(u8, &str, &'s Value)> = named
            .into_iter()
            .chain(self.any.get(ns))
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|name| store.get(&ObjKey::new(Res::OverridePolicy, ns, name)))
            .filter_map(|p| {
                let sels = p
                    .pointer("/spec/resourceSelectors")
                    .and_then(Value::as_array)
                    .filter(|s| !s.is_empty());
                let best = match sels {
                    None => 0,
                    Some(sels) => sels.iter().filter_map(|s| selector_match(s, w)).max()?,
                };
                Some((best, str_at(p, "/metadata/name"), p))
            })
            .collect();
        found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        found.into_iter().map(|t| t.2).collect()
    }

    /// Picks among the policies of `ns` ("" for cluster-wide ones) the one Karmada would: the
    /// highest `spec.priority`, then the most specific selector, then the first name.
    pub(super) fn pick<'s>(
        &self,
        store: &'s Store,
        res: Res,
        ns: &str,
        w: &Workload,
    ) -> Option<&'s Value> {
        let named = self.by_name.get(&(ns.to_string(), w.key.name.clone()));
        named
            .into_iter()
            .chain(self.any.get(ns))
            .flatten()
            .filter_map(|name| store.get(&ObjKey::new(res, ns, name)))
            .filter_map(|p| {
                let sels = p
                    .pointer("/spec/resourceSelectors")
                    .and_then(Value::as_array)?;
                let best = sels.iter().filter_map(|s| selector_match(s, w)).max()?;
                let priority = p
                    .pointer("/spec/priority")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                Some((
                    priority,
                    best,
                    std::cmp::Reverse(str_at(p, "/metadata/name")),
                    p,
                ))
            })
            .max_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)))
            .map(|t| t.3)
    }
}
