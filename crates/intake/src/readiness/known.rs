//! The reporter behaviours the readiness verdict knows (D53), and the fix for each result
//! type, in words.

use mtasts_store::ReporterTotal;
use serde::Serialize;

/// Who a row of [`KNOWN`] is about.
#[derive(Debug)]
pub(super) enum Who {
    /// This `organization-name`, compared without case.
    Organization(&'static str),
    /// sys4's tlsrpt-reporter (the report writer behind Postfix 3.10 and later): every report
    /// id of the organization has the shape `<day>T00:00:00Z_idx<n>_<domain>`.
    TlsrptReporter,
    /// Any reporter.
    Any,
}

/// When a row of [`KNOWN`] applies to a failure.
#[derive(Debug)]
pub(super) enum Condition {
    /// The MX host is covered by the domain's policy and the live check found STARTTLS and a
    /// valid certificate on every address of it.
    LiveContradicts,
    /// The failure names no sending IP.
    EmptySendingIp,
    /// The failure names no receiving MX.
    NoReceivingMx,
    /// The receiving MX is under this domain.
    MxUnder(&'static str),
}

/// What a row of [`KNOWN`] makes of the failures it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// A note, not a blocker: the failure is the reporter's own.
    Note,
    /// The failure is judged as any other; the row explains a gap in its data.
    Detail,
    /// Still a blocker, with the row's explanation and fix.
    Blocker,
}

/// A reporter behaviour known from public sources that changes what a failure means.
#[derive(Debug)]
pub struct KnownBehaviour {
    /// Stable id, named in findings (`known`).
    pub id: &'static str,
    /// Who, in words.
    pub reporter: &'static str,
    /// The result types it applies to (empty: any).
    pub result_types: &'static [&'static str],
    /// When, in words.
    pub condition: &'static str,
    /// What it makes of the failure.
    pub effect: Effect,
    /// Why, and what to do.
    pub explanation: &'static str,
    /// The public source.
    pub source: &'static str,
    pub(super) who: Who,
    pub(super) when: Condition,
}

/// The reporter behaviours the verdict knows (docs/decisions.md D53, crates/intake/README.md).
pub const KNOWN: &[KnownBehaviour] = &[
    KnownBehaviour {
        id: "postfix-sts-matching",
        reporter: "Postfix 3.10 and later (the versions that report) through sys4's \
                   tlsrpt-reporter, recognised by its report ids `<day>T00:00:00Z_idx<n>_<domain>`: \
                   the organization name is the operator's own",
        result_types: &["certificate-host-mismatch", "validation-failure"],
        condition: "the domain's policy covers the MX host and the live check found STARTTLS \
                    and a certificate valid for that host name on every address of it",
        effect: Effect::Note,
        explanation: "Postfix applies MTA-STS from what its policy plugin passes it. Before \
                      3.10.5 it matched the certificate against the policy's mx patterns, a `*.` \
                      pattern as a suffix at any depth, instead of the MX host name; with \
                      3.10.5, plugin versions that passed the patterns wrongly refused MX hosts \
                      the policy covers. A failure that a conformant check of the same host \
                      contradicts is this sender's own: it meets it at every MTA-STS domain and \
                      nothing on the receiving side fixes it. Under enforce its mail may be \
                      deferred until its operator upgrades Postfix or the plugin.",
        source: "https://github.com/Snawoot/postfix-mta-sts-resolver/issues/105, \
                 https://github.com/Snawoot/postfix-mta-sts-resolver/issues/116, \
                 https://github.com/Zuplu/postfix-tlspol/issues/94; the report ids: \
                 sys4/tlsrpt-reporter, tlsrpt_reporter/tlsrpt.py, TLSRPTReportd.report_id",
        who: Who::TlsrptReporter,
        when: Condition::LiveContradicts,
    },
    KnownBehaviour {
        id: "google-empty-sending-ip",
        reporter: "Google (`Google Inc.`)",
        result_types: &[],
        condition: "`sending-mta-ip` is empty",
        effect: Effect::Detail,
        explanation: "Google sends `\"sending-mta-ip\": \"\"` in failure details: the failure \
                      counts as any other, only the sending IPs are unknown.",
        source: "https://github.com/jklotzsche-msft/PS.MTA-STS/pull/33",
        who: Who::Organization("Google Inc."),
        when: Condition::EmptySendingIp,
    },
    KnownBehaviour {
        id: "microsoft-fetch-error-without-mx",
        reporter: "Microsoft (`Microsoft Corporation`)",
        result_types: &["sts-policy-fetch-error"],
        condition: "the failure names no receiving MX",
        effect: Effect::Detail,
        explanation: "Microsoft's sts-policy-fetch-error details name no MX and no IP: the \
                      failure counts as any other, and it is the policy host's, not an MX's.",
        source: "https://github.com/cry-inc/dmarc-report-viewer/issues/57",
        who: Who::Organization("Microsoft Corporation"),
        when: Condition::NoReceivingMx,
    },
    KnownBehaviour {
        id: "microsoft-dane-only-mx",
        reporter: "any (reported by Google)",
        result_types: &[
            "validation-failure",
            "certificate-host-mismatch",
            "certificate-not-trusted",
        ],
        condition: "the receiving MX is one of Microsoft 365's DANE inbound hosts, under \
                    `mx.microsoft` (`<tenant>.<x>-v1.mx.microsoft`)",
        effect: Effect::Blocker,
        explanation: "Not the reporter's fault, though often taken for one: `*.mx.microsoft` \
                      does not cover these hosts (a wildcard covers exactly one label, RFC 8461 \
                      §4.1), so a sender that applies MTA-STS without DANE, as Google does, \
                      would refuse them under enforce. Cover the host itself in the policy (its \
                      name, or `*.` one label above it) and check that the live check finds a \
                      certificate valid for that name on it; where it does not, senders without \
                      DANE cannot use this MX under enforce. Senders with DANE use DANE for it \
                      (RFC 8461 §2) and are not affected.",
        source: "https://github.com/jklotzsche-msft/PS.MTA-STS/pull/33",
        who: Who::Any,
        when: Condition::MxUnder("mx.microsoft"),
    },
];

/// The result types of DANE (RFC 8460 §4.3.2.1): enforcing MTA-STS does not change them.
pub(super) const DANE_TYPES: &[&str] = &["tlsa-invalid", "dnssec-invalid", "dane-required"];

/// The fix for a failure of `result_type` at `mx`, in words.
pub fn fix(result_type: &str, mx: Option<&str>, domain: &str) -> String {
    let host = mx.unwrap_or("the MX host");
    match result_type {
        "starttls-not-supported" => format!(
            "{host} did not offer STARTTLS to these senders: enable it on every address of the \
             host (a firewall or load balancer that strips STARTTLS does this too), or take the \
             host out of the MX records and the policy"
        ),
        "certificate-host-mismatch" => format!(
            "the certificate {host} presents does not name it: add {host} to the certificate's \
             subject alternative names (a wildcard covers one label); if the MX records name \
             that server otherwise, make the MX records, the policy's mx lines and the \
             certificate agree"
        ),
        "certificate-expired" => format!(
            "renew the certificate of {host}, make the renewal automatic, and check that every \
             address of the host serves the new one"
        ),
        "certificate-not-trusted" => format!(
            "{host} presents a certificate that does not chain to a public CA (self-signed, a \
             private CA, or an intermediate left out): install a publicly trusted certificate \
             with its full chain"
        ),
        "validation-failure" => format!(
            "senders could not validate {host} against the policy: most often no mx line covers \
             it (a `*.` pattern covers exactly one label), so add one for it; otherwise its \
             certificate failed for another reason: read the failure-reason-code in the reports \
             (mtasts report show)"
        ),
        "sts-policy-fetch-error" => format!(
            "these senders could not fetch https://mta-sts.{domain}/.well-known/mta-sts.txt: it \
             must answer 200 with the policy, without a redirect, on every address the name \
             resolves to and to any user agent; mail is not refused for this, but the policy \
             does not reach these senders"
        ),
        "sts-policy-invalid" => format!(
            "the policy these senders fetched from mta-sts.{domain} did not parse: check what is \
             served (mtasts check {domain})"
        ),
        "sts-webpki-invalid" => format!(
            "the certificate of mta-sts.{domain} failed validation: serve a publicly trusted \
             certificate for that name with its full chain"
        ),
        t if DANE_TYPES.contains(&t) => format!(
            "a DANE failure at {host}: fix its TLSA records or its zone's DNSSEC; enforcing \
             MTA-STS does not change it"
        ),
        other => format!(
            "an unregistered result type ({other}): read the reports (mtasts report show) for \
             what the reporter meant"
        ),
    }
}

/// Is every report id of `r` one sys4's tlsrpt-reporter writes (`<day>T00:00:00Z_idx<n>_...`)?
pub(super) fn tlsrpt_reporter(r: &ReporterTotal) -> bool {
    let shaped = |id: &str| {
        let Some((stamp, rest)) = id.split_once("_idx") else {
            return false;
        };
        let digits = rest.split_once('_').map_or("", |(n, _)| n);
        stamp.len() == 20
            && stamp.ends_with("T00:00:00Z")
            && stamp.get(..10).is_some_and(|d| {
                time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                    .is_ok()
            })
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
    };
    shaped(&r.report_ids.0) && shaped(&r.report_ids.1)
}
