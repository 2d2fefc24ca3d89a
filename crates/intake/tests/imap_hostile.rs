//! The IMAP importer against a hostile server (a scripted one on loopback TLS): an endless
//! greeting line, a literal far larger than allowed, a message larger than its announced size,
//! a flood of responses, silence. Each round fails within its time limits, having read no
//! more than its allowance, and takes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mtasts_intake::imap::{Folders, ImapError, ImapLimits, ImapSettings, Importer, Password};
use mtasts_intake::{Accept, Intake};
use mtasts_store::{Store, StoreOptions};
use mtasts_testnet::pki::{Defect, Pki};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

const NAME: &str = "imap.example.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evil {
    /// `* OK ` and then never a line end.
    EndlessGreeting,
    /// The message's literal announces 3 GB.
    HugeLiteral,
    /// RFC822.SIZE says 100 bytes; the literal is 200 KB.
    LyingSize,
    /// `* OK` lines without end in answer to SELECT.
    Flood,
    /// No answer to SELECT.
    Silent,
}

type Tls = BufReader<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// Writes `bytes`, counting them; whether the client still reads.
async fn send(s: &mut Tls, count: &AtomicU64, bytes: &[u8]) -> bool {
    count.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    s.get_mut().write_all(bytes).await.is_ok()
}

/// A server that behaves until `evil` says otherwise; counts the bytes it wrote.
async fn serve(pki: &Pki, evil: Evil) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let cert = pki.issue(NAME, Defect::Valid).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&cert.server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&written);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut s = BufReader::new(tls);
        let count = &*count;
        if evil == Evil::EndlessGreeting {
            send(&mut s, count, b"* OK ").await;
            let chunk = vec![b'a'; 64 * 1024];
            // At most 1 GiB: the client must have given up long before.
            for _ in 0..16 * 1024 {
                if !send(&mut s, count, &chunk).await {
                    return;
                }
            }
            return;
        }
        send(
            &mut s,
            count,
            b"* OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS] hostile\r\n",
        )
        .await;
        loop {
            let mut line = String::new();
            if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let (tag, command) = line.trim_end().split_once(' ').unwrap_or(("*", ""));
            let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
            let sub = command.split(' ').nth(1).unwrap_or("").to_ascii_uppercase();
            let ok = format!("{tag} OK done\r\n");
            let answer: Vec<u8> = match (verb.as_str(), sub.as_str()) {
                ("CAPABILITY", _) => format!("* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n{ok}").into(),
                ("SELECT", _) if evil == Evil::Silent => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                ("SELECT", _) if evil == Evil::Flood => {
                    let chunk = "* OK still here\r\n".repeat(4096);
                    for _ in 0..16 * 1024 {
                        if !send(&mut s, count, chunk.as_bytes()).await {
                            return;
                        }
                    }
                    return;
                }
                ("SELECT", _) => format!(
                    "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] done\r\n"
                )
                .into(),
                ("FETCH", _) => {
                    format!("* 1 FETCH (UID 9 RFC822.SIZE 100 FLAGS ())\r\n{ok}").into()
                }
                ("UID", "FETCH") if evil == Evil::HugeLiteral => {
                    send(&mut s, count, b"* 1 FETCH (UID 9 BODY[] {3000000000}\r\n").await;
                    let chunk = vec![b'{'; 64 * 1024];
                    for _ in 0..16 * 1024 {
                        if !send(&mut s, count, &chunk).await {
                            return;
                        }
                    }
                    return;
                }
                ("UID", "FETCH") => {
                    // LyingSize (the only other case reaching a fetch).
                    let mut a = b"* 1 FETCH (UID 9 BODY[] {200000}\r\n".to_vec();
                    a.extend(std::iter::repeat_n(b'x', 200_000));
                    a.extend_from_slice(format!(")\r\n{ok}").as_bytes());
                    a
                }
                ("LOGOUT", _) => format!("* BYE\r\n{ok}").into(),
                _ => ok.into(),
            };
            if !send(&mut s, count, &answer).await {
                return;
            }
        }
    });
    (addr, written)
}

async fn round(evil: Evil) -> (Result<(), ImapError>, Duration, u64) {
    let pki = Pki::new().unwrap();
    let (addr, written) = serve(&pki, evil).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("s.db").display());
    let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
    let intake = Intake::new(store.clone(), Accept::Any);
    let tls = mtasts_intake::imap::tls_config(Some(pki.root_pem().as_bytes())).unwrap();
    let settings = ImapSettings {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls_name: NAME.into(),
        user: "u".into(),
        password: Password::new("p"),
        folders: Folders::default(),
        tls,
        limits: ImapLimits {
            max_message: 100_000,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(3),
            ..ImapLimits::default()
        },
    };
    let importer = Importer::new(settings, intake).unwrap();
    let started = Instant::now();
    let r = importer.round().await.map(|round| {
        assert!(round.mails.is_empty(), "{round:?}");
    });
    let took = started.elapsed();
    let stored = store
        .reports(&mtasts_store::ReportFilter::default())
        .await
        .unwrap();
    assert!(stored.is_empty());
    store.close().await;
    // Let the server notice the closed connection and stop writing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (r, took, written.load(Ordering::Relaxed))
}

#[tokio::test]
async fn an_endless_greeting_line_is_cut_at_the_response_text_limit() {
    let (r, took, written) = round(Evil::EndlessGreeting).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("outside literals"), "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        written < 16 * 1024 * 1024,
        "the client read on: {written} bytes"
    );
}

#[tokio::test]
async fn a_literal_larger_than_the_largest_message_is_refused_before_it_is_read() {
    let (r, took, written) = round(Evil::HugeLiteral).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("literal of 3000000000 bytes"), "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        written < 16 * 1024 * 1024,
        "the client read on: {written} bytes"
    );
}

#[tokio::test]
async fn a_message_larger_than_the_limit_is_refused_whatever_its_announced_size() {
    let (r, _, _) = round(Evil::LyingSize).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("literal of 200000 bytes"), "{e}");
}

#[tokio::test]
async fn a_flood_of_responses_is_cut_at_the_command_allowance() {
    let (r, took, written) = round(Evil::Flood).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("more than 1048576 bytes for one command"), "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        written < 16 * 1024 * 1024,
        "the client read on: {written} bytes"
    );
}

#[tokio::test]
async fn a_silent_server_is_given_up_after_the_read_timeout() {
    let (r, took, _) = round(Evil::Silent).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("sent nothing for 1 s"), "{e}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
}
