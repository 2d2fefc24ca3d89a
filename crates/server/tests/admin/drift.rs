//! The background drift checker's round, against a test internet: it records what drifted,
//! leaves alone what it could not look at, and resolves what was fixed.

use crate::support::both;
use mtasts_core::policy::Mode;
use mtasts_core::rollout::RolloutConfig;
use mtasts_server::config::CheckConfig;
use mtasts_server::domains::{AddDomain, Domains, MxSource};
use mtasts_server::drift::Checker;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::world::{DOMAIN, World};
use std::sync::Arc;
use std::time::Duration;

async fn checker(w: &World, ops: &Domains, nameserver: String) -> (Checker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, w.pki.root_pem()).unwrap();
    let cfg = CheckConfig {
        nameservers: vec![nameserver],
        ca_file: Some(root),
        https_port: w.https_port,
        timeout: Duration::from_secs(2),
        ..CheckConfig::default()
    };
    let c = Checker {
        domains: ops.clone(),
        env: Arc::new(cfg.drift_env().unwrap()),
        interval: Duration::from_secs(3600),
        concurrency: 4,
        budget: Duration::from_secs(10),
    };
    (c, dir)
}

async fn open_kinds(ops: &Domains) -> Vec<String> {
    let mut k: Vec<String> = ops
        .store()
        .drift_events(Some(DOMAIN), true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    k.sort();
    k
}

both! {
    async fn a_round_records_drift_keeps_unknowns_and_resolves_fixes(db) {
        let mut w = World::new().await;
        w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
        w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=stale\"");
        let ops = Domains::new(db.open().await, RolloutConfig::default()).unwrap();
        let req = AddDomain {
            domain: DOMAIN.into(),
            mx: MxSource::Patterns(vec!["mx1.example.test".into()]),
            mode: Mode::Testing,
            max_age: None,
            force: None,
            delegation: Default::default(),
        };
        let id = ops.add(&req, "cli", time::OffsetDateTime::now_utc()).await.unwrap().domain.unwrap().policy_id;
        let (c, _dir) = checker(&w, &ops, w.dns.addr().to_string()).await;
        // The TXT names another id, and mta-sts.example.test has no address.
        assert_eq!(c.round().await.unwrap(), 1);
        assert_eq!(open_kinds(&ops).await, ["policy-host", "txt-record"]);
        // A checker whose DNS does not answer: every kind unknown, nothing closed or opened.
        let (dead, _d) = checker(&w, &ops, "127.0.0.9:9".into()).await;
        assert_eq!(dead.round().await.unwrap(), 0);
        assert_eq!(open_kinds(&ops).await, ["policy-host", "txt-record"]);
        // The TXT record fixed: that event is resolved, the other stays open. (A fresh checker:
        // the first one's resolver keeps the old record for its TTL, as any cache would.)
        w.zone_replace("_mta-sts", &format!("_mta-sts 300 IN TXT \"v=STSv1; id={id}\""));
        drop(c);
        let (c, _dir) = checker(&w, &ops, w.dns.addr().to_string()).await;
        assert_eq!(c.round().await.unwrap(), 1);
        assert_eq!(open_kinds(&ops).await, ["policy-host"]);
    }
}
