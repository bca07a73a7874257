//! `fence`: what a job attempt shows before every write outside smo's database.
//!
//! Two guards, because neither suffices alone:
//! - the attempt's **lease** ([`smo_jobs::Lease`]): checked before every federation, Helm,
//!   Grafana and Prometheus write, so a worker whose heartbeats stopped reaching the database
//!   stops writing before its peers may hand its job to another worker;
//! - the graph lock's **fencing token**: stamped on every object smo applies (annotation
//!   [`FENCE_ANNOTATION`]). The federation refuses a write carrying a lower token than the object
//!   already has (the sim always; a real Karmada API server with `deploy/fence-policy.yaml`
//!   installed), which also stops a write that was checked in time but arrives late (a packet
//!   held up in a partition, a request retried by TCP after the link healed).
//!
//! What no API server can check: deletes (they carry no object) and the scale subresource. Those
//! rely on the lease alone, and on the newer attempt re-applying what it decided.

use std::{future::Future, time::Duration};

use serde_json::Value;
use smo_jobs::{JobError, Lease};

use crate::store::FenceToken;

/// The annotation that carries the fencing token of the graph-lock holder that last wrote an
/// object.
pub const FENCE_ANNOTATION: &str = "smo.io/fence";

/// The name of the admission policy (and its message prefix) that refuses stale tokens.
pub const FENCE_POLICY: &str = "smo-fence";

/// This attempt may no longer write.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Fenced(pub String);

impl From<Fenced> for JobError {
    fn from(f: Fenced) -> Self {
        JobError::Fenced(f.0)
    }
}

/// A job attempt's permission to write, handed out with the graph lock.
#[derive(Debug, Clone)]
pub struct Fence {
    lease: Lease,
    token: Option<FenceToken>,
}

impl Fence {
    /// The fence of an attempt holding `lease` and, under a graph lock, that lock's `token`.
    pub fn new(lease: Lease, token: Option<FenceToken>) -> Self {
        Self { lease, token }
    }

    /// No lease, no token: for writes made outside a job (tools, tests).
    pub fn unbounded() -> Self {
        Self::new(Lease::unbounded(), None)
    }

    /// `Ok` while the attempt may write.
    pub fn check(&self) -> Result<(), Fenced> {
        self.lease.check().map_err(|e| match e {
            JobError::Fenced(why) => Fenced(why),
            other => Fenced(other.to_string()),
        })
    }

    /// Time left to write (`Duration::MAX` when unbounded).
    fn remaining(&self) -> Duration {
        self.lease.remaining().unwrap_or(Duration::ZERO)
    }

    /// Runs `work` (a process that makes many writes, such as Helm) only while the lease holds:
    /// it is dropped (and with it the process killed) once the renew deadline passes without a
    /// heartbeat having moved it.
    pub async fn bounded<T>(&self, work: impl Future<Output = T>) -> Result<T, Fenced> {
        let mut work = std::pin::pin!(work);
        loop {
            self.check()?;
            match tokio::time::timeout(self.remaining(), &mut work).await {
                Ok(v) => return Ok(v),
                // The deadline this wait began with passed; a heartbeat may have moved it since.
                Err(_) if self.check().is_ok() => continue,
                Err(_) => {
                    return Err(Fenced(
                        "the worker's lease lapsed while the work ran; it was stopped".into(),
                    ));
                }
            }
        }
    }

    /// `obj` with the token in its annotations (unchanged without a token).
    pub fn stamp(&self, obj: &Value) -> Value {
        let mut obj = obj.clone();
        if let (Some(token), Some(m)) = (
            self.token,
            obj.get_mut("metadata").and_then(Value::as_object_mut),
        ) && let Some(a) = m
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
        {
            a.insert(FENCE_ANNOTATION.into(), Value::String(token.to_string()));
        }
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_is_stamped_beside_existing_annotations_and_only_when_there_is_one() {
        let obj = json!({"metadata": {"name": "a", "annotations": {"x": "1"}}});
        let stamped = Fence::new(Lease::unbounded(), Some(FenceToken::from_raw(42))).stamp(&obj);
        assert_eq!(
            stamped["metadata"]["annotations"],
            json!({"x": "1", "smo.io/fence": "42"})
        );
        let bare = json!({"metadata": {"name": "a"}});
        assert_eq!(
            Fence::new(Lease::unbounded(), Some(FenceToken::from_raw(7))).stamp(&bare)["metadata"]
                ["annotations"],
            json!({"smo.io/fence": "7"})
        );
        assert_eq!(Fence::unbounded().stamp(&obj), obj);
    }

    /// Work that outlives several renew deadlines runs on while heartbeats move the deadline,
    /// and is stopped at the first deadline no heartbeat moved.
    #[tokio::test(start_paused = true)]
    async fn bounded_work_follows_the_renewed_lease_and_stops_when_it_lapses() {
        let manual = smo_jobs::testing::ManualLease::new(Duration::from_secs(1));
        let fence = Fence::new(manual.lease(), Some(FenceToken::from_raw(1)));
        let heartbeats = {
            let manual = manual.clone();
            tokio::spawn(async move {
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    manual.renew();
                }
            })
        };
        let start = tokio::time::Instant::now();
        let short = fence
            .bounded(tokio::time::sleep(Duration::from_millis(2500)))
            .await;
        assert!(short.is_ok(), "ran through five renewals");
        let long = fence
            .bounded(tokio::time::sleep(Duration::from_secs(60)))
            .await;
        assert!(long.is_err(), "stopped once the heartbeats stopped");
        // The last heartbeat was at 3 s, so the lease held until 4 s.
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        heartbeats.await.unwrap();
        assert!(fence.check().is_err());
        assert!(Fence::unbounded().check().is_ok());
    }

    /// The policy shipped for real Karmada (and enforced by the sim) guards every kind smo
    /// applies, under the name smo recognises in a refusal, on the annotation smo stamps.
    #[test]
    fn the_shipped_admission_policy_matches_what_smo_writes_and_recognises() {
        use serde::Deserialize;
        let text = include_str!("../../deploy/fence-policy.yaml");
        let docs: Vec<Value> = serde_norway::Deserializer::from_str(text)
            .map(|d| Value::deserialize(d).unwrap())
            .collect();
        let policy = docs
            .iter()
            .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
            .unwrap();
        let binding = docs
            .iter()
            .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
            .unwrap();
        assert_eq!(policy["metadata"]["name"], FENCE_POLICY);
        assert_eq!(binding["metadata"]["name"], FENCE_POLICY);
        assert_eq!(binding["spec"]["policyName"], FENCE_POLICY);
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
        let v = &policy["spec"]["validations"][0];
        assert_eq!(v["reason"], "Forbidden", "smo maps a 403 naming the policy");
        let expr = v["expression"].as_str().unwrap();
        assert!(expr.contains(&format!("'{FENCE_ANNOTATION}'")), "{expr}");
        let rules = &policy["spec"]["matchConstraints"]["resourceRules"][0];
        for (group, _, _, plural, _) in super::super::KINDS {
            assert!(
                rules["apiGroups"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(group)),
                "group {group:?}"
            );
            assert!(
                rules["resources"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(plural)),
                "{plural}"
            );
        }
    }
}
