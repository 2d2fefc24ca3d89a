//! The admin API on loopback plain HTTP over a store, for tests/schemathesis.sh (until
//! `mtasts serve` lands with the CLI).
//!
//! ```text
//! admin_api STORE_URL [ADDR]
//!     opens the store, makes an all-domains token, a domain `example.com` (testing) and one
//!     stored TLS-RPT report (id 1), prints one line `ADDR TOKEN`, and serves until stdin closes.
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use mtasts_core::policy::Mode;
use mtasts_core::rollout::RolloutConfig;
use mtasts_server::admin::{AdminConfig, AdminServer, AdminTls};
use mtasts_server::domains::{AddDomain, Domains, MxSource};
use mtasts_store::{Change, Store, StoreOptions, TokenScope};
use std::io::Read;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), addr) = (args.next(), args.next()) else {
        eprintln!("usage: admin_api STORE_URL [ADDR]");
        std::process::exit(2);
    };
    let store = Store::open(&url, &StoreOptions::default())
        .await
        .expect("the store opens");
    let now = time::OffsetDateTime::now_utc();
    let name = format!("schemathesis-{}", now.unix_timestamp_nanos());
    let token = store
        .create_token(&name, &TokenScope::All, &Change::new("cli", now))
        .await
        .expect("a token");
    let domains = Domains::new(store.clone(), RolloutConfig::default()).expect("default rollout");
    let seed = AddDomain {
        domain: "example.com".into(),
        mx: MxSource::Patterns(vec!["mx1.example.net".into()]),
        mode: Mode::Testing,
        max_age: None,
        force: None,
        delegation: Default::default(),
    };
    let _ = domains.add(&seed, "cli", now).await;
    // One TLS-RPT report (id 1), so that `GET /v1/reports/{id}` has something to find.
    let report = include_bytes!("../../../tests/data/tlsrpt/parsedmarc/rfc8460.json");
    if let Ok(parsed) = mtasts_core::report::parse_report_json(report) {
        let arrival = mtasts_store::Arrival {
            via: mtasts_store::Via::File,
            source: Some("rfc8460.json".into()),
            at: now,
            dkim: None,
        };
        let _ = store.insert_report(&parsed, &arrival).await;
    }
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let mut cfg = AdminConfig::new(
        addr.as_deref()
            .unwrap_or("127.0.0.1:0")
            .parse()
            .expect("ADDR is IP:PORT"),
        AdminTls::PlainLoopback,
    );
    cfg.metrics = Some(recorder.handle());
    metrics::set_global_recorder(recorder).expect("one recorder");
    let server = AdminServer::bind(cfg).await.expect("the listener binds");
    println!("{} {}", server.local_addr(), token.secret.expose());
    server
        .run(domains, async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                std::io::stdin().read_to_end(&mut sink)
            })
            .await;
        })
        .await;
}
