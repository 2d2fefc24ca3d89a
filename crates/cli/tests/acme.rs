//! `mtasts serve` keeping a hosted domain's certificate valid by ACME, end to end with the
//! binary and a real Pebble (Debian's) whose validator resolves through the test internet:
//! the first certificate by HTTP-01 on port 80; the policy fetched by our own `net` fetch and by
//! `mtasts check` trusting Pebble's root; the certificate renewed (Pebble issues 30-second
//! certificates, renewed half-way); the server killed and restarted, serving with no ACME
//! request; Pebble stopped, the server still serving while renewal fails and backs off, then
//! Pebble back (a new root, our account forgotten) and the certificate renewed by TLS-ALPN-01
//! on the policy port, the account re-created. And two instances on one PostgreSQL ordering
//! for the same domains: one order per name, each instance answering challenges for orders
//! the other placed, both serving every certificate. Pebble (or `TEST_DATABASE_URL`) missing:
//! SKIP, a failure when `CI=true`.
#![allow(
    clippy::print_stderr,
    reason = "how the orders split between the instances is printed to be quoted"
)]

mod support;

use mtasts_net::https::{FetchSettings, fetch_policy_at};
use mtasts_net::tls::{CertVerdict, TlsProbeConfig};
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::pebble::{Pebble, PebbleOptions};
use mtasts_testnet::pg::TestDatabase;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::world::{DOMAIN, World};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Serve, bin, free_addr, health, run};

/// The lifetime of Pebble's certificates; renewal is at half of it (`acme.renew_at=0.5`).
const VALIDITY: Duration = Duration::from_secs(30);

/// The key sealing private keys and the ACME account in the store (every process gets it).
const KEY: &str = "0808080808080808080808080808080808080808080808080808080808080808";

/// `mtasts domain <args> --store S --format json`: the status and the JSON.
async fn domain(store: &str, args: &[&str]) -> (i32, Value) {
    let mut a: Vec<String> = vec!["domain".into()];
    a.extend(args.iter().map(|x| (*x).to_owned()));
    a.extend(["--store", store, "--format", "json"].map(str::to_owned));
    let (code, out, err) = run(a, &[("MTASTS_STORE_KEY", KEY)]).await;
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

/// `domain show D`'s `certificate` object (null before the first one).
async fn certificate_of(store: &str, d: &str) -> Value {
    let (code, v) = domain(store, &["show", d]).await;
    assert_eq!(code, 0, "{v}");
    v["certificate"].clone()
}

/// Polls `domain show` until `test` holds of the certificate object, for at most `within`.
async fn certificate_until(
    store: &str,
    within: Duration,
    what: &str,
    test: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = certificate_of(store, DOMAIN).await;
        if test(&c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {c:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The policy of `DOMAIN` fetched by our own fetch from `https` trusting `roots` (PEM): the
/// body and the served leaf's `not_after` (RFC 3339), or why not.
async fn fetch(https: SocketAddr, roots: &str) -> Result<(String, String), String> {
    fetch_of(DOMAIN, https, roots).await
}

/// [`fetch`] of domain `d`.
async fn fetch_of(d: &str, https: SocketAddr, roots: &str) -> Result<(String, String), String> {
    let mut tls = TlsProbeConfig::new();
    tls.add_pem_roots(roots.as_bytes())
        .map_err(|e| e.to_string())?;
    let settings = FetchSettings {
        port: https.port(),
        timeout: Duration::from_secs(3),
        ..FetchSettings::default()
    };
    let f = fetch_policy_at(d, &[https.ip()], &tls, &settings).await;
    let obs = f.tls.as_ref().ok_or_else(|| format!("{:?}", f.failure))?;
    if obs.verdict != CertVerdict::Valid {
        return Err(format!("certificate {:?}", obs.verdict));
    }
    let leaf = obs.leaf().ok_or("no leaf")?;
    let not_after = leaf
        .not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    match (f.status, f.body) {
        (Some(200), Some(b)) => Ok((String::from_utf8_lossy(&b).into_owned(), not_after)),
        (s, _) => Err(format!("status {s:?}, {:?}", f.failure)),
    }
}

struct Server<'a> {
    dir: &'a Path,
    store: &'a str,
    pebble: &'a Pebble,
    /// Every `--public-address`.
    public: Vec<Ipv4Addr>,
    nameserver: String,
}

impl Server<'_> {
    /// `mtasts serve` number `n` with ACME from Pebble, the policy on `https`; `http`: the
    /// port-80 listener (`None`: none); `challenges`: the TOML list of challenge types.
    fn start(
        &self,
        n: u8,
        https: SocketAddr,
        http: Option<SocketAddr>,
        challenges: &str,
    ) -> (Serve, SocketAddr) {
        let admin = free_addr(Ipv4Addr::new(127, 0, 0, 1));
        let log = self.dir.join(format!("serve{n}.log"));
        let http = http.map_or("none".to_owned(), |a| a.to_string());
        let root = self.pebble.api_root_pem_path().display().to_string();
        let mut cmd = bin();
        cmd.env("MTASTS_STORE_KEY", KEY)
            .args(["serve", "--store", self.store])
            .args(["--https", &https.to_string(), "--http", &http])
            .args(["--admin", &admin.to_string()])
            .args(["--nameserver", &self.nameserver])
            .args(["--acme-directory", &self.pebble.directory_url()])
            .args(["--acme-root", &root])
            .args(["--acme-contact", "hostmaster@example.test"]);
        for ip in &self.public {
            cmd.args(["--public-address", &ip.to_string()]);
        }
        let child = cmd
            .args([
                "--set",
                "reload_poll=0.2",
                "--set",
                "check.drift_interval=0",
            ])
            .args(["--set", "acme.poll=0.2", "--set", "acme.renew_at=0.5"])
            .args(["--set", "acme.retry_min=1", "--set", "acme.retry_max=2"])
            .args(["--set", &format!("acme.challenges={challenges}")])
            .args(["--set", "grace=1", "--set", "store.acquire_timeout=2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (Serve { child, log }, admin)
    }
}

async fn wait_healthy(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(health(admin).await, Some((200, _))) {
        assert!(Instant::now() < deadline, "{admin}: not healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many ACME requests Pebble has logged (its web front end logs one line per request).
fn acme_requests(pebble: &Pebble) -> usize {
    pebble
        .log()
        .lines()
        .filter(|l| l.contains("-> calling handler()"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_obtains_renews_and_keeps_its_certificate_through_restarts_and_ca_outages() {
    let mut w = World::new().await;
    let policy_ip = w.ip(2, 1);
    w.zone(&format!("mta-sts 300 IN A {policy_ip}"));
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let http = free_addr(policy_ip);
    let https = SocketAddr::from((policy_ip, w.https_port));
    let mut opts = PebbleOptions::new(w.dns.addr(), http.port(), https.port());
    opts.validity = Some(VALIDITY);
    let Some(mut pebble) = Pebble::start(opts).await.unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    let nameserver = w.dns.addr().to_string();

    // Added by the CLI; the record to publish is printed, and published.
    let (code, v) = domain(&store, &["add", DOMAIN, "--mx", "mx1.example.test"]).await;
    assert_eq!(code, 0, "{v}");
    let txt = v["domain"]["txt_record"].as_str().unwrap().to_owned();
    w.zone_replace("_mta-sts", &format!("_mta-sts 300 IN TXT \"{txt}\""));
    assert_eq!(v["domain"]["certificate"], Value::Null, "{v}");

    let server = Server {
        dir: dir.path(),
        store: &store,
        pebble: &pebble,
        public: vec![policy_ip],
        nameserver: nameserver.clone(),
    };
    // 1. The first certificate, by HTTP-01 (port 80 only).
    let (serve, admin) = server.start(1, https, Some(http), r#"["http-01"]"#);
    wait_healthy(admin).await;
    let first = certificate_until(&store, Duration::from_secs(30), "a certificate", |c| {
        c["source"] == "acme"
    })
    .await;
    assert!(
        first["issuer"].as_str().unwrap().contains("Pebble"),
        "{first}"
    );
    assert_eq!(first["last_error"], Value::Null, "{first}");
    assert!(
        first["next_renewal"].as_str().unwrap() < first["not_after"].as_str().unwrap(),
        "{first}"
    );
    let (_, shown) = domain(&store, &["show", DOMAIN, "--nameserver", &nameserver]).await;
    let records = shown["records"].as_array().unwrap();
    assert!(!records.is_empty(), "{shown:#}");
    for r in records {
        assert_eq!(r["in_place"], true, "{r}: {shown:#}");
    }

    // 2. Served: our own fetch and `mtasts check`, trusting Pebble's root (and the testnet's
    //    for the MX hosts).
    let roots = pebble.issuing_roots_pem().await.unwrap();
    let (body, served) = fetch_until(https, &roots, &first).await;
    assert!(body.contains("mx: mx1.example.test"), "{body}");
    assert_eq!(served, first["not_after"].as_str().unwrap());
    let ca_file = dir.path().join("roots.pem");
    std::fs::write(&ca_file, format!("{}\n{roots}", w.pki.root_pem())).unwrap();
    let check: Vec<String> = [
        "check",
        DOMAIN,
        "--format",
        "json",
        "--nameserver",
        &nameserver,
        "--ca-file",
        &ca_file.display().to_string(),
        "--smtp-port",
        &w.smtp_port.to_string(),
        "--https-port",
        &https.port().to_string(),
        "--timeout",
        "3",
        "--no-dane",
    ]
    .map(str::to_owned)
    .into();
    let (code, out, err) = run(check.clone(), &[]).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let report = &report[0];
    assert_eq!(report["policy"]["fetch"]["status"], 200, "{report:#}");
    assert_eq!(report["policy"]["valid"], true, "{report:#}");
    let issuer = report["policy"]["fetch"]["certificate"]["issuer"].as_str();
    assert!(issuer.unwrap().contains("Pebble"), "{report:#}");
    // The one error is the truth about a 30-second certificate; a chain Pebble's root did not
    // verify would be another.
    let errors: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(errors, ["policy.certificate.expires-soon"], "{report:#}");
    assert_eq!(code, 1, "{report:#}");

    // 3. Renewed half-way through the 30 s lifetime, and the new one served.
    let renewed = certificate_until(&store, VALIDITY, "a renewal", |c| {
        c["not_after"] != first["not_after"]
    })
    .await;
    assert_eq!(renewed["source"], "acme");
    assert_eq!(renewed["last_error"], Value::Null, "{renewed}");
    let (_, served) = fetch_until(https, &roots, &renewed).await;
    assert_eq!(served, renewed["not_after"].as_str().unwrap());

    // 4. Killed and restarted (TLS-ALPN-01 only, no port 80): serving at once, and not one
    //    request to the CA.
    drop(serve);
    let before = acme_requests(&pebble);
    assert!(
        before > 0,
        "Pebble's log has no request lines:\n{}",
        pebble.log()
    );
    let (serve, admin) = server.start(2, https, None, r#"["tls-alpn-01"]"#);
    wait_healthy(admin).await;
    let (_, served) = fetch(https, &roots).await.unwrap();
    assert_eq!(served, renewed["not_after"].as_str().unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        acme_requests(&pebble),
        before,
        "ACME traffic after a restart"
    );

    // 5. The CA goes away: renewal fails and backs off, the certificate stays in service.
    pebble.stop();
    let failing = certificate_until(&store, VALIDITY, "a failed renewal", |c| {
        c["failures"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(failing["not_after"], renewed["not_after"], "{failing}");
    let error = failing["last_error"].as_str().unwrap();
    assert!(
        error.contains("connect") || error.contains("reach"),
        "{error}"
    );
    assert!(failing["next_attempt"].is_string(), "{failing}");
    let (_, served) = fetch(https, &roots).await.unwrap();
    assert_eq!(
        served,
        renewed["not_after"].as_str().unwrap(),
        "still served"
    );
    // The text view says it in words.
    let (code, out, _) = run(
        ["domain", "show", DOMAIN, "--store", &store]
            .map(str::to_owned)
            .into(),
        &[("MTASTS_STORE_KEY", KEY)],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(error), "{out}");

    // 6. Back (a new root; our account forgotten): renewed by TLS-ALPN-01, errors cleared.
    pebble.start_again().await.unwrap();
    let back = certificate_until(&store, VALIDITY, "the renewal after the outage", |c| {
        c["not_after"] != renewed["not_after"] && c["failures"] == 0
    })
    .await;
    assert_eq!(back["last_error"], Value::Null, "{back}");
    let new_roots = pebble.issuing_roots_pem().await.unwrap();
    assert_ne!(new_roots, roots, "Pebble made a new root on restart");
    let (_, served) = fetch_until(https, &new_roots, &back).await;
    assert_eq!(served, back["not_after"].as_str().unwrap());
    // Validated without port 80 (Pebble logs only its HTTP-01 attempts), by a new account.
    let log = pebble.log();
    let since_restart = log.rsplit("Starting Pebble ACME server").next().unwrap();
    assert!(
        since_restart.contains("set VALID by completed challenge"),
        "{log}"
    );
    assert!(!since_restart.contains("validate w/ HTTP"), "{log}");
    let serve_log = std::fs::read_to_string(&serve.log).unwrap();
    assert!(serve_log.contains("ACME account created"), "{serve_log}");
    drop(serve);
}

/// Fetches until the leaf served is the one `cert` (from `domain show`) describes, for at most
/// 5 s (the server installs a new certificate within `reload_poll`).
async fn fetch_until(https: SocketAddr, roots: &str, cert: &Value) -> (String, String) {
    let want = cert["not_after"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = fetch(https, roots).await;
        if let Ok((body, served)) = &got
            && served == want
        {
            return (body.clone(), served.clone());
        }
        assert!(Instant::now() < deadline, "{want} not served: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port free on every one of `ips` now.
fn port_free_on(ips: &[Ipv4Addr]) -> u16 {
    loop {
        let port = free_addr(ips[0]).port();
        if ips
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok())
        {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_place_one_order_per_name_and_both_serve_every_certificate() {
    const N: usize = 6;
    let Some(db) = TestDatabase::create("mtasts_cli", "acme_two_instances").await else {
        return;
    };
    let ips = [Ipv4Addr::new(127, 0, 7, 1), Ipv4Addr::new(127, 0, 7, 2)];
    let (https_port, http_port) = (port_free_on(&ips), port_free_on(&ips));
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let names: Vec<String> = (0..N).map(|i| format!("d{i}.test")).collect();
    // The validator is sent to instance 1 for d0, d2, ... and to instance 2 for d1, d3, ..., as
    // a load balancer would send it to either: whichever instance placed the order.
    let at = |i: usize| ips[i % 2];
    dns.set_zones(
        names
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("{d}."), format!("mta-sts 60 IN A {}\n", at(i)))),
    )
    .unwrap();
    let Some(pebble) = Pebble::start(PebbleOptions::new(dns.addr(), http_port, https_port))
        .await
        .unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for d in &names {
        let (code, v) = domain(&db.url, &["add", d, "--mx", &format!("mx.{d}")]).await;
        assert_eq!(code, 0, "{v}");
    }
    let server = Server {
        dir: dir.path(),
        store: &db.url,
        pebble: &pebble,
        public: ips.to_vec(),
        nameserver: dns.addr().to_string(),
    };
    let both = r#"["http-01", "tls-alpn-01"]"#;
    let started = Instant::now();
    let instances: Vec<(Serve, SocketAddr)> = ips
        .iter()
        .zip(1..)
        .map(|(ip, n)| {
            let https = SocketAddr::from((*ip, https_port));
            server.start(n, https, Some(SocketAddr::from((*ip, http_port))), both)
        })
        .collect();
    for d in &names {
        let c = certificate_until_of(&db.url, d, Duration::from_secs(60)).await;
        assert_eq!(c["last_error"], Value::Null, "{d}: {c}");
    }
    let took = started.elapsed();

    // One order per name at the CA, one installation per name between the two instances.
    let log = pebble.log();
    let orders = log
        .lines()
        .filter(|l| l.contains("POST /order-plz"))
        .count();
    let issued = log
        .lines()
        .filter(|l| l.contains("Issued certificate"))
        .count();
    assert_eq!((orders, issued), (N, N), "{log}");
    let installed: Vec<Vec<usize>> = instances
        .iter()
        .map(|(s, _)| {
            let log = std::fs::read_to_string(&s.log).unwrap();
            (0..N)
                .filter(|i| {
                    log.lines().any(|l| {
                        l.contains("certificate installed")
                            && l.contains(&format!("domain={} ", names[*i]))
                    })
                })
                .collect()
        })
        .collect();
    assert_eq!(installed[0].len() + installed[1].len(), N, "{installed:?}");
    // Orders whose challenge the other instance answered (the validator went to the other).
    let crossed: usize = installed
        .iter()
        .enumerate()
        .map(|(k, ds)| ds.iter().filter(|i| *i % 2 != k).count())
        .sum();
    eprintln!(
        "{N} domains to a certificate in {took:?}: instance 1 ordered {:?}, instance 2 {:?}; \
         {crossed} challenges answered by the instance that did not order",
        installed[0], installed[1]
    );

    // Both instances serve every certificate.
    let roots = pebble.issuing_roots_pem().await.unwrap();
    for (_, admin) in &instances {
        wait_healthy(*admin).await;
    }
    for ip in ips {
        for d in &names {
            let https = SocketAddr::from((ip, https_port));
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match fetch_of(d, https, &roots).await {
                    Ok((body, _)) => {
                        assert!(body.contains(&format!("mx: mx.{d}")), "{body}");
                        break;
                    }
                    Err(e) => assert!(Instant::now() < deadline, "{d} at {https}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Polls `domain show D` until it has an ACME certificate, for at most `within`.
async fn certificate_until_of(store: &str, d: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = certificate_of(store, d).await;
        if c["source"] == "acme" {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{d}: no certificate within {within:?}: {c:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
