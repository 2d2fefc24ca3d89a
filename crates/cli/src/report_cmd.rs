//! `mtasts report parse` (files, no store), and the store commands (`report_store_cmd`).

use crate::net_args::NetArgs;
use crate::output::Format;
use crate::report_store_cmd::parse_since;
use crate::store_cmd::StoreArgs;
use crate::{EXIT_FINDINGS, EXIT_OK, EXIT_UNREADABLE, input};
use anyhow::Result;
use clap::Subcommand;
use mtasts_core::report::{JsonArray, Limits, RunBudget, parse_reports_in, write_text};
use mtasts_core::text::escape;
use mtasts_store::ReportFilter;
use owo_colors::{OwoColorize, Stream::Stdout};
use std::path::PathBuf;
use time::OffsetDateTime;

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Parse TLS-RPT reports: JSON, gzip'd JSON, or report mail, sniffed from the bytes.
    ///
    /// Prints each report in RFC 8460's JSON schema, normalised, with what was repaired and
    /// the file it came from. A file with no valid report is named on standard error; the
    /// other files are still reported.
    Parse {
        /// Report files (`-` reads standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
    /// Store reports from files: `.json`, `.json.gz`, report mail (`.eml`), maildirs and mbox
    /// files, sniffed from the bytes. Each report is stored once (a copy is counted), for any
    /// policy domain.
    Import {
        /// Files, maildirs, directories of report files, mbox files.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Store report mail from an IMAP mailbox (TLS), then move it: to the processed folder
    /// once its reports are stored, to the unreadable folder when it holds none (or is too
    /// large), to the refused folder when every report is for a domain not hosted here.
    /// Nothing is deleted. Polls with IDLE where offered until SIGINT/SIGTERM, or one round
    /// with --once.
    ///
    /// Only domains hosted in the store are accepted (the mailbox is an address anyone can
    /// mail), unless --any-domain. With --once: exit 0 when the round went through, 1 when
    /// some mail was unreadable, 3 when the server or the store could not be used.
    Imap(Box<crate::report_imap_cmd::ImapArgs>),
    /// The stored reports, newest first.
    List {
        /// Only this policy domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only reports whose range begins within this span (`14d`, `36h`) or after this time.
        #[arg(long, value_parser = parse_since)]
        since: Option<OffsetDateTime>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One stored report: raw, normalised, and what was repaired.
    Show {
        /// The report's id (from `list` or `import`).
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Sessions per policy domain and UTC day, and failures by type, MX, sending IP and
    /// reporter (text, JSON, or `--format csv` for the days).
    Summary {
        /// Only this policy domain.
        #[arg(long)]
        domain: Option<String>,
        /// The span (`14d`, `36h`) or start time; default 14 days.
        #[arg(long, value_parser = parse_since)]
        since: Option<OffsetDateTime>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// "What if enforce now?": from the domain's reports of the last days and a live check of
    /// its MX hosts, which sessions would have failed, from which reporters, at which MX, why,
    /// and the fix; go, no-go, or unknown when there is not enough to say (decisions D53).
    ///
    /// Exit status: 0 go, 1 no-go, 4 unknown (no report, no successful session, or failures
    /// that cannot be told apart without the live check), 3 the store is out of reach.
    Readiness {
        /// The policy domain.
        #[arg(long)]
        domain: String,
        /// The days of reports weighed (1 to 366).
        #[arg(long, default_value_t = mtasts_intake::readiness::DEFAULT_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(mtasts_intake::readiness::MAX_DAYS)))]
        days: u32,
        /// No live check (where port 25 is blocked, or to weigh the reports alone): failures
        /// only a live check can tell apart then stay undecided.
        #[arg(long)]
        no_live: bool,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(crate) fn run(cmd: ReportCommand, format: Format, csv: bool) -> Result<u8> {
    use crate::report_store_cmd as stored;
    let files = match cmd {
        ReportCommand::Parse { files } => {
            stored::no_csv(csv, "parse")?;
            files
        }
        ReportCommand::Import { paths, store } => {
            stored::no_csv(csv, "import")?;
            return crate::report_import_cmd::import(&paths, &store, format);
        }
        ReportCommand::Imap(args) => {
            stored::no_csv(csv, "imap")?;
            return crate::report_imap_cmd::run(&args, format);
        }
        ReportCommand::List {
            domain,
            since,
            limit,
            store,
        } => {
            stored::no_csv(csv, "list")?;
            let filter = ReportFilter {
                domain: domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
                since,
                limit,
            };
            return stored::list(filter, &store, format);
        }
        ReportCommand::Show { id, store } => {
            stored::no_csv(csv, "show")?;
            return stored::show(id, &store, format);
        }
        ReportCommand::Readiness {
            domain,
            days,
            no_live,
            net,
            store,
        } => {
            stored::no_csv(csv, "readiness")?;
            return crate::readiness_cmd::run(&domain, days, !no_live, &net, &store, format);
        }
        ReportCommand::Summary {
            domain,
            since,
            store,
        } => {
            let since =
                since.unwrap_or_else(|| OffsetDateTime::now_utc() - time::Duration::days(14));
            let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
            return stored::summary(domain.as_deref(), since, &store, format, csv);
        }
    };
    let mut code = EXIT_OK;
    // Each file's reports are printed as soon as it is read and then dropped, so memory stays
    // that of one file (core's per-mail budgets) however many files there are; the run shares
    // one decompression budget.
    let limits = Limits::default();
    let mut run = RunBudget::new(limits.max_run_decompressed);
    let (mut text, mut json) = (
        std::io::stdout().lock(),
        JsonArray::new(std::io::stdout().lock()),
    );
    for file in &files {
        let name = input::display_name(file);
        let bytes = match input::read_capped(file, limits.max_input) {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "mtasts: {}",
                    mtasts_core::text::escape_lines(&crate::output::error_text(&e))
                );
                code = code.max(EXIT_UNREADABLE);
                continue;
            }
        };
        let reports = match parse_reports_in(&bytes, &limits, &mut run) {
            Ok(reports) => reports,
            Err(e) => {
                let why = e.to_string();
                eprintln!(
                    "mtasts: {}: no valid TLS-RPT report: {}",
                    escape(name),
                    escape(&why)
                );
                code = code.max(EXIT_FINDINGS);
                continue;
            }
        };
        drop(bytes);
        for r in &reports {
            match format {
                Format::Json => json.push(&r.to_json(name))?,
                Format::Text => write_text(&mut text, name, r, |counts| {
                    counts.if_supports_color(Stdout, |t| t.red()).to_string()
                })?,
            }
        }
    }
    if format == Format::Json {
        json.finish()?;
    }
    Ok(code)
}
