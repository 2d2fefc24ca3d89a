//! Certificates, and private keys sealed at rest.

use mtasts_store::{
    CertSource, Error, NewCertificate, PrivateKeyPem, Store, StoreKey, StoreOptions,
};

use crate::support::{Kind, both, change, t, testing};

/// A self-signed certificate for `mta-sts.<domain>` and its key, in PEM.
fn cert_for(domain: &str) -> NewCertificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![format!("mta-sts.{domain}")]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    NewCertificate {
        chain_pem: cert.pem(),
        key: PrivateKeyPem::new(key.serialize_pem()),
        not_after: t(90 * 86_400),
        source: CertSource::Imported,
    }
}

/// The base64 body of a PEM block, joined: what must not appear anywhere at rest.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

both! {
    async fn certificate_round_trips_and_replacing_it_is_audited(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        assert!(store.certificate("example.com").await.unwrap().is_none());
        let first = cert_for("example.com");
        store.put_certificate("example.com", &first, &change(1)).await.unwrap();
        let got = store.certificate("example.com").await.unwrap().unwrap();
        assert_eq!(got.domain, "example.com");
        assert_eq!(got.chain_pem, first.chain_pem);
        assert_eq!(got.key, first.key);
        assert_eq!(got.not_after, first.not_after);
        assert_eq!(got.source, CertSource::Imported);
        assert_eq!(got.installed_at, t(1));
        let mut second = cert_for("example.com");
        second.source = CertSource::Acme;
        store.put_certificate("example.com", &second, &change(2)).await.unwrap();
        let all = store.certificates().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].key, second.key);
        assert_eq!(all[0].source, CertSource::Acme);
        let audit = store.audit(Some("example.com"), 10).await.unwrap();
        assert_eq!(audit[0].action, "certificate.put");
        assert!(audit[0].detail.contains("\"replaced\":true"), "{}", audit[0].detail);
        assert!(audit[1].detail.contains("\"replaced\":false"), "{}", audit[1].detail);
        for entry in &audit {
            assert!(!entry.detail.contains("PRIVATE KEY"), "{}", entry.detail);
        }
        assert!(!format!("{got:?}").contains("PRIVATE KEY"), "Debug hides the key");
    }

    async fn certificate_for_an_unhosted_domain_is_refused(db) {
        let store = db.open().await;
        let before = store.generation().await.unwrap();
        let err = store.put_certificate("example.com", &cert_for("example.com"), &change(1)).await;
        assert!(matches!(err, Err(Error::UnknownDomain { .. })), "{err:?}");
        assert_eq!(store.generation().await.unwrap(), before);
        let mut huge = cert_for("example.com");
        huge.chain_pem = "A".repeat(300 * 1024);
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let err = store.put_certificate("example.com", &huge, &change(1)).await;
        assert!(matches!(err, Err(Error::Invalid { .. })), "{err:?}");
    }

    async fn stored_private_key_bytes_hold_no_pem_and_a_dump_alone_does_not_decrypt(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let cert = cert_for("example.com");
        store.put_certificate("example.com", &cert, &change(1)).await.unwrap();
        let body = pem_body(cert.key.expose());
        let sealed = db.raw_bytes("SELECT key_sealed FROM certificates").await;
        assert_eq!(sealed.len(), 1);
        let sealed = &sealed[0];
        assert!(!contains(sealed, b"PRIVATE KEY"));
        assert!(!contains(sealed, &body.as_bytes()[..32]));
        // The whole database as an attacker copies it: file and WAL for SQLite.
        if db.kind == Kind::Sqlite {
            store.close().await;
            let dir = db.dir.as_ref().unwrap().path();
            let mut dumped = 0;
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "key") {
                    continue;
                }
                // As below: the `-wal`/`-shm` files may go between the listing and the read.
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => panic!("{}: {e}", path.display()),
                };
                assert!(!contains(&bytes, b"PRIVATE KEY"), "{}", path.display());
                assert!(!contains(&bytes, &body.as_bytes()[..32]), "{}", path.display());
                dumped += bytes.len();
            }
            assert!(dumped > 0);
            // The dump without its key file does not open...
            let copy = tempfile::tempdir().unwrap();
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "key") {
                    continue;
                }
                // The pool closes its connections in the background: SQLite may remove its
                // `-wal`/`-shm` files between the listing and the copy.
                match std::fs::copy(&path, copy.path().join(path.file_name().unwrap())) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("{}: {e}", path.display()),
                }
            }
            let url = format!("sqlite:{}", copy.path().join("store.db").display());
            let err = Store::open(&url, &StoreOptions::default()).await.unwrap_err();
            assert!(matches!(err, Error::KeyFileMissing { .. }), "{err:?}");
            assert!(!copy.path().join("store.db.key").exists(), "no new key is made for old data");
            // ...and a guessed key is refused at open rather than failing later.
            let guessed = StoreOptions { key: Some(StoreKey::from_bytes([3; 32])), ..StoreOptions::default() };
            let err = Store::open(&url, &guessed).await.unwrap_err();
            assert!(matches!(err, Error::WrongKey), "{err:?}");
        } else {
            // The whole database as pg_dump writes it (the postgresql-client package is
            // installed with the server .ci/run starts).
            let dump = std::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg(&db.url)
                .output()
                .expect("pg_dump runs");
            assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
            let text = String::from_utf8_lossy(&dump.stdout);
            assert!(text.contains("BEGIN CERTIFICATE"), "the dump has the data");
            assert!(!text.contains("PRIVATE KEY"));
            assert!(!text.contains(&body[..32]));
            let guessed = StoreOptions { key: Some(StoreKey::from_bytes([3; 32])), ..db.options.clone() };
            let err = Store::open(&db.url, &guessed).await.unwrap_err();
            assert!(matches!(err, Error::WrongKey), "{err:?}");
        }
        // With the right key it opens and decrypts.
        let reopened = db.open().await;
        let got = reopened.certificate("example.com").await.unwrap().unwrap();
        assert_eq!(got.key, cert.key);
    }

    async fn sealed_key_moved_to_another_domains_row_does_not_open(db) {
        let store = db.open().await;
        for d in ["example.com", "example.org"] {
            store.add_domain(d, &testing(), "testing", &change(0)).await.unwrap();
            store.put_certificate(d, &cert_for(d), &change(1)).await.unwrap();
        }
        db.raw(
            "UPDATE certificates SET key_sealed = \
             (SELECT key_sealed FROM certificates WHERE domain = 'example.com') \
             WHERE domain = 'example.org'",
        )
        .await;
        assert!(store.certificate("example.com").await.unwrap().is_some());
        let err = store.certificate("example.org").await;
        assert!(matches!(&err, Err(Error::Unseal { domain }) if domain == "example.org"), "{err:?}");
        let err = store.certificates().await;
        assert!(matches!(err, Err(Error::Unseal { .. })), "{err:?}");
    }
}
