//! `mtasts report import PATH...`: files read and parsed, and each report's stored values
//! computed, on one thread while the batch before is being stored on another (a pipeline two
//! batches deep), each batch one transaction. The operator chose the files, so reports for any
//! domain are stored (D27 applies to the network paths only). Every string from a report is
//! escaped in text output.

use crate::output::Format;
use crate::store_cmd::StoreArgs;
use crate::{EXIT_FINDINGS, EXIT_OK, EXIT_UNREADABLE};
use anyhow::{Context as _, Result};
use mtasts_core::report::{Limits, RunBudget};
use mtasts_core::text::escape;
use mtasts_intake::files::{files_of, load};
use mtasts_intake::{Accept, Intake, IntakeError, Outcome, Stored};
use mtasts_store::{Arrival, PreparedReport, Via};
use serde::Serialize;
use std::io::Write as _;
use std::path::PathBuf;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// Reports stored per transaction (one commit, one `fsync`, per batch).
const IMPORT_BATCH: usize = 256;
/// Raw JSON held in one batch before it is stored. At most three batches are in memory at once:
/// the one being read, the one waiting, and the one being stored.
const IMPORT_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// An input that gave no report, and why.
struct Failed {
    source: String,
    error: String,
    code: u8,
    /// The input was read but held no valid report (counted as `unreadable`); otherwise a path
    /// or file could not be read at all.
    unreadable: bool,
}

/// What the reading thread hands to the storing side: parsed reports and failed inputs, in the
/// order the inputs were read.
#[derive(Default)]
struct Batch {
    /// Each with the values it is stored with computed (on the reading thread).
    reports: Vec<PreparedReport>,
    failed: Vec<Failed>,
    bytes: usize,
}

/// Reads and parses every input under `paths` (on its own thread), sending a [`Batch`] whenever
/// one is full, and the rest at the end. Stops early when the storing side has gone (it failed).
/// Stored batches come back on `done` to be freed here, where they were allocated (freeing them
/// on the storing thread made it wait on the allocator's locks, and it is the slower side).
fn read_all(
    paths: &[PathBuf],
    limits: &Limits,
    tx: &mpsc::Sender<Batch>,
    done: &std::sync::mpsc::Receiver<Batch>,
) {
    let mut run = RunBudget::new(limits.max_run_decompressed);
    let mut batch = Batch::default();
    let failed = |batch: &mut Batch, source: String, error: String, code, unreadable| {
        batch.failed.push(Failed {
            source,
            error,
            code,
            unreadable,
        });
    };
    for path in paths {
        let files = match files_of(path) {
            Ok(f) => f,
            Err(e) => {
                let source = path.display().to_string();
                failed(&mut batch, source, e.to_string(), EXIT_UNREADABLE, false);
                continue;
            }
        };
        for file in files {
            let loaded = match load(&file, limits.max_input) {
                Ok(l) => l,
                Err(e) => {
                    let source = file.display().to_string();
                    failed(&mut batch, source, e.to_string(), EXIT_UNREADABLE, false);
                    continue;
                }
            };
            for input in loaded.inputs() {
                let bytes = match input.bytes {
                    Ok(b) => b,
                    Err(e) => {
                        failed(&mut batch, input.name, e, EXIT_FINDINGS, true);
                        continue;
                    }
                };
                match mtasts_intake::parse(bytes, limits, &mut run) {
                    Ok(parsed) => {
                        let at = OffsetDateTime::now_utc();
                        for p in parsed {
                            batch.bytes += p.raw_json.len();
                            let arrival = Arrival {
                                via: Via::File,
                                source: Some(input.name.clone()),
                                at,
                                dkim: None,
                            };
                            batch.reports.push(PreparedReport::new(p, arrival));
                        }
                    }
                    Err(e) => {
                        let why = IntakeError::NotAReport(e).to_string();
                        failed(&mut batch, input.name, why, EXIT_FINDINGS, true);
                    }
                }
                if batch.reports.len() >= IMPORT_BATCH || batch.bytes >= IMPORT_BATCH_BYTES {
                    while let Ok(stored) = done.try_recv() {
                        drop(stored);
                    }
                    if tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                        return;
                    }
                }
            }
        }
    }
    let _ = tx.blocking_send(batch);
}

/// One stored report as `--format json` lists it.
#[derive(Serialize)]
struct Listed<'a> {
    source: &'a str,
    result: &'a str,
    id: i64,
    copies: u64,
    report_id: &'a str,
    organization: &'a str,
    policy_domain: &'a str,
}

/// What the import has done so far.
struct Totals {
    stored: u64,
    duplicates: u64,
    unreadable: u64,
    /// Outcomes written so far (`--format json` writes each as its batch is stored).
    written: u64,
    failed: Vec<serde_json::Value>,
    code: u8,
}

impl Totals {
    /// Counts `batch`'s failed inputs and writes what became of each of its reports
    /// (`outcomes`, in order; empty when it had none).
    fn write(
        &mut self,
        out: &mut impl std::io::Write,
        batch: &mut Batch,
        outcomes: Vec<Outcome>,
        format: Format,
    ) -> Result<()> {
        for f in batch.failed.drain(..) {
            self.unreadable += u64::from(f.unreadable);
            self.failed
                .push(serde_json::json!({"source": f.source, "error": f.error}));
            self.code = self.code.max(f.code);
        }
        for (o, r) in outcomes.into_iter().zip(&batch.reports) {
            let source = r.arrival.source.as_deref().unwrap_or_default();
            let (result, id, copies) = match o.stored {
                Stored::New(id) => {
                    self.stored += 1;
                    ("stored", id, 1)
                }
                Stored::Duplicate { id, copies } => {
                    self.duplicates += 1;
                    ("duplicate", id, copies)
                }
                Stored::Refused(_) => continue,
            };
            match format {
                Format::Text => writeln!(
                    out,
                    "{result:9} #{id} {} from {} ({}) {}",
                    escape(&o.policy_domain),
                    escape(&o.organization),
                    escape(&o.report_id),
                    escape(source)
                )?,
                Format::Json => {
                    let sep = if self.written == 0 { "" } else { "," };
                    write!(out, "{sep}\n  ")?;
                    serde_json::to_writer(
                        &mut *out,
                        &Listed {
                            source,
                            result,
                            id,
                            copies,
                            report_id: &o.report_id,
                            organization: &o.organization,
                            policy_domain: &o.policy_domain,
                        },
                    )?;
                    self.written += 1;
                }
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// Writes what became of each stored batch as it arrives (on its own thread, so that the
/// storing thread only stores), then hands the batch back to the reader on `done` to be freed.
fn write_all(
    stored: &std::sync::mpsc::Receiver<(Batch, Vec<Outcome>)>,
    done: &std::sync::mpsc::Sender<Batch>,
    format: Format,
) -> Result<Totals> {
    let mut totals = Totals {
        stored: 0,
        duplicates: 0,
        unreadable: 0,
        written: 0,
        failed: Vec::new(),
        code: EXIT_OK,
    };
    // One write per batch, not per line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == Format::Json {
        write!(out, "{{\"reports\": [")?;
    }
    while let Ok((mut batch, outcomes)) = stored.recv() {
        totals.write(&mut out, &mut batch, outcomes, format)?;
        // Once the reader has finished, the last batches are freed here.
        let _ = done.send(batch);
    }
    Ok(totals)
}

/// `mtasts report import PATH...`: every input parsed, the reports stored in batches of
/// [`IMPORT_BATCH`] per transaction (a failure of the store stops the import; what was
/// committed before stays).
pub(crate) fn import(paths: &[PathBuf], store: &StoreArgs, format: Format) -> Result<u8> {
    let config = store.serve_config()?;
    let rt = crate::runtime::with_threads(1)?;
    let (store, intake) = rt.block_on(async {
        let store = store.open(&config).await?;
        let intake = Intake::new(store.clone(), Accept::Any);
        anyhow::Ok((store, intake))
    })?;
    let limits: Limits = intake.limits().clone();
    // Three threads in a pipeline: one reads and parses, this one stores, one writes what
    // was stored. One batch waits between each: memory stays that of a few batches however
    // many reports an import holds.
    let (to_store, mut reports) = mpsc::channel::<Batch>(1);
    let (to_write, written) = std::sync::mpsc::sync_channel::<(Batch, Vec<Outcome>)>(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Batch>();
    let (stored, totals) = std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("report-import-read".into())
            .spawn_scoped(s, move || read_all(paths, &limits, &to_store, &done_rx))
            .context("cannot start the thread that reads the reports")?;
        let writer = std::thread::Builder::new()
            .name("report-import-write".into())
            .spawn_scoped(s, move || write_all(&written, &done_tx, format))
            .context("cannot start the thread that writes the outcomes")?;
        let stored = rt.block_on(async {
            while let Some(batch) = reports.recv().await {
                let outcomes = if batch.reports.is_empty() {
                    Vec::new()
                } else {
                    intake.store_prepared(&batch.reports).await?
                };
                // Blocks this thread while the writer is a batch behind: nothing else runs on
                // this runtime (sqlx's SQLite worker is a thread of its own).
                if to_write.send((batch, outcomes)).is_err() {
                    break; // The writer failed: its error is the one to report.
                }
            }
            anyhow::Ok(())
        });
        // On a failure the reader sees the channel closed at its next batch and stops.
        drop(reports);
        drop(to_write);
        let totals = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the thread writing the outcomes failed"))?;
        if reader.join().is_err() {
            anyhow::bail!("the thread reading the reports failed");
        }
        anyhow::Ok((stored, totals))
    })?;
    rt.block_on(store.close());
    stored?;
    let totals = totals?;
    let Totals {
        stored,
        duplicates,
        unreadable,
        failed,
        code,
        ..
    } = totals;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let failed = serde_json::Value::Array(failed);
            writeln!(
                out,
                "],\n \"failed\": {failed},\n \"stored\": {stored}, \"duplicates\": {duplicates}, \"unreadable\": {unreadable}}}"
            )?;
        }
        Format::Text => {
            for f in &failed {
                eprintln!(
                    "mtasts: {}: {}",
                    escape(f["source"].as_str().unwrap_or("")),
                    escape(f["error"].as_str().unwrap_or(""))
                );
            }
            writeln!(
                out,
                "{stored} stored, {duplicates} duplicates, {unreadable} inputs without a valid report"
            )?;
        }
    }
    Ok(code)
}
