//! `mtasts report imap` against a real Dovecot (mtasts_testnet::dovecot): every real report of
//! tests/data (and ../shared/data) APPENDed as report mail lands in the store exactly as
//! `report import` of the same files stores it (same reports, normalised forms, raw JSON and
//! aggregates), on SQLite and PostgreSQL; mail is moved, never deleted; unreadable, too large
//! and refused mail each go to their folder; `\Deleted` mail is left alone; MOVE, UIDPLUS and
//! IDLE are used where offered and done without where not.

#[allow(dead_code, reason = "the serve helpers of the shared support module")]
mod support;

use mtasts_testnet::dovecot::{Dovecot, HOST_NAME, Options, PASSWORD, USER};
use mtasts_testnet::pg::TestDatabase;
use mtasts_testnet::pki::Pki;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::run;

const KEY: &str = "0909090909090909090909090909090909090909090909090909090909090909";
const FOLDERS: [&str; 4] = [
    "INBOX",
    "TLSRPT.processed",
    "TLSRPT.unreadable",
    "TLSRPT.refused",
];

/// A report mail as reporters send one (RFC 8460 §5.3): multipart/report with the report
/// gzip'd as a base64 `application/tlsrpt+gzip` part; `.eml` files as they are.
fn as_mail(path: &Path, n: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "eml") {
        return bytes;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    report_mail(n, "application/tlsrpt+gzip", &gz.finish().unwrap())
}

/// Report mail number `n` to the test mailbox, `part` attached as `content_type`.
fn report_mail(n: usize, content_type: &str, part: &[u8]) -> Vec<u8> {
    let filename = format!("report{n}.json.gz");
    support::corpus::report_mail(USER, n, (content_type, &filename), part)
}

async fn mtasts(args: &[&str]) -> (i32, String, String) {
    run(
        args.iter().map(|a| (*a).to_owned()).collect(),
        &[("MTASTS_STORE_KEY", KEY)],
    )
    .await
}

/// `domain` hosted in `store` (MX `mx.<domain>`): the network paths accept its reports.
async fn host(store: &str, domain: &str) {
    let mx = format!("mx.{domain}");
    let (code, out, err) = mtasts(&["domain", "add", domain, "--mx", &mx, "--store", store]).await;
    assert_eq!(code, 0, "{domain}: {out}{err}");
}

async fn json(args: &[&str]) -> Value {
    support::corpus::json(KEY, args).await
}

/// What a store holds ([`support::corpus::contents`]) without the copy counts, raw JSON with
/// LF line ends: IMAP gives a mail with CRLF line ends (RFC 3501), as it was sent; a mail saved
/// to a file may have LF ones, and a report in an unencoded text part keeps the line ends of
/// the mail it came in, in its raw JSON only (D54).
async fn contents(store: &str) -> (BTreeMap<(String, String), Value>, Value) {
    let (mut out, summary) = support::corpus::contents(KEY, store).await;
    for kept in out.values_mut() {
        kept.as_object_mut().unwrap().remove("copies");
        kept["raw"] = Value::from(kept["raw"].as_str().unwrap().replace("\r\n", "\n"));
    }
    (out, summary)
}

/// The flags of `report imap` for `server`, with the test's CA and password files in `dir`.
fn imap_args(server: &Dovecot, dir: &Path, pki: &Pki) -> Vec<String> {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki.root_pem()).unwrap();
    let pw = dir.join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    [
        "report",
        "imap",
        "--server",
        &server.addr().to_string(),
        "--tls-name",
        HOST_NAME,
        "--user",
        USER,
        "--password-file",
        &pw.display().to_string(),
        "--ca-file",
        &ca.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn imap_once(base: &[String], store: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
    args.extend(["--once", "--store", store, "--format", "json"]);
    args.extend(extra);
    let (code, out, err) = mtasts(&args).await;
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, v, err)
}

/// Every message of every folder, line ends made LF (Dovecot's maildir keeps LF), sorted.
fn all_mail(d: &Dovecot) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = FOLDERS
        .iter()
        .flat_map(|f| d.messages(f).unwrap())
        .map(|m| lf(&m))
        .collect();
    all.sort();
    all
}

fn lf(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len());
    for (i, b) in m.iter().enumerate() {
        if *b == b'\r' && m.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(*b);
    }
    out
}

/// Asserts two stores' contents are equal, naming the reports and fields that differ.
fn assert_same(
    got: &BTreeMap<(String, String), Value>,
    want: &BTreeMap<(String, String), Value>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for k in want.keys().filter(|k| !got.contains_key(*k)) {
        diffs.push(format!("missing {k:?}"));
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        diffs.push(format!("extra {k:?}"));
    }
    for (k, w) in want {
        let Some(g) = got.get(k) else { continue };
        for (field, wv) in w.as_object().unwrap() {
            if g.get(field) != Some(wv) {
                let cut = |v: Option<&Value>| {
                    v.map(|v| v.to_string().chars().take(400).collect::<String>())
                };
                diffs.push(format!(
                    "{k:?} {field}: got {:?}, want {:?}",
                    cut(g.get(field)),
                    cut(Some(wv))
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

fn counts(d: &Dovecot) -> Vec<usize> {
    FOLDERS.iter().map(|f| d.count(f).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_lands_through_imap_as_through_files_on_both_backends() {
    let pki = Pki::new().unwrap();
    let Some(dovecot) = Dovecot::start(&pki).await.unwrap() else {
        return;
    };
    let files = support::corpus::corpus();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = |name: &str| format!("sqlite:{}", dir.path().join(name).display());
    let base = imap_args(&dovecot, dir.path(), &pki);

    // The same files imported as files: what IMAP must give.
    let by_file_store = sqlite("files.db");
    let mut args = vec!["report", "import"];
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--store", &by_file_store, "--format", "json"]);
    let imported = json(&args).await;
    assert_eq!(imported["unreadable"], 0, "{imported:#}");
    let (by_file, summary) = contents(&by_file_store).await;
    assert!(by_file.len() >= 14 && !summary.as_array().unwrap().is_empty());
    let reports = imported["stored"].as_u64().unwrap() + imported["duplicates"].as_u64().unwrap();

    let mails: Vec<Vec<u8>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| as_mail(f, i))
        .collect();
    dovecot.append("INBOX", &mails).await.unwrap();
    let before = all_mail(&dovecot);
    assert_eq!(
        counts(&dovecot),
        [mails.len(), 0, 0, 0],
        "{}",
        dovecot.log()
    );

    // Through IMAP (any domain: the files were stored whatever their domain), 7 mails in the
    // first round, the rest in the second.
    let store = sqlite("imap.db");
    let (code, v, err) = imap_once(&base, &store, &["--any-domain", "--max-messages", "7"]).await;
    assert_eq!(code, 0, "{v:#}{err}");
    assert_eq!(
        (v["processed"].as_u64(), v["more"].as_bool()),
        (Some(7), Some(true)),
        "{v:#}"
    );
    assert_eq!(v["left"].as_u64(), Some(mails.len() as u64 - 7), "{v:#}");
    let first_round = v["reports_stored"].as_u64().unwrap();
    let (code, v, err) = imap_once(&base, &store, &["--any-domain"]).await;
    assert_eq!(code, 0, "{v:#}{err}");
    assert_eq!(
        v["processed"].as_u64(),
        Some(mails.len() as u64 - 7),
        "{v:#}"
    );
    assert_eq!(v["more"], false, "{v:#}");
    assert_eq!(
        (v["unreadable"].as_u64(), v["refused"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        v["reports_stored"].as_u64().unwrap() + first_round,
        by_file.len() as u64,
        "{v:#}"
    );
    assert_eq!(v["left"], 0, "{v:#}");
    assert_eq!(v["server"]["move"], true, "{v:#}");
    let source = v["messages"][0]["source"].as_str().unwrap();
    let url = format!(
        "imaps://tlsrpt%40example.test@{}/INBOX;UIDVALIDITY=",
        dovecot.addr()
    );
    assert!(
        source.starts_with(&url) && source.contains("/;UID="),
        "{source}"
    );
    let (by_imap, summary_imap) = contents(&store).await;
    assert_same(&by_imap, &by_file, "IMAP differs from files");
    assert_eq!(summary_imap, summary);
    let list = json(&["report", "list", "--store", &store, "--format", "json"]).await;
    assert!(
        list.as_array().unwrap().iter().all(|r| r["via"] == "imap"),
        "{list:#}"
    );

    // Moved, not deleted, not altered.
    assert_eq!(counts(&dovecot), [0, mails.len(), 0, 0]);
    assert_eq!(all_mail(&dovecot), before, "the mail changed");

    // A second run finds nothing.
    let (code, v, err) = imap_once(&base, &store, &["--any-domain"]).await;
    assert_eq!((code, v["mails"].as_u64()), (0, Some(0)), "{v:#}{err}");
    // The same mail again (a reporter's resend, or a crash before the move): copies only.
    dovecot.append("INBOX", &mails).await.unwrap();
    let (code, v, err) = imap_once(&base, &store, &["--any-domain"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["reports_stored"], 0, "{v:#}");
    assert_eq!(v["reports_duplicate"].as_u64(), Some(reports), "{v:#}");
    assert_same(&contents(&store).await.0, &by_file, "after copies");
    assert_eq!(counts(&dovecot), [0, 2 * mails.len(), 0, 0]);

    // On PostgreSQL, the same.
    if let Some(db) = TestDatabase::create("mtasts_cli", "report_imap").await {
        dovecot.append("INBOX", &mails).await.unwrap();
        let (code, v, err) = imap_once(&base, &db.url, &["--any-domain"]).await;
        assert_eq!(code, 0, "{v:#}{err}");
        let (by_pg, summary_pg) = contents(&db.url).await;
        assert_same(
            &by_pg,
            &by_file,
            "PostgreSQL through IMAP differs from files",
        );
        assert_eq!(summary_pg, summary);
    }

    // Hosted domains only (the default): the reports naming no policy domain are refused,
    // and their mail goes to the refused folder; the rest land as files do.
    let hosted = sqlite("hosted.db");
    let mut domains: Vec<String> = by_file
        .values()
        .filter_map(|r| r["policy_domain"].as_str())
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    domains.sort();
    domains.dedup();
    for d in &domains {
        host(&hosted, d).await;
    }
    let first = counts(&dovecot)[1];
    dovecot.append("INBOX", &mails).await.unwrap();
    let (code, v, err) = imap_once(&base, &hosted, &[]).await;
    assert_eq!(code, 0, "{v:#}{err}");
    let without_domain = by_file
        .values()
        .filter(|r| r["policy_domain"].as_str() == Some(""))
        .count();
    assert!(
        without_domain > 0,
        "the corpus has reports naming no domain"
    );
    assert_eq!(
        v["reports_refused"].as_u64(),
        Some(without_domain as u64),
        "{v:#}"
    );
    let refused = v["refused"].as_u64().unwrap() as usize;
    assert!(refused > 0 && refused <= without_domain, "{v:#}");
    assert_eq!(
        counts(&dovecot),
        [0, first + mails.len() - refused, 0, refused]
    );
    let (by_hosted, _) = contents(&hosted).await;
    let expected: BTreeMap<_, _> = by_file
        .into_iter()
        .filter(|(_, r)| r["policy_domain"].as_str() != Some(""))
        .collect();
    assert_same(&by_hosted, &expected, "hosted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_oversized_refused_and_deleted_mail_is_sorted_and_nothing_is_deleted() {
    // Without MOVE: COPY, \Deleted on the original, UID EXPUNGE of that UID alone.
    for without in [vec![], vec!["MOVE".to_owned()]] {
        let pki = Pki::new().unwrap();
        let options = Options {
            without: without.clone(),
        };
        let Some(dovecot) = Dovecot::start_with(&pki, &options).await.unwrap() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite:{}", dir.path().join("s.db").display());
        host(&store, "example.com").await;
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/tlsrpt");
        let hosted = as_mail(&data.join("mta-sts-exporter/google.json"), 1);
        let stranger = as_mail(&data.join("mta-sts-exporter/rfc.json"), 2);
        let junk = report_mail(3, "application/tlsrpt+gzip", b"not gzip at all");
        let mut big = as_mail(&data.join("mail-auth/rpt02.json"), 4);
        big.extend(std::iter::repeat_n(b'x', 20_000));
        big.extend_from_slice(b"\r\n");
        let mails = vec![hosted, stranger, junk, big];
        dovecot.append("INBOX", &mails).await.unwrap();
        // A message someone flagged \Deleted (T in its maildir name) is theirs to expunge.
        let cur = dovecot.folder_path("INBOX").join("cur");
        std::fs::write(
            cur.join("1700000000.M1P1.harness:2,T"),
            as_mail(&data.join("mail-auth/rpt01.json"), 5),
        )
        .unwrap();
        let before = all_mail(&dovecot);

        let base = imap_args(&dovecot, dir.path(), &pki);
        let (code, v, err) = imap_once(&base, &store, &["--max-message-size", "10000"]).await;
        assert_eq!(code, 1, "unreadable mail is exit 1: {v:#}{err}");
        assert_eq!(v["server"]["move"], without.is_empty(), "{v:#}");
        let folder = |i: usize| v["messages"][i]["folder"].as_str().unwrap().to_owned();
        assert_eq!(
            (folder(0), folder(1), folder(2), folder(3)),
            (
                "processed".into(),
                "refused".into(),
                "unreadable".into(),
                "unreadable".into()
            ),
            "{v:#}"
        );
        assert!(
            v["messages"][1]["reports"][0]["refused"]
                .as_str()
                .unwrap()
                .contains("not a domain hosted here"),
            "{v:#}"
        );
        assert!(
            v["messages"][3]["problem"]
                .as_str()
                .unwrap()
                .contains("not fetched"),
            "{v:#}"
        );
        assert_eq!(
            (v["skipped_deleted"].as_u64(), v["left"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(v["reports_stored"], 1, "{v:#}");
        assert_eq!(
            counts(&dovecot),
            [1, 1, 2, 1],
            "{without:?}: {}",
            dovecot.log()
        );
        assert_eq!(
            all_mail(&dovecot),
            before,
            "{without:?}: mail was lost or altered"
        );
        let listed = json(&["report", "list", "--store", &store, "--format", "json"]).await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
        assert_eq!(listed[0]["policy_domain"], "example.com");

        // Again: nothing to take; the \Deleted message is still left alone.
        let mut again: Vec<&str> = base.iter().map(String::as_str).collect();
        again.extend(["--once", "--store", &store]);
        let (code, out, err) = mtasts(&again).await;
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            out,
            "0 mails: 0 processed, 0 unreadable, 0 refused; reports: 0 stored, 0 duplicates, 0 \
             refused; 1 left in the folder\n"
        );
        let (code, v, err) = imap_once(&base, &store, &[]).await;
        assert_eq!(code, 0, "{v:#}{err}");
        assert_eq!(
            (v["mails"].as_u64(), v["left"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(all_mail(&dovecot), before);

        // A wrong password is refused, loudly, and nothing moves.
        let pw = dir.path().join("wrong");
        std::fs::write(&pw, "wrong\n").unwrap();
        let mut args: Vec<String> = base.clone();
        let i = args.iter().position(|a| a == "--password-file").unwrap();
        args[i + 1] = pw.display().to_string();
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.extend(["--once", "--store", &store]);
        let (code, out, err) = mtasts(&a).await;
        assert_eq!(code, 3, "{out}{err}");
        assert!(err.contains("refused"), "{err}");
    }
}

/// The running importer (no `--once`): mail appended while it waits is taken at once where the
/// server offers IDLE (the poll interval is an hour), and every poll interval where it does
/// not; SIGTERM stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_importer_takes_new_mail_by_idle_or_polling_and_stops_on_sigterm() {
    for (without, poll) in [(vec![], "3600"), (vec!["IDLE".to_owned()], "1")] {
        let pki = Pki::new().unwrap();
        let options = Options {
            without: without.clone(),
        };
        let Some(dovecot) = Dovecot::start_with(&pki, &options).await.unwrap() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite:{}", dir.path().join("s.db").display());
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/tlsrpt");
        let mut args = imap_args(&dovecot, dir.path(), &pki);
        args.extend(
            [
                "--any-domain",
                "--poll-interval",
                poll,
                "--store",
                &store,
                "--format",
                "json",
            ]
            .map(str::to_owned),
        );
        let log = dir.path().join("imap.log");
        let mut child = support::bin()
            .args(&args)
            .env("MTASTS_STORE_KEY", KEY)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("imap.err")).unwrap())
            .spawn()
            .unwrap();
        // Mail before it starts, then mail while it waits.
        dovecot
            .append(
                "INBOX",
                &[as_mail(&data.join("mta-sts-exporter/rfc.json"), 1)],
            )
            .await
            .unwrap();
        wait_for(&dovecot, 1, &log).await;
        // Long enough for the importer to be idling (or sleeping) again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = Instant::now();
        dovecot
            .append(
                "INBOX",
                &[as_mail(&data.join("mta-sts-exporter/google.json"), 2)],
            )
            .await
            .unwrap();
        wait_for(&dovecot, 2, &log).await;
        assert!(sent.elapsed() < Duration::from_secs(10), "{without:?}");
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{without:?}: no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let err = std::fs::read_to_string(dir.path().join("imap.err")).unwrap();
        assert_eq!(status.code(), Some(0), "{without:?}: {err}");
        let lines = std::fs::read_to_string(&log).unwrap();
        let rounds: Vec<Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let stored: u64 = rounds
            .iter()
            .map(|r| r["reports_stored"].as_u64().unwrap())
            .sum();
        assert_eq!(stored, 2, "{lines}");
        assert!(
            rounds
                .iter()
                .all(|r| r["server"]["idle"] == without.is_empty()),
            "{lines}"
        );
        assert_eq!(counts(&dovecot), [0, 2, 0, 0]);
    }
}

/// Waits until the processed folder holds `n` messages.
async fn wait_for(dovecot: &Dovecot, n: usize, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while dovecot.count("TLSRPT.processed").unwrap() < n {
        assert!(
            Instant::now() < deadline,
            "not processed: {}\n{}",
            std::fs::read_to_string(log).unwrap_or_default(),
            dovecot.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `mtasts serve` with an `[imap]` table (given by `--set`): it reads the mailbox for the
/// domains it hosts, moves what it read, and stops with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_importer_of_its_imap_table_for_hosted_domains() {
    let pki = Pki::new().unwrap();
    let Some(dovecot) = Dovecot::start(&pki).await.unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("s.db").display());
    host(&store, "example.com").await;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/tlsrpt");
    // A third mail, DKIM-signed by reporter.example (its key in the test DNS): the importer
    // records the verdict as the SMTP receiver does.
    let pkcs8 = mail_auth::common::crypto::Ed25519Key::generate_pkcs8().unwrap();
    let key = mail_auth::common::crypto::Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = data_encoding::BASE64.encode(&key.public_key());
    let dns =
        mtasts_testnet::dns::DnsServer::start(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            .await
            .unwrap();
    dns.set_zone(
        "reporter.example.",
        &format!("sel._domainkey 60 IN TXT \"v=DKIM1; k=ed25519; p={public}\"\n"),
    )
    .unwrap();
    let google: Value =
        serde_json::from_slice(&std::fs::read(data.join("mta-sts-exporter/google.json")).unwrap())
            .unwrap();
    let mut signed_report = google.clone();
    signed_report["report-id"] = Value::String("signed-by-reporter".into());
    let mail = String::from_utf8(report_mail(
        3,
        "application/tlsrpt+json",
        signed_report.to_string().as_bytes(),
    ))
    .unwrap();
    let signature = mail_auth::dkim::DkimSigner::from_key(key)
        .domain("reporter.example")
        .selector("sel")
        .headers(["From", "To", "Subject", "Message-ID"])
        .sign(mail.as_bytes())
        .unwrap();
    use mail_auth::common::headers::HeaderWriter as _;
    let signed_mail = format!("{}{mail}", signature.to_header()).into_bytes();
    dovecot
        .append(
            "INBOX",
            &[
                as_mail(&data.join("mta-sts-exporter/google.json"), 1),
                as_mail(&data.join("mta-sts-exporter/rfc.json"), 2),
                signed_mail,
            ],
        )
        .await
        .unwrap();
    // The flags `report imap` would take, as `[imap]` keys.
    let args = imap_args(&dovecot, dir.path(), &pki);
    let flag = |name: &str| {
        let i = args.iter().position(|a| a == name).unwrap();
        args[i + 1].clone()
    };
    let admin = support::free_addr(std::net::Ipv4Addr::LOCALHOST);
    let https = support::free_addr(std::net::Ipv4Addr::LOCALHOST);
    let log = dir.path().join("serve.log");
    let child = support::bin()
        .env("MTASTS_STORE_KEY", KEY)
        .env("MTASTS_SERVE__IMAP__USER", USER)
        .args(["serve", "--store", &store, "--http", "none"])
        .args(["--https", &https.to_string(), "--admin", &admin.to_string()])
        .args(["--set", "check.drift_interval=0", "--set", "grace=1"])
        .args(["--nameserver", &dns.addr().to_string()])
        .args(["--set", &format!("imap.server={}", flag("--server"))])
        .args(["--set", &format!("imap.tls_name={HOST_NAME}")])
        .args([
            "--set",
            &format!("imap.password_file={}", flag("--password-file")),
        ])
        .args(["--set", &format!("imap.ca_file={}", flag("--ca-file"))])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut serve = support::Serve { child, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    while counts(&dovecot) != [0, 2, 0, 1] {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            counts(&dovecot),
            std::fs::read_to_string(&serve.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    while serve.child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "no exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(&serve.log).unwrap();
    assert!(log.contains("IMAP round"), "{log}");
    let list = json(&["report", "list", "--store", &store, "--format", "json"]).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    for r in list {
        assert_eq!(
            (r["policy_domain"].as_str(), r["via"].as_str()),
            (Some("example.com"), Some("imap"))
        );
        let want = if r["report_id"] == "signed-by-reporter" {
            (Some("pass"), Some("d=reporter.example"))
        } else {
            (Some("none"), Some("the mail is not DKIM-signed"))
        };
        assert_eq!((r["dkim"].as_str(), r["dkim_detail"].as_str()), want, "{r}");
    }
    dns.stop().await;
}
