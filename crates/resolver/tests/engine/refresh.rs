//! The cache over time: hits, negative caching, coalescing, refresh, the RFC fallbacks.

use crate::fixture::*;
use mtasts_resolver::Reply;
use mtasts_resolver::stats::Source;
use mtasts_testnet::https::HttpResponse;
use tokio::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_hit_never_touches_the_network() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v37());
    assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Miss);
    // Even with DNS and the policy host down, a cached answer comes back at once.
    fx.w.dns
        .set_fault("_mta-sts.example.test", Some(Fault::Silent));
    fx.set_policy(HttpResponse::status(500));
    for _ in 0..100 {
        let a = e.query("postfix", DOMAIN).await;
        assert_eq!(
            (a.reply, a.source),
            (Reply::Ok(ENFORCE_37.into()), Source::Hit)
        );
    }
    assert_eq!(fx.fetches(), 1);
    assert_eq!(e.stats().refreshes(), 1);
}

#[tokio::test]
async fn a_thundering_herd_makes_one_fetch() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    fx.set_policy(
        HttpResponse::policy(policy_text("enforce", DAY)).with_delay(Duration::from_millis(200)),
    );
    let e = fx.engine(quick(), v37());
    let answers =
        futures_util::future::join_all((0..100).map(|_| e.query("postfix", DOMAIN))).await;
    assert!(
        answers
            .iter()
            .all(|a| a.reply == Reply::Ok(ENFORCE_37.into()))
    );
    assert!(answers.iter().all(|a| a.source == Source::Miss));
    assert_eq!(fx.fetches(), 1);
    assert_eq!(e.stats().refreshes(), 1);
}

#[tokio::test]
async fn no_policy_is_cached_and_revalidated_in_the_background() {
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    fx.set_txt(None);
    let e = fx.engine(quick(), v37());
    assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Miss);
    assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Hit);
    assert_eq!(e.stats().refreshes(), 1);
    // The domain publishes a policy; after the negative TTL the stale "no policy" is still
    // answered at once, and the background refresh picks the policy up.
    fx.set_txt(Some("v=STSv1; id=1"));
    advance(HOUR + Duration::from_secs(1)).await;
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!((a.reply, a.source), (Reply::NotFound, Source::Stale));
    refreshes(&e, 2).await;
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(
        (a.reply, a.source),
        (Reply::Ok(ENFORCE_37.into()), Source::Hit)
    );
}

#[tokio::test]
async fn an_unchanged_id_keeps_the_policy_without_a_download() {
    let fx = Fx::new(&policy_text("enforce", 7 * DAY)).await;
    let e = fx.engine(quick(), v37());
    e.query("postfix", DOMAIN).await;
    for round in 2..=5 {
        advance(HOUR).await;
        assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Stale);
        refreshes(&e, round).await;
        assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Hit);
    }
    assert_eq!(fx.fetches(), 1, "the TXT id did not change: no download");
}

#[tokio::test]
async fn a_new_id_fetches_the_new_policy() {
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v310());
    e.query("postfix", DOMAIN).await;
    fx.set_txt(Some("v=STSv1; id=2"));
    fx.set_policy(HttpResponse::policy(policy_text("testing", DAY)));
    advance(HOUR).await;
    e.query("postfix", DOMAIN).await;
    refreshes(&e, 2).await;
    let a = e.query("postfix", DOMAIN).await;
    let Reply::Ok(r) = a.reply else { panic!() };
    assert!(r.starts_with("may policy_type=sts"), "{r}");
    assert_eq!(fx.fetches(), 2);
}

#[tokio::test]
async fn a_new_id_whose_policy_fails_keeps_the_old_one_and_backs_off() {
    // D17, and the 5-minute retry floor of RFC 8461 §3.3.
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v37());
    e.query("postfix", DOMAIN).await;
    fx.set_txt(Some("v=STSv1; id=2"));
    fx.set_policy(HttpResponse::status(503));
    advance(HOUR).await;
    e.query("postfix", DOMAIN).await;
    refreshes(&e, 2).await;
    assert_eq!(
        e.query("postfix", DOMAIN).await.reply,
        Reply::Ok(ENFORCE_37.into())
    );
    // Within five minutes no new attempt is made, however often Postfix asks.
    advance(Duration::from_secs(299)).await;
    for _ in 0..10 {
        assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Hit);
    }
    assert_eq!(fx.fetches(), 2);
    // After it, one; it fails again, and the next wait doubles.
    advance(Duration::from_secs(2)).await;
    assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Stale);
    refreshes(&e, 3).await;
    advance(Duration::from_secs(301)).await;
    assert_eq!(
        e.query("postfix", DOMAIN).await.source,
        Source::Hit,
        "back-off doubled to 10 minutes"
    );
    advance(Duration::from_secs(300)).await;
    assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Stale);
    refreshes(&e, 4).await;
    assert_eq!(fx.fetches(), 4);
    assert_eq!(
        e.query("postfix", DOMAIN).await.reply,
        Reply::Ok(ENFORCE_37.into())
    );
}

/// The log of everything the engine says while `f` runs (this thread's tasks only: the tests
/// run on a current-thread runtime).
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_refresh_failed_log_line_says_why() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v37());
    e.query("postfix", DOMAIN).await;
    fx.set_txt(Some("v=STSv1; id=2"));
    fx.set_policy(HttpResponse::status(503));
    advance(HOUR).await;
    e.query("postfix", DOMAIN).await;
    refreshes(&e, 2).await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("refresh failed"))
        .unwrap_or_else(|| panic!("no refresh-failed line in {text}"));
    assert!(
        line.contains("new id 2") && line.contains("HTTP 503"),
        "{line}"
    );
}

#[tokio::test]
async fn an_expiring_policy_with_the_same_id_is_extended_when_the_refetch_fails() {
    // D18.
    let fx = Fx::new(&policy_text("enforce", 2 * 3600)).await;
    let e = fx.engine(quick(), v37());
    e.query("postfix", DOMAIN).await;
    fx.set_policy(HttpResponse::status(500));
    // One hour in: the id is confirmed; the policy is within an hour of expiry, so it is
    // fetched again, which fails: the policy is extended.
    advance(HOUR).await;
    e.query("postfix", DOMAIN).await;
    refreshes(&e, 2).await;
    assert_eq!(e.stats().extensions(), 1);
    // Mail keeps flowing past the original max_age: each due retry fails and extends it again.
    let mut done = 2;
    for _ in 0..16 {
        advance(Duration::from_secs(300)).await;
        let a = e.query("postfix", DOMAIN).await;
        assert_eq!(a.reply, Reply::Ok(ENFORCE_37.into()));
        assert_ne!(a.source, Source::Miss);
        if a.source == Source::Stale {
            done += 1;
            refreshes(&e, done).await;
        }
    }
    assert!(e.stats().extensions() >= 2, "{}", e.stats().extensions());
    assert_eq!(fx.fetches() as u64, done);
}

#[tokio::test]
async fn a_removed_txt_record_keeps_the_policy_until_it_expires() {
    // D19.
    let mut fx = Fx::new(&policy_text("enforce", 3 * 3600)).await;
    let e = fx.engine(quick(), v37());
    e.query("postfix", DOMAIN).await;
    fx.set_txt(None);
    advance(HOUR).await;
    e.query("postfix", DOMAIN).await;
    refreshes(&e, 2).await;
    assert_eq!(
        e.query("postfix", DOMAIN).await.reply,
        Reply::Ok(ENFORCE_37.into())
    );
    advance(2 * HOUR + Duration::from_secs(1)).await;
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::NotFound, "expired, and no record any more");
}

#[tokio::test]
async fn a_dns_outage_with_a_cached_policy_keeps_answering() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v37());
    e.query("postfix", DOMAIN).await;
    fx.w.dns
        .set_fault("_mta-sts.example.test", Some(Fault::ServFail));
    advance(HOUR).await;
    assert_eq!(e.query("postfix", DOMAIN).await.source, Source::Stale);
    refreshes(&e, 2).await;
    for _ in 0..10 {
        let a = e.query("postfix", DOMAIN).await;
        assert_eq!(
            (a.reply, a.source),
            (Reply::Ok(ENFORCE_37.into()), Source::Hit)
        );
    }
    assert_eq!(
        e.stats()
            .fetch_errors(mtasts_resolver::stats::FetchError::Dns),
        1
    );
}

#[tokio::test]
async fn the_sweeper_refreshes_without_any_lookup() {
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    let settings = mtasts_resolver::Settings {
        sweep_interval: Duration::from_secs(60),
        ..quick()
    };
    let e = fx.engine(settings, v310());
    let _sweeper = e.spawn_sweeper();
    e.query("postfix", DOMAIN).await;
    fx.set_txt(Some("v=STSv1; id=2"));
    fx.set_policy(HttpResponse::policy(policy_text("testing", DAY)));
    advance(HOUR + Duration::from_secs(61)).await;
    refreshes(&e, 2).await;
    assert_eq!(fx.fetches(), 2);
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(a.source, Source::Hit);
    assert!(matches!(a.reply, Reply::Ok(r) if r.starts_with("may policy_type=sts")));
}
