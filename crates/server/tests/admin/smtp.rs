//! The SMTP receiver against hostile and broken clients, at the socket level: every limit of
//! `[smtp]` answered with its code, the connection usable after what is recoverable, nothing
//! stored from what is refused, bounded memory for a 100 MB mail, and bytes pipelined after
//! `STARTTLS` never answered in the clear.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtasts_intake::smtp::{SmtpLimits, SmtpReceiver};
use mtasts_intake::{Accept, Intake};
use mtasts_store::{Delegation, ReportFilter, Store};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::support::TestDb;

fn report(domain: &str, id: &str) -> String {
    serde_json::json!({
        "organization-name": "R", "report-id": id, "contact-info": "r@r.test",
        "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
        "policies": [{"policy": {"policy-type": "sts", "policy-domain": domain},
                      "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0}}]
    })
    .to_string()
}

fn mail(body_part: &str) -> String {
    format!(
        "From: r@r.test\r\nTo: t@a.test\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=tlsrpt; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nreport\r\n\
         --b\r\nContent-Type: application/tlsrpt+json\r\n\r\n{body_part}\r\n--b--\r\n"
    )
}

async fn receiver(
    limits: SmtpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (SocketAddr, Store, TestDb) {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    crate::support::add_domain(&store, "a.test", Delegation::Host).await;
    let intake = Intake::new(store.clone(), Accept::Hosted);
    let rx = Arc::new(SmtpReceiver::new(intake, None, tls, limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(rx.serve(listener, std::future::pending()));
    (addr, store, db)
}

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> (Self, String) {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Self {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// The next reply (every line of a multi-line one); empty when the connection closed.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut line)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return all,
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, line: &str) -> String {
        if self.w.write_all(line.as_bytes()).await.is_err() {
            return String::new();
        }
        self.reply().await
    }

    /// EHLO, MAIL, RCPT, DATA with `mail`: the final reply.
    async fn deliver(&mut self, mail: &str) -> String {
        for (cmd, want) in [
            ("EHLO c.test\r\n", "250"),
            ("MAIL FROM:<r@r.test>\r\n", "250"),
            ("RCPT TO:<t@a.test>\r\n", "250"),
            ("DATA\r\n", "354"),
        ] {
            let got = self.send(cmd).await;
            assert!(got.starts_with(want), "{cmd:?} -> {got:?}");
        }
        self.send(&format!("{mail}.\r\n")).await
    }
}

async fn stored(store: &Store) -> usize {
    store.reports(&ReportFilter::default()).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_mail_is_stored_and_every_refusal_has_its_code() {
    let (addr, store, _db) = receiver(SmtpLimits::default(), None).await;
    let (mut c, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    let ehlo = c.send("EHLO c.test\r\n").await;
    assert!(
        ehlo.contains("250-SIZE 10485760") || ehlo.contains("250 SIZE 10485760"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("STARTTLS"), "no TLS configured: {ehlo}");

    let got = c.deliver(&mail(&report("a.test", "ok-1"))).await;
    assert!(got.starts_with("250 2.0.0 stored 1, duplicates 0"), "{got}");
    let got = c.deliver(&mail(&report("a.test", "ok-1"))).await;
    assert!(got.starts_with("250 2.0.0 stored 0, duplicates 1"), "{got}");
    // D27: a domain not hosted here.
    let got = c.deliver(&mail(&report("other.test", "x"))).await;
    assert!(
        got.starts_with("550 5.7.1 not accepted: other.test is not a domain hosted here"),
        "{got}"
    );
    // No report at all, a truncated one, a gzip bomb's cousin (not gzip at all).
    let got = c.deliver("Subject: hello\r\n\r\njust text\r\n").await;
    assert!(
        got.starts_with("550 5.6.0 no valid TLS-RPT report: "),
        "{got}"
    );
    let got = c.deliver(&mail(&report("a.test", "cut")[..40])).await;
    assert!(got.starts_with("550 5.6.0 "), "{got}");
    assert_eq!(stored(&store).await, 1);
    let got = c.send("QUIT\r\n").await;
    assert!(got.starts_with("221 "), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_out_of_order_unknown_or_too_long_are_refused_then_the_connection_closed() {
    let limits = SmtpLimits {
        max_errors: 5,
        ..SmtpLimits::default()
    };
    let (addr, _store, _db) = receiver(limits, None).await;
    let (mut c, _) = Client::connect(addr).await;
    assert!(
        c.send("MAIL FROM:<a@b.test>\r\n")
            .await
            .starts_with("503 5.5.1")
    );
    assert!(c.send("XYZZY\r\n").await.starts_with("500 5.5.1"));
    assert!(c.send("VRFY root\r\n").await.starts_with("502 5.5.1"));
    let long = format!("NOOP {}\r\n", "x".repeat(5000));
    assert!(
        c.send(&long).await.starts_with("500 5.5.2"),
        "line too long"
    );
    assert!(c.send("EHLO c.test\r\n").await.starts_with("250"));
    assert!(
        c.send("RCPT TO:<t@a.test>\r\n")
            .await
            .starts_with("503 5.5.1")
    );
    // The sixth error ends the connection.
    assert!(c.send("DATA\r\n").await.starts_with("421 4.7.0"));
    assert_eq!(c.reply().await, "", "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_recipient_and_mail_count_limits() {
    let limits = SmtpLimits {
        max_message: 64 * 1024,
        max_recipients: 2,
        max_messages: 3,
        ..SmtpLimits::default()
    };
    let (addr, store, _db) = receiver(limits, None).await;
    let (mut c, _) = Client::connect(addr).await;
    assert!(c.send("EHLO c.test\r\n").await.contains("SIZE 65536"));
    let got = c.send("MAIL FROM:<r@r.test> SIZE=1000000\r\n").await;
    assert!(got.starts_with("552 5.3.4"), "{got}");
    assert!(c.send("MAIL FROM:<r@r.test>\r\n").await.starts_with("250"));
    assert!(c.send("RCPT TO:<a@a.test>\r\n").await.starts_with("250"));
    assert!(c.send("RCPT TO:<b@a.test>\r\n").await.starts_with("250"));
    assert!(
        c.send("RCPT TO:<c@a.test>\r\n")
            .await
            .starts_with("452 4.5.3")
    );
    assert!(c.send("DATA\r\n").await.starts_with("354"));
    // 200 KiB without SIZE: read to its end and dropped; the connection goes on.
    let big = mail(&format!(
        "{}{}",
        report("a.test", "big"),
        " ".repeat(200 * 1024)
    ));
    let got = c.send(&format!("{big}.\r\n")).await;
    assert!(got.starts_with("552 5.3.4"), "{got}");
    let got = c.deliver(&mail(&report("a.test", "after-big"))).await;
    assert!(got.starts_with("250"), "{got}");
    let got = c.deliver(&mail(&report("a.test", "third"))).await;
    assert!(got.starts_with("250"), "{got}");
    // Three mails (the refused one counts): the fourth MAIL ends the connection.
    let got = c.send("MAIL FROM:<r@r.test>\r\n").await;
    assert!(got.starts_with("421 4.7.0"), "{got}");
    assert_eq!(stored(&store).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_mail_is_read_and_dropped_within_bounded_memory() {
    let (addr, store, _db) = receiver(SmtpLimits::default(), None).await;
    let (mut c, _) = Client::connect(addr).await;
    assert!(
        c.send("EHLO c.test\r\nMAIL FROM:<r@r.test>\r\n")
            .await
            .starts_with("250")
    );
    assert!(c.reply().await.starts_with("250"));
    assert!(c.send("RCPT TO:<t@a.test>\r\n").await.starts_with("250"));
    assert!(c.send("DATA\r\n").await.starts_with("354"));
    let started = Instant::now();
    let line = format!("{}\r\n", "A".repeat(998));
    let chunk = line.repeat(64); // 64,000 bytes
    for _ in 0..(100_000_000 / chunk.len()) {
        c.w.write_all(chunk.as_bytes()).await.unwrap();
    }
    let got = c.send(".\r\n").await;
    assert!(got.starts_with("552 5.3.4"), "{got}");
    let took = started.elapsed();
    // This test runs in its own process (nextest): its peak resident memory bounds what the
    // receiver kept of the mail (10 MiB at most, as configured by default).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        peak_kib < 80 * 1024,
        "peak RSS {peak_kib} KiB after a 100 MB mail"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_eq!(stored(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mime_parts_and_malformed_mime_are_refused_quickly() {
    let (addr, store, _db) = receiver(SmtpLimits::default(), None).await;
    let (mut c, _) = Client::connect(addr).await;
    let mut parts = String::from(
        "From: r@r.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    for i in 0..10_000 {
        parts.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    parts.push_str(&format!(
        "--b\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--b--\r\n",
        report("a.test", "deep")
    ));
    let started = Instant::now();
    let got = c.deliver(&parts).await;
    assert!(got.starts_with("550 5.6.0"), "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // A boundary never closed, a part header without end, nested multiparts with no body.
    let broken = "MIME-Version: 1.0\r\nContent-Type: multipart/report; boundary=\"x\"\r\n\r\n\
                  --x\r\nContent-Type: multipart/mixed; boundary=\"y\"\r\n\r\n--y\r\nContent-Type: application/tlsrpt+gzip\r\n\
                  Content-Transfer-Encoding: base64\r\n\r\nH4sIAAAA!!!not base64\r\n";
    let got = c.deliver(broken).await;
    assert!(got.starts_with("550 5.6.0"), "{got}");
    assert_eq!(stored(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_too_many_connections_are_cut_off() {
    let limits = SmtpLimits {
        command_timeout: Duration::from_secs(1),
        data_timeout: Duration::from_secs(1),
        max_connections: 2,
        ..SmtpLimits::default()
    };
    let (addr, store, _db) = receiver(limits, None).await;
    let connected = Instant::now();
    let (mut idle, _) = Client::connect(addr).await;
    let (mut slow, _) = Client::connect(addr).await;
    // A third connection while two are open.
    let (mut third, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("421 4.3.2"), "{greeting}");
    assert_eq!(third.reply().await, "");
    // A mail that does not end within data_timeout.
    for cmd in [
        "EHLO c.test\r\n",
        "MAIL FROM:<r@r.test>\r\n",
        "RCPT TO:<t@a.test>\r\n",
        "DATA\r\n",
    ] {
        slow.send(cmd).await;
    }
    slow.w
        .write_all(mail(&report("a.test", "slow")).as_bytes())
        .await
        .unwrap();
    let got = slow.reply().await;
    assert!(got.starts_with("421 4.4.2"), "{got}");
    // Silent after the greeting: cut off after command_timeout.
    let got = idle.reply().await;
    assert!(got.starts_with("421 4.4.2"), "{got}");
    assert!(connected.elapsed() >= Duration::from_millis(900));
    assert_eq!(stored(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_dkim_refuses_mail_without_a_passing_signature() {
    let limits = SmtpLimits {
        require_dkim: true,
        ..SmtpLimits::default()
    };
    let (addr, store, _db) = receiver(limits, None).await;
    let (mut c, _) = Client::connect(addr).await;
    let got = c.deliver(&mail(&report("a.test", "unsigned"))).await;
    assert!(
        got.starts_with("550 5.7.20 no passing DKIM signature"),
        "{got}"
    );
    assert_eq!(stored(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelined_after_starttls_are_not_answered_in_the_clear() {
    let (cert, key) = crate::support::cert(&["mx.a.test"], crate::support::t(86400 * 3650));
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .unwrap();
    let (addr, _store, _db) = receiver(SmtpLimits::default(), Some(Arc::new(tls))).await;
    let (mut c, _) = Client::connect(addr).await;
    assert!(c.send("EHLO c.test\r\n").await.contains("STARTTLS"));
    let got = c.send("STARTTLS\r\nNOOP\r\nMAIL FROM:<x@y.test>\r\n").await;
    assert!(got.starts_with("220 2.0.0"), "{got}");
    // Nothing more in the clear: the server waits for a TLS ClientHello.
    let mut extra = [0u8; 64];
    let more = tokio::time::timeout(Duration::from_millis(500), c.r.read(&mut extra)).await;
    assert!(more.is_err(), "answered in the clear: {more:?}");
    // Inside TLS the session starts over: the injected NOOP and MAIL were dropped, not
    // answered now; MAIL needs a new EHLO, and STARTTLS is not offered again.
    let tcp = c.r.into_inner().reunite(c.w).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("mx.a.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .unwrap();
    let (r, mut w) = tokio::io::split(tls);
    let mut r = BufReader::new(r);
    let mut line = String::new();
    w.write_all(b"MAIL FROM:<a@b.test>\r\n").await.unwrap();
    r.read_line(&mut line).await.unwrap();
    assert!(
        line.starts_with("503 5.5.1"),
        "first answer inside TLS: {line:?}"
    );
    w.write_all(b"EHLO c.test\r\n").await.unwrap();
    let mut ehlo = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        ehlo.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    assert!(
        ehlo.starts_with("250") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_exact_size_and_dot_stuffed_mails_and_trickling_or_crowding_clients() {
    let limits = SmtpLimits {
        max_message: 4096,
        command_timeout: Duration::from_secs(1),
        max_connections_per_ip: 2,
        ..SmtpLimits::default()
    };
    let (addr, store, _db) = receiver(limits, None).await;
    let (mut c, _) = Client::connect(addr).await;
    // An empty mail ends at once (not at the data time-out).
    let got = c.deliver("").await;
    assert!(got.starts_with("550 5.6.0"), "{got}");
    // Exactly max_message bytes (4094 + CRLF... as received): not "too large".
    let body = "x".repeat(4094);
    let got = c.deliver(&format!("{body}\r\n")).await;
    assert!(got.starts_with("550 5.6.0"), "exactly the limit: {got}");
    let got = c.deliver(&format!("{body}xx\r\n")).await;
    assert!(got.starts_with("552 5.3.4"), "one byte over: {got}");
    // A report whose first line is dot-stuffed (`..`): unstuffed, then read.
    let json = report("a.test", "dot");
    let got = c.deliver(&format!(".{json}\r\n")).await;
    assert!(got.starts_with("250 2.0.0 stored 1"), "{got}");
    // A third connection from the same address is refused.
    let (_second, _) = Client::connect(addr).await;
    let (mut third, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("421 4.7.0"), "{greeting}");
    assert_eq!(third.reply().await, "");
    // A client trickling a byte every 300 ms is cut off once the line has taken a second.
    let started = Instant::now();
    let mut got = String::new();
    for b in b"NOOP and more and more\r\n" {
        if c.w.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), c.r.read_line(&mut got)).await
            && n > 0
        {
            break;
        }
    }
    if got.is_empty() {
        got = c.reply().await;
    }
    assert!(got.starts_with("421 4.4.2"), "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stored(&store).await, 1);
}
