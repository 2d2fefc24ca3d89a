//! The change signal between instances.

use std::time::{Duration, Instant};

use mtasts_store::TokenScope;

use crate::support::{Kind, Relay, TestDb, both, change, testing};

both! {
    async fn every_committed_write_raises_the_generation(db) {
        let store = db.open().await;
        let mut last = store.generation().await.unwrap();
        let mut expect_raised = |now: u64, what: &str| {
            assert!(now > last, "{what}: {now} after {last}");
            last = now;
        };
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        expect_raised(store.generation().await.unwrap(), "add");
        store.create_token("t", &TokenScope::All, &change(1)).await.unwrap();
        expect_raised(store.generation().await.unwrap(), "token");
        store.remove_domain("example.com", &change(2)).await.unwrap();
        expect_raised(store.generation().await.unwrap(), "remove");
    }

    async fn another_instance_learns_of_a_change_within_seconds(db) {
        let serving = db.open().await;
        let admin = db.open().await;
        // On PostgreSQL the poll is far longer than the test allows: only NOTIFY can be in time.
        let poll = match db.kind {
            Kind::Postgres => Duration::from_secs(600),
            Kind::Sqlite => Duration::from_millis(50),
        };
        let mut watcher = serving.watch(serving.generation().await.unwrap(), poll);
        let waiting = tokio::spawn(async move {
            let started = Instant::now();
            let generation = watcher.changed().await.unwrap();
            (generation, started.elapsed())
        });
        // Let the watcher start listening first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        admin.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let (generation, _) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the change was heard within 5 s")
            .unwrap();
        assert_eq!(generation, admin.generation().await.unwrap());
        assert!(serving.domain("example.com").await.unwrap().is_some());
    }

    async fn watcher_reports_a_change_made_before_it_waited(db) {
        let store = db.open().await;
        let seen = store.generation().await.unwrap();
        store.add_domain("example.com", &testing(), "testing", &change(0)).await.unwrap();
        let mut watcher = store.watch(seen, Duration::from_secs(600));
        let generation = tokio::time::timeout(Duration::from_secs(5), watcher.changed())
            .await
            .expect("no wait for a change already made")
            .unwrap();
        assert_eq!(generation, store.generation().await.unwrap());
        assert_eq!(watcher.seen(), generation);
    }
}

/// An instance cut off from PostgreSQL gets prompt errors (it keeps serving what it has), and
/// its watcher catches up with what changed meanwhile once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_survives_a_database_outage_and_catches_up() {
    let Some(db) = TestDb::postgres("watcher_survives_a_database_outage_and_catches_up").await
    else {
        return;
    };
    let admin = db.open().await;
    let mut relay = Relay::start(0, db.server_addr()).await;
    let options = mtasts_store::StoreOptions {
        acquire_timeout: Duration::from_secs(1),
        ..db.options.clone()
    };
    let serving = mtasts_store::Store::open(&db.url_via(relay.port), &options)
        .await
        .unwrap();
    let mut watcher = serving.watch(
        serving.generation().await.unwrap(),
        Duration::from_millis(200),
    );

    admin
        .add_domain("a.example", &testing(), "testing", &change(0))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), watcher.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, admin.generation().await.unwrap());

    relay.cut().await;
    let started = Instant::now();
    let err = serving.generation().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let err = tokio::time::timeout(Duration::from_secs(10), watcher.changed())
        .await
        .expect("an outage is reported, not waited out")
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    admin
        .add_domain("b.example", &testing(), "testing", &change(1))
        .await
        .unwrap();
    relay.restore().await;
    let mut caught_up = None;
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_secs(5), watcher.changed()).await {
            Ok(Ok(generation)) => {
                caught_up = Some(generation);
                break;
            }
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert_eq!(caught_up, Some(admin.generation().await.unwrap()));
    assert!(serving.domain("b.example").await.unwrap().is_some());
    // And NOTIFY works again after the reconnect.
    admin
        .add_domain("c.example", &testing(), "testing", &change(2))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), watcher.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, admin.generation().await.unwrap());
}
