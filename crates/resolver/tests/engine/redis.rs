//! The shared Redis tier against a real Redis server (`TEST_REDIS_URL`, e.g. the machine's own
//! `redis://127.0.0.1:6379/`). Without it the tests skip loudly, except in CI (`CI=true`), where
//! they fail.

use crate::fixture::*;
use mtasts_resolver::Reply;
use mtasts_resolver::redis_tier::RedisTier;
use mtasts_resolver::store::spawn_writer;

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
    fx.set_policy(mtasts_testnet::https::HttpResponse::status(500));
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
async fn a_dead_redis_is_a_clear_error_at_start() {
    // Port 1 on loopback: nothing listens there.
    let err = RedisTier::connect("redis://127.0.0.1:1/")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("redis redis://127.0.0.1:1/"), "{err}");
}
