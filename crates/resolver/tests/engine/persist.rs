//! Policies survive a restart through the SQLite file.

use crate::fixture::*;
use mtasts_resolver::Reply;
use mtasts_resolver::cache_file::CacheFile;
use mtasts_resolver::stats::Source;

#[tokio::test]
async fn a_restarted_engine_answers_from_the_file_without_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    let fx = Fx::new(&policy_text("enforce", DAY)).await;
    {
        let store = CacheFile::open(&path).await.unwrap();
        let (tx, writer) = store.spawn_writer();
        let e = fx.engine_with(quick(), zones(v37()), Some(tx));
        assert_eq!(
            e.query("postfix", DOMAIN).await.reply,
            Reply::Ok(ENFORCE_37.into())
        );
        drop(e);
        assert_eq!(writer.await.unwrap(), 0, "no write errors");
    }
    // The network is gone; the new engine still knows the policy.
    fx.w.dns
        .set_fault("_mta-sts.example.test", Some(Fault::Silent));
    let store = CacheFile::open(&path).await.unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].domain, DOMAIN);
    let e = fx.engine(quick(), v37());
    assert_eq!(e.preload(loaded), 1);
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::Ok(ENFORCE_37.into()));
    assert_ne!(a.source, Source::Miss);
    assert_eq!(fx.fetches(), 1);
}

#[tokio::test]
async fn a_domain_that_drops_its_policy_is_deleted_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    let store = CacheFile::open(&path).await.unwrap();
    let mut fx = Fx::new(&policy_text("enforce", 3600)).await;
    let (tx, writer) = store.clone().spawn_writer();
    let e = fx.engine_with(quick(), zones(v37()), Some(tx));
    e.query("postfix", DOMAIN).await;
    fx.set_txt(None);
    advance(tokio::time::Duration::from_secs(3601)).await;
    let a = e.query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::NotFound, "{a:?}");
    drop(e);
    writer.await.unwrap();
    assert!(store.load().await.unwrap().is_empty());
}

#[test]
fn a_corrupt_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    std::fs::write(&path, b"this is not a database, but it is long enough to look like one.......................................................").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(async { CacheFile::open(&path).await.map(|_| ()) })
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cache.sqlite"), "{msg}");
}
