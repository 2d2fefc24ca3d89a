//! The catalogue of finding ids: every id any part of mtasts reports, declared once.
//!
//! A finding id (`policy.mode.invalid`, `mx.starttls.missing`, `report.count-string`, ...) is a
//! value of this list: its id, the severities it can be reported with, whether it marks a step
//! that could not be tested, and a one-line summary. The parsers of this crate, `check` and the
//! report reader emit only ids listed here (checked in debug builds where findings are made),
//! reports read back from JSON resolve their ids here ([`entry`]), and
//! `docs/diagnostics.md` is tested against this list (`crates/core/tests/it/catalog.rs`): a new
//! id is added here and documented there.

use crate::Severity;

/// One finding id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The stable id; never changes meaning once released.
    pub id: &'static str,
    /// The severities it is reported with (most ids have one; some depend on the case, such as
    /// `mx.not-covered`: error in `enforce`, warning in `testing`).
    pub severities: &'static [Severity],
    /// A step that could not be tested (reported as a warning with `"untested": true`).
    pub untested: bool,
    /// What it means, in a line (the "meaning" column of docs/diagnostics.md).
    pub summary: &'static str,
}

impl Entry {
    const fn new(id: &'static str, severities: &'static [Severity], summary: &'static str) -> Self {
        Self {
            id,
            severities,
            untested: false,
            summary,
        }
    }
}

const fn untested(id: &'static str, summary: &'static str) -> Entry {
    Entry {
        id,
        severities: &[Severity::Warning],
        untested: true,
        summary,
    }
}

/// The entry of `id`, if it is one.
pub fn entry(id: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.id == id)
}

/// True when `id` is catalogued with `severity`: what every place that makes a finding asserts
/// in debug builds.
pub fn allows(id: &str, severity: Severity) -> bool {
    entry(id).is_some_and(|e| e.severities.contains(&severity))
}

/// Every finding id, grouped as in docs/diagnostics.md.
pub static CATALOGUE: &[Entry] = &[
    Entry::new(
        "policy.too-large",
        &[Severity::Error],
        "body over 64 KiB (65536 bytes); nothing else is read",
    ),
    Entry::new("policy.empty", &[Severity::Error], "empty body"),
    Entry::new(
        "policy.html",
        &[Severity::Error],
        "body is HTML (error page, login wall, bot challenge)",
    ),
    Entry::new("policy.bom", &[Severity::Error], "UTF-8 byte order mark"),
    Entry::new(
        "policy.bare-cr",
        &[Severity::Error],
        "a line ends in a bare CR",
    ),
    Entry::new("policy.encoding", &[Severity::Error], "a line is not UTF-8"),
    Entry::new(
        "policy.control-char",
        &[Severity::Error],
        "NUL or another control character",
    ),
    Entry::new(
        "policy.blank-line",
        &[Severity::Error],
        "blank line between fields or at the end",
    ),
    Entry::new(
        "policy.leading-whitespace",
        &[Severity::Error],
        "a field line starts with white space",
    ),
    Entry::new(
        "policy.space-before-colon",
        &[Severity::Error],
        "white space between key and `:`",
    ),
    Entry::new(
        "policy.syntax",
        &[Severity::Error],
        "a line that is not `key: value` (comment, front matter, prose)",
    ),
    Entry::new(
        "policy.key.invalid",
        &[Severity::Error],
        "field name outside the grammar",
    ),
    Entry::new(
        "policy.value.invalid",
        &[Severity::Error],
        "extension field with an empty value or a tab inside",
    ),
    Entry::new(
        "policy.key.case",
        &[Severity::Error],
        "`Mode:`, `MX:`: a known key in the wrong case",
    ),
    Entry::new(
        "policy.key.misspelled",
        &[Severity::Warning],
        "unknown key one edit away from a known one (`max-age`, `nmx`)",
    ),
    Entry::new(
        "policy.key.unknown",
        &[Severity::Warning],
        "unknown key (extension)",
    ),
    Entry::new(
        "policy.key.duplicate",
        &[Severity::Warning],
        "`version`, `mode` or `max_age` repeated",
    ),
    Entry::new("policy.version.missing", &[Severity::Error], "no `version`"),
    Entry::new(
        "policy.version.invalid",
        &[Severity::Error],
        "`version` is not exactly `STSv1`",
    ),
    Entry::new(
        "policy.version.not-first",
        &[Severity::Info],
        "`version` is not the first line",
    ),
    Entry::new("policy.mode.missing", &[Severity::Error], "no `mode`"),
    Entry::new(
        "policy.mode.invalid",
        &[Severity::Error],
        "mode not `enforce`/`testing`/`none` (case, `enforcing`, `report`, placeholders)",
    ),
    Entry::new(
        "policy.mode.testing",
        &[Severity::Warning],
        "mode `testing`: not enforced",
    ),
    Entry::new("policy.mode.none", &[Severity::Info], "mode `none`"),
    Entry::new("policy.max-age.missing", &[Severity::Error], "no `max_age`"),
    Entry::new(
        "policy.max-age.invalid",
        &[Severity::Error],
        "sign, separators, exponent, unit, comment, over 10 digits",
    ),
    Entry::new(
        "policy.max-age.too-large",
        &[Severity::Error],
        "over 31557600",
    ),
    Entry::new(
        "policy.max-age.short",
        &[Severity::Warning],
        "under one day (not for mode `none`)",
    ),
    Entry::new(
        "policy.max-age.below-week",
        &[Severity::Info],
        "`enforce` with under one week",
    ),
    Entry::new(
        "policy.mx.missing",
        &[Severity::Error],
        "`enforce`/`testing` without any `mx` line",
    ),
    Entry::new(
        "policy.mx.none-usable",
        &[Severity::Error],
        "`mx` lines exist but none is usable",
    ),
    Entry::new(
        "policy.mx.trailing-dot",
        &[Severity::Error, Severity::Warning],
        "pattern ends with `.`",
    ),
    Entry::new(
        "policy.mx.u-label",
        &[Severity::Error, Severity::Warning],
        "pattern has non-ASCII (U-label)",
    ),
    Entry::new(
        "policy.mx.ip-literal",
        &[Severity::Error],
        "pattern is an IP address or address literal",
    ),
    Entry::new(
        "policy.mx.comma-list",
        &[Severity::Error],
        "several names in one `mx` line",
    ),
    Entry::new(
        "policy.mx.whitespace",
        &[Severity::Error],
        "white space inside the value (trailing comment)",
    ),
    Entry::new(
        "policy.mx.invisible-character",
        &[Severity::Error],
        "pattern holds an invisible character (zero-width, soft hyphen, direction mark, BOM)",
    ),
    Entry::new(
        "policy.mx.look-alike",
        &[Severity::Error],
        "a label that reads as Latin but holds a look-alike from another script or a fullwidth form",
    ),
    Entry::new(
        "policy.mx.bad-punycode",
        &[Severity::Error],
        "a label starting with `xn--` that is not a valid A-label",
    ),
    Entry::new(
        "policy.mx.underscore",
        &[Severity::Error],
        "`_` in the name",
    ),
    Entry::new(
        "policy.mx.bad-wildcard",
        &[Severity::Error],
        "`*` other than as the whole left-most label",
    ),
    Entry::new(
        "policy.mx.bad-label",
        &[Severity::Error],
        "empty label, leading/trailing `-`, other characters",
    ),
    Entry::new(
        "policy.mx.empty",
        &[Severity::Error],
        "empty pattern or only dots",
    ),
    Entry::new(
        "policy.mx.label-too-long",
        &[Severity::Error],
        "label over 63 characters",
    ),
    Entry::new(
        "policy.mx.name-too-long",
        &[Severity::Error],
        "name over 253 characters",
    ),
    Entry::new(
        "policy.mx.duplicate",
        &[Severity::Warning],
        "the same pattern twice",
    ),
    Entry::new(
        "policy.mx.placeholder",
        &[Severity::Warning],
        "`example.com`, `.tld`, `your-domain` and similar template names",
    ),
    Entry::new(
        "policy.mx.single-label",
        &[Severity::Warning],
        "single-label name (`localhost`)",
    ),
    Entry::new(
        "policy.mx.wildcard-too-broad",
        &[Severity::Warning],
        "`*.<tld>`",
    ),
    Entry::new(
        "sts.record.missing",
        &[Severity::Error],
        "no record starts with `v=STSv1;` (or none at all)",
    ),
    Entry::new(
        "sts.record.multiple",
        &[Severity::Error],
        "more than one `v=STSv1;` record",
    ),
    Entry::new(
        "sts.record.unrelated",
        &[Severity::Warning],
        "unrelated TXT record at `_mta-sts`",
    ),
    Entry::new(
        "sts.record.spf",
        &[Severity::Warning],
        "an SPF record answers at `_mta-sts` (wildcard or misplaced)",
    ),
    Entry::new(
        "sts.record.wrong-kind",
        &[Severity::Warning],
        "a `v=TLSRPTv1` record at `_mta-sts`",
    ),
    Entry::new(
        "sts.record.space-before-delimiter",
        &[Severity::Warning],
        "`v=STSv1 ;`: grammatical, but strict prefix filters drop it",
    ),
    Entry::new(
        "sts.record.bad-start",
        &[Severity::Warning],
        "starts with `v=STSv1` but not `v=STSv1;` (`v=STSv10`, no `;`)",
    ),
    Entry::new(
        "sts.record.leading-space",
        &[Severity::Warning],
        "white space before `v=`",
    ),
    Entry::new(
        "sts.record.version-case",
        &[Severity::Warning],
        "`v=stsv1` or another case",
    ),
    Entry::new(
        "sts.record.syntax",
        &[Severity::Error],
        "grammar violation: non-ASCII, `;;`, spaces around `=`, empty value, trailing white space",
    ),
    Entry::new(
        "sts.record.too-long",
        &[Severity::Warning],
        "record over 65535 bytes",
    ),
    Entry::new(
        "sts.record.too-many",
        &[Severity::Warning],
        "over 256 records; the rest are not examined",
    ),
    Entry::new("sts.id.missing", &[Severity::Error], "no `id`"),
    Entry::new(
        "sts.id.invalid",
        &[Severity::Error],
        "`id` not 1–32 letters and digits",
    ),
    Entry::new(
        "sts.field.duplicate",
        &[Severity::Warning],
        "a field repeated",
    ),
    Entry::new(
        "sts.field.unknown",
        &[Severity::Warning],
        "unknown field (or `ID` in the wrong case)",
    ),
    Entry::new(
        "tlsrpt.record.missing",
        &[Severity::Error],
        "no record starts with `v=TLSRPTv1;`",
    ),
    Entry::new(
        "tlsrpt.record.multiple",
        &[Severity::Error],
        "more than one `v=TLSRPTv1;` record",
    ),
    Entry::new(
        "tlsrpt.record.unrelated",
        &[Severity::Warning],
        "unrelated TXT record at `_mta-sts`",
    ),
    Entry::new(
        "tlsrpt.record.spf",
        &[Severity::Warning],
        "an SPF record answers at `_mta-sts` (wildcard or misplaced)",
    ),
    Entry::new(
        "tlsrpt.record.wrong-kind",
        &[Severity::Warning],
        "a `v=TLSRPTv1` record at `_mta-sts`",
    ),
    Entry::new(
        "tlsrpt.record.space-before-delimiter",
        &[Severity::Warning],
        "`v=STSv1 ;`: grammatical, but strict prefix filters drop it",
    ),
    Entry::new(
        "tlsrpt.record.bad-start",
        &[Severity::Warning],
        "starts with `v=STSv1` but not `v=STSv1;` (`v=STSv10`, no `;`)",
    ),
    Entry::new(
        "tlsrpt.record.leading-space",
        &[Severity::Warning],
        "white space before `v=`",
    ),
    Entry::new(
        "tlsrpt.record.version-case",
        &[Severity::Warning],
        "`v=stsv1` or another case",
    ),
    Entry::new(
        "tlsrpt.record.syntax",
        &[Severity::Error],
        "grammar violation: non-ASCII, `;;`, spaces around `=`, empty value, trailing white space",
    ),
    Entry::new(
        "tlsrpt.record.too-long",
        &[Severity::Warning],
        "record over 65535 bytes",
    ),
    Entry::new(
        "tlsrpt.record.too-many",
        &[Severity::Warning],
        "over 256 records; the rest are not examined",
    ),
    Entry::new(
        "tlsrpt.field.duplicate",
        &[Severity::Warning],
        "a field repeated (`rua` twice)",
    ),
    Entry::new(
        "tlsrpt.field.unknown",
        &[Severity::Warning],
        "unknown field",
    ),
    Entry::new("tlsrpt.rua.missing", &[Severity::Error], "no `rua`"),
    Entry::new(
        "tlsrpt.rua.none-usable",
        &[Severity::Error],
        "no usable `mailto:`/`https:` URI",
    ),
    Entry::new(
        "tlsrpt.rua.no-scheme",
        &[Severity::Error],
        "URI without scheme (`rua=a@b.example`)",
    ),
    Entry::new(
        "tlsrpt.rua.bang",
        &[Severity::Error],
        "literal `!` (DMARC-style `!10m` size suffix)",
    ),
    Entry::new(
        "tlsrpt.rua.scheme",
        &[Severity::Warning],
        "scheme other than `mailto`/`https`",
    ),
    Entry::new(
        "tlsrpt.rua.bad-mailto",
        &[Severity::Error],
        "`mailto:` without a valid address",
    ),
    Entry::new(
        "tlsrpt.rua.bad-https",
        &[Severity::Error],
        "`https:` without a host",
    ),
    Entry::new(
        "tlsrpt.rua.multiple",
        &[Severity::Warning],
        "several usable URIs: senders may use only one",
    ),
    Entry::new(
        "tlsrpt.rua.duplicate",
        &[Severity::Warning],
        "the same URI twice",
    ),
    Entry::new(
        "report.mx-host-string",
        &[Severity::Warning],
        "`mx-host` a string (erratum 6241) → one-element array",
    ),
    Entry::new(
        "report.mx-host-prefix",
        &[Severity::Warning],
        "`mx-host` entry `mx: host` → `host`",
    ),
    Entry::new(
        "report.mx-host-pattern-key",
        &[Severity::Warning],
        "key `mx-host-pattern` → `mx-host`",
    ),
    Entry::new(
        "report.additional-info-uri-key",
        &[Severity::Warning],
        "key `additional-info-uri` → `additional-information`",
    ),
    Entry::new(
        "report.datetime-no-zone",
        &[Severity::Warning],
        "date-time without zone → read as UTC",
    ),
    Entry::new(
        "report.datetime-space",
        &[Severity::Info],
        "space instead of `T`",
    ),
    Entry::new(
        "report.datetime-lowercase",
        &[Severity::Info],
        "lowercase `t` / `z`",
    ),
    Entry::new(
        "report.datetime-offset",
        &[Severity::Info],
        "offset other than `Z` → converted to UTC",
    ),
    Entry::new(
        "report.datetime-nonstandard",
        &[Severity::Warning],
        "offset `+hhmm`/`+hh`, white space around",
    ),
    Entry::new(
        "report.datetime-leap-second",
        &[Severity::Info],
        "`:60` → `:59`",
    ),
    Entry::new(
        "report.date-range-reversed",
        &[Severity::Warning],
        "end before start (kept as sent)",
    ),
    Entry::new(
        "report.organization-name-missing",
        &[Severity::Warning],
        "missing or null → empty string",
    ),
    Entry::new(
        "report.contact-info-missing",
        &[Severity::Warning],
        "missing or null → `None`",
    ),
    Entry::new(
        "report.policy-string-missing",
        &[Severity::Info, Severity::Warning],
        "→ empty array",
    ),
    Entry::new(
        "report.policy-string-string",
        &[Severity::Warning],
        "a string → one-element array",
    ),
    Entry::new(
        "report.tlsa-policy-string-json",
        &[Severity::Warning],
        "`tlsa` `policy-string` is one string holding a JSON array (Microsoft) → unpacked, one element per record; the original is quoted in the message",
    ),
    Entry::new(
        "report.policy-domain-missing",
        &[Severity::Info, Severity::Warning],
        "missing, null or empty → `None`",
    ),
    Entry::new(
        "report.policy-type-unknown",
        &[Severity::Warning],
        "unregistered `policy-type` → `PolicyType::Other`, verbatim",
    ),
    Entry::new(
        "report.result-type-unknown",
        &[Severity::Warning],
        "unregistered `result-type` → `ResultType::Other`, verbatim",
    ),
    Entry::new(
        "report.utf16",
        &[Severity::Warning],
        "the JSON is UTF-16 (either byte order, with or without BOM) → converted to UTF-8",
    ),
    Entry::new(
        "report.latin1",
        &[Severity::Warning],
        "bytes that are not UTF-8 → read as Latin-1 characters",
    ),
    Entry::new(
        "report.lone-surrogate",
        &[Severity::Warning],
        "a `\\u` escape naming a lone UTF-16 surrogate → U+FFFD",
    ),
    Entry::new(
        "report.unknown-member-dropped",
        &[Severity::Warning],
        "an unknown member over its memory cap → read past, not kept",
    ),
    Entry::new(
        "report.raw-json-truncated",
        &[Severity::Info],
        "JSON text longer than `MAX_RAW_JSON` → only that prefix kept as the raw copy",
    ),
    Entry::new(
        "report.mail-truncated",
        &[Severity::Warning],
        "the mail goes past its part, header or depth limit → the reports found before kept",
    ),
    Entry::new(
        "report.base64-unpadded",
        &[Severity::Warning],
        "a base64 part without its `=` padding → decoded anyway",
    ),
    Entry::new(
        "report.keyword-case",
        &[Severity::Warning],
        "`STS`, ` sts ` → registered value",
    ),
    Entry::new(
        "report.failure-details-missing",
        &[Severity::Info],
        "missing → empty array",
    ),
    Entry::new(
        "report.failure-details-object",
        &[Severity::Warning],
        "a single object → one-element array",
    ),
    Entry::new(
        "report.failure-detail-incomplete",
        &[Severity::Info],
        "no sending IP / receiving host / receiving IP (not flagged for `sts-policy-fetch-error` and `sts-policy-invalid`)",
    ),
    Entry::new(
        "report.ip-empty",
        &[Severity::Warning],
        "`\"\"` (Google) → removed",
    ),
    Entry::new(
        "report.ip-noncanonical",
        &[Severity::Warning],
        "`[::1]`, white space, IPv4 leading zeros → parsed",
    ),
    Entry::new(
        "report.ip-invalid",
        &[Severity::Warning],
        "not an IP → removed, value quoted in the message",
    ),
    Entry::new(
        "report.count-missing",
        &[Severity::Warning],
        "missing count → 0 (e.g. mail-auth's rpt03.json)",
    ),
    Entry::new("report.count-string", &[Severity::Warning], "`\"12\"` → 12"),
    Entry::new(
        "report.count-not-integer",
        &[Severity::Warning],
        "`12.0` → 12",
    ),
    Entry::new(
        "report.count-not-interoperable",
        &[Severity::Info],
        "count above 2^53 (I-JSON)",
    ),
    Entry::new(
        "report.failure-count-mismatch",
        &[Severity::Info],
        "total failures ≠ sum of details (allowed by the RFC)",
    ),
    Entry::new(
        "report.duplicate-key",
        &[Severity::Warning],
        "duplicate member (I-JSON forbids) → last one wins",
    ),
    Entry::new(
        "report.bom",
        &[Severity::Info],
        "UTF-8 BOM before the JSON → ignored",
    ),
    Entry::new(
        "report.too-many-warnings",
        &[Severity::Info],
        "more than [`MAX_WARNINGS`] repairs; the rest were counted",
    ),
    Entry::new(
        "report.mail-part-unreadable",
        &[Severity::Warning],
        "another part of the same mail looked like gzip or JSON but is not a readable report → the readable reports kept, each carrying this warning with the other part's error",
    ),
    untested(
        "check.timeout",
        "the whole check of a domain exceeded its time budget (bulk scans)",
    ),
    Entry::new(
        "domain.invalid",
        &[Severity::Error],
        "the argument is not a domain name (empty, single label, IP address)",
    ),
    Entry::new(
        "dns.cname.loop",
        &[Severity::Error],
        "a name the check looks up is a CNAME loop",
    ),
    Entry::new(
        "dns.cname.too-long",
        &[Severity::Error],
        "a CNAME chain longer than senders' resolvers follow (`MAX_CNAME_CHAIN`)",
    ),
    Entry::new(
        "domain.nxdomain",
        &[Severity::Error],
        "the domain does not exist",
    ),
    untested(
        "sts.record.untested",
        "the `_mta-sts` lookup failed (SERVFAIL, timeout)",
    ),
    Entry::new(
        "sts.record.cname",
        &[Severity::Info],
        "`_mta-sts` is a CNAME: whoever runs the target controls the policy id",
    ),
    Entry::new(
        "sts.record.at-apex",
        &[Severity::Error],
        "the MTA-STS record is at the domain instead of `_mta-sts`",
    ),
    untested("tlsrpt.record.untested", "the `_smtp._tls` lookup failed"),
    Entry::new(
        "tlsrpt.rua.in-domain",
        &[Severity::Warning],
        "reports go to a mailbox inside the protected domain",
    ),
    Entry::new(
        "tlsrpt.record.old-name",
        &[Severity::Warning],
        "a TLS-RPT record at the draft-era name `_smtp-tlsrpt`",
    ),
    untested(
        "tlsrpt.rua.endpoint.untested",
        "resolving the host of an `https:` report URI failed",
    ),
    Entry::new(
        "tlsrpt.rua.endpoint.no-address",
        &[Severity::Warning],
        "the host of an `https:` report URI has no A or AAAA",
    ),
    untested(
        "tlsrpt.rua.endpoint.unreachable",
        "no connection to an `https:` report endpoint, or no answer in time",
    ),
    Entry::new(
        "tlsrpt.rua.endpoint.tls",
        &[Severity::Warning],
        "the TLS handshake with the endpoint failed (including TLS 1.0/1.1 only)",
    ),
    Entry::new(
        "tlsrpt.rua.endpoint.certificate",
        &[Severity::Warning],
        "the endpoint's certificate fails validation against the URI host (expired, untrusted, wrong name)",
    ),
    Entry::new(
        "tlsrpt.rua.endpoint.http",
        &[Severity::Warning],
        "the endpoint did not answer HTTP properly",
    ),
    Entry::new(
        "tlsrpt.rua.endpoint.status",
        &[Severity::Warning],
        "the endpoint answers `OPTIONS` with 3xx, 401/403/407, 404/410 or 5xx: a sender's POST would likely fail too (2xx, 400, 405, 411, 413, 415 and 422 are fine: the path exists and wants a real report)",
    ),
    Entry::new(
        "policy.host.missing",
        &[Severity::Error],
        "`mta-sts.<domain>` does not resolve (while the TXT record announces MTA-STS)",
    ),
    untested(
        "policy.host.untested",
        "resolving `mta-sts.<domain>` failed",
    ),
    Entry::new(
        "policy.host.no-ipv6",
        &[Severity::Warning],
        "the policy host has no AAAA",
    ),
    untested(
        "policy.fetch.unreachable",
        "no connection to the policy host, or no answer in time",
    ),
    Entry::new(
        "policy.fetch.failed",
        &[Severity::Error],
        "the fetch failed otherwise (TLS handshake, malformed HTTP)",
    ),
    Entry::new(
        "policy.tls.old-protocol",
        &[Severity::Error],
        "the policy host offers only TLS 1.0/1.1 (a `protocol_version` alert, or a ServerHello choosing an older version)",
    ),
    Entry::new(
        "policy.fetch.status",
        &[Severity::Error],
        "HTTP status other than 200",
    ),
    Entry::new(
        "policy.fetch.bot-wall",
        &[Severity::Error],
        "a bot-protection challenge answers instead of the policy (403/429/503 with `cf-mitigated: challenge`, a challenge page such as \"Just a moment...\" / \"Attention Required\" / `cf-chl`, or `Server: cloudflare` with HTML); replaces `policy.fetch.status`; with status 200 it comes on top of `policy.html`",
    ),
    Entry::new(
        "policy.fetch.redirect",
        &[Severity::Error],
        "a 3xx redirect (never followed)",
    ),
    Entry::new(
        "policy.fetch.content-type",
        &[Severity::Warning],
        "Content-Type missing or not `text/plain`",
    ),
    Entry::new(
        "policy.fetch.large",
        &[Severity::Warning],
        "body over 4 KiB",
    ),
    Entry::new(
        "policy.fetch.too-large",
        &[Severity::Error],
        "body over 64 KiB",
    ),
    Entry::new(
        "policy.certificate.expired",
        &[Severity::Error],
        "the policy host's certificate fails validation (`sts-webpki-invalid`)",
    ),
    Entry::new(
        "policy.certificate.not-yet-valid",
        &[Severity::Error],
        "the policy host's certificate fails validation (`sts-webpki-invalid`)",
    ),
    Entry::new(
        "policy.certificate.host-mismatch",
        &[Severity::Error],
        "the policy host's certificate fails validation (`sts-webpki-invalid`)",
    ),
    Entry::new(
        "policy.certificate.not-trusted",
        &[Severity::Error],
        "the policy host's certificate fails validation (`sts-webpki-invalid`)",
    ),
    Entry::new(
        "policy.certificate.invalid",
        &[Severity::Error],
        "the policy host's certificate fails validation (`sts-webpki-invalid`)",
    ),
    Entry::new(
        "policy.certificate.expires-soon",
        &[Severity::Warning, Severity::Error],
        "expires within 21 days (warning) or 7 days (error)",
    ),
    Entry::new(
        "policy.without-record",
        &[Severity::Warning],
        "a policy is served but no valid TXT record points senders to it",
    ),
    Entry::new(
        "policy.mx.unused",
        &[Severity::Warning],
        "a pattern matches none of the current MX hosts",
    ),
    untested("mx.untested", "the MX lookup failed"),
    Entry::new(
        "mx.implicit",
        &[Severity::Info],
        "no MX record: mail goes to the domain itself",
    ),
    Entry::new(
        "mx.null",
        &[Severity::Info],
        "null MX (RFC 7505): the domain accepts no mail",
    ),
    Entry::new(
        "mx.not-covered",
        &[Severity::Error, Severity::Warning],
        "an MX host no pattern covers (error in `enforce`, warning in `testing`; names the one-label wildcard trap)",
    ),
    untested("mx.address.untested", "resolving an MX host failed"),
    Entry::new(
        "mx.no-address",
        &[Severity::Error],
        "an MX host has no A or AAAA",
    ),
    untested(
        "mx.unreachable",
        "no connection to an MX address, or no banner in time",
    ),
    untested(
        "mx.smtp.transient",
        "an MX address turned the check away for now or was too slow (4xx/554 replies, slow EHLO or handshake)",
    ),
    Entry::new(
        "mx.starttls.missing",
        &[Severity::Error],
        "EHLO does not offer STARTTLS",
    ),
    Entry::new(
        "mx.starttls.refused",
        &[Severity::Error],
        "STARTTLS offered but refused",
    ),
    Entry::new(
        "mx.tls.failed",
        &[Severity::Error],
        "the TLS handshake failed",
    ),
    Entry::new(
        "mx.tls.old-protocol",
        &[Severity::Error],
        "the MX offers only TLS 1.0/1.1 (as `policy.tls.old-protocol`)",
    ),
    Entry::new(
        "mx.smtp.failed",
        &[Severity::Error],
        "the SMTP dialogue failed (refusal, malformed reply, STARTTLS injection)",
    ),
    Entry::new(
        "mx.certificate.expired",
        &[Severity::Error],
        "the MX certificate fails validation",
    ),
    Entry::new(
        "mx.certificate.not-yet-valid",
        &[Severity::Error],
        "the MX certificate fails validation",
    ),
    Entry::new(
        "mx.certificate.host-mismatch",
        &[Severity::Error],
        "the MX certificate fails validation",
    ),
    Entry::new(
        "mx.certificate.not-trusted",
        &[Severity::Error],
        "the MX certificate fails validation",
    ),
    Entry::new(
        "mx.certificate.invalid",
        &[Severity::Error],
        "the MX certificate fails validation",
    ),
    Entry::new(
        "mx.certificate.expires-soon",
        &[Severity::Warning, Severity::Error],
        "expires within 21 days (warning) or 7 days (error)",
    ),
    Entry::new(
        "dane.tlsa.insecure",
        &[Severity::Warning, Severity::Info],
        "TLSA records that DNSSEC does not protect (unsigned zone: warning), signed TLSA records of a host whose address records are not secure (e.g. a CNAME into an unsigned zone, RFC 7672 §2.2.2: warning), or signed TLSA records behind an MX RRset that is not secure (RFC 7672 §2.2.1; a note: e.g. a DANE provider's MX for an unsigned customer domain): senders ignore them",
    ),
    Entry::new(
        "dane.dnssec.bogus",
        &[Severity::Error],
        "DNSSEC validation of the TLSA answer, or of the host's address records when its TLSA records are secure, fails (bad or expired signature, DS that matches no DNSKEY, no trust anchor): DANE senders do not deliver to the host",
    ),
    Entry::new(
        "dane.tlsa.mismatch",
        &[Severity::Error],
        "a secure, usable TLSA RRset, but the chain served at an address matches none of its usable records: DANE senders do not deliver",
    ),
    Entry::new(
        "dane.tlsa.no-rollover",
        &[Severity::Warning],
        "exactly one usable DANE-EE (3) record and no DANE-TA (2) record: the next key change breaks DANE delivery unless the new record is published first",
    ),
    Entry::new(
        "dane.tlsa.unusable",
        &[Severity::Warning],
        "records with usage 0 or 1 (PKIX-TA/EE), unknown parameters or a digest of the wrong length (unusable for SMTP, RFC 7672 §3.1.3), or matching type 0 (full data, discouraged)",
    ),
    untested(
        "dane.untested",
        "the validated MX lookup, a TLSA lookup, or the validated address lookups of a host with secure TLSA records failed (SERVFAIL, timeout): not the same as \"no TLSA\"",
    ),
    Entry::new(
        "input.too-many-findings",
        &[Severity::Info],
        "more than 200 findings; the rest are counted, not listed (the first error is always kept)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut ids: Vec<&str> = CATALOGUE.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "an id is declared twice");
        for e in CATALOGUE {
            assert!(
                e.id.contains('.')
                    && e.id.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'.'
                        || b == b'-'),
                "{}",
                e.id
            );
            assert!(
                !e.severities.is_empty() && !e.summary.is_empty(),
                "{}",
                e.id
            );
        }
    }
}
