//! `mtasts serve` and `mtasts domain` end to end, on the test internet: a domain added by the
//! CLI from its live MX, its certificate imported, `mta-sts.<d>` pointing at the server; our
//! own policy fetch and `mtasts check` pass clean; a change of MX set is reported as drift; the
//! rollout testing -> enforce -> rollback -> removal, with time injected (`--now`), gives the
//! right policy text, id and max_age at every step.

mod support;

use mtasts_testnet::pki::Defect;
use mtasts_testnet::world::{DOMAIN, World};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{Serve, bin, free_addr, health, run};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const DAY: i64 = 86_400;

struct Setup {
    dir: tempfile::TempDir,
    store: String,
    net: Vec<String>,
}

impl Setup {
    fn new(w: &World) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("root.pem"), w.pki.root_pem()).unwrap();
        let store = format!("sqlite:{}", dir.path().join("store.db").display());
        let net = vec![
            "--nameserver".into(),
            w.dns.addr().to_string(),
            "--ca-file".into(),
            dir.path().join("root.pem").display().to_string(),
            "--smtp-port".into(),
            w.smtp_port.to_string(),
            "--https-port".into(),
            w.https_port.to_string(),
            "--timeout".into(),
            "3".into(),
            "--no-dane".into(),
        ];
        Self { dir, store, net }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs the binary: (status, stdout, stderr).
async fn mtasts(args: Vec<String>) -> (i32, String, String) {
    run(args, &[]).await
}

/// `mtasts domain <args> --store S --format json` at time `now`; the JSON and the status.
async fn domain(s: &Setup, args: &[&str], now: Option<OffsetDateTime>) -> (i32, Value) {
    let mut a: Vec<String> = vec!["domain".into()];
    a.extend(args.iter().map(|x| (*x).to_owned()));
    a.extend([
        "--store".into(),
        s.store.clone(),
        "--format".into(),
        "json".into(),
    ]);
    if let Some(t) = now {
        a.extend(["--now".into(), t.format(&Rfc3339).unwrap()]);
    }
    let (code, out, err) = mtasts(a).await;
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

fn start_serve(s: &Setup, https: SocketAddr, admin: SocketAddr) -> Serve {
    let child = bin()
        .args([
            "serve",
            "--store",
            &s.store,
            "--https",
            &https.to_string(),
            "--http",
            "none",
            "--admin",
            &admin.to_string(),
            "--set",
            "reload_poll=0.2",
            "--set",
            "check.drift_interval=0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(s.path("serve.log")).unwrap())
        .spawn()
        .unwrap();
    Serve {
        child,
        log: s.path("serve.log"),
    }
}

/// Waits until the server's /health reports `generation` loaded (or any, for 0).
async fn wait_loaded(admin: SocketAddr, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(g) = health_generation(admin).await
            && g >= at_least
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not load generation {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn health_generation(admin: SocketAddr) -> Option<u64> {
    health(admin).await?.1["serving"]["generation"].as_u64()
}

async fn store_generation(s: &Setup) -> u64 {
    // Every write bumps the generation; the store's count is what the server must reach.
    let url = s.store.clone();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let st = mtasts_store::Store::open(&url, &mtasts_store::StoreOptions::default())
                .await
                .unwrap();
            let g = st.generation().await.unwrap();
            st.close().await;
            g
        })
    })
    .await
    .unwrap()
}

/// `mtasts domain cert import DOMAIN` of a testnet certificate for `name`, from PEM files.
async fn import(s: &Setup, w: &World, name: &str) -> (i32, Value) {
    let cert = w.pki.issue(name, Defect::Valid).unwrap();
    let (c, k) = (
        s.path(&format!("{name}.pem")),
        s.path(&format!("{name}.key")),
    );
    std::fs::write(&c, cert.chain_pem()).unwrap();
    std::fs::write(&k, cert.key_pem()).unwrap();
    let (c, k) = (c.display().to_string(), k.display().to_string());
    domain(
        s,
        &["cert", "import", DOMAIN, "--cert", &c, "--key", &k],
        None,
    )
    .await
}

async fn publish_txt(w: &mut World, id: &str) {
    w.zone_replace(
        "_mta-sts",
        &format!("_mta-sts 300 IN TXT \"v=STSv1; id={id}\""),
    );
}

/// `mtasts check` of the domain: (status, JSON report).
async fn check(s: &Setup) -> (i32, Value) {
    let mut a = vec![
        "check".to_owned(),
        DOMAIN.to_owned(),
        "--format".into(),
        "json".into(),
    ];
    a.extend(s.net.iter().cloned());
    let (code, out, err) = mtasts(a).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v[0].clone())
}

fn kinds(v: &Value) -> Vec<(String, String)> {
    v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn errors(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_hosted_by_the_cli_is_served_checked_for_drift_and_rolled_out() {
    let mut w = World::new().await;
    let policy_ip = w.ip(2, 1);
    w.zone(&format!("mta-sts 300 IN A {policy_ip}"));
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let s = Setup::new(&w);
    // Whole seconds, as the store keeps them.
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();

    // Add from the live MX: mx1.example.test is no known provider's, so it must be confirmed.
    let mut add: Vec<&str> = vec!["add", DOMAIN];
    let net: Vec<&str> = s.net.iter().map(String::as_str).collect();
    add.extend(&net);
    let (code, v) = domain(&s, &add, Some(t0)).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "unexplained_mx", "{v}");
    add.extend(["--confirm", "mx1.example.test"]);
    let (code, v) = domain(&s, &add, Some(t0)).await;
    assert_eq!(code, 0, "{v}");
    let d = &v["domain"];
    assert_eq!(d["state"], "testing");
    assert_eq!(d["mx"], serde_json::json!(["mx1.example.test"]));
    assert_eq!(d["max_age"], DAY);
    assert_eq!(
        d["policy_text"],
        "version: STSv1\r\nmode: testing\r\nmx: mx1.example.test\r\nmax_age: 86400\r\n"
    );
    let id0 = d["policy_id"].as_str().unwrap().to_owned();
    assert_eq!(d["txt_record"], format!("v=STSv1; id={id0}"));

    // The certificate, imported by the CLI from PEM files; one for another name is refused.
    let (code, v) = import(&s, &w, &format!("mta-sts.{DOMAIN}")).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["name"], format!("mta-sts.{DOMAIN}"));
    let (code, v) = import(&s, &w, "mta-sts.other.test").await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("certificate")),
        "{v}"
    );

    publish_txt(&mut w, &id0).await;
    let https = SocketAddr::from((policy_ip, w.https_port));
    let admin = free_addr(Ipv4Addr::new(127, w.net, 9, 1));
    let mut serve = start_serve(&s, https, admin);
    wait_loaded(admin, store_generation(&s).await).await;

    // Our own fetch (the checker's) and the whole check: clean, the policy is ours.
    let (code, report) = check(&s).await;
    assert_eq!(code, 0, "{report:#}");
    assert!(errors(&report).is_empty(), "{report:#}");
    assert_eq!(report["sts_record"]["id"], id0.as_str());
    assert_eq!(report["policy"]["fetch"]["status"], 200);
    assert_eq!(report["policy"]["mode"], "testing");
    assert_eq!(report["policy"]["max_age"], DAY);
    let (code, v) = domain(
        &s,
        &[
            "check",
            DOMAIN,
            "--nameserver",
            &w.dns.addr().to_string(),
            "--https-port",
            &w.https_port.to_string(),
            "--ca-file",
            &s.path("root.pem").display().to_string(),
            "--timeout",
            "3",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{v:#}");
    assert!(kinds(&v).iter().all(|(_, st)| st == "fine"), "{v:#}");

    // The MX set changes: mx2 is not covered; then the new policy's id is not yet published.
    w.mx_with_cert("mx2", 20, 2, Defect::Valid).await;
    let drift_args = [
        "check",
        DOMAIN,
        "--nameserver",
        &w.dns.addr().to_string(),
        "--https-port",
        &w.https_port.to_string(),
        "--ca-file",
        &s.path("root.pem").display().to_string(),
        "--timeout",
        "3",
    ];
    let (code, v) = domain(&s, &drift_args, None).await;
    assert_eq!(code, 1, "{v:#}");
    let mx = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "mx-coverage")
        .unwrap();
    assert_eq!(mx["status"], "drift", "{v:#}");
    assert!(
        mx["detail"].as_str().unwrap().contains("mx2.example.test"),
        "{mx}"
    );
    assert!(
        mx["fix"]
            .as_str()
            .unwrap()
            .contains("--mx mx2.example.test"),
        "{mx}"
    );
    // Recorded: `show` lists the open event.
    let (_, v) = domain(&s, &["show", DOMAIN], None).await;
    assert_eq!(v["drift"][0]["kind"], "mx-coverage", "{v:#}");
    let (code, v) = domain(
        &s,
        &[
            "set",
            DOMAIN,
            "--mx",
            "mx1.example.test",
            "--mx",
            "mx2.example.test",
            "--reason",
            "second MX",
        ],
        Some(t0),
    )
    .await;
    assert_eq!(code, 0, "{v}");
    let id1 = v["domain"]["policy_id"].as_str().unwrap().to_owned();
    assert_ne!(id1, id0);
    wait_loaded(admin, store_generation(&s).await).await;
    let (code, v) = domain(&s, &drift_args, None).await;
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        kinds(&v),
        [
            ("txt-record".into(), "drift".into()),
            ("mx-coverage".into(), "fine".into()),
            ("policy-host".into(), "fine".into())
        ],
        "{v:#}"
    );
    publish_txt(&mut w, &id1).await;
    let (code, v) = domain(&s, &drift_args, None).await;
    assert_eq!(code, 0, "{v:#}");
    let (_, v) = domain(&s, &["show", DOMAIN], None).await;
    assert_eq!(
        v["drift"],
        serde_json::json!([]),
        "fixed drift is resolved: {v:#}"
    );

    // The rollout, time injected. Too early: the minimum week in testing.
    let promote = |at: OffsetDateTime| {
        let mut a = vec!["promote".to_owned(), DOMAIN.to_owned()];
        a.extend(s.net.iter().cloned());
        (a, at)
    };
    let (a, at) = promote(t0 + time::Duration::days(1));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, v) = domain(&s, &a, Some(at)).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("not_ready")),
        "{v}"
    );

    let expect = |v: &Value, mode: &str, max_age: i64, mx: &str| {
        let d = &v["domain"];
        assert_eq!(d["mode"], mode, "{v:#}");
        assert_eq!(d["max_age"], max_age, "{v:#}");
        assert_eq!(
            d["policy_text"],
            format!("version: STSv1\r\nmode: {mode}\r\n{mx}max_age: {max_age}\r\n"),
            "{v:#}"
        );
        d["policy_id"].as_str().unwrap().to_owned()
    };
    let mx_lines = "mx: mx1.example.test\r\nmx: mx2.example.test\r\n";
    let mut ids = vec![id0.clone(), id1.clone()];
    // Each stage's minimum time counts from that stage's own start: an hour short is refused.
    let mut since = t0;
    for (step, max_age, wait) in [
        (0, DAY, 7 * DAY),
        (1, 7 * DAY, DAY),
        (2, 31_557_600, 7 * DAY),
    ] {
        let (a, at) = promote(since + time::Duration::seconds(wait - 3600));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, v) = domain(&s, &a, Some(at)).await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (1, Some("not_ready")),
            "step {step} early: {v}"
        );
        let (a, at) = promote(since + time::Duration::seconds(wait + 60));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, v) = domain(&s, &a, Some(at)).await;
        assert_eq!(code, 0, "step {step}: {v:#}");
        assert_eq!(v["domain"]["state"], "enforce");
        assert_eq!(v["domain"]["enforce_step"], step);
        assert_eq!(
            v["domain"]["state_since"],
            at.format(&Rfc3339).unwrap(),
            "the step starts now"
        );
        assert!(
            v["live_check"]["hosts"].as_array().unwrap().len() == 2,
            "{v:#}"
        );
        let id = expect(&v, "enforce", max_age, mx_lines);
        assert!(!ids.contains(&id), "a new policy has a new id");
        ids.push(id);
        since = at;
    }
    let mut t = since + time::Duration::days(7) + time::Duration::minutes(1);
    // The server serves the enforce policy, and check is clean with it published.
    publish_txt(&mut w, ids.last().unwrap()).await;
    wait_loaded(admin, store_generation(&s).await).await;
    let (code, report) = check(&s).await;
    assert_eq!(code, 0, "{report:#}");
    assert!(errors(&report).is_empty(), "{report:#}");
    assert_eq!(report["policy"]["mode"], "enforce");
    assert_eq!(report["policy"]["max_age"], 31_557_600);

    // Rollback: testing again; senders keep the cached enforce policy for its max_age.
    let (code, v) = domain(
        &s,
        &["rollback", DOMAIN, "--force", "--reason", "a partner fails"],
        Some(t),
    )
    .await;
    assert_eq!(code, 0, "{v:#}");
    // The same content as the testing policy served before: the same id (content-derived).
    assert_eq!(expect(&v, "testing", DAY, mx_lines), id1);
    let cached = OffsetDateTime::parse(
        v["domain"]["enforce_cached_until"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap();
    assert_eq!(cached, t + time::Duration::seconds(31_557_600));
    assert!(
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("enforce")),
        "{v:#}"
    );

    // Removal: mode none until the longest max_age has passed, then deleted.
    t += time::Duration::hours(1);
    let (code, v) = domain(&s, &["remove", DOMAIN], Some(t)).await;
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["domain"]["state"], "withdrawing");
    let d = &v["domain"];
    assert_eq!(d["mode"], "none");
    assert_eq!(
        d["policy_text"],
        format!("version: STSv1\r\nmode: none\r\n{mx_lines}max_age: {DAY}\r\n")
    );
    let safe_at = OffsetDateTime::parse(d["removal_safe_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(safe_at, t + time::Duration::seconds(31_557_600));
    let (code, v) = domain(
        &s,
        &["remove", DOMAIN],
        Some(safe_at - time::Duration::minutes(1)),
    )
    .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("too_early")),
        "{v}"
    );
    let (code, v) = domain(
        &s,
        &["remove", DOMAIN],
        Some(safe_at + time::Duration::seconds(1)),
    )
    .await;
    assert_eq!(code, 0, "{v:#}");
    assert!(v["domain"].is_null(), "{v:#}");
    let words = v["messages"].to_string();
    assert!(
        words.contains("_mta-sts.example.test") && words.contains("mta-sts.example.test"),
        "{v:#}"
    );
    let (code, v) = domain(&s, &["show", DOMAIN], None).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("not_found")),
        "{v}"
    );

    // SIGHUP re-reads the store; SIGTERM drains and exits 0.
    let pid = serve.child.id().to_string();
    let log = || std::fs::read_to_string(s.path("serve.log")).unwrap();
    let reloads = log().matches("snapshot reloaded").count();
    let kill = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    kill("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while log().matches("snapshot reloaded").count() == reloads {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload: {}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill("-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = serve.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "SIGTERM did not stop the server: {}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", log());
    assert!(log().contains("draining"), "{}", log());
}
