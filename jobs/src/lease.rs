//! Lease discipline: a worker stops writing before its lease can lapse for its peers.
//!
//! Peers declare a worker lost once its last heartbeat is older than the lease
//! (`heartbeat_interval × missed_heartbeats`, on *their* wall clocks). The worker itself trusts
//! its lease only until the *renew deadline*: the moment it sent its last successful heartbeat
//! plus `renew_deadline`, which is shorter than the lease by a margin for clock skew between
//! hosts and for a write in flight — the scheme of Kubernetes leader election. Measured on the
//! worker's monotonic clock (which runs on through SIGSTOP, GC pauses and VM stalls), so a worker
//! that wakes from a pause sees at once that its lease is gone.
//!
//! Every claim also raises the job's `epoch`, the fencing token of the attempt: a late attempt
//! whose job was claimed again cannot acknowledge it, and `JobContext::fence` refuses it inside
//! the caller's transaction.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::JobError;

/// The worker's lease as the worker sees it.
#[derive(Debug)]
pub(crate) struct LeaseState {
    base: Instant,
    /// Microseconds after `base` until which the lease is trusted.
    deadline_us: AtomicU64,
    /// Raised when the worker learns it was declared lost: every attempt that started under an
    /// older generation is fenced for good, even after the worker comes back.
    generation: AtomicU64,
}

impl LeaseState {
    /// A lease trusted until `renew_deadline` from now (registration counts as a heartbeat).
    pub(crate) fn new(renew_deadline: Duration) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            deadline_us: AtomicU64::new(micros(renew_deadline)),
            generation: AtomicU64::new(0),
        })
    }

    /// A heartbeat sent at `sent` succeeded: the lease holds until `sent + renew_deadline`.
    pub(crate) fn renewed(&self, sent: Instant, renew_deadline: Duration) {
        let at = micros((sent + renew_deadline).saturating_duration_since(self.base));
        self.deadline_us.fetch_max(at, Ordering::AcqRel);
    }

    /// The worker was declared lost: fence every attempt it is running.
    pub(crate) fn revoke(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A handle for an attempt starting now.
    pub(crate) fn hold(self: &Arc<Self>) -> Lease {
        Lease {
            state: Some(self.clone()),
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    /// Until when the lease is trusted.
    pub(crate) fn deadline(&self) -> Instant {
        self.base + Duration::from_micros(self.deadline_us.load(Ordering::Acquire))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// An attempt's hold on its worker's lease: check it before every external write.
#[derive(Debug, Clone)]
pub struct Lease {
    state: Option<Arc<LeaseState>>,
    generation: u64,
}

impl Lease {
    /// A lease that never lapses, for code run outside a worker (tools, tests).
    pub fn unbounded() -> Self {
        Self {
            state: None,
            generation: 0,
        }
    }

    /// Time left before the renew deadline; `None` once it passed or the worker was declared
    /// lost since this attempt began. `Some(Duration::MAX)` for an unbounded lease.
    pub fn remaining(&self) -> Option<Duration> {
        let Some(s) = &self.state else {
            return Some(Duration::MAX);
        };
        if s.generation.load(Ordering::Acquire) != self.generation {
            return None;
        }
        s.deadline().checked_duration_since(Instant::now())
    }

    /// `Ok` while the attempt may still write; [`JobError::Fenced`] once it must stop.
    pub fn check(&self) -> Result<(), JobError> {
        match self.remaining() {
            Some(d) if !d.is_zero() => Ok(()),
            _ => Err(JobError::Fenced(
                "the worker's lease lapsed (its heartbeats did not reach the database in time); \
                 the job belongs to whichever worker claims it next"
                    .into(),
            )),
        }
    }
}

/// A lease moved by hand, for tests of code that checks one (see `testing::ManualLease`).
#[derive(Debug, Clone)]
pub struct ManualLease {
    state: Arc<LeaseState>,
    renew_deadline: Duration,
}

impl ManualLease {
    /// A lease trusted for `renew_deadline` from now.
    pub fn new(renew_deadline: Duration) -> Self {
        Self {
            state: LeaseState::new(renew_deadline),
            renew_deadline,
        }
    }

    /// What an attempt starting now holds.
    pub fn lease(&self) -> Lease {
        self.state.hold()
    }

    /// A heartbeat sent now succeeded.
    pub fn renew(&self) {
        self.state.renewed(Instant::now(), self.renew_deadline);
    }

    /// The worker learned it was declared lost.
    pub fn revoke(&self) {
        self.state.revoke();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_holds_until_the_renew_deadline_and_moves_with_each_heartbeat() {
        let renew = Duration::from_secs(10);
        let state = LeaseState::new(renew);
        let lease = state.hold();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(lease.check().is_ok());
        let sent = Instant::now();
        tokio::time::advance(Duration::from_secs(2)).await;
        // Past the first deadline: lapsed, until the heartbeat sent at 9 s is acknowledged.
        assert!(lease.check().is_err());
        state.renewed(sent, renew);
        assert!(lease.check().is_ok());
        assert_eq!(lease.remaining(), Some(Duration::from_secs(8)));
        // An older heartbeat answered late never moves the deadline back.
        state.renewed(sent - Duration::from_secs(5), renew);
        assert_eq!(lease.remaining(), Some(Duration::from_secs(8)));
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(matches!(lease.check(), Err(JobError::Fenced(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_begun_before_the_worker_was_declared_lost_stays_fenced() {
        let renew = Duration::from_secs(10);
        let state = LeaseState::new(renew);
        let old = state.hold();
        state.revoke();
        state.renewed(Instant::now(), renew);
        let new = state.hold();
        assert!(old.check().is_err(), "fenced for good");
        assert!(new.check().is_ok());
        assert!(Lease::unbounded().check().is_ok());
    }
}
