//! Reading inputs with a size cap, from a file or standard input.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::Path;

/// Reads `path` (`-` is standard input), at most `limit + 1` bytes: callers see that an input is
/// over the limit without the tool reading gigabytes first.
pub(crate) fn read_capped(path: &str, limit: usize) -> Result<Vec<u8>> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut buf = Vec::new();
    if path == "-" {
        std::io::stdin()
            .lock()
            .take(cap)
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
    } else {
        let p = Path::new(path);
        if p.is_dir() {
            bail!("cannot read {path}: it is a directory");
        }
        let f = std::fs::File::open(p).with_context(|| format!("cannot read {path}"))?;
        f.take(cap)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {path}"))?;
    }
    Ok(buf)
}

/// The name to show for an input.
pub(crate) fn display_name(path: &str) -> &str {
    if path == "-" { "<stdin>" } else { path }
}
