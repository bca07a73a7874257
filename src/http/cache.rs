//! Rendered answers kept by the API under the version stamp they were rendered at. A read first
//! asks the database for the stamp of what it would answer (the `xmin` of the rows it covers, so
//! any committed change to them, or a row entering or leaving them, changes it); when the stamp
//! matches, the kept answer is sent as it is. Never stale: an answer rendered while a write
//! committed is kept under the stamp read *before* it, which that write already changed.

use std::{collections::HashMap, sync::Mutex};

/// Answers by key, each with its stamp. Full, it forgets everything and starts again: the keys
/// are graphs and pages, each cheap to render once more.
pub(super) struct StampCache<V> {
    entries: Mutex<HashMap<String, (String, V)>>,
    most: usize,
}

impl<V: Clone> StampCache<V> {
    /// A cache of at most `most` answers.
    pub(super) fn new(most: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            most,
        }
    }

    /// The answer kept for `key` if it was rendered at `stamp`.
    pub(super) fn get(&self, key: &str, stamp: &str) -> Option<V> {
        self.lock()
            .get(key)
            .filter(|(at, _)| at == stamp)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` for `key`, rendered at `stamp` (read before rendering began).
    pub(super) fn put(&self, key: String, stamp: String, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.most && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (stamp, value));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, V)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_served_only_at_the_stamp_it_was_rendered_at() {
        let c = StampCache::new(2);
        c.put("a".into(), "1:2".into(), 10);
        assert_eq!(c.get("a", "1:2"), Some(10));
        assert_eq!(c.get("a", "1:3"), None, "another stamp: render again");
        assert_eq!(c.get("b", "1:2"), None);
        c.put("a".into(), "1:3".into(), 11);
        assert_eq!(c.get("a", "1:3"), Some(11));
        assert_eq!(c.get("a", "1:2"), None);
    }

    #[test]
    fn a_full_cache_forgets_and_starts_again() {
        let c = StampCache::new(2);
        c.put("a".into(), "s".into(), 1);
        c.put("b".into(), "s".into(), 2);
        c.put("b".into(), "t".into(), 3);
        assert_eq!(c.get("a", "s"), Some(1), "replacing a key does not fill it");
        c.put("c".into(), "s".into(), 4);
        assert_eq!(c.get("a", "s"), None);
        assert_eq!(c.get("c", "s"), Some(4));
    }
}
