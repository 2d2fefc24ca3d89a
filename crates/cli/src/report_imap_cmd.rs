//! `mtasts report imap`: report mail read from an IMAP mailbox into the store (intake's
//! `imap` importer), once or until SIGINT/SIGTERM.
//!
//! Reports are accepted for the domains hosted in the store only (D27, D54), unless
//! `--any-domain`: the mailbox is a `rua=mailto:` address anyone can write to.

use crate::output::Format;
use crate::store_cmd::StoreArgs;
use crate::{EXIT_FINDINGS, EXIT_OK, Usage};
use anyhow::{Context as _, Result};
use clap::Args;
use mtasts_core::text::escape;
use mtasts_intake::imap::{
    DEFAULT_FOLDER, DEFAULT_PROCESSED, DEFAULT_REFUSED, DEFAULT_UNREADABLE, Folders, ImapLimits,
    ImapSettings, Importer, Round, Sorted, parse_server, read_password_file, tls_config,
};
use mtasts_intake::{Accept, Intake, Stored};
use std::path::PathBuf;
use std::time::Duration;

/// `mtasts report imap`.
#[derive(Debug, Args)]
pub(crate) struct ImapArgs {
    /// The IMAP server: HOST:PORT, implicit TLS (IMAPS is port 993).
    #[arg(long, value_name = "HOST:PORT")]
    server: String,
    /// The name the server's certificate must carry; default: HOST.
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
    /// The user to log in as.
    #[arg(long)]
    user: String,
    /// A file whose first line is the password.
    #[arg(long, value_name = "FILE")]
    password_file: PathBuf,
    /// The folder read.
    #[arg(long, default_value = DEFAULT_FOLDER, value_name = "NAME")]
    folder: String,
    /// Where mail goes once its reports are stored (created when missing).
    #[arg(long, default_value = DEFAULT_PROCESSED, value_name = "NAME")]
    processed_folder: String,
    /// Where mail without a valid report, or too large, goes.
    #[arg(long, default_value = DEFAULT_UNREADABLE, value_name = "NAME")]
    unreadable_folder: String,
    /// Where mail whose every report was refused (a domain not hosted here) goes.
    #[arg(long, default_value = DEFAULT_REFUSED, value_name = "NAME")]
    refused_folder: String,
    /// CA certificates (PEM) trusted beside the Mozilla roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// One round (up to --max-messages), a summary, and exit.
    #[arg(long)]
    once: bool,
    /// Store reports for any policy domain, not only the domains hosted in the store.
    #[arg(long)]
    any_domain: bool,
    /// Most messages taken per round.
    #[arg(long, default_value_t = ImapLimits::default().max_per_round, value_name = "N")]
    max_messages: u32,
    /// The largest message fetched (RFC822.SIZE); larger ones go to the unreadable folder
    /// unfetched.
    #[arg(long, default_value_t = ImapLimits::default().max_message, value_name = "BYTES")]
    max_message_size: u32,
    /// Seconds between rounds when the server offers no IDLE.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    poll_interval: u64,
    /// Seconds the server may stay silent while a command waits for it (60); a command may
    /// take five times this in all.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
    #[command(flatten)]
    store: StoreArgs,
}

impl ImapArgs {
    fn settings(&self) -> Result<ImapSettings> {
        let usage = |e: mtasts_intake::imap::ImapError| Usage(e.to_string());
        let (host, port) = parse_server(&self.server).map_err(usage)?;
        let password = read_password_file(&self.password_file).map_err(usage)?;
        let extra = match &self.ca_file {
            Some(p) => {
                Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
            }
            None => None,
        };
        let tls = tls_config(extra.as_deref()).map_err(usage)?;
        if self.timeout == 0 || self.poll_interval == 0 {
            return Err(Usage("--timeout and --poll-interval must be at least 1".into()).into());
        }
        let timeout = Duration::from_secs(self.timeout);
        let limits = ImapLimits {
            max_message: self.max_message_size,
            max_per_round: self.max_messages,
            read_timeout: timeout,
            command_timeout: timeout * 5,
            poll_interval: Duration::from_secs(self.poll_interval),
            ..ImapLimits::default()
        };
        Ok(ImapSettings {
            tls_name: self.tls_name.clone().unwrap_or_else(|| host.clone()),
            host,
            port,
            user: self.user.clone(),
            password,
            folders: Folders {
                source: self.folder.clone(),
                processed: self.processed_folder.clone(),
                unreadable: self.unreadable_folder.clone(),
                refused: self.refused_folder.clone(),
            },
            tls,
            limits,
        })
    }
}

/// `mtasts report imap`.
pub(crate) fn run(args: &ImapArgs, format: Format) -> Result<u8> {
    let settings = args.settings()?;
    let config = args.store.serve_config()?;
    let accept = if args.any_domain {
        Accept::Any
    } else {
        Accept::Hosted
    };
    let rt = crate::runtime::with_threads(1)?;
    rt.block_on(async {
        let store = args.store.open(&config).await?;
        let intake = Intake::new(store.clone(), accept);
        let importer = Importer::new(settings, intake).map_err(|e| Usage(e.to_string()))?;
        let code = if args.once {
            let round = importer.round().await;
            store.close().await;
            let round = round?;
            print_round(&round, format, true)?;
            if round.mails_to(Sorted::Unreadable) > 0 {
                EXIT_FINDINGS
            } else {
                EXIT_OK
            }
        } else {
            mtasts_server::service::init_logs(false);
            let (control, shutdown) = mtasts_server::service::channel();
            let mut printed: Result<()> = Ok(());
            let signals = tokio::spawn(async move { control.forward_signals().await });
            importer
                .run(shutdown.stopped(), |r| match r {
                    Ok(round) if round.mails.is_empty() => {}
                    Ok(round) => {
                        if printed.is_ok() {
                            printed = print_round(round, format, false);
                        }
                    }
                    Err(e) => tracing::warn!("{}", escape(&e.to_string())),
                })
                .await;
            signals.abort();
            store.close().await;
            printed?;
            EXIT_OK
        };
        Ok(code)
    })
}

/// A round: with `--once` its mails and a summary (text) or one JSON document; while polling a
/// line per round with mail (text) or one JSON object per line.
fn print_round(round: &Round, format: Format, once: bool) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        let v = round.to_json();
        if once {
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        } else {
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    for m in &round.mails {
        let what: Vec<String> = m
            .reports
            .iter()
            .map(|r| {
                let result = match &r.stored {
                    Stored::New(id) => format!("stored #{id}"),
                    Stored::Duplicate { id, .. } => format!("duplicate of #{id}"),
                    Stored::Refused(why) => format!("refused ({})", escape(why)),
                };
                format!(
                    "{result} {} from {} ({})",
                    escape(&r.policy_domain),
                    escape(&r.organization),
                    escape(&r.report_id)
                )
            })
            .collect();
        let detail = m
            .problem
            .as_deref()
            .map_or_else(|| what.join("; "), |p| escape(p).into_owned());
        writeln!(
            out,
            "{:10} uid {} {}: {detail}",
            m.sorted.as_str(),
            m.uid,
            escape(&m.source)
        )?;
    }
    let (stored, duplicates, refused) = round.reports();
    writeln!(
        out,
        "{} mails: {} processed, {} unreadable, {} refused; reports: {stored} stored, \
         {duplicates} duplicates, {refused} refused; {} left in the folder",
        round.mails.len(),
        round.mails_to(Sorted::Processed),
        round.mails_to(Sorted::Unreadable),
        round.mails_to(Sorted::Refused),
        round.left
    )?;
    if once && round.more {
        writeln!(out, "more mail is waiting: run again")?;
    }
    Ok(())
}
