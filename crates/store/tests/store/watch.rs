//! The change signal between instances.

use std::time::{Duration, Instant};

use mtasts_store::TokenScope;

use crate::support::{Kind, both, change, testing};

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
