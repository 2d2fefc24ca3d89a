//! `mtasts resolver` end to end: the real daemon binary answering socketmap requests for a
//! domain of the test internet, `resolver query` in text and JSON, and a clean shutdown.

use assert_cmd::cargo::CommandCargoExt;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::world::{DOMAIN, World};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 604800\n";

async fn world() -> World {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=7\"");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w
}

fn base_args(w: &World, pem: &std::path::Path) -> Vec<String> {
    vec![
        "resolver".into(),
        "--nameserver".into(),
        w.dns.addr().to_string(),
        "--ca-file".into(),
        pem.display().to_string(),
        "--https-port".into(),
        w.https_port.to_string(),
        "--postfix-version".into(),
        "3.10.5".into(),
        "--cache".into(),
        "memory".into(),
    ]
}

/// One socketmap exchange over a fresh connection (blocking; run off the runtime).
fn ask(addr: std::net::SocketAddr, key: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let payload = format!("postfix {key}");
    write!(s, "{}:{payload},", payload.len()).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Read the length prefix, then exactly that many bytes and the comma.
    loop {
        s.read_exact(&mut byte).unwrap();
        if byte[0] == b':' {
            break;
        }
        buf.push(byte[0]);
    }
    let len: usize = String::from_utf8(buf).unwrap().parse().unwrap();
    let mut body = vec![0u8; len + 1];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body.pop(), Some(b','));
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_answers_postfix_and_stops_cleanly() {
    daemon_answers_and_stops(&[]).await;
}

/// The same on the single-threaded runtime (`--threads 1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_threaded_daemon_answers_postfix_and_stops_cleanly() {
    daemon_answers_and_stops(&["--threads", "1"]).await;
}

/// Issue 10 §2.6: values that would silently disable the resolver are refused by name.
#[test]
fn values_that_disable_the_resolver_are_refused_by_name() {
    for (flag, option) in [
        ("--fetch-timeout", "fetch_timeout"),
        ("--miss-wait", "miss_wait"),
    ] {
        let out = Command::cargo_bin("mtasts")
            .unwrap()
            .args([
                "resolver",
                "--cache",
                "memory",
                "--nameserver",
                "127.0.0.1",
                flag,
                "0",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(option) && err.contains('0'), "{flag}: {err}");
    }
}

#[test]
fn zero_threads_is_refused() {
    let out = Command::cargo_bin("mtasts")
        .unwrap()
        .args(["resolver", "--cache", "memory", "--threads", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("threads must be at least 1"), "{err}");
}

async fn daemon_answers_and_stops(extra: &[&str]) {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("root.pem");
    std::fs::write(&pem, w.pki.root_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut args = base_args(&w, &pem);
    args.extend(["--listen".into(), addr.to_string()]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut child = Command::cargo_bin("mtasts")
        .unwrap()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let replies = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the daemon did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        [
            DOMAIN,
            DOMAIN,
            ".example.test",
            "[192.0.2.1]:25",
            "nopolicy.test",
        ]
        .map(|k| ask(addr, k))
    })
    .await
    .unwrap();
    assert_eq!(
        replies[0],
        "OK secure match=mx1.example.test servername=hostname policy_type=sts \
         policy_domain=example.test mx_host_pattern=mx1.example.test \
         { policy_string = version: STSv1 } { policy_string = mode: enforce } \
         { policy_string = mx: mx1.example.test } { policy_string = max_age: 604800 }"
    );
    assert_eq!(replies[1], replies[0]);
    assert_eq!(replies[2], "NOTFOUND ");
    assert_eq!(replies[3], "NOTFOUND ");
    assert_eq!(replies[4], "NOTFOUND ");
    // SIGTERM: a clean exit.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut log = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        (status, log)
    })
    .await
    .unwrap();
    assert!(
        status.0.success(),
        "exit {:?}; log:\n{}",
        status.0,
        status.1
    );
    assert!(status.1.contains("policy fetched"), "{}", status.1);
    assert!(status.1.contains("shutting down"), "{}", status.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_explains_the_answer_in_text_and_json() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("root.pem");
    std::fs::write(&pem, w.pki.root_pem()).unwrap();
    let mut text_args = base_args(&w, &pem);
    text_args.extend(["query".into(), "Example.Test".into()]);
    let mut json_args = vec!["--format".to_owned(), "json".to_owned()];
    json_args.extend(text_args.clone());
    let (text, json) = tokio::task::spawn_blocking(move || {
        let run = |args: &[String]| {
            let out = Command::cargo_bin("mtasts")
                .unwrap()
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        (run(&text_args), run(&json_args))
    })
    .await
    .unwrap();
    assert!(
        text.starts_with(
            "Example.Test (table postfix)\n  Postfix gets: OK secure match=mx1.example.test"
        ),
        "{text}"
    );
    assert!(
        text.contains("because:      policy id 7 in mode enforce"),
        "{text}"
    );
    assert!(text.contains("source:       miss"), "{text}");
    assert!(text.contains("policy:       id 7, mode enforce, max_age 604800, mx mx1.example.test; cached for 6d 23h"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["domain"], "example.test");
    assert_eq!(v["reply"]["status"], "OK");
    assert_eq!(v["policy"]["mode"], "enforce");
    assert_eq!(v["policy"]["mx"][0], "mx1.example.test");
    assert_eq!(v["source"], "miss");
}

#[test]
fn configuration_mistakes_exit_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("r.toml");
    std::fs::write(
        &cfg,
        "listen = [\"127.0.0.1:1\"]\n[zones.postfix]\nbase_level = \"secure\"\n",
    )
    .unwrap();
    let out = Command::cargo_bin("mtasts")
        .unwrap()
        .args([
            "resolver",
            "--config",
            cfg.to_str().unwrap(),
            "--cache",
            "memory",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zones.postfix.base_level"), "{err}");
}
