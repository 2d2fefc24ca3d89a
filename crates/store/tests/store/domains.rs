//! Domains, policies, rollout state and transitions; opening and migrating.

use mtasts_core::policy::Mode;
use mtasts_store::{Error, Store, StoreOptions, Transition};

use crate::support::{Kind, TestDb, both, change, policy, t, testing};

fn promote(policy: mtasts_store::NewPolicy) -> Transition {
    Transition {
        from: "testing".into(),
        to: "enforce".into(),
        reason: "14 days in testing, live check clean".into(),
        forced: false,
        evidence: Some("{\"mx_covered\":true}".into()),
        policy: Some(policy),
    }
}

both! {
    async fn added_domain_reads_back_with_policy_rollout_and_first_transition(db) {
        let store = db.open().await;
        let p = testing();
        let added = store
            .add_domain("example.com", &p, "testing", &change(0).because("new customer"))
            .await
            .unwrap();
        let read = store.domain("example.com").await.unwrap().unwrap();
        assert_eq!(added, read);
        assert_eq!(read.name, "example.com");
        assert_eq!(read.created_at, t(0));
        assert_eq!(read.policy.text, p.text);
        assert_eq!(read.policy.id, p.id);
        assert_eq!(read.policy.mode, Mode::Testing);
        assert_eq!(read.policy.max_age, 86_400);
        assert_eq!(read.policy.mx, vec!["mail.example.com".to_owned()]);
        assert_eq!(read.rollout.state, "testing");
        assert_eq!(read.rollout.state_since, t(0));
        assert_eq!(read.rollout.longest_max_age, 86_400);
        assert_eq!(read.rollout.non_none_ended_at, None);
        let transitions = store.transitions("example.com").await.unwrap();
        assert_eq!(transitions.len(), 1);
        assert_eq!(transitions[0].from, None);
        assert_eq!(transitions[0].to, "testing");
        assert_eq!(transitions[0].reason, "new customer");
        assert_eq!(transitions[0].actor, "cli:test");
        assert_eq!(store.domain("example.net").await.unwrap(), None);
        assert_eq!(store.domains().await.unwrap(), vec![read]);
    }

    async fn adding_a_hosted_domain_again_is_refused_and_changes_nothing(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let before = store.generation().await.unwrap();
        let other = policy(Mode::Testing, 3600, &["mx.example.org"]);
        let err = store.add_domain("example.com", &other, "testing", &change(5)).await;
        assert!(matches!(err, Err(Error::DomainExists { .. })), "{err:?}");
        assert_eq!(store.generation().await.unwrap(), before);
        assert_eq!(store.policy_history("example.com").await.unwrap().len(), 1);
        assert_eq!(store.audit(None, 100).await.unwrap().len(), 1);
    }

    async fn policy_history_keeps_every_publication_in_order(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let second = policy(Mode::Testing, 86_400, &["mail.example.com", "*.mx.example.net"]);
        // Decided from a policy no longer served: refused, nothing written.
        let err = store.set_policy("example.com", "not-the-served-id", &second, &change(59)).await;
        assert!(matches!(err, Err(Error::StateChanged { .. })), "{err:?}");
        let now = store.set_policy("example.com", &testing().id, &second, &change(60)).await.unwrap();
        assert_eq!(now.policy.id, second.id);
        assert_eq!(now.rollout.state, "testing", "set_policy leaves the state alone");
        assert_eq!(now.rollout.state_since, t(0));
        let history = store.policy_history("example.com").await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].id, testing().id);
        assert_eq!(history[1].id, second.id);
        assert!(history[0].seq < history[1].seq);
        assert_eq!(history[1].published_at, t(60));
        assert_eq!(history[1].mx, second.mx);
        let err = store.set_policy("example.org", &second.id, &second, &change(61)).await;
        assert!(matches!(err, Err(Error::UnknownDomain { .. })), "{err:?}");
    }

    async fn transition_from_a_state_the_domain_left_is_refused_and_writes_nothing(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let enforce = policy(Mode::Enforce, 86_400, &["mail.example.com"]);
        let after = store
            .transition("example.com", &promote(enforce.clone()), &change(100))
            .await
            .unwrap();
        assert_eq!(after.rollout.state, "enforce");
        assert_eq!(after.rollout.state_since, t(100));
        assert_eq!(after.policy.mode, Mode::Enforce);
        let generation = store.generation().await.unwrap();
        // A second promotion decided from the old state.
        let err = store.transition("example.com", &promote(enforce), &change(200)).await;
        match err {
            Err(Error::StateChanged { expected, actual, .. }) => {
                assert_eq!((expected.as_str(), actual.as_str()), ("testing", "enforce"));
            }
            other => panic!("expected StateChanged, got {other:?}"),
        }
        assert_eq!(store.generation().await.unwrap(), generation);
        assert_eq!(store.policy_history("example.com").await.unwrap().len(), 2);
        let transitions = store.transitions("example.com").await.unwrap();
        assert_eq!(transitions.len(), 2);
        assert_eq!(transitions[1].from.as_deref(), Some("testing"));
        assert_eq!(transitions[1].evidence.as_deref(), Some("{\"mx_covered\":true}"));
        assert!(!transitions[1].forced);
    }

    async fn removal_facts_follow_longest_max_age_and_end_of_non_none(db) {
        let store = db.open().await;
        let mx = ["mail.example.com"];
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let step = |from: &str, to: &str, p| Transition {
            from: from.into(),
            to: to.into(),
            reason: "step".into(),
            forced: false,
            evidence: None,
            policy: Some(p),
        };
        let d = store
            .transition("example.com", &step("testing", "enforce", policy(Mode::Enforce, 604_800, &mx)), &change(10))
            .await
            .unwrap();
        assert_eq!(d.rollout.longest_max_age, 604_800);
        let d = store
            .transition("example.com", &step("enforce", "testing", policy(Mode::Testing, 86_400, &mx)), &change(20))
            .await
            .unwrap();
        assert_eq!(d.rollout.longest_max_age, 604_800, "never lowered");
        assert_eq!(d.rollout.non_none_ended_at, None);
        let d = store
            .transition("example.com", &step("testing", "removing", policy(Mode::None, 31_557_600, &mx)), &change(30))
            .await
            .unwrap();
        assert_eq!(d.rollout.longest_max_age, 604_800, "a none policy's max_age does not count");
        assert_eq!(d.rollout.non_none_ended_at, Some(t(30)));
        // Serving none again (e.g. a new max_age) does not move the end.
        let served = d.policy.id.clone();
        let d = store
            .set_policy("example.com", &served, &policy(Mode::None, 86_400, &mx), &change(40))
            .await
            .unwrap();
        assert_eq!(d.rollout.non_none_ended_at, Some(t(30)));
        // Back to testing: a non-none policy is served again.
        let d = store
            .transition("example.com", &step("removing", "testing", policy(Mode::Testing, 86_400, &mx)), &change(50))
            .await
            .unwrap();
        assert_eq!(d.rollout.non_none_ended_at, None);
    }

    async fn domain_added_with_a_none_policy_has_no_non_none_to_wait_for(db) {
        let store = db.open().await;
        let p = policy(Mode::None, 86_400, &["mail.example.com"]);
        let d = store.add_domain("example.com", &p, "removing", &change(7)).await.unwrap();
        assert_eq!(d.rollout.longest_max_age, 0);
        assert_eq!(d.rollout.non_none_ended_at, Some(t(7)));
    }

    async fn policy_whose_text_disagrees_with_its_fields_is_refused(db) {
        let store = db.open().await;
        let good = testing();
        let mut cases = Vec::new();
        let mut p = good.clone(); p.mode = Mode::Enforce; cases.push(("mode", p));
        let mut p = good.clone(); p.max_age = 86_401; cases.push(("max_age", p));
        let mut p = good.clone(); p.mx = vec!["other.example.com".into()]; cases.push(("mx", p));
        let mut p = good.clone(); p.mx.push("mail2.example.com".into()); cases.push(("extra mx", p));
        let mut p = good.clone(); p.text = "version: STSv1\r\n".into(); cases.push(("invalid text", p));
        let mut p = good.clone(); p.id = String::new(); cases.push(("empty id", p));
        let mut p = good.clone(); p.id = "a".repeat(33); cases.push(("long id", p));
        let mut p = good.clone(); p.id = "id-with-dash".into(); cases.push(("id charset", p));
        let mut p = good.clone(); p.text = "x".repeat(70_000); cases.push(("huge", p));
        for (what, p) in cases {
            let err = store.add_domain("example.com", &p, "testing", &change(0)).await;
            assert!(matches!(err, Err(Error::Invalid { .. })), "{what}: {err:?}");
        }
        assert_eq!(store.domains().await.unwrap(), vec![]);
        assert_eq!(store.generation().await.unwrap(), 1, "only the key check was written");
    }

    async fn malformed_domain_names_and_oversized_inputs_are_refused(db) {
        let store = db.open().await;
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        for bad in ["", "Example.com", "example.com.", "exa mple.com", "a..b", "ex\u{0430}mple.com", &long_label, &long_name] {
            let err = store.add_domain(bad, &testing(), "testing", &change(0)).await;
            assert!(matches!(err, Err(Error::Invalid { what: "domain", .. })), "{bad:?}: {err:?}");
        }
        let err = store
            .add_domain("example.com", &testing(), "testing", &change(0).because("x".repeat(5000)))
            .await;
        assert!(matches!(err, Err(Error::Invalid { what: "reason", .. })), "{err:?}");
        let err = store.add_domain("example.com", &testing(), "", &change(0)).await;
        assert!(matches!(err, Err(Error::Invalid { what: "state", .. })), "{err:?}");
        let mut c = change(0);
        c.actor = "bad\u{0}actor".into();
        let err = store.add_domain("example.com", &testing(), "testing", &c).await;
        assert!(matches!(err, Err(Error::Invalid { what: "actor", .. })), "{err:?}");
        assert_eq!(store.domains().await.unwrap(), vec![]);
    }

    async fn removed_domain_takes_its_rows_but_the_audit_keeps_the_record(db) {
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        store.add_domain("example.org", &testing(), "testing", &change(0)).await.unwrap();
        store.remove_domain("example.com", &change(9).because("customer left")).await.unwrap();
        assert_eq!(store.domain("example.com").await.unwrap(), None);
        assert_eq!(store.policy_history("example.com").await.unwrap(), vec![]);
        assert_eq!(store.transitions("example.com").await.unwrap(), vec![]);
        assert!(store.domain("example.org").await.unwrap().is_some());
        let audit = store.audit(Some("example.com"), 10).await.unwrap();
        assert_eq!(audit[0].action, "domain.remove");
        assert_eq!(audit[0].reason.as_deref(), Some("customer left"));
        assert_eq!(audit[0].at, t(9));
        assert_eq!(audit[1].action, "domain.add");
        let err = store.remove_domain("example.com", &change(10)).await;
        assert!(matches!(err, Err(Error::UnknownDomain { .. })), "{err:?}");
        // It can be hosted again, with a fresh history.
        store.add_domain("example.com", &testing(), "testing", &change(11)).await.unwrap();
        assert_eq!(store.policy_history("example.com").await.unwrap().len(), 1);
    }

    async fn concurrent_promotions_from_one_state_let_exactly_one_win(db) {
        let a = db.open().await;
        let b = db.open().await;
        a.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let enforce = policy(Mode::Enforce, 86_400, &["mail.example.com"]);
        let mut tasks = Vec::new();
        for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()].into_iter().enumerate() {
            let p = enforce.clone();
            tasks.push(tokio::spawn(async move {
                store.transition("example.com", &promote(p), &change(10 + i as i64)).await
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(Error::StateChanged { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(a.transitions("example.com").await.unwrap().len(), 2);
        assert_eq!(b.policy_history("example.com").await.unwrap().len(), 2);
    }

    async fn first_runs_racing_on_one_database_agree_on_schema_and_key(db) {
        // `mtasts serve` and a `mtasts domain add` (or two instances) started together on a
        // database that is still empty.
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let (url, options) = (db.url.clone(), db.options.clone());
                tokio::spawn(async move { Store::open(&url, &options).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            stores.push(open.await.unwrap().unwrap());
        }
        stores[0].add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        for s in &stores {
            assert!(s.domain("example.com").await.unwrap().is_some());
        }
    }

    async fn migrations_apply_once_and_a_newer_schema_is_refused(db) {
        let applied = mtasts_store::migrate(&db.url, &db.options).await.unwrap();
        assert_eq!(applied.iter().map(|m| m.version).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(applied[0].description, "initial");
        assert_eq!(applied[1].description, "one open drift event");
        assert_eq!(applied[2].description, "acme and dns");
        assert_eq!(applied[3].description, "reports");
        assert_eq!(applied[4].description, "report dkim");
        assert_eq!(applied[5].description, "host certificates");
        assert_eq!(applied[6].description, "alerts");
        assert_eq!(mtasts_store::migrate(&db.url, &db.options).await.unwrap(), vec![]);
        let store = db.open().await;
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        store.close().await;
        db.raw(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from a newer build', TRUE, X'00', 0)"
                .replace("X'00'", if db.kind == Kind::Postgres { "'\\x00'::bytea" } else { "X'00'" })
                .as_str(),
        )
        .await;
        let err = Store::open(&db.url, &db.options).await;
        assert!(matches!(err, Err(Error::Migrate { .. })), "{err:?}");
    }
}

#[tokio::test]
async fn sqlite_store_starts_from_nothing_but_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let url = format!("sqlite:{}", path.display());
    let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert!(path.exists());
    let key_file = dir.path().join("state.db.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = std::fs::read_to_string(&key_file).unwrap();
    store
        .add_domain("example.com", &testing(), "testing", &change(0))
        .await
        .unwrap();
    store.close().await;

    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(journal, "wal");

    let again = Store::open(&url, &StoreOptions::default()).await.unwrap();
    assert!(again.domain("example.com").await.unwrap().is_some());
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key,
        "the key file is reused"
    );
}

#[tokio::test]
async fn sqlite_store_in_a_missing_directory_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite:{}",
        dir.path().join("no/such/dir/state.db").display()
    );
    let err = Store::open(&url, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
}

#[tokio::test]
async fn postgres_without_a_configured_key_is_refused_with_the_reason() {
    // Refused before any connection: no server is needed.
    let err = Store::open(
        "postgres://nobody@127.0.0.1:1/none",
        &StoreOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::KeyRequired), "{err:?}");
    assert!(err.to_string().contains("share the key"), "{err}");
}

#[tokio::test]
async fn unreachable_postgres_fails_within_the_acquire_timeout() {
    let options = StoreOptions {
        key: Some(mtasts_store::StoreKey::from_bytes([1; 32])),
        acquire_timeout: std::time::Duration::from_secs(1),
        ..StoreOptions::default()
    };
    // Port 1 on loopback: nothing listens there.
    let started = std::time::Instant::now();
    let err = Store::open("postgres://nobody@127.0.0.1:1/none", &options)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn sqlite_writers_in_two_handles_queue_instead_of_failing() {
    // Two handles on one file stand for `mtasts serve` and a `mtasts domain` command.
    let db = TestDb::sqlite().await;
    let a = db.open().await;
    let b = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let name = format!("d{i}.example.com");
            store
                .add_domain(&name, &testing(), "testing", &change(i))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(a.domains().await.unwrap().len(), 20);
    assert_eq!(b.audit(None, 100).await.unwrap().len(), 20);
}

#[tokio::test]
async fn sqlite_with_a_configured_key_makes_no_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let options = StoreOptions {
        key: Some(mtasts_store::StoreKey::from_bytes([5; 32])),
        ..StoreOptions::default()
    };
    Store::open(&url, &options).await.unwrap();
    assert!(!dir.path().join("store.db.key").exists());
    // The key file is not a fallback once a key was configured: the store is bound to that key.
    let err = Store::open(&url, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyFileMissing { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_first_runs_racing_on_a_new_path_do_not_fail_migrating() {
    // SQLite has no migration lock: without the retry one of these failed with "table
    // store_generation already exists". Several rounds, as the race does not lose every time.
    for _ in 0..8 {
        let db = TestDb::sqlite().await;
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move { Store::open(&url, &StoreOptions::default()).await })
            })
            .collect();
        for open in opens {
            open.await.unwrap().unwrap();
        }
    }
}

/// The tables and columns of a migrated store (excluding sqlx's own), sorted.
async fn schema_of(db: &TestDb) -> Vec<(String, String, bool)> {
    use sqlx::Connection;
    let mut out: Vec<(String, String, bool)> = match db.kind {
        Kind::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(
                "SELECT m.name, p.name, p.\"notnull\" = 0 FROM sqlite_master m \
                 JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE '\\_%' ESCAPE '\\' \
                 AND m.name NOT LIKE 'sqlite%'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap()
        }
        Kind::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(
                "SELECT table_name::text, column_name::text, is_nullable = 'YES' \
                 FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name NOT LIKE '\\_%'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap()
        }
    };
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_migrate_to_the_same_tables_and_columns() {
    let Some(pg) = TestDb::postgres("both_backends_migrate_to_the_same_tables_and_columns").await
    else {
        return;
    };
    let lite = TestDb::sqlite().await;
    lite.open().await;
    pg.open().await;
    let (a, b) = (schema_of(&lite).await, schema_of(&pg).await);
    assert!(a.len() > 40, "{a:?}");
    // SQLite reports INTEGER PRIMARY KEY columns as nullable; compare names, then nullability
    // of the rest.
    let names = |s: &[(String, String, bool)]| {
        s.iter()
            .map(|(t, c, _)| (t.clone(), c.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b));
    for (x, y) in a.iter().zip(&b) {
        if x.1 != "id" {
            assert_eq!(x, y, "nullability differs");
        }
    }
}
