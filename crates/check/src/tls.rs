//! Certificates and TLS observations as findings (M12–M14, M38–M40), shared by the policy host
//! and the MX hosts.

use crate::model::{CertificateReport, Finding, TlsResult};
use mtasts_core::Severity;
use mtasts_net::tls::{CertVerdict, TlsObservation};

/// A certificate expiring within this many days is an error.
pub const EXPIRY_ERROR_DAYS: i64 = 7;
/// A certificate expiring within this many days is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 21;

/// The certificate of a handshake, for the report.
pub(crate) fn certificate(tls: &TlsObservation) -> Option<CertificateReport> {
    let leaf = tls.leaf()?;
    Some(CertificateReport {
        sans: leaf.san_dns.clone(),
        issuer: leaf.issuer.clone(),
        not_after: leaf
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        days_left: tls.days_left,
    })
}

/// The TLS-RPT result of a completed handshake: `success` or the failure type.
pub(crate) fn result(tls: &TlsObservation) -> TlsResult {
    tls.verdict
        .result_type()
        .map_or(TlsResult::Success, TlsResult::Failure)
}

/// Findings about a completed handshake with `who` (e.g. `the policy host mta-sts.x` or
/// `MX mx1.x (192.0.2.1)`), using ids under `prefix` (`policy` or `mx`).
pub(crate) fn findings(
    prefix: Prefix,
    who: &str,
    name: &str,
    tls: &TlsObservation,
    out: &mut Vec<Finding>,
) {
    let sans = tls.leaf().map(|l| l.san_dns.join(", ")).unwrap_or_default();
    let observed = tls.leaf().map(|l| {
        format!(
            "subject alt names: {sans}; issuer: {}; expires {}",
            l.issuer,
            l.not_after.date()
        )
    });
    let (id, what, fix) = match &tls.verdict {
        CertVerdict::Valid => {
            expiry(prefix, who, tls, out);
            return;
        }
        CertVerdict::Expired => (
            prefix.pick("policy.certificate.expired", "mx.certificate.expired"),
            "has expired".to_owned(),
            "renew the certificate".to_owned(),
        ),
        CertVerdict::NotYetValid => (
            prefix.pick(
                "policy.certificate.not-yet-valid",
                "mx.certificate.not-yet-valid",
            ),
            "is not valid yet".to_owned(),
            "check the server clock and the certificate's start date".to_owned(),
        ),
        CertVerdict::HostMismatch => (
            prefix.pick(
                "policy.certificate.host-mismatch",
                "mx.certificate.host-mismatch",
            ),
            format!(
                "is not valid for {name} (it names: {})",
                if sans.is_empty() {
                    "no DNS names"
                } else {
                    sans.as_str()
                }
            ),
            format!("install a certificate with {name} in its subject alternative names"),
        ),
        CertVerdict::NotTrusted => (
            prefix.pick(
                "policy.certificate.not-trusted",
                "mx.certificate.not-trusted",
            ),
            "does not chain to a trusted root (self-signed, unknown CA, or a missing intermediate)"
                .to_owned(),
            "use a certificate from a public CA and send the full chain (leaf and intermediates)"
                .to_owned(),
        ),
        CertVerdict::Invalid { reason } => (
            prefix.pick("policy.certificate.invalid", "mx.certificate.invalid"),
            format!("fails validation: {reason}"),
            "replace the certificate".to_owned(),
        ),
    };
    let consequence = match prefix {
        Prefix::Policy => "; senders cannot fetch the policy (sts-webpki-invalid) and apply none",
        Prefix::Mx => "; under `enforce`, senders will not deliver to this host",
    };
    out.push(Finding::new(
        id,
        Severity::Error,
        format!("the certificate of {who} {what}{consequence}"),
        observed,
        fix,
    ));
}

fn expiry(prefix: Prefix, who: &str, tls: &TlsObservation, out: &mut Vec<Finding>) {
    let Some(days) = tls.days_left else { return };
    let severity = if days <= EXPIRY_ERROR_DAYS {
        Severity::Error
    } else if days <= EXPIRY_WARNING_DAYS {
        Severity::Warning
    } else {
        return;
    };
    out.push(Finding::new(
        prefix.pick(
            "policy.certificate.expires-soon",
            "mx.certificate.expires-soon",
        ),
        severity,
        format!("the certificate of {who} expires in {days} day(s)"),
        tls.leaf().map(|l| format!("not after {}", l.not_after)),
        "renew it now, and check that automatic renewal works",
    ));
}

/// Which id family a finding belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prefix {
    Policy,
    Mx,
}

impl Prefix {
    fn pick(self, policy: &'static str, mx: &'static str) -> &'static str {
        match self {
            Self::Policy => policy,
            Self::Mx => mx,
        }
    }
}
