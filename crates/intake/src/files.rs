//! The inputs of `mtasts report import`: a file (`.json`, `.json.gz`, `.eml`, anything core can
//! sniff), a maildir (its `cur/` and `new/`), a directory of such files (not recursive), or an
//! mbox file (messages split at `From ` lines). Each message or file is handed over on its own,
//! so memory is one input's at a time (an mbox is read whole, up to [`MAX_MBOX`]).

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest mbox file read.
pub const MAX_MBOX: u64 = 1024 * 1024 * 1024;
/// The most files taken from one directory.
pub const MAX_DIR_FILES: usize = 1_000_000;

/// One input: its name (for messages of an mbox, `FILE#N`) and bytes, or why it could not be
/// read.
#[derive(Debug)]
pub struct Input {
    /// Where it came from.
    pub name: String,
    /// The bytes, or the reason they could not be read.
    pub bytes: Result<Vec<u8>, String>,
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

/// Reads `file` and hands each input in it to `each`: the file itself, or each message of an
/// mbox. An input larger than `max_input` is handed over as an error, unread.
///
/// # Errors
/// When the file cannot be opened or read.
pub fn read_inputs(
    file: &Path,
    max_input: usize,
    mut each: impl FnMut(Input),
) -> std::io::Result<()> {
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
    let mut bytes = head[..n].to_vec();
    f.take(cap.saturating_sub(n as u64).saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        each(Input {
            name,
            bytes: Err(format!("larger than {cap} bytes, the most read")),
        });
        return Ok(());
    }
    if !mbox {
        each(Input {
            name,
            bytes: Ok(bytes),
        });
        return Ok(());
    }
    for (i, message) in split_mbox(&bytes).enumerate() {
        let name = format!("{name}#{}", i + 1);
        let bytes = if message.len() > max_input {
            Err(format!("larger than {max_input} bytes, the most read"))
        } else {
            Ok(message.to_vec())
        };
        each(Input { name, bytes });
    }
    Ok(())
}

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

/// The messages of an mbox: each starts after a line beginning `From ` (at the start or after
/// a line end), without that line.
pub fn split_mbox(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
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
    starts.into_iter().zip(ends).map(move |(s, e)| {
        let body = &bytes[s..e];
        let after = body
            .iter()
            .position(|b| *b == b'\n')
            .map_or(body.len(), |p| p + 1);
        &body[after..]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbox_splits_at_from_lines_only_at_line_starts() {
        let mbox = b"From a@b Mon\nSubject: one\n\nbody From x\n>From y\nFrom c@d Tue\nSubject: two\n\n2\n";
        let parts: Vec<&[u8]> = split_mbox(mbox).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], b"Subject: one\n\nbody From x\n>From y\n");
        assert_eq!(parts[1], b"Subject: two\n\n2\n");
        assert_eq!(split_mbox(b"").count(), 0);
        assert_eq!(split_mbox(b"From ").collect::<Vec<_>>(), [b"" as &[u8]]);
    }
}
