//! Fills a store with N hosted domains, each with a certificate, then times what a server does at
//! start-up: open, load every domain with its policy, load every certificate (keys unsealed).
//!
//! ```sh
//! cargo run --release -p mtasts-store --example bulk_load -- 10000            # SQLite in a temp dir
//! cargo run --release -p mtasts-store --example bulk_load -- 10000 postgres://postgres@127.0.0.1/x
//! ```
//! The PostgreSQL database must exist and be empty; the key is fixed (this is a measurement).
#![allow(clippy::print_stdout, reason = "an example that reports its figures")]

use std::time::Instant;

use mtasts_core::policy::Mode;
use mtasts_store::{
    CertSource, Change, NewCertificate, NewPolicy, PrivateKeyPem, Store, StoreKey, StoreOptions,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("store.db").display()));
    let options = StoreOptions {
        key: Some(StoreKey::from_bytes([7; 32])),
        ..StoreOptions::default()
    };
    let store = Store::open(&url, &options).await?;
    let key = rcgen::KeyPair::generate()?;
    let started = Instant::now();
    for i in 0..n {
        let domain = format!("d{i}.example");
        let text =
            format!("version: STSv1\r\nmode: testing\r\nmx: mx.{domain}\r\nmax_age: 86400\r\n");
        let policy = NewPolicy {
            text,
            id: format!("id{i}"),
            mode: Mode::Testing,
            max_age: 86_400,
            mx: vec![format!("mx.{domain}")],
        };
        let change = Change::new("bulk", time::OffsetDateTime::now_utc());
        store
            .add_domain(&domain, &policy, "testing", &change)
            .await?;
        let cert =
            rcgen::CertificateParams::new(vec![format!("mta-sts.{domain}")])?.self_signed(&key)?;
        let cert = NewCertificate {
            chain_pem: cert.pem(),
            key: PrivateKeyPem::new(key.serialize_pem()),
            not_after: time::OffsetDateTime::now_utc() + time::Duration::days(90),
            source: CertSource::Imported,
        };
        store.put_certificate(&domain, &cert, &change).await?;
    }
    let filled = started.elapsed();
    store.close().await;

    let started = Instant::now();
    let store = Store::open(&url, &options).await?;
    let opened = started.elapsed();
    let domains = store.domains().await?;
    let loaded_domains = started.elapsed();
    let certs = store.certificates().await?;
    let loaded_certs = started.elapsed();
    assert_eq!((domains.len(), certs.len()), (n, n));
    println!("backend {}, {n} domains with certificates", store.backend());
    println!(
        "fill (2 write transactions per domain): {filled:.2?} ({:.2?} per domain)",
        filled / n as u32
    );
    println!(
        "open: {opened:.2?}; + domains(): {loaded_domains:.2?}; + certificates(): {loaded_certs:.2?}"
    );
    Ok(())
}
