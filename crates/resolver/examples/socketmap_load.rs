//! A socketmap load generator that behaves like Postfix (docs/requirements.md §4.5).
//!
//! `C` persistent connections, each with one request in flight at a time (as each smtp(8)
//! process has), reconnecting once on EOF as `dict_sockmap.c` does. Keys come from a file (one a
//! line) or are generated as Postfix would send them for a mix of deliveries, with Zipf-like
//! popularity: domains with a policy (`pN.example.com`, one lookup), domains without one
//! (`nN.example.net`, then the parent probes `.example.net` and `.net`), IDN domains
//! (`bücherN.example`, then `.example`) and bracketed next-hops (`[mxN.example.org]:587`, one
//! lookup). The run stops at `--requests` requests or `--duration` seconds, whichever comes
//! first, and reports requests/s, latency percentiles, reply statuses and errors, optionally
//! the server process's CPU time per request (`--pid`, from `/proc/PID/stat`) and the tool's own,
//! as text and as one JSON line (the last line of output) for scripts comparing runs.
//!
//! The tool is kept cheap per request, since it shares a CPU with the servers under test in the
//! benchmarks: a single-threaded runtime by default, key files encoded once, one timer per
//! connection for the whole run, replies classified without copying.
//!
//! ```sh
//! # against a running server
//! cargo run --release -p mtasts-resolver --example socketmap_load -- \
//!     --addr 127.0.0.1:8461 -c 100 --requests 200000 --duration 30 --pid "$(pidof mtasts)"
//! # against a trivial in-process server (a smoke test of the tool and the protocol layer)
//! cargo run --release -p mtasts-resolver --example socketmap_load -- -c 8 --requests 100000
//! # the trivial server alone in another process, to measure its CPU per request (with --reply,
//! # one fixed reply for every key: the protocol layer's floor; bench/resolver/floor.py)
//! socketmap_load --serve 127.0.0.1:8461 --duration 60 --reply 'secure match=.example.com' &
//! socketmap_load --addr 127.0.0.1:8461 -c 32 --duration 20 --pid $!
//! ```

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool: the report goes to stdout"
)]

use anyhow::{Context, bail};
use bytes::BytesMut;
use clap::Parser;
use mtasts_resolver::proto::netstring::NetstringCodec;
use mtasts_resolver::proto::{Limits, ListenAddr, socketmap};
use mtasts_resolver::{Handler, Reply};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Postfix-like socketmap load generator")]
struct Args {
    /// Server address: IP:PORT, [IPv6]:PORT or unix:/PATH. Without it, a trivial in-process
    /// server is started (and --pid defaults to this process).
    #[arg(long)]
    addr: Option<String>,
    /// The socketmap name sent with every key.
    #[arg(long, default_value = "postfix")]
    name: String,
    /// Persistent connections (each with one request in flight).
    #[arg(short = 'c', long, default_value_t = 8)]
    connections: usize,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Keys to send, one a line, in order (each connection starts at its own offset).
    #[arg(long)]
    keys: Option<std::path::PathBuf>,
    /// Generated mix: number of distinct domains per kind.
    #[arg(long, default_value_t = 10_000)]
    domains: u64,
    /// Seed of the generated mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A server process whose CPU time per request to report (Linux /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// Runtime threads of this process (the clients, or the server with --serve): 1 is tokio's
    /// single-threaded runtime, the cheapest per request.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    /// Run no load: serve the trivial table on this address for --duration seconds, so a load
    /// run in another process can measure it alone (with --pid).
    #[arg(long, conflicts_with = "addr")]
    serve: Option<String>,
    /// The trivial table answers every lookup `OK TEXT` (one fixed reply: the protocol layer's
    /// floor) instead of `OK secure match=...` for `pN.example.com` and `NOTFOUND` otherwise.
    #[arg(long, value_name = "TEXT")]
    reply: Option<String>,
}

/// xorshift64*: a small deterministic generator, so runs with the same seed send the same keys.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A rank in [0, n) with probability roughly proportional to 1/(rank+1) (Zipf, s = 1).
    fn zipf(&mut self, n: u64) -> u64 {
        let r = ((n as f64 + 1.0).ln() * self.unit()).exp() as u64;
        r.saturating_sub(1).min(n.saturating_sub(1))
    }
}

/// Where a connection's requests come from.
#[derive(Debug, Clone)]
enum Keys {
    /// A file's keys, encoded once as requests, starting at an offset.
    List(Arc<Vec<Vec<u8>>>, usize),
    /// The generated delivery mix; `pending` holds the rest of the current delivery's probes.
    Mix {
        rng: Rng,
        domains: u64,
        pending: Vec<String>,
    },
}

impl Keys {
    /// The next request (a netstring), encoded into `buf` unless it was encoded in advance.
    fn next<'a>(&'a mut self, name: &str, buf: &'a mut BytesMut) -> &'a [u8] {
        match self {
            Self::List(list, at) => {
                let request = &list[*at % list.len()];
                *at += 1;
                request
            }
            Self::Mix {
                rng,
                domains,
                pending,
            } => {
                if pending.is_empty() {
                    let kind = rng.unit();
                    let i = rng.zipf(*domains);
                    // Keys of one delivery, in reverse order (popped from the end).
                    *pending = if kind < 0.30 {
                        vec![format!("p{i}.example.com")]
                    } else if kind < 0.80 {
                        vec![
                            ".net".into(),
                            ".example.net".into(),
                            format!("n{i}.example.net"),
                        ]
                    } else if kind < 0.90 {
                        vec![".example".into(), format!("bücher{i}.example")]
                    } else {
                        vec![format!("[mx{i}.example.org]:587")]
                    };
                }
                let key = pending.pop().unwrap_or_default();
                buf.clear();
                socketmap::encode_request(name, &key, buf);
                buf
            }
        }
    }
}

/// A client connection over TCP or a unix socket.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn connect(addr: &ListenAddr) -> std::io::Result<Box<dyn Stream>> {
    Ok(match addr {
        ListenAddr::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
        ListenAddr::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
    })
}

/// Per-connection tallies.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ok: u64,
    notfound: u64,
    temp: u64,
    timeout: u64,
    perm: u64,
    malformed: u64,
    io_errors: u64,
    reconnects: u64,
}

/// A reply's status.
#[derive(Debug, Clone, Copy)]
enum Status {
    Ok,
    NotFound,
    Temp,
    Timeout,
    Perm,
}

/// The status of a reply payload, checked as [`socketmap::parse_reply`] checks it (UTF-8, a
/// known status, data after `OK`) but without copying the text.
fn classify(payload: &[u8]) -> Result<Status, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "reply is not UTF-8".to_owned())?;
    let (status, rest) = text.split_once(' ').unwrap_or((text, ""));
    match status {
        "OK" if rest.is_empty() => Err("OK reply without data".into()),
        "OK" => Ok(Status::Ok),
        "NOTFOUND" => Ok(Status::NotFound),
        "TEMP" => Ok(Status::Temp),
        "TIMEOUT" => Ok(Status::Timeout),
        "PERM" => Ok(Status::Perm),
        _ => Err(format!(
            "unknown reply status in {:?}",
            text.chars().take(40).collect::<String>()
        )),
    }
}

/// One request/reply exchange on `conn`; `Err` on I/O trouble or EOF.
async fn exchange(
    conn: &mut Box<dyn Stream>,
    request: &[u8],
    buf: &mut BytesMut,
    codec: &NetstringCodec,
) -> anyhow::Result<Result<Status, String>> {
    conn.write_all(request).await?;
    buf.clear();
    loop {
        match codec.frame(buf) {
            Ok(Some((payload, _))) => return Ok(classify(&buf[payload])),
            Ok(None) => {}
            Err(e) => return Ok(Err(e.to_string())),
        }
        if conn.read_buf(buf).await? == 0 {
            bail!("server closed the connection");
        }
    }
}

/// One Postfix-like client: requests until the shared budget or the deadline runs out.
async fn client(
    addr: ListenAddr,
    name: String,
    mut keys: Keys,
    issued: Arc<AtomicU64>,
    max: u64,
    deadline: Instant,
) -> Tally {
    let mut t = Tally::default();
    let mut conn = None;
    let codec = NetstringCodec::new(200_000);
    let mut buf = BytesMut::with_capacity(4096);
    let mut scratch = BytesMut::new();
    // One timer for the whole run (not one per request: the tool shares a CPU with the servers
    // under test, so its own cost per request is kept small).
    let end = tokio::time::sleep_until(deadline.into());
    tokio::pin!(end);
    while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
        let request = keys.next(&name, &mut scratch);
        let started = Instant::now();
        // Like dict_sockmap.c: on EOF or an I/O error, reconnect once and retry the request.
        let mut reply = None;
        for attempt in 0..2 {
            if conn.is_none() {
                conn = connect(&addr).await.ok();
            }
            let Some(c) = conn.as_mut() else { continue };
            let result = tokio::select! {
                biased;
                r = exchange(c, request, &mut buf, &codec) => r,
                () = &mut end => return t,
            };
            match result {
                Ok(r) => {
                    reply = Some(r);
                    break;
                }
                Err(_) => {
                    conn = None;
                    if attempt == 0 {
                        t.reconnects += 1;
                    }
                }
            }
        }
        let elapsed = started.elapsed();
        match reply {
            None => t.io_errors += 1,
            Some(Err(_)) => t.malformed += 1,
            Some(Ok(status)) => {
                t.latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                match status {
                    Status::Ok => t.ok += 1,
                    Status::NotFound => t.notfound += 1,
                    Status::Temp => t.temp += 1,
                    Status::Timeout => t.timeout += 1,
                    Status::Perm => t.perm += 1,
                }
            }
        }
    }
    t
}

/// CPU time of `pid` in seconds: user (utime) and kernel (stime) (`/proc/PID/stat` fields 14
/// and 15, in USER_HZ = 100 ticks per second on Linux).
fn cpu_seconds(pid: u32) -> anyhow::Result<[f64; 2]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<u64>()? as f64)
    };
    // `rest` starts at field 3 (state), so field 14 is index 11.
    Ok([ticks(11)? / 100.0, ticks(12)? / 100.0])
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/PID/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The trivial in-process server's table: `pN.example.com` has a policy, nothing else does; or
/// one fixed `OK` reply for every key.
#[derive(Debug)]
struct Trivial(Option<String>);

impl Handler for Trivial {
    async fn lookup(&self, _name: &str, key: &str) -> Reply {
        if let Some(fixed) = &self.0 {
            return Reply::Ok(fixed.clone());
        }
        match key.strip_suffix(".example.com") {
            Some(d) if d.starts_with('p') && !d.contains('.') => {
                Reply::Ok(format!("secure match=mx1.{key}:.{key} servername=hostname"))
            }
            _ => Reply::NotFound,
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(run(args))
}

/// `--serve`: the trivial table on `addr` for `duration`, then a graceful stop.
async fn serve_only(addr: &str, duration: Duration, table: Trivial) -> anyhow::Result<()> {
    let listener = addr.parse::<ListenAddr>()?.bind().await?;
    println!("serving the trivial table on {}", listener.local_addr()?);
    let stop = tokio::time::sleep(duration);
    socketmap::serve(listener, Arc::new(table), Limits::socketmap(), stop).await?;
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(addr) = &args.serve {
        let table = Trivial(args.reply.clone());
        return serve_only(addr, Duration::from_secs_f64(args.duration.max(0.0)), table).await;
    }
    let (addr, pid, server) = match &args.addr {
        Some(a) => (a.parse::<ListenAddr>()?, args.pid, None),
        None => {
            let listener = "127.0.0.1:0".parse::<ListenAddr>()?.bind().await?;
            let addr = listener.local_addr()?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(socketmap::serve(
                listener,
                Arc::new(Trivial(args.reply.clone())),
                Limits::socketmap(),
                async move {
                    let _ = rx.await;
                },
            ));
            (
                addr,
                Some(args.pid.unwrap_or_else(std::process::id)),
                Some((tx, task)),
            )
        }
    };
    let list = match &args.keys {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let keys: Vec<Vec<u8>> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(|key| {
                    let mut request = BytesMut::new();
                    socketmap::encode_request(&args.name, key, &mut request);
                    request.to_vec()
                })
                .collect();
            if keys.is_empty() {
                bail!("{} holds no keys", path.display());
            }
            Some(Arc::new(keys))
        }
        None => None,
    };
    let cpu_before = pid.map(cpu_seconds).transpose()?;
    let own_before = cpu_seconds(std::process::id())?;
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration.max(0.0));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let keys = match &list {
            Some(l) => Keys::List(Arc::clone(l), i * l.len() / args.connections),
            None => Keys::Mix {
                rng: Rng::new(args.seed.wrapping_add(i as u64)),
                domains: args.domains.max(1),
                pending: Vec::new(),
            },
        };
        clients.spawn(client(
            addr.clone(),
            args.name.clone(),
            keys,
            Arc::clone(&issued),
            args.requests,
            deadline,
        ));
    }
    let mut all = Tally::default();
    while let Some(t) = clients.join_next().await {
        let t = t?;
        all.latencies_us.extend(t.latencies_us);
        all.ok += t.ok;
        all.notfound += t.notfound;
        all.temp += t.temp;
        all.timeout += t.timeout;
        all.perm += t.perm;
        all.malformed += t.malformed;
        all.io_errors += t.io_errors;
        all.reconnects += t.reconnects;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = pid.map(cpu_seconds).transpose()?;
    let own_cpu =
        cpu_seconds(std::process::id())?.iter().sum::<f64>() - own_before.iter().sum::<f64>();
    if let Some((tx, task)) = server {
        let _ = tx.send(());
        task.await??;
    }
    all.latencies_us.sort_unstable();
    let answered = all.latencies_us.len() as u64;
    let rps = answered as f64 / wall.max(1e-9);
    let [p50, p99, p999] = [0.50, 0.99, 0.999].map(|p| percentile(&all.latencies_us, p));
    let max = all.latencies_us.last().copied().unwrap_or(0);
    let per_req = |s: f64| s * 1e6 / answered.max(1) as f64;
    // [user, kernel] seconds over the run.
    let split = cpu_before
        .zip(cpu_after)
        .map(|(b, a)| [a[0] - b[0], a[1] - b[1]]);
    let cpu = split.map(|[user, kernel]| user + kernel);
    let cpu_us_per_req = cpu.map(per_req);
    let rss = pid.and_then(rss_kib);
    let own_us_per_req = per_req(own_cpu);
    let errors = all.malformed + all.io_errors;

    println!(
        "{} requests answered in {wall:.2} s over {} connections: {rps:.0} req/s",
        answered, args.connections
    );
    println!("latency µs: p50 {p50}  p99 {p99}  p99.9 {p999}  max {max}");
    println!(
        "replies: OK {}  NOTFOUND {}  TEMP {}  TIMEOUT {}  PERM {}; errors: malformed {}  I/O {}; reconnects {}",
        all.ok,
        all.notfound,
        all.temp,
        all.timeout,
        all.perm,
        all.malformed,
        all.io_errors,
        all.reconnects
    );
    if let (Some(pid), Some(cpu), Some(per)) = (pid, cpu, cpu_us_per_req) {
        let whose = if args.addr.is_none() {
            " (in-process: client and server together)"
        } else {
            ""
        };
        let [user, kernel] = split.unwrap_or_default().map(per_req);
        println!(
            "server pid {pid}: CPU {cpu:.2} s, {per:.1} µs per request (user {user:.1}, kernel \
             {kernel:.1}){whose}, RSS {} KiB",
            rss.unwrap_or(0)
        );
    }
    println!("load tool: CPU {own_cpu:.2} s, {own_us_per_req:.1} µs per request");
    let json = serde_json::json!({
        "label": args.label,
        "addr": addr.to_string(),
        "in_process": args.addr.is_none(),
        "connections": args.connections,
        "requests": answered,
        "wall_s": wall,
        "rps": rps,
        "p50_us": p50,
        "p99_us": p99,
        "p999_us": p999,
        "max_us": max,
        "ok": all.ok,
        "notfound": all.notfound,
        "temp": all.temp,
        "timeout": all.timeout,
        "perm": all.perm,
        "errors": errors,
        "reconnects": all.reconnects,
        "server_cpu_s": cpu,
        "server_cpu_us_per_req": cpu_us_per_req,
        "server_user_us_per_req": split.map(|s| per_req(s[0])),
        "server_kernel_us_per_req": split.map(|s| per_req(s[1])),
        "server_rss_kib": rss,
        "client_cpu_us_per_req": own_us_per_req,
    });
    println!("{json}");
    Ok(())
}
