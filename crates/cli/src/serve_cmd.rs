//! `mtasts serve`: hosts MTA-STS policies (HTTPS, port 80, admin API) from the store.
//!
//! Layers, later winning: the defaults, `--config FILE`, `MTASTS_SERVE__<KEY>` environment
//! variables (`MTASTS_SERVE__LIMITS__IDLE_TIMEOUT=7`), `--set KEY=VALUE`, then the named flags
//! (each also an environment variable, e.g. `MTASTS_STORE`). Every option of the file is thus
//! a flag and a variable; docs/serve.md lists them.

use anyhow::{Context, Result};
use clap::Args;
use mtasts_server::config::{ServeConfig, override_value};
use mtasts_server::daemon;

/// Options of `mtasts serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The store: `sqlite:PATH` (created on first run) or `postgres://...`.
    #[arg(long, env = "MTASTS_STORE", value_name = "URL")]
    store: Option<String>,
    /// The key sealing private keys (64 hex digits; `store.key`): required for PostgreSQL, the
    /// same on every instance and for `mtasts domain|token --store`. Best given by the
    /// environment.
    #[arg(
        long,
        env = "MTASTS_STORE_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    store_key: Option<String>,
    /// The HTTPS policy listener.
    #[arg(long, env = "MTASTS_HTTPS", value_name = "IP:PORT")]
    https: Option<String>,
    /// The plain HTTP listener (port 80: ACME HTTP-01, 404 otherwise); `none` for no listener.
    #[arg(long, env = "MTASTS_HTTP", value_name = "IP:PORT")]
    http: Option<String>,
    /// The SMTP receiver for TLS-RPT report mail (`smtp.listen`); absent: none.
    #[arg(long, env = "MTASTS_SMTP", value_name = "IP:PORT")]
    smtp: Option<String>,
    /// The admin API listener (also `/metrics` and `/health`).
    #[arg(long, env = "MTASTS_ADMIN", value_name = "IP:PORT")]
    admin: Option<String>,
    /// DNS server for the drift checker, IP or IP:PORT (repeatable); default: the system's.
    #[arg(
        long = "nameserver",
        env = "MTASTS_NAMESERVER",
        value_delimiter = ',',
        value_name = "IP[:PORT]"
    )]
    nameservers: Vec<String>,
    /// The ACME CA's directory URL: certificates for every hosted `mta-sts.<domain>` are then
    /// obtained and renewed by the server (`acme.directory`).
    #[arg(long, env = "MTASTS_ACME_DIRECTORY", value_name = "URL")]
    acme_directory: Option<String>,
    /// A PEM file of roots trusted for the ACME server's own API (Pebble's), beside the
    /// Mozilla roots (`acme.root`).
    #[arg(long, env = "MTASTS_ACME_ROOT", value_name = "PEM")]
    acme_root: Option<String>,
    /// Contact e-mail for the ACME account (repeatable; `acme.contact`).
    #[arg(
        long,
        env = "MTASTS_ACME_CONTACT",
        value_delimiter = ',',
        value_name = "EMAIL"
    )]
    acme_contact: Vec<String>,
    /// An address `mta-sts.<domain>` must resolve to before a certificate is ordered
    /// (repeatable; `hosting.public_addresses`).
    #[arg(
        long = "public-address",
        env = "MTASTS_PUBLIC_ADDRESS",
        value_delimiter = ',',
        value_name = "IP"
    )]
    public_addresses: Vec<String>,
    /// The name `mta-sts.<domain>` may be a CNAME to instead (`hosting.cname_target`).
    #[arg(long, env = "MTASTS_CNAME_TARGET", value_name = "NAME")]
    cname_target: Option<String>,
    /// The TOML configuration file (docs/serve.md).
    #[arg(long, env = "MTASTS_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Any option of the file, as a dotted key: `--set limits.idle_timeout=7` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
    /// Log format: `text` or `json` (to standard error).
    #[arg(long, env = "MTASTS_LOG", default_value = "text", value_parser = ["text", "json"])]
    log: String,
    /// Worker threads; default one per usable CPU.
    #[arg(long, env = "MTASTS_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.trim().to_owned(), v.to_owned()))
}

impl ServeArgs {
    fn config(&self) -> Result<ServeConfig> {
        let file = match &self.config {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the configuration {}", p.display()))?,
            ),
            None => None,
        };
        let mut layers = crate::store_cmd::env_overrides();
        layers.extend(self.set.iter().map(|(k, v)| (k.clone(), override_value(v))));
        let s = |v: &str| toml::Value::String(v.to_owned());
        let named = [
            ("store.url", self.store.as_deref()),
            ("store.key", self.store_key.as_deref()),
            ("https", self.https.as_deref()),
            ("admin", self.admin.as_deref()),
            ("smtp.listen", self.smtp.as_deref()),
            ("acme.directory", self.acme_directory.as_deref()),
            ("acme.root", self.acme_root.as_deref()),
            ("hosting.cname_target", self.cname_target.as_deref()),
        ];
        for (key, v) in named {
            if let Some(v) = v {
                layers.push((key.into(), s(v)));
            }
        }
        match self.http.as_deref() {
            // "none" turns the port-80 listener off (absent, it is `[::]:80`).
            Some("none") => layers.push(("http".into(), s("none"))),
            Some(v) => layers.push(("http".into(), s(v))),
            None => {}
        }
        let lists = [
            ("acme.contact", &self.acme_contact),
            ("hosting.public_addresses", &self.public_addresses),
        ];
        for (key, list) in lists {
            if !list.is_empty() {
                let list = list.iter().map(|v| s(v)).collect();
                layers.push((key.into(), toml::Value::Array(list)));
            }
        }
        if !self.nameservers.is_empty() {
            let list = self.nameservers.iter().map(|n| s(n)).collect();
            layers.push(("check.nameservers".into(), toml::Value::Array(list)));
        }
        Ok(ServeConfig::layered(file.as_deref(), &layers)?)
    }
}

pub(crate) fn run(args: ServeArgs) -> Result<u8> {
    let mut config = args.config()?;
    mtasts_server::service::init_logs(args.log == "json");
    config.metrics = daemon::install_metrics();
    let threads = args
        .threads
        .map_or_else(crate::runtime::usable_cpus, usize::from);
    let runtime = crate::runtime::with_threads(threads)?;
    runtime.block_on(async {
        let (control, shutdown) = mtasts_server::service::channel();
        // Past the drain's grace (and a margin for the store), or at a second SIGTERM/SIGINT,
        // the process exits without waiting longer: a stop is bounded.
        let hard = config.grace + std::time::Duration::from_secs(10);
        let mut daemon = tokio::spawn(daemon::run(config, shutdown));
        tokio::select! {
            signals = control.forward_signals() => {
                signals.context("cannot watch signals")?;
                tokio::select! {
                    done = &mut daemon => done.context("the server panicked")??,
                    () = tokio::time::sleep(hard) => {
                        eprintln!("mtasts: the server did not stop within {} s: exiting", hard.as_secs());
                        std::process::exit(i32::from(crate::EXIT_FINDINGS));
                    }
                    () = second_signal() => {
                        eprintln!("mtasts: a second stop signal: exiting without draining");
                        std::process::exit(i32::from(crate::EXIT_FINDINGS));
                    }
                }
            }
            done = &mut daemon => done.context("the server panicked")??,
        }
        Ok(crate::EXIT_OK)
    })
}

/// Resolves at the next SIGTERM or SIGINT (never, if the handlers cannot be installed).
async fn second_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
