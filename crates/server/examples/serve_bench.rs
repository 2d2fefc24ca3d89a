//! The server and the load tools of bench/serve (see bench/serve/run.sh and BENCHMARKS.md,
//! "serve").
//!
//! ```text
//! serve_bench serve --domains N --https ADDR --dir DIR [--threads T]   (T = 0: current-thread)
//!     hosts mta-sts.d0.test .. mta-sts.d{N-1}.test with certificates from a fresh test PKI,
//!     writes DIR/{root,cert,key}.pem and DIR/policy.txt (d0's, for nginx), prints one JSON line
//!     (start-up figures), then "ready", and serves until stdin closes.
//! serve_bench populate --store URL --domains N --dir DIR
//!     adds d0.test .. d{N-1}.test to an empty store through the domain operations
//!     (`Domains::add`, `Domains::import_certificate`), each with its own certificate for
//!     mta-sts.dI.test from a fresh test PKI (distinct keys); writes DIR/root.pem; prints one JSON
//!     line. For `mtasts serve --store URL` (bench/serve/scale.sh). N is at most 100,000.
//! serve_bench raw --domains N --https ADDR [--shared-key] [--threads 0]
//!     the floor under `serve`: plain tokio-rustls, a HashMap from SNI name to certificate and
//!     policy body, one request read and answered per connection, no hyper, no limits. Each name
//!     has its own key and chain, or with --shared-key all N names share d0's (the client does
//!     not verify). The table is built on a thread of its own, so its garbage is not in the
//!     serving thread's heap (see `daemon::load_apart`). Prints "ready", serves until stdin
//!     closes.
//! serve_bench handshakes --addr ADDR --names N --conns C --secs S
//!     one fresh TLS connection per fetch (HTTP/1.1, Connection: close), C at a time, names
//!     d0..d{N-1} in turn; prints one JSON line (fetches/s, p50, p99).
//! serve_bench idle --addr ADDR --count N --hold S
//!     opens N TCP connections (from 127.0.2.x, 200 per address) that never speak, then times
//!     fetches from 127.0.0.1 while they are held; prints one JSON line.
//! ```
//!
//! The load tools do not verify the certificate (the tests do): they measure the server.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use mtasts_core::policy::Mode;
use mtasts_core::render::build_policy;
use mtasts_server::{Config, Hosted, HostedDomain, HostedSet, Server};
use mtasts_testnet::pki::{Defect, Pki};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    let value = args
        .iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1));
    match (value, default) {
        (Some(v), _) => v.parse().unwrap_or_else(|_| panic!("bad {name}: {v}")),
        (None, Some(d)) => d,
        (None, None) => panic!("{name} is required"),
    }
}

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads = arg(&args, "--threads", Some(1usize));
    // --threads 0: a current-thread runtime (everything on the main thread).
    let rt = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    match args.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve(&args)),
        Some("handshakes") => rt.block_on(handshakes(&args)),
        Some("idle") => rt.block_on(idle(&args)),
        Some("populate") => rt.block_on(populate(&args)),
        Some("raw") => rt.block_on(raw(&args)),
        _ => panic!("usage: serve_bench serve|populate|raw|handshakes|idle ..."),
    }
}

async fn serve(args: &[String]) {
    let n: usize = arg(args, "--domains", None);
    let addr: SocketAddr = arg(args, "--https", None);
    let dir: String = arg(args, "--dir", None);
    let pki = Pki::new().unwrap();
    // What the store would hand over: DER chains and keys, policies.
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let domain = format!("d{i}.test");
        let cert = pki
            .issue(&format!("mta-sts.{domain}"), Defect::Valid)
            .unwrap();
        let mx = format!("mx.{domain}");
        let policy = build_policy(Mode::Enforce, 604_800, &[mx.as_str()])
            .unwrap()
            .0;
        rows.push((domain, policy, cert.chain, cert.key));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let pem = |label: &str, der: &[u8]| {
        let b64 = base64(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let (_, policy, chain, key) = &rows[0];
    let chain_pem: String = chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
    std::fs::write(format!("{dir}/cert.pem"), chain_pem).unwrap();
    std::fs::write(
        format!("{dir}/key.pem"),
        pem("PRIVATE KEY", key.secret_der()),
    )
    .unwrap();
    std::fs::write(format!("{dir}/root.pem"), pki.root_pem()).unwrap();
    std::fs::write(format!("{dir}/policy.txt"), policy.render()).unwrap();

    let rss_before = rss_kib("self");
    let started = Instant::now();
    let domains: Vec<HostedDomain> = rows
        .into_iter()
        .map(|(d, p, c, k)| HostedDomain::new(&d, p, c, k).unwrap())
        .collect();
    let hosted = Hosted::build(domains);
    let load = started.elapsed();
    let hosted = HostedSet::new(hosted);
    let rss_after = rss_kib("self");
    let server = Server::bind(Config::new(addr)).await.unwrap();
    println!(
        "{{\"domains\":{n},\"load_ms\":{:.1},\"rss_before_kib\":{rss_before},\"rss_after_kib\":{rss_after}}}",
        load.as_secs_f64() * 1e3
    );
    println!("ready");
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| {
            use std::io::Read;
            let mut sink = Vec::new();
            std::io::stdin().read_to_end(&mut sink)
        })
        .await;
    };
    server.run(hosted, stdin_closed).await.unwrap();
}

/// Most domains `populate` adds: the run stays bounded (about 1 ms per domain).
const MAX_POPULATE: usize = 100_000;

async fn populate(args: &[String]) {
    use mtasts_core::rollout::RolloutConfig;
    use mtasts_server::domains::{AddDomain, Domains, MxSource};
    use mtasts_store::{Store, StoreOptions};
    use time::OffsetDateTime;

    let url: String = arg(args, "--store", None);
    let n: usize = arg(args, "--domains", None);
    let dir: String = arg(args, "--dir", None);
    assert!(n <= MAX_POPULATE, "--domains: at most {MAX_POPULATE}");
    let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
    assert!(
        store.domains().await.unwrap().is_empty(),
        "{url} already holds domains: populate an empty store"
    );
    let domains = Domains::new(store.clone(), RolloutConfig::default()).unwrap();
    let pki = Pki::new().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/root.pem"), pki.root_pem()).unwrap();
    let started = Instant::now();
    for i in 0..n {
        let domain = format!("d{i}.test");
        let req = AddDomain {
            domain: domain.clone(),
            mx: MxSource::Patterns(vec![format!("mx.{domain}")]),
            mode: Mode::Testing,
            max_age: None,
            force: None,
            delegation: Default::default(),
        };
        domains
            .add(&req, "bench", OffsetDateTime::now_utc())
            .await
            .unwrap();
        let cert = pki
            .issue(&format!("mta-sts.{domain}"), Defect::Valid)
            .unwrap();
        domains
            .import_certificate(
                &domain,
                &cert.chain_pem(),
                &cert.key_pem(),
                "bench",
                None,
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
    }
    store.close().await;
    println!(
        "{{\"domains\":{n},\"populate_s\":{:.1}}}",
        started.elapsed().as_secs_f64()
    );
}

/// What `raw` serves for one name.
#[derive(Debug)]
struct RawEntry {
    cert: Arc<rustls::sign::CertifiedKey>,
    body: bytes::Bytes,
}

#[derive(Debug)]
struct RawResolver(std::collections::HashMap<String, RawEntry>);

impl rustls::server::ResolvesServerCert for RawResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0
            .get(hello.server_name()?)
            .map(|e| Arc::clone(&e.cert))
    }
}

/// N names `mta-sts.dI.test`, each with its own key and chain (or all with d0's).
fn raw_table(n: usize, shared: bool) -> RawResolver {
    let pki = Pki::new().unwrap();
    let provider = rustls::crypto::ring::default_provider();
    let mut table = std::collections::HashMap::with_capacity(n);
    let mut first: Option<Arc<rustls::sign::CertifiedKey>> = None;
    for i in 0..n {
        let domain = format!("d{i}.test");
        let cert = match (&first, shared) {
            (Some(c), true) => Arc::clone(c),
            _ => {
                let issued = pki
                    .issue(&format!("mta-sts.{domain}"), Defect::Valid)
                    .unwrap();
                let c = rustls::sign::CertifiedKey::from_der(issued.chain, issued.key, &provider)
                    .unwrap();
                Arc::new(c)
            }
        };
        first.get_or_insert_with(|| Arc::clone(&cert));
        let mx = format!("mx.{domain}");
        let policy = build_policy(Mode::Testing, 86_400, &[mx.as_str()])
            .unwrap()
            .0;
        let body = bytes::Bytes::from(policy.render());
        table.insert(format!("mta-sts.{domain}"), RawEntry { cert, body });
    }
    table.shrink_to_fit();
    RawResolver(table)
}

async fn raw(args: &[String]) {
    let n: usize = arg(args, "--domains", None);
    let addr: SocketAddr = arg(args, "--https", None);
    let shared = args.iter().any(|a| a == "--shared-key");
    let resolver = Arc::new(
        std::thread::spawn(move || raw_table(n, shared))
            .join()
            .unwrap(),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn rustls::server::ResolvesServerCert>);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    println!("ready");
    let stdin_closed = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink)
    });
    tokio::pin!(stdin_closed);
    loop {
        tokio::select! {
            _ = &mut stdin_closed => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, resolver) = (acceptor.clone(), Arc::clone(&resolver));
                tokio::spawn(async move { raw_connection(acceptor, tcp, &resolver).await });
            }
        }
    }
}

/// One handshake, one request (read up to the blank line, at most 4 KiB), one answer, close.
async fn raw_connection(acceptor: tokio_rustls::TlsAcceptor, tcp: TcpStream, table: &RawResolver) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(mut tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
    else {
        return;
    };
    let mut buf = [0u8; 4096];
    let mut got = 0;
    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return,
            Ok(k) => got += k,
        }
        if got == buf.len() {
            return;
        }
    }
    let name = tls.get_ref().1.server_name().unwrap_or_default();
    let Some(entry) = table.0.get(name) else {
        return;
    };
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        entry.body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&entry.body);
    let _ = tls.write_all(&answer).await;
    let _ = tls.shutdown().await;
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Accepts any certificate: the load tools measure the server, the tests check it.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c.resumption = rustls::client::Resumption::disabled();
    Arc::new(c)
}

/// One fetch on a fresh connection; the latency, or `None` on any failure.
async fn fetch_once(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    from: Option<Ipv4Addr>,
    name: &str,
) -> Option<Duration> {
    let started = Instant::now();
    let tcp = match from {
        Some(ip) => {
            let s = TcpSocket::new_v4().ok()?;
            s.bind(SocketAddr::new(ip.into(), 0)).ok()?;
            s.connect(addr).await.ok()?
        }
        None => TcpStream::connect(addr).await.ok()?,
    };
    tcp.set_nodelay(true).ok()?;
    let server_name = ServerName::try_from(name.to_owned()).ok()?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(server_name, tcp)
        .await
        .ok()?;
    let req = format!(
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.ok()?;
    let mut answer = Vec::with_capacity(512);
    let _ = tls.read_to_end(&mut answer).await;
    answer
        .starts_with(b"HTTP/1.1 200")
        .then(|| started.elapsed())
}

fn summary(mut lat: Vec<Duration>, errors: u64, secs: f64) -> String {
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    format!(
        "{{\"ok\":{},\"errors\":{errors},\"per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        lat.len(),
        lat.len() as f64 / secs,
        pct(0.50),
        pct(0.99)
    )
}

async fn handshakes(args: &[String]) {
    let addr: SocketAddr = arg(args, "--addr", None);
    let names: usize = arg(args, "--names", Some(1));
    let conns: usize = arg(args, "--conns", Some(16));
    let secs: f64 = arg(args, "--secs", Some(5.0));
    let config = client_config();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..conns {
        let (config, stop) = (Arc::clone(&config), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut k) = (Vec::new(), 0u64, t);
            while !stop.load(Ordering::Relaxed) {
                let name = format!("mta-sts.d{}.test", k % names);
                k += conns;
                match fetch_once(&config, addr, None, &name).await {
                    Some(d) => lat.push(d),
                    None => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    println!("{}", summary(lat, errors, started.elapsed().as_secs_f64()));
}

async fn idle(args: &[String]) {
    let addr: SocketAddr = arg(args, "--addr", None);
    let count: usize = arg(args, "--count", Some(10_000));
    let hold: f64 = arg(args, "--hold", Some(3.0));
    let started = Instant::now();
    let mut held = Vec::with_capacity(count);
    let mut failed = 0;
    for i in 0..count {
        let ip = Ipv4Addr::new(
            127,
            0,
            2 + u8::try_from(i / 50_000).unwrap(),
            1 + u8::try_from(i / 200 % 250).unwrap(),
        );
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(ip.into(), 0)).unwrap();
        match s.connect(addr).await {
            Ok(c) => held.push(c),
            Err(_) => failed += 1,
        }
    }
    let opened = started.elapsed();
    println!(
        "{{\"opened\":{},\"failed\":{failed},\"open_s\":{:.2}}}",
        held.len(),
        opened.as_secs_f64()
    );
    // Let the server accept them all, then fetch while they are held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("holding");
    let config = client_config();
    let (mut lat, mut errors) = (Vec::new(), 0);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs_f64(hold) {
        match fetch_once(&config, addr, None, "mta-sts.d0.test").await {
            Some(d) => lat.push(d),
            None => errors += 1,
        }
    }
    println!("{}", summary(lat, errors, t0.elapsed().as_secs_f64()));
    // Still open at the end?
    let mut still = 0;
    let mut buf = [0u8; 1];
    for c in &held {
        if matches!(c.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            still += 1;
        }
    }
    println!("{{\"still_open\":{still}}}");
}
