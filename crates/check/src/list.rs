//! The domain list of a bulk scan (`mtasts check --input`): one domain per line, read as the
//! scan goes, so a list of any size runs in bounded memory.

use std::io::Read;

/// The longest input line read as a domain; the rest of a longer line is skipped.
pub const MAX_DOMAIN_LINE: usize = 1024;
/// Domains read ahead of the scan at most.
pub const READ_AHEAD: usize = 256;

/// A read error of the domain list, kept for the end of the scan.
pub type ReadError = std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>;

/// The domains of a list (`--input`): one per line, the first field of a CSV-like line, blank
/// lines and `#` comments skipped, invalid UTF-8 replaced (the checker then rejects the name).
///
/// The reading (blocking: a file, or a slow pipe on standard input) runs on its own thread that
/// feeds a bounded channel, so it never holds a runtime worker and reads at most
/// [`READ_AHEAD`] domains ahead of the scan. A read error ends the list and is left in the
/// returned [`ReadError`].
pub fn domain_lines(
    reader: Box<dyn std::io::BufRead + Send>,
) -> std::io::Result<(futures_util::stream::BoxStream<'static, String>, ReadError)> {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(READ_AHEAD);
    let error: ReadError = ReadError::default();
    let thread_error = std::sync::Arc::clone(&error);
    std::thread::Builder::new()
        .name("mtasts-input".into())
        .spawn(move || {
            if let Err(e) = read_domains(reader, |d| tx.blocking_send(d).is_ok()) {
                *thread_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            }
        })?;
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|d| (d, rx)) });
    Ok((stream.boxed(), error))
}

/// The domains of the list at `path` (`-`: standard input), as [`domain_lines`] reads them.
pub fn open(
    path: &str,
) -> std::io::Result<(futures_util::stream::BoxStream<'static, String>, ReadError)> {
    let reader: Box<dyn std::io::BufRead + Send> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path)?))
    };
    domain_lines(reader)
}

/// Reads domains from `reader`, handing each to `send` until it returns false or the input
/// ends.
pub fn read_domains(
    mut reader: impl std::io::BufRead,
    mut send: impl FnMut(String) -> bool,
) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_DOMAIN_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") && n == MAX_DOMAIN_LINE {
            // Skip the rest of an over-long line, a bounded chunk at a time.
            loop {
                let buf = reader.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                let (used, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                reader.consume(used);
                if done {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&line);
        let d = text.trim();
        if d.is_empty() || d.starts_with('#') {
            continue;
        }
        let d = d.split([',', ' ', '\t']).next().unwrap_or(d).to_owned();
        if !send(d) {
            return Ok(());
        }
    }
}

/// How many domains [`read_domains`] would read from the file at `path`, counting no further
/// than `at_most` (for a progress bar's total, or to tell a short list). An error for anything
/// but a regular file.
pub fn count_domains(path: &str, at_most: u64) -> std::io::Result<u64> {
    // A pipe (`--input <(...)`) or a device: counting would consume what the scan must read,
    // and opening a named pipe would wait for a writer. Looked at before opening.
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let f = std::fs::File::open(path)?;
    let mut n = 0u64;
    read_domains(std::io::BufReader::new(f), |_| {
        n += 1;
        n < at_most
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        read_domains(input, |d| {
            out.push(d);
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn domain_lists_skip_comments_blank_and_overlong_lines() {
        let long = "x".repeat(5000);
        let input = format!(
            "a.example\n\n# comment\n  b.example , extra\n{long}.example\nc.example\td\nlast.example"
        );
        let got = read(input.as_bytes());
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(&got[..2], ["a.example", "b.example"]);
        assert_eq!(got[2].len(), MAX_DOMAIN_LINE, "an over-long line is cut");
        assert_eq!(&got[3..], ["c.example", "last.example"]);
        let mut invalid = b"a.example\n".to_vec();
        invalid.extend_from_slice(&[0xff, 0xfe, b'\n']);
        assert_eq!(read(&invalid), ["a.example", "\u{fffd}\u{fffd}"]);
    }

    #[test]
    fn counting_stops_at_the_limit_and_never_reads_a_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        let list: String = (0..100)
            .map(|i| format!("d{i}.example\n# note\n"))
            .collect();
        std::fs::write(&path, list).unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(count_domains(path, u64::MAX).unwrap(), 100);
        assert_eq!(count_domains(path, 65).unwrap(), 65);
        assert!(
            count_domains("/dev/null", u64::MAX).is_err(),
            "not a regular file: reading it to count could consume a pipe's input"
        );
    }

    #[tokio::test]
    async fn the_reader_thread_feeds_the_stream_and_stops_with_it() {
        use futures_util::StreamExt;
        let many: String = (0..2000).map(|i| format!("d{i}.example\n")).collect();
        let (stream, error) =
            domain_lines(Box::new(std::io::Cursor::new(many.into_bytes()))).unwrap();
        let got: Vec<String> = stream.collect().await;
        assert_eq!(got.len(), 2000);
        assert_eq!(got[1999], "d1999.example");
        assert!(error.lock().unwrap().is_none());
    }
}
