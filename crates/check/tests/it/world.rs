//! The test world (mtasts_testnet::world) and the check environment for it.

use mtasts_check::{Env, Settings};
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::probe::ProbeBudget;
use mtasts_net::tls::TlsProbeConfig;
pub(crate) use mtasts_testnet::world::{DOMAIN, World};
use std::time::Duration;

/// What `check` needs to test `w`: its DNS, its PKI as the only trust root, its ports.
pub(crate) fn env(w: &World) -> Env {
    env_for(
        w.dns.addr(),
        w.trust_anchor(),
        &w.pki,
        (w.smtp_port, w.https_port),
    )
}

/// A check environment for any test internet: its name server and DNSSEC trust anchor, its PKI
/// as the only trust root, its SMTP and HTTPS ports; budgets short enough for tests.
pub(crate) fn env_for(
    nameserver: std::net::SocketAddr,
    trust_anchor: String,
    pki: &mtasts_testnet::pki::Pki,
    (smtp_port, https_port): (u16, u16),
) -> Env {
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![nameserver],
        timeout: Some(Duration::from_millis(800)),
        trust_anchor: TrustAnchor::Keys(trust_anchor),
    })
    .unwrap();
    let tls = TlsProbeConfig::with_roots(pki.root_store()).with_now(pki.now());
    let mut settings = Settings {
        smtp_port,
        ..Settings::default()
    };
    settings.fetch.port = https_port;
    settings.fetch.timeout = Duration::from_millis(1500);
    settings.probe_budget = ProbeBudget {
        connect: Duration::from_millis(500),
        smtp: Duration::from_millis(1000),
        tls: Duration::from_millis(1000),
    };
    Env::new(resolver, tls, settings)
}
