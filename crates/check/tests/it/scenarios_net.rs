//! Scenarios of servers that misbehave below HTTP: TLS older than 1.2 on the policy host and on
//! an MX host (M14, M40).

use crate::scenarios::{POLICY, get, has, ids};
use crate::world::{DOMAIN, World, env};
use mtasts_check::{Verdict, check_domain};
use mtasts_core::Severity;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::oldtls::OldTls;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::smtp::Behaviour;

#[tokio::test]
async fn policy_host_with_only_old_tls_is_m14() {
    for old in [OldTls::Tls10ServerHello, OldTls::ProtocolVersionAlert] {
        let mut w = World::new().await;
        w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
        w.policy_host_old_tls(old).await;
        w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
        let r = check_domain(DOMAIN, &env(&w)).await;
        let f = get(&r, "policy.tls.old-protocol");
        assert_eq!(f.severity, Severity::Error, "{old:?}");
        assert!(f.message.contains("TLS 1.0/1.1"), "{}", f.message);
        assert!(
            !has(&r, "policy.fetch.failed"),
            "{old:?}: {:#?}",
            r.findings
        );
        assert_eq!(
            r.policy.failure.as_ref().map(|t| t.as_str()),
            Some("sts-webpki-invalid")
        );
        assert!(r.policy.mx.is_none());
    }
}

#[tokio::test]
async fn mx_with_only_old_tls_is_m40() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    w.policy_host(
        Defect::Valid,
        HttpResponse::policy(
            "version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 1209600\n",
        ),
    )
    .await;
    w.mx(
        "hello10",
        10,
        1,
        Behaviour::OldTls(OldTls::Tls10ServerHello),
    )
    .await;
    w.mx(
        "alert",
        20,
        2,
        Behaviour::OldTls(OldTls::ProtocolVersionAlert),
    )
    .await;
    w.mx_with_cert("good", 30, 3, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    let old: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.id == "mx.tls.old-protocol")
        .collect();
    assert_eq!(old.len(), 2, "{:#?}", r.findings);
    assert!(old.iter().all(|f| f.severity == Severity::Error));
    assert!(!has(&r, "mx.tls.failed"), "{:#?}", r.findings);
    for h in ["hello10", "alert"] {
        let mx =
            r.mx.iter()
                .find(|m| m.host == format!("{h}.example.test"))
                .unwrap();
        assert_eq!(mx.result.as_str(), "validation-failure", "{h}");
        assert!(mx.must_refuse, "{h}");
    }
    let good = r.mx.iter().find(|m| m.host == "good.example.test").unwrap();
    assert_eq!(good.result.as_str(), "success");
}

async fn bot_world(response: HttpResponse) -> mtasts_check::DomainReport {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    w.policy_host(Defect::Valid, response).await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    check_domain(DOMAIN, &env(&w)).await
}

#[tokio::test]
async fn bot_challenge_is_m21_not_a_plain_status() {
    let r = bot_world(HttpResponse::bot_challenge()).await;
    let f = get(&r, "policy.fetch.bot-wall");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(
        f.observed.as_deref(),
        Some("HTTP 403, cf-mitigated: challenge")
    );
    assert!(f.fix.contains("/.well-known/mta-sts.txt"), "{}", f.fix);
    assert!(!has(&r, "policy.fetch.status"), "{:#?}", r.findings);
    assert_eq!(
        r.policy.failure.as_ref().map(|t| t.as_str()),
        Some("sts-policy-fetch-error")
    );
    // Without the cf-mitigated header, the page itself gives the wall away.
    let r = bot_world(HttpResponse::bot_challenge().without_header("cf-mitigated")).await;
    let f = get(&r, "policy.fetch.bot-wall");
    assert!(f.observed.as_deref().unwrap().contains("cf_chl"), "{f:?}");
    // A Cloudflare 503 page with no challenge marker, and a 200 challenge page.
    let cf503 = HttpResponse {
        status: 503,
        ..HttpResponse::html("<html><body>Service unavailable</body></html>")
    }
    .with_header("Server", "cloudflare");
    let r = bot_world(cf503).await;
    assert!(has(&r, "policy.fetch.bot-wall"), "{:#?}", r.findings);
    let r = bot_world(HttpResponse::html(
        "<html><head><title>Attention Required! | Cloudflare</title></head></html>",
    ))
    .await;
    assert!(has(&r, "policy.fetch.bot-wall"), "{:#?}", r.findings);
    assert!(has(&r, "policy.html"), "the generic finding stays");
}

#[tokio::test]
async fn plain_error_pages_are_no_bot_wall() {
    for response in [
        HttpResponse::status(403),
        HttpResponse {
            status: 503,
            ..HttpResponse::html("<html><body>Maintenance</body></html>")
        },
        HttpResponse::html("<html><body>Welcome to nginx!</body></html>"),
    ] {
        let status = response.status;
        let r = bot_world(response).await;
        assert!(!has(&r, "policy.fetch.bot-wall"), "{:#?}", r.findings);
        assert_eq!(
            has(&r, "policy.fetch.status"),
            status != 200,
            "{:#?}",
            r.findings
        );
    }
}

#[tokio::test]
async fn the_policy_fetch_sends_no_browser_user_agent() {
    let w = crate::scenarios::clean().await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert!(!has(&r, "policy.fetch.bot-wall"));
    let ua = w.policy_request().unwrap().user_agent.unwrap();
    assert!(ua.starts_with("mtasts/") && !ua.contains("Mozilla"), "{ua}");
}

/// The clean domain, with TLS-RPT reports going to `rua` instead.
async fn with_rua(w: &mut World, rua: &str) -> mtasts_check::DomainReport {
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\nmta-sts 300 IN AAAA ::1");
    w.zone(&format!("_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua={rua}\""));
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    check_domain(DOMAIN, &env(w)).await
}

#[tokio::test]
async fn good_https_report_endpoint_is_quiet() {
    let mut w = World::new().await;
    let base = w
        .https_host("reports", 1, Defect::Valid, HttpResponse::status(405))
        .await;
    let r = with_rua(&mut w, &format!("{base}/v1/tlsrpt")).await;
    assert_eq!(ids(&r), Vec::<&str>::new(), "{:#?}", r.findings);
    let e = &r.tlsrpt.endpoints[0];
    assert_eq!((e.status, e.error.as_deref()), (Some(405), None));
    assert_eq!(e.tls_version.as_deref(), Some("TLSv1.3"));
    // A harmless OPTIONS to the URI's path, never a POST.
    let seen = w.request_at(0).unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("OPTIONS", "/v1/tlsrpt")
    );
    // Checked once per run, however many domains report to it.
    let env = env(&w);
    for _ in 0..3 {
        let again = check_domain(DOMAIN, &env).await;
        assert_eq!(again.tlsrpt.endpoints[0].status, Some(405));
    }
    assert_eq!(
        w.requests_at(0),
        2,
        "one for the first run, one for the shared env"
    );
}

#[tokio::test]
async fn unreachable_https_report_endpoint_is_r08() {
    let mut w = World::new().await;
    // An address where nothing listens: the connection is refused.
    w.zone("gone 300 IN A 127.0.0.1");
    let port = w.https_port;
    let uri = format!("https://gone.example.test:{port}/tlsrpt");
    let r = with_rua(&mut w, &uri).await;
    let f = get(&r, "tlsrpt.rua.endpoint.unreachable");
    assert!(f.untested && f.severity == Severity::Warning, "{f:?}");
    assert!(f.message.contains(&uri), "{}", f.message);
    // A host without an address.
    let mut w = World::new().await;
    let r = with_rua(&mut w, "https://nowhere.example.test/tlsrpt").await;
    assert_eq!(
        get(&r, "tlsrpt.rua.endpoint.no-address").severity,
        Severity::Warning
    );
}

#[tokio::test]
async fn bad_certificate_or_status_of_report_endpoint_is_r08() {
    for defect in [Defect::Expired, Defect::UntrustedCa, Defect::WrongName] {
        let mut w = World::new().await;
        let base = w
            .https_host("reports", 1, defect.clone(), HttpResponse::status(200))
            .await;
        let r = with_rua(&mut w, &format!("{base}/r")).await;
        let f = get(&r, "tlsrpt.rua.endpoint.certificate");
        assert_eq!(f.severity, Severity::Warning, "{defect:?}");
        assert!(f.message.contains("certificate-"), "{}", f.message);
        assert_eq!(r.verdict, Verdict::Warn, "{defect:?}");
    }
    let mut w = World::new().await;
    let base = w
        .https_host("reports", 1, Defect::Valid, HttpResponse::status(404))
        .await;
    let r = with_rua(&mut w, &format!("{base}/r")).await;
    let f = get(&r, "tlsrpt.rua.endpoint.status");
    assert!(f.message.contains("HTTP 404"), "{}", f.message);
}
