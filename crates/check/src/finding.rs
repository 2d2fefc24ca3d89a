//! The order of findings, and the verdict that follows from them.

use crate::model::{Finding, Verdict};
use mtasts_core::Severity;

/// A lookup that gave no answer: untested (`id`, with `message` and `fix`), unless the
/// zone's own data is at fault (a CNAME loop, a chain longer than senders' resolvers
/// follow), which is an error of its own (`dns.cname.loop`, `dns.cname.too-long`).
pub(crate) fn dns_failure(
    id: &'static str,
    message: impl Into<String>,
    fix: impl Into<String>,
    e: &mtasts_net::dns::DnsError,
) -> Finding {
    use mtasts_net::dns::DnsError;
    match e {
        DnsError::CnameLoop { name, chain, .. } => Finding::new(
            "dns.cname.loop",
            Severity::Error,
            format!(
                "{name} is a CNAME loop: no resolver can answer for it, so senders get no record"
            ),
            Some(chain.clone()),
            format!("point the CNAME at {name} at a name that holds the records"),
        ),
        DnsError::CnameChainTooLong { name, links, .. } => Finding::new(
            "dns.cname.too-long",
            Severity::Error,
            format!(
                "{name} is a chain of {links} or more CNAME records: senders' resolvers give up after about {} links, so some senders get no answer",
                mtasts_net::dns::MAX_CNAME_CHAIN
            ),
            None,
            format!("point {name} directly at the name that holds the records (one CNAME at most)"),
        ),
        _ => Finding::untested(id, message, fix),
    }
}

/// Findings with the same id, severity and untested flag shown one by one; the rest are
/// grouped into one finding that counts them (1,000 MX hosts give a few lines, not 1,871).
pub(crate) const GROUP_AFTER: usize = 3;

/// The rest of a group listed in a grouped finding's `observed`, at most.
const GROUP_LISTED: usize = 10;

/// Groups similar findings: the first [`GROUP_AFTER`] of each (id, severity, untested) are
/// kept as they are; the others become one finding of the same id and severity that counts
/// them and lists the first few.
pub(crate) fn group(findings: Vec<Finding>) -> Vec<Finding> {
    type Key = (&'static str, Severity, bool);
    let key = |f: &Finding| -> Key { (f.id, f.severity, f.untested) };
    let mut seen: std::collections::HashMap<Key, usize> = std::collections::HashMap::new();
    let mut kept = Vec::with_capacity(findings.len().min(64));
    let mut rest: Vec<(Key, Vec<Finding>)> = Vec::new();
    for f in findings {
        let k = key(&f);
        let n = seen.entry(k).or_insert(0);
        *n += 1;
        if *n <= GROUP_AFTER {
            kept.push(f);
        } else if let Some((_, more)) = rest.iter_mut().find(|(rk, _)| *rk == k) {
            more.push(f);
        } else {
            rest.push((k, vec![f]));
        }
    }
    for ((id, severity, untested), more) in rest {
        let mut listed: Vec<String> = more
            .iter()
            .take(GROUP_LISTED)
            .map(|f| f.message.clone())
            .collect();
        if more.len() > GROUP_LISTED {
            listed.push(format!("… ({} more)", more.len() - GROUP_LISTED));
        }
        kept.push(Finding {
            id,
            severity,
            message: format!(
                "{} more findings like the {GROUP_AFTER} above ({id}), grouped",
                more.len()
            ),
            observed: Some(listed.join("\n")),
            fix: more[0].fix.clone(),
            untested,
            grouped: more.len(),
        });
    }
    kept
}

/// Most severe first; untested after errors; stable within a severity.
pub(crate) fn sort(findings: &mut [Finding]) {
    findings.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.untested));
}

/// The verdict the findings add up to.
pub(crate) fn verdict(findings: &[Finding]) -> Verdict {
    if findings.iter().any(|f| f.severity == Severity::Error) {
        Verdict::Fail
    } else if findings.iter().any(|f| f.untested) {
        Verdict::Incomplete
    } else if findings.iter().any(|f| f.severity == Severity::Warning) {
        Verdict::Warn
    } else {
        Verdict::Pass
    }
}
