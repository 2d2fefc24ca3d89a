//! A map bounded by generations, for the resolver's memos: when the current generation is full
//! it becomes the previous one (whose entries are dropped), so at most twice the capacity is
//! held and recently inserted entries stay.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub(crate) struct Generations<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
    capacity: usize,
}

impl<K: Hash + Eq, V> Generations<K, V> {
    /// At most `capacity` entries per generation (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            current: HashMap::new(),
            previous: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The entry of the current generation.
    pub(crate) fn current(&self, key: &K) -> Option<&V> {
        self.current.get(key)
    }

    /// The entries of both generations for `key`, current first.
    pub(crate) fn both(&self, key: &K) -> impl Iterator<Item = &V> {
        self.current
            .get(key)
            .into_iter()
            .chain(self.previous.get(key))
    }

    /// Takes the entry of the previous generation out (to insert it again as current).
    pub(crate) fn take_previous(&mut self, key: &K) -> Option<V> {
        self.previous.remove(key)
    }

    /// Inserts into the current generation, which first becomes the previous one when full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.current.len() >= self.capacity && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.current.is_empty() && self.previous.is_empty()
    }

    /// Entries held in both generations.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_bounded_by_two_generations_and_recent_entries_stay() {
        let mut g = Generations::new(8);
        for i in 0..100 {
            g.insert(i, i);
            assert!(g.len() <= 16, "{} held after {i}", g.len());
        }
        assert_eq!(g.both(&99).next(), Some(&99));
        assert_eq!(g.both(&0).next(), None, "the oldest are gone");
        // A key of the previous generation can be moved back into the current one.
        let old = (0..100).find(|k| g.current(k).is_none() && g.both(k).next().is_some());
        let old = old.expect("a key in the previous generation");
        let v = g.take_previous(&old).unwrap();
        g.insert(old, v);
        assert_eq!(g.current(&old), Some(&old));
    }
}
