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

/// A policy with `n` MX patterns of `len`-ish names.
fn many_mx(n: usize, suffix: &str) -> String {
    let mut body = String::from("version: STSv1\nmode: enforce\nmax_age: 86400\n");
    for i in 0..n {
        body.push_str(&format!("mx: mx-{i:04}.{suffix}\n"));
    }
    body
}

/// One request over a fresh connection to `addr`: tcp_table when `tcp`, socketmap otherwise; the
/// raw reply.
async fn over_the_wire(addr: std::net::SocketAddr, tcp: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = if tcp {
        format!("get {DOMAIN}\n")
    } else {
        let p = format!("postfix {DOMAIN}");
        format!("{}:{p},", p.len())
    };
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
            if (tcp && out.ends_with(b"\n")) || (!tcp && out.ends_with(b",")) {
                break;
            }
        }
    })
    .await
    .expect("a reply");
    String::from_utf8(out).unwrap()
}

/// Issue 10 §2.3: a 60-mx policy used to answer `400` over tcp_table and a 1,900-mx one `TEMP`
/// over socketmap (Postfix 3.10 attributes). Both are answered now, without the optional
/// attributes; only what cannot be expressed at all (1,900 patterns in one tcp_table line)
/// defers, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_policies_are_answered_over_both_protocols() {
    use mtasts_resolver::config::Config;
    use mtasts_resolver::proto::{Limits, ListenAddr, socketmap, tcp_table};
    for (n, suffix) in [(60, "mail-cluster.example.net"), (1900, "example.net")] {
        let fx = Fx::new(&many_mx(n, suffix)).await;
        let config = Config::from_toml(
            "postfix_version = \"3.10.5\"\ntcp_table = [\"127.0.0.1:1=tcp\"]\n[zones.tcp]\n[zones.postfix]\n",
        )
        .unwrap();
        let engine = std::sync::Arc::new(fx.engine_with(quick(), config.zones().unwrap(), None));
        let bind = || async {
            "127.0.0.1:0"
                .parse::<ListenAddr>()
                .unwrap()
                .bind()
                .await
                .unwrap()
        };
        let (tl, sl) = (bind().await, bind().await);
        let (ta, sa) = (tl.local_addr().unwrap(), sl.local_addr().unwrap());
        let (ListenAddr::Tcp(ta), ListenAddr::Tcp(sa)) = (ta, sa) else {
            unreachable!()
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let t = tokio::spawn(tcp_table::serve(
            tl,
            std::sync::Arc::clone(&engine),
            "tcp",
            Limits::tcp_table(),
            stop(),
        ));
        let s = tokio::spawn(socketmap::serve(
            sl,
            std::sync::Arc::clone(&engine),
            Limits::socketmap(),
            stop(),
        ));
        let tcp = over_the_wire(ta, true).await;
        let sm = over_the_wire(sa, false).await;
        let last = format!("mx-{:04}.{suffix}", n - 1);
        assert!(
            sm.contains("OK secure match=") && sm.contains(&last),
            "{n}: {}",
            &sm[..80]
        );
        // Socketmap's 100,000 bytes hold 60 patterns twice over, not 1,900.
        assert_eq!(sm.contains("mx_host_pattern"), n == 60, "{n}");
        assert!(tcp.len() <= 4096, "{n}: {}", tcp.len());
        if n == 60 {
            assert!(
                tcp.starts_with("200 secure%20match=") && tcp.contains(&last),
                "{tcp}"
            );
            assert!(!tcp.contains("mx_host_pattern"), "dropped to fit: {tcp}");
        } else {
            assert!(
                tcp.starts_with("400 ") && tcp.contains("1900%20MX%20patterns"),
                "{tcp}"
            );
        }
        let _ = stop_tx.send(true);
        t.await.unwrap().unwrap();
        s.await.unwrap().unwrap();
    }
}
