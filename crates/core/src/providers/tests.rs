use super::*;
use proptest::prelude::*;

fn strings(patterns: &[MxPattern]) -> Vec<String> {
    patterns.iter().map(ToString::to_string).collect()
}

fn coverage(host: &str) -> Coverage {
    let plan = plan_mx(&[host]);
    assert_eq!(plan.hosts.len(), 1, "{host}");
    plan.hosts[0].coverage.clone()
}

fn provider_pattern(host: &str) -> (&'static str, String) {
    match coverage(host) {
        Coverage::Provider { provider, pattern } => (provider, pattern.to_string()),
        other => panic!("{host}: {other:?}"),
    }
}

#[test]
fn microsoft_365_tenant_is_covered_by_the_documented_one_label_wildcard() {
    let plan = plan_mx(&["contoso-com.mail.protection.outlook.com."]);
    assert_eq!(strings(&plan.patterns()), ["*.mail.protection.outlook.com"]);
    assert!(plan.unexplained().is_empty());
    assert!(plan.patterns()[0].matches("contoso-com.mail.protection.outlook.com"));
}

#[test]
fn microsoft_dane_hosts_get_the_zone_wildcard_never_star_mx_microsoft() {
    // PS.MTA-STS#33: `*.mx.microsoft` does not cover a host two labels under it.
    let (provider, pattern) = provider_pattern("icewolf-li.h-v1.mx.microsoft");
    assert_eq!(provider, MICROSOFT);
    assert_eq!(pattern, "*.h-v1.mx.microsoft");
    let p: MxPattern = pattern.parse().unwrap();
    assert!(p.matches("icewolf-li.h-v1.mx.microsoft"));
    assert!(!p.matches("other.o-v1.mx.microsoft"), "another zone");
}

#[test]
fn google_workspace_hosts_are_covered_exactly_and_only_those_present() {
    let hosts = [
        "aspmx.l.google.com.",
        "alt1.aspmx.l.google.com.",
        "alt2.aspmx.l.google.com.",
        "alt3.aspmx.l.google.com.",
        "alt4.aspmx.l.google.com.",
    ];
    let plan = plan_mx(&hosts);
    assert!(plan.unexplained().is_empty());
    assert_eq!(
        strings(&plan.patterns()),
        [
            "alt1.aspmx.l.google.com",
            "alt2.aspmx.l.google.com",
            "alt3.aspmx.l.google.com",
            "alt4.aspmx.l.google.com",
            "aspmx.l.google.com",
        ]
    );
    // The newer single host: one pattern, not the whole Google set.
    let plan = plan_mx(&["smtp.google.com."]);
    assert_eq!(strings(&plan.patterns()), ["smtp.google.com"]);
}

#[test]
fn every_listed_provider_recognises_its_real_mx_hosts() {
    let cases = [
        ("mail.protonmail.ch", PROTON, "mail.protonmail.ch"),
        ("mailsec.protonmail.ch", PROTON, "mailsec.protonmail.ch"),
        ("mx.zoho.com", ZOHO, "mx.zoho.com"),
        ("mx3.zoho.eu", ZOHO, "mx3.zoho.eu"),
        (
            "in1-smtp.messagingengine.com",
            FASTMAIL,
            "in1-smtp.messagingengine.com",
        ),
        ("mx02.mail.icloud.com", ICLOUD, "mx02.mail.icloud.com"),
        (
            "eu-smtp-inbound-2.mimecast.com",
            MIMECAST,
            "eu-smtp-inbound-2.mimecast.com",
        ),
        (
            "mx0a-00191d01.pphosted.com",
            PROOFPOINT,
            "mx0a-00191d01.pphosted.com",
        ),
        (
            "inbound-smtp.eu-west-1.amazonaws.com",
            AMAZON,
            "inbound-smtp.eu-west-1.amazonaws.com",
        ),
        (
            "route2.mx.cloudflare.net",
            CLOUDFLARE,
            "route2.mx.cloudflare.net",
        ),
        ("mxext3.mailbox.org", MAILBOX_ORG, "mxext3.mailbox.org"),
        ("aspmx5.googlemail.com", GOOGLE, "aspmx5.googlemail.com"),
    ];
    for (host, provider, pattern) in cases {
        assert_eq!(provider_pattern(host), (provider, pattern.to_owned()));
    }
}

#[test]
fn a_provider_plus_an_own_backup_lists_the_backup_as_unexplained() {
    let plan = plan_mx(&[
        "contoso-com.mail.protection.outlook.com.",
        "backup.contoso.com.",
    ]);
    assert_eq!(plan.unexplained(), ["backup.contoso.com"]);
    assert_eq!(
        strings(&plan.patterns()),
        ["backup.contoso.com", "*.mail.protection.outlook.com"]
    );
    // Declined: only the provider's pattern is left.
    let kept = plan.without(&["backup.contoso.com"]);
    assert_eq!(strings(&kept.patterns()), ["*.mail.protection.outlook.com"]);
}

#[test]
fn a_host_near_a_provider_never_widens_to_the_providers_space() {
    // Each of these is the provider's suffix itself, deeper than the row's shape, a look-alike or
    // a name that only contains the provider's: covered exactly, and asked about.
    for host in [
        "mail.protection.outlook.com",
        "outlook.com",
        "a.b.mail.protection.outlook.com",
        "xmail.protection.outlook.com",
        "contoso.mail.protection.outlook.com.evil.example",
        "mx.microsoft",
        "h-v1.mx.microsoft",
        "a.b.h-v1.mx.microsoft",
        "google.com",
        "l.google.com",
        "evil.aspmx.l.google.com",
        "alt5.aspmx.l.google.com",
        "pphosted.com",
        "a.b.pphosted.com",
        "inbound-smtp.amazonaws.com",
        "mimecast.com",
    ] {
        match coverage(host) {
            Coverage::Unexplained { pattern } => {
                assert!(!pattern.is_wildcard(), "{host}");
                assert_eq!(pattern.to_string(), host);
            }
            other => panic!("{host}: {other:?}"),
        }
    }
}

#[test]
fn ip_looking_and_malformed_hosts_are_invalid_and_left_out() {
    for (host, problem) in [
        ("192.0.2.1", "policy.mx.ip-literal"),
        ("192.0.2.1.", "policy.mx.ip-literal"),
        ("[192.0.2.1]", "policy.mx.ip-literal"),
        ("2001:db8::25", "policy.mx.ip-literal"),
        ("mx.123", "policy.mx.ip-literal"),
        ("*.example.com", "policy.mx.bad-wildcard"),
        ("*.mail.protection.outlook.com", "policy.mx.bad-wildcard"),
        ("mx_1.example.com", "policy.mx.underscore"),
        ("mx..example.com", "policy.mx.bad-label"),
        ("mx.example.com extra", "policy.mx.whitespace"),
    ] {
        match coverage(host) {
            Coverage::Invalid { problem: p, reason } => {
                assert_eq!(p, problem, "{host}");
                assert!(reason.contains(host), "{reason}");
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    let plan = plan_mx(&["192.0.2.1", "mx.example.net"]);
    assert_eq!(strings(&plan.patterns()), ["mx.example.net"]);
    assert_eq!(plan.invalid(), ["192.0.2.1"]);
}

#[test]
fn trailing_dots_case_and_u_labels_are_normalised_before_matching() {
    assert_eq!(
        provider_pattern("ASPMX.L.Google.COM."),
        (GOOGLE, "aspmx.l.google.com".to_owned())
    );
    assert_eq!(
        provider_pattern("bücher.mail.protection.outlook.com."),
        (MICROSOFT, "*.mail.protection.outlook.com".to_owned())
    );
    let plan = plan_mx(&["mx.bücher.example."]);
    assert_eq!(plan.unexplained(), ["mx.xn--bcher-kva.example"]);
    // The same host twice, in two spellings, is one host.
    let plan = plan_mx(&["MX.example.net.", "mx.example.net"]);
    assert_eq!(plan.hosts.len(), 1);
}

#[test]
fn null_mx_is_flagged_and_builds_no_enforceable_policy() {
    let plan = plan_mx(&["."]);
    assert!(plan.null_mx);
    assert!(plan.patterns().is_empty());
    let errors = plan.build(Mode::Testing, 86_400).unwrap_err();
    assert!(errors.iter().any(|d| d.id == "policy.mx.missing"));
}

#[test]
fn the_built_policy_is_linted_and_round_trips() {
    let plan = plan_mx(&["mail.protonmail.ch.", "mailsec.protonmail.ch."]);
    let built = plan.build(Mode::Testing, 86_400).unwrap();
    assert_eq!(
        built.text,
        "version: STSv1\r\nmode: testing\r\nmx: mail.protonmail.ch\r\nmx: mailsec.protonmail.ch\r\nmax_age: 86400\r\n"
    );
    assert_eq!(built.id, built.policy.id());
    let ids: Vec<&str> = built.lint.iter().map(|d| d.id).collect();
    assert_eq!(ids, ["policy.mode.testing"]);
    assert!(crate::diag::no_errors(&built.lint));
    // The linter's advice reaches the caller: a short max_age is flagged.
    let short = plan.build(Mode::Enforce, 3600).unwrap();
    assert!(short.lint.iter().any(|d| d.id == "policy.max-age.short"));
    // And a max_age over the RFC limit is an error, not a policy.
    assert!(plan.build(Mode::Enforce, 40_000_000).is_err());
}

#[test]
fn every_row_covers_a_host_of_its_shape_and_no_wildcard_is_broad() {
    for row in PROVIDERS {
        let host = row
            .template
            .split('.')
            .map(|l| if l.starts_with('{') { "x1" } else { l })
            .collect::<Vec<_>>()
            .join(".");
        let pattern = row.cover(&host).unwrap_or_else(|| panic!("{host}"));
        assert!(pattern.matches(&host), "{host}");
        if pattern.is_wildcard() {
            // Never `*.<registrable domain>`: at least three labels stay fixed.
            assert!(pattern.domain().split('.').count() >= 3, "{pattern}");
        } else {
            assert_eq!(pattern.to_string(), host);
        }
    }
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

/// Host names near the table's shapes, and arbitrary ones.
fn host() -> impl Strategy<Value = String> {
    let suffix = prop_oneof![
        Just("mail.protection.outlook.com"),
        Just("mx.microsoft"),
        Just("aspmx.l.google.com"),
        Just("pphosted.com"),
        Just("amazonaws.com"),
        Just("example.net"),
    ];
    (prop::collection::vec(label(), 0..3), suffix, any::<bool>()).prop_map(|(ls, s, dot)| {
        let mut h = ls.join(".");
        if !h.is_empty() {
            h.push('.');
        }
        h.push_str(s);
        if dot {
            h.push('.');
        }
        h
    })
}

proptest! {
    #[test]
    fn every_valid_host_is_covered_and_wildcards_come_only_from_rows(
        hosts in prop::collection::vec(host(), 1..8)
    ) {
        let plan = plan_mx(&hosts);
        let patterns = plan.patterns();
        for h in &plan.hosts {
            match &h.coverage {
                Coverage::Invalid { .. } => {}
                Coverage::Unexplained { pattern } => {
                    prop_assert!(!pattern.is_wildcard());
                    prop_assert!(pattern.matches(&h.input));
                }
                Coverage::Provider { pattern, .. } => prop_assert!(pattern.matches(&h.input)),
            }
            if !matches!(h.coverage, Coverage::Invalid { .. }) {
                prop_assert!(patterns.iter().any(|p| p.matches(&h.input)), "{}", h.input);
            }
        }
        for p in patterns.iter().filter(|p| p.is_wildcard()) {
            prop_assert!(
                p.domain() == "mail.protection.outlook.com" || p.domain().ends_with(".mx.microsoft"),
                "{}", p
            );
        }
        if !patterns.is_empty() {
            let built = plan.build(Mode::Testing, 86_400).unwrap();
            prop_assert!(crate::diag::no_errors(&built.lint), "{:?}", built.lint);
        }
    }

    #[test]
    fn any_input_is_planned_without_panic(hosts in prop::collection::vec(".{0,40}", 0..6)) {
        let plan = plan_mx(&hosts);
        for p in plan.patterns() {
            prop_assert!(check_pattern(&p.to_string()).is_empty());
        }
    }
}

#[test]
fn a_huge_mx_set_is_planned_and_the_linter_flags_the_oversized_policy() {
    let hosts: Vec<String> = (0..10_000).map(|i| format!("mx{i}.example.net.")).collect();
    let started = std::time::Instant::now();
    let plan = plan_mx(&hosts);
    assert_eq!(plan.patterns().len(), 10_000);
    let built = plan.build(Mode::Testing, 86_400).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Over the 64 KiB senders read: the linter says so, as an error.
    assert!(built.text.len() > crate::policy::MAX_POLICY_SIZE);
    assert!(
        built
            .lint
            .iter()
            .any(|d| d.id == "policy.too-large" && d.is_error())
    );
}
