//! The shared Redis tier against a real Redis server (`TEST_REDIS_URL`, e.g. the machine's own
//! `redis://127.0.0.1:6379/`). Without it the tests skip loudly, except in CI (`CI=true`), where
//! they fail.

use crate::fixture::*;
use mtasts_resolver::Reply;
use mtasts_resolver::stats::Source;
use mtasts_testnet::https::HttpResponse;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY_S: i64 = 86_400;
use mtasts_resolver::cache_file::spawn_writer;
use mtasts_resolver::redis_tier::RedisTier;

fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "TEST_REDIS_URL must be set in CI (.ci/run sets it when Redis answers)"
            );
            #[allow(clippy::print_stderr, reason = "a skipped test must say so")]
            {
                eprintln!("SKIPPED: TEST_REDIS_URL is not set; the Redis tier is not tested");
            }
            None
        }
    }
}

/// A key prefix no other test run uses.
fn prefix(test: &str) -> String {
    format!(
        "mtasts-test:{}:{test}:{}:",
        std::process::id(),
        mtasts_resolver::engine::unix_now()
    )
}

/// Waits (real time, bounded) until the writer task has put the policy with `id` in Redis.
async fn stored(tier: &RedisTier, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = tier.get(DOMAIN).await.map(|s| s.id);
        if now.as_deref() == Some(id) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Redis holds {now:?}, not id {id}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_second_resolver_answers_from_what_the_first_one_fetched() {
    let Some(url) = redis_url() else { return };
    let p = prefix("share");
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    {
        let tier = RedisTier::connect_with_prefix(&url, &p).await.unwrap();
        let (tx, writer) = spawn_writer(None, Some(tier));
        let first = fx.engine_with(quick(), zones(v37()), Some(tx));
        assert_eq!(
            first.query("postfix", DOMAIN).await.reply,
            Reply::Ok(ENFORCE_37.into())
        );
        drop(first);
        assert_eq!(writer.await.unwrap(), 0, "no write errors");
    }
    // The policy host and the TXT record are gone; a fresh resolver still has the policy.
    fx.set_txt(None);
    fx.set_policy(HttpResponse::status(500));
    let tier = RedisTier::connect_with_prefix(&url, &p).await.unwrap();
    let second = mtasts_resolver::Engine::with_tiers(
        fx.net(),
        quick(),
        zones(v37()),
        None,
        Some(tier.clone()),
    );
    let a = second.query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::Ok(ENFORCE_37.into()), "{}", a.why);
    assert_eq!(fx.fetches(), 1, "the second resolver did not fetch");
    tier.delete(DOMAIN).await.unwrap();
    assert!(tier.get(DOMAIN).await.is_none());
}

#[tokio::test]
async fn a_refreshed_policy_reaches_the_shared_tier_for_the_next_resolver() {
    let Some(url) = redis_url() else { return };
    let p = prefix("refresh");
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    let tier = RedisTier::connect_with_prefix(&url, &p).await.unwrap();
    {
        let (tx, writer) = spawn_writer(None, Some(tier.clone()));
        let first = fx.engine_with(quick(), zones(v310()), Some(tx));
        first.query("postfix", DOMAIN).await;
        stored(&tier, "1").await;
        // The domain moves to `testing` under a new id; an hour later a lookup finds the
        // cached policy due for a check, answers from it and refreshes in the background.
        fx.set_txt(Some("v=STSv1; id=2"));
        fx.set_policy(HttpResponse::policy(policy_text("testing", DAY)));
        advance(HOUR).await;
        assert_eq!(first.query("postfix", DOMAIN).await.source, Source::Stale);
        refreshes(&first, 2).await;
        drop(first);
        assert_eq!(writer.await.unwrap(), 0, "no write errors");
    }
    let stored = tier
        .get(DOMAIN)
        .await
        .expect("the refreshed policy is in Redis");
    assert_eq!(stored.id, "2");
    assert!(stored.body.contains("mode: testing"), "{}", stored.body);
    let left = stored.expires_unix - mtasts_resolver::engine::unix_now();
    assert!(
        (DAY_S - 120..=DAY_S).contains(&left),
        "Redis keeps it for its max_age from the refresh: {left} s left"
    );
    // A resolver started now answers the new policy from Redis without fetching anything.
    fx.set_txt(None);
    fx.set_policy(HttpResponse::status(500));
    let second = mtasts_resolver::Engine::with_tiers(
        fx.net(),
        quick(),
        zones(v310()),
        None,
        Some(tier.clone()),
    );
    let a = second.query("postfix", DOMAIN).await;
    assert!(
        matches!(&a.reply, Reply::Ok(r) if r.starts_with("may policy_type=sts")),
        "{:?}: {}",
        a.reply,
        a.why
    );
    assert_eq!(fx.fetches(), 2, "the second resolver fetched nothing");
    tier.delete(DOMAIN).await.unwrap();
}

#[tokio::test]
async fn a_policy_its_domain_dropped_is_deleted_from_the_shared_tier() {
    let Some(url) = redis_url() else { return };
    let p = prefix("dropped");
    let mut fx = Fx::new(&policy_text("enforce", 3 * 3600)).await;
    let tier = RedisTier::connect_with_prefix(&url, &p).await.unwrap();
    let (tx, writer) = spawn_writer(None, Some(tier.clone()));
    let e = fx.engine_with(quick(), zones(v37()), Some(tx));
    assert_eq!(
        e.query("postfix", DOMAIN).await.reply,
        Reply::Ok(ENFORCE_37.into())
    );
    stored(&tier, "1").await;
    // D19: the record goes, the policy is kept until it expires, then dropped everywhere.
    fx.set_txt(None);
    fx.set_policy(HttpResponse::status(404));
    advance(3 * HOUR + Duration::from_secs(1)).await;
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::NotFound, "{}", a.why);
    drop(e);
    assert_eq!(writer.await.unwrap(), 0, "no write errors");
    // Redis's own expiry (3 hours of real time) has not come: the engine deleted the key.
    assert!(tier.get(DOMAIN).await.is_none(), "still in Redis");
}

#[tokio::test]
async fn a_dead_redis_is_a_clear_error_at_start() {
    // Port 1 on loopback: nothing listens there.
    let err = RedisTier::connect("redis://127.0.0.1:1/")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("redis redis://127.0.0.1:1/"), "{err}");
}
