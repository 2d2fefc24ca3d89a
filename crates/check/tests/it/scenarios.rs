//! Scenarios, each on its own little internet.

use crate::world::{DOMAIN, World, env};
use mtasts_check::{DomainReport, Verdict, check_domain};
use mtasts_core::Severity;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::smtp::Behaviour;

pub(crate) const POLICY: &str =
    "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 1209600\n";

pub(crate) fn ids(r: &DomainReport) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.id).collect()
}

pub(crate) fn has(r: &DomainReport, id: &str) -> bool {
    r.findings.iter().any(|f| f.id == id)
}

pub(crate) fn get<'a>(r: &'a DomainReport, id: &str) -> &'a mtasts_check::Finding {
    r.findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", r.findings))
}

/// A domain with everything right: record, policy, one covered MX with a valid certificate,
/// TLS-RPT to another domain.
pub(crate) async fn clean() -> World {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=20240101T000000\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    w
}

const ALL_IDS: &[&str] = &[
    "sts.record.missing",
    "sts.record.untested",
    "sts.record.multiple",
    "sts.id.invalid",
    "sts.record.at-apex",
    "policy.host.missing",
    "policy.host.no-ipv6",
    "policy.fetch.status",
    "policy.fetch.redirect",
    "policy.fetch.content-type",
    "policy.fetch.unreachable",
    "policy.fetch.bot-wall",
    "policy.tls.old-protocol",
    "policy.certificate.expired",
    "policy.certificate.host-mismatch",
    "policy.certificate.not-trusted",
    "policy.certificate.expires-soon",
    "policy.mode.invalid",
    "policy.mode.testing",
    "mx.not-covered",
    "policy.mx.unused",
    "mx.starttls.missing",
    "mx.certificate.expired",
    "mx.certificate.host-mismatch",
    "mx.certificate.not-trusted",
    "mx.certificate.expires-soon",
    "mx.unreachable",
    "mx.tls.failed",
    "mx.tls.old-protocol",
    "mx.no-address",
    "tlsrpt.record.missing",
    "tlsrpt.rua.in-domain",
    "tlsrpt.record.old-name",
];

#[tokio::test]
async fn clean_domain_passes_with_no_finding() {
    let w = clean().await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(ids(&r), Vec::<&str>::new(), "{:#?}", r.findings);
    assert_eq!(r.verdict, Verdict::Pass);
    for id in ALL_IDS {
        assert!(!has(&r, id), "{id}");
    }
    assert_eq!(r.sts_record.id.as_deref(), Some("20240101T000000"));
    assert!(r.policy.valid && r.policy.failure.is_none());
    assert_eq!(r.policy.mode.as_deref(), Some("enforce"));
    assert_eq!(r.policy.fetch.status, Some(200));
    assert_eq!(r.mx.len(), 1);
    let mx = &r.mx[0];
    assert_eq!(
        (
            mx.host.as_str(),
            mx.pattern.as_deref(),
            mx.result.as_str(),
            mx.must_refuse
        ),
        (
            "mx1.example.test",
            Some("mx1.example.test"),
            "success",
            false
        )
    );
    assert_eq!(mx.addresses[0].starttls, Some(true));
    assert_eq!(mx.addresses[0].tls_version.as_deref(), Some("TLSv1.3"));
    assert_eq!(r.tlsrpt.rua, ["mailto:tlsrpt@reports.example.net"]);
}

#[tokio::test]
async fn no_record_no_policy_host() {
    let mut w = World::new().await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(get(&r, "sts.record.missing").severity, Severity::Error);
    assert_eq!(get(&r, "tlsrpt.record.missing").severity, Severity::Warning);
    // Without a record, the missing policy host is not another finding.
    assert!(!has(&r, "policy.host.missing"));
    assert_eq!(r.verdict, Verdict::Fail);
}

#[tokio::test]
async fn record_problems() {
    let mut w = clean().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=2024-01-01\"");
    let r = check_domain(DOMAIN, &env(&w)).await;
    let f = get(&r, "sts.record.multiple");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("records"), "{}", f.message);
    assert!(r.sts_record.id.is_none());
    assert_eq!(r.sts_record.records.len(), 2);
}

#[tokio::test]
async fn record_at_apex_instead_of_mta_sts() {
    let mut w = World::new().await;
    w.zone("@ 300 IN TXT \"v=STSv1; id=1\"");
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(
        get(&r, "sts.record.at-apex").observed.as_deref(),
        Some("v=STSv1; id=1")
    );
}

#[tokio::test]
async fn record_but_no_policy_host_is_m47() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    let f = get(&r, "policy.host.missing");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("M47"), "{}", f.message);
    assert_eq!(
        r.policy.failure.as_ref().map(|t| t.as_str()),
        Some("sts-policy-fetch-error")
    );
}

#[tokio::test]
async fn policy_http_problems() {
    for (response, id) in [
        (HttpResponse::status(404), "policy.fetch.status"),
        (
            HttpResponse::redirect("https://www.example.test/mta-sts.txt"),
            "policy.fetch.redirect",
        ),
    ] {
        let mut w = World::new().await;
        w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
        w.policy_host(Defect::Valid, response).await;
        w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
        let r = check_domain(DOMAIN, &env(&w)).await;
        assert_eq!(get(&r, id).severity, Severity::Error, "{id}");
        assert_eq!(
            r.policy.failure.as_ref().map(|t| t.as_str()),
            Some("sts-policy-fetch-error"),
            "{id}"
        );
        assert!(r.policy.mx.is_none());
    }
}

#[tokio::test]
async fn policy_content_type_and_invalid_mode() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    let mut resp = HttpResponse::policy(POLICY.replace("enforce", "enforcing"));
    resp.headers = vec![("Content-Type".into(), "application/octet-stream".into())];
    w.policy_host(Defect::Valid, resp).await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(
        get(&r, "policy.fetch.content-type").severity,
        Severity::Warning
    );
    let f = get(&r, "policy.mode.invalid");
    assert_eq!(f.observed.as_deref(), Some("mode: enforcing"));
    assert_eq!(
        r.policy.failure.as_ref().map(|t| t.as_str()),
        Some("sts-policy-invalid")
    );
    assert!(!r.policy.valid);
}

#[tokio::test]
async fn policy_host_certificate_defects() {
    for (defect, id) in [
        (Defect::Expired, "policy.certificate.expired"),
        (Defect::WrongName, "policy.certificate.host-mismatch"),
        (Defect::UntrustedCa, "policy.certificate.not-trusted"),
    ] {
        let mut w = World::new().await;
        w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
        w.policy_host(defect.clone(), HttpResponse::policy(POLICY))
            .await;
        w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
        let r = check_domain(DOMAIN, &env(&w)).await;
        assert_eq!(get(&r, id).severity, Severity::Error, "{defect:?}");
        assert_eq!(
            r.policy.failure.as_ref().map(|t| t.as_str()),
            Some("sts-webpki-invalid"),
            "{defect:?}"
        );
        assert!(
            r.policy.mx.is_none(),
            "a sender applies no policy fetched over bad TLS"
        );
    }
}

#[tokio::test]
async fn certificates_expiring_soon() {
    for (days, severity) in [(5, Severity::Error), (15, Severity::Warning)] {
        let mut w = World::new().await;
        w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\nmta-sts 300 IN AAAA ::1");
        w.policy_host(Defect::ExpiresInDays(days), HttpResponse::policy(POLICY))
            .await;
        w.mx_with_cert("mx1", 10, 1, Defect::ExpiresInDays(days))
            .await;
        let r = check_domain(DOMAIN, &env(&w)).await;
        assert_eq!(
            get(&r, "policy.certificate.expires-soon").severity,
            severity
        );
        assert_eq!(get(&r, "mx.certificate.expires-soon").severity, severity);
    }
}

#[tokio::test]
async fn mx_not_covered_and_stale_pattern() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    let policy = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmx: *.mail.example.test\nmx: old.example.test\nmax_age: 1209600\n";
    w.policy_host(Defect::Valid, HttpResponse::policy(policy))
        .await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    w.mx_with_cert("x.mail", 15, 4, Defect::Valid).await;
    w.mx_with_cert("mx2", 20, 2, Defect::Valid).await;
    w.mx_with_cert("a.b.mail", 30, 3, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    let not_covered: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.id == "mx.not-covered")
        .collect();
    assert_eq!(not_covered.len(), 2, "{not_covered:#?}");
    assert!(not_covered.iter().all(|f| f.severity == Severity::Error));
    assert!(
        not_covered
            .iter()
            .any(|f| f.message.contains("exactly one label")),
        "M36"
    );
    let mx2 = r.mx.iter().find(|m| m.host == "mx2.example.test").unwrap();
    assert!(mx2.must_refuse && mx2.pattern.is_none());
    let x =
        r.mx.iter()
            .find(|m| m.host == "x.mail.example.test")
            .unwrap();
    assert_eq!(x.pattern.as_deref(), Some("*.mail.example.test"));
    let unused = get(&r, "policy.mx.unused");
    assert_eq!(unused.severity, Severity::Warning);
    assert!(unused.message.contains("old.example.test"));
    // Patterns that cover real MX hosts are not called placeholders in a live check.
    assert!(
        r.findings
            .iter()
            .filter(|f| f.id == "policy.mx.placeholder")
            .all(|f| f.observed.as_deref() == Some("mx: old.example.test"))
    );
}

#[tokio::test]
async fn testing_mode_not_covered_is_a_warning() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    w.policy_host(
        Defect::Valid,
        HttpResponse::policy(POLICY.replace("enforce", "testing")),
    )
    .await;
    w.mx_with_cert("mx2", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(get(&r, "mx.not-covered").severity, Severity::Warning);
    assert_eq!(get(&r, "policy.mode.testing").severity, Severity::Warning);
    assert!(!r.mx[0].must_refuse, "testing never refuses");
}

#[tokio::test]
async fn mx_tls_problems() {
    let mut w2 = World::new().await;
    w2.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    w2.policy_host(
        Defect::Valid,
        HttpResponse::policy(
            "version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 1209600\n",
        ),
    )
    .await;
    w2.mx("plain", 10, 1, Behaviour::NoStartTls).await;
    w2.mx_with_cert("expired", 20, 2, Defect::Expired).await;
    w2.mx_with_cert("wrongname", 30, 3, Defect::WrongName).await;
    w2.mx_with_cert("untrusted", 40, 4, Defect::UntrustedCa)
        .await;
    w2.mx("broken", 50, 5, Behaviour::BrokenHandshake).await;
    w2.mx("silent", 60, 6, Behaviour::Silent).await;
    let r = check_domain(DOMAIN, &env(&w2)).await;
    let result = |h: &str| {
        r.mx.iter()
            .find(|m| m.host == format!("{h}.example.test"))
            .unwrap()
    };
    assert_eq!(result("plain").result.as_str(), "starttls-not-supported");
    assert_eq!(result("expired").result.as_str(), "certificate-expired");
    assert_eq!(
        result("wrongname").result.as_str(),
        "certificate-host-mismatch"
    );
    assert_eq!(
        result("untrusted").result.as_str(),
        "certificate-not-trusted"
    );
    assert_eq!(result("broken").result.as_str(), "validation-failure");
    assert_eq!(result("silent").result.as_str(), "unreachable");
    for h in ["plain", "expired", "wrongname", "untrusted", "broken"] {
        assert!(result(h).must_refuse, "{h}");
    }
    assert!(
        !result("silent").must_refuse,
        "could not test is not a refusal"
    );
    for id in [
        "mx.starttls.missing",
        "mx.certificate.expired",
        "mx.certificate.host-mismatch",
        "mx.certificate.not-trusted",
        "mx.tls.failed",
    ] {
        assert_eq!(get(&r, id).severity, Severity::Error, "{id}");
    }
    let f = get(&r, "mx.unreachable");
    assert!(f.untested && f.severity == Severity::Warning);
    assert_eq!(r.verdict, Verdict::Fail);
}

#[tokio::test]
async fn silent_mx_only_is_incomplete_not_fail() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(
        Defect::Valid,
        HttpResponse::policy(
            "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 1209600\n",
        ),
    )
    .await;
    w.mx("mx1", 10, 1, Behaviour::Silent).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(ids(&r), ["mx.unreachable"]);
    assert_eq!(r.verdict, Verdict::Incomplete);
}

#[tokio::test]
async fn tlsrpt_to_the_protected_domain_warns() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@example.test\"");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(get(&r, "tlsrpt.rua.in-domain").severity, Severity::Warning);
    assert_eq!(r.tlsrpt.rua, ["mailto:tlsrpt@example.test"]);
}

#[tokio::test]
async fn two_tlsrpt_records_mean_no_reports() {
    let mut w = clean().await;
    w.zone("_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:other@reports.example.net\"");
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(get(&r, "tlsrpt.record.multiple").severity, Severity::Error);
    assert!(r.tlsrpt.rua.is_empty());
}

#[tokio::test]
async fn dns_failure_is_untested_not_missing() {
    let w = clean().await;
    w.dns.set_fault(
        "_mta-sts.example.test",
        Some(mtasts_testnet::dns::Fault::ServFail),
    );
    let r = check_domain(DOMAIN, &env(&w)).await;
    let f = get(&r, "sts.record.untested");
    assert!(f.untested);
    assert!(!has(&r, "sts.record.missing"));
}

#[tokio::test]
async fn invalid_domain_input() {
    let w = World::new().await;
    for bad in ["", "localhost", "192.0.2.1", "exa mple.com"] {
        let r = check_domain(bad, &env(&w)).await;
        assert_eq!(ids(&r), ["domain.invalid"], "{bad:?}");
    }
    // IDN input is normalised (D28).
    let r = check_domain("bücher.example.", &env(&w)).await;
    assert_eq!(r.domain, "xn--bcher-kva.example");
}

#[tokio::test]
async fn no_smtp_skips_probes() {
    let w = clean().await;
    let mut env = env(&w);
    env.settings.no_smtp = true;
    let r = check_domain(DOMAIN, &env).await;
    assert_eq!(r.mx[0].addresses[0].result.as_str(), "not-tested");
    assert!(r.mx[0].addresses[0].starttls.is_none());
    assert_eq!(r.verdict, Verdict::Pass);
}

#[tokio::test]
async fn tlsrpt_at_the_old_name_is_flagged() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_smtp-tlsrpt 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    let f = get(&r, "tlsrpt.record.old-name");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.fix.contains("_smtp._tls.example.test"));
    assert!(has(&r, "tlsrpt.record.missing"));
}
