//! Publishing TXT records by RFC 2136 dynamic update, signed with TSIG (RFC 8945).
//!
//! A provider that hosts MTA-STS for its customers also publishes their `_mta-sts` id records
//! and `_smtp._tls` TLS-RPT records, in a zone it controls, on an authoritative server it
//! names. [`UpdateServer`] is that server: [`UpdateServer::replace_txt`] sends one UPDATE that
//! deletes the name's TXT RRset and adds the new record (the server applies the message as one
//! transaction, RFC 2136 §3.7), and [`UpdateServer::delete_txt`] removes the RRset.
//!
//! Every update goes over TCP (RFC 1035 §4.2.2: a two-byte length, then the message), on a
//! connection of its own, the whole exchange under one time budget. The answer is read with a
//! hard bound (the length prefix caps it at 65,535 bytes), must carry our message ID, and, when
//! a key is configured, must be signed with it: an unsigned or badly signed "success" is an
//! error. An unsigned *error* answer is still reported as what it says (it cannot turn into a
//! success, and servers answer some errors unsigned, e.g. knot's NOTAUTH for a zone it does not
//! serve), flagged as unauthenticated.
//!
//! [`UpdateError::is_retryable`] separates what may pass by itself (time-outs, broken
//! connections, SERVFAIL) from what needs a person (a refusal, a key the server rejects, a
//! server that answers nonsense).

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::rr::{TSigVerifier, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod error;
pub use error::{Rcode, UpdateError, UpdateErrorKind};

/// The largest TXT value [`UpdateServer::replace_txt`] publishes, in bytes: far above any
/// `_mta-sts` or `_smtp._tls` record, and small enough that the update always fits one message.
pub const MAX_TXT_VALUE: usize = 4096;

/// The TSIG fudge we sign with (RFC 8945 §5.2.3 recommends 300 seconds).
const FUDGE: u16 = 300;

/// A TSIG key: its name, its HMAC algorithm and the shared secret. `Debug` never shows the
/// secret.
#[derive(Clone)]
pub struct TsigKey {
    signer: TSigner,
    algorithm: &'static str,
}

/// A TSIG key that cannot be used, from [`TsigKey::parse`]. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key name is not a domain name.
    #[error("TSIG key name {0:?} is not a domain name")]
    Name(String),
    /// The algorithm is not one we sign with.
    #[error("TSIG algorithm {0:?} is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512)")]
    Algorithm(String),
    /// The secret is not standard base64 (with padding), or is empty.
    #[error("the secret of TSIG key {name:?} is not valid base64: {why}")]
    Secret {
        /// The key's name.
        name: String,
        /// What is wrong, without the secret.
        why: String,
    },
}

impl TsigKey {
    /// A key from its configuration: its name (`update.example.net`, with or without the final
    /// dot), its algorithm (`hmac-sha256`, `hmac-sha384` or `hmac-sha512`, any case) and its
    /// secret in base64, as knot, BIND and PowerDNS write it.
    pub fn parse(name: &str, algorithm: &str, secret_base64: &str) -> Result<Self, KeyError> {
        let key_name = parse_name(name).map_err(|_| KeyError::Name(name.to_owned()))?;
        let (alg, label) = match algorithm
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .as_str()
        {
            "hmac-sha256" => (TsigAlgorithm::HmacSha256, "hmac-sha256"),
            "hmac-sha384" => (TsigAlgorithm::HmacSha384, "hmac-sha384"),
            "hmac-sha512" => (TsigAlgorithm::HmacSha512, "hmac-sha512"),
            _ => return Err(KeyError::Algorithm(algorithm.to_owned())),
        };
        let secret_err = |why: String| KeyError::Secret {
            name: name.to_owned(),
            why,
        };
        let secret = data_encoding::BASE64
            .decode(secret_base64.trim().as_bytes())
            .map_err(|e| secret_err(format!("{:?} at byte {}", e.kind, e.position)))?;
        if secret.is_empty() {
            return Err(secret_err("it is empty".to_owned()));
        }
        let signer = TSigner::new(secret, alg, key_name, FUDGE)
            .map_err(|_| KeyError::Algorithm(algorithm.to_owned()))?;
        Ok(Self {
            signer,
            algorithm: label,
        })
    }

    /// The key's name, with its final dot.
    pub fn name(&self) -> String {
        self.signer.signer_name().to_ascii()
    }

    /// The algorithm's name (`hmac-sha256`, `hmac-sha384` or `hmac-sha512`).
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name())
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An authoritative server that accepts dynamic updates for one zone.
#[derive(Debug, Clone)]
pub struct UpdateServer {
    addr: SocketAddr,
    zone: Name,
    key: Option<TsigKey>,
    timeout: Duration,
}

impl UpdateServer {
    /// The server at `addr` (TCP), updating `zone` (e.g. `example.net`, with or without the
    /// final dot), signing with `key` when there is one, each update within `timeout`.
    pub fn new(
        addr: SocketAddr,
        zone: &str,
        key: Option<TsigKey>,
        timeout: Duration,
    ) -> Result<Self, UpdateError> {
        let err = |kind| UpdateError::new(addr, zone.to_owned(), kind);
        let zone = parse_name(zone).map_err(|()| {
            err(UpdateErrorKind::BadName {
                name: zone.to_owned(),
            })
        })?;
        Ok(Self {
            addr,
            zone,
            key,
            timeout,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone, with its final dot.
    pub fn zone(&self) -> String {
        self.zone.to_ascii()
    }

    /// Makes `value` the one TXT record at `name` (replacing the whole TXT RRset there), with
    /// `ttl` seconds. The value is split into character-strings of 255 bytes, which readers of
    /// `_mta-sts` and `_smtp._tls` records join back (RFC 8461 §3.1, RFC 8460 §3). Values
    /// longer than [`MAX_TXT_VALUE`] are refused before anything is sent.
    pub async fn replace_txt(&self, name: &str, value: &str, ttl: u32) -> Result<(), UpdateError> {
        let owner = self.owner(name)?;
        if value.len() > MAX_TXT_VALUE {
            return Err(self.error(UpdateErrorKind::ValueTooLong(value.len())));
        }
        self.send(replace_message(&self.zone, owner, value.as_bytes(), ttl))
            .await
    }

    /// Removes every TXT record at `name` (nothing else there). Succeeds when there was none.
    pub async fn delete_txt(&self, name: &str) -> Result<(), UpdateError> {
        let owner = self.owner(name)?;
        self.send(delete_message(&self.zone, owner)).await
    }

    fn error(&self, kind: UpdateErrorKind) -> UpdateError {
        UpdateError::new(self.addr, self.zone(), kind)
    }

    /// `name` parsed and checked to be inside the zone.
    fn owner(&self, name: &str) -> Result<Name, UpdateError> {
        let owner = parse_name(name).map_err(|()| {
            self.error(UpdateErrorKind::BadName {
                name: name.to_owned(),
            })
        })?;
        if !self.zone.zone_of(&owner) {
            return Err(self.error(UpdateErrorKind::NotInZone {
                name: name.to_owned(),
            }));
        }
        Ok(owner)
    }

    /// Signs `message` (when there is a key), sends it, and checks the answer.
    async fn send(&self, mut message: Message) -> Result<(), UpdateError> {
        let mut verifier = None;
        if let Some(key) = &self.key {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            verifier = message
                .finalize(&key.signer, now)
                .map_err(|e| self.error(UpdateErrorKind::Encode(e.to_string())))?;
        }
        let request = message
            .to_vec()
            .map_err(|e| self.error(UpdateErrorKind::Encode(e.to_string())))?;
        let answer = tokio::time::timeout(self.timeout, exchange(self.addr, &request))
            .await
            .map_err(|_| self.error(UpdateErrorKind::Timeout(self.timeout)))?
            .map_err(|e| self.error(UpdateErrorKind::Io(e)))?;
        check_answer(message.metadata.id, &answer, verifier.as_mut()).map_err(|k| self.error(k))
    }
}

/// A domain name from configuration or a caller: ASCII only (A-labels), made absolute.
fn parse_name(text: &str) -> Result<Name, ()> {
    if text.is_empty() || !text.is_ascii() {
        return Err(());
    }
    let mut name = Name::from_ascii(text).map_err(|_| ())?;
    name.set_fqdn(true);
    Ok(name)
}

/// An UPDATE for `zone` (its zone section: `zone IN SOA`), nothing in the prerequisite section.
fn update_message(zone: &Name) -> Message {
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    message.metadata.recursion_desired = false;
    let mut query = Query::new();
    query
        .set_name(zone.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    message.add_zone(query);
    message
}

/// "Delete an RRset" (RFC 2136 §2.5.2): class ANY, TTL 0, no data.
fn delete_rrset(owner: Name) -> Record {
    let mut delete = Record::update0(owner, 0, RecordType::TXT);
    delete.dns_class = DNSClass::ANY;
    delete
}

/// Deletes `owner`'s TXT RRset and adds one record with `value`, in one message.
fn replace_message(zone: &Name, owner: Name, value: &[u8], ttl: u32) -> Message {
    let mut message = update_message(zone);
    message.add_update(delete_rrset(owner.clone()));
    let txt = TXT::from_bytes(split_value(value));
    message.add_update(Record::from_rdata(owner, ttl, RData::TXT(txt)));
    message
}

/// Deletes `owner`'s TXT RRset.
fn delete_message(zone: &Name, owner: Name) -> Message {
    let mut message = update_message(zone);
    message.add_update(delete_rrset(owner));
    message
}

/// `value` cut into character-strings of at most 255 bytes (RFC 1035 §3.3.14); one empty
/// string for an empty value.
fn split_value(value: &[u8]) -> Vec<&[u8]> {
    if value.is_empty() {
        return vec![value];
    }
    value.chunks(255).collect()
}

/// One request and its answer on a new TCP connection. The answer is at most 65,535 bytes:
/// the length prefix cannot say more, and nothing beyond it is read.
async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(request.len()).map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut frame = Vec::with_capacity(2 + request.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(request);
    stream.write_all(&frame).await?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// Judges the answer to the update with ID `id`; `verifier` is there when we signed it.
fn check_answer(
    id: u16,
    bytes: &[u8],
    verifier: Option<&mut TSigVerifier>,
) -> Result<(), UpdateErrorKind> {
    check_counts(bytes)?;
    let answer =
        Message::from_vec(bytes).map_err(|e| UpdateErrorKind::Malformed(escape(&e.to_string())))?;
    let meta = &answer.metadata;
    if meta.message_type != MessageType::Response {
        return Err(UpdateErrorKind::Malformed(
            "it is a query, not a response".into(),
        ));
    }
    if meta.id != id {
        return Err(UpdateErrorKind::Malformed(format!(
            "its ID is {}, ours was {id}",
            meta.id
        )));
    }
    if meta.op_code != OpCode::Update {
        return Err(UpdateErrorKind::Malformed(format!(
            "it answers a {:?}, not an UPDATE",
            meta.op_code
        )));
    }
    let rcode = Rcode(u16::from(meta.response_code));
    let mut signed = false;
    if let Some(verifier) = verifier {
        // BADSIG and BADKEY answers are unsigned by design (RFC 8945 §5.3.2): report them as
        // such, they can only be failures.
        if let Some(error) = answer.signature().and_then(|s| s.data.error) {
            return Err(UpdateErrorKind::TsigRejected {
                error: Rcode(u16::from(error)),
                rcode,
            });
        }
        match verifier.verify(bytes) {
            Ok(_) => signed = true,
            Err(e) if rcode == Rcode::NOERROR => {
                let why = if answer.signature().is_none() {
                    "the answer is not signed".to_owned()
                } else {
                    escape(&e.to_string())
                };
                return Err(UpdateErrorKind::TsigCheck(why));
            }
            // An unsigned error answer stays an error: reported below, flagged unsigned.
            Err(_) => {}
        }
    }
    match rcode {
        Rcode::NOERROR => Ok(()),
        Rcode::REFUSED | Rcode::NOTAUTH | Rcode::NOTZONE => {
            Err(UpdateErrorKind::Refused { rcode, signed })
        }
        _ => Err(UpdateErrorKind::ServerError { rcode, signed }),
    }
}

/// Rejects a header whose section counts cannot fit in the message (a question takes at least
/// 5 bytes, a record 11). hickory's decoder reserves room for as many questions as the header
/// claims (`Vec::with_capacity(count)`, about 6 MB for 65,535 of them from a 12-byte answer);
/// this keeps what a hostile answer makes us allocate in proportion to its size.
fn check_counts(bytes: &[u8]) -> Result<(), UpdateErrorKind> {
    let Some(header) = bytes.get(..12) else {
        return Err(UpdateErrorKind::Malformed(format!(
            "{} bytes, shorter than a DNS header",
            bytes.len()
        )));
    };
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let least = 12 + 5 * count(4) + 11 * (count(6) + count(8) + count(10));
    if least > bytes.len() {
        return Err(UpdateErrorKind::Malformed(format!(
            "its header counts need at least {least} bytes, it has {}",
            bytes.len()
        )));
    }
    Ok(())
}

/// Text from a foreign message made safe to print: control and non-ASCII characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests;
