//! The change log: every write's change at its resourceVersion, kept for a window, which
//! watches stream and the reconcile follows.

use std::sync::Arc;

use serde_json::Value;

use super::{CHANGE_WINDOW, Res, Store};

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

impl Store {
    /// Notes a change at the current resourceVersion, for watches. Takes the object: a caller
    /// that has a copy to spare gives it, and none is made here.
    pub(super) fn record(&mut self, kind: ChangeKind, res: Res, obj: Value) {
        if self.changes.len() == CHANGE_WINDOW
            && let Some(old) = self.changes.pop_front()
        {
            self.dropped_through = old.rv;
        }
        self.changes.push_back(Arc::new(Change {
            rv: self.rv,
            kind,
            res,
            obj,
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
}
