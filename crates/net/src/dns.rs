//! DNS lookups through hickory-resolver, with the outcomes a checker must tell apart.
//!
//! A name that does not exist ([`Lookup::NxDomain`]) or has no record of the type
//! ([`Lookup::NoData`]) is an answer. A server failure or a timeout is a [`DnsError`]: the
//! question could not be answered, which a checker reports as "could not test", never as "no
//! record" (DECISIONS D16, USER-EXPECTATIONS M10).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as ProtoDnsError, NetError};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Default time budget for one query (all attempts).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Records of the asked type.
    Records {
        /// The records, in answer order.
        records: Vec<T>,
        /// The CNAME targets followed on the way, in order (empty when the name had no CNAME).
        cnames: Vec<String>,
    },
    /// The name exists but has no record of this type (NOERROR, empty answer).
    NoData,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
}

impl<T> Lookup<T> {
    /// The records, or an empty slice for NODATA and NXDOMAIN.
    pub fn records(&self) -> &[T] {
        match self {
            Self::Records { records, .. } => records,
            _ => &[],
        }
    }
}

/// A lookup that could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The server answered SERVFAIL (often a broken zone or a DNSSEC validation failure).
    #[error("{rtype} {name}: the DNS server answered SERVFAIL")]
    ServFail {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
    },
    /// The server refused the query.
    #[error("{rtype} {name}: the DNS server refused the query")]
    Refused {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
    },
    /// No answer within the time budget.
    #[error("{rtype} {name}: no answer within {budget_ms} ms")]
    Timeout {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
        /// The budget, in milliseconds.
        budget_ms: u128,
    },
    /// The name is not a valid DNS name.
    #[error("{name:?} is not a valid DNS name: {message}")]
    BadName {
        /// The name given.
        name: String,
        /// Why.
        message: String,
    },
    /// Anything else (network error, malformed answer).
    #[error("{rtype} {name}: {message}")]
    Other {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
        /// What happened.
        message: String,
    },
}

/// A TXT record: its character-strings as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txt {
    /// The character-strings, in order.
    pub strings: Vec<Vec<u8>>,
}

impl Txt {
    /// The strings joined with nothing between them (RFC 8461 §3.1, RFC 8460 §3).
    pub fn joined(&self) -> Vec<u8> {
        mtasts_core::record::join_txt_strings(&self.strings)
    }
}

/// An MX record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mx {
    /// Preference: lower is tried first.
    pub preference: u16,
    /// The exchange host, lower case, without the trailing dot (`.` for a null MX, RFC 7505).
    pub host: String,
}

/// Where the resolver sends queries.
#[derive(Debug, Clone, Default)]
pub struct ResolverSettings {
    /// Name servers to ask (`IP:PORT`); empty means the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Time budget per query; [`DEFAULT_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
}

/// A stub resolver.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    timeout: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds a resolver. Never reads `/etc/hosts`. Fails only when the system configuration is
    /// asked for and cannot be read.
    pub fn new(settings: &ResolverSettings) -> Result<Self, DnsError> {
        let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut builder = if settings.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| DnsError::Other {
                name: "/etc/resolv.conf".into(),
                rtype: "config".into(),
                message: e.to_string(),
            })?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|sa| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = sa.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = sa.port();
                    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let inner = builder.build().map_err(|e| DnsError::Other {
            name: String::new(),
            rtype: "config".into(),
            message: e.to_string(),
        })?;
        Ok(Self { inner, timeout })
    }

    /// TXT records of `name`.
    pub async fn txt(&self, name: &str) -> Result<Lookup<Txt>, DnsError> {
        self.lookup(name, RecordType::TXT, |data| match data {
            RData::TXT(txt) => Some(Txt {
                strings: txt.txt_data.iter().map(|s| s.to_vec()).collect(),
            }),
            _ => None,
        })
        .await
    }

    /// MX records of `name`, sorted by preference then host.
    pub async fn mx(&self, name: &str) -> Result<Lookup<Mx>, DnsError> {
        let mut out = self
            .lookup(name, RecordType::MX, |data| match data {
                RData::MX(mx) => Some(Mx {
                    preference: mx.preference,
                    host: host_name(&mx.exchange.to_ascii()),
                }),
                _ => None,
            })
            .await?;
        if let Lookup::Records { records, .. } = &mut out {
            records.sort();
        }
        Ok(out)
    }

    /// IPv4 addresses of `name`.
    pub async fn a(&self, name: &str) -> Result<Lookup<IpAddr>, DnsError> {
        self.lookup(name, RecordType::A, |data| match data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .await
    }

    /// IPv6 addresses of `name`.
    pub async fn aaaa(&self, name: &str) -> Result<Lookup<IpAddr>, DnsError> {
        self.lookup(name, RecordType::AAAA, |data| match data {
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .await
    }

    async fn lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Result<Lookup<T>, DnsError> {
        let fq = if name.ends_with('.') {
            name.to_owned()
        } else {
            format!("{name}.")
        };
        let query = self.inner.lookup(fq.as_str(), rtype);
        let budget = self.timeout + Duration::from_millis(50);
        let Ok(result) = tokio::time::timeout(budget, query).await else {
            return Err(self.timeout_error(name, rtype));
        };
        match result {
            Ok(lookup) => {
                let mut records = Vec::new();
                let mut cnames = Vec::new();
                for record in lookup.answers() {
                    if let RData::CNAME(target) = &record.data {
                        cnames.push(host_name(&target.0.to_ascii()));
                    } else if let Some(v) = pick(&record.data) {
                        records.push(v);
                    }
                }
                if records.is_empty() {
                    Ok(Lookup::NoData)
                } else {
                    Ok(Lookup::Records { records, cnames })
                }
            }
            Err(e) => self.classify(name, rtype, &e),
        }
    }

    fn timeout_error(&self, name: &str, rtype: RecordType) -> DnsError {
        DnsError::Timeout {
            name: name.to_owned(),
            rtype: rtype.to_string(),
            budget_ms: self.timeout.as_millis(),
        }
    }

    fn classify<T>(
        &self,
        name: &str,
        rtype: RecordType,
        e: &NetError,
    ) -> Result<Lookup<T>, DnsError> {
        if e.is_nx_domain() {
            return Ok(Lookup::NxDomain);
        }
        let other = |message: String| DnsError::Other {
            name: name.to_owned(),
            rtype: rtype.to_string(),
            message,
        };
        match e {
            NetError::Dns(ProtoDnsError::NoRecordsFound(no)) => match no.response_code {
                ResponseCode::NoError => Ok(Lookup::NoData),
                ResponseCode::NXDomain => Ok(Lookup::NxDomain),
                ResponseCode::ServFail => Err(DnsError::ServFail {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                }),
                ResponseCode::Refused => Err(DnsError::Refused {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                }),
                code => Err(other(format!("the DNS server answered {code}"))),
            },
            NetError::Dns(ProtoDnsError::ResponseCode(ResponseCode::ServFail)) => {
                Err(DnsError::ServFail {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                })
            }
            NetError::Dns(ProtoDnsError::ResponseCode(ResponseCode::Refused)) => {
                Err(DnsError::Refused {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                })
            }
            NetError::Timeout => Err(self.timeout_error(name, rtype)),
            other_err => Err(other(other_err.to_string())),
        }
    }
}

/// Lower case, without the trailing root dot; the root itself stays `.`.
fn host_name(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => lower,
    }
}
