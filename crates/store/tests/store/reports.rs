//! TLS-RPT reports: stored once with their raw and normalised forms, copies counted, per-day
//! and per-failure aggregates, hostile text kept safely, each report all or nothing.

use mtasts_core::report::parse_report_json;
use mtasts_store::{Arrival, Inserted, ReportFilter, Via};

use crate::support::{both, t};

fn report(org: &str, id: &str, domain: &str, day: &str, ok: u64, failed: u64) -> String {
    serde_json::json!({
        "organization-name": org,
        "date-range": {
            "start-datetime": format!("{day}T00:00:00Z"),
            "end-datetime": format!("{day}T23:59:59Z"),
        },
        "contact-info": "tlsrpt@reporter.example",
        "report-id": id,
        "policies": [{
            "policy": {
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: testing"],
                "policy-domain": domain,
                "mx-host": [format!("mx.{domain}")],
            },
            "summary": {
                "total-successful-session-count": ok,
                "total-failure-session-count": failed,
            },
            "failure-details": [{
                "result-type": "certificate-expired",
                "sending-mta-ip": "192.0.2.1",
                "receiving-mx-hostname": format!("mx.{domain}"),
                "failed-session-count": failed,
            }],
        }],
    })
    .to_string()
}

fn arrival(via: Via, at: i64) -> Arrival {
    Arrival {
        via,
        source: Some("test".into()),
        at: t(at),
        dkim: None,
    }
}

both! {
    async fn a_report_is_stored_once_and_its_copies_are_counted(db) {
        let store = db.open().await;
        let json = report("Google Inc.", "r1", "a.example", "2026-01-01", 90, 10);
        let parsed = parse_report_json(json.as_bytes()).unwrap();
        let first = store.insert_report(&parsed, &arrival(Via::Https, 10)).await.unwrap();
        let Inserted::New(id) = first else { panic!("{first:?}") };
        let again = store.insert_report(&parsed, &arrival(Via::Smtp, 20)).await.unwrap();
        assert_eq!(again, Inserted::Duplicate { id, copies: 2 });
        let listed = store.reports(&ReportFilter::default()).await.unwrap();
        assert_eq!(listed.len(), 1);
        let r = &listed[0];
        assert_eq!((r.organization.as_str(), r.report_id.as_str()), ("Google Inc.", "r1"));
        assert_eq!((r.policy_domain.as_str(), r.success, r.failure), ("a.example", 90, 10));
        assert_eq!((r.copies, r.via.as_str(), r.received_at), (2, "https", t(10)));
        let detail = store.report(id).await.unwrap().unwrap();
        assert_eq!(detail.raw_json, json.as_bytes(), "the raw JSON as sent");
        assert_eq!(detail.raw_size, json.len() as u64);
        let normalised: serde_json::Value = serde_json::from_str(&detail.normalised).unwrap();
        assert_eq!(normalised["report-id"], "r1");
        assert!(store.report(id + 1000).await.unwrap().is_none());
    }

    async fn aggregates_count_each_report_once_per_domain_and_day(db) {
        let store = db.open().await;
        for (org, id, domain, day, ok, failed) in [
            ("Google Inc.", "g1", "a.example", "2026-01-01", 90, 10),
            ("Microsoft", "m1", "a.example", "2026-01-01", 50, 0),
            ("Google Inc.", "g2", "a.example", "2026-01-02", 70, 5),
            ("Google Inc.", "g3", "b.example", "2026-01-01", 1, 1),
        ] {
            let parsed = parse_report_json(report(org, id, domain, day, ok, failed).as_bytes()).unwrap();
            store.insert_report(&parsed, &arrival(Via::File, 1)).await.unwrap();
            // A copy changes nothing in the aggregates.
            store.insert_report(&parsed, &arrival(Via::File, 2)).await.unwrap();
        }
        let since = time::macros::datetime!(2025-12-31 0:00 UTC);
        let days = store.report_days(Some("a.example"), since).await.unwrap();
        let got: Vec<(String, u64, u64, u64)> = days
            .iter()
            .map(|d| (d.day.to_string(), d.reports, d.success, d.failure))
            .collect();
        assert_eq!(got, [("2026-01-01".into(), 2, 140, 10), ("2026-01-02".into(), 1, 70, 5)]);
        assert_eq!(store.report_days(None, since).await.unwrap().len(), 3);
        let later = time::macros::datetime!(2026-01-02 0:00 UTC);
        assert_eq!(store.report_days(None, later).await.unwrap().len(), 1);
        let failures = store.report_failures(Some("a.example"), since).await.unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        let f = &failures[0];
        assert_eq!(
            (f.result_type.as_str(), f.receiving_mx.as_str(), f.sending_ip.as_str(), f.sessions),
            ("certificate-expired", "mx.a.example", "192.0.2.1", 15)
        );
        let only_b = ReportFilter { domain: Some("b.example".into()), ..ReportFilter::default() };
        assert_eq!(store.reports(&only_b).await.unwrap().len(), 1);
        let one = ReportFilter { limit: Some(1), ..ReportFilter::default() };
        assert_eq!(store.reports(&one).await.unwrap()[0].report_id, "g2", "newest first");
    }

    async fn reporters_are_counted_once_per_report_with_the_range_of_their_ids(db) {
        let store = db.open().await;
        for (org, id, domain, day, ok, failed) in [
            ("Google Inc.", "2026-01-01T00:00:00Z_a.example", "a.example", "2026-01-01", 90, 10),
            ("Google Inc.", "2026-01-02T00:00:00Z_a.example", "a.example", "2026-01-02", 70, 0),
            ("Google Inc.", "2025-12-01T00:00:00Z_a.example", "a.example", "2025-12-01", 5, 5),
            ("Example Org", "2026-01-01T00:00:00Z_idx1_a.example", "a.example", "2026-01-01", 3, 2),
            ("Example Org", "2026-01-01T00:00:00Z_idx1_b.example", "b.example", "2026-01-01", 8, 0),
        ] {
            let parsed = parse_report_json(report(org, id, domain, day, ok, failed).as_bytes()).unwrap();
            store.insert_report(&parsed, &arrival(Via::File, 1)).await.unwrap();
            // A copy counts nothing more.
            store.insert_report(&parsed, &arrival(Via::Smtp, 2)).await.unwrap();
        }
        let since = time::macros::datetime!(2025-12-31 12:00 UTC);
        let got = store.report_reporters("a.example", since).await.unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|r| (r.organization.as_str(), r.reports, r.success, r.failure, r.days,
                      r.report_ids.0.as_str(), r.report_ids.1.as_str()))
            .collect();
        assert_eq!(got, [
            ("Example Org", 1, 3, 2, 1, "2026-01-01T00:00:00Z_idx1_a.example",
             "2026-01-01T00:00:00Z_idx1_a.example"),
            ("Google Inc.", 2, 160, 10, 2, "2026-01-01T00:00:00Z_a.example",
             "2026-01-02T00:00:00Z_a.example"),
        ]);
        assert!(store.report_reporters("c.example", since).await.unwrap().is_empty());
        let all = store.report_reporters("a.example", time::macros::datetime!(2025-01-01 0:00 UTC)).await.unwrap();
        assert_eq!(all[1].reports, 3, "the December report once the span includes it");
    }

    async fn a_batch_is_stored_in_one_go_with_its_copies_counted_in_order(db) {
        let store = db.open().await;
        let first = parse_report_json(report("G", "r1", "a.example", "2026-01-01", 1, 1).as_bytes()).unwrap();
        let Inserted::New(id1) = store.insert_report(&first, &arrival(Via::File, 1)).await.unwrap() else {
            panic!("new");
        };
        // 3,000 failure details: more rows than one multi-row INSERT takes.
        let mut many: serde_json::Value =
            serde_json::from_str(&report("G", "big", "b.example", "2026-01-02", 5, 3000)).unwrap();
        let detail = many["policies"][0]["failure-details"][0].clone();
        many["policies"][0]["failure-details"] = (0..3000)
            .map(|i| {
                let mut d = detail.clone();
                d["failed-session-count"] = 1.into();
                d["sending-mta-ip"] = format!("192.0.2.{}", i % 250).into();
                d
            })
            .collect();
        let big = parse_report_json(many.to_string().as_bytes()).unwrap();
        let other = parse_report_json(report("M", "r2", "a.example", "2026-01-01", 9, 0).as_bytes()).unwrap();
        let a = arrival(Via::File, 2);
        let batch = [(&first, &a), (&other, &a), (&big, &a), (&other, &a)];
        let out = store.insert_reports(&batch).await.unwrap();
        let Inserted::New(id2) = out[1] else { panic!("{out:?}") };
        let Inserted::New(_) = out[2] else { panic!("{out:?}") };
        assert_eq!(out[0], Inserted::Duplicate { id: id1, copies: 2 });
        assert_eq!(out[3], Inserted::Duplicate { id: id2, copies: 2 });
        let since = time::macros::datetime!(2025-12-31 0:00 UTC);
        let fails = store.report_failures(Some("b.example"), since).await.unwrap();
        assert_eq!(fails.iter().map(|f| f.sessions).sum::<u64>(), 3000, "every detail stored");
        let days = store.report_days(Some("a.example"), since).await.unwrap();
        assert_eq!((days[0].reports, days[0].success), (2, 10), "each report once");
    }

    async fn hostile_text_is_kept_safely_and_cut(db) {
        let store = db.open().await;
        let org = format!("Evil\u{0}Corp{}", "x".repeat(5000));
        let parsed = parse_report_json(report(&org, "nul\u{0}id", "a.example", "2026-01-01", 1, 0).as_bytes()).unwrap();
        let Inserted::New(id) = store.insert_report(&parsed, &arrival(Via::Https, 1)).await.unwrap() else {
            panic!("stored");
        };
        let r = store.report(id).await.unwrap().unwrap().report;
        assert!(r.organization.starts_with("Evil\u{fffd}Corp"), "{}", &r.organization[..20]);
        assert!(r.organization.len() <= mtasts_store::MAX_REPORT_TEXT);
        assert_eq!(r.report_id, "nul\u{fffd}id");
        // The same report again is recognised by its kept (cut) key.
        let again = store.insert_report(&parsed, &arrival(Via::Https, 2)).await.unwrap();
        assert_eq!(again, Inserted::Duplicate { id, copies: 2 });
    }
}
