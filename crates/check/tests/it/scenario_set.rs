//! The testnet's scenario set (what `testnet-serve --standard-ports` serves to compare tools):
//! every scenario domain produces the finding it was built for, and the clean one passes.

use mtasts_check::{Env, Settings, Verdict, check_domain};
use mtasts_net::dns::{Resolver, ResolverSettings};
use mtasts_net::probe::ProbeBudget;
use mtasts_net::tls::TlsProbeConfig;
use mtasts_testnet::scenarios::{Ports, ScenarioSet};
use std::time::Duration;

fn env(set: &ScenarioSet) -> Env {
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![set.dns.addr()],
        timeout: Some(Duration::from_millis(800)),
        trust_anchor: mtasts_net::dns::TrustAnchor::Keys(set.trust_anchor()),
    })
    .unwrap();
    let tls = TlsProbeConfig::with_roots(set.pki.root_store()).with_now(set.pki.now());
    let mut settings = Settings {
        smtp_port: set.smtp_port,
        ..Settings::default()
    };
    settings.fetch.port = set.https_port;
    settings.fetch.timeout = Duration::from_millis(1500);
    settings.probe_budget = ProbeBudget {
        connect: Duration::from_millis(500),
        smtp: Duration::from_millis(1000),
        tls: Duration::from_millis(1000),
    };
    Env::new(resolver, tls, settings)
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
