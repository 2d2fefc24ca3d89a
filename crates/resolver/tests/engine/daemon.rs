//! The whole daemon as a library call: `daemon::run` started on a configuration, asked over its
//! sockets, reloaded, stopped and drained, the way the binary runs it.

use mtasts_resolver::config::Config;
use mtasts_resolver::daemon;
use mtasts_resolver::service;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::world::World;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Duration, Instant, timeout};

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 604800\n";

async fn world() -> World {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=7\"");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w
}

/// The daemon's configuration for `w`, listening on a unix socket in `dir`.
fn config(w: &World, dir: &Path, cache: &str) -> Config {
    config_with(w, dir, cache, Config::default())
}

/// [`config`] written to `dir/resolver.toml` and loaded from there with `overrides` laid over
/// it, as the binary does (so a reload reads the file again).
fn config_with(w: &World, dir: &Path, cache: &str, overrides: Config) -> Config {
    let file = dir.join("resolver.toml");
    std::fs::write(&file, config_text(w, dir, cache)).unwrap();
    Config::load(Some(&file), overrides).unwrap()
}

fn config_text(w: &World, dir: &Path, cache: &str) -> String {
    let pem = dir.join("root.pem");
    std::fs::write(&pem, w.pki.root_pem()).unwrap();
    format!(
        r#"
        listen = ["unix:{}"]
        nameservers = ["{}"]
        ca_file = "{}"
        https_port = {}
        cache = "{cache}"
        postfix_version = "3.9"
        "#,
        dir.join("s.sock").display(),
        w.dns.addr(),
        pem.display(),
        w.https_port,
    )
}

/// One socketmap lookup over a fresh unix connection, retried while the daemon starts.
async fn ask(sock: &Path, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match tokio::net::UnixStream::connect(sock).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "the daemon never listened: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let payload = format!("postfix {key}");
    s.write_all(format!("{}:{payload},", payload.len()).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(b",") {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the reply ended");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a reply within 20 s");
    let text = String::from_utf8(buf).unwrap();
    let (_, body) = text.split_once(':').unwrap();
    body.trim_end_matches(',').to_owned()
}

/// `GET path` over HTTP/1.1 with `Connection: close`; the whole response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_is_a_library_call_that_answers_reloads_and_drains() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.sqlite");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let overrides = Config {
        metrics: Some(metrics.to_string()),
        dane: Some(false),
        ..Config::default()
    };
    let cache = file.display().to_string();
    let config = config_with(&w, dir.path(), &cache, overrides);
    let (control, shutdown) = service::channel();
    let daemon = tokio::spawn(daemon::run(config, shutdown));
    let sock = dir.path().join("s.sock");
    assert_eq!(
        ask(&sock, "example.test").await,
        "OK secure match=mx1.example.test servername=hostname"
    );
    // /metrics (through the metrics facade) and /health on the metrics listener.
    let scrape = http_get(metrics, "/metrics").await;
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(
        scrape.contains("mtasts_resolver_lookups_total{reply=\"ok\"} 1"),
        "{scrape}"
    );
    assert!(scrape.contains("# TYPE mtasts_resolver_lookup_seconds histogram"));
    let health = http_get(metrics, "/health").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    // A reload of a broken file keeps the old configuration.
    let toml = dir.path().join("resolver.toml");
    std::fs::write(&toml, "listen = [").unwrap();
    control.reload();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ask(&sock, "example.test").await,
        "OK secure match=mx1.example.test servername=hostname"
    );
    // A reload reads the file again (with the same overrides) and applies the zones; the
    // listeners and the cache stay.
    let mut text = config_text(&w, dir.path(), &cache);
    text.push_str("[zones.postfix]\noverrides = { \"example.test\" = \"none\" }\n");
    std::fs::write(&toml, text).unwrap();
    control.reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(&sock, "example.test").await != "NOTFOUND " {
        assert!(Instant::now() < deadline, "the reload was not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A client holding an idle connection does not keep the daemon from stopping.
    let idle = tokio::net::UnixStream::connect(&sock).await.unwrap();
    control.stop();
    timeout(Duration::from_secs(15), daemon)
        .await
        .expect("stopped within the grace time")
        .expect("no panic")
        .expect("a clean stop");
    drop(idle);
    assert!(!sock.exists(), "the socket file is removed on the way out");
    // Drained: the cache writer wrote the policy before run returned.
    let rows = mtasts_resolver::cache_file::CacheFile::open(&file)
        .await
        .unwrap()
        .load()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].domain, "example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_file_is_set_aside_and_the_daemon_starts_empty() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.sqlite");
    let garbage = vec![b'x'; 8192];
    std::fs::write(&file, &garbage).unwrap();
    let config = config(&w, dir.path(), &file.display().to_string());
    let (control, shutdown) = service::channel();
    let daemon = tokio::spawn(daemon::run(config, shutdown));
    assert_eq!(
        ask(&dir.path().join("s.sock"), "example.test").await,
        "OK secure match=mx1.example.test servername=hostname"
    );
    control.stop();
    timeout(Duration::from_secs(15), daemon)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("cache.sqlite.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the bad file is kept aside for a look");
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), garbage);
    let rows = mtasts_resolver::cache_file::CacheFile::open(&file)
        .await
        .unwrap()
        .load()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "a fresh cache file took its place");
}

#[tokio::test]
async fn a_zero_fetch_timeout_is_refused_by_name() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    for (key, option) in [
        ("fetch_timeout", "fetch_timeout"),
        ("miss_wait", "miss_wait"),
        ("refresh_interval", "refresh_interval"),
        ("negative_ttl", "negative_ttl"),
        ("threads", "threads"),
    ] {
        let mut text = format!("{key} = 0\n");
        text.push_str(&format!(
            "nameservers = [\"{}\"]\ncache = \"memory\"\n",
            w.dns.addr()
        ));
        let config = Config::from_toml(&text).unwrap();
        let (_control, shutdown) = service::channel();
        let err = daemon::run(config, shutdown).await.unwrap_err();
        let msg = format!("{err}");
        assert!(msg.contains(option), "{key}: {msg}");
    }
    drop(dir);
}
