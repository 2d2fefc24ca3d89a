//! A real authoritative server, knotd (Knot DNS, Debian's `knot` package), on loopback: the
//! other end for the RFC 2136 dynamic-update client, where our own [`crate::dns`] server would
//! only test us against ourselves.
//!
//! Each [`Knot`] runs its own `knotd -c <conf>` in the foreground, as the current user (no
//! privilege drop), with its configuration, zone files, journal, PID file and control socket in
//! a temporary directory of its own, on its own 127.53.x.y address and a free port (UDP and
//! TCP). Zones take updates signed with one TSIG key ([`Updates::Key`]), refuse that key
//! ([`Updates::Denied`]: knot answers NOTAUTH with TSIG error BADKEY), or take no updates at all
//! ([`Updates::Off`]: NOTAUTH). The process is killed when the handle is dropped.
//!
//! `tests/e2e/knot/install.sh` installs knotd. When it is missing, [`Knot::start`] says `SKIP`
//! on stderr and returns `None`; with `CI=true` it panics instead, since CI must not skip.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where Debian installs the server.
pub const KNOTD: &str = "/usr/sbin/knotd";

/// How long knotd may take to answer for every zone (it takes about 50 ms).
const READY_WITHIN: Duration = Duration::from_secs(5);

/// Who may update a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updates {
    /// Updates signed with the harness's TSIG key.
    Key,
    /// An ACL that denies the key: knot answers NOTAUTH with TSIG error BADKEY.
    Denied,
    /// No update ACL: updates are refused (NOTAUTH), signed or not.
    Off,
}

/// One zone for [`Knot::start_zones`].
#[derive(Debug, Clone, Copy)]
pub struct Zone<'a> {
    /// The origin, e.g. `example.test` (with or without the final dot).
    pub origin: &'a str,
    /// Zone-file text relative to the origin (`$ORIGIN` and `$TTL 300` come first). A SOA and
    /// an NS record (naming `ns.invalid.`) are added at the apex when the text has no SOA.
    pub text: &'a str,
    /// Who may update it.
    pub updates: Updates,
}

/// A TSIG key as knot's configuration spells it: (name, algorithm, base64 secret), e.g.
/// `("update.example.test", "hmac-sha256", "c2VjcmV0...")`.
pub type KnotKey<'a> = (&'a str, &'a str, &'a str);

/// Why the harness could not start knotd.
#[derive(Debug, thiserror::Error)]
pub enum KnotError {
    /// A zone or key does not fit in knot's configuration.
    #[error("knot harness: {0}")]
    Config(String),
    /// The temporary directory, a file in it, or the process could not be made.
    #[error("knot harness: {0}")]
    Io(#[from] std::io::Error),
    /// knotd exited or did not answer in time; its log says why.
    #[error("knotd did not start: {why}\n--- knotd log ---\n{log}")]
    Start {
        /// What the harness saw.
        why: String,
        /// What knotd wrote.
        log: String,
    },
}

/// A running knotd; killed on drop.
#[derive(Debug)]
pub struct Knot {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Knot {
    /// knotd serving one zone, `zone` with `zone_text` (see [`Zone::text`]), which takes
    /// updates signed with `key` when there is one ([`Updates::Key`]), and none otherwise.
    /// `None` (after a `SKIP` line on stderr) when knotd is not installed.
    ///
    /// # Panics
    /// When knotd is not installed and `CI=true`.
    pub async fn start(
        zone: &str,
        zone_text: &str,
        key: Option<KnotKey<'_>>,
    ) -> Result<Option<Self>, KnotError> {
        let updates = if key.is_some() {
            Updates::Key
        } else {
            Updates::Off
        };
        let zone = Zone {
            origin: zone,
            text: zone_text,
            updates,
        };
        Self::start_zones(&[zone], key).await
    }

    /// knotd serving every zone of `zones`, with `key` for those that name it. Returns once
    /// knotd answers a SOA query for each zone. `None` as for [`Knot::start`].
    ///
    /// # Panics
    /// When knotd is not installed and `CI=true`.
    pub async fn start_zones(
        zones: &[Zone<'_>],
        key: Option<KnotKey<'_>>,
    ) -> Result<Option<Self>, KnotError> {
        if !Path::new(KNOTD).exists() {
            skip_or_fail();
            return Ok(None);
        }
        let dir = tempfile::Builder::new().prefix("knot-").tempdir()?;
        let origins = write_zones(dir.path(), zones, key)?;
        let mut last = None;
        // A port found free can be taken before knotd binds it (another test, another
        // harness): knotd then exits at once, and we try another.
        for _ in 0..5 {
            let addr = free_addr()?;
            match launch(&dir, addr, zones, key, &origins).await {
                Ok(child) => return Ok(Some(Self { child, addr, dir })),
                Err(Launch::PortTaken(e)) => last = Some(e),
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| KnotError::Config("no free port".into())))
    }

    /// Where knotd listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What knotd has logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip_or_fail() {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {KNOTD} is not installed (tests/e2e/knot/install.sh): the knot tests cannot run"
    );
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("knot test");
    #[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
    {
        eprintln!("SKIP {test} (knot): {KNOTD} is not installed; run tests/e2e/knot/install.sh");
    }
}

enum Launch {
    PortTaken(KnotError),
    Failed(KnotError),
}

/// Writes `knot.conf` for `addr` and starts knotd; waits until it answers for every origin.
async fn launch(
    dir: &tempfile::TempDir,
    addr: SocketAddr,
    zones: &[Zone<'_>],
    key: Option<KnotKey<'_>>,
    origins: &[Name],
) -> Result<Child, Launch> {
    let io = |e: std::io::Error| Launch::Failed(e.into());
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let identity = format!(
        "harness-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let conf = dir.path().join("knot.conf");
    std::fs::write(&conf, config(dir.path(), addr, &identity, zones, key)).map_err(io)?;
    let log_path = dir.path().join("knotd.log");
    let log = File::create(&log_path).map_err(io)?;
    let mut child = Command::new(KNOTD)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log)
        .spawn()
        .map_err(io)?;
    let started = Instant::now();
    let fail = |why: String| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("address already in use") {
            Launch::PortTaken(KnotError::Start { why, log })
        } else {
            Launch::Failed(KnotError::Start { why, log })
        }
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!("knotd exited ({status})")));
        }
        // The identity check makes sure the answers come from this knotd, not another one that
        // took the port first.
        if answers(addr, &identity, origins).await {
            return Ok(child);
        }
        if started.elapsed() > READY_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("no answer within {READY_WITHIN:?}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether knotd at `addr` is ours (its `id.server` is `identity`) and serves every origin.
async fn answers(addr: SocketAddr, identity: &str, origins: &[Name]) -> bool {
    let id_server = Name::from_ascii("id.server.").expect("a name");
    let Some(id) = query(addr, id_server, DNSClass::CH, RecordType::TXT).await else {
        return false;
    };
    let ours = id.answers.iter().any(|r| match &r.data {
        RData::TXT(txt) => txt.txt_data.concat() == identity.as_bytes(),
        _ => false,
    });
    if !ours {
        return false;
    }
    for origin in origins {
        let soa = query(addr, origin.clone(), DNSClass::IN, RecordType::SOA).await;
        match soa {
            Some(m)
                if m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty() => {}
            _ => return false,
        }
    }
    true
}

/// One query over TCP, `None` on any failure (the server may not be up yet).
async fn query(
    addr: SocketAddr,
    name: Name,
    class: DNSClass,
    rtype: RecordType,
) -> Option<Message> {
    let mut m = Message::query();
    let mut q = Query::query(name, rtype);
    q.set_query_class(class);
    m.add_query(q);
    let id = m.metadata.id;
    let bytes = m.to_vec().ok()?;
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let len = u16::try_from(bytes.len()).ok()?;
        s.write_all(&len.to_be_bytes()).await.ok()?;
        s.write_all(&bytes).await.ok()?;
        let mut prefix = [0u8; 2];
        s.read_exact(&mut prefix).await.ok()?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        s.read_exact(&mut answer).await.ok()?;
        Message::from_vec(&answer).ok()
    };
    let answer = tokio::time::timeout(Duration::from_millis(300), exchange)
        .await
        .ok()??;
    (answer.metadata.id == id && answer.metadata.message_type == MessageType::Response)
        .then_some(answer)
}

/// A free UDP+TCP port on an address of our own, 127.53.x.y.
fn free_addr() -> std::io::Result<SocketAddr> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mix = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(40_503))
        ^ nanos;
    let ip = Ipv4Addr::new(127, 53, (mix % 250) as u8 + 1, ((mix >> 8) % 250) as u8 + 1);
    for _ in 0..20 {
        let tcp = std::net::TcpListener::bind((ip, 0))?;
        let addr = tcp.local_addr()?;
        if std::net::UdpSocket::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(std::io::Error::other(format!(
        "no port free for both UDP and TCP on {ip}"
    )))
}

/// Writes one zone file per zone (`zone<i>.zone`); returns the origins.
fn write_zones(
    dir: &Path,
    zones: &[Zone<'_>],
    key: Option<KnotKey<'_>>,
) -> Result<Vec<Name>, KnotError> {
    if zones.is_empty() {
        return Err(KnotError::Config("no zone to serve".into()));
    }
    let mut origins = Vec::with_capacity(zones.len());
    for (i, zone) in zones.iter().enumerate() {
        plain(zone.origin)?;
        if zone.updates != Updates::Off && key.is_none() {
            return Err(KnotError::Config(format!(
                "zone {:?} names the key, but there is none",
                zone.origin
            )));
        }
        let mut origin = Name::from_ascii(zone.origin)
            .map_err(|e| KnotError::Config(format!("zone {:?}: {e}", zone.origin)))?;
        origin.set_fqdn(true);
        let mut text = format!("$ORIGIN {origin}\n$TTL 300\n");
        if !zone
            .text
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("SOA"))
        {
            text.push_str("@ SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 300\n");
            text.push_str("@ NS ns.invalid.\n");
        }
        text.push_str(zone.text);
        text.push('\n');
        std::fs::write(dir.join(format!("zone{i}.zone")), text)?;
        origins.push(origin);
    }
    if let Some((name, algorithm, secret)) = key {
        for part in [name, algorithm, secret] {
            plain(part)?;
        }
    }
    Ok(origins)
}

/// Refuses what would break out of a quoted configuration value.
fn plain(value: &str) -> Result<(), KnotError> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(KnotError::Config(format!(
            "{value:?} cannot go in knot.conf"
        )));
    }
    Ok(())
}

/// knot.conf: everything under `dir`, one worker of each kind, updates as each zone says.
fn config(
    dir: &Path,
    addr: SocketAddr,
    identity: &str,
    zones: &[Zone<'_>],
    key: Option<KnotKey<'_>>,
) -> String {
    let d = dir.display();
    let ip = addr.ip();
    let mut c = format!(
        "server:\n    identity: \"{identity}\"\n    rundir: \"{d}\"\n    listen: {ip}@{port}\n    \
         udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         control:\n    listen: \"{d}/knot.sock\"\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}\"\n",
        port = addr.port(),
    );
    if let Some((name, algorithm, secret)) = key {
        c.push_str(&format!(
            "key:\n  - id: \"{name}\"\n    algorithm: {algorithm}\n    secret: \"{secret}\"\n\
             acl:\n  - id: update_by_key\n    key: \"{name}\"\n    action: update\n\
             \x20 - id: deny_key\n    key: \"{name}\"\n    action: update\n    deny: on\n"
        ));
    }
    // The zone file is never rewritten (the journal keeps the updates), so what a test reads
    // back comes from the server, not from a file it wrote.
    c.push_str(&format!(
        "template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
         zonefile-load: whole\n    journal-content: changes\nzone:\n"
    ));
    for (i, zone) in zones.iter().enumerate() {
        c.push_str(&format!(
            "  - domain: \"{}\"\n    file: \"zone{i}.zone\"\n",
            zone.origin
        ));
        match zone.updates {
            Updates::Key => c.push_str("    acl: update_by_key\n"),
            Updates::Denied => c.push_str("    acl: deny_key\n"),
            Updates::Off => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: KnotKey<'static> = ("k.test", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0");

    #[tokio::test]
    async fn two_harnesses_run_side_by_side_and_stop_when_dropped() {
        let (a, b) = tokio::join!(
            Knot::start("a.test", "www A 127.0.0.1", Some(KEY)),
            Knot::start("b.test", "", None),
        );
        let (Some(a), Some(b)) = (a.unwrap(), b.unwrap()) else {
            return;
        };
        assert_ne!(a.addr(), b.addr());
        let a_test = Name::from_ascii("a.test.").unwrap();
        let b_test = Name::from_ascii("b.test.").unwrap();
        let soa = |addr, name| query(addr, name, DNSClass::IN, RecordType::SOA);
        let from_b = soa(b.addr(), a_test.clone()).await.expect("b answers");
        assert_eq!(
            from_b.metadata.response_code,
            ResponseCode::Refused,
            "b does not serve a.test"
        );
        assert!(
            soa(b.addr(), b_test)
                .await
                .is_some_and(|m| !m.answers.is_empty())
        );
        let addr = a.addr();
        drop(a);
        assert!(
            soa(addr, a_test).await.is_none(),
            "knotd is gone with its handle"
        );
    }

    #[tokio::test]
    async fn a_taken_port_is_reported_as_such() {
        if !Path::new(KNOTD).exists() {
            return;
        }
        let dir = tempfile::Builder::new().prefix("knot-").tempdir().unwrap();
        let zones = [Zone {
            origin: "c.test",
            text: "",
            updates: Updates::Off,
        }];
        let origins = write_zones(dir.path(), &zones, None).unwrap();
        let taken = std::net::TcpListener::bind(free_addr().unwrap()).unwrap();
        let addr = taken.local_addr().unwrap();
        match launch(&dir, addr, &zones, None, &origins).await {
            Err(Launch::PortTaken(e)) => {
                assert!(e.to_string().contains("address already in use"), "{e}");
            }
            Err(Launch::Failed(e)) => panic!("not seen as a taken port: {e}"),
            Ok(mut child) => {
                let _ = child.kill();
                panic!("knotd started on a taken port");
            }
        }
    }

    #[test]
    fn what_cannot_go_in_the_configuration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let zone = |origin, updates| {
            [Zone {
                origin,
                text: "",
                updates,
            }]
        };
        let write = |zones: &[Zone<'_>], key| write_zones(dir.path(), zones, key);
        assert!(write(&zone("ok.test", Updates::Key), Some(KEY)).is_ok());
        assert!(matches!(
            write(&zone("ok.test", Updates::Key), None),
            Err(KnotError::Config(_))
        ));
        assert!(matches!(
            write(&zone("x\"y.test", Updates::Off), None),
            Err(KnotError::Config(_))
        ));
        let bad_key = ("k.test", "hmac-sha256", "abc\"\n");
        assert!(matches!(
            write(&zone("ok.test", Updates::Key), Some(bad_key)),
            Err(KnotError::Config(_))
        ));
        assert!(matches!(write(&[], None), Err(KnotError::Config(_))));
        let text = std::fs::read_to_string(dir.path().join("zone0.zone")).unwrap();
        assert!(
            text.starts_with("$ORIGIN ok.test.\n$TTL 300\n@ SOA ns.invalid."),
            "{text}"
        );
    }
}
