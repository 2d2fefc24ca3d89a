//! `mtasts report import|list|show|summary` with a store: every real report of tests/data
//! imported as files, as a maildir and as an mbox (the JSON ones wrapped in report mail as
//! reporters send them) lands identically (the same reports, normalised forms, raw JSON and
//! aggregates), on SQLite and on PostgreSQL; importing again only counts copies.

#[allow(dead_code, reason = "the serve helpers of the shared support module")]
mod support;

use mtasts_testnet::pg::TestDatabase;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::corpus::{self, as_mail, corpus};
use support::run;

const KEY: &str = "0909090909090909090909090909090909090909090909090909090909090909";

async fn mtasts(args: &[&str]) -> (i32, String, String) {
    run(
        args.iter().map(|a| (*a).to_owned()).collect(),
        &[("MTASTS_STORE_KEY", KEY)],
    )
    .await
}

async fn json(args: &[&str]) -> Value {
    corpus::json(KEY, args).await
}

async fn contents(store: &str) -> (BTreeMap<(String, String), Value>, Value) {
    corpus::contents(KEY, store).await
}

async fn import(store: &str, paths: &[&Path]) -> Value {
    let mut args = vec!["report", "import"];
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--store", store, "--format", "json"]);
    json(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_lands_the_same_through_files_maildir_and_mbox_on_both_backends() {
    let files = corpus();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = |name: &str| format!("sqlite:{}", dir.path().join(name).display());

    // As files.
    let store = sqlite("files.db");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let v = import(&store, &paths).await;
    assert_eq!(v["unreadable"], 0, "{v:#}");
    let stored = v["stored"].as_u64().unwrap();
    let duplicates = v["duplicates"].as_u64().unwrap();
    assert!(stored >= 14, "{v:#}");
    let (by_file, summary) = contents(&store).await;
    assert_eq!(by_file.len() as u64, stored);
    assert!(!summary.as_array().unwrap().is_empty());
    // The summary, written one domain at a time, holds every domain once and every report.
    let domains: std::collections::BTreeSet<&str> = by_file
        .values()
        .map(|r| r["policy_domain"].as_str().unwrap())
        .collect();
    let listed: Vec<&str> = summary
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["policy_domain"].as_str().unwrap())
        .collect();
    assert_eq!(listed, domains.iter().copied().collect::<Vec<_>>());
    let counted: u64 = summary
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reports"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, stored);

    // Again: nothing new, every report one copy more.
    let again = import(&store, &paths).await;
    assert_eq!(again["stored"], 0, "{again:#}");
    assert_eq!(again["duplicates"].as_u64(), Some(stored + duplicates));
    let list = json(&["report", "list", "--store", &store, "--format", "json"]).await;
    for r in list.as_array().unwrap() {
        assert!(r["copies"].as_u64().unwrap() >= 2, "{r}");
        for k in [
            "report_id",
            "organization",
            "policy_domain",
            "begin",
            "end",
            "success",
            "failure",
        ] {
            assert!(r.get(k).is_some(), "{k} missing: {r}");
        }
    }

    // As a maildir of report mails.
    let maildir = dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for (i, f) in files.iter().enumerate() {
        let sub = if i % 2 == 0 { "cur" } else { "new" };
        // Sorted import order is by path: cur/ first, then new/; keep the corpus order within
        // each, and make every report's first copy come from the same file as above.
        let name = format!("{i:04}.mail:2,S");
        std::fs::write(maildir.join(sub).join(name), as_mail(f, i)).unwrap();
    }
    // The order matters only for reports sent twice with different contents (the first is
    // kept): import the maildir's messages in corpus order by giving the files one by one.
    let mut in_order: Vec<PathBuf> = Vec::new();
    for (i, _) in files.iter().enumerate() {
        let sub = if i % 2 == 0 { "cur" } else { "new" };
        in_order.push(maildir.join(sub).join(format!("{i:04}.mail:2,S")));
    }
    let store_m = sqlite("maildir.db");
    let v = import(
        &store_m,
        &in_order.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(v["unreadable"], 0, "{v:#}");
    let (by_mail, summary_m) = contents(&store_m).await;
    assert_eq!(by_mail, by_file, "maildir files differ from plain files");
    assert_eq!(summary_m, summary);
    // The maildir itself (cur/ and new/) is read whole, every mail once.
    let store_d = sqlite("maildir-dir.db");
    let v = import(&store_d, &[maildir.as_path()]).await;
    assert_eq!(v["unreadable"], 0, "{v:#}");
    assert_eq!(v["stored"].as_u64(), Some(stored), "{v:#}");

    // As one mbox.
    let mut mbox = Vec::new();
    for (i, f) in files.iter().enumerate() {
        mbox.extend_from_slice(b"From tlsrpt@reporter.example Sat Jan  3 00:00:00 2026\n");
        let mail = as_mail(f, i);
        mbox.extend_from_slice(&mail);
        if !mail.ends_with(b"\n") {
            mbox.push(b'\n');
        }
    }
    let mbox_path = dir.path().join("reports.mbox");
    std::fs::write(&mbox_path, mbox).unwrap();
    let store_x = sqlite("mbox.db");
    let v = import(&store_x, &[mbox_path.as_path()]).await;
    assert_eq!(v["unreadable"], 0, "{v:#}");
    let (by_mbox, summary_x) = contents(&store_x).await;
    assert_eq!(by_mbox, by_file, "mbox differs from plain files");
    assert_eq!(summary_x, summary);

    // On PostgreSQL, the same.
    if let Some(db) = TestDatabase::create("mtasts_cli", "report_import").await {
        import(&db.url, &paths).await;
        let (by_pg, summary_pg) = contents(&db.url).await;
        assert_eq!(by_pg, by_file, "PostgreSQL differs from SQLite");
        assert_eq!(summary_pg, summary);
    }

    // CSV: a header and one row per domain and day.
    let (code, out, _) = mtasts(&[
        "report", "summary", "--store", &store, "--since", "30000d", "--format", "csv",
    ])
    .await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("policy_domain,day,reports,success,failure\n"),
        "{out}"
    );
    let (code, _, err) = mtasts(&["report", "list", "--store", &store, "--format", "csv"]).await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_report_is_named_and_the_rest_still_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("s.db").display());
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, b"{\"not\": \"a report\"}").unwrap();
    let bomb = dir.path().join("bomb.json.gz");
    // 64 MiB of zeros gzip'd: past the decompression limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 65 * 1024 * 1024]).unwrap();
    std::fs::write(&bomb, gz.finish().unwrap()).unwrap();
    let good = corpus()
        .into_iter()
        .find(|p| p.ends_with("google.json"))
        .unwrap();
    let missing = dir.path().join("missing.json");
    let args: Vec<String> = [&junk, &bomb, &good, &missing]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut a = vec!["report", "import"];
    a.extend(args.iter().map(String::as_str));
    a.extend(["--store", &store, "--format", "json"]);
    let (code, out, err) = mtasts(&a).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(code, 3, "a missing file is exit 3: {v:#}");
    assert_eq!(v["stored"], 1, "{v:#}");
    assert_eq!(v["unreadable"], 2, "{v:#}");
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 3, "{v:#}");
    assert!(
        failed
            .iter()
            .any(|f| f["source"].as_str().unwrap().ends_with("bomb.json.gz")
                && f["error"].as_str().unwrap().contains("decompress")),
        "{v:#}"
    );
}
