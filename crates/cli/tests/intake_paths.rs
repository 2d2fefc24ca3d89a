//! Every real report of tests/data/tlsrpt (a copy of ../shared/data/tlsrpt) through each way a
//! report arrives lands the same in the store: `report import` of the files, `POST` to the
//! HTTPS intake (the configured intake host), and mail to the SMTP receiver sent by swaks; the
//! same reports, normalised forms, raw JSON and aggregates, on SQLite and on PostgreSQL. The
//! network paths accept only hosted domains (D27): the one report that names no policy domain
//! is refused there, with its reason, and left out of the comparison.

mod support;

use mtasts_testnet::https::post;
use mtasts_testnet::pg::TestDatabase;
use mtasts_testnet::pki::{Defect, Pki};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::corpus::{self, as_mail, corpus};
use support::mail::{swaks, swaks_present};
use support::{Serve, bin, free_addr, health, run};

const KEY: &str = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c";
const INTAKE_HOST: &str = "tlsrpt.provider.test";

async fn mtasts(args: &[&str]) -> (i32, String, String) {
    run(
        args.iter().map(|a| (*a).to_owned()).collect(),
        &[("MTASTS_STORE_KEY", KEY)],
    )
    .await
}

async fn ok(args: &[&str]) -> String {
    let (code, out, err) = mtasts(args).await;
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

/// What a store holds of the reports for `domains`, and their summary.
async fn contents(
    store: &str,
    domains: &BTreeSet<String>,
) -> (BTreeMap<(String, String), Value>, Vec<Value>) {
    let (mut by, summary) = corpus::contents(KEY, store).await;
    by.retain(|_, r| domains.contains(r["policy_domain"].as_str().unwrap_or("")));
    for r in by.values_mut() {
        // Arrival facts differ by path.
        for k in ["dkim", "dkim_detail", "copies"] {
            r.as_object_mut().unwrap().remove(k);
        }
    }
    let summary = summary
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| domains.contains(d["policy_domain"].as_str().unwrap_or("")))
        .cloned()
        .collect();
    (by, summary)
}

/// A store at `url` hosting `domains`, with the intake host's certificate.
async fn network_store(url: &str, domains: &BTreeSet<String>, pki: &Pki, dir: &Path) {
    for d in domains {
        ok(&[
            "domain",
            "add",
            d,
            "--mx",
            &format!("mx.{d}"),
            "--store",
            url,
        ])
        .await;
    }
    let cert = pki.issue(INTAKE_HOST, Defect::Valid).unwrap();
    let (c, k) = (dir.join("intake.pem"), dir.join("intake.key"));
    std::fs::write(&c, cert.chain_pem()).unwrap();
    std::fs::write(&k, cert.key_pem()).unwrap();
    let (c, k) = (c.display().to_string(), k.display().to_string());
    ok(&[
        "domain",
        "cert",
        "import-host",
        INTAKE_HOST,
        "--cert",
        &c,
        "--key",
        &k,
        "--store",
        url,
    ])
    .await;
}

/// `mtasts serve` on `store` with the intake host and the SMTP receiver: (guard, HTTPS, SMTP).
async fn serve(dir: &Path, name: &str, store: &str) -> (Serve, SocketAddr, SocketAddr) {
    let (https, smtp, admin) = (
        free_addr(Ipv4Addr::LOCALHOST),
        free_addr(Ipv4Addr::LOCALHOST),
        free_addr(Ipv4Addr::LOCALHOST),
    );
    let log = dir.join(format!("{name}.log"));
    let child = bin()
        .env("MTASTS_STORE_KEY", KEY)
        .args(["serve", "--store", store, "--http", "none"])
        .args(["--https", &https.to_string(), "--admin", &admin.to_string()])
        .args(["--smtp", &smtp.to_string()])
        .args(["--set", &format!("intake.host={INTAKE_HOST}")])
        .args(["--set", "smtp.verify_dkim=false"])
        .args(["--set", "check.drift_interval=0", "--set", "grace=1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let guard = Serve { child, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(matches!(health(admin).await, Some((200, _)))
        && tokio::net::TcpStream::connect(smtp).await.is_ok())
    {
        assert!(Instant::now() < deadline, "{name}: not serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (guard, https, smtp)
}

/// What differs between two store contents, briefly (the whole maps are too long to read).
fn diff(
    got: &BTreeMap<(String, String), Value>,
    want: &BTreeMap<(String, String), Value>,
) -> String {
    let mut out = String::new();
    for (k, w) in want {
        match got.get(k) {
            None => out.push_str(&format!("missing {k:?}\n")),
            Some(g) if g != w => {
                for (field, wv) in w.as_object().unwrap() {
                    if g.get(field) != Some(wv) {
                        out.push_str(&format!(
                            "{k:?}.{field}: got {:.300} want {:.300}\n",
                            g.get(field).map(Value::to_string).unwrap_or_default(),
                            wv.to_string()
                        ));
                    }
                }
            }
            Some(_) => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push_str(&format!("unexpected {k:?}\n"));
    }
    out
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => "application/tlsrpt+gzip",
        Some("eml") => "message/rfc822",
        _ => "application/tlsrpt+json",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_report_lands_the_same_through_files_https_and_smtp_on_both_backends() {
    if !swaks_present() {
        return;
    }
    let files: Vec<PathBuf> = corpus();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = |name: &str| format!("sqlite:{}", dir.path().join(name).display());
    let pki = Pki::new().unwrap();

    // Files: the reference.
    let by_files = sqlite("files.db");
    let mut args = vec!["report", "import"];
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--store", &by_files, "--format", "json"]);
    ok(&args).await;
    let (all, _) = corpus::contents(KEY, &by_files).await;
    let domains: BTreeSet<String> = all
        .values()
        .filter_map(|r| r["policy_domain"].as_str())
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let nameless = all.len()
        - all
            .values()
            .filter(|r| domains.contains(r["policy_domain"].as_str().unwrap()))
            .count();
    assert!(domains.len() >= 5 && nameless >= 1, "{domains:?}");
    let (expected, expected_summary) = contents(&by_files, &domains).await;
    assert!(expected.len() >= 13, "{}", expected.len());

    let mut backends = vec![("sqlite", sqlite("https.db"), sqlite("smtp.db"))];
    let pg = (
        TestDatabase::create("mtasts_cli", "paths_https").await,
        TestDatabase::create("mtasts_cli", "paths_smtp").await,
    );
    if let (Some(h), Some(s)) = (&pg.0, &pg.1) {
        backends.push(("postgres", h.url.clone(), s.url.clone()));
    }
    for (backend, https_store, smtp_store) in &backends {
        // HTTPS: each file POSTed as it is to https://tlsrpt.provider.test/tlsrpt.
        network_store(https_store, &domains, &pki, dir.path()).await;
        let (guard, https, _) = serve(dir.path(), &format!("{backend}-https"), https_store).await;
        let mut refused = 0;
        for f in &files {
            let body = std::fs::read(f).unwrap();
            let got = post(
                https,
                INTAKE_HOST,
                pki.root_store(),
                "/tlsrpt",
                content_type(f),
                body,
                Duration::from_secs(10),
            )
            .await
            .unwrap();
            let text = String::from_utf8_lossy(&got.body);
            match got.status {
                200 | 201 => {}
                403 => {
                    assert!(
                        text.contains("names no policy domain"),
                        "{}: {}",
                        f.display(),
                        text
                    );
                    refused += 1;
                }
                s => panic!("{}: {s} {text}", f.display()),
            }
        }
        assert!(refused >= 1);
        let (by_https, summary) = contents(https_store, &domains).await;
        assert!(
            by_https == expected,
            "{backend}: HTTPS differs from files:\n{}",
            diff(&by_https, &expected)
        );
        assert_eq!(
            summary, expected_summary,
            "{backend}: HTTPS aggregates differ"
        );
        drop(guard);

        // SMTP: each file as report mail (.eml as it is), sent by swaks.
        network_store(smtp_store, &domains, &pki, dir.path()).await;
        let (guard, _, smtp) = serve(dir.path(), &format!("{backend}-smtp"), smtp_store).await;
        for (i, f) in files.iter().enumerate() {
            let mail = dir.path().join(format!("mail-{i}.eml"));
            std::fs::write(&mail, as_mail(f, i)).unwrap();
            let (code, transcript) = swaks(smtp, &mail, false).await;
            let accepted = transcript.contains("<-  250 2.0.0 stored");
            let nameless = transcript
                .contains("<** 550 5.7.1 not accepted: the report names no policy domain");
            assert!(accepted || nameless, "{}: {code} {transcript}", f.display());
        }
        let (mut by_smtp, summary) = contents(smtp_store, &domains).await;
        // SMTP carries text with CRLF line ends (RFC 5321 §2.3.8): a report sent as a text part
        // with bare LF (parsedmarc's google.com_smtp_tls_report.eml) arrives with CRLF. Its raw
        // JSON differs only so; everything else must be equal.
        let lf = |m: &mut BTreeMap<(String, String), Value>| {
            for r in m.values_mut() {
                let raw = r["raw"].as_str().unwrap().replace("\r\n", "\n");
                r["raw"] = Value::String(raw);
            }
        };
        let mut expected_lf = expected.clone();
        lf(&mut expected_lf);
        lf(&mut by_smtp);
        let expected = &expected_lf;
        let by_smtp = &by_smtp;
        assert!(
            by_smtp == expected,
            "{backend}: SMTP differs from files:\n{}",
            diff(by_smtp, expected)
        );
        assert_eq!(
            summary, expected_summary,
            "{backend}: SMTP aggregates differ"
        );
        let list: Value = serde_json::from_str(
            &ok(&["report", "list", "--store", smtp_store, "--format", "json"]).await,
        )
        .unwrap();
        assert!(list.as_array().unwrap().iter().all(|r| r["via"] == "smtp"));
        drop(guard);
    }
}
