//! `mtasts report readiness` (D53) on crafted reports imported as JSON: go (exit 0), no-go
//! naming the MX (exit 1), unknown (exit 4), on SQLite and PostgreSQL; the text escapes what
//! the reports say; and, against the test internet, failures only from Postfix's reporter that
//! the live check contradicts are go with a note (unknown without the live check).

#[allow(dead_code, reason = "the serve helpers of the shared support module")]
mod support;

use mtasts_testnet::pg::TestDatabase;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::world::{DOMAIN, World};
use serde_json::{Value, json};
use std::path::Path;
use support::run;
use time::OffsetDateTime;

const KEY: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";

async fn mtasts(args: &[&str]) -> (i32, String, String) {
    run(
        args.iter().map(|a| (*a).to_owned()).collect(),
        &[("MTASTS_STORE_KEY", KEY)],
    )
    .await
}

/// The day `n` days before today, `YYYY-MM-DD`.
fn day(n: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::days(n))
        .date()
        .to_string()
}

/// One report: `ok` successes and each of `failures` (result type, MX, sending IP, sessions).
fn report(
    org: &str,
    id: &str,
    domain: &str,
    day: &str,
    ok: u64,
    failures: &[(&str, &str, &str, u64)],
) -> Value {
    let failed: u64 = failures.iter().map(|f| f.3).sum();
    let details: Vec<Value> = failures
        .iter()
        .map(|(t, mx, ip, n)| json!({"result-type": t, "receiving-mx-hostname": mx, "sending-mta-ip": ip, "failed-session-count": n}))
        .collect();
    json!({
        "organization-name": org,
        "date-range": {"start-datetime": format!("{day}T00:00:00Z"), "end-datetime": format!("{day}T23:59:59Z")},
        "contact-info": "tlsrpt@reporter.example", "report-id": id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
                       "policy-domain": domain, "mx-host": [format!("mx1.{domain}")]},
            "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed},
            "failure-details": details,
        }]
    })
}

async fn import(dir: &Path, store: &str, reports: &[Value]) {
    let mut args = vec!["report".to_owned(), "import".to_owned()];
    for (i, r) in reports.iter().enumerate() {
        let p = dir.join(format!("r{i}.json"));
        std::fs::write(&p, r.to_string()).unwrap();
        args.push(p.display().to_string());
    }
    args.extend(["--store".into(), store.into()]);
    let (code, out, err) = run(args, &[("MTASTS_STORE_KEY", KEY)]).await;
    assert_eq!(code, 0, "{out}{err}");
}

/// `report readiness --domain D --store S --format json` with `extra`: status and JSON.
async fn readiness(store: &str, domain: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "report",
        "readiness",
        "--domain",
        domain,
        "--store",
        store,
        "--format",
        "json",
    ];
    args.extend(extra);
    let (code, out, err) = mtasts(&args).await;
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}{err}"));
    (code, v)
}

async fn crafted_histories(dir: &Path, store: &str) {
    let g = |d: &str, n: i64| format!("{}T00:00:00Z_{d}", day(n));
    import(
        dir,
        store,
        &[
            report(
                "Google Inc.",
                &g("clean.example", 2),
                "clean.example",
                &day(2),
                400,
                &[],
            ),
            report(
                "Microsoft Corporation",
                "1+clean.example",
                "clean.example",
                &day(3),
                80,
                &[],
            ),
            report(
                "Google Inc.",
                &g("broken.example", 2),
                "broken.example",
                &day(2),
                300,
                &[(
                    "starttls-not-supported",
                    "mx2.broken.example",
                    "198.51.100.1",
                    7,
                )],
            ),
            report(
                "Microsoft Corporation",
                "1+broken.example",
                "broken.example",
                &day(3),
                50,
                &[(
                    "starttls-not-supported",
                    "MX2.broken.example.",
                    "203.0.113.5",
                    1,
                )],
            ),
            // Older than the days weighed.
            report(
                "Google Inc.",
                &g("clean.example", 40),
                "clean.example",
                &day(40),
                0,
                &[(
                    "certificate-expired",
                    "mx1.clean.example",
                    "198.51.100.1",
                    9,
                )],
            ),
        ],
    )
    .await;
    let no_live = ["--no-live"];

    let (code, v) = readiness(store, "clean.example", &no_live).await;
    assert_eq!((code, v["verdict"].as_str()), (0, Some("go")), "{v:#}");
    assert_eq!(v["evidence"]["reports"], 2, "{v:#}");
    assert_eq!(v["live_check"], Value::Null);
    let (code, v) = readiness(store, "clean.example", &["--no-live", "--days", "60"]).await;
    assert_eq!(
        (code, v["verdict"].as_str()),
        (1, Some("no-go")),
        "60 days reach the old failure: {v:#}"
    );

    let (code, v) = readiness(store, "broken.example", &no_live).await;
    assert_eq!((code, v["verdict"].as_str()), (1, Some("no-go")), "{v:#}");
    let b = &v["blockers"][0];
    assert_eq!(
        (b["receiving_mx"].as_str(), b["result_type"].as_str()),
        (Some("mx2.broken.example"), Some("starttls-not-supported"))
    );
    assert_eq!(
        (
            b["failed_sessions"].as_u64(),
            b["sending_ip_count"].as_u64()
        ),
        (Some(8), Some(2)),
        "{v:#}"
    );
    assert_eq!(
        b["reporters"],
        json!(["Google Inc.", "Microsoft Corporation"])
    );
    assert!(
        b["fix"]
            .as_str()
            .unwrap()
            .contains("enable it on every address"),
        "{v:#}"
    );
    assert_eq!(v["blockers"].as_array().unwrap().len(), 1, "{v:#}");

    let (code, v) = readiness(store, "quiet.example", &no_live).await;
    assert_eq!((code, v["verdict"].as_str()), (4, Some("unknown")), "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d53_report_readiness_is_go_no_go_or_unknown_by_exit_status_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    crafted_histories(dir.path(), &store).await;
    if let Some(db) = TestDatabase::create("mtasts_cli", "report_readiness").await {
        crafted_histories(dir.path(), &db.url).await;
    }

    // Text: the verdict first, what reports say escaped, the same exit status.
    import(
        dir.path(),
        &store,
        &[report(
            "Evil\u{1b}[2J Corp",
            "x1",
            "evil.example",
            &day(1),
            5,
            &[(
                "certificate-expired",
                "mx\u{1b}]8;;http://x\u{7}.evil.example",
                "192.0.2.1\u{0}",
                1,
            )],
        )],
    )
    .await;
    let (code, out, err) = mtasts(&[
        "report",
        "readiness",
        "--domain",
        "evil.example",
        "--store",
        &store,
        "--no-live",
    ])
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with("evil.example: NO-GO (not hosted here)\nno-go: 1 blockers"),
        "{out}"
    );
    assert!(out.contains("Evil\\u{1b}[2J Corp"), "{out}");
    assert!(
        out.contains("mx\\u{1b}]8;;http://x\\u{7}.evil.example"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");

    // Usage: 2; csv is refused; an unreachable store is 3.
    for bad in [
        vec![
            "report",
            "readiness",
            "--domain",
            "a..b",
            "--store",
            &store,
            "--no-live",
        ],
        vec![
            "report",
            "readiness",
            "--domain",
            "a.example",
            "--store",
            &store,
            "--days",
            "0",
        ],
        vec![
            "report",
            "readiness",
            "--domain",
            "a.example",
            "--store",
            &store,
            "--format",
            "csv",
        ],
        vec!["report", "readiness", "--store", &store],
    ] {
        let (code, out, err) = mtasts(&bad).await;
        assert_eq!(code, 2, "{bad:?}: {out}{err}");
    }
    let gone = format!(
        "sqlite:{}",
        dir.path().join("no/such/dir/store.db").display()
    );
    let (code, _, err) = mtasts(&[
        "report",
        "readiness",
        "--domain",
        "a.example",
        "--store",
        &gone,
        "--no-live",
    ])
    .await;
    assert_eq!(code, 3, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d53_postfix_failures_the_live_check_contradicts_are_go_with_a_note() {
    let mut w = World::new().await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, w.pki.root_pem()).unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    let (code, out, err) = mtasts(&[
        "domain",
        "add",
        DOMAIN,
        "--mx",
        "mx1.example.test",
        "--store",
        &store,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    import(
        dir.path(),
        &store,
        &[
            report(
                "Google Inc.",
                &format!("{}T00:00:00Z_{DOMAIN}", day(2)),
                DOMAIN,
                &day(2),
                600,
                &[],
            ),
            report(
                "Mail Example GmbH",
                &format!("{}T00:00:00Z_idx1_{DOMAIN}", day(2)),
                DOMAIN,
                &day(2),
                20,
                &[(
                    "certificate-host-mismatch",
                    "mx1.example.test",
                    "192.0.2.7",
                    3,
                )],
            ),
        ],
    )
    .await;
    let net = [
        "--nameserver".to_owned(),
        w.dns.addr().to_string(),
        "--ca-file".to_owned(),
        root.display().to_string(),
        "--smtp-port".to_owned(),
        w.smtp_port.to_string(),
        "--https-port".to_owned(),
        w.https_port.to_string(),
        "--timeout".to_owned(),
        "3".to_owned(),
        "--no-dane".to_owned(),
    ];
    let net: Vec<&str> = net.iter().map(String::as_str).collect();
    let (code, v) = readiness(&store, DOMAIN, &net).await;
    assert_eq!((code, v["verdict"].as_str()), (0, Some("go")), "{v:#}");
    assert_eq!(v["stage"], "testing");
    assert_eq!(
        v["live_check"]["hosts"][0]["addresses"][0]["probe"]["result"], "valid",
        "{v:#}"
    );
    let noted: Vec<&Value> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["known"] == "postfix-sts-matching")
        .collect();
    assert_eq!(noted.len(), 1, "{v:#}");
    assert_eq!(noted[0]["failed_sessions"], 3);
    assert_eq!(
        v["evidence"]["by_reporter"][1]["software"], "tlsrpt-reporter",
        "{v:#}"
    );
    // Without the live check the same failures cannot be told apart.
    let (code, v) = readiness(&store, DOMAIN, &["--no-live"]).await;
    assert_eq!((code, v["verdict"].as_str()), (4, Some("unknown")), "{v:#}");
    assert_eq!(v["undecided"][0]["known"], "postfix-sts-matching", "{v:#}");
    // And the text says why, with the source.
    let mut args = vec!["report", "readiness", "--domain", DOMAIN, "--store", &store];
    args.extend(&net);
    let (code, out, _) = mtasts(&args).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the reporter's own fault (postfix-sts-matching)"),
        "{out}"
    );
    assert!(
        out.contains("source: https://github.com/Snawoot/postfix-mta-sts-resolver/issues/105"),
        "{out}"
    );
    assert!(
        out.contains("Mail Example GmbH [tlsrpt-reporter]: 1 reports"),
        "{out}"
    );

    // The promotion gate weighs the same reports: Postfix's failures do not block, and once
    // Google reports one at mx1 (an expired certificate would be a note: the live check finds
    // a valid one now), `domain promote` is refused for it.
    let at = (OffsetDateTime::now_utc() + time::Duration::days(8))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let promote = |store: String, at: String| {
        let mut a: Vec<String> = [
            "domain", "promote", DOMAIN, "--store", &store, "--now", &at, "--format", "json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(net.iter().map(|s| (*s).to_owned()));
        async move { run(a, &[("MTASTS_STORE_KEY", KEY)]).await }
    };
    let copy = format!("sqlite:{}", dir.path().join("copy.db").display());
    std::fs::copy(dir.path().join("store.db"), dir.path().join("copy.db")).unwrap();
    import(
        dir.path(),
        &store,
        &[report(
            "Google Inc.",
            &format!("{}T00:00:00Z_{DOMAIN}", day(1)),
            DOMAIN,
            &day(1),
            90,
            &[(
                "starttls-not-supported",
                "mx1.example.test",
                "198.51.100.1",
                2,
            )],
        )],
    )
    .await;
    let (code, out, err) = promote(store.clone(), at.clone()).await;
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["code"], "not_ready", "{v:#}");
    assert_eq!(
        v["error"]["details"]["blockers"],
        json!([{"blocker": "tls-rpt-failures", "failed_sessions": 2}]),
        "{v:#}"
    );
    let (code, out, err) = promote(copy, at).await;
    assert_eq!(code, 0, "without Google's failure: {out}{err}");
}
