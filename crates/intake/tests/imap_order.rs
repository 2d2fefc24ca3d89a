//! The IMAP importer's order of work against a scripted server that holds one report mail and
//! records every command: `LOGIN` when no `AUTH=PLAIN` is offered (Dovecot offers it: the
//! tests against it use `AUTHENTICATE PLAIN`); the mail is moved only after its reports are
//! committed; a refused MOVE leaves it in place with its report stored, and the next round
//! stores a copy and moves it; a store that fails leaves the mail in place, unmoved.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtasts_intake::imap::{
    Folders, ImapError, ImapLimits, ImapSettings, Importer, Password, Sorted, tls_config,
};
use mtasts_intake::{Accept, Intake, IntakeError, Stored};
use mtasts_store::{ReportFilter, Store, StoreOptions};
use mtasts_testnet::pki::{Defect, Pki};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

const NAME: &str = "imap.example.test";

const REPORT: &str = r#"{"organization-name": "Org", "report-id": "r-1",
  "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
  "contact-info": "tlsrpt@org.example",
  "policies": [{"policy": {"policy-type": "sts", "policy-domain": "a.test",
    "policy-string": ["version: STSv1", "mode: testing"], "mx-host": ["mx.a.test"]},
    "summary": {"total-successful-session-count": 3, "total-failure-session-count": 0}}]}"#;

/// What the server saw, and how many MOVEs it still refuses.
#[derive(Default)]
struct Script {
    commands: Mutex<Vec<String>>,
    refuse_moves: AtomicU32,
}

/// A server with one message (UID 9) in INBOX until it is moved; every connection sees it.
async fn serve(pki: &Pki, script: Arc<Script>) -> std::net::SocketAddr {
    let cert = pki.issue(NAME, Defect::Valid).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&cert.server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mail = format!(
        "From: r@org.example\r\nSubject: report\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n",
        REPORT.replace('\n', "\r\n")
    );
    let moved = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, script, mail, moved) = (
                acceptor.clone(),
                Arc::clone(&script),
                mail.clone(),
                Arc::clone(&moved),
            );
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut s = BufReader::new(tls);
                let _ = s
                    .get_mut()
                    .write_all(b"* OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS] scripted\r\n")
                    .await;
                loop {
                    let mut line = String::new();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end().to_owned();
                    let (tag, command) = line.split_once(' ').unwrap_or(("*", ""));
                    script.commands.lock().unwrap().push(command.to_owned());
                    let upper = command.to_ascii_uppercase();
                    let ok = format!("{tag} OK done\r\n");
                    let here = moved.load(Ordering::SeqCst) == 0;
                    let answer = if upper.starts_with("CAPABILITY") {
                        format!("* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n{ok}")
                    } else if upper.starts_with("SELECT") {
                        format!(
                            "* {} EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] done\r\n",
                            u32::from(here)
                        )
                    } else if upper.starts_with("FETCH") && here {
                        format!(
                            "* 1 FETCH (UID 9 RFC822.SIZE {} FLAGS ())\r\n{ok}",
                            mail.len()
                        )
                    } else if upper.starts_with("UID FETCH") && here {
                        format!(
                            "* 1 FETCH (UID 9 BODY[] {{{}}}\r\n{mail})\r\n{ok}",
                            mail.len()
                        )
                    } else if upper.starts_with("UID MOVE") {
                        let refuse = script
                            .refuse_moves
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if refuse {
                            format!("{tag} NO [SERVERBUG] not now\r\n")
                        } else {
                            moved.store(1, Ordering::SeqCst);
                            format!("* 1 EXPUNGE\r\n{ok}")
                        }
                    } else if upper.starts_with("LOGOUT") {
                        format!("* BYE\r\n{ok}")
                    } else {
                        ok
                    };
                    if s.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn importer(pki: &Pki, addr: std::net::SocketAddr, store: &Store) -> Importer {
    let settings = ImapSettings {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls_name: NAME.into(),
        user: "u".into(),
        password: Password::new("pa\"ss \\ word"),
        folders: Folders::default(),
        tls: tls_config(Some(pki.root_pem().as_bytes())).unwrap(),
        limits: ImapLimits {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            ..ImapLimits::default()
        },
    };
    Importer::new(settings, Intake::new(store.clone(), Accept::Any)).unwrap()
}

async fn store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite:{}", dir.path().join("s.db").display());
    Store::open(&url, &StoreOptions::default()).await.unwrap()
}

#[tokio::test]
async fn a_refused_move_leaves_the_mail_with_its_report_stored_and_the_next_round_counts_a_copy() {
    let pki = Pki::new().unwrap();
    let script = Arc::new(Script::default());
    script.refuse_moves.store(1, Ordering::SeqCst);
    let addr = serve(&pki, Arc::clone(&script)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let importer = importer(&pki, addr, &store);

    let e = importer.round().await.unwrap_err();
    assert!(
        matches!(&e, ImapError::Server { what, answer } if what.starts_with("UID MOVE 9") && answer.contains("not now")),
        "{e}"
    );
    let stored = store.reports(&ReportFilter::default()).await.unwrap();
    assert_eq!(stored.len(), 1, "committed before the move was asked for");
    assert_eq!(stored[0].copies, 1);
    {
        let commands = script.commands.lock().unwrap();
        // No AUTH=PLAIN in the greeting: LOGIN, the password quoted.
        assert_eq!(commands[0], r#"LOGIN "u" "pa\"ss \\ word""#, "{commands:?}");
        let fetch = commands
            .iter()
            .position(|c| c.starts_with("UID FETCH 9"))
            .unwrap();
        let moving = commands
            .iter()
            .position(|c| c.starts_with("UID MOVE 9"))
            .unwrap();
        assert!(fetch < moving, "{commands:?}");
        assert!(
            commands.iter().any(|c| c.contains("BODY.PEEK[]")),
            "the mail's flags are left as they are: {commands:?}"
        );
    }

    let round = importer.round().await.unwrap();
    assert_eq!(round.mails.len(), 1);
    assert_eq!(round.mails[0].sorted, Sorted::Processed);
    assert!(
        matches!(
            round.mails[0].reports[0].stored,
            Stored::Duplicate { copies: 2, .. }
        ),
        "{round:?}"
    );
    assert_eq!(round.left, 0);
    let stored = store.reports(&ReportFilter::default()).await.unwrap();
    assert_eq!((stored.len(), stored[0].copies), (1, 2));
    assert!(
        script
            .commands
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == "UID MOVE 9 \"TLSRPT.processed\""),
        "moved to the processed folder"
    );
}

#[tokio::test]
async fn a_store_that_fails_leaves_the_mail_unmoved() {
    let pki = Pki::new().unwrap();
    let script = Arc::new(Script::default());
    let addr = serve(&pki, Arc::clone(&script)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let importer = importer(&pki, addr, &store);
    store.close().await;

    let e = importer.round().await.unwrap_err();
    assert!(
        matches!(&e, ImapError::Intake(IntakeError::Store(_))),
        "{e}"
    );
    let commands = script.commands.lock().unwrap();
    assert!(
        commands.iter().any(|c| c.starts_with("UID FETCH 9")),
        "{commands:?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("MOVE") || c.contains("EXPUNGE") || c.contains("STORE")),
        "{commands:?}"
    );
}
