//! A real ACME CA for tests: Let's Encrypt's Pebble (Debian package `pebble`, 2.4.0 on
//! bookworm), started per test on loopback, validating challenges against addresses it resolves
//! through our own [`crate::dns`] server. Install it with `tests/e2e/pebble/install.sh`.
//!
//! ```no_run
//! # async fn demo(dns: std::net::SocketAddr) -> Result<(), String> {
//! use mtasts_testnet::pebble::{Pebble, PebbleOptions};
//! let mut opts = PebbleOptions::new(dns, 5002, 5001);
//! opts.validity = Some(std::time::Duration::from_secs(3600));
//! let Some(pebble) = Pebble::start(opts).await? else { return Ok(()) }; // SKIP: no Pebble
//! // ACME client: pebble.directory_url(), trusting pebble.api_root_pem_path();
//! // issued chains verify against pebble.issuing_roots_pem().await?
//! # Ok(()) }
//! ```
//!
//! # The recipe
//! - `pebble -config <tempdir>/config.json -dnsserver <our DNS>`, with `PEBBLE_VA_NOSLEEP=1`
//!   (otherwise the validator sleeps 0 to 15 s before each attempt), `PEBBLE_WFE_NONCEREJECT`
//!   (Pebble's default is 5 %, ours 0), `PEBBLE_AUTHZREUSE` (Pebble's default is 50 %, ours 0, so
//!   every order has fresh challenges) and `PEBBLE_CHAIN_LENGTH`; inherited `PEBBLE_*` variables
//!   are removed. The ACME and management listeners are on free ports of 127.0.0.1.
//! - The validator resolves the identifier (A and AAAA) through `-dnsserver` and connects to
//!   `<address>:httpPort` for HTTP-01 and `<address>:tlsPort` for TLS-ALPN-01 (SNI = the name,
//!   ALPN `acme-tls/1`). So a zone entry `mta-sts.example.test. A 127.0.0.1` plus a listener on
//!   `127.0.0.1:http_port` is all HTTP-01 needs. DNS-01 asks the same server for TXT.
//! - The validator makes **three attempts** per challenge (three A and AAAA lookups,
//!   three HTTP requests or TLS handshakes), and all must succeed; it asks no CAA. HTTP-01
//!   requests carry `Host: <name>:<http_port>` when the port is not 80. Any address of
//!   127.0.0.0/8 works (the `world` addresses too); publish only addresses that are served.
//! - A TLS-ALPN-01 responder on rustls must build its `CertifiedKey` with `CertifiedKey::new`:
//!   `with_single_cert`/`CertifiedKey::from_der` parse the certificate with webpki, which
//!   refuses the critical acmeIdentifier extension (`UnsupportedCriticalExtension`). Pebble
//!   reports any failed handshake as "Failed to connect to `<addr>` for the tls-alpn-01 challenge".
//! - Timing (debug build, 2 cores): start 0.2 to 0.6 s (RSA keys), an account 50 ms, one
//!   issuance (order to chain) 0.46 s with a 50 ms first poll delay. Without `PEBBLE_VA_NOSLEEP`
//!   each attempt would first sleep 0 to 15 s.
//! - Pebble's API is HTTPS only, with the certificate we give it: here a leaf for `127.0.0.1`,
//!   `::1` and `localhost`, signed by a CA made per instance (rcgen), whose PEM file is
//!   [`Pebble::api_root_pem_path`]. The issued certificates chain to another root, made by Pebble
//!   at every start and served by the management interface: [`Pebble::issuing_roots_pem`].
//!
//! # What Pebble 2.4.0 (Debian) can do
//! - Flags: `-config <file>`, `-dnsserver <host:port>`, `-strict` (nothing else).
//! - Config keys (under `"pebble"`, matched case-insensitively, unknown keys ignored silently):
//!   `listenAddress`, `managementListenAddress`, `certificate`, `privateKey`, `httpPort`,
//!   `tlsPort`, `ocspResponderURL`, `externalAccountBindingRequired`, `externalAccountMACKeys`,
//!   `domainBlocklist`, and `certificateValidityPeriod` in **seconds** (0 or absent: 157766400 s,
//!   five years). There are no `profiles` (newer Pebbles only): validity is per instance.
//! - Environment: `PEBBLE_VA_NOSLEEP`, `PEBBLE_VA_SLEEPTIME`, `PEBBLE_VA_ALWAYS_VALID`,
//!   `PEBBLE_WFE_NONCEREJECT`, `PEBBLE_WFE_ORDERS_PER_PAGE`, `PEBBLE_AUTHZREUSE`,
//!   `PEBBLE_CHAIN_LENGTH`, `PEBBLE_ALTERNATE_ROOTS` (the binary's strings list no others).
//! - The directory has `newNonce`, `newAccount`, `newOrder`, `revokeCert`, `keyChange` and
//!   `meta` (`termsOfService`, `externalAccountRequired`): **no `renewalInfo` (ARI)**, so
//!   instant-acme refuses `NewOrder::replaces` with `Error::Unsupported`.
//! - Management interface (HTTPS, same API certificate): `/roots/<n>`, `/root-keys/<n>`,
//!   `/intermediates/<n>`, `/intermediate-keys/<n>`, `/cert-status-by-serial/<hex>`. `/roots/0`
//!   is the issuing root (RSA 2048, valid 30 years); with `PEBBLE_CHAIN_LENGTH` > 1 the extra
//!   intermediates are not served there, but the chain Pebble sends contains them.
//! - Every start makes a new root and intermediate, and forgets every account, order and
//!   certificate (state is in memory only): after [`Pebble::start_again`] an old account gets
//!   `accountDoesNotExist`, and old chains no longer verify against the new roots.

use std::fs::{self, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// Where Debian installs Pebble.
pub const PEBBLE_BIN: &str = "/usr/bin/pebble";
/// How long [`Pebble::start`] waits for the directory to answer (it takes about 0.3 s).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The time budget of one request to Pebble's API or management interface.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How to run Pebble. Build with [`PebbleOptions::new`] and change the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PebbleOptions {
    /// The DNS server the validator resolves identifiers with (our [`crate::dns::DnsServer`]).
    pub dns: SocketAddr,
    /// The port the HTTP-01 validator connects to, on each address the name resolves to.
    pub http_port: u16,
    /// The port the TLS-ALPN-01 validator connects to, on each address the name resolves to.
    pub tls_port: u16,
    /// The validity period of issued certificates (`certificateValidityPeriod`, whole seconds,
    /// rounded up; a leaf's `notAfter` is `notBefore` + this - 1 s); `None` (or zero): Pebble's
    /// five years.
    pub validity: Option<Duration>,
    /// The share of good nonces Pebble rejects as `badNonce` (`PEBBLE_WFE_NONCEREJECT`), 0..=100.
    pub nonce_reject_percent: u8,
    /// How often a new order reuses a valid authorization of the same account
    /// (`PEBBLE_AUTHZREUSE`), 0..=100; 0 here, so every order needs its challenges answered.
    pub authz_reuse_percent: u8,
    /// Intermediates between leaf and root (`PEBBLE_CHAIN_LENGTH`, at least 1).
    pub chain_length: u8,
    /// Treat every challenge as answered without looking (`PEBBLE_VA_ALWAYS_VALID`): for
    /// benchmarks of the client side alone.
    pub always_valid: bool,
    /// Pebble's `-strict` mode (upcoming breaking changes of the API).
    pub strict: bool,
}

impl PebbleOptions {
    /// Validation through `dns` on `http_port` and `tls_port`; five-year certificates, no nonce
    /// rejection, no authorization reuse, one intermediate, real validation.
    pub fn new(dns: SocketAddr, http_port: u16, tls_port: u16) -> Self {
        Self {
            dns,
            http_port,
            tls_port,
            validity: None,
            nonce_reject_percent: 0,
            authz_reuse_percent: 0,
            chain_length: 1,
            always_valid: false,
            strict: false,
        }
    }
}

/// A running Pebble, killed when dropped. See the module docs.
pub struct Pebble {
    opts: PebbleOptions,
    dir: tempfile::TempDir,
    api_root_path: PathBuf,
    api_root_pem: String,
    acme_port: u16,
    management_port: u16,
    tls: TlsConnector,
    child: Option<Child>,
}

impl std::fmt::Debug for Pebble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pebble")
            .field("acme_port", &self.acme_port)
            .field("management_port", &self.management_port)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Pebble {
    /// Writes the configuration and API certificate into a fresh temporary directory, starts
    /// Pebble and waits (at most 10 s) until its directory answers over HTTPS.
    ///
    /// `Ok(None)`, after saying `SKIP` on stderr, when [`PEBBLE_BIN`] is missing.
    ///
    /// # Errors
    /// When the files cannot be written, Pebble does not start or does not answer in time (the
    /// message carries its log).
    ///
    /// # Panics
    /// When `CI=true` and [`PEBBLE_BIN`] is missing (CI must not skip).
    pub async fn start(opts: PebbleOptions) -> Result<Option<Self>, String> {
        if !Path::new(PEBBLE_BIN).is_file() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {PEBBLE_BIN} is missing: run tests/e2e/pebble/install.sh"
            );
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            #[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
            {
                eprintln!(
                    "SKIP {test} (pebble): {PEBBLE_BIN} is missing; tests/e2e/pebble/install.sh installs it"
                );
            }
            return Ok(None);
        }
        let dir = tempfile::Builder::new()
            .prefix("mtasts-pebble-")
            .tempdir()
            .map_err(|e| format!("pebble: temporary directory: {e}"))?;
        let api = ApiCert::generate()?;
        let write = |name: &str, text: &str| {
            fs::write(dir.path().join(name), text).map_err(|e| format!("pebble: write {name}: {e}"))
        };
        write("api-root.pem", &api.root_pem)?;
        write("api-cert.pem", &api.cert_pem)?;
        write("api-key.pem", &api.key_pem)?;
        let (acme_port, management_port) = two_free_ports()?;
        let validity = opts
            .validity
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        // Relative paths: Pebble runs in the temporary directory.
        let config = format!(
            "{{\"pebble\": {{\n  \"listenAddress\": \"127.0.0.1:{acme_port}\",\n  \
             \"managementListenAddress\": \"127.0.0.1:{management_port}\",\n  \
             \"certificate\": \"api-cert.pem\",\n  \"privateKey\": \"api-key.pem\",\n  \
             \"httpPort\": {},\n  \"tlsPort\": {},\n  \"ocspResponderURL\": \"\",\n  \
             \"externalAccountBindingRequired\": false,\n  \
             \"certificateValidityPeriod\": {validity}\n}}}}\n",
            opts.http_port, opts.tls_port,
        );
        write("config.json", &config)?;
        let mut pebble = Self {
            opts,
            api_root_path: dir.path().join("api-root.pem"),
            dir,
            api_root_pem: api.root_pem,
            acme_port,
            management_port,
            tls: TlsConnector::from(api.client_config),
            child: None,
        };
        pebble.spawn().await?;
        Ok(Some(pebble))
    }

    /// The ACME directory, `https://127.0.0.1:<port>/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The management interface, `https://127.0.0.1:<port>` (no final slash).
    pub fn management_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.management_port)
    }

    /// The PEM file of the CA that signed Pebble's API certificate: what an ACME client must
    /// trust to talk to Pebble (`Account::builder_with_root`, `--acme-root`). The same across
    /// [`Pebble::start_again`].
    pub fn api_root_pem_path(&self) -> &Path {
        &self.api_root_path
    }

    /// The CA of [`Pebble::api_root_pem_path`], as PEM text.
    pub fn api_root_pem(&self) -> String {
        self.api_root_pem.clone()
    }

    /// The roots issued certificates chain to (`/roots/0`, and `/roots/1`.. with
    /// `PEBBLE_ALTERNATE_ROOTS`), as PEM: the extra trust roots of a client that fetches from a
    /// host with a Pebble certificate. New at every (re)start.
    ///
    /// # Errors
    /// When the management interface does not answer 200 for `/roots/0`.
    pub async fn issuing_roots_pem(&self) -> Result<String, String> {
        let mut pem = String::new();
        for n in 0..8 {
            match self.management_get(&format!("/roots/{n}")).await? {
                (200, body) => pem.push_str(&body),
                (status, body) if n == 0 => {
                    return Err(format!("pebble /roots/0: {status} {body}"));
                }
                _ => break,
            }
        }
        Ok(pem)
    }

    /// `GET <management_url><path>` (e.g. `/intermediates/0`, `/cert-status-by-serial/<hex>`):
    /// the status and the body.
    ///
    /// # Errors
    /// When the connection, the TLS handshake or the request fails or takes over 5 s.
    pub async fn management_get(&self, path: &str) -> Result<(u16, String), String> {
        self.get(self.management_port, path).await
    }

    /// Pebble's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What Pebble wrote on stdout and stderr since the first start (restarts are marked).
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Kills Pebble and waits for it: the CA is down (connections are refused). Nothing when it
    /// is down already.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops Pebble if it runs and starts it again on the same ports with the same API
    /// certificate and options: a CA that was down and is back, with fresh state (new issuing
    /// root, no accounts, no orders).
    ///
    /// # Errors
    /// As for [`Pebble::start`].
    pub async fn start_again(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn().await
    }

    /// Stops the process (SIGSTOP): the CA hangs, connections are accepted by the kernel but
    /// never answered, until [`Pebble::resume`].
    ///
    /// # Errors
    /// When Pebble is not running or `kill` fails.
    pub fn pause(&self) -> Result<(), String> {
        self.signal("-STOP")
    }

    /// Lets a paused process run on (SIGCONT).
    ///
    /// # Errors
    /// When Pebble is not running or `kill` fails.
    pub fn resume(&self) -> Result<(), String> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> Result<(), String> {
        let pid = self.pid().ok_or("pebble is not running")?;
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map_err(|e| format!("kill {sig} {pid}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {sig} {pid}: {status}"))
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pebble.log")
    }

    /// Starts the process with the written configuration and waits until the directory answers.
    async fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("pebble: open {}: {e}", log_path.display()))?;
        if log.metadata().map_or(0, |m| m.len()) > 0 {
            let _ = std::io::Write::write_all(&mut log, b"==== mtasts-testnet: restart ====\n");
        }
        let err = log.try_clone().map_err(|e| format!("pebble: log: {e}"))?;
        let o = &self.opts;
        let mut cmd = Command::new(PEBBLE_BIN);
        cmd.arg("-config")
            .arg(self.dir.path().join("config.json"))
            .arg("-dnsserver")
            .arg(o.dns.to_string());
        if o.strict {
            cmd.arg("-strict");
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PEBBLE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PEBBLE_VA_NOSLEEP", "1")
            .env(
                "PEBBLE_WFE_NONCEREJECT",
                o.nonce_reject_percent.min(100).to_string(),
            )
            .env(
                "PEBBLE_AUTHZREUSE",
                o.authz_reuse_percent.min(100).to_string(),
            )
            .env("PEBBLE_CHAIN_LENGTH", o.chain_length.max(1).to_string());
        if o.always_valid {
            cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        let child = cmd
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("pebble: spawn {PEBBLE_BIN}: {e}"))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "pebble exited ({status}) at start:\n{}",
                    self.log()
                ));
            }
            if let Ok((200, _)) = self.get(self.acme_port, "/dir").await {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.stop();
                return Err(format!(
                    "pebble did not answer within {READY_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// One HTTP/1.1 `GET` over TLS to 127.0.0.1:`port`, trusting only the API CA.
    async fn get(&self, port: u16, path: &str) -> Result<(u16, String), String> {
        let fetch = async {
            let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
            let conn = tokio::spawn(conn);
            let request = Request::get(path)
                .header(hyper::header::HOST, format!("127.0.0.1:{port}"))
                .header(hyper::header::CONNECTION, "close")
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("request: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            conn.abort();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("GET 127.0.0.1:{port}{path}: no answer in {REQUEST_TIMEOUT:?}"))?
            .map_err(|e: String| format!("GET 127.0.0.1:{port}{path}: {e}"))
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pebble's API certificate: a leaf for 127.0.0.1, ::1 and localhost, signed by a CA of its own.
struct ApiCert {
    root_pem: String,
    cert_pem: String,
    key_pem: String,
    /// A TLS client trusting only that CA (ring provider).
    client_config: Arc<ClientConfig>,
}

impl ApiCert {
    fn generate() -> Result<Self, String> {
        let e = |e: rcgen::Error| format!("pebble API certificate: {e}");
        let now = time::OffsetDateTime::now_utc();
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "mtasts testnet Pebble API CA");
        ca.not_before = now - time::Duration::days(1);
        ca.not_after = now + time::Duration::days(365);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(e)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let issuer = Issuer::new(ca, ca_key);

        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).map_err(e)?;
        leaf.subject_alt_names.extend([
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]);
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.not_before = now - time::Duration::days(1);
        leaf.not_after = now + time::Duration::days(365);
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate().map_err(e)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(e)?;

        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_cert.der().to_vec()))
            .map_err(|e| format!("pebble API CA: {e}"))?;
        let client_config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("pebble API client: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Self {
            root_pem: ca_cert.pem(),
            cert_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            client_config: Arc::new(client_config),
        })
    }
}

/// Two distinct free TCP ports on 127.0.0.1 (held together while chosen, then released).
fn two_free_ports() -> Result<(u16, u16), String> {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| Ok((l.local_addr()?.port(), l)))
            .map_err(|e| format!("pebble: no free port on 127.0.0.1: {e}"))
    };
    let (a, _la) = bind()?;
    let (b, _lb) = bind()?;
    Ok((a, b))
}
