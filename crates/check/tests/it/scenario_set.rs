//! The testnet's scenario set (what `testnet-serve --standard-ports` serves to compare tools):
//! every scenario domain produces the finding it was built for, and the clean one passes.

use mtasts_check::{Env, Verdict, check_domain};
use mtasts_testnet::scenarios::{Ports, ScenarioSet};

fn env(set: &ScenarioSet) -> Env {
    crate::world::env_for(
        set.dns.addr(),
        set.trust_anchor(),
        &set.pki,
        (set.smtp_port, set.https_port),
    )
}

#[tokio::test]
async fn every_scenario_shows_its_finding() {
    let set = ScenarioSet::start(97, Ports::ANY).await.unwrap();
    assert!(set.scenarios.len() >= 20, "{}", set.scenarios.len());
    let env = env(&set);
    for s in &set.scenarios {
        let r = check_domain(&s.domain, &env).await;
        let ids: Vec<&str> = r.findings.iter().map(|f| f.id).collect();
        match s.expect {
            None => {
                assert_eq!(r.verdict, Verdict::Pass, "{}: {ids:?}", s.name);
                assert!(ids.is_empty(), "{}: {ids:?}", s.name);
            }
            Some(id) => {
                assert!(ids.contains(&id), "{}: expected {id}, got {ids:?}", s.name);
                assert_ne!(r.verdict, Verdict::Pass, "{}: {ids:?}", s.name);
            }
        }
    }
    let table = set.table();
    assert_eq!(table.lines().count(), set.scenarios.len() + 1);
    assert!(table.contains("mx-cert-expired.scenarios.test\tmx.certificate.expired\t"));
}
