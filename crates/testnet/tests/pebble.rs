//! The Pebble harness end to end: a real ACME client (instant-acme, as `serve` uses) against a
//! real Pebble whose validator resolves names through our DNS server and reaches listeners of
//! the test on loopback. Prints the time each issuance takes. SKIP without /usr/bin/pebble.

#![allow(
    clippy::print_stderr,
    reason = "timings and Pebble's log help the reader"
)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::pebble::{Pebble, PebbleOptions};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NAME: &str = "mta-sts.example.test";

/// Our DNS with `mta-sts.example.test` at 127.0.0.1.
async fn dns() -> DnsServer {
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    dns.set_zone("example.test.", "mta-sts 60 IN A 127.0.0.1\n")
        .unwrap();
    dns
}

/// Tokens -> key authorizations, answered at `/.well-known/acme-challenge/<token>`.
type Http01 = Arc<Mutex<HashMap<String, String>>>;

/// A tiny HTTP-01 responder on `listener`; the count of requests it answered.
fn serve_http01(listener: TcpListener, tokens: Http01) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (tokens, log) = (Arc::clone(&tokens), Arc::clone(&log));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(head.clone());
                let token = path.strip_prefix("/.well-known/acme-challenge/");
                let answer = token.and_then(|t| tokens.lock().unwrap().get(t).cloned());
                let response = match answer {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\
                             Connection: close\r\n\r\n"
                        .to_owned(),
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    seen
}

/// A TLS-ALPN-01 responder (RFC 8737) on `listener`: for each handshake offering `acme-tls/1`,
/// a self-signed certificate for `NAME` with the critical acmeIdentifier extension.
fn serve_tls_alpn01(listener: TcpListener, digest: Arc<Mutex<Option<Vec<u8>>>>) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Some(digest) = digest.lock().unwrap().clone() else {
                continue;
            };
            let mut params = rcgen::CertificateParams::new(vec![NAME.to_owned()]).unwrap();
            params
                .custom_extensions
                .push(rcgen::CustomExtension::new_acme_identifier(&digest));
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            // Not `with_single_cert`: it parses the certificate with webpki, which refuses the
            // unknown critical acmeIdentifier extension (UnsupportedCriticalExtension).
            let key = provider.key_provider.load_private_key(key).unwrap();
            let certified = rustls::sign::CertifiedKey::new(vec![cert.der().clone()], key);
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
            config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            tokio::spawn(async move {
                // The validator only looks at the handshake; it closes the connection.
                let _ = acceptor.accept(stream).await;
            });
        }
    });
}

/// A new account on `pebble`, trusting its API CA.
async fn account(pebble: &Pebble) -> (Account, AccountCredentials) {
    let new = NewAccount {
        contact: &[],
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    Account::builder_with_root(pebble.api_root_pem_path())
        .unwrap()
        .create(&new, pebble.directory_url(), None)
        .await
        .unwrap()
}

/// Orders `NAME`, answers its one challenge of type `kind` (HTTP-01 through `http`, TLS-ALPN-01
/// through `alpn`), finalizes, and returns the chain as PEM.
async fn issue(
    account: &Account,
    kind: ChallengeType,
    http: &Http01,
    alpn: &Arc<Mutex<Option<Vec<u8>>>>,
) -> String {
    let ids = [Identifier::Dns(NAME.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Pending);
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.unwrap();
        assert_eq!(authz.status, AuthorizationStatus::Pending);
        let mut challenge = authz.challenge(kind.clone()).expect("challenge offered");
        let key_auth = challenge.key_authorization();
        match kind {
            ChallengeType::Http01 => {
                let token = challenge.token.clone();
                http.lock()
                    .unwrap()
                    .insert(token, key_auth.as_str().to_owned());
            }
            _ => *alpn.lock().unwrap() = Some(key_auth.digest().as_ref().to_vec()),
        }
        challenge.set_ready().await.unwrap();
    }
    let fast = RetryPolicy::new()
        .initial_delay(Duration::from_millis(50))
        .backoff(1.5)
        .timeout(Duration::from_secs(20));
    let t = Instant::now();
    let status = order.poll_ready(&fast).await.unwrap();
    assert_eq!(status, OrderStatus::Ready);
    let ready = t.elapsed();
    let _key_pem = order.finalize().await.unwrap();
    let finalized = t.elapsed();
    let chain = order.poll_certificate(&fast).await.unwrap();
    eprintln!(
        "{kind:?}: ready after {ready:?}, finalized at {finalized:?}, chain at {:?}",
        t.elapsed()
    );
    chain
}

/// The chain's certificates, and a check that it verifies for `NAME` against `roots_pem` at
/// `now`.
fn verify(chain_pem: &str, roots_pem: &str, now: UnixTime) -> Result<(), rustls::Error> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(root.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let name = ServerName::try_from(NAME).unwrap();
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], now)
        .map(|_| ())
}

/// The leaf's (not_before, not_after) as Unix seconds.
fn leaf_validity(chain_pem: &str) -> (i64, i64) {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let v = cert.validity();
    (v.not_before.timestamp(), v.not_after.timestamp())
}

/// HTTP-01 and TLS-ALPN-01 through our DNS, with one-hour certificates; the chains verify
/// against the management interface's root and not against the API CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_by_http01_and_tls_alpn01_through_our_dns() {
    let dns = dns().await;
    let http = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let tls = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut opts = PebbleOptions::new(
        dns.addr(),
        http.local_addr().unwrap().port(),
        tls.local_addr().unwrap().port(),
    );
    opts.validity = Some(Duration::from_secs(3600));
    let started = Instant::now();
    let Some(pebble) = Pebble::start(opts).await.unwrap() else {
        return;
    };
    eprintln!("pebble ready in {:?}", started.elapsed());
    let tokens = Http01::default();
    let digest = Arc::new(Mutex::new(None));
    let seen = serve_http01(http, Arc::clone(&tokens));
    serve_tls_alpn01(tls, Arc::clone(&digest));
    dns.log_queries(true);

    let t = Instant::now();
    let (account, _) = account(&pebble).await;
    eprintln!("account created in {:?}", t.elapsed());
    let t = Instant::now();
    let chain = issue(&account, ChallengeType::Http01, &tokens, &digest).await;
    eprintln!("HTTP-01 issuance (order to chain) in {:?}", t.elapsed());
    let t = Instant::now();
    let chain2 = issue(&account, ChallengeType::TlsAlpn01, &tokens, &digest).await;
    eprintln!("TLS-ALPN-01 issuance (order to chain) in {:?}", t.elapsed());

    let queries = dns.take_query_log();
    let asked: Vec<_> = queries
        .iter()
        .map(|q| format!("{} {}", q.name, q.rtype))
        .collect();
    eprintln!("Pebble asked our DNS: {asked:?}");
    let requests = seen.lock().unwrap().clone();
    eprintln!("HTTP-01 requests: {requests:#?}");
    assert!(
        requests[0].starts_with("GET /.well-known/acme-challenge/"),
        "{requests:?}"
    );

    let log = pebble.log();
    for line in [
        "Using certificate validity period of 3600 seconds",
        "Disabling random VA sleeps",
        "Configured to reject 0% of good nonces",
        "Configured to attempt authz reuse for each identifier 0% of the time",
    ] {
        assert!(log.contains(line), "{line:?} not in Pebble's log:\n{log}");
    }

    let roots = pebble.issuing_roots_pem().await.unwrap();
    for chain in [&chain, &chain2] {
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
        verify(chain, &roots, UnixTime::now()).unwrap_or_else(|e| {
            panic!("chain does not verify: {e}\n{}", pebble.log());
        });
        assert!(verify(chain, &pebble.api_root_pem(), UnixTime::now()).is_err());
        let (not_before, not_after) = leaf_validity(chain);
        let now = UnixTime::now().as_secs() as i64;
        eprintln!(
            "leaf: not_before = now {:+} s, not_after - not_before = {} s",
            not_before - now,
            not_after - not_before
        );
        assert!(
            (3599..=3601).contains(&(not_after - not_before)),
            "validity {} s",
            not_after - not_before
        );
        let after = UnixTime::since_unix_epoch(Duration::from_secs((not_after + 1) as u64));
        assert!(
            verify(chain, &roots, after).is_err(),
            "valid after not_after"
        );
    }
}

/// A CA that is down, hangs, and comes back with fresh state: a new issuing root, and the old
/// account gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_gives_a_new_root_and_forgets_accounts() {
    let dns = dns().await;
    // Nothing validates here: the discard port for both challenge kinds.
    let Some(mut pebble) = Pebble::start(PebbleOptions::new(dns.addr(), 9, 9))
        .await
        .unwrap()
    else {
        return;
    };
    let (_account, credentials) = account(&pebble).await;
    let root1 = pebble.issuing_roots_pem().await.unwrap();
    let api1 = pebble.api_root_pem();

    pebble.pause().unwrap();
    let hung = tokio::time::timeout(Duration::from_secs(1), pebble.management_get("/roots/0"));
    assert!(hung.await.is_err(), "a paused Pebble answered");
    pebble.resume().unwrap();
    assert_eq!(pebble.management_get("/roots/0").await.unwrap().0, 200);

    pebble.stop();
    let refused = pebble.management_get("/roots/0").await.unwrap_err();
    assert!(refused.contains("connect"), "{refused}");

    let t = Instant::now();
    pebble.start_again().await.unwrap();
    eprintln!("restart in {:?}", t.elapsed());
    assert_eq!(pebble.api_root_pem(), api1);
    assert_ne!(pebble.issuing_roots_pem().await.unwrap(), root1);

    let old = Account::builder_with_root(pebble.api_root_pem_path())
        .unwrap()
        .from_credentials(credentials)
        .await
        .unwrap();
    let ids = [Identifier::Dns(NAME.to_owned())];
    let Err(err) = old.new_order(&NewOrder::new(&ids)).await else {
        panic!("the old account could order after a restart");
    };
    eprintln!("old account after restart: {err}");
    match err {
        instant_acme::Error::Api(p) => assert_eq!(
            p.r#type.as_deref(),
            Some("urn:ietf:params:acme:error:accountDoesNotExist")
        ),
        other => panic!("{other:?}"),
    }
    assert!(pebble.log().contains("==== mtasts-testnet: restart ===="));
}
