//! The promotion gate: evidence, minimum times, `--force`.

use super::*;

#[test]
fn forced_promotion_overrides_every_blocker_and_records_them() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let f = Force::new("customer insists").unwrap();
    let out = s.promote(T0 + days(1), None, Some(&f), &c).unwrap();
    serves(&out, "enforce", DAY);
    assert_eq!(out.transition.forced.as_deref(), Some("customer insists"));
    assert_eq!(
        out.transition.overridden,
        [
            Blocker::TooEarly {
                ready_at: T0 + days(7)
            },
            Blocker::NoLiveCheck
        ]
    );
}

#[test]
fn the_gate_needs_every_mx_covered_and_tls_valid_on_every_address() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let at = T0 + days(7);
    let mut e = good(at);
    e.live.hosts.push(HostCheck {
        host: "backup.example.org".into(),
        addresses: vec![],
    });
    e.live.hosts[0].addresses[0].probe = Probe::NoStarttls;
    e.live.hosts[1].addresses[0].probe = Probe::CertificateInvalid {
        reason: "certificate-expired".into(),
    };
    // Could not look is not a pass.
    e.live.hosts[1].addresses[1].probe = Probe::Untested {
        reason: "port 25 timed out".into(),
    };
    let b = blockers(s.promote(at, Some(&e), None, &c).unwrap_err());
    let text: Vec<String> = b.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "mx1.example.net (192.0.2.1) does not offer STARTTLS",
            "a.mail.example.net (192.0.2.2) has an invalid certificate: certificate-expired",
            "a.mail.example.net (2001:db8::2) could not be checked: port 25 timed out",
            "MX host backup.example.org is not covered by any mx pattern; enforce would refuse it",
            "MX host backup.example.org has no address",
        ]
    );
    let empty = Evidence {
        live: LiveCheck {
            checked_at: at,
            hosts: vec![],
        },
        tlsrpt: TlsRptEvidence::NotCollected,
    };
    assert_eq!(
        blockers(s.promote(at, Some(&empty), None, &c).unwrap_err()),
        [Blocker::NoMxHosts]
    );
}

#[test]
fn the_live_check_must_be_fresh_and_not_from_the_future() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let at = T0 + days(7);
    for checked_at in [at - Duration::hours(2), at + Duration::minutes(5)] {
        let b = blockers(
            s.promote(at, Some(&good(checked_at)), None, &c)
                .unwrap_err(),
        );
        assert_eq!(b, [Blocker::StaleCheck { checked_at }]);
    }
    assert!(
        s.promote(at, Some(&good(at - Duration::minutes(59))), None, &c)
            .is_ok()
    );
}

#[test]
fn tlsrpt_failures_block_and_required_reports_must_exist() {
    let mut c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let at = T0 + days(7);
    let mut e = good(at);
    e.tlsrpt = TlsRptEvidence::Failures { failed_sessions: 3 };
    let b = blockers(s.promote(at, Some(&e), None, &c).unwrap_err());
    assert_eq!(b, [Blocker::TlsRptFailures { failed_sessions: 3 }]);
    c.require_tlsrpt = true;
    let b = blockers(s.promote(at, Some(&good(at)), None, &c).unwrap_err());
    assert_eq!(b, [Blocker::TlsRptMissing]);
    e.tlsrpt = TlsRptEvidence::Clean { reports: 7 };
    let out = s.promote(at, Some(&e), None, &c).unwrap();
    assert!(!out.notices.contains(&Notice::TlsRptNotConsidered));
}

#[test]
fn a_hostile_live_check_gives_a_bounded_list_of_blockers() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let at = T0 + days(7);
    let mut e = good(at);
    e.tlsrpt = TlsRptEvidence::Failures { failed_sessions: 1 };
    e.live.hosts = (0..10_000)
        .map(|i| HostCheck {
            host: format!("h{i}.example.org"),
            addresses: vec![],
        })
        .collect();
    let b = blockers(s.promote(at, Some(&e), None, &c).unwrap_err());
    assert_eq!(b.len(), MAX_BLOCKERS + 1);
    // Whole-domain blockers are never the ones left out.
    assert_eq!(b[0], Blocker::TlsRptFailures { failed_sessions: 1 });
    assert_eq!(
        b[MAX_BLOCKERS],
        Blocker::More {
            count: 20_000 + 1 - MAX_BLOCKERS
        }
    );
}

#[test]
fn starting_in_enforce_needs_a_reason_and_records_it() {
    assert_eq!(Force::new("   ").unwrap_err(), RolloutError::MissingReason);
    assert_eq!(
        Force::new(&"x".repeat(MAX_REASON_LEN + 1)).unwrap_err(),
        RolloutError::MissingReason
    );
    let f = Force::new("  moving from our old host, same MX  ").unwrap();
    let out = RolloutState::begin_enforced(&mx(), T0, &cfg(), &f).unwrap();
    serves(&out, "enforce", DAY);
    assert_eq!(
        out.transition.forced.as_deref(),
        Some("moving from our old host, same MX")
    );
}
