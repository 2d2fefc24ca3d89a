//! When to renew, and how long to wait after a failure: pure functions of the times given and a
//! jitter draw in `[0, 1)`, so that tests can pin them.

use std::time::Duration;

use time::OffsetDateTime;

/// The renewal time of a certificate valid from `not_before` to `not_after`: `fraction` of the
/// way through its lifetime (2/3 by default, as Let's Encrypt advises for 90-day certificates).
pub fn renewal_time(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fraction: f64,
) -> OffsetDateTime {
    let life = (not_after - not_before).max(time::Duration::ZERO);
    not_before + life * fraction.clamp(0.0, 1.0)
}

/// How long to wait after the `failures`-th failure in a row (1 for the first): `min` doubled
/// per failure up to `max`, then jittered down by up to half (so that instances and domains
/// that failed together do not retry together).
pub fn backoff(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let base = min
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(max)
        .min(max);
    base.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0))
}

/// A uniform draw in `[0, 1)` from the system's random source.
pub fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    // The system random source does not fail on Linux; a zero draw only means no jitter.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    // 53 random bits: every such f64 in [0, 1) is exact.
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn renewal_is_two_thirds_through_the_lifetime() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        let na = nb + time::Duration::days(90);
        assert_eq!(
            renewal_time(nb, na, 2.0 / 3.0),
            nb + time::Duration::days(60)
        );
        assert_eq!(
            renewal_time(na, nb, 2.0 / 3.0),
            na,
            "a backwards certificate: now"
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_down_by_at_most_half() {
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(backoff(1, min, max, 0.0), min);
        assert_eq!(backoff(2, min, max, 0.0), Duration::from_secs(120));
        assert_eq!(backoff(7, min, max, 0.0), max);
        assert_eq!(backoff(u32::MAX, min, max, 0.0), max);
        assert_eq!(backoff(1, min, max, 1.0), Duration::from_secs(30));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
            let b = backoff(3, min, max, j);
            assert!(
                b > Duration::from_secs(120) && b <= Duration::from_secs(240),
                "{b:?}"
            );
        }
    }
}
