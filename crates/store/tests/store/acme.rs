//! ACME accounts, certificate work, order leases and the shared rate limit, challenges, the
//! delegation model and the records published by DNS update.

use std::time::Duration;

use mtasts_store::{
    CertSource, Challenge, ChallengeKind, Delegation, Error, Lease, NewCertificate, OrderBudget,
    PrivateKeyPem,
};

use crate::support::{both, change, t, testing};

const CA: &str = "https://ca.example/dir";
const HOUR: Duration = Duration::from_secs(3600);

fn budget(directory: &str, max_orders: u32) -> OrderBudget<'_> {
    OrderBudget {
        directory,
        window: HOUR,
        max_orders,
    }
}

fn acme_cert(domain: &str, not_after: i64) -> NewCertificate {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![format!("mta-sts.{domain}")]).unwrap();
    NewCertificate {
        chain_pem: params.self_signed(&key).unwrap().pem(),
        key: PrivateKeyPem::new(key.serialize_pem()),
        not_after: t(not_after),
        source: CertSource::Acme,
    }
}

both! {
    async fn account_credentials_are_sealed_and_replaceable(db) {
        let store = db.open().await;
        assert_eq!(store.acme_account(CA).await.unwrap(), None);
        let secret = r#"{"id":"acct/1","key_pkcs8":"TOPSECRETKEYMATERIAL"}"#;
        store.put_acme_account(CA, secret, &change(1)).await.unwrap();
        assert_eq!(store.acme_account(CA).await.unwrap().as_deref(), Some(secret));
        let at_rest = db.raw_bytes("SELECT credentials_sealed FROM acme_accounts").await;
        assert!(!at_rest[0].windows(8).any(|w| w == b"TOPSECRE"), "sealed at rest");
        store.put_acme_account(CA, r#"{"id":"acct/2"}"#, &change(2)).await.unwrap();
        assert_eq!(store.acme_account(CA).await.unwrap().as_deref(), Some(r#"{"id":"acct/2"}"#));
        assert_eq!(store.acme_account("https://other/dir").await.unwrap(), None);
        let audit = store.audit(None, 10).await.unwrap();
        assert!(audit.iter().any(|a| a.action == "acme.account"));
        assert!(audit.iter().all(|a| !a.detail.contains("TOPSECRET")));
    }

    async fn due_lease_issue_and_renewal_cycle(db) {
        let store = db.open().await;
        store.add_domain("a.example", &testing(), "testing", &change(0)).await.unwrap();
        store.add_domain("b.example", &testing(), "testing", &change(0)).await.unwrap();
        let due = store.acme_due(t(10), 100).await.unwrap();
        assert_eq!(due.iter().map(|d| d.domain.as_str()).collect::<Vec<_>>(), ["a.example", "b.example"]);
        assert_eq!(store.acme_take_lease("a.example", "one", t(10), HOUR, &budget(CA, 10)).await.unwrap(), Lease::Taken);
        // Exactly one instance orders a name: the other finds it busy, and it is not due.
        assert_eq!(store.acme_take_lease("a.example", "two", t(11), HOUR, &budget(CA, 10)).await.unwrap(), Lease::Busy);
        let due = store.acme_due(t(12), 100).await.unwrap();
        assert_eq!(due.iter().map(|d| d.domain.as_str()).collect::<Vec<_>>(), ["b.example"]);
        let generation = store.generation().await.unwrap();
        store.acme_issued("a.example", "one", &acme_cert("a.example", 9000), t(6000), &change(20)).await.unwrap();
        assert!(store.generation().await.unwrap() > generation, "an issued certificate is served");
        // An instance that read the due list before the install, and asks for the lease after it
        // was released, is told no: the name is no longer due (no second order).
        assert_eq!(store.acme_take_lease("a.example", "two", t(21), HOUR, &budget(CA, 10)).await.unwrap(), Lease::Busy);
        let state = store.acme_state("a.example").await.unwrap().unwrap();
        assert_eq!(state.next_renewal, Some(t(6000)));
        assert_eq!(state.last_issued_at, Some(t(20)));
        assert_eq!((state.lease_holder, state.failures), (None, 0));
        assert_eq!(store.certificate("a.example").await.unwrap().unwrap().source, CertSource::Acme);
        assert!(!store.acme_due(t(5999), 100).await.unwrap().iter().any(|d| d.domain == "a.example"));
        let due = store.acme_due(t(6000), 100).await.unwrap();
        let a = due.iter().find(|d| d.domain == "a.example").expect("due for renewal");
        assert_eq!(a.not_after, Some(t(9000)));
        // An expired lease is taken over.
        assert_eq!(store.acme_take_lease("b.example", "one", t(100), Duration::from_secs(60), &budget(CA, 10)).await.unwrap(), Lease::Taken);
        assert_eq!(store.acme_take_lease("b.example", "two", t(161), HOUR, &budget(CA, 10)).await.unwrap(), Lease::Taken);
    }

    async fn imported_certificates_are_left_alone(db) {
        let store = db.open().await;
        store.add_domain("a.example", &testing(), "testing", &change(0)).await.unwrap();
        let mut cert = acme_cert("a.example", 10);
        cert.source = CertSource::Imported;
        store.put_certificate("a.example", &cert, &change(1)).await.unwrap();
        assert!(store.acme_due(t(1_000_000), 100).await.unwrap().is_empty());
    }

    async fn failures_back_off_and_release_the_lease(db) {
        let store = db.open().await;
        store.add_domain("a.example", &testing(), "testing", &change(0)).await.unwrap();
        assert_eq!(store.acme_take_lease("a.example", "one", t(10), HOUR, &budget(CA, 10)).await.unwrap(), Lease::Taken);
        let generation = store.generation().await.unwrap();
        store.acme_failed("a.example", Some("one"), "the CA said no", t(500), t(11)).await.unwrap();
        assert_eq!(store.generation().await.unwrap(), generation, "nothing served changed");
        let state = store.acme_state("a.example").await.unwrap().unwrap();
        assert_eq!((state.failures, state.last_error.as_deref()), (1, Some("the CA said no")));
        assert_eq!((state.lease_holder, state.next_attempt), (None, t(500)));
        assert!(store.acme_due(t(499), 100).await.unwrap().is_empty());
        assert_eq!(store.acme_due(t(500), 100).await.unwrap()[0].failures, 1);
        // A failure recorded without a lease (the name did not resolve to us) keeps others' leases.
        assert_eq!(store.acme_take_lease("a.example", "two", t(600), HOUR, &budget(CA, 10)).await.unwrap(), Lease::Taken);
        store.acme_failed("a.example", None, "not ours", t(900), t(601)).await.unwrap();
        let state = store.acme_state("a.example").await.unwrap().unwrap();
        assert_eq!((state.failures, state.lease_holder.as_deref()), (2, Some("two")));
        // A stranger's message with control characters is kept, escaped (refusing it would
        // leave the failure unrecorded and the next attempt unscheduled).
        store.acme_failed("a.example", None, "bad\u{1b}[2J\u{0}x", t(950), t(602)).await.unwrap();
        let state = store.acme_state("a.example").await.unwrap().unwrap();
        assert_eq!((state.failures, state.next_attempt), (3, t(950)));
        assert_eq!(state.last_error.as_deref(), Some("bad\\u{1b}[2J\\u{0}x"));
        store.dns_record_failed("a.example", "\u{7}", t(1), t(1)).await.unwrap();
        let p = store.dns_published("a.example").await.unwrap().unwrap();
        assert_eq!(p.last_error.as_deref(), Some("\\u{7}"));
        // A removed domain's failure is no error and leaves nothing.
        store.acme_failed("gone.example", None, "x", t(1), t(1)).await.unwrap();
        assert_eq!(store.acme_state("gone.example").await.unwrap(), None);
        assert!(matches!(
            store.acme_take_lease("gone.example", "one", t(1), HOUR, &budget(CA, 10)).await,
            Err(Error::UnknownDomain { .. })
        ));
    }

    async fn the_rate_limit_is_shared_and_takes_nothing_when_reached(db) {
        let store = db.open().await;
        for d in ["a.example", "b.example", "c.example"] {
            store.add_domain(d, &testing(), "testing", &change(0)).await.unwrap();
        }
        assert_eq!(store.acme_take_lease("a.example", "one", t(100), HOUR, &budget(CA, 2)).await.unwrap(), Lease::Taken);
        assert_eq!(store.acme_take_lease("b.example", "two", t(200), HOUR, &budget(CA, 2)).await.unwrap(), Lease::Taken);
        assert_eq!(
            store.acme_take_lease("c.example", "one", t(300), HOUR, &budget(CA, 2)).await.unwrap(),
            Lease::RateLimited { until: t(3700) }
        );
        let state = store.acme_state("c.example").await.unwrap();
        assert!(state.is_none_or(|s| s.lease_holder.is_none()), "no lease left behind");
        // Another CA has its own budget; the window slides.
        assert_eq!(store.acme_take_lease("c.example", "one", t(300), HOUR, &budget("https://other/dir", 2)).await.unwrap(), Lease::Taken);
        store.acme_failed("c.example", Some("one"), "x", t(0), t(301)).await.unwrap();
        assert_eq!(store.acme_take_lease("c.example", "one", t(3701), HOUR, &budget(CA, 2)).await.unwrap(), Lease::Taken);
    }

    async fn challenges_are_shared_and_expire(db) {
        let store = db.open().await;
        let http = Challenge {
            token: "tok-1".into(),
            name: "mta-sts.a.example".into(),
            kind: ChallengeKind::Http01,
            key_authorization: "tok-1.thumb".into(),
            expires_at: t(100),
        };
        store.put_challenge(&http).await.unwrap();
        let alpn = Challenge { token: "tok-2".into(), kind: ChallengeKind::TlsAlpn01, ..http.clone() };
        store.put_challenge(&alpn).await.unwrap();
        assert_eq!(store.http_challenge("tok-1", t(50)).await.unwrap(), Some(http.clone()));
        assert_eq!(store.http_challenge("tok-2", t(50)).await.unwrap(), None, "not an HTTP-01 token");
        assert_eq!(store.http_challenge("tok-1", t(100)).await.unwrap(), None, "expired");
        assert_eq!(store.tls_alpn_challenge("mta-sts.a.example", t(50)).await.unwrap(), Some(alpn.clone()));
        assert_eq!(store.tls_alpn_challenge("mta-sts.b.example", t(50)).await.unwrap(), None);
        store.delete_challenge("tok-1", t(50)).await.unwrap();
        assert_eq!(store.http_challenge("tok-1", t(50)).await.unwrap(), None);
        store.delete_challenge("nothing", t(100)).await.unwrap();
        assert_eq!(db.count("SELECT COUNT(*) FROM acme_challenges").await, 0, "expired ones purged");
        let bad = Challenge { name: "Not A Name".into(), ..http };
        assert!(matches!(store.put_challenge(&bad).await, Err(Error::Invalid { .. })));
    }

    async fn delegation_is_kept_and_changed(db) {
        let store = db.open().await;
        let d = store.add_domain("a.example", &testing(), "testing", &change(0)).await.unwrap();
        assert_eq!(d.delegation, Delegation::Host);
        let d = store
            .add_domain_delegated("b.example", &testing(), "testing", Delegation::Full, &change(0))
            .await
            .unwrap();
        assert_eq!(d.delegation, Delegation::Full);
        store.set_delegation("a.example", Delegation::Full, &change(1)).await.unwrap();
        assert_eq!(store.domain("a.example").await.unwrap().unwrap().delegation, Delegation::Full);
        assert!(matches!(
            store.set_delegation("nope.example", Delegation::Host, &change(1)).await,
            Err(Error::UnknownDomain { .. })
        ));
    }

    async fn published_records_outlive_their_domain_until_forgotten(db) {
        let store = db.open().await;
        store.add_domain("a.example", &testing(), "testing", &change(0)).await.unwrap();
        store.dns_record_failed("a.example", "REFUSED by 127.0.0.1:53", t(100), t(10)).await.unwrap();
        let p = store.dns_published("a.example").await.unwrap().unwrap();
        assert_eq!((p.failures, p.sts_value, p.next_attempt), (1, None, t(100)));
        store.dns_record_failed("a.example", "again", t(200), t(110)).await.unwrap();
        assert_eq!(store.dns_published("a.example").await.unwrap().unwrap().failures, 2);
        store.dns_record_published("a.example", Some("v=STSv1; id=1"), Some("v=TLSRPTv1; rua=mailto:r@x"), &change(120)).await.unwrap();
        let p = store.dns_published("a.example").await.unwrap().unwrap();
        assert_eq!(p.sts_value.as_deref(), Some("v=STSv1; id=1"));
        assert_eq!((p.failures, p.last_error, p.published_at), (0, None, Some(t(120))));
        store.remove_domain("a.example", &change(130)).await.unwrap();
        assert_eq!(store.dns_published_all().await.unwrap().len(), 1, "still to withdraw");
        store.dns_forget("a.example").await.unwrap();
        assert!(store.dns_published_all().await.unwrap().is_empty());
        let audit = store.audit(Some("a.example"), 10).await.unwrap();
        assert!(audit.iter().any(|a| a.action == "dns.publish"));
    }
}
