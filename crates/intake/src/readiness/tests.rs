//! The verdict on crafted histories (the store-backed ones are in tests/it/readiness.rs).

use super::*;
use mtasts_core::rollout::{AddressCheck, HostCheck};
use time::macros::{date, datetime};

const D: &str = "example.com";
const NOW: OffsetDateTime = datetime!(2026-03-15 12:00 UTC);

fn day(n: u8, reports: u64, success: u64, failure: u64) -> DayTotal {
    DayTotal {
        policy_domain: D.into(),
        day: date!(2026 - 03 - 01).replace_day(n).unwrap(),
        reports,
        success,
        failure,
    }
}

fn reporter(org: &str, ids: (&str, &str), success: u64, failure: u64) -> ReporterTotal {
    ReporterTotal {
        organization: org.into(),
        reports: 3,
        success,
        failure,
        days: 3,
        report_ids: (ids.0.into(), ids.1.into()),
    }
}

fn google(success: u64, failure: u64) -> ReporterTotal {
    let ids = (
        "2026-03-10T00:00:00Z_example.com",
        "2026-03-12T00:00:00Z_example.com",
    );
    reporter("Google Inc.", ids, success, failure)
}

fn postfix(success: u64, failure: u64) -> ReporterTotal {
    let ids = (
        "2026-03-10T00:00:00Z_idx1_example.com",
        "2026-03-12T00:00:00Z_idx2_example.com",
    );
    reporter("Mail Example GmbH", ids, success, failure)
}

fn failure(org: &str, rtype: &str, mx: &str, ip: &str, sessions: u64) -> FailureTotal {
    FailureTotal {
        policy_domain: D.into(),
        result_type: rtype.into(),
        receiving_mx: mx.into(),
        sending_ip: ip.into(),
        organization: org.into(),
        sessions,
    }
}

fn hosted(patterns: &[&str]) -> Hosted {
    Hosted {
        stage: "testing".into(),
        mx: patterns.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

fn live(hosts: &[(&str, Probe)]) -> LiveCheck {
    LiveCheck {
        checked_at: NOW,
        hosts: hosts
            .iter()
            .map(|(h, p)| HostCheck {
                host: (*h).into(),
                addresses: vec![AddressCheck {
                    address: "192.0.2.25".parse().unwrap(),
                    probe: p.clone(),
                }],
            })
            .collect(),
    }
}

fn assess_with(
    days: &[DayTotal],
    reporters: &[ReporterTotal],
    failures: &[FailureTotal],
    hosted: Option<&Hosted>,
    live: Option<&LiveCheck>,
) -> Readiness {
    assess(&Inputs {
        domain: D,
        now: NOW,
        days: DEFAULT_DAYS,
        day_totals: days,
        reporters,
        failures,
        hosted,
        live,
    })
}

fn ids(list: &[Finding]) -> Vec<&str> {
    list.iter().map(|f| f.id).collect()
}

#[test]
fn d53_a_clean_history_is_go_and_clean_evidence_for_the_gate() {
    let h = hosted(&["mx1.example.com", "*.mx.example.net"]);
    let l = live(&[
        ("mx1.example.com", Probe::Valid),
        ("a.mx.example.net", Probe::Valid),
    ]);
    let r = assess_with(
        &[day(10, 2, 500, 0), day(11, 1, 300, 0)],
        &[google(800, 0)],
        &[],
        Some(&h),
        Some(&l),
    );
    assert_eq!(r.verdict, Verdict::Go, "{r:#?}");
    assert!(r.blockers.is_empty() && r.undecided.is_empty());
    assert_eq!(
        (r.evidence.reports, r.evidence.successful_sessions),
        (3, 800)
    );
    assert_eq!(r.evidence.days_with_reports, 2);
    assert_eq!(r.tlsrpt_evidence(), TlsRptEvidence::Clean { reports: 3 });
    assert!(
        r.summary.starts_with("go: 800 successful sessions"),
        "{}",
        r.summary
    );
    assert_eq!(ids(&r.notes), ["one-reporter"]);
}

#[test]
fn d53_failures_at_one_mx_are_no_go_naming_it_with_reporters_ips_and_fix() {
    let h = hosted(&["mx1.example.com", "mx2.example.com"]);
    let fails = [
        failure(
            "Google Inc.",
            "certificate-host-mismatch",
            "MX2.example.com.",
            "198.51.100.1",
            7,
        ),
        failure(
            "Microsoft Corporation",
            "certificate-host-mismatch",
            "mx2.example.com",
            "203.0.113.9",
            3,
        ),
        failure(
            "Google Inc.",
            "certificate-host-mismatch",
            "mx2.example.com",
            "",
            2,
        ),
    ];
    let reporters = [
        google(400, 9),
        reporter(
            "Microsoft Corporation",
            ("1+example.com", "2+example.com"),
            100,
            3,
        ),
    ];
    let r = assess_with(&[day(10, 4, 500, 12)], &reporters, &fails, Some(&h), None);
    assert_eq!(r.verdict, Verdict::NoGo, "{r:#?}");
    assert_eq!(r.blockers.len(), 1, "{r:#?}");
    let b = &r.blockers[0];
    assert_eq!(b.receiving_mx.as_deref(), Some("mx2.example.com"));
    assert_eq!(b.result_type.as_deref(), Some("certificate-host-mismatch"));
    assert_eq!(b.failed_sessions, 12);
    assert_eq!(b.reporters, ["Google Inc.", "Microsoft Corporation"]);
    assert_eq!(b.sending_ips, ["198.51.100.1", "203.0.113.9"]);
    assert!(
        b.fix
            .as_deref()
            .unwrap()
            .contains("add mx2.example.com to the certificate"),
        "{b:?}"
    );
    assert!(
        r.summary.contains("failed 12 of 512 sessions"),
        "{}",
        r.summary
    );
    assert_eq!(
        r.tlsrpt_evidence(),
        TlsRptEvidence::Failures {
            failed_sessions: 12
        }
    );
    // Google's empty sending IP is explained, and the failure still counts.
    let n = r
        .notes
        .iter()
        .find(|n| n.id == "google-empty-sending-ip")
        .unwrap();
    assert_eq!(
        (n.failed_sessions, n.known),
        (2, Some("google-empty-sending-ip"))
    );
}

#[test]
fn d53_failures_only_from_postfix_contradicted_by_the_live_check_are_go_with_a_note() {
    let h = hosted(&["mx1.example.com"]);
    let fails = [failure(
        "Mail Example GmbH",
        "certificate-host-mismatch",
        "mx1.example.com",
        "192.0.2.7",
        4,
    )];
    let reporters = [google(700, 0), postfix(20, 4)];
    let days = [day(10, 6, 720, 4)];
    let l = live(&[("mx1.example.com", Probe::Valid)]);
    let r = assess_with(&days, &reporters, &fails, Some(&h), Some(&l));
    assert_eq!(r.verdict, Verdict::Go, "{r:#?}");
    let n = r
        .notes
        .iter()
        .find(|n| n.known == Some("postfix-sts-matching"))
        .unwrap();
    assert_eq!(
        (n.failed_sessions, n.reporters.as_slice()),
        (4, ["Mail Example GmbH".to_owned()].as_slice())
    );
    assert!(
        n.reference
            .unwrap()
            .contains("postfix-mta-sts-resolver/issues/105")
    );
    assert_eq!(r.evidence.noted_sessions, 4);
    assert_eq!(r.evidence.by_reporter[1].software, Some("tlsrpt-reporter"));
    assert_eq!(r.tlsrpt_evidence(), TlsRptEvidence::Clean { reports: 6 });

    // Without a live check it cannot be told apart: unknown, and the gate counts it.
    let r = assess_with(&days, &reporters, &fails, Some(&h), None);
    assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
    assert_eq!(r.undecided[0].known, Some("postfix-sts-matching"));
    assert_eq!(
        r.tlsrpt_evidence(),
        TlsRptEvidence::Failures { failed_sessions: 4 }
    );
    // When the live check agrees with the failure, it is a blocker.
    let bad = live(&[(
        "mx1.example.com",
        Probe::CertificateInvalid {
            reason: "certificate-host-mismatch".into(),
        },
    )]);
    let r = assess_with(&days, &reporters, &fails, Some(&h), Some(&bad));
    assert_eq!(r.verdict, Verdict::NoGo, "{r:#?}");
    assert_eq!(ids(&r.blockers), ["tlsrpt-failure", "certificate-invalid"]);
    // Google reporting the same failure is a blocker whatever Postfix's part is.
    let mut both = fails.to_vec();
    both.push(failure(
        "Google Inc.",
        "certificate-host-mismatch",
        "mx1.example.com",
        "198.51.100.1",
        1,
    ));
    let r = assess_with(&days, &reporters, &both, Some(&h), Some(&l));
    assert_eq!(r.verdict, Verdict::NoGo, "{r:#?}");
    assert_eq!(r.blockers[0].reporters, ["Google Inc."]);
    // An organization name is not enough: ids of another shape are not Postfix's.
    let named = [
        google(700, 0),
        reporter("Mail Example GmbH", ("a", "b"), 20, 4),
    ];
    let r = assess_with(&days, &named, &fails, Some(&h), Some(&l));
    assert_eq!(r.verdict, Verdict::NoGo, "{r:#?}");
}

#[test]
fn d53_no_report_or_no_success_is_unknown_never_broken() {
    let r = assess_with(&[], &[], &[], None, None);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.summary.contains("no TLS-RPT report"), "{}", r.summary);
    assert_eq!(r.tlsrpt_evidence(), TlsRptEvidence::NotCollected);
    assert_eq!(ids(&r.notes), ["no-live-check", "not-hosted"]);
    let r = assess_with(&[day(10, 1, 0, 0)], &[google(0, 0)], &[], None, None);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.summary.contains("no successful session"), "{}", r.summary);
    // A live check that finds a problem is a no-go even without reports.
    let h = hosted(&["mx1.example.com"]);
    let l = live(&[("mx9.example.org", Probe::NoStarttls)]);
    let r = assess_with(&[], &[], &[], Some(&h), Some(&l));
    assert_eq!(r.verdict, Verdict::NoGo);
    assert_eq!(ids(&r.blockers), ["mx-not-covered", "no-starttls"]);
    assert_eq!(
        r.tlsrpt_evidence(),
        TlsRptEvidence::NotCollected,
        "the live check is not TLS-RPT"
    );
}

#[test]
fn d53_dane_failures_hosts_gone_and_renewed_certificates_are_notes() {
    let h = hosted(&["mx1.example.com"]);
    let l = live(&[("mx1.example.com", Probe::Valid)]);
    let fails = [
        failure("Google Inc.", "tlsa-invalid", "mx1.example.com", "", 2),
        failure(
            "Google Inc.",
            "starttls-not-supported",
            "old-mx.example.com",
            "198.51.100.1",
            5,
        ),
        failure(
            "Google Inc.",
            "certificate-expired",
            "mx1.example.com",
            "198.51.100.1",
            3,
        ),
    ];
    let r = assess_with(
        &[day(10, 2, 90, 10)],
        &[google(90, 10)],
        &fails,
        Some(&h),
        Some(&l),
    );
    assert_eq!(r.verdict, Verdict::Go, "{r:#?}");
    let mut got = ids(&r.notes);
    got.sort_unstable();
    assert_eq!(
        got,
        [
            "certificate-renewed",
            "dane-failure",
            "google-empty-sending-ip",
            "mx-gone",
            "one-reporter"
        ]
    );
    // Without the live check none of the last two can be known.
    let r = assess_with(
        &[day(10, 2, 90, 10)],
        &[google(90, 10)],
        &fails,
        Some(&h),
        None,
    );
    assert_eq!(r.verdict, Verdict::NoGo);
    assert_eq!(r.blockers.len(), 2, "{r:#?}");
}

#[test]
fn d53_microsoft_dane_only_hosts_stay_blockers_with_their_explanation() {
    let fails = [failure(
        "Google Inc.",
        "validation-failure",
        "icewolf-li.h-v1.mx.microsoft",
        "",
        10,
    )];
    let r = assess_with(
        &[day(10, 1, 0, 10), day(11, 1, 50, 0)],
        &[google(50, 10)],
        &fails,
        None,
        None,
    );
    assert_eq!(r.verdict, Verdict::NoGo);
    let b = &r.blockers[0];
    assert_eq!(b.known, Some("microsoft-dane-only-mx"));
    assert!(
        b.fix
            .as_deref()
            .unwrap()
            .contains("covers exactly one label"),
        "{b:?}"
    );
    // The bare suffix is not a host under it.
    let fails = [failure(
        "Google Inc.",
        "validation-failure",
        "notmx.microsoft",
        "",
        10,
    )];
    let r = assess_with(&[day(10, 1, 50, 10)], &[google(50, 10)], &fails, None, None);
    assert_eq!(r.blockers[0].known, None);
}

#[test]
fn d53_policy_fetch_errors_block_and_name_the_policy_host() {
    let fails = [failure(
        "Microsoft Corporation",
        "sts-policy-fetch-error",
        "",
        "",
        6,
    )];
    let ms = reporter(
        "Microsoft Corporation",
        ("1+example.com", "9+example.com"),
        10,
        6,
    );
    let r = assess_with(&[day(10, 1, 10, 6)], &[ms], &fails, None, None);
    assert_eq!(r.verdict, Verdict::NoGo);
    let b = &r.blockers[0];
    assert_eq!(b.receiving_mx, None);
    assert!(
        b.fix
            .as_deref()
            .unwrap()
            .contains("https://mta-sts.example.com/.well-known/mta-sts.txt")
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.id == "microsoft-fetch-error-without-mx"),
        "{r:#?}"
    );
}

#[test]
fn d53_lists_are_capped_and_untested_probes_are_notes() {
    let h = hosted(&["*.example.com"]);
    let fails: Vec<FailureTotal> = (0..MAX_LISTED + 7)
        .map(|n| {
            failure(
                "Google Inc.",
                "starttls-not-supported",
                &format!("mx{n}.example.com"),
                "198.51.100.1",
                1,
            )
        })
        .collect();
    let days = [day(10, 1, 5, 57)];
    let r = assess_with(&days, &[google(5, 57)], &fails, Some(&h), None);
    assert_eq!((r.blockers.len(), r.omitted.blockers), (MAX_LISTED, 7));
    assert_eq!(
        r.evidence.blocking_sessions,
        (MAX_LISTED + 7) as u64,
        "counted whole"
    );
    assert!(
        r.summary
            .starts_with(&format!("no-go: {} blockers", MAX_LISTED + 7)),
        "{}",
        r.summary
    );
    // A live check that found no MX host says nothing of the hosts named: none is gone.
    let r = assess_with(&days, &[google(5, 57)], &fails, Some(&h), Some(&live(&[])));
    assert_eq!(r.evidence.blocking_sessions, (MAX_LISTED + 7) as u64);
    assert!(r.notes.iter().any(|n| n.id == "no-mx-hosts"), "{r:#?}");
    // One live MX host: the others' failures are of hosts no longer in the MX records.
    let untested = live(&[(
        "mx1.example.com",
        Probe::Untested {
            reason: "port 25 blocked".into(),
        },
    )]);
    let r = assess_with(&days, &[google(5, 57)], &fails, Some(&h), Some(&untested));
    assert_eq!(
        (r.evidence.blocking_sessions, r.evidence.noted_sessions),
        (1, (MAX_LISTED + 6) as u64)
    );
    assert_eq!(
        r.blockers[0].receiving_mx.as_deref(),
        Some("mx1.example.com")
    );
    // Could not look is not broken: an untested probe alone is a note.
    let r = assess_with(
        &[day(10, 1, 5, 0)],
        &[google(5, 0)],
        &[],
        Some(&h),
        Some(&untested),
    );
    assert_eq!(r.verdict, Verdict::Go, "{r:#?}");
    let n = r.notes.iter().find(|n| n.id == "untested").unwrap();
    assert_eq!(n.receiving_ips, ["192.0.2.25"]);
}

#[test]
fn tlsrpt_reporter_ids_are_told_by_their_shape_only() {
    let ok = |a: &str, b: &str| tlsrpt_reporter(&reporter("x", (a, b), 0, 0));
    assert!(ok(
        "2026-03-10T00:00:00Z_idx1_example.com",
        "2026-03-12T00:00:00Z_idx12_example.com"
    ));
    for bad in [
        "2026-03-10T00:00:00Z_example.com",
        "2026-03-10T00:00:00Z_idx_example.com",
        "2026-13-10T00:00:00Z_idx1_example.com",
        "2026-03-10T01:00:00Z_idx1_example.com",
        "2026-03-1é0T00:00:00Z_idx1_example.com",
        "ééééééééééT00:00:00Z_idx1_x",
        "133755676493963779+example.com",
        "",
    ] {
        assert!(!ok(bad, bad), "{bad}");
        assert!(!ok("2026-03-10T00:00:00Z_idx1_example.com", bad), "{bad}");
    }
}
