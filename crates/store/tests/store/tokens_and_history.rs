//! Admin tokens, the audit history and drift events.

use mtasts_core::policy::Mode;
use mtasts_store::{DriftObservation, Error, TokenScope, Transition};

use crate::support::{Kind, both, change, policy, t, testing};

both! {
    async fn token_secret_authenticates_and_only_its_hash_is_stored(db) {
        let store = db.open().await;
        let made = store.create_token("ops", &TokenScope::All, &change(0)).await.unwrap();
        let secret = made.secret.expose().to_owned();
        assert!(secret.starts_with("mtasts_") && secret.len() == 71, "{secret}");
        assert!(!format!("{made:?}").contains(&secret[7..]), "Debug hides the secret");
        let token = store.authenticate(&secret).await.unwrap().unwrap();
        assert_eq!(token.name, "ops");
        assert_eq!(token.scope, TokenScope::All);
        assert_eq!(token.created_by, "cli:test");
        assert_eq!(token.created_at, t(0));
        let hashes = db.raw_bytes("SELECT hash FROM admin_tokens").await;
        assert_eq!(hashes.len(), 1);
        assert_eq!(hashes[0].len(), 32, "a SHA-256");
        assert_ne!(hashes[0], secret.as_bytes());
        if db.kind == Kind::Sqlite {
            store.close().await;
            for entry in std::fs::read_dir(db.dir.as_ref().unwrap().path()).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                assert!(!bytes.windows(64).any(|w| w == &secret.as_bytes()[7..]));
            }
        }
        let audit = db.open().await.audit(None, 10).await.unwrap();
        assert_eq!(audit[0].action, "token.create");
        assert!(!audit[0].detail.contains(&secret[7..]));
    }

    async fn wrong_malformed_or_revoked_secrets_do_not_authenticate(db) {
        let store = db.open().await;
        let made = store.create_token("ops", &TokenScope::All, &change(0)).await.unwrap();
        let secret = made.secret.expose().to_owned();
        let mut flipped = secret.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        let long = format!("{secret}0");
        for bad in ["", "mtasts_", &secret[..70], &long, &flipped, &secret[7..], &secret.to_uppercase()] {
            assert_eq!(store.authenticate(bad).await.unwrap(), None, "{bad:?}");
        }
        store.revoke_token("ops", &change(5).because("laptop lost")).await.unwrap();
        assert_eq!(store.authenticate(&secret).await.unwrap(), None);
        let err = store.revoke_token("ops", &change(6)).await;
        assert!(matches!(err, Err(Error::UnknownToken { .. })), "{err:?}");
        assert_eq!(store.audit(None, 1).await.unwrap()[0].reason.as_deref(), Some("laptop lost"));
    }

    async fn scoped_token_allows_only_its_domains(db) {
        let store = db.open().await;
        let given = ["example.org", "example.com", "example.org"].map(String::from).to_vec();
        let made = store.create_token("customer", &TokenScope::Domains(given), &change(0)).await.unwrap();
        let token = store.authenticate(made.secret.expose()).await.unwrap().unwrap();
        let scope = TokenScope::Domains(vec!["example.com".into(), "example.org".into()]);
        assert_eq!(token.scope, scope);
        assert_eq!(made.token, token);
        assert!(token.scope.allows("example.com"));
        assert!(token.scope.allows("example.org"));
        assert!(!token.scope.allows("example.net"));
        assert!(!token.scope.allows("sub.example.com"));
        assert!(!token.scope.allows("EXAMPLE.COM"));
        assert_eq!(store.tokens().await.unwrap(), vec![token]);
        for bad in [TokenScope::Domains(vec![]), TokenScope::Domains(vec!["Bad.Example".into()])] {
            let err = store.create_token("x", &bad, &change(1)).await;
            assert!(matches!(err, Err(Error::Invalid { .. })), "{bad:?}: {err:?}");
        }
        let err = store.create_token("customer", &TokenScope::All, &change(2)).await;
        assert!(matches!(err, Err(Error::TokenExists { .. })), "{err:?}");
        assert_eq!(store.tokens().await.unwrap().len(), 1);
    }

    async fn every_change_writes_one_audit_entry_with_who_when_and_why(db) {
        let store = db.open().await;
        let c = |s, who: &str, why: &str| {
            let mut c = change(s).because(why);
            c.actor = who.into();
            c
        };
        store.add_domain("example.com", &testing(), "testing", &c(1, "cli:alice", "onboarding")).await.unwrap();
        let p = policy(Mode::Testing, 86_400, &["mail.example.com", "mail2.example.com"]);
        store.set_policy("example.com", &testing().id, &p, &c(2, "token:ops", "second MX")).await.unwrap();
        let promote = Transition {
            from: "testing".into(),
            to: "enforce".into(),
            reason: "gate passed".into(),
            forced: true,
            evidence: None,
            policy: Some(policy(Mode::Enforce, 86_400, &["mail.example.com", "mail2.example.com"])),
        };
        store.transition("example.com", &promote, &c(3, "cli:bob", "customer asked")).await.unwrap();
        store.create_token("t", &TokenScope::All, &c(4, "cli:alice", "automation")).await.unwrap();
        store.revoke_token("t", &c(5, "cli:alice", "done")).await.unwrap();
        store.remove_domain("example.com", &c(6, "cli:bob", "gone")).await.unwrap();
        let audit = store.audit(None, 100).await.unwrap();
        let got: Vec<_> = audit
            .iter()
            .rev()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.at, e.reason.as_deref()))
            .collect();
        assert_eq!(got, vec![
            ("domain.add", "cli:alice", t(1), Some("onboarding")),
            ("policy.set", "token:ops", t(2), Some("second MX")),
            ("rollout.transition", "cli:bob", t(3), Some("customer asked")),
            ("token.create", "cli:alice", t(4), Some("automation")),
            ("token.revoke", "cli:alice", t(5), Some("done")),
            ("domain.remove", "cli:bob", t(6), Some("gone")),
        ]);
        let transition: serde_json::Value = serde_json::from_str(&audit[3].detail).unwrap();
        assert_eq!(transition["forced"], true);
        assert_eq!(transition["to"], "enforce");
        assert_eq!(transition["policy"]["mode"], "enforce");
        assert_eq!(store.audit(Some("example.com"), 100).await.unwrap().len(), 4);
        assert_eq!(store.audit(None, 2).await.unwrap().len(), 2);
    }

    async fn drift_seen_again_updates_the_open_event_and_resolving_closes_it(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let seen = DriftObservation {
            kind: "id-mismatch".into(),
            detail: "_mta-sts.example.com says id=old, serving id=new".into(),
            fix: "publish \"v=STSv1; id=new\" at _mta-sts.example.com".into(),
        };
        let first = store.record_drift("example.com", &seen, t(10)).await.unwrap();
        let again = store.record_drift("example.com", &seen, t(20)).await.unwrap();
        assert_eq!(first.seq, again.seq);
        assert_eq!((again.first_seen, again.last_seen), (t(10), t(20)));
        // The same kind described anew: still one open event, with the new words.
        let generation = store.generation().await.unwrap();
        let reworded = DriftObservation { detail: "_mta-sts.example.com says id=older".into(), ..seen.clone() };
        let third = store.record_drift("example.com", &reworded, t(25)).await.unwrap();
        assert_eq!((third.seq, third.first_seen, third.detail.as_str()), (first.seq, t(10), "_mta-sts.example.com says id=older"));
        assert_eq!(store.generation().await.unwrap(), generation, "drift is not served: no new generation");
        // Two instances recording the same kind at once: still one open event.
        let (a, b) = tokio::join!(
            store.record_drift("example.com", &seen, t(26)),
            store.record_drift("example.com", &reworded, t(26))
        );
        assert_eq!(a.unwrap().seq, b.unwrap().seq);
        let other = DriftObservation { kind: "mx-not-covered".into(), detail: "mx3.example.com".into(), fix: "add it".into() };
        store.record_drift("example.com", &other, t(21)).await.unwrap();
        assert_eq!(store.drift_events(Some("example.com"), true, 10).await.unwrap().len(), 2);
        assert_eq!(store.resolve_drift("example.com", "id-mismatch", t(30)).await.unwrap(), 1);
        let generation = store.generation().await.unwrap();
        assert_eq!(store.resolve_drift("example.com", "id-mismatch", t(31)).await.unwrap(), 0);
        assert_eq!(store.generation().await.unwrap(), generation, "nothing resolved, nothing written");
        let open = store.drift_events(Some("example.com"), true, 10).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kind, "mx-not-covered");
        let all = store.drift_events(None, false, 10).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].resolved_at, Some(t(30)));
        // Seen again after resolution: a new event.
        let back = store.record_drift("example.com", &seen, t(40)).await.unwrap();
        assert_ne!(back.seq, first.seq);
        // Drift is an observation: no audit entry.
        assert_eq!(store.audit(None, 100).await.unwrap().len(), 1);
        let err = store.record_drift("example.org", &seen, t(50)).await;
        assert!(matches!(err, Err(Error::UnknownDomain { .. })), "{err:?}");
    }
}

both! {
    async fn settings_are_shared_replaced_and_bounded(db) {
        let store = db.open().await;
        assert_eq!(store.setting("rollout").await.unwrap(), None);
        let generation = store.generation().await.unwrap();
        store.put_setting("rollout", "{\"min_testing\":3600}").await.unwrap();
        store.put_setting("rollout", "{\"min_testing\":7200}").await.unwrap();
        assert_eq!(store.setting("rollout").await.unwrap().as_deref(), Some("{\"min_testing\":7200}"));
        assert_eq!(store.generation().await.unwrap(), generation, "nothing served changed");
        assert!(store.put_setting("", "x").await.is_err());
        assert!(store.put_setting("big", &"x".repeat(64 * 1024 + 1)).await.is_err());
        // Another handle on the same store sees it.
        assert!(db.open().await.setting("rollout").await.unwrap().is_some());
        assert_eq!(store.audit(None, 10).await.unwrap().len(), 0, "configuration, not an audited change");
    }
}
