//! One domain on the test internet, and an engine pointed at it.

use mtasts_net::dns::{Resolver, ResolverSettings};
use mtasts_net::https::FetchSettings;
use mtasts_net::tls::TlsProbeConfig;
use mtasts_resolver::cache_file::CacheOp;
use mtasts_resolver::discover::Net;
use mtasts_resolver::reply::{PostfixVersion, ReplySettings};
use mtasts_resolver::{Engine, Settings, Zone};
pub(crate) use mtasts_testnet::dns::Fault;
use mtasts_testnet::https::{HttpResponse, PolicyHost};
use mtasts_testnet::pki::Defect;
pub(crate) use mtasts_testnet::world::{DOMAIN, World};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

pub(crate) const DAY: u64 = 86_400;

pub(crate) fn policy_text(mode: &str, max_age: u64) -> String {
    format!(
        "version: STSv1\nmode: {mode}\nmx: mx1.example.test\nmx: *.mx.example.test\nmax_age: {max_age}\n"
    )
}

/// The test domain `example.test` with a TXT record and a policy host, both changeable.
pub(crate) struct Fx {
    pub(crate) w: World,
    pub(crate) host: PolicyHost,
    txt: Option<String>,
}

impl Fx {
    /// `example.test` with `v=STSv1; id=1` and the given policy.
    pub(crate) async fn new(policy: &str) -> Self {
        let w = World::new().await;
        let cert = w.pki.issue("mta-sts.example.test", Defect::Valid).unwrap();
        Self::with_host(w, cert.server_config, policy).await
    }

    pub(crate) async fn with_cert(defect: Defect, policy: &str) -> Self {
        let w = World::new().await;
        let cert = w.pki.issue("mta-sts.example.test", defect).unwrap();
        Self::with_host(w, cert.server_config, policy).await
    }

    async fn with_host(w: World, tls: std::sync::Arc<rustls::ServerConfig>, policy: &str) -> Self {
        let addr = SocketAddr::new(IpAddr::V4(w.ip(2, 1)), w.https_port);
        let host = PolicyHost::start(addr, tls, HttpResponse::policy(policy.to_owned()))
            .await
            .unwrap();
        let mut fx = Self { w, host, txt: None };
        fx.set_txt(Some("v=STSv1; id=1"));
        fx
    }

    /// Publishes `_mta-sts` as `txt`, or removes it.
    pub(crate) fn set_txt(&mut self, txt: Option<&str>) {
        self.txt = txt.map(str::to_owned);
        // TTL 0 everywhere (and an SOA minimum of 0 for negative answers): the stub resolver's
        // own cache runs on the real clock, which the tests do not advance.
        let mut zone = format!(
            "@ 0 IN SOA ns.example.test. hostmaster.example.test. 1 60 60 60 0\n\
             mta-sts 0 IN A {}\n",
            self.w.ip(2, 1)
        );
        if let Some(t) = &self.txt {
            zone.push_str(&format!("_mta-sts 0 IN TXT \"{t}\"\n"));
        }
        self.w.dns.set_zone("example.test.", &zone).unwrap();
    }

    pub(crate) fn set_policy(&self, response: HttpResponse) {
        self.host.set_response(response);
    }

    pub(crate) fn fetches(&self) -> usize {
        self.host.requests()
    }

    pub(crate) fn engine(&self, settings: Settings, reply: ReplySettings) -> Engine {
        self.engine_with(settings, zones(reply), None)
    }

    /// The network side pointed at this test internet.
    pub(crate) fn net(&self) -> Net {
        let dns = Resolver::new(&ResolverSettings {
            nameservers: vec![self.w.dns.addr()],
            timeout: Some(Duration::from_millis(500)),
            ..ResolverSettings::default()
        })
        .unwrap();
        Net {
            dns,
            tls: TlsProbeConfig::with_roots(self.w.pki.root_store()).with_now(self.w.pki.now()),
            fetch: FetchSettings {
                port: self.w.https_port,
                timeout: Duration::from_secs(2),
                ..FetchSettings::default()
            },
        }
    }

    pub(crate) fn engine_with(
        &self,
        settings: Settings,
        zones: HashMap<String, Zone>,
        store: Option<mpsc::UnboundedSender<CacheOp>>,
    ) -> Engine {
        Engine::with_store(self.net(), settings, zones, store)
    }
}

pub(crate) fn zones(reply: ReplySettings) -> HashMap<String, Zone> {
    HashMap::from([(
        "postfix".to_owned(),
        Zone {
            reply,
            overrides: HashMap::new(),
        },
    )])
}

/// Postfix 3.10.5 replies (with the TLSRPT attributes).
pub(crate) fn v310() -> ReplySettings {
    ReplySettings {
        postfix: PostfixVersion::new(3, 10, 5),
        ..ReplySettings::default()
    }
}

/// Postfix 3.7 replies (no TLSRPT attributes).
pub(crate) fn v37() -> ReplySettings {
    ReplySettings::default()
}

/// Short budgets so failures show quickly.
pub(crate) fn quick() -> Settings {
    Settings {
        miss_wait: Duration::from_secs(5),
        // DANE has its own tests (dane.rs), on a world with a trust anchor.
        dane: false,
        ..Settings::default()
    }
}

/// Jumps the clock forward by `d` (paused clock), then lets it run again.
pub(crate) async fn advance(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

/// Waits (real time, bounded) until the engine has finished `n` refreshes in all.
pub(crate) async fn refreshes(engine: &Engine, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.stats().refreshes() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} refreshes finished",
            engine.stats().refreshes()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) const ENFORCE_37: &str =
    "secure match=mx1.example.test:.mx.example.test servername=hostname";
