//! The SMTP receiver of `mtasts serve --smtp` end to end: report mail sent by a real SMTP
//! client (Debian's swaks, over STARTTLS) lands in the store with its DKIM verdict (a valid
//! Ed25519 signature whose key is in the test network's DNS: pass; the same mail altered after
//! signing: fail; unsigned: none); and no acknowledged mail is lost when the server is killed
//! with SIGKILL while 1,000 report mails are being delivered on 32 connections.
//!
//! swaks comes from tests/e2e/swaks/install.sh; without it the swaks test SKIPS loudly, and
//! fails when `CI=true`.
#![allow(
    clippy::print_stderr,
    reason = "a skipped test says so, and the figures of the run are printed to be quoted"
)]

mod support;

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::pki::{Defect, Pki};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::mail::{swaks, swaks_present};
use support::{Serve, bin, free_addr, health, run};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const KEY: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";

async fn mtasts(args: &[&str]) -> (i32, String, String) {
    run(
        args.iter().map(|a| (*a).to_owned()).collect(),
        &[("MTASTS_STORE_KEY", KEY)],
    )
    .await
}

/// A report for `a.test` with `report_id`, gzip'd.
fn report_gz(report_id: &str) -> Vec<u8> {
    let json = json!({
        "organization-name": "Reporter Inc.",
        "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
        "contact-info": "tlsrpt@reporter.test", "report-id": report_id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
                       "policy-domain": "a.test", "mx-host": ["mx.a.test"]},
            "summary": {"total-successful-session-count": 7, "total-failure-session-count": 1},
            "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
                                 "receiving-mx-hostname": "mx.a.test", "failed-session-count": 1}]
        }]
    })
    .to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// A report mail as RFC 8460 §5.3 shapes it: `multipart/report; report-type=tlsrpt` with the
/// report as an `application/tlsrpt+gzip` attachment.
fn report_mail(report_id: &str) -> String {
    let b64 = data_encoding::BASE64_MIME.encode(&report_gz(report_id));
    format!(
        "From: TLS reporting <tlsrpt@reporter.test>\r\n\
         To: tlsrpt@a.test\r\n\
         Subject: Report Domain: a.test Submitter: reporter.test Report-ID: <{report_id}>\r\n\
         Date: Thu, 1 Jan 2026 12:00:00 +0000\r\n\
         Message-ID: <{report_id}@reporter.test>\r\n\
         TLS-Report-Domain: a.test\r\n\
         TLS-Report-Submitter: reporter.test\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is an aggregate TLS report from reporter.test.\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: application/tlsrpt+gzip\r\n\
         Content-Disposition: attachment; filename=\"reporter.test!a.test!1767225600!1767311999.json.gz\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {b64}\r\n\
         --b1--\r\n"
    )
}

/// `mail` with a DKIM-Signature by the Ed25519 key `pkcs8` for `d=reporter.test; s=sel` prepended.
fn signed(pkcs8: &[u8], mail: &str) -> String {
    let sig = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(pkcs8).unwrap())
        .domain("reporter.test")
        .selector("sel")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(mail.as_bytes())
        .unwrap();
    format!("{}{mail}", sig.to_header())
}

fn start(
    dir: &Path,
    n: u8,
    store: &str,
    smtp: SocketAddr,
    dns: Option<SocketAddr>,
    extra: &[&str],
) -> (Serve, SocketAddr) {
    let admin = free_addr(Ipv4Addr::LOCALHOST);
    let https = free_addr(Ipv4Addr::LOCALHOST);
    let log = dir.join(format!("serve{n}.log"));
    let mut c = bin();
    c.env("MTASTS_STORE_KEY", KEY)
        .args(["serve", "--store", store, "--http", "none"])
        .args(["--https", &https.to_string(), "--admin", &admin.to_string()])
        .args(["--smtp", &smtp.to_string()])
        .args(["--set", "smtp.hostname=mx.reports.test"])
        // The load comes from one address, on 32 connections.
        .args(["--set", "smtp.max_connections_per_ip=64"])
        .args(["--set", "check.drift_interval=0", "--set", "grace=1"])
        .args(extra);
    match dns {
        Some(dns) => c.args(["--nameserver", &dns.to_string()]),
        None => c.args(["--set", "smtp.verify_dkim=false"]),
    };
    let child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Serve { child, log }, admin)
}

/// Waits until the server serves one domain and its SMTP port answers.
async fn serving(admin: SocketAddr, smtp: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, v)) = health(admin).await
            && v["serving"]["domains"] == 1
            && tokio::net::TcpStream::connect(smtp).await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{admin}: not serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A store at `dir` hosting `a.test` with a certificate for `mta-sts.a.test`.
async fn hosted_store(dir: &Path, pki: &Pki) -> String {
    let store = format!("sqlite:{}", dir.join("store.db").display());
    let (code, out, err) = mtasts(&[
        "domain",
        "add",
        "a.test",
        "--mx",
        "mx.a.test",
        "--store",
        &store,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let cert = pki.issue("mta-sts.a.test", Defect::Valid).unwrap();
    let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
    std::fs::write(&c, cert.chain_pem()).unwrap();
    std::fs::write(&k, cert.key_pem()).unwrap();
    let (c, k) = (c.display().to_string(), k.display().to_string());
    let (code, out, err) = mtasts(&[
        "domain", "cert", "import", "a.test", "--cert", &c, "--key", &k, "--store", &store,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_delivers_report_mail_over_starttls_and_each_dkim_verdict_is_recorded() {
    if !swaks_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new().unwrap();
    let store = hosted_store(dir.path(), &pki).await;

    // The reporter's DKIM key, published in the test network's DNS.
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = data_encoding::BASE64.encode(&key.public_key());
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
        .await
        .unwrap();
    dns.set_zone(
        "reporter.test.",
        &format!("sel._domainkey 60 IN TXT \"v=DKIM1; k=ed25519; p={public}\"\n"),
    )
    .unwrap();

    // The receiver's own name gets its certificate for STARTTLS.
    let cert = pki.issue("mx.reports.test", Defect::Valid).unwrap();
    let (c, k) = (dir.path().join("mx.pem"), dir.path().join("mx.key"));
    std::fs::write(&c, cert.chain_pem()).unwrap();
    std::fs::write(&k, cert.key_pem()).unwrap();
    let (c, k) = (c.display().to_string(), k.display().to_string());
    let (code, out, err) = mtasts(&[
        "domain",
        "cert",
        "import-host",
        "mx.reports.test",
        "--cert",
        &c,
        "--key",
        &k,
        "--store",
        &store,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("mx.reports.test"), "{out}");

    let smtp = free_addr(Ipv4Addr::LOCALHOST);
    let (_serve, admin) = start(dir.path(), 1, &store, smtp, Some(dns.addr()), &[]);
    serving(admin, smtp).await;

    let pass = signed(&pkcs8, &report_mail("dkim-pass"));
    // Signed, then its Subject changed on the way: the signature no longer verifies.
    let fail = signed(&pkcs8, &report_mail("dkim-fail")).replace(
        "Subject: Report Domain: a.test",
        "Subject: Fwd: Report Domain: a.test",
    );
    let unsigned = report_mail("dkim-none");
    // A valid signature by reporter.test on mail From another domain: it verifies, but says
    // nothing about who sent the report.
    let unaligned = signed(
        &pkcs8,
        &report_mail("dkim-unaligned").replace(
            "From: TLS reporting <tlsrpt@reporter.test>",
            "From: TLS reporting <smtp-tls-reporting@google.test>",
        ),
    );
    for (name, mail) in [
        ("pass", &pass),
        ("fail", &fail),
        ("none", &unsigned),
        ("unaligned", &unaligned),
    ] {
        let path = dir.path().join(format!("{name}.eml"));
        std::fs::write(&path, mail).unwrap();
        let (code, transcript) = swaks(smtp, &path, true).await;
        assert_eq!(code, 0, "{name}: {transcript}");
        assert!(
            transcript.contains("<-  220 2.0.0 ready to start TLS"),
            "{name}: no STARTTLS: {transcript}"
        );
        assert!(
            transcript.contains("<~  250 2.0.0 stored 1, duplicates 0"),
            "{name}: {transcript}"
        );
    }
    // The same mail again is a copy, counted.
    let path = dir.path().join("pass.eml");
    let (code, transcript) = swaks(smtp, &path, true).await;
    assert_eq!(code, 0, "{transcript}");
    assert!(
        transcript.contains("250 2.0.0 stored 0, duplicates 1"),
        "{transcript}"
    );

    let (code, out, err) = mtasts(&["report", "list", "--store", &store, "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let by_id: HashMap<&str, &Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["report_id"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_id.len(), 4, "{list}");
    let unaligned = by_id["dkim-unaligned"];
    assert_eq!(unaligned["dkim"].as_str(), Some("fail"), "{unaligned}");
    assert!(
        unaligned["dkim_detail"]
            .as_str()
            .unwrap()
            .contains("verifies, but is not the From domain \"google.test\""),
        "{unaligned}"
    );
    let pass = by_id["dkim-pass"];
    assert_eq!(
        (pass["dkim"].as_str(), pass["dkim_detail"].as_str()),
        (Some("pass"), Some("d=reporter.test")),
        "{pass}"
    );
    assert_eq!(
        (pass["via"].as_str(), pass["copies"].as_u64()),
        (Some("smtp"), Some(2)),
        "{pass}"
    );
    assert!(
        pass["source"]
            .as_str()
            .unwrap()
            .contains("helo mail.reporter.test"),
        "{pass}"
    );
    let fail = by_id["dkim-fail"];
    assert_eq!(fail["dkim"].as_str(), Some("fail"), "{fail}");
    assert!(
        fail["dkim_detail"]
            .as_str()
            .unwrap()
            .starts_with("d=reporter.test: "),
        "{fail}"
    );
    let none = by_id["dkim-none"];
    assert_eq!(none["dkim"].as_str(), Some("none"), "{none}");
    for r in by_id.values() {
        assert_eq!(
            (r["success"].as_u64(), r["failure"].as_u64()),
            (Some(7), Some(1)),
            "{r}"
        );
    }
    // Per-domain metrics: the sessions of the four new reports, the copy counted apart.
    let (status, metrics) = support::admin_get(admin, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for line in [
        "mtasts_tlsrpt_sessions_total{domain=\"a.test\",result=\"success\"} 28",
        "mtasts_tlsrpt_sessions_total{domain=\"a.test\",result=\"certificate-expired\"} 4",
        "mtasts_tlsrpt_reports_total{domain=\"a.test\",result=\"stored\"} 4",
        "mtasts_tlsrpt_reports_total{domain=\"a.test\",result=\"duplicate\"} 1",
        "mtasts_intake_smtp_mails_total{result=\"accepted\"} 5",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    // The text view says it too.
    let (code, out, _) =
        mtasts(&["report", "show", &pass["id"].to_string(), "--store", &store]).await;
    assert_eq!(code, 0);
    assert!(out.contains("dkim"), "{out}");
    // With smtp.require_dkim, unsigned mail is refused and a passing one stored.
    let smtp2 = free_addr(Ipv4Addr::LOCALHOST);
    let (_strict, admin2) = start(
        dir.path(),
        2,
        &store,
        smtp2,
        Some(dns.addr()),
        &["--set", "smtp.require_dkim=true"],
    );
    serving(admin2, smtp2).await;
    let path = dir.path().join("strict-none.eml");
    std::fs::write(&path, report_mail("strict-none")).unwrap();
    let (code, transcript) = swaks(smtp2, &path, true).await;
    assert_ne!(code, 0, "{transcript}");
    assert!(
        transcript.contains("550 5.7.20 no passing DKIM signature: the mail is not DKIM-signed"),
        "{transcript}"
    );
    let path = dir.path().join("strict-pass.eml");
    std::fs::write(&path, signed(&pkcs8, &report_mail("strict-pass"))).unwrap();
    let (code, transcript) = swaks(smtp2, &path, true).await;
    assert_eq!(code, 0, "{transcript}");
    assert!(transcript.contains("250 2.0.0 stored 1"), "{transcript}");
    dns.stop().await;
}

/// A plain SMTP client for the load: sends `mails` on one connection, returning for each
/// report id the final reply code (0 when the connection broke first).
async fn deliver(smtp: SocketAddr, ids: Vec<String>) -> Vec<(String, u16)> {
    let mut out = Vec::with_capacity(ids.len());
    let Ok(stream) = tokio::net::TcpStream::connect(smtp).await else {
        return ids.into_iter().map(|i| (i, 0)).collect();
    };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> u16 {
        let mut line = String::new();
        loop {
            line.clear();
            match tokio::time::timeout(Duration::from_secs(20), r.read_line(&mut line)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return 0,
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            }
        }
    }
    let mut alive = reply(&mut r).await == 220
        && w.write_all(b"EHLO load.test\r\n").await.is_ok()
        && reply(&mut r).await == 250;
    for id in ids {
        if !alive {
            out.push((id, 0));
            continue;
        }
        let mail = report_mail(&id);
        let mut code = 0;
        for (send, want) in [
            ("MAIL FROM:<tlsrpt@reporter.test>\r\n".to_owned(), 250),
            ("RCPT TO:<tlsrpt@a.test>\r\n".to_owned(), 250),
            ("DATA\r\n".to_owned(), 354),
            (format!("{mail}.\r\n"), 0),
        ] {
            if w.write_all(send.as_bytes()).await.is_err() {
                code = 0;
                break;
            }
            code = reply(&mut r).await;
            if want != 0 && code != want {
                break;
            }
        }
        if code == 0 {
            alive = false;
        }
        out.push((id, code));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_mail_acknowledged_before_a_sigkill_is_stored_exactly_once() {
    const MAILS: usize = 1000;
    const CONNECTIONS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new().unwrap();
    let store = hosted_store(dir.path(), &pki).await;
    let smtp = free_addr(Ipv4Addr::LOCALHOST);
    let (mut serve, admin) = start(dir.path(), 1, &store, smtp, None, &[]);
    serving(admin, smtp).await;

    let acked = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (acked, next) = (Arc::clone(&acked), Arc::clone(&next));
        tasks.spawn(async move {
            let mut seen = Vec::new();
            // Ten mails a connection, then a new connection, until all are taken.
            loop {
                let ids: Vec<String> = (0..10)
                    .map(|_| next.fetch_add(1, Ordering::Relaxed))
                    .filter(|i| *i < MAILS)
                    .map(|i| format!("smtp-kill-{i}"))
                    .collect();
                if ids.is_empty() {
                    return seen;
                }
                for (id, code) in deliver(smtp, ids).await {
                    if code == 250 {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    seen.push((id, code));
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while acked.load(Ordering::Relaxed) < 300 {
        assert!(
            Instant::now() < deadline,
            "300 mails not acknowledged within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    serve.child.kill().unwrap(); // SIGKILL
    let killed_at = acked.load(Ordering::Relaxed);
    let _ = serve.child.wait();
    let mut codes: HashMap<String, u16> = HashMap::new();
    while let Some(seen) = tasks.join_next().await {
        codes.extend(seen.unwrap());
    }
    let ok: HashSet<&String> = codes
        .iter()
        .filter(|(_, c)| **c == 250)
        .map(|(i, _)| i)
        .collect();

    let (serve2, admin2) = start(dir.path(), 2, &store, smtp, None, &[]);
    serving(admin2, smtp).await;
    let (code, out, err) = mtasts(&["report", "list", "--store", &store, "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let list = list.as_array().unwrap();
    let stored: HashSet<String> = list
        .iter()
        .map(|r| r["report_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored.len(), list.len(), "each report once");
    let lost: Vec<&&String> = ok.iter().filter(|i| !stored.contains(**i)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    for r in list {
        assert_eq!(
            (r["copies"].as_u64(), r["via"].as_str()),
            (Some(1), Some("smtp")),
            "{r}"
        );
    }
    let (_, out, _) = mtasts(&[
        "report", "summary", "--store", &store, "--since", "30000d", "--format", "json",
    ])
    .await;
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        summary["domains"][0]["reports"].as_u64(),
        Some(list.len() as u64),
        "{summary}"
    );
    assert_eq!(
        summary["domains"][0]["success"].as_u64(),
        Some(7 * list.len() as u64),
        "{summary}"
    );
    eprintln!(
        "SIGKILL after {killed_at} acknowledged; {} acknowledged in all, {} stored (stored but \
         not acknowledged: {}), {} unanswered",
        ok.len(),
        stored.len(),
        stored.len() - ok.len(),
        codes.values().filter(|c| **c == 0).count()
    );
    drop(serve2);
}
