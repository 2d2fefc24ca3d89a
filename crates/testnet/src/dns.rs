//! An authoritative DNS server on loopback, serving zones written as zone-file text, with faults
//! injected per name.
//!
//! Zones and faults can be changed while the server runs (a TXT id changes, a record disappears,
//! the server starts failing), so tests can play out what happens over time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mtasts_testnet::dns::DnsError> {
//! use mtasts_testnet::dns::{DnsServer, Fault};
//! let dns = DnsServer::start("127.0.0.1".parse().unwrap()).await?;
//! dns.set_zone("example.test.", "@ 300 IN TXT \"hello\"\n_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n")?;
//! dns.set_fault("_smtp._tls.example.test.", Some(Fault::ServFail));
//! // point a resolver at dns.addr()
//! # Ok(()) }
//! ```

use crate::dnssec::{Tamper, ZoneKey};
use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// Something wrong with a zone or with starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The zone text does not parse.
    #[error("zone {origin}: {message}")]
    Zone {
        /// The zone's origin.
        origin: String,
        /// What the parser said.
        message: String,
    },
    /// A socket could not be bound.
    #[error("cannot bind the DNS server on {ip}: {source}")]
    Bind {
        /// The address tried.
        ip: IpAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How the server misbehaves for one query name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer SERVFAIL (a broken or DNSSEC-bogus zone, as a validating resolver reports it).
    ServFail,
    /// Answer REFUSED.
    Refused,
    /// Never answer: the client times out.
    Silent,
    /// Answer normally, after this delay (latency injection for benchmarks).
    Delay(Duration),
}

/// One zone as given: its text and, when signed, how.
#[derive(Clone)]
struct ZoneSpec {
    text: String,
    signing: Option<Signing>,
}

/// A signed zone's key, and the RRsets whose signatures are spoiled.
#[derive(Clone)]
struct Signing {
    key: Arc<ZoneKey>,
    tamper: Vec<(String, RecordType, Tamper)>,
}

#[derive(Default)]
struct State {
    /// Origin (FQDN, lower case) -> zone.
    zones: BTreeMap<String, ZoneSpec>,
    catalog: Arc<Catalog>,
    /// Child zone apex -> a catalog of its parent zone alone: DS records live in the parent
    /// (RFC 4035 §3.1.4.1), which the catalog, picking the closest zone, would not ask.
    ds_catalogs: HashMap<LowerName, Arc<Catalog>>,
    /// The apex of every served zone but the root.
    apexes: Vec<LowerName>,
    faults: HashMap<LowerName, Fault>,
}

impl State {
    fn set_zones(&mut self, zones: BTreeMap<String, ZoneSpec>) -> Result<(), DnsError> {
        let (catalog, ds_catalogs) = build_catalog(&zones)?;
        self.catalog = Arc::new(catalog);
        self.ds_catalogs = ds_catalogs;
        self.apexes = zones
            .keys()
            .filter(|o| o.as_str() != ".")
            .filter_map(|o| Name::from_str(o).ok())
            .map(LowerName::from)
            .collect();
        self.zones = zones;
        Ok(())
    }
}

/// The request handler: faults first, then the catalog.
struct Handler {
    state: Arc<RwLock<State>>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let query = request.queries.queries().first();
        let name = query.map(|q| q.name().clone());
        let is_ds = query.is_some_and(|q| q.query_type() == RecordType::DS);
        let (fault, catalog) = {
            let state = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fault = name.as_ref().and_then(|n| state.faults.get(n).copied());
            let parent = name
                .as_ref()
                .filter(|_| is_ds)
                .and_then(|n| state.ds_catalogs.get(n));
            // The root zone answers for the root and for DS records of its children; any other
            // name outside the served zones is refused, as with no root zone.
            let outside = parent.is_none()
                && name.as_ref().is_some_and(|n| {
                    !n.is_root() && !state.apexes.iter().any(|apex| apex.zone_of(n))
                });
            let fault = if outside {
                fault.or(Some(Fault::Refused))
            } else {
                fault
            };
            (fault, Arc::clone(parent.unwrap_or(&state.catalog)))
        };
        let code = match fault {
            None => {
                return catalog
                    .handle_request::<R, T>(request, response_handle)
                    .await;
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                return catalog
                    .handle_request::<R, T>(request, response_handle)
                    .await;
            }
            Some(Fault::Silent) => {
                // Send nothing; the client's own timeout decides.
                let mut metadata = Metadata::new(
                    request.metadata.id,
                    MessageType::Response,
                    request.metadata.op_code,
                );
                metadata.response_code = ResponseCode::ServFail;
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            }
            Some(Fault::ServFail) => ResponseCode::ServFail,
            Some(Fault::Refused) => ResponseCode::Refused,
        };
        let response =
            MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, code);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                let mut metadata = Metadata::new(
                    request.metadata.id,
                    MessageType::Response,
                    request.metadata.op_code,
                );
                metadata.response_code = code;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A running authoritative DNS server (UDP and TCP on the same address and port).
pub struct DnsServer {
    addr: SocketAddr,
    state: Arc<RwLock<State>>,
    server: Server<Handler>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How long a TCP client may stay idle before the server closes the connection.
const TCP_IDLE: Duration = Duration::from_secs(5);

impl DnsServer {
    /// Starts an empty server on `ip`, on a free port (the same for UDP and TCP).
    pub async fn start(ip: IpAddr) -> Result<Self, DnsError> {
        let bind = |source| DnsError::Bind { ip, source };
        // Find a port free for both protocols: bind UDP first, then TCP on the same port.
        let (udp, tcp) = {
            let mut tries = 0;
            loop {
                let udp = UdpSocket::bind((ip, 0)).await.map_err(bind)?;
                let port = udp.local_addr().map_err(bind)?.port();
                match TcpListener::bind((ip, port)).await {
                    Ok(tcp) => break (udp, tcp),
                    Err(e) if tries < 20 => {
                        tries += 1;
                        let _ = e;
                    }
                    Err(e) => return Err(bind(e)),
                }
            }
        };
        let addr = udp.local_addr().map_err(bind)?;
        let state = Arc::new(RwLock::new(State::default()));
        let mut server = Server::new(Handler {
            state: Arc::clone(&state),
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64 * 1024);
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// The address to send queries to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds or replaces the zone `origin` (e.g. `example.test.`), written as zone-file text
    /// (RFC 1035 §5; `@` is the origin, names without a final dot are relative to it). SOA and
    /// NS records are added at the apex when the text has none.
    pub fn set_zone(&self, origin: &str, text: &str) -> Result<(), DnsError> {
        self.put_zone(origin, text, None)
    }

    /// Adds or replaces the zone `origin`, signed with `key` (DNSKEY, RRSIG and NSEC records
    /// are generated; signatures last 30 days from now). Each `(name, type, how)` in `tamper`
    /// spoils the signatures of one RRset, e.g. `("_25._tcp.mx1.example.test.", "TLSA",
    /// Tamper::BadSignature)`, so a validating resolver finds it bogus. The parent zone must
    /// publish [`ZoneKey::ds_record`] for the chain of trust to reach it.
    pub fn set_signed_zone(
        &self,
        origin: &str,
        text: &str,
        key: &Arc<ZoneKey>,
        tamper: &[(&str, &str, Tamper)],
    ) -> Result<(), DnsError> {
        let zone_err = |message: String| DnsError::Zone {
            origin: origin.to_owned(),
            message,
        };
        let tamper = tamper
            .iter()
            .map(|(name, rtype, how)| {
                let rtype = RecordType::from_str(rtype).map_err(|e| zone_err(e.to_string()))?;
                Ok((fqdn(name), rtype, *how))
            })
            .collect::<Result<_, DnsError>>()?;
        let signing = Signing {
            key: Arc::clone(key),
            tamper,
        };
        self.put_zone(origin, text, Some(signing))
    }

    fn put_zone(&self, origin: &str, text: &str, signing: Option<Signing>) -> Result<(), DnsError> {
        let origin = fqdn(origin);
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut zones = state.zones.clone();
        zones.insert(
            origin,
            ZoneSpec {
                text: text.to_owned(),
                signing,
            },
        );
        state.set_zones(zones)?;
        Ok(())
    }

    /// Removes the zone `origin`: the server then answers REFUSED for names in it.
    pub fn remove_zone(&self, origin: &str) -> Result<(), DnsError> {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut zones = state.zones.clone();
        zones.remove(&fqdn(origin));
        state.set_zones(zones)?;
        Ok(())
    }

    /// Makes queries for exactly `name` misbehave (`None` clears the fault).
    pub fn set_fault(&self, name: &str, fault: Option<Fault>) {
        let Ok(name) = Name::from_str(&fqdn(name)) else {
            return;
        };
        let name = LowerName::from(name);
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match fault {
            Some(f) => state.faults.insert(name, f),
            None => state.faults.remove(&name),
        };
    }

    /// Stops the server and waits for its tasks to end.
    pub async fn stop(mut self) {
        let _ = self.server.shutdown_gracefully().await;
    }
}

fn fqdn(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

type Catalogs = (Catalog, HashMap<LowerName, Arc<Catalog>>);

fn build_catalog(zones: &BTreeMap<String, ZoneSpec>) -> Result<Catalogs, DnsError> {
    let mut catalog = Catalog::new();
    let mut handlers: BTreeMap<LowerName, Arc<dyn ZoneHandler>> = BTreeMap::new();
    for (origin, spec) in zones {
        let handler = build_zone(origin, spec)?;
        handlers.insert(handler.origin().clone(), Arc::clone(&handler));
        catalog.upsert(handler.origin().clone(), vec![handler]);
    }
    let mut ds_catalogs = HashMap::new();
    for apex in handlers.keys().filter(|a| !a.is_root()) {
        let mut parent = apex.base_name();
        loop {
            if let Some(handler) = handlers.get(&parent) {
                let mut single = Catalog::new();
                single.upsert(parent.clone(), vec![Arc::clone(handler)]);
                ds_catalogs.insert(apex.clone(), Arc::new(single));
                break;
            }
            if parent.is_root() {
                break;
            }
            parent = parent.base_name();
        }
    }
    Ok((catalog, ds_catalogs))
}

fn build_zone(origin: &str, spec: &ZoneSpec) -> Result<Arc<dyn ZoneHandler>, DnsError> {
    let zone_err = |message: String| DnsError::Zone {
        origin: origin.to_owned(),
        message,
    };
    let origin_name = Name::from_str(origin).map_err(|e| zone_err(e.to_string()))?;
    let (ns_host, mailbox) = if origin == "." {
        ("ns.root.".to_owned(), "hostmaster.root.".to_owned())
    } else {
        (format!("ns.{origin}"), format!("hostmaster.{origin}"))
    };
    let mut text = String::new();
    if !spec.text.contains("SOA") {
        text.push_str(&format!(
            "@ 300 IN SOA {ns_host} {mailbox} 1 3600 600 86400 60\n"
        ));
    }
    if !has_apex_ns(&spec.text) {
        text.push_str(&format!("@ 300 IN NS {ns_host}\n"));
    }
    text.push_str(&spec.text);
    let (name, records): (Name, BTreeMap<RrKey, RecordSet>) =
        Parser::new(text, None, Some(origin_name))
            .parse()
            .map_err(|e| zone_err(e.to_string()))?;
    let proof = spec.signing.as_ref().map(|_| NxProofKind::Nsec);
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        name.clone(),
        records,
        ZoneType::Primary,
        AxfrPolicy::Deny,
        proof,
    )
    .map_err(zone_err)?;
    if let Some(signing) = &spec.signing {
        let signer = signing
            .key
            .zone_signer(&name)
            .map_err(|e| zone_err(e.to_string()))?;
        handler
            .add_zone_signing_key_mut(signer)
            .map_err(|e| zone_err(e.to_string()))?;
        handler
            .secure_zone_mut()
            .map_err(|e| zone_err(e.to_string()))?;
        let records = handler.records_get_mut();
        for (owner, rtype, how) in &signing.tamper {
            let owner = Name::from_str(owner).map_err(|e| zone_err(e.to_string()))?;
            let key = RrKey::new(LowerName::from(owner.clone()), *rtype);
            let rrset = records
                .get_mut(&key)
                .ok_or_else(|| zone_err(format!("no {rtype} RRset at {owner} to tamper with")))?;
            crate::dnssec::tamper(Arc::make_mut(rrset), *how, &signing.key, &name)
                .map_err(|e| zone_err(e.to_string()))?;
        }
    }
    Ok(Arc::new(handler))
}

/// Whether the zone text has an NS record at the apex (`@ ... NS ...`).
fn has_apex_ns(text: &str) -> bool {
    text.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("@") && words.any(|w| w.eq_ignore_ascii_case("NS"))
    })
}
