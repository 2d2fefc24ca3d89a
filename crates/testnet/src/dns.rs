//! An authoritative DNS server on loopback, serving zones written as zone-file text, with faults
//! injected per name or per (name, record type).
//!
//! Zones and faults can be changed while the server runs (a TXT id changes, a record disappears,
//! the server starts failing), so tests can play out what happens over time. Many small zones
//! (one per domain) are cheap: [`DnsServer::set_zones`] adds them in one step, and a lookup costs
//! the same at 100 000 zones as at one (a single huge zone does not: hickory's in-memory zone
//! scans all its names for every negative answer).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mtasts_testnet::dns::DnsError> {
//! use mtasts_testnet::dns::{DnsServer, Fault, RecordType};
//! let dns = DnsServer::start("127.0.0.1".parse().unwrap()).await?;
//! dns.set_zone("example.test.", "@ 300 IN TXT \"hello\"\n_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n")?;
//! dns.set_fault("_smtp._tls.example.test.", Some(Fault::ServFail));
//! // UDP answers for this TXT come back truncated (TC=1, empty); TCP answers in full.
//! dns.set_type_fault("_mta-sts.example.test.", RecordType::TXT, Some(Fault::Truncate));
//! // point a resolver at dns.addr()
//! # Ok(()) }
//! ```

use crate::dnssec::{Tamper, ZoneKey};
use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
pub use hickory_proto::rr::RecordType;
use hickory_proto::rr::{LowerName, Name, RecordSet, RrKey};
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
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
    /// Over UDP, answer with the TC (truncated) bit set and no records, as a server does when the
    /// answer does not fit in a datagram; over TCP, answer in full. A resolver must retry over TCP.
    Truncate,
    /// Answer NXDOMAIN (with no SOA), as a resolver without internet access or a captive portal
    /// does for every name.
    NxDomain,
}

/// How many queries the server has received, by transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryCounts {
    /// Queries received over UDP.
    pub udp: u64,
    /// Queries received over TCP.
    pub tcp: u64,
}

/// A fault applies to one name and either every record type (`None`) or one.
type FaultKey = (LowerName, Option<RecordType>);

/// A signed zone's key, and the RRsets whose signatures are spoiled.
#[derive(Clone)]
struct Signing {
    key: Arc<ZoneKey>,
    tamper: Vec<(String, RecordType, Tamper)>,
}

#[derive(Default)]
struct State {
    /// Origin (FQDN, lower case) -> its parsed (and, when asked, signed) zone, kept so that
    /// changing one zone does not re-parse or re-sign the others.
    zones: BTreeMap<String, Arc<dyn ZoneHandler>>,
    /// The same zones by apex name, for the DS and "outside every zone" checks.
    by_apex: HashMap<LowerName, Arc<dyn ZoneHandler>>,
    catalog: Arc<Catalog>,
    faults: HashMap<FaultKey, Fault>,
    /// Every answer without a fault of its own waits this long (latency injection).
    delay: Option<Duration>,
    /// How names outside every served zone are answered (and the root, when no root zone is
    /// served): REFUSED unless set.
    outside: Option<Fault>,
}

/// One query the server received, while [`DnsServer::log_queries`] is on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggedQuery {
    /// When it arrived.
    pub at: Instant,
    /// The name asked, lower case, with the final dot.
    pub name: String,
    /// The record type asked.
    pub rtype: RecordType,
    /// Whether it came over TCP (otherwise UDP).
    pub tcp: bool,
}

#[derive(Default)]
struct Counters {
    udp: AtomicU64,
    tcp: AtomicU64,
    /// The queries received since logging was turned on; `None` while it is off.
    log: Mutex<Option<Vec<LoggedQuery>>>,
}

impl State {
    /// Whether `name` is inside a served zone other than the root.
    fn serves(&self, name: &LowerName) -> bool {
        let mut n = name.clone();
        while !n.is_root() {
            if self.by_apex.contains_key(&n) {
                return true;
            }
            n = n.base_name();
        }
        false
    }

    /// For a DS query at a served zone's apex: a catalog of its parent zone alone, since DS
    /// records live in the parent (RFC 4035 §3.1.4.1) and the catalog, picking the closest
    /// zone, would ask the child.
    fn parent_catalog(&self, apex: &LowerName) -> Option<Arc<Catalog>> {
        if apex.is_root() || !self.by_apex.contains_key(apex) {
            return None;
        }
        let mut parent = apex.base_name();
        loop {
            if let Some(handler) = self.by_apex.get(&parent) {
                let mut single = Catalog::new();
                single.upsert(parent, vec![Arc::clone(handler)]);
                return Some(Arc::new(single));
            }
            if parent.is_root() {
                return None;
            }
            parent = parent.base_name();
        }
    }
}

/// The request handler: faults first, then the catalog.
struct Handler {
    state: Arc<RwLock<State>>,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let protocol = request.protocol();
        match protocol {
            Protocol::Tcp => &self.counters.tcp,
            _ => &self.counters.udp,
        }
        .fetch_add(1, Ordering::Relaxed);
        let query = request
            .queries
            .queries()
            .first()
            .map(|q| (q.name().clone(), q.query_type()));
        if let Some((name, rtype)) = &query {
            let mut log = self
                .counters
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(log) = log.as_mut() {
                log.push(LoggedQuery {
                    at: Instant::now(),
                    name: name.to_string(),
                    rtype: *rtype,
                    tcp: protocol == Protocol::Tcp,
                });
            }
        }
        let (fault, catalog) = {
            let state = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fault = query.clone().and_then(|(name, rtype)| {
                if state.faults.is_empty() {
                    return None;
                }
                let key = (name, Some(rtype));
                state.faults.get(&key).copied().or_else(|| {
                    let (name, _) = key;
                    state.faults.get(&(name, None)).copied()
                })
            });
            let name = query.as_ref().map(|(n, _)| n);
            let is_ds = query.as_ref().is_some_and(|(_, t)| *t == RecordType::DS);
            let parent = name.filter(|_| is_ds).and_then(|n| state.parent_catalog(n));
            // The root zone answers for the root and for DS records of its children; any other
            // name outside the served zones is refused, as with no root zone.
            let unserved_root = name.is_some_and(|n| {
                n.is_root() && state.outside.is_some() && !state.zones.contains_key(".")
            });
            let outside = parent.is_none()
                && (unserved_root || name.is_some_and(|n| !n.is_root() && !state.serves(n)));
            let fault = if outside {
                fault.or(state.outside).or(Some(Fault::Refused))
            } else {
                fault.or(state.delay.map(Fault::Delay))
            };
            (fault, parent.unwrap_or_else(|| Arc::clone(&state.catalog)))
        };
        let code = match fault {
            Some(Fault::Truncate) if protocol == Protocol::Udp => {
                let mut response = MessageResponseBuilder::new(&request.queries, None)
                    .error_msg(&request.metadata, ResponseCode::NoError);
                response.metadata_mut().truncation = true;
                return match response_handle.send_response(response).await {
                    Ok(info) => info,
                    Err(_) => failed_info(request, ResponseCode::NoError),
                };
            }
            None | Some(Fault::Truncate) => {
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
            Some(Fault::NxDomain) => ResponseCode::NXDomain,
        };
        let response =
            MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, code);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => failed_info(request, code),
        }
    }
}

/// What the server records when a response could not be sent.
fn failed_info(request: &Request, code: ResponseCode) -> ResponseInfo {
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

/// A running authoritative DNS server (UDP and TCP on the same address and port).
pub struct DnsServer {
    addr: SocketAddr,
    state: Arc<RwLock<State>>,
    counters: Arc<Counters>,
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
        Self::serve(udp, tcp).map_err(bind)
    }

    /// Starts an empty server on exactly `addr` (UDP and TCP), e.g. port 53 for clients that
    /// cannot be told another port (binding it needs the right to).
    pub async fn start_on(addr: SocketAddr) -> Result<Self, DnsError> {
        let bind = |source| DnsError::Bind {
            ip: addr.ip(),
            source,
        };
        let udp = UdpSocket::bind(addr).await.map_err(bind)?;
        let tcp = TcpListener::bind(addr).await.map_err(bind)?;
        Self::serve(udp, tcp).map_err(bind)
    }

    fn serve(udp: UdpSocket, tcp: TcpListener) -> std::io::Result<Self> {
        let addr = udp.local_addr()?;
        let state = Arc::new(RwLock::new(State::default()));
        let counters = Arc::new(Counters::default());
        let mut server = Server::new(Handler {
            state: Arc::clone(&state),
            counters: Arc::clone(&counters),
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64 * 1024);
        Ok(Self {
            addr,
            state,
            counters,
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
        self.set_zones([(origin, text)])
    }

    /// Adds or replaces many zones at once, `(origin, text)` as for [`DnsServer::set_zone`]:
    /// every text is parsed before any is served, and the zone table is rebuilt once, so this is
    /// the way to load thousands of zones. On an error no zone changes.
    pub fn set_zones<O, T>(&self, zones: impl IntoIterator<Item = (O, T)>) -> Result<(), DnsError>
    where
        O: AsRef<str>,
        T: AsRef<str>,
    {
        let parsed = zones
            .into_iter()
            .map(|(origin, text)| {
                let origin = fqdn(origin.as_ref());
                let handler = build_zone(&origin, text.as_ref(), None)?;
                Ok((origin, handler))
            })
            .collect::<Result<Vec<_>, DnsError>>()?;
        self.update(|zones| zones.extend(parsed));
        Ok(())
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
        let origin = fqdn(origin);
        let handler = build_zone(&origin, text, Some(&signing))?;
        self.update(|zones| {
            zones.insert(origin, handler);
        });
        Ok(())
    }

    /// Removes the zone `origin`: the server then answers REFUSED for names in it.
    pub fn remove_zone(&self, origin: &str) -> Result<(), DnsError> {
        let origin = fqdn(origin);
        self.update(|zones| {
            zones.remove(&origin);
        });
        Ok(())
    }

    /// Changes the zone table and rebuilds the catalog the handler reads (cheap: the zones are
    /// shared, not copied).
    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Arc<dyn ZoneHandler>>)) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut state.zones);
        let mut catalog = Catalog::new();
        for handler in state.zones.values() {
            catalog.upsert(handler.origin().clone(), vec![Arc::clone(handler)]);
        }
        state.catalog = Arc::new(catalog);
        state.by_apex = state
            .zones
            .values()
            .map(|h| (h.origin().clone(), Arc::clone(h)))
            .collect();
    }

    /// Makes every answer wait `delay` (`None`: answer at once), as a distant server would;
    /// queries with a fault of their own ([`DnsServer::set_fault`]) follow that fault instead.
    pub fn set_delay(&self, delay: Option<Duration>) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.delay = delay;
    }

    /// How names outside every served zone are answered (`None`: REFUSED, the default), e.g.
    /// [`Fault::NxDomain`] for a server that says no name exists. The root is answered the same
    /// way while no root zone is served.
    pub fn set_outside(&self, fault: Option<Fault>) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.outside = fault;
    }

    /// Makes queries for exactly `name`, of any record type, misbehave (`None` clears the
    /// fault). A fault set for the name and one type with [`DnsServer::set_type_fault`] wins
    /// over this one for that type.
    pub fn set_fault(&self, name: &str, fault: Option<Fault>) {
        self.set_fault_key(name, None, fault);
    }

    /// Makes queries for exactly `name` and record type `rtype` misbehave (`None` clears this
    /// fault); other types at the same name are answered normally (or by the name's fault set
    /// with [`DnsServer::set_fault`]).
    pub fn set_type_fault(&self, name: &str, rtype: RecordType, fault: Option<Fault>) {
        self.set_fault_key(name, Some(rtype), fault);
    }

    fn set_fault_key(&self, name: &str, rtype: Option<RecordType>, fault: Option<Fault>) {
        let Ok(name) = Name::from_str(&fqdn(name)) else {
            return;
        };
        let key = (LowerName::from(name), rtype);
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match fault {
            Some(f) => state.faults.insert(key, f),
            None => state.faults.remove(&key),
        };
    }

    /// How many queries the server has received so far, over UDP and over TCP.
    pub fn query_counts(&self) -> QueryCounts {
        QueryCounts {
            udp: self.counters.udp.load(Ordering::Relaxed),
            tcp: self.counters.tcp.load(Ordering::Relaxed),
        }
    }

    /// Starts (`true`, with an empty log) or stops (`false`) recording every query received,
    /// with its arrival time: to see which queries a client makes and which wait for which.
    pub fn log_queries(&self, on: bool) {
        let mut log = self
            .counters
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *log = on.then(Vec::new);
    }

    /// The queries recorded since logging was turned on, in arrival order (the log is emptied,
    /// logging stays on). Empty when logging is off.
    pub fn take_query_log(&self) -> Vec<LoggedQuery> {
        let mut log = self
            .counters
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.as_mut().map(std::mem::take).unwrap_or_default()
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

fn build_zone(
    origin: &str,
    text: &str,
    signing: Option<&Signing>,
) -> Result<Arc<dyn ZoneHandler>, DnsError> {
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
    let mut full = String::new();
    if !text.contains("SOA") {
        full.push_str(&format!(
            "@ 300 IN SOA {ns_host} {mailbox} 1 3600 600 86400 60\n"
        ));
    }
    if !has_apex_ns(text) {
        full.push_str(&format!("@ 300 IN NS {ns_host}\n"));
    }
    full.push_str(text);
    let text = full;
    let (name, records): (Name, BTreeMap<RrKey, RecordSet>) =
        Parser::new(text, None, Some(origin_name))
            .parse()
            .map_err(|e| zone_err(e.to_string()))?;
    let proof = signing.map(|_| NxProofKind::Nsec);
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        name.clone(),
        records,
        ZoneType::Primary,
        AxfrPolicy::Deny,
        proof,
    )
    .map_err(zone_err)?;
    if let Some(signing) = signing {
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
