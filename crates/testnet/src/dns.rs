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

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RecordSet, RrKey};
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
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

#[derive(Default)]
struct State {
    /// Origin (FQDN, lower case) -> zone text.
    zones: BTreeMap<String, String>,
    catalog: Arc<Catalog>,
    faults: HashMap<LowerName, Fault>,
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
        let name = request.queries.queries().first().map(|q| q.name().clone());
        let (fault, catalog) = {
            let state = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fault = name.as_ref().and_then(|n| state.faults.get(n).copied());
            (fault, Arc::clone(&state.catalog))
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
    /// (RFC 1035 §5; `@` is the origin, names without a final dot are relative to it). An SOA
    /// record is added when the text has none.
    pub fn set_zone(&self, origin: &str, text: &str) -> Result<(), DnsError> {
        let origin = fqdn(origin);
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut zones = state.zones.clone();
        zones.insert(origin, text.to_owned());
        state.catalog = Arc::new(build_catalog(&zones)?);
        state.zones = zones;
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
        state.catalog = Arc::new(build_catalog(&zones)?);
        state.zones = zones;
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

fn build_catalog(zones: &BTreeMap<String, String>) -> Result<Catalog, DnsError> {
    let mut catalog = Catalog::new();
    for (origin, text) in zones {
        let zone_err = |message: String| DnsError::Zone {
            origin: origin.clone(),
            message,
        };
        let origin_name = Name::from_str(origin).map_err(|e| zone_err(e.to_string()))?;
        let text = if text.contains("SOA") {
            text.clone()
        } else {
            format!("@ 300 IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60\n{text}")
        };
        let (name, records): (Name, BTreeMap<RrKey, RecordSet>) =
            Parser::new(text, None, Some(origin_name))
                .parse()
                .map_err(|e| zone_err(e.to_string()))?;
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
            name.clone(),
            records,
            ZoneType::Primary,
            AxfrPolicy::Deny,
            None,
        )
        .map_err(zone_err)?;
        let handlers: Vec<Arc<dyn ZoneHandler>> = vec![Arc::new(handler)];
        catalog.upsert(LowerName::from(name), handlers);
    }
    Ok(catalog)
}
