//! The `_mta-sts` (RFC 8461 §3.1) and `_smtp._tls` (RFC 8460 §3) TXT records.
//!
//! Both functions take the whole RRset, each record's strings already joined (RFC 8461 §3.1,
//! RFC 8460 §3: with nothing between them; see [`join_txt_strings`]). They select the record a
//! sender uses (D13: records not starting with the version field are dropped; anything but exactly
//! one left means no record), parse it strictly, and report every deviation.
//!
//! In diagnostics, `line` is the record's 1-based position in the RRset and `column` a byte
//! offset inside it.
//!
//! ```
//! use mtasts_core::record::{parse_sts_rrset, parse_tlsrpt_rrset};
//! let sts = parse_sts_rrset(&["v=STSv1; id=20240101T000000"]);
//! assert_eq!(sts.record.unwrap().id, "20240101T000000");
//! let rpt = parse_tlsrpt_rrset(&["v=TLSRPTv1; rua=mailto:tlsrpt@example.net"]);
//! assert_eq!(rpt.record.unwrap().rua, ["mailto:tlsrpt@example.net"]);
//! ```

use crate::diag::{Diagnostic, Severity, Sink};
use crate::policy::is_ext_name;
use serde::Serialize;
use std::collections::HashMap;

/// Longest joined TXT record read, in bytes (the largest a DNS message can carry).
pub const MAX_RECORD_LEN: usize = 65_535;
/// Most records of one RRset examined; the rest are reported and ignored.
pub const MAX_RRSET: usize = 256;
/// Longest `id` (RFC 8461 §3.1).
pub const MAX_ID_LEN: usize = 32;

/// What a sender uses from `_mta-sts.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StsRecord {
    /// The policy instance id: 1 to 32 letters and digits, compared for equality only.
    pub id: String,
}

/// What a sender uses from `_smtp._tls.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsRptRecord {
    /// The usable `mailto:` and `https:` report URIs, in record order, without duplicates.
    pub rua: Vec<String>,
}

/// A record set as read by a sender and by a checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRecord<T> {
    /// The record a sender uses, or `None` (no usable record: for MTA-STS, no policy).
    pub record: Option<T>,
    /// Every finding.
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> ParsedRecord<T> {
    /// The RFC verdict on the RRset: no error-severity finding.
    pub fn is_valid(&self) -> bool {
        crate::diag::no_errors(&self.diagnostics)
    }
}

/// Joins the character-strings of one TXT record with nothing between them.
pub fn join_txt_strings<S: AsRef<[u8]>>(strings: &[S]) -> Vec<u8> {
    strings
        .iter()
        .flat_map(|s| s.as_ref().iter().copied())
        .collect()
}

/// Reads the `_mta-sts` RRset (RFC 8461 §3.1; D11–D13).
pub fn parse_sts_rrset<S: AsRef<[u8]>>(records: &[S]) -> ParsedRecord<StsRecord> {
    let mut sink = Sink::default();
    let record = select(&STS, records, &mut sink).and_then(|(n, rec)| {
        let fields = tokenize(&STS, n, rec, &mut sink)?;
        sts_fields(n, &fields, &mut sink)
    });
    ParsedRecord {
        record,
        diagnostics: sorted(sink),
    }
}

/// Reads the `_smtp._tls` RRset (RFC 8460 §3).
pub fn parse_tlsrpt_rrset<S: AsRef<[u8]>>(records: &[S]) -> ParsedRecord<TlsRptRecord> {
    let mut sink = Sink::default();
    let record = select(&TLSRPT, records, &mut sink).and_then(|(n, rec)| {
        let fields = tokenize(&TLSRPT, n, rec, &mut sink)?;
        tlsrpt_fields(n, &fields, &mut sink)
    });
    ParsedRecord {
        record,
        diagnostics: sorted(sink),
    }
}

/// Findings in record order; RRset-wide ones last.
fn sorted(sink: Sink) -> Vec<Diagnostic> {
    let mut d = sink.finish();
    d.sort_by_key(|d| d.line.unwrap_or(usize::MAX));
    d
}

/// What differs between the two record kinds.
struct Kind {
    /// The version field, e.g. `v=STSv1`.
    tag: &'static str,
    /// Diagnostic id prefix.
    prefix: &'static str,
    /// Where the record lives, for messages.
    owner: &'static str,
    /// The other kind's tag, to spot records published at the wrong name.
    other_tag: &'static str,
    example: &'static str,
}

const STS: Kind = Kind {
    tag: "v=STSv1",
    prefix: "sts",
    owner: "_mta-sts",
    other_tag: "v=TLSRPTv1",
    example: "v=STSv1; id=20240101T000000",
};
const TLSRPT: Kind = Kind {
    tag: "v=TLSRPTv1",
    prefix: "tlsrpt",
    owner: "_smtp._tls",
    other_tag: "v=STSv1",
    example: "v=TLSRPTv1; rua=mailto:tlsrpt@example.net",
};

/// Interns `"<prefix>.<rest>"` ids, which must be `&'static str`.
macro_rules! id {
    ($kind:expr, $rest:literal) => {
        if $kind.prefix == "sts" {
            concat!("sts.", $rest)
        } else {
            concat!("tlsrpt.", $rest)
        }
    };
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// D13: keeps the records that start with the version field and a delimiter; exactly one must be
/// left. Returns that record and its 1-based position.
///
/// Every record of the RRset is looked at, however many there are (a sender filters them all;
/// the RRset is bounded by the DNS message that carried it). A discarded record is never an
/// error by itself (RFC 8461 §3.1, RFC 8460 §3: it is dropped before counting): it gets a
/// warning or a note, and records discarded for the same reason share one finding.
fn select<'a, S: AsRef<[u8]>>(
    k: &Kind,
    records: &'a [S],
    sink: &mut Sink,
) -> Option<(usize, &'a [u8])> {
    let tag = k.tag.as_bytes();
    let mut candidates = Vec::new();
    let mut discarded = Discarded::default();
    if records.len() > MAX_RRSET {
        sink.push(Diagnostic::new(
            id!(k, "record.too-many"),
            Severity::Warning,
            format!(
                "{} TXT records at {}: an answer this large needs DNS over TCP, which some senders' resolvers do not use",
                records.len(),
                k.owner
            ),
            format!("publish only the one `{}` record there", k.tag),
        ));
    }
    for (i, rec) in records.iter().enumerate() {
        let n = i + 1;
        let rec = rec.as_ref();
        if rec.len() > MAX_RECORD_LEN {
            discarded.push(
                Diagnostic::new(
                    id!(k, "record.too-long"),
                    Severity::Warning,
                    format!(
                        "a record is {} bytes long; no DNS answer can carry that, so it is discarded",
                        rec.len()
                    ),
                    format!("publish `{}`", k.example),
                )
                .at_line(n),
            );
            continue;
        }
        if let Some(rest) = rec.strip_prefix(tag) {
            let ws = rest.iter().take_while(|b| is_wsp(**b)).count();
            match rest.get(ws) {
                Some(b';') if ws == 0 => candidates.push((n, rec)),
                Some(b';') => {
                    // Erratum 6285: the grammar allows it, the RFC's filter does not.
                    sink.push(
                        Diagnostic::new(
                            id!(k, "record.space-before-delimiter"),
                            Severity::Warning,
                            format!("white space between `{}` and `;`: senders that filter on the exact prefix `{};` ignore this record", k.tag, k.tag),
                            format!("write `{};` with no space before the semicolon", k.tag),
                        )
                        .at_line(n)
                        .at_column(tag.len() + 1),
                    );
                    candidates.push((n, rec));
                }
                _ => discarded.push(
                    Diagnostic::new(
                        id!(k, "record.bad-start"),
                        Severity::Warning,
                        format!(
                            "a record starts with `{}` but not with `{};`, so senders discard it",
                            k.tag, k.tag
                        ),
                        format!("publish `{}`", k.example),
                    )
                    .at_line(n)
                    .at_column(tag.len() + 1),
                ),
            }
            continue;
        }
        let (id, severity, message, fix) = misplaced(k, rec);
        discarded.push(
            Diagnostic::new(id, severity, message, fix)
                .at_line(n)
                .at_column(1),
        );
    }
    discarded.finish(sink);
    match candidates.as_slice() {
        [one] => Some(*one),
        [] => {
            let message = if records.is_empty() {
                format!("no TXT record at {}", k.owner)
            } else {
                format!("no record at {} starts with `{};`", k.owner, k.tag)
            };
            let consequence = if k.prefix == "sts" {
                "senders treat the domain as having no MTA-STS policy"
            } else {
                "senders send no TLS reports"
            };
            sink.push(Diagnostic::new(
                id!(k, "record.missing"),
                Severity::Error,
                format!("{message}: {consequence}"),
                format!(
                    "publish the TXT record `{}` at {}.<domain>",
                    k.example, k.owner
                ),
            ));
            None
        }
        many => {
            let mut at: Vec<String> = many.iter().take(10).map(|(n, _)| n.to_string()).collect();
            if many.len() > at.len() {
                at.push("…".to_owned());
            }
            sink.push(Diagnostic::new(
                id!(k, "record.multiple"),
                Severity::Error,
                format!(
                    "{} records start with `{};` (records {}): senders use none of them",
                    many.len(),
                    k.tag,
                    at.join(", ")
                ),
                format!("keep exactly one `{}` record at {}", k.tag, k.owner),
            ));
            None
        }
    }
}

/// The findings about discarded records, one per reason: the first record of each reason is
/// named, the others counted (a wildcard answering 300 SPF-like records gives one finding, not
/// 300).
#[derive(Default)]
struct Discarded {
    /// Per reason (diagnostic id), in first-seen order: the first record's finding and the
    /// positions of the others.
    groups: Vec<(Diagnostic, Vec<usize>)>,
}

impl Discarded {
    fn push(&mut self, d: Diagnostic) {
        match self.groups.iter_mut().find(|(first, _)| first.id == d.id) {
            Some((_, more)) => more.push(d.line.unwrap_or(0)),
            None => self.groups.push((d, Vec::new())),
        }
    }

    fn finish(self, sink: &mut Sink) {
        for (mut d, more) in self.groups {
            if !more.is_empty() {
                let mut shown: Vec<String> = more.iter().take(5).map(ToString::to_string).collect();
                if more.len() > shown.len() {
                    shown.push("…".to_owned());
                }
                d.message = format!(
                    "{} (and {} more record(s) like it: {})",
                    d.message,
                    more.len(),
                    shown.join(", ")
                );
            }
            sink.push(d);
        }
    }
}

/// Why a record that does not start with the version field is there.
fn misplaced(k: &Kind, rec: &[u8]) -> (&'static str, Severity, String, String) {
    let lower = rec.to_ascii_lowercase();
    let ltag = k.tag.to_ascii_lowercase();
    let trimmed = rec
        .iter()
        .position(|b| !is_wsp(*b))
        .map_or(&rec[..0], |p| &rec[p..]);
    if trimmed.starts_with(k.tag.as_bytes()) {
        (
            id!(k, "record.leading-space"),
            Severity::Warning,
            format!(
                "the record starts with white space before `{}`, so senders discard it",
                k.tag
            ),
            format!("publish `{}` with nothing before `v=`", k.example),
        )
    } else if lower.starts_with(ltag.as_bytes()) {
        (
            id!(k, "record.version-case"),
            Severity::Warning,
            format!(
                "the record starts with `{}` in the wrong case; `{}` is case-sensitive, so senders discard it",
                String::from_utf8_lossy(&rec[..k.tag.len()]),
                k.tag
            ),
            format!("write `{}` exactly", k.tag),
        )
    } else if lower.starts_with(b"v=spf1") {
        (
            id!(k, "record.spf"),
            Severity::Warning,
            format!(
                "an SPF record is answered at {} (a wildcard record, or a record at the wrong name)",
                k.owner
            ),
            format!(
                "publish `{}` at {}.<domain>, and make sure no wildcard TXT record answers there",
                k.example, k.owner
            ),
        )
    } else if rec.starts_with(k.other_tag.as_bytes()) {
        (
            id!(k, "record.wrong-kind"),
            Severity::Warning,
            format!("a `{}` record is published at {}", k.other_tag, k.owner),
            "move it to its own name: `_mta-sts.<domain>` for v=STSv1, `_smtp._tls.<domain>` for v=TLSRPTv1".to_owned(),
        )
    } else {
        let shown: String = String::from_utf8_lossy(rec).chars().take(40).collect();
        (
            id!(k, "record.unrelated"),
            Severity::Warning,
            format!(
                "an unrelated TXT record (`{shown}`) is published at {}; senders ignore it",
                k.owner
            ),
            "remove it unless something else needs it".to_owned(),
        )
    }
}

/// One `name=value` field with its column.
#[derive(Debug)]
struct Field<'a> {
    name: &'a str,
    /// For `rua`, the comma-separated URIs; otherwise one value.
    values: Vec<&'a str>,
    column: usize,
}

/// Parses the record after selection. Returns `None` after any syntax error (D11, D12: a
/// syntactically invalid record means no record).
fn tokenize<'a>(k: &Kind, n: usize, rec: &'a [u8], sink: &mut Sink) -> Option<Vec<Field<'a>>> {
    let err = |sink: &mut Sink, col: usize, message: String| {
        let consequence = if k.prefix == "sts" {
            "RFC-conformant senders ignore the record, and with it the whole MTA-STS policy"
        } else {
            "RFC-conformant senders ignore the record"
        };
        sink.push(
            Diagnostic::new(
                id!(k, "record.syntax"),
                Severity::Error,
                format!("{message}; {consequence}"),
                format!(
                    "publish `{}` (fields separated by `;`, no spaces around `=`)",
                    k.example
                ),
            )
            .at_line(n)
            .at_column(col + 1),
        );
    };
    if let Some(p) = rec.iter().position(|b| !b.is_ascii()) {
        err(sink, p, "the record holds non-ASCII bytes".to_owned());
        return None;
    }
    // ASCII was checked above, so this cannot fail.
    let s = std::str::from_utf8(rec).ok()?;
    let b = rec;
    let mut pos = k.tag.len();
    let mut fields = Vec::new();
    loop {
        let ws = pos;
        while pos < b.len() && is_wsp(b[pos]) {
            pos += 1;
        }
        if pos == b.len() {
            if pos > ws {
                err(
                    sink,
                    ws,
                    "white space at the end of the record without a `;`".to_owned(),
                );
                return None;
            }
            break;
        }
        if b[pos] != b';' {
            err(
                sink,
                pos,
                format!("expected `;` before `{}`", excerpt(&s[pos..])),
            );
            return None;
        }
        pos += 1;
        while pos < b.len() && is_wsp(b[pos]) {
            pos += 1;
        }
        if pos == b.len() {
            break; // one trailing delimiter is allowed
        }
        if b[pos] == b';' {
            err(sink, pos, "an empty field (`;;`)".to_owned());
            return None;
        }
        let start = pos;
        while pos < b.len() && b[pos] != b'=' && b[pos] != b';' && !is_wsp(b[pos]) {
            pos += 1;
        }
        let name = &s[start..pos];
        if b.get(pos) != Some(&b'=') {
            let after = b[pos..]
                .iter()
                .position(|c| !is_wsp(*c))
                .map(|o| b[pos + o]);
            let why = if after == Some(b'=') {
                format!("white space between `{name}` and `=`")
            } else {
                format!("the field `{name}` has no `=value`")
            };
            err(sink, start, why);
            return None;
        }
        if !is_ext_name(name) {
            err(sink, start, format!("`{name}` is not a valid field name"));
            return None;
        }
        pos += 1;
        // `rua` holds a comma-separated list of URIs (RFC 8460 §3), not one EXTVAL.
        let is_uri_list = k.prefix == "tlsrpt" && name == "rua";
        let mut values = Vec::new();
        loop {
            let vstart = pos;
            while pos < b.len()
                && b[pos] != b';'
                && !is_wsp(b[pos])
                && !(is_uri_list && b[pos] == b',')
            {
                pos += 1;
            }
            let value = &s[vstart..pos];
            if value.is_empty() {
                let why = if b.get(pos).is_some_and(|c| is_wsp(*c)) {
                    format!("white space after `{name}=`")
                } else {
                    format!("`{name}=` has an empty value")
                };
                err(sink, vstart, why);
                return None;
            }
            if let Some(bad) = value
                .bytes()
                // EXTVAL excludes `=`; a `rua` URI (RFC 3986) may hold it, e.g. in a query.
                .position(|c| (c == b'=' && !is_uri_list) || !(0x21..=0x7e).contains(&c))
            {
                err(
                    sink,
                    vstart + bad,
                    format!(
                        "the value of `{name}` holds `{}`, which is not allowed",
                        char::from(value.as_bytes()[bad]).escape_default()
                    ),
                );
                return None;
            }
            values.push(value);
            if !is_uri_list {
                break;
            }
            // rua: URI *( *WSP "," *WSP URI )
            let save = pos;
            while pos < b.len() && is_wsp(b[pos]) {
                pos += 1;
            }
            if b.get(pos) == Some(&b',') {
                pos += 1;
                while pos < b.len() && is_wsp(b[pos]) {
                    pos += 1;
                }
            } else {
                pos = save;
                break;
            }
        }
        fields.push(Field {
            name,
            values,
            column: start + 1,
        });
    }
    Some(fields)
}

fn excerpt(s: &str) -> String {
    s.chars().take(20).collect()
}

/// First occurrence of each field counts (D1); later ones and unknown ones are reported.
fn first_fields<'f, 'a>(
    k: &Kind,
    n: usize,
    fields: &'f [Field<'a>],
    known: &[&str],
    sink: &mut Sink,
) -> Vec<&'f Field<'a>> {
    let mut seen: Vec<&Field<'_>> = Vec::new();
    // Name -> column of its first occurrence; a map keeps hostile records linear.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for f in fields {
        if let Some(prev_column) = first.get(f.name) {
            sink.push(
                Diagnostic::new(
                    id!(k, "field.duplicate"),
                    Severity::Warning,
                    format!(
                        "`{}` appears again; only the first one (column {prev_column}) counts",
                        f.name
                    ),
                    format!("remove the second `{}=`", f.name),
                )
                .at_line(n)
                .at_column(f.column),
            );
            continue;
        }
        if !known.contains(&f.name) {
            let hint = known.iter().find(|k| k.eq_ignore_ascii_case(f.name));
            let (msg, fix) = match hint {
                Some(k) => (
                    format!(
                        "`{}` is not `{k}` (field names are case-sensitive); senders ignore it",
                        f.name
                    ),
                    format!("write `{k}=`"),
                ),
                None => (
                    format!("unknown field `{}`; senders ignore it", f.name),
                    format!("remove `{}=` unless an extension needs it", f.name),
                ),
            };
            sink.push(
                Diagnostic::new(id!(k, "field.unknown"), Severity::Warning, msg, fix)
                    .at_line(n)
                    .at_column(f.column),
            );
        }
        first.insert(f.name, f.column);
        seen.push(f);
    }
    seen
}

fn sts_fields(n: usize, fields: &[Field<'_>], sink: &mut Sink) -> Option<StsRecord> {
    let fields = first_fields(&STS, n, fields, &["id"], sink);
    let Some(f) = fields.iter().find(|f| f.name == "id") else {
        sink.push(
            Diagnostic::new(
                "sts.id.missing",
                Severity::Error,
                "the record has no `id`; RFC-conformant senders ignore it, and with it the whole MTA-STS policy",
                "publish `v=STSv1; id=<letters and digits>`, e.g. `v=STSv1; id=20240101T000000`",
            )
            .at_line(n),
        );
        return None;
    };
    let id = f.values[0];
    if id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let suggested: String = id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(MAX_ID_LEN)
            .collect();
        let why = if id.len() > MAX_ID_LEN {
            format!("is {} characters long (at most {MAX_ID_LEN})", id.len())
        } else {
            "holds characters other than letters and digits".to_owned()
        };
        let fix = if suggested.is_empty() {
            "use letters and digits only, e.g. a timestamp `20240101T000000`".to_owned()
        } else {
            format!("publish `v=STSv1; id={suggested}`")
        };
        sink.push(
            Diagnostic::new(
                "sts.id.invalid",
                Severity::Error,
                format!("id `{id}` {why}: RFC-conformant senders ignore the record, and with it the whole MTA-STS policy"),
                fix,
            )
            .at_line(n)
            .at_column(f.column + 3),
        );
        return None;
    }
    Some(StsRecord { id: id.to_owned() })
}

fn tlsrpt_fields(n: usize, fields: &[Field<'_>], sink: &mut Sink) -> Option<TlsRptRecord> {
    let fields = first_fields(&TLSRPT, n, fields, &["rua"], sink);
    let Some(f) = fields.iter().find(|f| f.name == "rua") else {
        sink.push(
            Diagnostic::new(
                "tlsrpt.rua.missing",
                Severity::Error,
                "the record has no `rua`, so senders have nowhere to send reports",
                "publish `v=TLSRPTv1; rua=mailto:tlsrpt@<a domain you read mail at>`",
            )
            .at_line(n),
        );
        return None;
    };
    let mut usable: Vec<String> = Vec::new();
    for uri in &f.values {
        let diag = |id, severity, msg: String, fix: String| {
            Diagnostic::new(id, severity, msg, fix)
                .at_line(n)
                .at_column(f.column)
        };
        match check_rua(uri) {
            Ok(()) if usable.iter().any(|u| u.eq_ignore_ascii_case(uri)) => sink.push(diag(
                "tlsrpt.rua.duplicate",
                Severity::Warning,
                format!("`{uri}` is listed twice"),
                "list each URI once".to_owned(),
            )),
            Ok(()) => usable.push((*uri).to_owned()),
            Err((id, severity, msg, fix)) => sink.push(diag(id, severity, msg, fix)),
        }
    }
    if usable.is_empty() {
        sink.push(
            Diagnostic::new(
                "tlsrpt.rua.none-usable",
                Severity::Error,
                "no usable `mailto:` or `https:` URI in `rua`, so senders send no reports",
                "publish `v=TLSRPTv1; rua=mailto:tlsrpt@<a domain you read mail at>`",
            )
            .at_line(n),
        );
        return None;
    }
    if usable.len() > 1 {
        sink.push(
            Diagnostic::new(
                "tlsrpt.rua.multiple",
                Severity::Warning,
                format!(
                    "{} report URIs: senders may deliver to only one of them (RFC 8460 §3)",
                    usable.len()
                ),
                "list a single URI unless every one of them is monitored",
            )
            .at_line(n),
        );
    }
    Some(TlsRptRecord { rua: usable })
}

type Problem = (&'static str, Severity, String, String);

/// Checks one `rua` URI (RFC 8460 §3): a scheme is required, only `mailto:` and `https:` are
/// usable, and `,` `!` `;` must be percent-encoded.
fn check_rua(uri: &str) -> Result<(), Problem> {
    let scheme_end = uri.find(':').filter(|&i| {
        i > 0
            && uri.as_bytes()[0].is_ascii_alphabetic()
            && uri[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    let Some(i) = scheme_end else {
        let fix = if uri.contains('@') {
            format!("write `rua=mailto:{uri}`")
        } else {
            "write `rua=mailto:<address>` or `rua=https://<host>/<path>`".to_owned()
        };
        return Err((
            "tlsrpt.rua.no-scheme",
            Severity::Error,
            format!("`{uri}` has no URI scheme"),
            fix,
        ));
    };
    let scheme = uri[..i].to_ascii_lowercase();
    let rest = &uri[i + 1..];
    if let Some(bang) = uri.find('!') {
        let suffix = &uri[bang + 1..];
        let size_like = !suffix.is_empty()
            && suffix
                .trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T'])
                .bytes()
                .all(|b| b.is_ascii_digit());
        let msg = if size_like {
            format!(
                "`{uri}` ends in a DMARC-style size limit `!{suffix}`, which TLS-RPT does not have"
            )
        } else {
            format!("`{uri}` holds `!`, which must be percent-encoded (%21) in TLS-RPT URIs")
        };
        return Err((
            "tlsrpt.rua.bang",
            Severity::Error,
            msg,
            format!("write `rua={}`", &uri[..bang]),
        ));
    }
    match scheme.as_str() {
        "mailto" => {
            let addr = rest.split('?').next().unwrap_or("");
            match addr.rsplit_once('@') {
                Some((local, domain))
                    if !local.is_empty() && domain.contains('.') && !domain.ends_with('.') =>
                {
                    Ok(())
                }
                _ => Err((
                    "tlsrpt.rua.bad-mailto",
                    Severity::Error,
                    format!("`{uri}` is not a valid mail address"),
                    "write `rua=mailto:local@domain.example`".to_owned(),
                )),
            }
        }
        "https" => {
            let host = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
            match host {
                Some(h) if !h.is_empty() => Ok(()),
                _ => Err((
                    "tlsrpt.rua.bad-https",
                    Severity::Error,
                    format!("`{uri}` has no host"),
                    "write `rua=https://reports.example/tlsrpt`".to_owned(),
                )),
            }
        }
        _ => Err((
            "tlsrpt.rua.scheme",
            Severity::Warning,
            format!(
                "`{uri}` uses the scheme `{scheme}:`; only `mailto:` and `https:` are defined, so senders skip it"
            ),
            "use a `mailto:` or `https:` URI".to_owned(),
        )),
    }
}
