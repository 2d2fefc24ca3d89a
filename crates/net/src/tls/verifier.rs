//! The recording certificate verifier and the verdict → TLS-RPT result type mapping.
//!
//! [`RecordingVerifier`] checks the server's chain and name exactly as rustls' own WebPKI
//! verifier does (SAN DNS-IDs only, `*` only as the whole left-most label, no CN fallback), but
//! instead of failing the handshake it records the verdict and lets the handshake finish, so the
//! probe can still report the protocol version and cipher. Handshake signatures are verified for
//! real: a server that cannot prove possession of the key still fails the handshake.

use std::sync::{Arc, Mutex, PoisonError};

use mtasts_core::report::ResultType;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;

/// The failure-reason-code used for [`CertVerdict::NotYetValid`].
pub const REASON_NOT_YET_VALID: &str = "certificate-not-yet-valid";

/// The outcome of a certificate check, one variant per thing a diagnostic tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertVerdict {
    /// Chains to a trusted root, inside its validity period, valid for the name.
    Valid,
    /// A certificate in the chain is past its `not_after`.
    Expired,
    /// A certificate in the chain is before its `not_before`.
    NotYetValid,
    /// No SAN DNS-ID (or IP) of the end entity matches the expected name. The names it does
    /// carry are in the parsed chain ([`crate::tls::CertInfo::san_dns`]).
    HostMismatch,
    /// No path to a trusted root: unknown or self-signed issuer, or a missing intermediate.
    NotTrusted,
    /// Any other failure (bad signature, wrong key usage, unparseable certificate, …).
    Invalid {
        /// rustls' description of the error.
        reason: String,
    },
}

impl CertVerdict {
    /// Classifies an error from rustls' certificate verification. See the table on
    /// [`CertVerdict::result_type`]. Every error webpki can report is mapped on purpose (RFC
    /// 8460 §4.3.1): whatever means "no path to a trusted root" is [`Self::NotTrusted`] (an
    /// unknown issuer, a self-signed certificate marked as a CA, an issuer that is not a CA, a
    /// path past its length or name constraints or too long to build, a distrusted root); the
    /// validity period and the name have their own types; anything wrong with a certificate
    /// itself (a signature that does not verify, a missing `serverAuth` purpose, an unknown
    /// critical extension, bad encoding, revocation) is [`Self::Invalid`], which reports as
    /// `validation-failure` with rustls' text as the reason.
    pub fn from_rustls(err: &Error) -> Self {
        let invalid = || Self::Invalid {
            reason: err.to_string(),
        };
        let Error::InvalidCertificate(e) = err else {
            return invalid();
        };
        match e {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Self::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Self::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Self::HostMismatch
            }
            CertificateError::UnknownIssuer => Self::NotTrusted,
            CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(w) if webpki_untrusted(w) => Self::NotTrusted,
                _ => invalid(),
            },
            // BadEncoding, BadSignature, UnsupportedSignatureAlgorithm*, InvalidPurpose*,
            // Revoked, UnknownRevocationStatus, ExpiredRevocationList*, UnhandledCriticalExtension,
            // ApplicationVerificationFailure, and whatever later rustls versions add: the
            // certificate itself is faulty, the catch-all type.
            _ => invalid(),
        }
    }

    /// Whether the certificate passed.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid)
    }

    /// The TLS-RPT result type (RFC 8460 §4.3.2.1) for a failure; `None` for [`Self::Valid`].
    ///
    /// | verdict | result type |
    /// |---|---|
    /// | `Expired` | `certificate-expired` |
    /// | `NotYetValid` | `validation-failure` (reason code `certificate-not-yet-valid`) |
    /// | `HostMismatch` | `certificate-host-mismatch` |
    /// | `NotTrusted` | `certificate-not-trusted` |
    /// | `Invalid` | `validation-failure` (reason: rustls' message) |
    ///
    /// `NotYetValid` is not `certificate-expired`: RFC 8460 defines that type as "the certificate
    /// has expired", and a certificate dated in the future is usually a clock or deployment error
    /// rather than a missed renewal, so it goes to the catch-all with its own reason code.
    pub fn result_type(&self) -> Option<ResultType> {
        match self {
            Self::Valid => None,
            Self::Expired => Some(ResultType::CertificateExpired),
            Self::HostMismatch => Some(ResultType::CertificateHostMismatch),
            Self::NotTrusted => Some(ResultType::CertificateNotTrusted),
            Self::NotYetValid | Self::Invalid { .. } => Some(ResultType::ValidationFailure),
        }
    }

    /// The failure-reason-code to report beside [`Self::result_type`], where there is one.
    pub fn failure_reason_code(&self) -> Option<&str> {
        match self {
            Self::NotYetValid => Some(REASON_NOT_YET_VALID),
            Self::Invalid { reason } => Some(reason),
            _ => None,
        }
    }
}

/// The webpki errors (rustls passes them on as `CertificateError::Other`) that mean the chain
/// does not lead to a trusted root: `certificate-not-trusted`.
fn webpki_untrusted(e: &webpki::Error) -> bool {
    use webpki::Error as W;
    matches!(
        e,
        W::UnknownIssuer
            | W::CaUsedAsEndEntity
            | W::EndEntityUsedAsCa
            | W::CertDistrusted
            | W::PathLenConstraintViolated
            | W::NameConstraintViolation
            | W::MaximumPathDepthExceeded
            | W::MaximumPathBuildCallsExceeded
            | W::MaximumSignatureChecksExceeded
            | W::MaximumNameConstraintComparisonsExceeded
    )
}

/// Both halves of one certificate check, and when it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertVerification {
    /// Path to a trusted root, validity periods, signatures and key usage (name not checked).
    pub chain: CertVerdict,
    /// The end entity's SAN against the expected name (trust not checked).
    pub name: CertVerdict,
    /// The time the chain was checked against.
    pub checked_at: OffsetDateTime,
}

impl CertVerification {
    /// The single verdict a sender would report: the chain's failure if any (rustls checks the
    /// chain first), else the name's.
    pub fn verdict(&self) -> &CertVerdict {
        if self.chain.is_valid() {
            &self.name
        } else {
            &self.chain
        }
    }
}

/// What [`RecordingVerifier`] saw in one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The presented certificates, end entity first, in the order the server sent them.
    pub chain: Vec<CertificateDer<'static>>,
    /// The checks and their verdicts.
    pub verification: CertVerification,
}

/// A [`ServerCertVerifier`] that records the chain and the verdict and always lets the
/// handshake continue. Use one per handshake (the record is overwritten by the next).
#[derive(Debug)]
pub struct RecordingVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    record: Mutex<Option<Recorded>>,
}

impl RecordingVerifier {
    /// A verifier trusting `roots`, using `provider`'s signature algorithms.
    pub fn new(roots: Arc<RootCertStore>, provider: Arc<CryptoProvider>) -> Self {
        Self {
            roots,
            provider,
            record: Mutex::new(None),
        }
    }

    /// Takes what the last handshake recorded, if any certificate was presented.
    pub fn take(&self) -> Option<Recorded> {
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Checks a chain without a handshake: the same checks `verify_server_cert` runs.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> CertVerification {
        let checked_at = unix_to_datetime(now);
        let parsed = match ParsedCertificate::try_from(end_entity) {
            Ok(p) => p,
            Err(e) => {
                let v = CertVerdict::from_rustls(&e);
                return CertVerification {
                    chain: v.clone(),
                    name: v,
                    checked_at,
                };
            }
        };
        let chain = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        );
        let name = rustls::client::verify_server_name(&parsed, server_name);
        let verdict = |r: Result<(), Error>| match r {
            Ok(()) => CertVerdict::Valid,
            Err(e) => CertVerdict::from_rustls(&e),
        };
        CertVerification {
            chain: verdict(chain),
            name: verdict(name),
            checked_at,
        }
    }
}

/// `now` as a date-time; out-of-range values (not produced by a real clock) clamp to the epoch.
fn unix_to_datetime(now: UnixTime) -> OffsetDateTime {
    i64::try_from(now.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verification = self.check(end_entity, intermediates, server_name, now);
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.record.lock().unwrap_or_else(PoisonError::into_inner) = Some(Recorded {
            chain,
            verification,
        });
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::DnsName;

    fn cert_err(e: CertificateError) -> Error {
        Error::InvalidCertificate(e)
    }

    fn rt(e: CertificateError) -> Option<String> {
        CertVerdict::from_rustls(&cert_err(e))
            .result_type()
            .map(|r| r.as_str().to_owned())
    }

    #[test]
    fn rustls_errors_map_to_tls_rpt_result_types() {
        let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000));
        assert_eq!(
            rt(CertificateError::Expired).unwrap(),
            "certificate-expired"
        );
        let ctx = CertificateError::ExpiredContext {
            time: t,
            not_after: t,
        };
        assert_eq!(rt(ctx).unwrap(), "certificate-expired");
        assert_eq!(
            rt(CertificateError::NotValidForName).unwrap(),
            "certificate-host-mismatch"
        );
        let ctx = CertificateError::NotValidForNameContext {
            expected: ServerName::DnsName(DnsName::try_from("a.example").unwrap()),
            presented: vec!["b.example".into()],
        };
        assert_eq!(
            CertVerdict::from_rustls(&cert_err(ctx.clone())),
            CertVerdict::HostMismatch
        );
        assert_eq!(rt(ctx).unwrap(), "certificate-host-mismatch");
        assert_eq!(
            rt(CertificateError::UnknownIssuer).unwrap(),
            "certificate-not-trusted"
        );
        for other in [
            CertificateError::BadSignature,
            CertificateError::BadEncoding,
            CertificateError::InvalidPurpose,
            CertificateError::Revoked,
            CertificateError::UnhandledCriticalExtension,
        ] {
            assert_eq!(rt(other).unwrap(), "validation-failure");
        }
    }

    #[test]
    fn certificate_result_types_every_webpki_error_rustls_passes_on_is_mapped() {
        use webpki::Error as W;
        let other = |w: W| {
            CertVerdict::from_rustls(&cert_err(CertificateError::Other(rustls::OtherError(
                Arc::new(w),
            ))))
        };
        for w in [
            W::CaUsedAsEndEntity,
            W::EndEntityUsedAsCa,
            W::CertDistrusted,
            W::PathLenConstraintViolated,
            W::NameConstraintViolation,
            W::MaximumPathDepthExceeded,
            W::MaximumPathBuildCallsExceeded,
            W::MaximumSignatureChecksExceeded,
            W::MaximumNameConstraintComparisonsExceeded,
        ] {
            let name = format!("{w:?}");
            assert_eq!(other(w), CertVerdict::NotTrusted, "{name}");
        }
        for w in [
            W::UnsupportedCertVersion,
            W::UnsupportedCriticalExtension,
            W::ExtensionValueInvalid,
            W::MalformedExtensions,
            W::SignatureAlgorithmMismatch,
            W::EmptyEkuExtension,
            W::InvalidSerialNumber,
        ] {
            let name = format!("{w:?}");
            let v = other(w);
            assert!(matches!(v, CertVerdict::Invalid { .. }), "{name}: {v:?}");
            assert_eq!(v.result_type(), Some(ResultType::ValidationFailure));
        }
    }

    #[test]
    fn not_yet_valid_is_a_validation_failure_with_a_reason_code() {
        let v = CertVerdict::from_rustls(&cert_err(CertificateError::NotValidYet));
        assert_eq!(v, CertVerdict::NotYetValid);
        assert_eq!(v.result_type(), Some(ResultType::ValidationFailure));
        assert_eq!(v.failure_reason_code(), Some(REASON_NOT_YET_VALID));
    }

    #[test]
    fn other_errors_keep_the_rustls_text() {
        let e = cert_err(CertificateError::BadSignature);
        let v = CertVerdict::from_rustls(&e);
        assert_eq!(v.failure_reason_code(), Some(e.to_string().as_str()));
        let e = Error::General("boom".into());
        assert_eq!(
            CertVerdict::from_rustls(&e),
            CertVerdict::Invalid {
                reason: e.to_string()
            }
        );
    }

    #[test]
    fn valid_has_no_result_type_and_chain_failure_wins() {
        assert_eq!(CertVerdict::Valid.result_type(), None);
        let v = CertVerification {
            chain: CertVerdict::Expired,
            name: CertVerdict::HostMismatch,
            checked_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(v.verdict(), &CertVerdict::Expired);
        let v = CertVerification {
            chain: CertVerdict::Valid,
            ..v
        };
        assert!(matches!(v.verdict(), CertVerdict::HostMismatch));
    }
}
