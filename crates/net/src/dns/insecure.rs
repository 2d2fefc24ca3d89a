//! Names proven to lie in an insecure zone (RFC 4035 §4.3: a zone below an insecure delegation,
//! or below an unsigned zone, has no chain of trust), so that a validated lookup at or below one
//! of them needs no validation: its answer is insecure whatever it holds.
//!
//! hickory's validator proves an unsigned answer insecure bottom-up: it asks the NS RRset of
//! the name, then of each ancestor until it finds the zone cut, then the DS at the cut. For a
//! TLSA lookup at `_25._tcp.mx.example.com` after the MX lookup of `example.com` proved that
//! zone insecure, that is three to five more queries for an answer already known to be insecure.
//! [`Resolver`](super::Resolver) asks this memo first and makes a plain lookup instead.

use super::generations::Generations;
use hickory_proto::rr::Name;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Names kept at most per generation; two generations are kept, so at most twice this many.
pub const INSECURE_MEMO_CAPACITY: usize = 1024;

/// How long a name stays known as insecure: a zone that gets signed (and its DS published) is
/// validated again after this long at most.
pub const INSECURE_MEMO_TTL: Duration = Duration::from_secs(60);

/// A bounded memo of names proven insecure (at most twice [`INSECURE_MEMO_CAPACITY`] names, in
/// two generations), each with the time it stops counting.
#[derive(Debug)]
pub(crate) struct InsecureNames {
    generations: Mutex<Generations<String, Instant>>,
}

impl Default for InsecureNames {
    fn default() -> Self {
        Self {
            generations: Mutex::new(Generations::new(INSECURE_MEMO_CAPACITY)),
        }
    }
}

impl InsecureNames {
    /// Remembers that `name` (fully qualified) lies in an insecure zone.
    pub(crate) fn insert(&self, name: &Name) {
        let key = name.to_lowercase().to_ascii();
        self.lock().insert(key, Instant::now() + INSECURE_MEMO_TTL);
    }

    /// Whether `name` or one of its ancestors is known to lie in an insecure zone.
    pub(crate) fn covers(&self, name: &Name) -> bool {
        let now = Instant::now();
        let g = self.lock();
        if g.is_empty() {
            return false;
        }
        let mut n = name.to_lowercase();
        while !n.is_root() {
            if g.both(&n.to_ascii()).any(|until| now < *until) {
                return true;
            }
            n = n.base_name();
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<String, Instant>> {
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).expect("name")
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_covers_itself_and_its_descendants_for_a_while() {
        let memo = InsecureNames::default();
        assert!(!memo.covers(&name("example.com.")));
        memo.insert(&name("Example.COM."));
        assert!(memo.covers(&name("example.com.")));
        assert!(memo.covers(&name("_25._tcp.MX.example.com.")));
        assert!(!memo.covers(&name("com.")), "an ancestor is not covered");
        assert!(!memo.covers(&name("example.net.")));
        assert!(!memo.covers(&name("notexample.com.")));
        tokio::time::advance(INSECURE_MEMO_TTL).await;
        assert!(!memo.covers(&name("mx.example.com.")), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_names_go_first() {
        let memo = InsecureNames::default();
        for i in 0..3 * INSECURE_MEMO_CAPACITY {
            memo.insert(&name(&format!("d{i}.test.")));
        }
        let last = 3 * INSECURE_MEMO_CAPACITY - 1;
        assert!(memo.covers(&name(&format!("mx.d{last}.test."))));
        assert!(
            !memo.covers(&name("mx.d0.test.")),
            "the oldest names are gone"
        );
    }
}
