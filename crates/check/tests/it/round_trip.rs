//! The report JSON reads back into the typed [`DomainReport`] and writes out again byte for
//! byte: for every domain of the scenario set (each built to show one finding), and for those
//! reports with arbitrary foreign text and result words put into them (a property test).

use mtasts_check::model::{DomainReport, TlsResult};
use mtasts_check::{Finding, check_domain};
use mtasts_core::catalog::CATALOGUE;
use mtasts_core::report::ResultType;
use mtasts_testnet::scenarios::{Ports, ScenarioSet};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Both forms `mtasts check` prints (`--format json`: one pretty array; `--format jsonl`: one
/// compact object per line) read back and write out unchanged.
fn assert_round_trip(reports: &[DomainReport]) {
    let pretty = serde_json::to_string_pretty(reports).unwrap();
    let read: Vec<DomainReport> = serde_json::from_str(&pretty).unwrap();
    assert_eq!(serde_json::to_string_pretty(&read).unwrap(), pretty);
    for r in reports {
        let line = serde_json::to_string(r).unwrap();
        let read: DomainReport = serde_json::from_str(&line).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), line);
    }
}

/// Every report of the scenario set (one per scenario domain, plus a domain that does not
/// exist).
fn scenario_reports() -> Vec<DomainReport> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let set = ScenarioSet::start(98, Ports::ANY).await.unwrap();
        let env = crate::world::env_for(
            set.dns.addr(),
            set.trust_anchor(),
            &set.pki,
            (set.smtp_port, set.https_port),
        );
        let mut domains: Vec<String> = set.scenarios.iter().map(|s| s.domain.clone()).collect();
        domains.push("absent.scenarios.test".into());
        domains.push("not a domain".into());
        let mut out = Vec::new();
        for d in &domains {
            out.push(check_domain(d, &env).await);
        }
        out
    })
}

/// A change to one report: foreign text in a string field, a finding from the catalogue, a
/// result word (registered, ours, or unknown).
#[derive(Debug, Clone)]
struct Change {
    report: usize,
    text: String,
    catalogue_index: usize,
    result_word: String,
}

fn change() -> impl Strategy<Value = Change> {
    let word = prop_oneof![
        Just("success".to_owned()),
        Just("not-tested".to_owned()),
        Just("unreachable".to_owned()),
        proptest::sample::select(
            ResultType::KNOWN
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect::<Vec<_>>()
        ),
        "[a-z-]{1,24}",
        any::<String>(),
    ];
    (any::<usize>(), any::<String>(), any::<usize>(), word).prop_map(
        |(report, text, catalogue_index, result_word)| Change {
            report,
            text,
            catalogue_index,
            result_word,
        },
    )
}

fn apply(reports: &[DomainReport], c: &Change) -> DomainReport {
    let mut r = reports[c.report % reports.len()].clone();
    let e = &CATALOGUE[c.catalogue_index % CATALOGUE.len()];
    let mut f = if e.untested {
        Finding::untested(e.id, c.text.clone(), c.text.clone())
    } else {
        Finding::new(
            e.id,
            e.severities[0],
            c.text.clone(),
            Some(c.text.clone()),
            "",
        )
    };
    f.observed = Some(c.text.clone());
    r.findings.push(f);
    r.domain.clone_from(&c.text);
    r.policy.fetch.error = Some(c.text.clone());
    r.policy.failure = Some(ResultType::from_name(&c.result_word));
    r.tlsrpt.rua.push(c.text.clone());
    for m in &mut r.mx {
        m.result = TlsResult::from_name(&c.result_word);
        m.host.clone_from(&c.text);
        for a in &mut m.addresses {
            a.result = TlsResult::from_name(&c.result_word);
        }
    }
    r
}

#[test]
fn check_json_reads_back_and_writes_out_byte_for_byte() {
    let reports = scenario_reports();
    assert!(reports.len() > 20, "{}", reports.len());
    // The set exercises what the schema holds: MX hosts with failures, DANE hosts, policies
    // senders reject.
    assert!(
        reports
            .iter()
            .any(|r| r.mx.iter().any(|m| m.result.is_failure()))
    );
    assert!(
        reports
            .iter()
            .any(|r| r.dane.as_ref().is_some_and(|d| !d.hosts.is_empty()))
    );
    assert!(reports.iter().any(|r| r.policy.failure.is_some()));
    assert_round_trip(&reports);

    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&change(), |c| {
            assert_round_trip(&[apply(&reports, &c)]);
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_unknown_finding_id_or_schema_gap_is_refused() {
    let r = serde_json::json!({
        "id": "made.up", "severity": "error", "message": "", "observed": null, "fix": ""
    });
    let err = serde_json::from_value::<Finding>(r)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown finding id"), "{err}");
    let ok = serde_json::json!({
        "id": "mx.unreachable", "severity": "warning", "message": "", "observed": null,
        "fix": "", "untested": true
    });
    assert!(serde_json::from_value::<Finding>(ok).unwrap().untested);
}
