//! The catalogue (docs/requirements.md §5) tied to tests: every row that docs/diagnostics.md claims
//! has a scenario that produces a finding of that row ([`COVERAGE`]), and the presence scenarios
//! for rows no other test shows (record, policy text and MX rows, one world per table).

use crate::scenarios::{POLICY, has};
use crate::world::{DOMAIN, World, env};
use mtasts_check::check_domain;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use std::collections::BTreeSet;

/// Row → a finding id of that row (or, for M43, the text the summary prints) → the test that
/// produces it: `file` (relative to the workspace) and function.
const COVERAGE: &[(&str, &str, &str, &str)] = &[
    (
        "D01",
        "dane.tlsa.insecure",
        DANE,
        "d01_tlsa_in_an_unsigned_zone_is_ignored_by_senders",
    ),
    (
        "D02",
        "dane.tlsa.mismatch",
        DANE,
        "d02_tlsa_for_another_key_is_an_error_with_the_served_record_as_fix",
    ),
    (
        "D03",
        "dane.tlsa.no-rollover",
        DANE,
        "d03_a_single_dane_ee_record_has_no_rollover_scheme",
    ),
    (
        "D04",
        "dane.tlsa.unusable",
        DANE,
        "d04_pkix_usages_and_full_data_are_flagged",
    ),
    (
        "M01",
        "sts.record.missing",
        SCEN,
        "no_record_no_policy_host",
    ),
    ("M02", "sts.record.multiple", SCEN, "record_problems"),
    ("M03", "sts.record.unrelated", ROWS, "record_rows"),
    (
        "M04",
        "sts.record.at-apex",
        SCEN,
        "record_at_apex_instead_of_mta_sts",
    ),
    ("M05", "sts.record.spf", ROWS, "record_rows"),
    ("M06", "sts.record.bad-start", ROWS, "record_rows"),
    ("M07", "sts.id.invalid", ROWS, "record_rows"),
    ("M08", "sts.field.unknown", ROWS, "record_rows"),
    ("M09", "sts.record.cname", ROWS, "record_rows"),
    (
        "M10",
        "sts.record.untested",
        SCEN,
        "dns_failure_is_untested_not_missing",
    ),
    ("M11", "policy.host.no-ipv6", ROWS, "policy_rows"),
    (
        "M12",
        "policy.certificate.expired",
        SCEN,
        "policy_host_certificate_defects",
    ),
    (
        "M13",
        "policy.certificate.expires-soon",
        SCEN,
        "certificates_expiring_soon",
    ),
    (
        "M14",
        "policy.tls.old-protocol",
        NET,
        "policy_host_with_only_old_tls_is_m14",
    ),
    ("M15", "policy.fetch.status", SCEN, "policy_http_problems"),
    ("M16", "policy.fetch.redirect", SCEN, "policy_http_problems"),
    (
        "M17",
        "policy.fetch.content-type",
        SCEN,
        "policy_content_type_and_invalid_mode",
    ),
    ("M18", "policy.fetch.large", ROWS, "policy_rows"),
    ("M19", "policy.encoding", ROWS, "policy_rows"),
    ("M20", "policy.html", ROWS, "policy_rows"),
    (
        "M21",
        "policy.fetch.bot-wall",
        NET,
        "bot_challenge_is_m21_not_a_plain_status",
    ),
    ("M22", "policy.fetch.unreachable", ROWS, "record_rows"),
    ("M23", "policy.version.invalid", ROWS, "policy_rows"),
    (
        "M24",
        "policy.mode.invalid",
        SCEN,
        "policy_content_type_and_invalid_mode",
    ),
    ("M25", "policy.max-age.invalid", ROWS, "policy_rows"),
    ("M26", "policy.max-age.short", ROWS, "policy_rows"),
    ("M27", "policy.mx.missing", ROWS, "policy_rows"),
    ("M28", "policy.mx.bad-wildcard", ROWS, "policy_rows"),
    ("M29", "policy.mx.ip-literal", ROWS, "policy_rows"),
    ("M30", "policy.key.unknown", ROWS, "policy_rows"),
    ("M31", "policy.space-before-colon", ROWS, "policy_rows"),
    ("M32", "policy.version.not-first", ROWS, "policy_rows"),
    (
        "M33",
        "policy.mode.testing",
        SCEN,
        "testing_mode_not_covered_is_a_warning",
    ),
    (
        "M34",
        "mx.not-covered",
        SCEN,
        "mx_not_covered_and_stale_pattern",
    ),
    (
        "M35",
        "policy.mx.unused",
        SCEN,
        "mx_not_covered_and_stale_pattern",
    ),
    (
        "M36",
        "mx.not-covered",
        SCEN,
        "mx_not_covered_and_stale_pattern",
    ),
    ("M37", "mx.starttls.missing", SCEN, "mx_tls_problems"),
    ("M38", "mx.certificate.expired", SCEN, "mx_tls_problems"),
    (
        "M39",
        "mx.certificate.expires-soon",
        SCEN,
        "certificates_expiring_soon",
    ),
    (
        "M40",
        "mx.tls.old-protocol",
        NET,
        "mx_with_only_old_tls_is_m40",
    ),
    ("M41", "mx.unreachable", SCEN, "mx_tls_problems"),
    ("M42", "mx.null", ROWS, "record_rows"),
    (
        "M43",
        "(M43)",
        CLI,
        "summary_names_mx_hosts_shared_by_disagreeing_policies",
    ),
    (
        "M47",
        "policy.host.missing",
        SCEN,
        "record_but_no_policy_host_is_m47",
    ),
    (
        "R01",
        "tlsrpt.record.missing",
        SCEN,
        "no_record_no_policy_host",
    ),
    (
        "R02",
        "tlsrpt.record.multiple",
        SCEN,
        "two_tlsrpt_records_mean_no_reports",
    ),
    ("R03", "tlsrpt.rua.bang", ROWS, "record_rows"),
    ("R04", "tlsrpt.rua.multiple", ROWS, "record_rows"),
    ("R05", "tlsrpt.field.unknown", ROWS, "record_rows"),
    (
        "R06",
        "tlsrpt.record.old-name",
        SCEN,
        "tlsrpt_at_the_old_name_is_flagged",
    ),
    (
        "R07",
        "tlsrpt.rua.in-domain",
        SCEN,
        "tlsrpt_to_the_protected_domain_warns",
    ),
    (
        "R08",
        "tlsrpt.rua.endpoint.certificate",
        NET,
        "bad_certificate_or_status_of_report_endpoint_is_r08",
    ),
];

const SCEN: &str = "crates/check/tests/it/scenarios.rs";
const NET: &str = "crates/check/tests/it/scenarios_net.rs";
const ROWS: &str = "crates/check/tests/it/rows.rs";
const DANE: &str = "crates/check/tests/it/dane.rs";
const CLI: &str = "crates/cli/tests/check.rs";

fn workspace_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The catalogue rows named in the "catalogue" column of the tables of docs/diagnostics.md.
fn claimed_rows(doc: &str) -> BTreeSet<String> {
    let mut rows = BTreeSet::new();
    let mut column = None;
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if !line.starts_with('|') {
            column = None;
            continue;
        }
        if let Some(i) = cells.iter().position(|c| *c == "catalogue") {
            column = Some(i);
            continue;
        }
        let Some(cell) = column.and_then(|i| cells.get(i)) else {
            continue;
        };
        for word in cell.split(|c: char| !c.is_ascii_alphanumeric()) {
            let b = word.as_bytes();
            if b.len() == 3 && b"MRD".contains(&b[0]) && b[1..].iter().all(u8::is_ascii_digit) {
                rows.insert(word.to_owned());
            }
        }
        // `M23–M27`: a range names every row in it.
        for range in cell.split(", ") {
            if let Some((a, z)) = range.split_once('–')
                && let (Some(p), Ok(from), Ok(to)) = (
                    a.get(..1),
                    a.get(1..).unwrap_or("").parse::<u8>(),
                    z.get(1..).unwrap_or("").parse::<u8>(),
                )
                && to >= from
                && to - from < 50
            {
                rows.extend((from..=to).map(|n| format!("{p}{n:02}")));
            }
        }
    }
    rows
}

/// The body of `fn name` in `src` (up to the next line that is a lone `}`).
fn body<'a>(src: &'a str, name: &str) -> Option<&'a str> {
    let start = src.find(&format!("fn {name}("))?;
    let rest = &src[start..];
    let end = rest.find("\n}\n").unwrap_or(rest.len());
    Some(&rest[..end])
}

#[test]
fn every_catalogue_row_in_the_docs_has_a_scenario() {
    let doc = workspace_file("docs/diagnostics.md");
    let claimed = claimed_rows(&doc);
    assert!(claimed.len() > 40, "the scan found only {claimed:?}");
    let covered: BTreeSet<String> = COVERAGE.iter().map(|r| r.0.to_owned()).collect();
    let missing: Vec<&String> = claimed.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "rows claimed in docs/diagnostics.md with no scenario in COVERAGE: {missing:?}"
    );
    for (row, id, file, func) in COVERAGE {
        let src = workspace_file(file);
        let b = body(&src, func).unwrap_or_else(|| panic!("{row}: no fn {func} in {file}"));
        assert!(
            b.contains(&format!("\"{id}")) || b.contains(id),
            "{row}: {file} fn {func} does not look for {id}"
        );
        if id.starts_with('(') {
            continue;
        }
        // The finding is documented under that row.
        let tail = id.rsplit_once('.').map(|(_, t)| format!("`.{t}`"));
        let documented = doc.lines().any(|l| {
            l.starts_with('|')
                && (l.contains(&format!("`{id}`")) || tail.as_ref().is_some_and(|t| l.contains(t)))
                && l.contains(row)
        });
        let ranged = doc
            .lines()
            .any(|l| l.contains(&format!("`{id}`")) && l.contains('–'));
        assert!(
            documented || ranged,
            "{row}: {id} is not documented under {row} in docs/diagnostics.md"
        );
    }
}

/// Record-level rows, each on a domain of its own (`caseN.test`) served by one DNS server.
#[tokio::test]
async fn record_rows() {
    let w = World::new().await;
    let nowhere = w.ip(9, 9);
    let sts = "_mta-sts 300 IN TXT \"v=STSv1; id=1\"";
    let cases: Vec<(String, &str)> = vec![
        (format!("{sts}\n_mta-sts 300 IN TXT \"google-site-verification=x\""), "sts.record.unrelated"),
        ("_mta-sts 300 IN TXT \"v=spf1 -all\"".into(), "sts.record.spf"),
        ("_mta-sts 300 IN TXT \"v=STSv1 id=1\"".into(), "sts.record.bad-start"),
        ("_mta-sts 300 IN TXT \"v=STSv1; id=2024-01-01\"".into(), "sts.id.invalid"),
        ("_mta-sts 300 IN TXT \"v=STSv1; id=1; colour=blue\"".into(), "sts.field.unknown"),
        ("_mta-sts 300 IN CNAME sts.provider\nsts.provider 300 IN TXT \"v=STSv1; id=1\"".into(), "sts.record.cname"),
        (format!("{sts}\nmta-sts 300 IN A {nowhere}"), "policy.fetch.unreachable"),
        ("@ 300 IN MX 0 .".into(), "mx.null"),
        ("@ 300 IN TXT \"v=spf1 -all\"".into(), "mx.implicit"),
        ("_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@reports.example.net!10m\"".into(), "tlsrpt.rua.bang"),
        ("_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:a@reports.example.net,mailto:b@reports.example.net\"".into(), "tlsrpt.rua.multiple"),
        ("_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@reports.example.net; colour=blue\"".into(), "tlsrpt.field.unknown"),
    ];
    let env = env(&w);
    for (i, (zone, id)) in cases.iter().enumerate() {
        let domain = format!("case{i}.test");
        w.dns.set_zone(&format!("{domain}."), zone).unwrap();
        let r = check_domain(&domain, &env).await;
        assert!(has(&r, id), "{id} from\n{zone}\n{:#?}", r.findings);
    }
}

/// Policy-text rows: one policy host, its answer changed for each case.
#[tokio::test]
async fn policy_rows() {
    let mut w = World::new().await;
    // No AAAA for the policy host: M11's warning in every case.
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let padding = "x_padding: yes\n".repeat(300);
    let mut not_utf8 = POLICY.as_bytes().to_vec();
    not_utf8.extend_from_slice(b"x_note: caf\xe9\n");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (POLICY.into(), "policy.host.no-ipv6"),
        (format!("{POLICY}{padding}").into(), "policy.fetch.large"),
        (not_utf8, "policy.encoding"),
        (
            b"<html><body><h1>Login</h1></body></html>\n".to_vec(),
            "policy.html",
        ),
        (
            POLICY.replace("STSv1", "STSv2").into(),
            "policy.version.invalid",
        ),
        (
            POLICY.replace("1209600", "2w").into(),
            "policy.max-age.invalid",
        ),
        (
            POLICY.replace("1209600", "3600").into(),
            "policy.max-age.short",
        ),
        (
            POLICY.replace("mx: mx1.example.test\n", "").into(),
            "policy.mx.missing",
        ),
        (
            format!("{POLICY}mx: *mx.example.test\n").into(),
            "policy.mx.bad-wildcard",
        ),
        (
            format!("{POLICY}mx: 192.0.2.25\n").into(),
            "policy.mx.ip-literal",
        ),
        (
            format!("{POLICY}colour: blue\n").into(),
            "policy.key.unknown",
        ),
        (
            POLICY.replace("mode: enforce", "mode : enforce").into(),
            "policy.space-before-colon",
        ),
        (
            "mode: enforce\nversion: STSv1\nmx: mx1.example.test\nmax_age: 1209600\n".into(),
            "policy.version.not-first",
        ),
    ];
    let env = env(&w);
    for (body, id) in cases {
        w.set_policy_response(HttpResponse::policy(body.clone()));
        let r = check_domain(DOMAIN, &env).await;
        assert!(
            has(&r, id),
            "{id} from\n{}\n{:#?}",
            String::from_utf8_lossy(&body),
            r.findings
        );
    }
}
