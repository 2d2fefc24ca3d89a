//! What a certificate says about itself, read with x509-parser: names, issuer, validity dates.

use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

/// Seconds in a day, for [`days_left`].
const DAY: i64 = 86_400;

/// Whole days from `now` until `not_after`, rounded down: 6 days and 23 hours is 6, one second
/// past `not_after` is -1. Negative means expired. A pure function of its inputs, so callers
/// decide what "now" is.
pub fn days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_seconds().div_euclid(DAY)
}

/// One presented certificate: its DER bytes and, when x509-parser can read it, its details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCert {
    /// The certificate as sent.
    pub der: CertificateDer<'static>,
    /// The parsed details, or why parsing failed.
    pub details: Result<CertInfo, String>,
}

impl PresentedCert {
    /// Parses `der`; a parse failure is kept in [`PresentedCert::details`], never an error.
    pub fn new(der: CertificateDer<'static>) -> Self {
        let details = CertInfo::parse(&der);
        Self { der, details }
    }
}

/// The fields of a certificate a diagnostic shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, readable (`O=…, CN=…`).
    pub subject: String,
    /// The subject's first common name, if any. Shown only: name checks never use it.
    pub subject_cn: Option<String>,
    /// The issuer, readable (`O=…, CN=…`).
    pub issuer: String,
    /// DNS names in the subjectAltName extension, as written (wildcards included).
    pub san_dns: Vec<String>,
    /// IP addresses in the subjectAltName extension.
    pub san_ip: Vec<IpAddr>,
    /// Start of the validity period.
    pub not_before: OffsetDateTime,
    /// End of the validity period.
    pub not_after: OffsetDateTime,
    /// The serial number, hex bytes separated by colons.
    pub serial: String,
    /// Whether subject and issuer are the same name.
    pub self_issued: bool,
    /// Whether basicConstraints says this is a CA.
    pub is_ca: bool,
}

impl CertInfo {
    /// Reads the fields from a DER certificate. The error is x509-parser's message.
    pub fn parse(der: &CertificateDer<'_>) -> Result<Self, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("unparseable certificate: {e}"))?;
        let mut san_dns = Vec::new();
        let mut san_ip = Vec::new();
        match cert.subject_alternative_name() {
            Ok(Some(ext)) => {
                for name in &ext.value.general_names {
                    match name {
                        GeneralName::DNSName(n) => san_dns.push((*n).to_owned()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                san_ip.push(IpAddr::from(a));
                            } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                san_ip.push(IpAddr::from(a));
                            }
                        }
                        _ => {}
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad subjectAltName extension: {e}")),
        }
        let subject_cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned);
        Ok(Self {
            subject: cert.subject().to_string(),
            subject_cn,
            issuer: cert.issuer().to_string(),
            san_dns,
            san_ip,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            serial: cert.raw_serial_as_string(),
            self_issued: cert.subject() == cert.issuer(),
            is_ca: cert.is_ca(),
        })
    }

    /// [`days_left`] for this certificate's `not_after`.
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        days_left(self.not_after, now)
    }

    /// `not_before` as unix seconds.
    pub fn not_before_unix(&self) -> i64 {
        self.not_before.unix_timestamp()
    }

    /// `not_after` as unix seconds.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after.unix_timestamp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn days_left_rounds_down_and_goes_negative() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(days_left(now + Duration::days(21), now), 21);
        assert_eq!(
            days_left(now + Duration::days(7) - Duration::SECOND, now),
            6
        );
        assert_eq!(days_left(now, now), 0);
        assert_eq!(days_left(now - Duration::SECOND, now), -1);
        assert_eq!(days_left(now - Duration::days(3), now), -3);
    }

    #[test]
    fn garbage_is_a_parse_error_not_a_panic() {
        let p = PresentedCert::new(CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]));
        assert!(p.details.is_err());
    }
}
