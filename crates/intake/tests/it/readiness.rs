//! D53 on a store: crafted reports imported as JSON, then the verdict read back through
//! `readiness::load`, as `mtasts report readiness`, the admin API and the gate read it.

use crate::both;
use mtasts_core::policy::Mode;
use mtasts_core::report::RunBudget;
use mtasts_core::rollout::{AddressCheck, HostCheck, LiveCheck, Probe, TlsRptEvidence};
use mtasts_intake::readiness::{Verdict, load};
use mtasts_intake::{Accept, Intake};
use mtasts_store::{Arrival, Change, NewPolicy, Store, Via};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-16 12:00 UTC);

/// One report of `org` for `domain` on `day` (2026-03-`day`): `ok` successes and each of
/// `failures` (result type, MX, sending IP, sessions).
fn report(
    org: &str,
    id: &str,
    domain: &str,
    day: u8,
    ok: u64,
    failures: &[(&str, &str, &str, u64)],
) -> Vec<u8> {
    let failed: u64 = failures.iter().map(|f| f.3).sum();
    let details: Vec<_> = failures
        .iter()
        .map(|(t, mx, ip, n)| json!({"result-type": t, "receiving-mx-hostname": mx, "sending-mta-ip": ip, "failed-session-count": n}))
        .collect();
    json!({
        "organization-name": org,
        "date-range": {"start-datetime": format!("2026-03-{day:02}T00:00:00Z"), "end-datetime": format!("2026-03-{day:02}T23:59:59Z")},
        "contact-info": "tlsrpt@reporter.example", "report-id": id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
                       "policy-domain": domain, "mx-host": [format!("mx1.{domain}")]},
            "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed},
            "failure-details": details,
        }]
    })
    .to_string()
    .into_bytes()
}

async fn import(store: &Store, reports: &[Vec<u8>]) {
    let intake = Intake::new(store.clone(), Accept::Any);
    let arrival = Arrival {
        via: Via::File,
        source: Some("crafted".into()),
        at: NOW,
        dkim: None,
    };
    for r in reports {
        let mut run = RunBudget::new(intake.limits().max_run_decompressed);
        intake.ingest(r, &arrival, &mut run).await.unwrap();
        // A copy, as reporters resend: it must not count twice.
        intake.ingest(r, &arrival, &mut run).await.unwrap();
    }
}

/// Hosts `domain` in testing with `mx1.<domain>` and `mx2.<domain>`.
async fn host(store: &Store, domain: &str) {
    let text = format!(
        "version: STSv1\r\nmode: testing\r\nmx: mx1.{domain}\r\nmx: mx2.{domain}\r\nmax_age: 86400\r\n"
    );
    let policy = NewPolicy {
        text,
        id: "crafted1".into(),
        mode: Mode::Testing,
        max_age: 86_400,
        mx: vec![format!("mx1.{domain}"), format!("mx2.{domain}")],
    };
    store
        .add_domain(domain, &policy, "testing", &Change::new("test", NOW))
        .await
        .unwrap();
}

fn live(domain: &str) -> LiveCheck {
    let hosts = ["mx1", "mx2"]
        .iter()
        .map(|h| HostCheck {
            host: format!("{h}.{domain}"),
            addresses: vec![AddressCheck {
                address: "192.0.2.25".parse().unwrap(),
                probe: Probe::Valid,
            }],
        })
        .collect();
    LiveCheck {
        checked_at: NOW,
        hosts,
    }
}

fn google(domain: &str, day: u8) -> String {
    format!("2026-03-{day:02}T00:00:00Z_{domain}")
}

both! {
    async fn d53_crafted_histories_clean_one_mx_failing_and_one_known_broken_reporter(db) {
        let store = db.open().await;

        // Clean: go, and the gate sees clean reports.
        host(&store, "clean.example").await;
        let d = "clean.example";
        import(&store, &[
            report("Google Inc.", &google(d, 12), d, 12, 400, &[]),
            report("Google Inc.", &google(d, 13), d, 13, 380, &[]),
            report("Microsoft Corporation", "133755676493963779+clean.example", d, 13, 90, &[]),
            // Older than the 14 days (they begin on 2026-03-02): its failures are not weighed.
            report("Google Inc.", &google(d, 1), d, 1, 0, &[("starttls-not-supported", "mx1.clean.example", "198.51.100.1", 50)]),
        ]).await;
        let r = load(&store, d, 14, NOW, Some(&live(d))).await.unwrap();
        assert_eq!(r.verdict, Verdict::Go, "{r:#?}");
        assert_eq!((r.evidence.reports, r.evidence.reporters, r.evidence.successful_sessions), (3, 2, 870));
        assert_eq!(r.evidence.days_with_reports, 2);
        assert_eq!(r.stage.as_deref(), Some("testing"));
        assert_eq!(r.tlsrpt_evidence(), TlsRptEvidence::Clean { reports: 3 });
        let r = load(&store, d, 30, NOW, Some(&live(d))).await.unwrap();
        assert_eq!(r.verdict, Verdict::NoGo, "30 days reach the old failures: {r:#?}");

        // Failures at one MX from two reporters: no-go naming it.
        host(&store, "broken.example").await;
        let d = "broken.example";
        import(&store, &[
            report("Google Inc.", &google(d, 12), d, 12, 300, &[("certificate-expired", "mx2.broken.example", "198.51.100.1", 6)]),
            report("Microsoft Corporation", "1+broken.example", d, 13, 80, &[("certificate-expired", "mx2.broken.example", "203.0.113.5", 2)]),
        ]).await;
        let bad = {
            let mut l = live(d);
            l.hosts[1].addresses[0].probe = Probe::CertificateInvalid { reason: "certificate-expired".into() };
            l
        };
        let r = load(&store, d, 14, NOW, Some(&bad)).await.unwrap();
        assert_eq!(r.verdict, Verdict::NoGo, "{r:#?}");
        let b = &r.blockers[0];
        assert_eq!((b.receiving_mx.as_deref(), b.result_type.as_deref()), (Some("mx2.broken.example"), Some("certificate-expired")));
        assert_eq!((b.failed_sessions, b.reporters.len()), (8, 2));
        assert_eq!(b.sending_ips, ["198.51.100.1", "203.0.113.5"]);
        assert!(b.fix.as_deref().unwrap().starts_with("renew the certificate of mx2.broken.example"));
        assert_eq!(r.tlsrpt_evidence(), TlsRptEvidence::Failures { failed_sessions: 8 });

        // Failures only from Postfix's reporter, contradicted by the live check: go, with a note.
        host(&store, "postfix.example").await;
        let d = "postfix.example";
        import(&store, &[
            report("Google Inc.", &google(d, 12), d, 12, 500, &[]),
            report("Mail Example GmbH", "2026-03-12T00:00:00Z_idx1_postfix.example", d, 12, 10,
                   &[("certificate-host-mismatch", "mx1.postfix.example", "192.0.2.7", 3)]),
            report("Mail Example GmbH", "2026-03-13T00:00:00Z_idx1_postfix.example", d, 13, 12,
                   &[("validation-failure", "mx2.postfix.example", "192.0.2.7", 1)]),
        ]).await;
        let r = load(&store, d, 14, NOW, Some(&live(d))).await.unwrap();
        assert_eq!(r.verdict, Verdict::Go, "{r:#?}");
        let noted: Vec<_> = r.notes.iter().filter(|n| n.known == Some("postfix-sts-matching")).collect();
        assert_eq!(noted.len(), 2, "{r:#?}");
        assert_eq!(r.evidence.noted_sessions, 4);
        assert_eq!(r.tlsrpt_evidence(), TlsRptEvidence::Clean { reports: 3 });
        let r = load(&store, d, 14, NOW, None).await.unwrap();
        assert_eq!(r.verdict, Verdict::Unknown, "without a live check: {r:#?}");
        assert_eq!(r.tlsrpt_evidence(), TlsRptEvidence::Failures { failed_sessions: 4 });

        // No report at all: unknown, never broken.
        let r = load(&store, "quiet.example", 14, NOW, None).await.unwrap();
        assert_eq!((r.verdict, r.tlsrpt_evidence()), (Verdict::Unknown, TlsRptEvidence::NotCollected));
    }
}
