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
//! A verifying signature counts as `pass` only when it covers the `From` field and its `d=` is
//! the domain of `From` or a parent of it (relaxed alignment, as DMARC has it); any other
//! verifying signature gives `fail` with the reason ("signed by evil.example, not by the From
//! domain"): a stranger can sign with a domain of their own. Signatures asking for `atps=` are
//! looked up nowhere and give `temperror`.
//!
//! Limits: at most [`MAX_SIGNATURES`] signatures of a mail are checked (each costs a lookup and
//! a signature verification); a signature naming more than [`MAX_SIGNED_FIELDS`] header fields
//! (`h=`), or a header block over [`MAX_HEADER_BLOCK`] bytes, is `fail` unverified (mail-auth's
//! header selection is quadratic in both). The verification, all CPU, runs on the blocking
//! pool, never on the async threads; the mail itself is bounded by the receiver's size limit.

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
/// The most header fields one signature may name in `h=`.
pub const MAX_SIGNED_FIELDS: usize = 64;
/// The largest header block (all fields before the body) verified, in bytes.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

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

    /// The verdict on `mail` (a whole RFC 5322 message as received). The keys are looked up
    /// here; the parse and the verification run on the blocking pool.
    pub async fn verify(&self, mail: Arc<Vec<u8>>) -> Dkim {
        // The names of the keys, from a first read of the header (on the blocking pool too:
        // it is as large as the mail).
        let bytes = Arc::clone(&mail);
        let names = tokio::task::spawn_blocking(move || key_names(&bytes)).await;
        let names = match names {
            Ok(Ok(names)) => names,
            Ok(Err(verdict)) => return verdict,
            Err(_) => return verdict(DkimVerdict::TempError, "the verification stopped".into()),
        };
        let keys = Keys::default();
        for name in names {
            let txt = self.key(&name).await;
            if let Ok(mut m) = keys.0.lock() {
                m.insert(name.into_boxed_str(), txt);
            }
        }
        let auth = self.auth.clone();
        let handle = tokio::runtime::Handle::current();
        let checked = tokio::task::spawn_blocking(move || {
            // Every key is in the cache: mail-auth's futures complete without waiting on I/O.
            handle.block_on(check(&auth, &mail, &keys))
        })
        .await;
        checked
            .unwrap_or_else(|_| verdict(DkimVerdict::TempError, "the verification stopped".into()))
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

/// The key names (`<s>._domainkey.<d>.`) of the signatures to check, or the verdict at once
/// (unsigned, unreadable, too large to verify).
fn key_names(mail: &[u8]) -> Result<Vec<String>, Dkim> {
    let Some(msg) = AuthenticatedMessage::parse(mail) else {
        return Err(verdict(
            DkimVerdict::None,
            "the message has no header to read".into(),
        ));
    };
    if msg.body_offset as usize > MAX_HEADER_BLOCK {
        return Err(verdict(
            DkimVerdict::Fail,
            format!("the header is over {MAX_HEADER_BLOCK} bytes: not verified"),
        ));
    }
    let malformed = msg
        .errors
        .iter()
        .any(|h| matches!(h.header, mail_auth::Error::Dkim(_)));
    if msg.dkim_headers.is_empty() {
        return Err(if malformed {
            verdict(
                DkimVerdict::Fail,
                "the DKIM-Signature field could not be read".into(),
            )
        } else {
            verdict(DkimVerdict::None, "the mail is not DKIM-signed".into())
        });
    }
    let mut names: Vec<String> = Vec::new();
    for h in msg.dkim_headers.iter().take(MAX_SIGNATURES) {
        if h.header.h.len() > MAX_SIGNED_FIELDS {
            continue;
        }
        let name = format!("{}._domainkey.{}.", h.header.s, h.header.d).to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The verdict, with every key in `keys` (run on the blocking pool).
async fn check(auth: &MessageAuthenticator, mail: &[u8], keys: &Keys) -> Dkim {
    let Some(mut msg) = AuthenticatedMessage::parse(mail) else {
        return verdict(
            DkimVerdict::None,
            "the message has no header to read".into(),
        );
    };
    msg.dkim_headers.truncate(MAX_SIGNATURES);
    let oversized = msg
        .dkim_headers
        .iter()
        .find(|h| h.header.h.len() > MAX_SIGNED_FIELDS)
        .map(|h| h.header.d.clone());
    msg.dkim_headers
        .retain(|h| h.header.h.len() <= MAX_SIGNED_FIELDS);
    if msg.dkim_headers.is_empty() {
        return verdict(
            DkimVerdict::Fail,
            format!(
                "d={}: the signature names more than {MAX_SIGNED_FIELDS} header fields: not verified",
                oversized.unwrap_or_default()
            ),
        );
    }
    let from_domain = msg
        .from
        .first()
        .and_then(|f| f.rsplit_once('@'))
        .map(|(_, d)| {
            d.trim_end_matches('>')
                .trim_end_matches('.')
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let outputs = auth
        .verify_dkim(Parameters::new(&msg).with_txt_cache(keys))
        .await;
    let mut first_failure: Option<String> = None;
    let mut temp = false;
    for o in &outputs {
        let sig = o.signature();
        let d = sig.map(|s| s.d.to_ascii_lowercase()).unwrap_or_default();
        match o.result() {
            DkimResult::Pass => {
                let covers_from =
                    sig.is_some_and(|s| s.h.iter().any(|h| h.eq_ignore_ascii_case("from")));
                let aligned =
                    !d.is_empty() && (from_domain == d || from_domain.ends_with(&format!(".{d}")));
                if aligned && covers_from {
                    return verdict(DkimVerdict::Pass, format!("d={d}"));
                }
                first_failure.get_or_insert_with(|| {
                    if covers_from {
                        format!("d={d}: verifies, but is not the From domain {from_domain:?}")
                    } else {
                        format!("d={d}: verifies, but does not sign the From field")
                    }
                });
            }
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

fn verdict(verdict: DkimVerdict, detail: String) -> Dkim {
    Dkim { verdict, detail }
}
