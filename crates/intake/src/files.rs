//! The inputs of `mtasts report import`: a file (`.json`, `.json.gz`, `.eml`, anything core can
//! sniff), a maildir (its `cur/` and `new/`), a directory of such files (not recursive), or an
//! mbox file (messages split at `From ` lines). One file is in memory at a time, read once (an
//! mbox whole, up to [`MAX_MBOX`]); its messages are slices of it, not copies.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest mbox file read.
pub const MAX_MBOX: u64 = 1024 * 1024 * 1024;
/// The most files taken from one directory.
pub const MAX_DIR_FILES: usize = 1_000_000;

/// One input of a [`Loaded`] file: its name (for the Nth message of an mbox, `FILE#N`) and bytes,
/// or why it was not read.
#[derive(Debug)]
pub struct Input<'a> {
    /// Where it came from.
    pub name: String,
    /// The bytes, or the reason they were not read.
    pub bytes: Result<&'a [u8], String>,
}

/// A file read for import: its bytes once, and where each input lies in them (no copy per
/// message).
#[derive(Debug)]
pub struct Loaded {
    name: String,
    bytes: Vec<u8>,
    /// Each input's range, or `Err` with why it is not read.
    parts: Vec<Result<std::ops::Range<usize>, String>>,
}

impl Loaded {
    /// The inputs, in file order.
    pub fn inputs(&self) -> impl Iterator<Item = Input<'_>> {
        let many = self.parts.len() > 1 || self.is_mbox();
        self.parts.iter().enumerate().map(move |(i, part)| Input {
            name: if many {
                format!("{}#{}", self.name, i + 1)
            } else {
                self.name.clone()
            },
            bytes: match part {
                Ok(r) => Ok(&self.bytes[r.clone()]),
                Err(e) => Err(e.clone()),
            },
        })
    }

    fn is_mbox(&self) -> bool {
        self.bytes.starts_with(b"From ")
    }
}

/// The files `path` stands for: itself when a file; the files of `cur/` and `new/` for a
/// maildir; the regular files of a directory otherwise. Sorted by name.
///
/// # Errors
/// When `path` or a directory cannot be read.
pub fn files_of(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let maildir = ["cur", "new"].iter().any(|d| path.join(d).is_dir());
    let dirs: Vec<PathBuf> = if maildir {
        ["cur", "new"]
            .iter()
            .map(|d| path.join(d))
            .filter(|d| d.is_dir())
            .collect()
    } else {
        vec![path.to_owned()]
    };
    let mut out = Vec::new();
    for d in dirs {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                out.push(entry.path());
                if out.len() > MAX_DIR_FILES {
                    return Err(std::io::Error::other(format!(
                        "{}: more than {MAX_DIR_FILES} files",
                        path.display()
                    )));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads `file`: one input, or each message of an mbox (a file starting `From `). An input
/// larger than `max_input` is listed with the reason, unread; a file larger than the most read
/// (`max_input`, [`MAX_MBOX`] for an mbox) is one such input.
///
/// # Errors
/// When the file cannot be opened or read.
pub fn load(file: &Path, max_input: usize) -> std::io::Result<Loaded> {
    let name = file.display().to_string();
    let mut f = std::fs::File::open(file)?;
    let mut head = [0u8; 5];
    let n = read_up_to(&mut f, &mut head)?;
    let mbox = &head[..n] == b"From ";
    let cap = if mbox {
        MAX_MBOX
    } else {
        u64::try_from(max_input).unwrap_or(u64::MAX)
    };
    // Sized from the file's length (capped), so that the whole file is read in one call
    // rather than by the growing probes of an empty buffer (eight reads a small report).
    let len = f.metadata().map_or(0, |m| m.len());
    let want = usize::try_from(len.min(cap).saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(want.min(MAX_PRESIZE));
    bytes.extend_from_slice(&head[..n]);
    f.take(cap.saturating_sub(n as u64).saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Ok(Loaded {
            name,
            bytes: Vec::new(),
            parts: vec![Err(format!("larger than {cap} bytes, the most read"))],
        });
    }
    let parts = if mbox {
        split_mbox(&bytes)
            .into_iter()
            .map(|r| {
                if r.len() > max_input {
                    Err(format!("larger than {max_input} bytes, the most read"))
                } else {
                    Ok(r)
                }
            })
            .collect()
    } else {
        vec![Ok(0..bytes.len())]
    };
    Ok(Loaded { name, bytes, parts })
}

/// The most memory reserved ahead from a file's declared length (a file can grow or lie;
/// past this the buffer grows as bytes actually arrive).
const MAX_PRESIZE: usize = 64 * 1024 * 1024;

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Where the messages of an mbox lie: each starts after a line beginning `From ` (at the start
/// or after a line end), without that line.
pub fn split_mbox(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if (i == 0 || bytes[i - 1] == b'\n') && bytes[i..].starts_with(b"From ") {
            starts.push(i);
        }
        i += match bytes[i..].iter().position(|b| *b == b'\n') {
            Some(p) => p + 1,
            None => bytes.len() - i,
        };
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .copied()
        .chain([bytes.len()])
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(|(s, e)| {
            let after = bytes[s..e]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(e, |p| s + p + 1);
            after..e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbox_splits_at_from_lines_only_at_line_starts() {
        let mbox = b"From a@b Mon\nSubject: one\n\nbody From x\n>From y\nFrom c@d Tue\nSubject: two\n\n2\n";
        let parts: Vec<&[u8]> = split_mbox(mbox).into_iter().map(|r| &mbox[r]).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], b"Subject: one\n\nbody From x\n>From y\n");
        assert_eq!(parts[1], b"Subject: two\n\n2\n");
        assert!(split_mbox(b"").is_empty());
        let only = split_mbox(b"From ");
        assert_eq!((only.len(), only[0].start, only[0].end), (1, 5, 5));
    }
}
