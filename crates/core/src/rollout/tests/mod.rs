use super::*;
use crate::policy::parse_policy;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use time::Duration;
use time::macros::datetime;

mod gate;

const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn mx() -> Vec<MxPattern> {
    vec![
        "mx1.example.net".parse().unwrap(),
        "*.mail.example.net".parse().unwrap(),
    ]
}

fn cfg() -> RolloutConfig {
    RolloutConfig::default()
}

fn addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

/// A passing live check at `at` of the hosts `mx()` covers.
fn good(at: OffsetDateTime) -> Evidence {
    Evidence {
        live: LiveCheck {
            checked_at: at,
            hosts: vec![
                HostCheck {
                    host: "MX1.example.net.".into(),
                    addresses: vec![AddressCheck {
                        address: addr(1),
                        probe: Probe::Valid,
                    }],
                },
                HostCheck {
                    host: "a.mail.example.net".into(),
                    addresses: vec![
                        AddressCheck {
                            address: addr(2),
                            probe: Probe::Valid,
                        },
                        AddressCheck {
                            address: "2001:db8::2".parse().unwrap(),
                            probe: Probe::Valid,
                        },
                    ],
                },
            ],
        },
        tlsrpt: TlsRptEvidence::NotCollected,
    }
}

/// The id of a policy text, computed here from the text alone (not through `Policy::id`).
fn expected_id(text: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    d.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks what `out` serves against the expected text, and the state's serde round trip.
fn serves(out: &Outcome, mode: &str, max_age: u32) {
    let text = format!(
        "version: STSv1\r\nmode: {mode}\r\nmx: mx1.example.net\r\nmx: *.mail.example.net\r\nmax_age: {max_age}\r\n"
    );
    let served = out.served.as_ref().expect("a policy is served");
    assert_eq!(served.text, text);
    assert_eq!(served.policy.max_age, max_age);
    assert_eq!(served.policy.mode.as_str(), mode);
    assert_eq!(served.id, expected_id(&text));
    assert_eq!(
        served.txt_record,
        format!("v=STSv1; id={}", expected_id(&text))
    );
    assert_eq!(out.state.served().as_ref(), Some(served));
    let parsed = parse_policy(text.as_bytes());
    assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
    assert!(
        out.notices.contains(&Notice::PublishId {
            txt_record: served.txt_record.clone()
        }),
        "{:?}",
        out.notices
    );
    round_trips(&out.state);
}

fn round_trips(state: &RolloutState) {
    let json = serde_json::to_string(state).unwrap();
    let back: RolloutState = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, state, "{json}");
}

fn blockers(err: RolloutError) -> Vec<Blocker> {
    match err {
        RolloutError::NotReady { blockers } => blockers,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_whole_rollout_with_injected_time_serves_the_right_policy_at_every_step() {
    let c = cfg();
    // Testing, one day.
    let out = RolloutState::begin(&mx(), T0, &c).unwrap();
    serves(&out, "testing", DAY);
    assert_eq!(out.transition.action, Action::Begin);
    assert_eq!(out.transition.from, None);
    let testing_id = out.served.as_ref().unwrap().id.clone();
    let s = out.state;

    // Too early: a week of testing first, even with perfect evidence.
    let at = T0 + days(1);
    let b = blockers(s.promote(at, Some(&good(at)), None, &c).unwrap_err());
    assert_eq!(
        b,
        [Blocker::TooEarly {
            ready_at: T0 + days(7)
        }]
    );

    // Enforce, one day.
    let at = T0 + days(7);
    let out = s.promote(at, Some(&good(at)), None, &c).unwrap();
    serves(&out, "enforce", DAY);
    assert_ne!(out.served.as_ref().unwrap().id, testing_id);
    assert_eq!(out.transition.from, Some(Stage::Testing));
    assert_eq!(out.transition.to, Stage::Enforce { step: 0 });
    assert_eq!(out.transition.forced, None);
    assert!(out.transition.reasons[1].contains("2 MX hosts covered"));
    assert!(out.notices.contains(&Notice::TlsRptNotConsidered));
    assert!(out.notices.contains(&Notice::NextStep {
        max_age: WEEK,
        not_before: T0 + days(8)
    }));
    let s = out.state;

    // Each step waits its own minimum time.
    let at = T0 + days(7) + Duration::hours(12);
    let b = blockers(s.promote(at, Some(&good(at)), None, &c).unwrap_err());
    assert_eq!(
        b,
        [Blocker::TooEarly {
            ready_at: T0 + days(8)
        }]
    );

    // One week.
    let at = T0 + days(8);
    let out = s.promote(at, Some(&good(at)), None, &c).unwrap();
    serves(&out, "enforce", WEEK);
    assert_eq!(out.state.stage, Stage::Enforce { step: 1 });
    let s = out.state;

    // The long-term value; no step beyond it.
    let at = T0 + days(15);
    let out = s.promote(at, Some(&good(at)), None, &c).unwrap();
    serves(&out, "enforce", LONG_TERM_MAX_AGE);
    assert!(
        !out.notices
            .iter()
            .any(|n| matches!(n, Notice::NextStep { .. }))
    );
    let s = out.state;
    let at = T0 + days(40);
    let err = s.promote(at, Some(&good(at)), None, &c).unwrap_err();
    assert!(
        matches!(
            err,
            RolloutError::Illegal {
                action: Action::Promote,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("long-term"), "{err}");

    // Rollback at day 20: senders keep the year-long enforce policy for a year from now.
    let at = T0 + days(20);
    let out = s.rollback(at, Some("new MX provider"), &c).unwrap();
    serves(&out, "testing", DAY);
    let cached_until = at + Duration::seconds(i64::from(LONG_TERM_MAX_AGE));
    assert_eq!(
        out.notices[0],
        Notice::EnforceCached {
            until: cached_until
        }
    );
    assert!(out.notices[0].to_string().contains("2027-01-21T06:00:00Z"));
    assert_eq!(out.transition.reasons, ["new MX provider"]);
    let s = out.state;

    // Removal starts at day 21: mode none (mx kept), safe a year after the last testing policy.
    let at = T0 + days(21);
    let out = s.remove(at, None, &c).unwrap();
    serves(&out, "none", DAY);
    let safe_at = at + Duration::seconds(i64::from(LONG_TERM_MAX_AGE));
    assert_eq!(out.state.stage, Stage::Withdrawing { safe_at });
    assert!(out.notices.contains(&Notice::RemovalSafeAt { at: safe_at }));
    let s = out.state;

    // Not before then.
    let err = s
        .remove(safe_at - Duration::seconds(1), None, &c)
        .unwrap_err();
    assert_eq!(err, RolloutError::TooEarly { safe_at });
    assert!(err.to_string().contains("RFC 8461 §8.3"));

    // Then: removed, nothing served, the records can go.
    let out = s.remove(safe_at, None, &c).unwrap();
    assert_eq!(out.served, None);
    assert_eq!(out.state.stage, Stage::Removed);
    let Some(Notice::DnsRecordsRemovable { records }) = out.notices.last() else {
        panic!("{:?}", out.notices)
    };
    let names: Vec<String> = records.iter().map(|r| r.name("example.com")).collect();
    assert_eq!(names, ["_mta-sts.example.com", "mta-sts.example.com"]);
    round_trips(&out.state);
    let s = out.state;

    // Nothing more happens to a removed domain.
    for err in [
        s.remove(safe_at, None, &c).unwrap_err(),
        s.rollback(safe_at, None, &c).unwrap_err(),
        s.promote(safe_at, Some(&good(safe_at)), None, &c)
            .unwrap_err(),
        s.set_mx(&mx(), safe_at).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                RolloutError::Illegal {
                    stage: Stage::Removed,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn removal_waits_for_the_longest_max_age_ever_published_not_the_last() {
    // Enforce at a week, roll back to a one-day testing policy, then remove: the week still counts.
    let c = cfg();
    let s = RolloutState::begin_enforced(&mx(), T0, &c, &Force::new("migration").unwrap())
        .unwrap()
        .state;
    let s = s
        .promote(T0 + days(1), Some(&good(T0 + days(1))), None, &c)
        .unwrap()
        .state;
    assert_eq!(s.max_age, WEEK);
    let s = s.rollback(T0 + days(2), None, &c).unwrap().state;
    let out = s.remove(T0 + days(3), None, &c).unwrap();
    assert_eq!(
        out.state.stage,
        Stage::Withdrawing {
            safe_at: T0 + days(10)
        }
    );
    // The enforce policy is cached until day 9; still in the future at day 3.
    assert_eq!(
        out.notices[0],
        Notice::EnforceCached {
            until: T0 + days(9)
        }
    );
}

#[test]
fn removal_of_a_domain_that_only_tested_waits_one_testing_max_age() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let out = s.remove(T0 + days(2), None, &c).unwrap();
    assert_eq!(
        out.state.stage,
        Stage::Withdrawing {
            safe_at: T0 + days(3)
        }
    );
    assert!(
        !out.notices
            .iter()
            .any(|n| matches!(n, Notice::EnforceCached { .. }))
    );
    assert!(out.state.remove(T0 + days(3), None, &c).is_ok());
}

#[test]
fn rollback_from_withdrawing_cancels_the_removal_and_a_new_removal_starts_over() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let s = s.remove(T0 + days(1), None, &c).unwrap().state;
    let out = s.rollback(T0 + days(5), None, &c).unwrap();
    serves(&out, "testing", DAY);
    assert_eq!(out.transition.reasons, ["rollback asked"]);
    let out = out.state.remove(T0 + days(6), None, &c).unwrap();
    assert_eq!(
        out.state.stage,
        Stage::Withdrawing {
            safe_at: T0 + days(7)
        }
    );
}

#[test]
fn illegal_transitions_are_refused_with_what_to_do() {
    let c = cfg();
    let testing = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let err = testing.rollback(T0, None, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot roll back a domain that is testing: it is already testing"
    );
    let withdrawing = testing.remove(T0, None, &c).unwrap().state;
    let at = T0 + days(30);
    let err = withdrawing
        .promote(at, Some(&good(at)), None, &c)
        .unwrap_err();
    assert!(
        err.to_string().contains("roll back to testing first"),
        "{err}"
    );
    // Even forced: an illegal transition is not a gate.
    let f = Force::new("because").unwrap();
    assert!(
        withdrawing
            .promote(at, Some(&good(at)), Some(&f), &c)
            .is_err()
    );
    assert_eq!(
        RolloutState::begin(&[], T0, &c).unwrap_err(),
        RolloutError::NoMx
    );
}

#[test]
fn a_forced_removal_says_how_long_senders_may_still_apply_the_policy() {
    let c = cfg();
    let f = Force::new("domain sold").unwrap();
    let s = RolloutState::begin_enforced(&mx(), T0, &c, &f)
        .unwrap()
        .state;
    let at = T0 + Duration::hours(1);
    let out = s.remove(at, Some(&f), &c).unwrap();
    assert_eq!(out.state.stage, Stage::Removed);
    assert_eq!(out.served, None);
    assert_eq!(out.transition.forced.as_deref(), Some("domain sold"));
    let until = at + days(1);
    assert_eq!(
        out.notices[..2],
        [
            Notice::EnforceCached { until },
            Notice::PolicyMayBeCached { until }
        ]
    );
    assert!(matches!(out.notices[2], Notice::DnsRecordsRemovable { .. }));
}

#[test]
fn a_new_mx_set_changes_the_id_and_keeps_the_stage() {
    let c = cfg();
    let f = Force::new("x").unwrap();
    let begun = RolloutState::begin_enforced(&mx(), T0, &c, &f).unwrap();
    let new: Vec<MxPattern> = vec!["mx2.example.net".parse().unwrap()];
    let out = begun.state.set_mx(&new, T0 + days(2)).unwrap();
    let served = out.served.as_ref().unwrap();
    assert_eq!(
        served.text,
        "version: STSv1\r\nmode: enforce\r\nmx: mx2.example.net\r\nmax_age: 86400\r\n"
    );
    assert_ne!(served.id, begun.served.unwrap().id);
    assert_eq!(out.state.stage, Stage::Enforce { step: 0 });
    assert_eq!(out.state.since, T0, "the time at the step still counts");
    assert_eq!(
        out.notices[0],
        Notice::EnforceCached {
            until: T0 + days(3)
        }
    );
    assert_eq!(
        out.transition.reasons,
        ["mx added: [mx2.example.net]; removed: [mx1.example.net, *.mail.example.net]"]
    );
    assert_eq!(
        out.state.set_mx(&new, T0 + days(2)).unwrap_err(),
        RolloutError::Unchanged
    );
}

#[test]
fn time_before_the_stage_start_counts_as_the_start() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let out = s.remove(T0 - days(3), None, &c).unwrap();
    assert_eq!(out.transition.at, T0);
    assert_eq!(
        out.state.stage,
        Stage::Withdrawing {
            safe_at: T0 + days(1)
        }
    );
}

#[test]
fn the_configuration_is_validated() {
    let mut c = cfg();
    assert!(c.validate().is_ok());
    c.enforce_steps[1].max_age = DAY;
    assert!(matches!(c.validate(), Err(RolloutError::Config(m)) if m.contains("strictly")));
    let mut c = cfg();
    c.enforce_steps.clear();
    assert!(RolloutState::begin(&mx(), T0, &c).is_err());
    let mut c = cfg();
    c.testing_max_age = MAX_AGE_LIMIT + 1;
    assert!(c.validate().is_err());
    let mut c = cfg();
    c.min_testing = u64::MAX;
    assert!(c.validate().is_err());
    // TOML/JSON configs name every field; missing ones take the defaults, unknown ones are refused.
    let c: RolloutConfig = serde_json::from_str(r#"{"min_testing": 0}"#).unwrap();
    assert_eq!(c.enforce_steps, cfg().enforce_steps);
    assert!(serde_json::from_str::<RolloutConfig>(r#"{"min_tesing": 0}"#).is_err());
}

#[test]
fn a_shortened_schedule_keeps_a_state_at_a_step_that_no_longer_exists_valid() {
    let f = Force::new("x").unwrap();
    let s = RolloutState::begin_enforced(&mx(), T0, &cfg(), &f)
        .unwrap()
        .state;
    let at = T0 + days(1);
    let s = s.promote(at, Some(&good(at)), None, &cfg()).unwrap().state;
    let mut short = cfg();
    short.enforce_steps.truncate(1);
    let at = T0 + days(30);
    assert!(matches!(
        s.promote(at, Some(&good(at)), None, &short),
        Err(RolloutError::Illegal { .. })
    ));
    assert!(s.rollback(at, None, &short).is_ok());
}

#[test]
fn stored_state_is_read_back_strictly() {
    let s = RolloutState::begin(&mx(), T0, &cfg()).unwrap().state;
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["stage"], "testing");
    assert_eq!(json["mx"][1], "*.mail.example.net");
    assert_eq!(json["since"], "2026-01-01T00:00:00Z");
    let mut bad = json;
    bad["mx"][0] = "192.0.2.1".into();
    let err = serde_json::from_value::<RolloutState>(bad).unwrap_err();
    assert!(err.to_string().contains("192.0.2.1"), "{err}");
    // A corrupted row is refused, not served.
    for (field, value) in [
        ("mx", serde_json::json!([])),
        (
            "mx",
            serde_json::json!(["mx2.example.net", "mx1.example.net"]),
        ),
        ("max_age", serde_json::json!(40_000_000)),
        ("longest_max_age", serde_json::json!(3600)),
        ("stage", serde_json::json!("enforcing")),
        ("since", serde_json::json!("yesterday")),
    ] {
        let mut v = serde_json::to_value(&s).unwrap();
        v[field] = value;
        assert!(
            serde_json::from_value::<RolloutState>(v).is_err(),
            "{field}"
        );
    }
    let w = s.remove(T0, None, &cfg()).unwrap().state;
    assert_eq!(w.stage.name(), "withdrawing");
    let json = serde_json::to_value(&w).unwrap();
    assert_eq!(json["stage"], "withdrawing");
    assert_eq!(json["safe_at"], "2026-01-02T00:00:00Z");
}

#[derive(Debug, Clone)]
enum Op {
    Promote { evidence: bool, force: bool },
    Rollback,
    Remove { force: bool },
    SetMx(u8),
}

fn op() -> impl Strategy<Value = Op> {
    // Promotions are weighted up so that sequences often reach the long enforce steps before a
    // rollback and a removal: the case where the last max_age is not the longest.
    prop_oneof![
        5 => (any::<bool>(), any::<bool>())
            .prop_map(|(evidence, force)| Op::Promote { evidence, force }),
        2 => Just(Op::Rollback),
        2 => any::<bool>().prop_map(|force| Op::Remove { force }),
        1 => (1u8..4).prop_map(Op::SetMx),
    ]
}

proptest! {
    /// Any sequence of operations at any times: every served policy is valid, and unforced removal
    /// never happens before the longest max_age served has passed since the last non-none policy
    /// was served (tracked here independently of the state machine).
    #[test]
    fn removal_is_never_early_and_every_served_policy_is_valid(
        steps in prop::collection::vec((op(), 0u32..40 * 86_400), 1..25)
    ) {
        let c = cfg();
        let mut now = T0;
        let mut s = RolloutState::begin(&mx(), now, &c).unwrap().state;
        let mut longest = DAY;
        let mut last_non_none_end: Option<OffsetDateTime> = None;
        let f = Force::new("test").unwrap();
        for (op, dt) in steps {
            now += Duration::seconds(i64::from(dt));
            let before = s.clone();
            let result = match op {
                Op::Promote { evidence, force } => {
                    let e = good(now);
                    s.promote(now, evidence.then_some(&e), force.then_some(&f), &c)
                }
                Op::Rollback => s.rollback(now, None, &c),
                Op::Remove { force } => s.remove(now, force.then_some(&f), &c),
                Op::SetMx(n) => {
                    let m: Vec<MxPattern> = (0..n)
                        .map(|i| format!("mx{i}.example.net").parse().unwrap())
                        .collect();
                    s.set_mx(&m, now)
                }
            };
            let Ok(out) = result else { continue };
            // What stopped being served now.
            if matches!(before.stage, Stage::Testing | Stage::Enforce { .. })
                && !matches!(out.state.stage, Stage::Testing | Stage::Enforce { .. })
            {
                last_non_none_end = Some(now);
            }
            if let Some(p) = out.state.policy()
                && p.mode != Mode::None
            {
                longest = longest.max(p.max_age);
                last_non_none_end = None;
            }
            if out.state.stage == Stage::Removed && out.transition.forced.is_none() {
                let end = last_non_none_end.unwrap_or(now);
                prop_assert!(now >= end + Duration::seconds(i64::from(longest)));
            }
            match &out.served {
                Some(sv) => {
                    let parsed = parse_policy(sv.text.as_bytes());
                    prop_assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
                    prop_assert_eq!(parsed.policy.as_ref(), Some(&sv.policy));
                    prop_assert!(!sv.policy.mx.is_empty(), "mx kept, even for none");
                }
                None => prop_assert_eq!(out.state.stage, Stage::Removed),
            }
            prop_assert_eq!(out.state.longest_max_age, longest.max(out.state.longest_max_age));
            s = out.state;
            if s.stage == Stage::Removed {
                break;
            }
        }
    }
}

#[test]
fn the_current_enforce_policy_counts_as_ending_now_for_the_cache_horizon() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    assert_eq!(s.enforce_cached_until(T0 + days(3)), None);
    let f = Force::new("x").unwrap();
    let s = RolloutState::begin_enforced(&mx(), T0, &c, &f)
        .unwrap()
        .state;
    assert_eq!(s.enforce_cached_until(T0 + days(3)), Some(T0 + days(4)));
    let s = s.rollback(T0 + days(5), None, &c).unwrap().state;
    assert_eq!(s.enforce_cached_until(T0 + days(9)), Some(T0 + days(6)));
}

#[test]
fn an_outcome_serialises_for_the_history_and_the_json_output() {
    let c = cfg();
    let s = RolloutState::begin(&mx(), T0, &c).unwrap().state;
    let f = Force::new("go").unwrap();
    let out = s.promote(T0, None, Some(&f), &c).unwrap();
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v["state"]["stage"], "enforce");
    assert_eq!(v["state"]["step"], 0);
    assert_eq!(v["served"]["policy"]["mode"], "enforce");
    assert_eq!(v["transition"]["action"], "promote");
    assert_eq!(v["transition"]["from"]["stage"], "testing");
    assert_eq!(v["transition"]["forced"], "go");
    assert_eq!(v["transition"]["overridden"][0]["blocker"], "too-early");
    assert_eq!(
        v["transition"]["overridden"][0]["ready_at"],
        "2026-01-08T00:00:00Z"
    );
    assert_eq!(v["notices"][0]["notice"], "publish-id");
}

#[test]
fn a_domain_added_from_its_live_mx_begins_testing_with_the_planned_patterns() {
    let plan = crate::providers::plan_mx(&[
        "contoso-com.mail.protection.outlook.com.",
        "backup.contoso.com.",
    ]);
    let out = RolloutState::begin(&plan.patterns(), T0, &cfg()).unwrap();
    assert_eq!(
        out.served.unwrap().text,
        "version: STSv1\r\nmode: testing\r\nmx: backup.contoso.com\r\nmx: *.mail.protection.outlook.com\r\nmax_age: 86400\r\n"
    );
    // The live check of the same hosts passes the coverage gate.
    let at = T0 + days(7);
    let mut e = good(at);
    e.live.hosts[0].host = "contoso-com.mail.protection.outlook.com".into();
    e.live.hosts[1].host = "backup.contoso.com".into();
    assert!(out.state.promote(at, Some(&e), None, &cfg()).is_ok());
}
