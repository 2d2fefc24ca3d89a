//! `mtasts serve` publishing a fully delegated domain's records by RFC 2136 to a real knotd
//! (Debian's; SKIP without it, a failure when `CI=true`), end to end with the binary:
//! `domain add --delegation full` prints the CNAMEs the owner creates and the TXT records we
//! keep; `domain show --nameserver` finds the CNAMEs in place; the TXT records appear in our
//! zone once the domain is served; after a policy change the new id appears in the zone only
//! when the server already answers with the new policy (RFC 8461 §3); on removal the owner is
//! told to remove the CNAMEs, and the TXT records are withdrawn.

mod support;

use mtasts_net::dns::{Lookup, Resolver, ResolverSettings};
use mtasts_net::https::{FetchSettings, fetch_policy_at};
use mtasts_net::tls::TlsProbeConfig;
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::knot::{Knot, Updates, Zone};
use mtasts_testnet::pki::{Defect, Pki};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use support::{Serve, bin, free_addr, run};

const DOMAIN: &str = "a.test";
const ZONE: &str = "sts.provider.test";
const KEY: &str = "mtasts.provider.test";
const SECRET: &str = "hK2yc1sC0uVQ8l0m5v0Wb0Jp0lqHcTq3kZ4tqf2mF1E=";

async fn domain(store: &str, args: &[&str]) -> (i32, Value) {
    let mut a: Vec<String> = vec!["domain".into()];
    a.extend(args.iter().map(|x| (*x).to_owned()));
    a.extend(["--store", store, "--format", "json"].map(str::to_owned));
    let (code, out, err) = run(a, &[]).await;
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

/// The TXT strings at `name` on `server` (knotd).
async fn txt(server: SocketAddr, name: &str) -> Vec<String> {
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![server],
        timeout: Some(Duration::from_secs(1)),
        ..ResolverSettings::default()
    })
    .unwrap();
    match resolver.txt(name).await.expect("knotd answers") {
        Lookup::Records { records, .. } => records
            .iter()
            .map(|t| String::from_utf8_lossy(&t.joined()).into_owned())
            .collect(),
        Lookup::NoData | Lookup::NxDomain => Vec::new(),
    }
}

/// The policy the server at `https` serves for `DOMAIN`.
async fn policy(pki: &Pki, https: SocketAddr) -> String {
    let settings = FetchSettings {
        port: https.port(),
        timeout: Duration::from_secs(3),
        ..FetchSettings::default()
    };
    let tls = TlsProbeConfig::with_roots(pki.root_store()).with_now(pki.now());
    let f = fetch_policy_at(DOMAIN, &[https.ip()], &tls, &settings).await;
    String::from_utf8_lossy(&f.body.unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publishes_a_full_delegation_by_rfc2136_and_updates_the_id_after_serving() {
    let zones = [Zone {
        origin: ZONE,
        text: "",
        updates: Updates::Key,
    }];
    let Some(knot) = Knot::start_zones(&zones, Some((KEY, "hmac-sha256", SECRET)))
        .await
        .unwrap()
    else {
        return;
    };
    // The owner's zone, with the CNAMEs `domain add` asks for.
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    dns.set_zone(
        &format!("{DOMAIN}."),
        &format!(
            "mta-sts 60 IN A 127.0.0.1\n\
             _mta-sts 60 IN CNAME {DOMAIN}._mta-sts.{ZONE}.\n\
             _smtp._tls 60 IN CNAME {DOMAIN}._smtp._tls.{ZONE}.\n"
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    let https = free_addr(Ipv4Addr::LOCALHOST);
    let admin = free_addr(Ipv4Addr::LOCALHOST);
    let log = dir.path().join("serve.log");
    let child = bin()
        .env("MTASTS_SERVE__DNS_UPDATE__KEY_SECRET", SECRET)
        .args(["serve", "--store", &store, "--http", "none"])
        .args(["--https", &https.to_string(), "--admin", &admin.to_string()])
        .args(["--public-address", "127.0.0.1"])
        .args([
            "--set",
            "reload_poll=0.2",
            "--set",
            "check.drift_interval=0",
        ])
        .args(["--set", &format!("hosting.zone=\"{ZONE}\"")])
        .args([
            "--set",
            "hosting.tlsrpt_rua=\"mailto:tlsrpt@provider.test\"",
        ])
        .args(["--set", &format!("dns_update.server=\"{}\"", knot.addr())])
        .args(["--set", &format!("dns_update.zone=\"{ZONE}\"")])
        .args(["--set", &format!("dns_update.key_name=\"{KEY}\"")])
        .args([
            "--set",
            "dns_update.poll=0.2",
            "--set",
            "dns_update.settle=0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _serve = Serve { child, log };
    support_wait(admin).await;

    // Added: the records to create, ours marked as ours.
    let (code, v) = domain(
        &store,
        &["add", DOMAIN, "--mx", "mx.a.test", "--delegation", "full"],
    )
    .await;
    assert_eq!(code, 0, "{v:#}");
    let id1 = v["domain"]["policy_id"].as_str().unwrap().to_owned();
    let records = v["domain"]["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{v:#}"));
    let has = |name: &str, rtype: &str, value: &str, by: &str| {
        records.iter().any(|r| {
            r["name"] == name && r["type"] == rtype && r["value"] == value && r["managed_by"] == by
        })
    };
    let sts = format!("{DOMAIN}._mta-sts.{ZONE}");
    let tls = format!("{DOMAIN}._smtp._tls.{ZONE}");
    assert!(has("mta-sts.a.test", "A", "127.0.0.1", "owner"), "{v:#}");
    assert!(has("_mta-sts.a.test", "CNAME", &sts, "owner"), "{v:#}");
    assert!(has("_smtp._tls.a.test", "CNAME", &tls, "owner"), "{v:#}");
    assert!(
        has(&sts, "TXT", &format!("v=STSv1; id={id1}"), "mtasts"),
        "{v:#}"
    );
    // Told that the id is ours to publish, not to publish it at _mta-sts.a.test.
    assert_eq!(v["notices"][0]["notice"], "id-published-by-server", "{v:#}");
    assert_eq!(v["notices"][0]["name"], sts.as_str(), "{v:#}");
    assert!(
        !v["messages"].to_string().contains("at _mta-sts.a.test"),
        "{v:#}"
    );

    // Not served yet (no certificate): nothing in the zone.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(txt(knot.addr(), &sts).await.is_empty());
    let pki = Pki::new().unwrap();
    let cert = pki.issue("mta-sts.a.test", Defect::Valid).unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&c, cert.chain_pem()).unwrap();
    std::fs::write(&k, cert.key_pem()).unwrap();
    let (c, k) = (c.display().to_string(), k.display().to_string());
    let (code, v) = domain(
        &store,
        &["cert", "import", DOMAIN, "--cert", &c, "--key", &k],
    )
    .await;
    assert_eq!(code, 0, "{v:#}");
    let want = [format!("v=STSv1; id={id1}")];
    until(
        || async { txt(knot.addr(), &sts).await == want },
        "the TXT id",
    )
    .await;
    let rua = ["v=TLSRPTv1; rua=mailto:tlsrpt@provider.test".to_owned()];
    until(
        || async { txt(knot.addr(), &tls).await == rua },
        "the TLS-RPT TXT",
    )
    .await;
    let (_, shown) = domain(
        &store,
        &["show", DOMAIN, "--nameserver", &dns.addr().to_string()],
    )
    .await;
    for r in shown["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{shown:#}"))
    {
        if r["managed_by"] == "owner" {
            assert_eq!(r["in_place"], true, "{r}: {shown:#}");
        }
    }
    assert_eq!(shown["dns_update"]["last_error"], Value::Null, "{shown:#}");

    // A policy change: when the zone shows the new id, the server already serves the policy.
    let (code, v) = domain(
        &store,
        &["set", DOMAIN, "--mx", "mx.a.test", "--mx", "mx2.a.test"],
    )
    .await;
    assert_eq!(code, 0, "{v:#}");
    let id2 = v["domain"]["policy_id"].as_str().unwrap().to_owned();
    assert_ne!(id1, id2);
    let want = [format!("v=STSv1; id={id2}")];
    until(
        || async { txt(knot.addr(), &sts).await == want },
        "the new id",
    )
    .await;
    let served = policy(&pki, https).await;
    assert!(served.contains("mx: mx2.a.test"), "{served}");

    // Removed (forced, at once): the owner is told to remove the CNAMEs, and our TXT records
    // are withdrawn from the zone.
    let (code, v) = domain(&store, &["remove", DOMAIN, "--force", "--reason", "test"]).await;
    assert_eq!(code, 0, "{v:#}");
    let removable = v["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["notice"] == "dns-records-removable")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(removable["records"][0]["label"], "_mta-sts", "{v:#}");
    assert_eq!(removable["records"][0]["rtype"], "CNAME", "{v:#}");
    assert!(
        v["messages"].to_string().contains("_mta-sts.a.test CNAME"),
        "{v:#}"
    );
    until(
        || async { txt(knot.addr(), &sts).await.is_empty() },
        "withdrawn",
    )
    .await;
    until(
        || async { txt(knot.addr(), &tls).await.is_empty() },
        "withdrawn",
    )
    .await;
}

async fn support_wait(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(support::health(admin).await, Some((200, _))) {
        assert!(Instant::now() < deadline, "{admin}: not healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until<F, Fut>(check: F, what: &str)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
