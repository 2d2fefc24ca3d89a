//! The domain operations: every write through the store with its audit entry, the rollout
//! through core's machine with time injected, the certificate checked before it is stored.

use crate::support::{both, cert, t};
use mtasts_core::policy::Mode;
use mtasts_core::rollout::{
    AddressCheck, Blocker, DAY, Evidence, HostCheck, LiveCheck, Probe, RolloutConfig, RolloutError,
    TlsRptEvidence, WEEK,
};
use mtasts_server::domains::{AddDomain, DomainError, Domains, MxSource};

fn add(domain: &str, mx: &[&str]) -> AddDomain {
    AddDomain {
        domain: domain.into(),
        mx: MxSource::Patterns(mx.iter().map(|s| (*s).to_owned()).collect()),
        mode: Mode::Testing,
        max_age: None,
        force: None,
        delegation: Default::default(),
    }
}

fn evidence(at: time::OffsetDateTime, hosts: &[&str]) -> Evidence {
    Evidence {
        live: LiveCheck {
            checked_at: at,
            hosts: hosts
                .iter()
                .map(|h| HostCheck {
                    host: (*h).to_owned(),
                    addresses: vec![AddressCheck {
                        address: "192.0.2.1".parse().unwrap(),
                        probe: Probe::Valid,
                    }],
                })
                .collect(),
        },
        tlsrpt: TlsRptEvidence::NotCollected,
    }
}

both! {
    async fn add_with_given_mx_serves_testing_with_content_id_and_txt_record(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let out = ops.add(&add("Example.COM.", &["mx1.example.net", "*.mail.example.org"]), "cli", t(0)).await.unwrap();
        let v = out.domain.unwrap();
        assert_eq!(v.domain, "example.com");
        assert_eq!(v.state.as_str(), "testing");
        assert_eq!(
            v.policy_text,
            "version: STSv1\r\nmode: testing\r\nmx: mx1.example.net\r\nmx: *.mail.example.org\r\nmax_age: 86400\r\n"
        );
        assert_eq!(v.txt_record, format!("v=STSv1; id={}", v.policy_id));
        assert_eq!(v.txt_name, "_mta-sts.example.com");
        assert!(out.messages.iter().any(|m| m.contains(&v.txt_record)), "{:?}", out.messages);
        // The same content always has the same id; show reads back what add wrote.
        let shown = ops.show("example.com").await.unwrap();
        assert_eq!(shown, v);
        assert_eq!(
            shown.to_string(),
            format!(
                "domain:      example.com\nstate:       testing since 2026-01-01T00:00:00Z\n\
                 policy id:   {id}\npublish:     _mta-sts.example.com TXT \"v=STSv1; id={id}\"\n\
                 certificate: none yet for mta-sts.example.com (ACME on the server, or import one)\n\
                 DNS records (host delegation):\n  \
                 [not checked] _mta-sts.example.com TXT \"v=STSv1; id={id}\"\n\
                 served policy:\n  \
                 version: STSv1\n  mode: testing\n  mx: mx1.example.net\n  mx: *.mail.example.org\n  \
                 max_age: 86400\n",
                id = v.policy_id
            )
        );
        let audit = ops.store().audit(Some("example.com"), 10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!((audit[0].action.as_str(), audit[0].actor.as_str(), audit[0].at), ("domain.add", "cli", t(0)));
        assert!(audit[0].reason.as_deref().is_some_and(|r| r.contains("testing")), "{:?}", audit[0].reason);
    }

    async fn starting_in_enforce_needs_force_and_reason_and_records_it(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let mut req = add("example.com", &["mx1.example.net"]);
        req.mode = Mode::Enforce;
        let err = ops.add(&req, "cli", t(0)).await.unwrap_err();
        assert!(matches!(err, DomainError::NeedsForce(_)), "{err:?}");
        req.force = Some("   ".into());
        assert!(matches!(ops.add(&req, "cli", t(0)).await, Err(DomainError::NeedsForce(_))));
        assert!(ops.store().domains().await.unwrap().is_empty(), "nothing written when refused");
        req.force = Some("migrating from a provider that enforced".into());
        let v = ops.add(&req, "token:ops", t(0)).await.unwrap().domain.unwrap();
        assert_eq!((v.state.as_str(), v.mode, v.max_age), ("enforce", Mode::Enforce, DAY));
        let audit = ops.store().audit(Some("example.com"), 10).await.unwrap();
        assert_eq!(audit[0].actor, "token:ops");
        assert!(audit[0].reason.as_deref().unwrap().contains("migrating from a provider"));
    }

    async fn live_mx_hosts_no_provider_explains_need_confirmation(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let hosts = vec!["example-com.mail.protection.outlook.com.".to_owned(), "backup.example.com.".to_owned()];
        let mut req = add("example.com", &[]);
        req.mx = MxSource::Live { hosts: hosts.clone(), confirmed: vec![] };
        match ops.add(&req, "cli", t(0)).await {
            Err(DomainError::Unexplained(h)) => assert_eq!(h, ["backup.example.com"]),
            other => panic!("{other:?}"),
        }
        assert!(ops.store().domains().await.unwrap().is_empty());
        req.mx = MxSource::Live { hosts, confirmed: vec!["backup.example.com".into()] };
        let out = ops.add(&req, "cli", t(0)).await.unwrap();
        assert_eq!(out.domain.unwrap().mx, ["backup.example.com", "*.mail.protection.outlook.com"]);
        assert_eq!(out.mx_plan.unwrap().hosts.len(), 2);
    }

    async fn rollout_testing_enforce_rollback_removal_with_injected_time(db) {
        let cfg = RolloutConfig::default();
        let ops = Domains::new(db.open().await, cfg.clone()).unwrap();
        let mx = ["mx1.example.net"];
        ops.add(&add("example.com", &mx), "cli", t(0)).await.unwrap();
        // Promotion is gated: no evidence, and not a week in testing yet.
        match ops.promote("example.com", None, None, "cli", t(10)).await {
            Err(DomainError::Rollout(RolloutError::NotReady { blockers })) => assert_eq!(blockers.len(), 2, "{blockers:?}"),
            other => panic!("{other:?}"),
        }
        let week = i64::from(WEEK);
        let ev = evidence(t(week), &mx);
        let v = ops.promote("example.com", Some(&ev), None, "cli", t(week)).await.unwrap().domain.unwrap();
        assert_eq!((v.state.as_str(), v.enforce_step, v.max_age), ("enforce", Some(0), DAY));
        assert!(v.policy_text.contains("mode: enforce\r\n"));
        let enforce_id = v.policy_id.clone();
        // A day later, the next step.
        let day = i64::from(DAY);
        let ev = evidence(t(week + day), &mx);
        let v = ops.promote("example.com", Some(&ev), None, "cli", t(week + day)).await.unwrap().domain.unwrap();
        assert_eq!((v.enforce_step, v.max_age), (Some(1), WEEK));
        assert_ne!(v.policy_id, enforce_id, "a change of max_age changes the id");
        // Rollback: senders keep the cached week-long enforce policy.
        let out = ops.rollback("example.com", Some("MX broke"), "cli", t(week + day + 5)).await.unwrap();
        let v = out.domain.unwrap();
        assert_eq!((v.state.as_str(), v.mode, v.max_age), ("testing", Mode::Testing, DAY));
        assert_eq!(v.enforce_cached_until, Some(t(week + day + 5 + i64::from(WEEK))));
        assert!(out.messages[0].contains("keep applying it until"), "{:?}", out.messages);
        // Removal: mode none until the longest max_age (a week) has passed.
        let r0 = 2 * week;
        let v = ops.remove("example.com", None, "cli", t(r0)).await.unwrap().domain.unwrap();
        assert_eq!((v.state.as_str(), v.mode, v.max_age), ("withdrawing", Mode::None, DAY));
        assert!(v.policy_text.contains("mode: none\r\nmx: mx1.example.net\r\n"));
        assert_eq!(v.removal_safe_at, Some(t(r0 + week)));
        match ops.remove("example.com", None, "cli", t(r0 + week - 1)).await {
            Err(DomainError::Rollout(RolloutError::TooEarly { safe_at })) => assert_eq!(safe_at, t(r0 + week)),
            other => panic!("{other:?}"),
        }
        let out = ops.remove("example.com", None, "cli", t(r0 + week)).await.unwrap();
        assert!(out.domain.is_none());
        assert!(out.messages.last().unwrap().contains("_mta-sts"), "{:?}", out.messages);
        assert!(matches!(ops.show("example.com").await, Err(DomainError::NotFound(_))));
        // Every write left an audit entry, with who, when and why.
        let audit = ops.store().audit(Some("example.com"), 50).await.unwrap();
        let mut actions: Vec<_> = audit.iter().map(|a| (a.action.as_str(), a.at)).collect();
        actions.reverse();
        assert_eq!(actions, [
            ("domain.add", t(0)),
            ("rollout.transition", t(week)),
            ("rollout.transition", t(week + day)),
            ("rollout.transition", t(week + day + 5)),
            ("rollout.transition", t(r0)),
            ("rollout.transition", t(r0 + week)),
            ("domain.remove", t(r0 + week)),
        ]);
        assert!(audit.iter().all(|a| a.actor == "cli" && a.reason.as_deref().is_some_and(|r| !r.is_empty())));
    }

    async fn d53_the_gate_weighs_the_stored_reports_not_what_the_caller_claims(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let week = i64::from(WEEK);
        let report = |org: &str, id: &str, domain: &str, rtype: &str, failed: u64| {
            let json = serde_json::json!({
                "organization-name": org,
                "date-range": {"start-datetime": "2026-01-05T00:00:00Z", "end-datetime": "2026-01-05T23:59:59Z"},
                "contact-info": "tlsrpt@reporter.example", "report-id": id,
                "policies": [{
                    "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
                               "policy-domain": domain, "mx-host": ["mx1.example.net"]},
                    "summary": {"total-successful-session-count": 100, "total-failure-session-count": failed},
                    "failure-details": [{"result-type": rtype, "receiving-mx-hostname": "mx1.example.net",
                                         "sending-mta-ip": "192.0.2.9", "failed-session-count": failed}]
                }]
            });
            mtasts_core::report::parse_report_json(json.to_string().as_bytes()).unwrap()
        };
        let arrival = mtasts_store::Arrival { via: mtasts_store::Via::File, source: None, at: t(0), dkim: None };
        // Google saw certificates expire at mx1: the gate refuses, whatever the caller says.
        ops.add(&add("a.example", &["mx1.example.net"]), "cli", t(0)).await.unwrap();
        ops.store().insert_report(&report("Google Inc.", "g1", "a.example", "certificate-host-mismatch", 5), &arrival).await.unwrap();
        let mut claimed = evidence(t(week), &["mx1.example.net"]);
        claimed.tlsrpt = TlsRptEvidence::Clean { reports: 1 };
        match ops.promote("a.example", Some(&claimed), None, "cli", t(week)).await {
            Err(DomainError::Rollout(RolloutError::NotReady { blockers })) => {
                assert_eq!(blockers.len(), 1, "{blockers:?}");
                assert_eq!(blockers[0], Blocker::TlsRptFailures { failed_sessions: 5 });
                assert!(blockers[0].to_string().contains("mtasts report readiness"), "{}", blockers[0]);
            }
            other => panic!("{other:?}"),
        }
        // Only Postfix's reporter, which the live check contradicts: promoted, and the clean
        // reports are what is recorded with the transition.
        ops.add(&add("b.example", &["mx1.example.net"]), "cli", t(0)).await.unwrap();
        ops.store().insert_report(&report("Google Inc.", "g2", "b.example", "certificate-host-mismatch", 0), &arrival).await.unwrap();
        ops.store().insert_report(&report("Mail Example GmbH", "2026-01-05T00:00:00Z_idx1_b.example", "b.example", "certificate-host-mismatch", 3), &arrival).await.unwrap();
        let v = ops.promote("b.example", Some(&evidence(t(week), &["mx1.example.net"])), None, "cli", t(week)).await.unwrap().domain.unwrap();
        assert_eq!(v.state.as_str(), "enforce");
        let tr = ops.store().transitions("b.example").await.unwrap();
        let recorded = tr.last().unwrap().evidence.clone().unwrap();
        assert!(recorded.contains(r#""tlsrpt":{"state":"clean","reports":2}"#), "{recorded}");
        // No report: not collected, which blocks nothing by default.
        ops.add(&add("c.example", &["mx1.example.net"]), "cli", t(0)).await.unwrap();
        let mut claimed = evidence(t(week), &["mx1.example.net"]);
        claimed.tlsrpt = TlsRptEvidence::Failures { failed_sessions: 9 };
        ops.promote("c.example", Some(&claimed), None, "cli", t(week)).await.unwrap();
        let tr = ops.store().transitions("c.example").await.unwrap();
        assert!(tr.last().unwrap().evidence.as_deref().unwrap().contains(r#""tlsrpt":{"state":"not-collected"}"#));
        // With TLS-RPT required, no report blocks.
        let strict = RolloutConfig { require_tlsrpt: true, ..RolloutConfig::default() };
        let ops = Domains::new(ops.store().clone(), strict).unwrap();
        ops.add(&add("d.example", &["mx1.example.net"]), "cli", t(0)).await.unwrap();
        match ops.promote("d.example", Some(&evidence(t(week), &["mx1.example.net"])), None, "cli", t(week)).await {
            Err(DomainError::Rollout(RolloutError::NotReady { blockers })) => {
                assert_eq!(blockers.iter().map(ToString::to_string).collect::<Vec<_>>(), ["no TLS-RPT reports were collected for the domain"]);
            }
            other => panic!("{other:?}"),
        }
    }

    async fn a_removal_recorded_but_not_deleted_is_finished_by_the_next_remove(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        ops.add(&add("example.com", &["mx1.example.net"]), "cli", t(0)).await.unwrap();
        ops.remove("example.com", None, "cli", t(10)).await.unwrap();
        // What a crash between the transition and the deletion leaves behind.
        let tr = mtasts_store::Transition {
            from: "withdrawing".into(),
            to: "removed".into(),
            reason: "every cached policy has expired".into(),
            forced: false,
            evidence: None,
            policy: None,
        };
        ops.store().transition("example.com", &tr, &mtasts_store::Change::new("cli", t(DAY.into()))).await.unwrap();
        let v = ops.show("example.com").await.unwrap();
        assert_eq!(v.state.as_str(), "removed");
        assert!(matches!(
            ops.rollback("example.com", None, "cli", t(2 * i64::from(DAY))).await,
            Err(DomainError::Rollout(RolloutError::Illegal { .. }))
        ));
        let out = ops.remove("example.com", None, "cli", t(2 * i64::from(DAY))).await.unwrap();
        assert!(out.domain.is_none());
        assert!(ops.store().domain("example.com").await.unwrap().is_none());
    }

    async fn forced_promotion_records_reason_and_what_it_overrode(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        ops.add(&add("example.com", &["mx1.example.net"]), "cli", t(0)).await.unwrap();
        assert!(matches!(
            ops.promote("example.com", None, Some(""), "cli", t(1)).await,
            Err(DomainError::NeedsForce(_))
        ));
        let v = ops.promote("example.com", None, Some("owner checked by hand"), "token:ops", t(1)).await.unwrap().domain.unwrap();
        assert_eq!(v.state.as_str(), "enforce");
        let tr = ops.store().transitions("example.com").await.unwrap();
        let last = tr.last().unwrap();
        assert!(last.forced);
        assert!(last.reason.contains("owner checked by hand"));
        assert!(last.evidence.as_deref().unwrap().contains("no-live-check"), "{:?}", last.evidence);
    }

    async fn set_mx_and_max_age_publish_a_new_id_and_unchanged_is_refused(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let v0 = ops.add(&add("example.com", &["mx1.example.net"]), "cli", t(0)).await.unwrap().domain.unwrap();
        let mx = vec!["mx1.example.net".to_owned(), "mx2.example.net".to_owned()];
        let v1 = ops.set("example.com", Some(&mx), None, "cli", Some("new MX"), t(5)).await.unwrap().domain.unwrap();
        assert_ne!(v1.policy_id, v0.policy_id);
        assert_eq!(v1.mx, mx);
        let v2 = ops.set("example.com", None, Some(3600), "cli", None, t(6)).await.unwrap().domain.unwrap();
        assert_eq!((v2.max_age, v2.state.as_str()), (3600, "testing"));
        assert!(matches!(
            ops.set("example.com", Some(&mx), Some(3600), "cli", None, t(7)).await,
            Err(DomainError::Rollout(RolloutError::Unchanged))
        ));
        assert!(matches!(
            ops.set("example.com", Some(&["*.*.example.net".to_owned()]), None, "cli", None, t(7)).await,
            Err(DomainError::Invalid { what: "mx", .. })
        ));
        let audit = ops.store().audit(Some("example.com"), 10).await.unwrap();
        assert_eq!(audit.iter().filter(|a| a.action == "policy.set").count(), 2);
    }

    async fn set_cannot_raise_an_enforce_max_age_past_its_step(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let mx = ["mx1.example.net"];
        ops.add(&add("example.com", &mx), "cli", t(0)).await.unwrap();
        let week = i64::from(WEEK);
        let ev = evidence(t(week), &mx);
        ops.promote("example.com", Some(&ev), None, "cli", t(week)).await.unwrap();
        // Step 0 serves a day: a year would skip the gate of two promotions.
        let err = ops.set("example.com", None, Some(31_557_600), "cli", None, t(week + 1)).await.unwrap_err();
        assert!(matches!(err, DomainError::Invalid { what: "max_age", .. }), "{err:?}");
        assert!(err.to_string().contains("promote"), "{err}");
        // Lowering it is allowed.
        let v = ops.set("example.com", None, Some(3600), "cli", None, t(week + 2)).await.unwrap().domain.unwrap();
        assert_eq!((v.state.as_str(), v.max_age), ("enforce", 3600));
    }

    async fn certificate_import_checks_parse_name_key_and_expiry(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let later = t(400 * 86_400);
        let (c, k) = cert(&["mta-sts.example.com"], later);
        assert!(matches!(
            ops.import_certificate("example.com", &c, &k, "cli", None, t(0)).await,
            Err(DomainError::NotFound(_))
        ));
        ops.add(&add("example.com", &["mx1.example.net"]), "cli", t(0)).await.unwrap();
        let (wrong_name, wk) = cert(&["mta-sts.example.org"], later);
        let (_, other_key) = cert(&["mta-sts.example.com"], later);
        let (expired, ek) = cert(&["mta-sts.example.com"], t(-1));
        for (chain, key, why) in [
            (wrong_name.as_str(), wk.as_str(), "not valid for mta-sts.example.com"),
            (c.as_str(), other_key.as_str(), "does not match"),
            (expired.as_str(), ek.as_str(), "expired"),
            ("not pem", k.as_str(), "no CERTIFICATE"),
            (c.as_str(), "not pem", "no usable private key"),
        ] {
            match ops.import_certificate("example.com", chain, key, "cli", None, t(0)).await {
                Err(DomainError::Certificate(m)) => assert!(m.contains(why), "{m} / {why}"),
                other => panic!("{why}: {other:?}"),
            }
        }
        assert!(ops.store().certificate("example.com").await.unwrap().is_none(), "nothing stored when refused");
        let checked = ops.import_certificate("example.com", &c, &k, "cli", Some("bought"), t(0)).await.unwrap();
        assert_eq!(checked.not_after, later);
        let (wild, wk) = cert(&["*.example.com"], later);
        ops.import_certificate("example.com", &wild, &wk, "cli", None, t(1)).await.unwrap();
        let v = ops.show("example.com").await.unwrap();
        assert_eq!(v.certificate.unwrap().not_after, Some(later));
        let stored = ops.store().certificate("example.com").await.unwrap().unwrap();
        assert_eq!(stored.key.expose(), wk);
        let audit = ops.store().audit(Some("example.com"), 10).await.unwrap();
        assert!(audit.iter().any(|a| a.reason.as_deref() == Some("bought")));
    }

    async fn list_filters_by_what_the_caller_may_see(db) {
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        for d in ["b.example", "a.example", "c.example"] {
            ops.add(&add(d, &["mx.example.net"]), "cli", t(0)).await.unwrap();
        }
        let all: Vec<_> = ops.list(|_| true).await.unwrap().into_iter().map(|v| v.domain).collect();
        assert_eq!(all, ["a.example", "b.example", "c.example"]);
        let some: Vec<_> = ops.list(|d| d == "c.example").await.unwrap().into_iter().map(|v| v.domain).collect();
        assert_eq!(some, ["c.example"]);
    }
}
