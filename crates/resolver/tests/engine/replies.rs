//! What Postfix gets, per policy state and Postfix version.

use crate::fixture::*;
use mtasts_resolver::Reply;
use mtasts_resolver::engine::Override;
use mtasts_resolver::reply::{OnDnsError, ReplySettings};
use mtasts_resolver::stats::Source;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use std::collections::HashMap;

#[tokio::test]
async fn enforce_for_each_postfix_version() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v37());
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::Ok(ENFORCE_37.to_owned()));
    assert_eq!(a.source, Source::Miss);
    let e = fx.engine(quick(), v310());
    let Reply::Ok(r) = e.query("postfix", "EXAMPLE.test.").await.reply else {
        panic!()
    };
    assert_eq!(
        r,
        format!(
            "{ENFORCE_37} policy_type=sts policy_domain=example.test \
             mx_host_pattern=mx1.example.test mx_host_pattern=*.mx.example.test \
             {{ policy_string = version: STSv1 }} {{ policy_string = mode: enforce }} \
             {{ policy_string = mx: mx1.example.test }} {{ policy_string = mx: *.mx.example.test }} \
             {{ policy_string = max_age: 86400 }}"
        )
    );
}

#[tokio::test]
async fn testing_mode_is_non_blocking_and_carries_the_policy_on_3_10() {
    let fx = Fx::new(&policy_text("testing", DAY)).await;
    assert_eq!(
        fx.engine(quick(), v37())
            .query("postfix", DOMAIN)
            .await
            .reply,
        Reply::NotFound
    );
    let Reply::Ok(r) = fx
        .engine(quick(), v310())
        .query("postfix", DOMAIN)
        .await
        .reply
    else {
        panic!()
    };
    assert!(
        r.starts_with(
            "may policy_type=sts policy_domain=example.test mx_host_pattern=mx1.example.test"
        ),
        "{r}"
    );
    assert!(!r.contains("secure") && !r.contains("match="), "{r}");
}

#[tokio::test]
async fn mode_none_and_no_record_are_not_found() {
    let fx = Fx::new(&policy_text("none", DAY)).await;
    assert_eq!(
        fx.engine(quick(), v310())
            .query("postfix", DOMAIN)
            .await
            .reply,
        Reply::NotFound
    );
    let mut fx = Fx::new(&policy_text("enforce", DAY)).await;
    fx.set_txt(None);
    let e = fx.engine(quick(), v310());
    assert_eq!(e.query("postfix", DOMAIN).await.reply, Reply::NotFound);
    assert_eq!(fx.fetches(), 0, "no TXT record, so no fetch");
    let np = ReplySettings {
        no_policy_level: Some("may".into()),
        ..v310()
    };
    assert_eq!(
        fx.engine(quick(), np).query("postfix", DOMAIN).await.reply,
        Reply::Ok("may policy_type=no-policy-found policy_domain=example.test".into())
    );
}

#[tokio::test]
async fn fetch_failures_without_a_cache_are_reported_on_3_10() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    fx.set_policy(HttpResponse::status(404));
    assert_eq!(
        fx.engine(quick(), v37())
            .query("postfix", DOMAIN)
            .await
            .reply,
        Reply::NotFound
    );
    assert_eq!(
        fx.engine(quick(), v310())
            .query("postfix", DOMAIN)
            .await
            .reply,
        Reply::Ok(
            "may policy_type=sts policy_domain=example.test policy_failure=sts-policy-fetch-error"
                .into()
        )
    );
    fx.set_policy(HttpResponse::policy("version: STSv1\nmode: enforce\n"));
    assert_eq!(
        fx.engine(quick(), v310())
            .query("postfix", DOMAIN)
            .await
            .reply,
        Reply::Ok(
            "may policy_type=sts policy_domain=example.test policy_failure=sts-policy-invalid"
                .into()
        )
    );
    let fx = Fx::with_cert(Defect::Expired, &policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v310());
    assert_eq!(
        e.query("postfix", DOMAIN).await.reply,
        Reply::Ok(
            "may policy_type=sts policy_domain=example.test policy_failure=sts-webpki-invalid"
                .into()
        )
    );
    assert_eq!(
        e.stats()
            .fetch_errors(mtasts_resolver::stats::FetchError::WebPki),
        1
    );
}

#[tokio::test]
async fn keys_without_a_policy_domain_are_answered_without_the_network() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v310());
    for key in [
        ".example.test",
        ".test",
        "[127.0.0.1]",
        "192.0.2.1",
        "[ipv6:::1]:25",
        "bad name",
        "",
    ] {
        let a = e.query("postfix", key).await;
        assert_eq!(a.reply, Reply::NotFound, "{key}");
        assert_eq!(a.source, Source::Skipped, "{key}");
    }
    assert_eq!(e.stats().refreshes(), 0);
    assert!(e.is_empty());
    // A bracketed next-hop with a port is looked up as its host's domain.
    let fx2 = Fx::new(&policy_text("enforce", DAY)).await;
    let e2 = fx2.engine(quick(), v37());
    assert_eq!(
        e2.query("postfix", "[example.test]:587").await.reply,
        Reply::Ok(ENFORCE_37.into())
    );
}

#[tokio::test]
async fn unknown_table_name_is_a_configuration_error() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    let e = fx.engine(quick(), v37());
    assert!(
        matches!(e.query("nosuch", DOMAIN).await.reply, Reply::Perm(m) if m.contains("nosuch"))
    );
}

#[tokio::test]
async fn overrides_switch_off_or_soften_a_domain() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    let mut zone = zones(v310()).remove("postfix").unwrap();
    zone.overrides.insert(DOMAIN.into(), Override::None);
    let e = fx.engine_with(
        quick(),
        HashMap::from([("postfix".into(), zone.clone())]),
        None,
    );
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!((a.reply, a.source), (Reply::NotFound, Source::Override));
    assert_eq!(fx.fetches(), 0);
    zone.overrides.insert(DOMAIN.into(), Override::Testing);
    let e = fx.engine_with(quick(), HashMap::from([("postfix".into(), zone)]), None);
    let Reply::Ok(r) = e.query("postfix", DOMAIN).await.reply else {
        panic!()
    };
    assert!(r.starts_with("may policy_type=sts"), "{r}");
}

#[tokio::test]
async fn dns_failure_with_nothing_cached_delivers_or_defers_as_configured() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    fx.w.dns
        .set_fault("_mta-sts.example.test", Some(Fault::ServFail));
    let e = fx.engine(quick(), v310());
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::NotFound);
    assert!(a.why.contains("SERVFAIL"), "{}", a.why);
    let defer = ReplySettings {
        on_dns_error: OnDnsError::Defer,
        ..v310()
    };
    let e = fx.engine(quick(), defer);
    assert!(
        matches!(e.query("postfix", DOMAIN).await.reply, Reply::Temp(t) if t.contains("SERVFAIL"))
    );
}

#[tokio::test]
async fn a_silent_dns_answers_within_the_miss_budget() {
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    fx.w.dns
        .set_fault("_mta-sts.example.test", Some(Fault::Silent));
    let settings = mtasts_resolver::Settings {
        miss_wait: tokio::time::Duration::from_millis(100),
        ..quick()
    };
    let e = fx.engine(settings, v310());
    // The resolver's own DNS budget is 500 ms: answering `miss-timeout` shows the lookup did not
    // wait for it.
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!((a.reply, a.source), (Reply::NotFound, Source::MissTimeout));
}
