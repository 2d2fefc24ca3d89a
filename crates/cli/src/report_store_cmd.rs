//! `mtasts report list|show|summary`: reports in the store (`import` is
//! `report_import_cmd`). Every string from a report is escaped in text output.

use crate::output::Format;
use crate::store_cmd::StoreArgs;
use crate::{EXIT_FINDINGS, EXIT_OK, Usage};
use anyhow::Result;
use mtasts_core::text::escape;
use mtasts_intake::views::{self, listed, stamp};
use mtasts_store::ReportFilter;
use serde_json::Value;
use time::OffsetDateTime;

/// `writeln!` to standard output, its error returned (a closed pipe ends the command quietly,
/// see `main`), never a panic as `println!` would.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)?;
    }};
}

/// Empty text (a field the reporter left out) as `-`, else escaped.
fn or_dash(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_empty() { "-".into() } else { escape(s) }
}

/// `--since`: `14d`, `36h`, or an RFC 3339 time.
pub(crate) fn parse_since(s: &str) -> Result<OffsetDateTime, String> {
    views::parse_since(s, OffsetDateTime::now_utc())
}

fn print_json(v: &Value) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `mtasts report list`.
pub(crate) fn list(filter: ReportFilter, store: &StoreArgs, format: Format) -> Result<u8> {
    let config = store.serve_config()?;
    let rt = crate::runtime::with_threads(1)?;
    rt.block_on(async {
        let store = store.open(&config).await?;
        let reports = store.reports(&filter).await?;
        store.close().await;
        match format {
            Format::Json => print_json(&Value::Array(reports.iter().map(listed).collect()))?,
            Format::Text => {
                out!(
                    "{:>7}  {:<20}  {:<24}  {:<28}  {:>9}  {:>9}  copies",
                    "id",
                    "begin",
                    "policy domain",
                    "organization",
                    "success",
                    "failure"
                );
                for r in &reports {
                    out!(
                        "{:>7}  {:<20}  {:<24}  {:<28}  {:>9}  {:>9}  {}",
                        r.id,
                        stamp(r.begin),
                        escape(&r.policy_domain),
                        escape(&r.organization),
                        r.success,
                        r.failure,
                        r.copies
                    );
                }
            }
        }
        Ok(EXIT_OK)
    })
}

/// `mtasts report show ID`.
pub(crate) fn show(id: i64, store: &StoreArgs, format: Format) -> Result<u8> {
    let config = store.serve_config()?;
    let rt = crate::runtime::with_threads(1)?;
    rt.block_on(async {
        let store = store.open(&config).await?;
        let detail = store.report(id).await?;
        store.close().await;
        let Some(d) = detail else {
            eprintln!("mtasts: no report #{id} in the store");
            return Ok(EXIT_FINDINGS);
        };
        let v = views::shown(&d);
        match format {
            Format::Json => print_json(&v)?,
            Format::Text => {
                let r = &d.report;
                out!(
                    "report #{} {} from {} ({}), {} .. {}",
                    r.id,
                    escape(&r.policy_domain),
                    escape(&r.organization),
                    escape(&r.report_id),
                    stamp(r.begin),
                    stamp(r.end)
                );
                out!(
                    "sessions: {} successful, {} failed; received {} by {}, {} copies",
                    r.success,
                    r.failure,
                    stamp(r.received_at),
                    r.via,
                    r.copies
                );
                if let Some(source) = &r.source {
                    out!("from: {}", escape(source));
                }
                if let Some(dkim) = &r.dkim {
                    out!(
                        "dkim: {} ({})",
                        escape(dkim),
                        escape(r.dkim_detail.as_deref().unwrap_or(""))
                    );
                }
                for w in v["normalised"]["warnings"].as_array().into_iter().flatten() {
                    out!(
                        "repaired: {} at {}: {}",
                        escape(w["id"].as_str().unwrap_or("")),
                        escape(w["path"].as_str().unwrap_or("")),
                        escape(w["message"].as_str().unwrap_or(""))
                    );
                }
                out!("{}", escape(v["raw"].as_str().unwrap_or("")));
            }
        }
        Ok(EXIT_OK)
    })
}

/// `mtasts report summary`.
pub(crate) fn summary(
    domain: Option<&str>,
    since: OffsetDateTime,
    store: &StoreArgs,
    format: Format,
    csv: bool,
) -> Result<u8> {
    let config = store.serve_config()?;
    let rt = crate::runtime::with_threads(1)?;
    rt.block_on(async {
        let store = store.open(&config).await?;
        if csv {
            // Row by row as the store gives them: every domain over a year is millions of rows.
            use std::io::Write as _;
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            writeln!(w, "policy_domain,day,reports,success,failure")?;
            let mut failed = None;
            store
                .for_each_report_day(domain, since, |d| {
                    let r = writeln!(
                        w,
                        "{},{},{},{},{}",
                        csv_field(&d.policy_domain),
                        d.day,
                        d.reports,
                        d.success,
                        d.failure
                    );
                    r.map_err(|e| failed = Some(e)).is_ok()
                })
                .await?;
            store.close().await;
            if let Some(e) = failed {
                return Err(e.into());
            }
            w.flush()?;
            return Ok(EXIT_OK);
        }
        // One domain at a time as the store streams the days (ordered by domain, then day):
        // memory is one domain's days plus the failure breakdown (at most MAX_FAILURE_ROWS),
        // however many domains and days the span holds.
        let mut failures: std::collections::HashMap<String, Vec<mtasts_store::FailureTotal>> =
            std::collections::HashMap::new();
        for f in store.report_failures(domain, since).await? {
            failures.entry(f.policy_domain.clone()).or_default().push(f);
        }
        let mut e = SummaryWriter {
            w: std::io::BufWriter::new(std::io::stdout().lock()),
            format,
            since,
            failures,
            days: Vec::new(),
            written: 0,
            error: None,
        };
        e.start();
        store
            .for_each_report_day(domain, since, |d| {
                if e.days
                    .first()
                    .is_some_and(|f| f.policy_domain != d.policy_domain)
                {
                    e.domain();
                }
                e.days.push(d);
                e.error.is_none()
            })
            .await?;
        store.close().await;
        e.domain();
        e.end();
        if let Some(err) = e.error {
            return Err(err.into());
        }
        Ok(EXIT_OK)
    })
}

/// Writes `report summary` (JSON or text) one domain at a time.
struct SummaryWriter<W: std::io::Write> {
    w: W,
    format: Format,
    since: OffsetDateTime,
    failures: std::collections::HashMap<String, Vec<mtasts_store::FailureTotal>>,
    /// The current domain's days.
    days: Vec<mtasts_store::DayTotal>,
    written: usize,
    error: Option<std::io::Error>,
}

impl<W: std::io::Write> SummaryWriter<W> {
    fn put(&mut self, text: std::fmt::Arguments<'_>) {
        if self.error.is_none()
            && let Err(e) = self.w.write_fmt(text)
        {
            self.error = Some(e);
        }
    }

    fn start(&mut self) {
        match self.format {
            Format::Json => {
                let since = Value::String(stamp(self.since));
                self.put(format_args!("{{\"since\": {since},\n \"domains\": ["));
            }
            Format::Text => self.put(format_args!("since {}\n", stamp(self.since))),
        }
    }

    fn end(&mut self) {
        if self.format == Format::Json {
            self.put(format_args!("]}}\n"));
        }
        if self.error.is_none()
            && let Err(e) = self.w.flush()
        {
            self.error = Some(e);
        }
    }

    /// Writes the current domain and starts the next.
    fn domain(&mut self) {
        let Some(first) = self.days.first() else {
            return;
        };
        let failures = self
            .failures
            .remove(&first.policy_domain)
            .unwrap_or_default();
        let mut summary = views::summary(&self.days, &failures, self.since);
        self.days.clear();
        let v = summary["domains"][0].take();
        match self.format {
            Format::Json => {
                let sep = if self.written == 0 { "" } else { "," };
                self.put(format_args!("{sep}\n  {v}"));
            }
            Format::Text => {
                let name = match v["policy_domain"].as_str().unwrap_or("") {
                    "" => "(no policy domain given)".into(),
                    d => escape(d),
                };
                let rate = v["failure_rate"]
                    .as_f64()
                    .map_or("no sessions".to_owned(), |r| {
                        format!("{:.2} % failed", r * 100.0)
                    });
                self.put(format_args!(
                    "{name}: {} reports, {} successful, {} failed sessions ({rate})\n",
                    v["reports"], v["success"], v["failure"]
                ));
                for f in v["failures"].as_array().into_iter().flatten().take(10) {
                    self.put(format_args!(
                        "  {:>9} {} mx {} from {} (reported by {})\n",
                        f["sessions"],
                        escape(f["result_type"].as_str().unwrap_or("")),
                        or_dash(f["receiving_mx"].as_str().unwrap_or("")),
                        or_dash(f["sending_ip"].as_str().unwrap_or("")),
                        escape(f["organization"].as_str().unwrap_or(""))
                    ));
                }
            }
        }
        self.written += 1;
    }
}

/// A CSV field, quoted when it holds a comma, quote or line end; a leading `=+-@` is prefixed
/// with `'` so that a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Refuses `--format csv` for the report commands other than `summary`.
pub(crate) fn no_csv(csv: bool, what: &str) -> Result<()> {
    if csv {
        return Err(Usage(format!(
            "--format csv is only for `report summary`, not `report {what}`"
        ))
        .into());
    }
    Ok(())
}
