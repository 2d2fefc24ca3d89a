//! The DKIM verdict of a report mail (RFC 8460 §3: report mail is DKIM-signed, and a receiver
//! may ignore unsigned mail; decisions D52).
//!
//! [`DkimVerifier::verify`] gives one [`Dkim`] per mail: `pass` when a signature verifies (the
//! detail names its `d=`), `fail` when the mail is signed and none verifies (the detail says why
//! the first did not), `none` when it is not signed, `temperror` when a key could not be looked
//! up. mail-auth does the cryptography; the keys (`<s>._domainkey.<d>` TXT) are looked up
//! through our own [`Resolver`] (the same nameservers, time-outs and test network as every
//! other lookup) and handed to mail-auth in its cache. Its own resolver is built with no
//! nameserver at all, so nothing it might look up beyond that cache leaves the machine.
//!
//! Limits: at most [`MAX_SIGNATURES`] signatures of a mail are checked (each costs a lookup and
//! a signature verification); the mail itself is already bounded by the receiver's size limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, Txt};
use mtasts_net::dns::{Lookup, Resolver};
use mtasts_store::{Dkim, DkimVerdict};

/// The most `DKIM-Signature` fields of one mail that are checked; later ones are ignored.
pub const MAX_SIGNATURES: usize = 8;

/// Verifies the DKIM signatures of report mail with keys looked up through our resolver.
#[derive(Clone)]
pub struct DkimVerifier {
    auth: MessageAuthenticator,
    resolver: Resolver,
}

impl std::fmt::Debug for DkimVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimVerifier")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

/// The keys looked up for one mail, given to mail-auth as its TXT cache.
#[derive(Default)]
struct Keys(Mutex<HashMap<Box<str>, Txt>>);

impl mail_auth::ResolverCache<Box<str>, Txt> for Keys {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, value);
        }
    }
}

impl DkimVerifier {
    /// A verifier looking keys up through `resolver`.
    ///
    /// # Errors
    /// When mail-auth's (unused, nameserver-less) resolver cannot be built.
    pub fn new(resolver: Resolver) -> Result<Self, String> {
        let config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
        let auth = MessageAuthenticator::new(config, ResolverOpts::default())
            .map_err(|e| format!("DKIM verifier: {e}"))?;
        Ok(Self { auth, resolver })
    }

    /// The verdict on `mail` (a whole RFC 5322 message as received).
    pub async fn verify(&self, mail: &[u8]) -> Dkim {
        let Some(mut msg) = AuthenticatedMessage::parse(mail) else {
            return verdict(
                DkimVerdict::None,
                "the message has no header to read".into(),
            );
        };
        msg.dkim_headers.truncate(MAX_SIGNATURES);
        let malformed = msg
            .errors
            .iter()
            .any(|h| matches!(h.header, mail_auth::Error::Dkim(_)));
        if msg.dkim_headers.is_empty() {
            return if malformed {
                verdict(
                    DkimVerdict::Fail,
                    "the DKIM-Signature field could not be read".into(),
                )
            } else {
                verdict(DkimVerdict::None, "the mail is not DKIM-signed".into())
            };
        }
        let keys = Keys::default();
        for h in &msg.dkim_headers {
            let name = format!("{}._domainkey.{}.", h.header.s, h.header.d);
            if keys.0.lock().is_ok_and(|m| m.contains_key(name.as_str())) {
                continue;
            }
            let txt = self.key(&name).await;
            if let Ok(mut m) = keys.0.lock() {
                m.insert(name.into_boxed_str(), txt);
            }
        }
        let outputs = self
            .auth
            .verify_dkim(Parameters::new(&msg).with_txt_cache(&keys))
            .await;
        let mut first_failure: Option<String> = None;
        let mut temp = false;
        for o in &outputs {
            let d = o.signature().map(|s| s.d.as_str()).unwrap_or("");
            match o.result() {
                DkimResult::Pass => return verdict(DkimVerdict::Pass, format!("d={d}")),
                DkimResult::TempError(e) => {
                    temp = true;
                    first_failure.get_or_insert_with(|| format!("d={d}: {e}"));
                }
                DkimResult::Neutral(e) | DkimResult::Fail(e) | DkimResult::PermError(e) => {
                    first_failure.get_or_insert_with(|| format!("d={d}: {e}"));
                }
                DkimResult::None => {}
            }
        }
        let why = first_failure.unwrap_or_else(|| "no signature verified".into());
        if temp {
            verdict(DkimVerdict::TempError, why)
        } else {
            verdict(DkimVerdict::Fail, why)
        }
    }

    /// The key record at `name` as mail-auth's cache holds it: the first TXT record that reads
    /// as a DKIM key, a permanent error when there is none, a temporary one when the lookup
    /// failed.
    async fn key(&self, name: &str) -> Txt {
        use mail_auth::hickory_resolver::proto::op::ResponseCode;
        let not_found = |code| {
            Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(
                code,
            )))
        };
        match self.resolver.txt(name).await {
            Ok(Lookup::Records { records, .. }) => {
                let mut last = not_found(ResponseCode::NoError);
                for r in &records {
                    match DomainKey::parse(&r.joined()) {
                        Ok(k) => return Txt::DomainKey(Arc::new(k)),
                        Err(e) => last = Txt::Error(e),
                    }
                }
                last
            }
            Ok(Lookup::NoData) => not_found(ResponseCode::NoError),
            Ok(Lookup::NxDomain) => not_found(ResponseCode::NXDomain),
            Err(e) => Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
                e.to_string(),
            ))),
        }
    }
}

fn verdict(verdict: DkimVerdict, detail: String) -> Dkim {
    Dkim { verdict, detail }
}
