//! The test world (mtasts_testnet::world) and the check environment for it.

use mtasts_check::{Env, Settings};
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::probe::ProbeBudget;
use mtasts_net::tls::TlsProbeConfig;
pub(crate) use mtasts_testnet::world::{DOMAIN, World};
use std::time::Duration;

/// What `check` needs to test `w`: its DNS, its PKI as the only trust root, its ports.
pub(crate) fn env(w: &World) -> Env {
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![w.dns.addr()],
        timeout: Some(Duration::from_millis(800)),
        trust_anchor: TrustAnchor::Keys(w.trust_anchor()),
    })
    .unwrap();
    let tls = TlsProbeConfig::with_roots(w.pki.root_store()).with_now(w.pki.now());
    let mut settings = Settings {
        smtp_port: w.smtp_port,
        ..Settings::default()
    };
    settings.fetch.port = w.https_port;
    settings.fetch.timeout = Duration::from_millis(1500);
    settings.probe_budget = ProbeBudget {
        connect: Duration::from_millis(500),
        smtp: Duration::from_millis(1000),
        tls: Duration::from_millis(1000),
    };
    Env::new(resolver, tls, settings)
}
