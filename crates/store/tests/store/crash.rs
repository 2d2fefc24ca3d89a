//! A write that fails part-way leaves nothing behind. The fault is injected from outside the
//! store: a trigger that makes the audit insert, the last statement of every write, fail.

use mtasts_core::policy::Mode;
use mtasts_store::{Error, Store, TokenScope, Transition};

use crate::support::{Kind, TestDb, both, change, policy, testing};

async fn break_audit(db: &TestDb) {
    match db.kind {
        Kind::Sqlite => {
            db.raw(
                "CREATE TRIGGER fail_audit BEFORE INSERT ON audit \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
            )
            .await;
        }
        Kind::Postgres => {
            db.raw(
                "CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
            )
            .await;
            db.raw(
                "CREATE TRIGGER fail_audit BEFORE INSERT ON audit \
                 FOR EACH ROW EXECUTE FUNCTION fail_audit()",
            )
            .await;
        }
    }
}

async fn mend_audit(db: &TestDb) {
    db.raw(
        "DROP TRIGGER fail_audit ON audit"
            .replace(
                " ON audit",
                if db.kind == Kind::Sqlite {
                    ""
                } else {
                    " ON audit"
                },
            )
            .as_str(),
    )
    .await;
}

/// Everything a failed write could have touched, as counts, plus the served domain.
async fn snapshot(
    db: &TestDb,
    store: &Store,
) -> (Vec<i64>, u64, Option<mtasts_store::HostedDomain>) {
    let mut counts = Vec::new();
    for table in [
        "domains",
        "policies",
        "rollout_transitions",
        "certificates",
        "admin_tokens",
        "admin_token_domains",
        "audit",
        "drift_events",
    ] {
        counts.push(db.count(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    (
        counts,
        store.generation().await.unwrap(),
        store.domain("example.com").await.unwrap(),
    )
}

fn injected<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) {
    match r {
        Err(Error::Database { source }) => {
            assert!(
                source.to_string().contains("injected fault"),
                "{what}: {source}"
            );
        }
        other => panic!("{what}: expected the injected fault, got {other:?}"),
    }
}

both! {
    async fn failed_writes_leave_nothing_half_written(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        store.create_token("kept", &TokenScope::Domains(vec!["example.com".into()]), &change(0)).await.unwrap();
        let before = snapshot(&db, &store).await;
        break_audit(&db).await;

        injected("add", store.add_domain("example.org", &testing(), "testing", &change(1)).await);
        let p = policy(Mode::Testing, 3600, &["mail.example.com"]);
        injected("set", store.set_policy("example.com", &testing().id, &p, &change(2)).await);
        let promote = Transition {
            from: "testing".into(),
            to: "enforce".into(),
            reason: "r".into(),
            forced: false,
            evidence: None,
            policy: Some(policy(Mode::Enforce, 86_400, &["mail.example.com"])),
        };
        injected("transition", store.transition("example.com", &promote, &change(3)).await);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mta-sts.example.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let new_cert = mtasts_store::NewCertificate {
            chain_pem: cert.pem(),
            key: mtasts_store::PrivateKeyPem::new(key.serialize_pem()),
            not_after: crate::support::t(1000),
            source: mtasts_store::CertSource::Imported,
        };
        injected("cert", store.put_certificate("example.com", &new_cert, &change(4)).await);
        let scope = TokenScope::Domains(vec!["a.example".into(), "b.example".into()]);
        injected("token", store.create_token("new", &scope, &change(5)).await);
        injected("revoke", store.revoke_token("kept", &change(6)).await);
        injected("remove", store.remove_domain("example.com", &change(7)).await);

        assert_eq!(snapshot(&db, &store).await, before);
        mend_audit(&db).await;
        // The store still works, and the next write is whole.
        store.transition("example.com", &promote, &change(8)).await.unwrap();
        let after = store.domain("example.com").await.unwrap().unwrap();
        assert_eq!(after.rollout.state, "enforce");
        assert_eq!(store.audit(Some("example.com"), 10).await.unwrap().len(), 2);
    }
}

both! {
    async fn writes_cancelled_at_any_point_are_whole_or_absent(db) {
        // A dropped future is what an admin client hanging up mid-request does to a write.
        let store = db.open().await;
        let mut cancelled = 0;
        for i in 0..40u64 {
            let name = format!("d{i}.example.com");
            let (policy, at) = (testing(), change(0));
            let mut write = std::pin::pin!(store.add_domain(&name, &policy, "testing", &at));
            // Poll it 1 to 118 times, letting the database work in between, then drop it
            // unfinished. The first poll never finishes a write (it waits for the database).
            let mut finished = false;
            for _ in 0..=i * 3 {
                let poll = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(write.as_mut().poll(cx))
                })
                .await;
                if poll.is_ready() {
                    finished = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_micros(50)).await;
            }
            if !finished {
                cancelled += 1;
            }
        }
        assert!(cancelled > 0, "some writes must have been cut short");
        // The store is still usable afterwards.
        store.add_domain("after.example.com", &testing(), "testing", &change(1)).await.unwrap();
        for i in 0..40u64 {
            let name = format!("d{i}.example.com");
            let hosted = store.domain(&name).await.unwrap().is_some();
            let policies = store.policy_history(&name).await.unwrap().len();
            let transitions = store.transitions(&name).await.unwrap().len();
            let audits = store.audit(Some(&name), 10).await.unwrap().len();
            let expect = usize::from(hosted);
            assert_eq!((policies, transitions, audits), (expect, expect, expect), "{name}");
        }
        let hosted = store.domains().await.unwrap().len() as i64;
        assert_eq!(db.count("SELECT COUNT(*) FROM audit").await, hosted);
    }
}
